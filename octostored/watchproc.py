"""The watcher process: one watchfiles watch of a root's folders, in a child of the daemon.

watchfiles builds its recursive inotify watcher holding the GIL: it walks and ``stat``s the
whole tree and adds one watch per folder (2.7 s for the 50,000 folders of 10,000 runs, ten
times that at 100,000), and in the daemon nothing else ran meanwhile: every answer waited.
Every file the daemon opened under the watch also cost it an ``IN_OPEN`` event to drain.  In
a child, both happen off the daemon's GIL.  The child imports the standard library and
watchfiles only (``python -P -m octostored.watchproc``).

Protocol (JSON lines):

* stdin: one line ``{"paths": [...], "recursive": bool, "polling": bool, "poll_ms": int,
  "step": int, "debounce": int}``; then nothing until the daemon closes it, and the child exits
  (a daemon that dies closes it too).
* stdout: ``{"armed": true}`` once the watcher exists (changes from then on are reported), then
  ``{"paths": [...]}`` per batch (at most ``CHUNK`` paths a line), or ``{"error": "..."}`` when
  watching fails (the daemon falls back to polling).
"""

from __future__ import annotations

import json
import os
import sys
import threading

from typing import Any

import watchfiles
from watchfiles import Change
from watchfiles._rust_notify import RustNotify

CHUNK = 2000
"""Paths per stdout line (the daemon reads lines of up to a few MB)."""


class StoreFilter(watchfiles.BaseFilter):
    """Keep store data, env files, ``.git/HEAD`` and ``.git/refs``; drop artifacts and caches."""

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        parts = path.split(os.sep)
        if "artifacts" in parts or "__pycache__" in parts:
            return False
        name = parts[-1]
        if name.endswith((".pyc", ".swp", "~")) or name.startswith(".snap-"):
            return False
        if ".git" in parts:
            i = parts.index(".git")
            rest = parts[i + 1 :]
            return not rest or rest[0] in ("HEAD", "refs", "packed-refs")
        return True


_out = threading.Lock()


def send(msg: dict[str, object]) -> None:
    line = json.dumps(msg) + "\n"
    with _out:
        sys.stdout.write(line)
        sys.stdout.flush()


def watch(cfg: dict[str, Any], stop: threading.Event) -> None:
    """Build the watcher, say ``armed``, then send every batch until ``stop``.

    ``RustNotify`` is used directly (as ``watchfiles.watch`` does) so that ``armed`` is sent
    the moment the watcher exists, and with no timeout: watchfiles drops a change that lands
    between its timeout check and its clearing of the batch, so a short timeout would make
    that race frequent.
    """
    flt = StoreFilter()
    try:
        with RustNotify([str(p) for p in cfg["paths"]], False, bool(cfg.get("polling")),
                        int(cfg.get("poll_ms", 500)), bool(cfg.get("recursive", True)),
                        True) as notify:
            send({"armed": True})
            while True:
                raw = notify.watch(int(cfg.get("debounce", 300)), int(cfg.get("step", 20)), 0, stop)
                if raw in ("stop", "signal"):
                    return
                if raw == "timeout":
                    continue
                paths = sorted({p for c, p in raw if flt(Change(c), p)})
                for i in range(0, len(paths), CHUNK):
                    send({"paths": paths[i : i + CHUNK]})
    except Exception as exc:  # noqa: BLE001 - the daemon falls back to polling and says why
        send({"error": str(exc) or type(exc).__name__})


def main() -> int:
    line = sys.stdin.readline()
    if not line:
        return 0
    cfg = json.loads(line)
    stop = threading.Event()
    t = threading.Thread(target=watch, args=(cfg, stop), name="watch", daemon=True)
    t.start()
    sys.stdin.read()  # until the daemon closes our stdin (or dies)
    stop.set()
    t.join(2)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (KeyboardInterrupt, BrokenPipeError):
        sys.exit(0)
