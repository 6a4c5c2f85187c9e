"""The on-disk format of console logs: one place for the names both sides use.

A command run through ``octostore run -- CMD`` (or a training process whose project
opted in with ``capture_console = true``, or a reproduction) writes:

* ``<root>/.octostore/logs/<log_id>.log``: the raw bytes of stdout and stderr, in the
  order they arrived, exactly as the terminal got them (ANSI colours and ``\\r``
  progress updates included);
* ``<root>/.octostore/logs/<log_id>.idx``: JSON lines mapping byte offsets of the log
  to wall-clock time, so a run's part of a log shared by several runs can be cut by
  the run's start and end times.  The first line is the header
  ``{"v": 1, "o": 0, "t": <unix ms>, "argv": [...], "pid": <pid>}``; then
  ``{"o": <offset>, "t": <unix ms>}`` at most every ``MARK_INTERVAL_MS`` while output
  flows, and after a pause of at least ``GAP_MS`` a pair of marks at the same
  offset: when the output paused and when it resumed (every time in between is
  exact for that offset, so a run that starts or ends in a pause is cut exactly);
  the last line, written when the command ends, is
  ``{"o": <size>, "t": <unix ms>, "exit": <code or null>}``.  A log without that last
  line is still being written, or its writer died (then the log holds everything up
  to the death).

Every run started by that command carries the tag ``TAG`` whose value is the log's
path relative to the root (``.octostore/logs/<log_id>.log``), so a clone of the repo
resolves it the same way.

Standard library only: the writers run in the user's training process and its
environment (the capture plugin, :mod:`octostored.console.inprocess`).
"""

from __future__ import annotations

import json
import os
import time

LOGS_DIR = os.path.join(".octostore", "logs")
"""The logs' folder, relative to the root."""

TAG = "octostore.console_log"
"""Run tag: the root-relative path of the run's console log."""

STATE_TAG = "octostore.console_capture"
"""Run tag set when the in-process capture turned itself off: the reason."""

ENV_LOG = "OCTOSTORE_CONSOLE_LOG"
"""Set by the writer for the command it runs: the absolute path of the log, so the
capture plugin in the child tags its runs with it (and does not tee a second time)."""

MARK_INTERVAL_MS = 250
GAP_MS = 100
"""A pause in the output at least this long is marked at both ends."""
LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".idx"


def new_log_id(now: float | None = None, pid: int | None = None) -> str:
    """``20261126T130102Z-4242``: sortable, unique per process and second."""
    t = time.gmtime(now if now is not None else time.time())
    return f"{time.strftime('%Y%m%dT%H%M%SZ', t)}-{pid if pid is not None else os.getpid()}"


def log_path(root: str, log_id: str) -> str:
    return os.path.join(root, LOGS_DIR, log_id + LOG_SUFFIX)


def index_path(log_file: str) -> str:
    """The ``.idx`` beside a ``.log`` (or ``.log.gz``) file."""
    base = log_file[:-3] if log_file.endswith(".gz") else log_file
    if base.endswith(LOG_SUFFIX):
        base = base[: -len(LOG_SUFFIX)]
    return base + INDEX_SUFFIX


def rel_path(root: str, log_file: str) -> str:
    """The tag value for ``log_file``: relative to ``root``, with forward slashes."""
    return os.path.relpath(log_file, root).replace(os.sep, "/")


def read_index(idx_file: str) -> list[dict]:
    """The index's entries in order; a torn or garbled line (a writer killed mid-line) is
    skipped, never an error.  A missing file gives ``[]``."""
    try:
        with open(idx_file, "rb") as f:
            raw = f.read()
    except OSError:
        return []
    out: list[dict] = []
    for line in raw.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # also UnicodeDecodeError
            continue
        if isinstance(entry, dict) and isinstance(entry.get("o"), int) and isinstance(entry.get("t"), int):
            out.append(entry)
    return out


def index_line(offset: int, t_ms: int, **extra: object) -> bytes:
    return json.dumps({"o": offset, "t": t_ms, **extra}, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8") + b"\n"


def root_of(log_file: str) -> str | None:
    """The root a log lives under (``<root>/.octostore/logs/<id>.log``), or None."""
    folder = os.path.dirname(os.path.abspath(log_file))
    suffix = os.sep + LOGS_DIR
    return folder[: -len(suffix)] or os.sep if folder.endswith(suffix) else None
