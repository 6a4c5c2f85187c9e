"""Watching a root's stores, environment files and git refs (watchfiles).

The watcher only reports paths to its root's updater queue; it never touches
the index.  inotify costs one watch per directory whatever the filter, so it
watches the store folders themselves recursively and the root, ``.git`` and
each SQLite store's folder non-recursively (a WAL database changes only its
``-wal`` file).  watchfiles' default filter drops ``.git``, so a filter of our
own keeps ``.git/HEAD`` and ``.git/refs`` and drops artifact churn.

When the kernel refuses more watches, the watcher falls back to polling and
says so on the root (watchfiles has no automatic fallback: STACK.md §3).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

import watchfiles

if TYPE_CHECKING:
    from .index.root import Root

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


def poll_interval_ms(dirs: int) -> int:
    return max(POLL_MS, round(dirs * POLL_MS_PER_DIR))


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


ARM_DELAY = 0.25
"""When a root already answers (from its snapshot, or from its unwatched first scan), seconds
the watch setup waits so the first requests are answered first: watchfiles builds its recursive inotify watcher holding the GIL (2.7 s for the
50,000 folders of 10,000 runs), and nothing else in the daemon runs meanwhile."""
ARM_MAX_WAIT = 10.0
"""Latest a deferred watch setup starts even if no scan asked for it."""


class RootWatcher:
    def __init__(self, root: Root) -> None:
        self.root = root
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._paths: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
        self._pending = False
        """The paths changed and the watch tasks are not started yet."""
        self._armed = asyncio.Event()
        """Set once the recursive watcher is built: changes from then on are reported."""
        self._recursive: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._poll_ms = POLL_MS

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
        for st in self.root.stores.values():
            if st.ref.kind == "file":
                recursive.add(st.ref.path)
            elif st.ref.kind == "sqlite":  # a server ("remote") has nothing on disk to watch
                flat.add(os.path.dirname(st.ref.path))
        # A store inside .octostore is covered by the recursive watch on .octostore.
        recursive = {p for p in recursive if not any(
            p != q and p.startswith(q + os.sep) for q in recursive)}
        return tuple(sorted(recursive)), tuple(sorted(flat))

    async def start(self) -> None:
        """Plan the watches.  A root that already answers (from its snapshot or its unwatched
        first scan) starts them at its verify scan (:meth:`update_paths`), after its first
        answers; an empty root at once."""
        deferred = bool(self.root.index.runs)
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
        await self._arm(delay=ARM_DELAY if self.root.index.state == "verifying" else 0.0,
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
        task = self._recursive
        if task is not None and not task.done() and not self._armed.is_set():
            waiter = asyncio.ensure_future(self._armed.wait())
            try:
                await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()

    async def _start_tasks(self) -> None:
        await self.stop()
        self._stop = asyncio.Event()
        self._armed = asyncio.Event()
        recursive, flat = self._paths
        if recursive:
            # Decided before the watch starts, so the root never answers "inotify" for a store
            # that is about to be polled.
            existing = [p for p in recursive if os.path.exists(p)]
            polling = False
            if existing:
                limit = inotify_budget()
                stop_after = limit + 1 if limit is not None else 10_000_000
                needed = await asyncio.to_thread(count_dirs, existing, stop_after)
                if limit is not None and needed > limit:
                    polling = True
                    # The whole tree, this once: the polling interval grows with it.
                    needed = await asyncio.to_thread(count_dirs, existing)
                    self._poll_ms = poll_interval_ms(needed)
                    self._fall_back(existing, f"the tree needs {needed} watches and the "
                                    f"system allows octostore about {limit}")
            self._recursive = asyncio.create_task(self._watch(recursive, True, polling))
            self._tasks.append(self._recursive)
        if flat:
            self._tasks.append(asyncio.create_task(self._watch(flat, False)))

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending = False
        self._recursive = None
        self._stop.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []

    async def _watch(self, paths: tuple[str, ...], recursive: bool, polling: bool = False) -> None:
        existing = [p for p in paths if os.path.exists(p)]
        if not existing:
            return
        while not self._stop.is_set():
            try:
                if recursive:
                    # awatch builds its watcher before its first await, so whoever waits on
                    # this event resumes only once the watches are in place.
                    self._armed.set()
                async for changes in watchfiles.awatch(
                    *existing,
                    watch_filter=StoreFilter(),
                    step=STEP_MS,
                    debounce=DEBOUNCE_MS,
                    stop_event=self._stop,
                    recursive=recursive,
                    force_polling=polling,
                    poll_delay_ms=self._poll_ms,
                    ignore_permission_denied=True,
                ):
                    self.root.notify_paths({p for _, p in changes})
                return
            except asyncio.CancelledError:
                raise
            except (OSError, RuntimeError) as exc:
                if polling:
                    log.warning("watching %s failed: %s", existing, exc)
                    self.root.index.notes["watch"] = (
                        f"watching stopped ({exc}); changes show after `octostore/sync`")
                    return
                polling = True
                self._fall_back(existing, str(exc))
                self.root.queue.put_nowait(("rescan", None))

    def _fall_back(self, paths: list[str], why: str) -> None:
        msg = (f"the system's inotify watch limit is too small for this tree ({why}); "
               f"polling every {self._poll_ms / 1000:g} s instead. Raise "
               "fs.inotify.max_user_watches (sysctl) to get instant updates back")
        log.warning(msg)
        self.root.index.notes["watch"] = msg
        for info in self.root.index.sources.values():
            if any(info.path == p or info.path.startswith(p + os.sep) for p in paths):
                info.watching = "polling"
                if msg not in info.watch_warnings:
                    info.watch_warnings.append(msg)


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
