"""Watching a root's stores, environment files and git refs (watchfiles, in a child process).

The watcher only reports to its root through :class:`WatchSink` (changed paths, a re-read
asked for, a note on how the root is watched); it never touches the index or the queue.  inotify costs one watch per directory whatever the filter, so it
watches the store folders themselves recursively and the root, ``.git`` and
each SQLite store's folder non-recursively (a WAL database changes only its
``-wal`` file).  watchfiles' default filter drops ``.git``, so a filter of our
own keeps ``.git/HEAD`` and ``.git/refs`` and drops artifact churn.

Each watch runs in a child process (:mod:`octostored.watchproc`): watchfiles builds its
recursive watcher holding the GIL (seconds at 10,000 runs), which froze every answer of the
daemon meanwhile.

When the kernel refuses more watches, the watcher falls back to polling and
says so on the root (watchfiles has no automatic fallback: STACK.md §3).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol


class WatchSink(Protocol):
    """What a watcher may ask of its root (:class:`~octostored.index.root.Root` is one)."""

    path: str

    def notify_paths(self, paths: set[str]) -> None: ...
    def request(self, kind: str, payload: Any = None) -> None: ...
    def store_watch_paths(self) -> list[tuple[list[str], list[str]]]: ...
    def answering(self) -> bool: ...
    def verifying(self) -> bool: ...
    def watch_note(self, msg: str | None, replaces: str = "") -> None: ...
    def polled(self, under: list[str] | None = None, warning: str = "") -> None: ...

log = logging.getLogger(__name__)

STEP_MS = 20
"""How long the tree must be quiet before a batch is delivered (watchman's settle)."""
DEBOUNCE_MS = 300
"""Longest a continuous burst is held back before a batch is delivered anyway."""
POLL_MS = 500
"""Shortest polling interval, when inotify cannot be used."""
POLL_MS_PER_DIR = 0.16
"""Polling interval per folder of the tree: watchfiles' poller spends ~16 us of CPU per folder
of an MLflow store on each pass (0.8 s for the 50,000 folders of 10,000 runs), so this keeps
polling near 10% of a core whatever the size (80 s between passes at 100,000 runs)."""
LINE_LIMIT = 16 * 1024 * 1024
"""Longest line read from a watcher process (it sends at most 2,000 paths a line)."""
ARM_TIMEOUT = 600.0
"""Longest wait for a watcher process to have its watch in place (a 100,000-run tree takes
about a minute); after it the root carries on and says so."""


_NOT_WATCHED = "this root is not watched"


def poll_interval_ms(dirs: int) -> int:
    return max(POLL_MS, round(dirs * POLL_MS_PER_DIR))


MAX_WATCHED_ROOTS = int(os.environ.get("OCTOSTORE_MAX_WATCHED_ROOTS", "16"))
"""Roots watched by watcher processes at once (two processes each, ~17 MB apiece: 150 roots
once meant 2.5 GB).  Roots opened beyond it are re-read every :data:`ROOT_POLL_SECONDS`
instead, and say so."""
ROOT_POLL_SECONDS = 5.0
"""Shortest interval between re-reads of a root that is not watched (it grows to 20x the
time a re-read takes, so re-reading stays under 5% of a core)."""
_watched_roots: set[str] = set()
"""Paths of the roots whose watch runs in processes now."""

ARM_DELAY = 0.25
"""When a root already answers (from its snapshot, or from its unwatched first scan), seconds
the watch setup waits so the first requests are answered first: counting the folders and the
watcher process's walk of the tree compete with them for the disk and the cores."""
ARM_MAX_WAIT = 10.0
"""Latest a deferred watch setup starts even if no scan asked for it."""


class RootWatcher:
    def __init__(self, root: WatchSink) -> None:
        self.root = root
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._paths: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
        self._pending = False
        """The paths changed and the watch tasks are not started yet."""
        self._arms: list[tuple[asyncio.Event, asyncio.Task[None]]] = []
        """Per watch: an event set once its watcher is built (changes from then on are
        reported), and its task."""
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()

    def _wanted(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        recursive: set[str] = set()
        flat: set[str] = {self.root.path}
        git = os.path.join(self.root.path, ".git")
        if os.path.isdir(git):
            flat.add(git)
            if os.path.isdir(os.path.join(git, "refs")):
                recursive.add(os.path.join(git, "refs"))
        octo = os.path.join(self.root.path, ".octostore")
        if os.path.isdir(octo):
            recursive.add(octo)
        for rec, fl in self.root.store_watch_paths():  # each store says what (a server: none)
            recursive.update(rec)
            flat.update(fl)
        # A store inside .octostore is covered by the recursive watch on .octostore.
        recursive = {p for p in recursive if not any(
            p != q and p.startswith(q + os.sep) for q in recursive)}
        return tuple(sorted(recursive)), tuple(sorted(flat))

    async def start(self) -> None:
        """Plan the watches.  A root that already answers (from its snapshot or its unwatched
        first scan) starts them at its verify scan (:meth:`update_paths`), after its first
        answers; an empty root at once."""
        deferred = self.root.answering()
        async with self._lock:
            self._plan()
        if deferred:
            self._timer = asyncio.get_running_loop().call_later(
                ARM_MAX_WAIT, lambda: asyncio.ensure_future(self._arm()))
        else:
            await self._arm()

    async def update_paths(self) -> None:
        """Watch what the root now holds; returns once changes from now on are reported
        (a scan that follows misses nothing)."""
        await self._arm(delay=ARM_DELAY if self.root.verifying() else 0.0,
                        plan=True)

    def _plan(self) -> None:
        wanted = self._wanted()
        if wanted != self._paths or not (self._tasks or self._pending):
            self._paths = wanted
            self._pending = True

    async def _arm(self, delay: float = 0.0, plan: bool = False) -> None:
        async with self._lock:
            if plan:
                self._plan()
            if self._pending:
                if delay:
                    await asyncio.sleep(delay)
                self._pending = False
                await self._start_tasks()
        for armed, task in list(self._arms):
            if armed.is_set() or task.done():
                continue
            waiter = asyncio.ensure_future(armed.wait())
            try:
                await asyncio.wait([waiter, task], timeout=ARM_TIMEOUT,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if not (armed.is_set() or task.done()):
                self.root.watch_note(
                    f"setting up the watch took over {ARM_TIMEOUT:g} s (a slow or hung file "
                    "system?); changes may show late until it is in place")

    async def _start_tasks(self) -> None:
        await self.stop()
        self._stop = asyncio.Event()
        if self.root.path not in _watched_roots and len(_watched_roots) >= MAX_WATCHED_ROOTS:
            self._start_polling()
            return
        _watched_roots.add(self.root.path)
        self.root.watch_note(None, replaces=_NOT_WATCHED)
        recursive, flat = self._paths
        if recursive:
            # Decided before the watch starts, so the root never answers "inotify" for a store
            # that is about to be polled.
            existing = [p for p in recursive if os.path.exists(p)]
            polling = False
            poll_ms = POLL_MS
            if existing:
                limit = inotify_budget()
                stop_after = limit + 1 if limit is not None else 10_000_000
                needed = await asyncio.to_thread(count_dirs, existing, stop_after)
                if limit is not None and needed > limit:
                    polling = True
                    # The whole tree, this once: the polling interval grows with it.
                    needed = await asyncio.to_thread(count_dirs, existing)
                    poll_ms = poll_interval_ms(needed)
                    self._fall_back(existing, f"the tree needs {needed} watches and the "
                                    f"system allows octostore about {limit}", poll_ms, True)
            self._start(recursive, True, polling, poll_ms)
        if flat:
            self._start(flat, False, False, POLL_MS)

    def _start(self, paths: tuple[str, ...], recursive: bool, polling: bool,
               poll_ms: int) -> None:
        armed = asyncio.Event()
        task = asyncio.create_task(self._watch(paths, recursive, polling, poll_ms, armed))
        self._tasks.append(task)
        self._arms.append((armed, task))

    def _start_polling(self) -> None:
        """Re-read the root now and then instead of watching it (over MAX_WATCHED_ROOTS)."""
        msg = (f"{_NOT_WATCHED} (over {MAX_WATCHED_ROOTS} roots are watched): it is re-read "
               f"every {ROOT_POLL_SECONDS:g} s or more, and at once by `octostore/sync`; close "
               "other roots (or restart the daemon) to watch it")
        self.root.watch_note(msg)
        self.root.polled()
        self._tasks.append(asyncio.create_task(self._poll_root()))

    async def _poll_root(self) -> None:
        every = ROOT_POLL_SECONDS
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), every)
                return
            t0 = time.monotonic()
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.root.request("verify", fut)
            await fut
            every = max(ROOT_POLL_SECONDS, 20 * (time.monotonic() - t0))

    async def stop(self) -> None:
        _watched_roots.discard(self.root.path)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending = False
        self._arms = []
        self._stop.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []

    async def _watch(self, paths: tuple[str, ...], recursive: bool, polling: bool,
                     poll_ms: int, armed: asyncio.Event) -> None:
        existing = [p for p in paths if os.path.exists(p)]
        if not existing:
            armed.set()
            return
        then = None
        while not self._stop.is_set():
            why = await self._run_child(existing, recursive, polling, poll_ms, armed, then)
            if why is None:
                return
            if polling:
                log.warning("watching %s failed: %s", existing, why)
                self.root.watch_note(
                    f"watching stopped ({why}); changes show after `octostore/sync`")
                return
            polling = True
            if recursive:
                poll_ms = poll_interval_ms(await asyncio.to_thread(count_dirs, existing))
            self._fall_back(existing, why, poll_ms,
                            any(w in why for w in ("No space left", "ENOSPC", "limit")))
            # Re-read everything once the poller has its first picture of the tree: what
            # changed before that is in the re-read, what changes after it is reported.
            armed.clear()
            then = lambda: self.root.request("rescan")  # noqa: E731

    async def _run_child(self, paths: list[str], recursive: bool, polling: bool, poll_ms: int,
                         armed: asyncio.Event, then: Callable[[], None] | None) -> str | None:
        """Watch ``paths`` in a watcher process until stopped (None) or until it fails (why).
        ``armed`` is set, and ``then`` called, once the process's watcher exists."""
        cfg = {"paths": paths, "recursive": recursive, "polling": polling,
               "poll_ms": poll_ms, "step": STEP_MS, "debounce": DEBOUNCE_MS}
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-P", "-m", "octostored.watchproc",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                limit=LINE_LIMIT)
        except OSError as exc:
            return f"the watcher process did not start: {exc}"
        assert proc.stdin is not None and proc.stdout is not None
        why: str | None = None
        try:
            proc.stdin.write(json.dumps(cfg).encode() + b"\n")
            await proc.stdin.drain()
            while True:
                line = await proc.stdout.readline()
                if not line:
                    break
                msg = json.loads(line)
                if "paths" in msg:
                    self.root.notify_paths(set(msg["paths"]))
                elif "armed" in msg:
                    armed.set()
                    self.root.watch_note(None, replaces="setting up the watch")
                    if then is not None:
                        then()
                elif "error" in msg:
                    why = str(msg["error"])
                    break
            if why is None and not self._stop.is_set():
                await proc.wait()
                why = f"the watcher process ended (exit {proc.returncode})"
        except (OSError, ValueError) as exc:  # a broken pipe, a line too long or not JSON
            why = f"the watcher process failed: {exc}"
        finally:
            # The child keeps no state: stop it at once, then reap it.
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
        return None if self._stop.is_set() else why

    def _fall_back(self, paths: list[str], why: str, poll_ms: int, limit: bool) -> None:
        every = f"polling every {poll_ms / 1000:g} s instead"
        msg = (f"the system's inotify watch limit is too small for this tree ({why}); {every}. "
               "Raise fs.inotify.max_user_watches (sysctl) to get instant updates back"
               if limit else f"watching with inotify failed ({why}); {every}")
        log.warning(msg)
        self.root.watch_note(msg)
        self.root.polled(paths, msg)


def count_dirs(paths: list[str], stop_after: int = 10_000_000) -> int:
    """Directories under ``paths``: what inotify would spend one watch on each.

    Stops counting at ``stop_after``.  A folder whose link count is 2 has no subfolders
    (ext4, xfs, tmpfs, ...): it is counted without being listed, so the ~30 files of each
    run are never listed.  Filesystems that do not keep that count (btrfs says 1) are listed.
    """
    n = 0
    stack = list(paths)
    while stack:
        top = stack.pop()
        n += 1
        if n >= stop_after:
            return n
        try:
            it = os.scandir(top)
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    if not e.is_dir(follow_symlinks=False):
                        continue
                    if e.stat(follow_symlinks=False).st_nlink == 2:
                        n += 1
                        if n >= stop_after:
                            return n
                    else:
                        stack.append(e.path)
                except OSError:
                    continue
    return n


def inotify_budget() -> int | None:
    """Watches octostore may use: half the per-user limit (VS Code and others share it).

    ``OCTOSTORE_INOTIFY_LIMIT`` overrides it (tests; machines with unusual setups).
    """
    env = os.environ.get("OCTOSTORE_INOTIFY_LIMIT")
    if env and env.isdigit():
        return int(env)
    try:
        with open("/proc/sys/fs/inotify/max_user_watches") as f:
            return int(f.read().strip()) // 2
    except (OSError, ValueError):
        return None
