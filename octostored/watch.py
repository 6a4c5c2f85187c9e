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


class RootWatcher:
    def __init__(self, root: Root) -> None:
        self.root = root
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._paths: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())

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
            else:
                flat.add(os.path.dirname(st.ref.path))
        # A store inside .octostore is covered by the recursive watch on .octostore.
        recursive = {p for p in recursive if not any(
            p != q and p.startswith(q + os.sep) for q in recursive)}
        return tuple(sorted(recursive)), tuple(sorted(flat))

    async def start(self) -> None:
        await self.update_paths()

    async def update_paths(self) -> None:
        wanted = self._wanted()
        if wanted == self._paths and self._tasks:
            return
        await self.stop()
        self._stop = asyncio.Event()
        self._paths = wanted
        recursive, flat = wanted
        if recursive:
            # Decided before returning, so the root never answers "inotify" for a store that
            # is about to be polled.
            existing = [p for p in recursive if os.path.exists(p)]
            polling = False
            if existing:
                needed = await asyncio.to_thread(count_dirs, existing)
                limit = inotify_budget()
                if limit is not None and needed > limit:
                    polling = True
                    self._fall_back(existing, f"the tree needs {needed} watches and the system "
                                    f"allows octostore about {limit}")
            self._tasks.append(asyncio.create_task(self._watch(recursive, True, polling)))
        if flat:
            self._tasks.append(asyncio.create_task(self._watch(flat, False)))

    async def stop(self) -> None:
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
                async for changes in watchfiles.awatch(
                    *existing,
                    watch_filter=StoreFilter(),
                    step=STEP_MS,
                    debounce=DEBOUNCE_MS,
                    stop_event=self._stop,
                    recursive=recursive,
                    force_polling=polling,
                    poll_delay_ms=POLL_MS,
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
               f"polling every {POLL_MS / 1000:g} s instead. Raise fs.inotify.max_user_watches "
               "(sysctl) to get instant updates back")
        log.warning(msg)
        self.root.index.notes["watch"] = msg
        for info in self.root.index.sources.values():
            if any(info.path == p or info.path.startswith(p + os.sep) for p in paths):
                info.watching = "polling"
                if msg not in info.watch_warnings:
                    info.watch_warnings.append(msg)


def count_dirs(paths: list[str], stop_after: int = 10_000_000) -> int:
    """Directories under ``paths``: what inotify would spend one watch on each."""
    n = 0
    for top in paths:
        for _dirpath, dirnames, _files in os.walk(top):
            n += 1
            if n >= stop_after:
                return n
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
