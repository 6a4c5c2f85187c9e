"""The daemon's state, in one owner: open roots, connections, subscriptions, jobs.

Everything the connections share lives here, not in the socket layer: the roots (opened on
first use, closed when idle), the connections and what each subscribed to, the job registry
(created here, shut down here) and the listeners of root changes.  Every notification a
client gets goes through :meth:`Hub.publish`: changes of a root, job progress, commit
progress.  The socket layer (:mod:`.rpc.server`) only adds and removes connections; the
language server listens to changes (:meth:`Hub.listen`) instead of polling clocks.

The hub runs on the event loop: handlers read it there without locks.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .index.root import Root
from .index.state import Changes
from .paths import repo_top
from .rpc import protocol
from .rpc.errors import RootNotFound, TooManyRoots

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from .jobs import JobRegistry

log = logging.getLogger("octostored.hub")

MAX_ROOTS_PER_CONNECTION = int(os.environ.get("OCTOSTORE_MAX_ROOTS_PER_CONNECTION", "32"))
"""Distinct roots one connection may name; the next one is answered 1011."""
ROOT_IDLE_SECONDS = 30 * 60
"""A root no client asked about for this long is closed."""
RESOLVE_TTL = 1.0
"""Seconds a root path's resolution is reused (a moved or deleted repo shows within it)."""

CONNECTION: contextvars.ContextVar[Any] = contextvars.ContextVar("octostore_connection")
"""The connection (its protocol) a handler serves: set in each connection's task, so every
handler task it starts inherits it."""

ChangeListener = Callable[[Root, Changes], None]
"""Called on the loop with each change of an open root (after its clock moved)."""


class Hub:
    """State shared by every connection: open roots, connections, subscriptions, jobs."""

    def __init__(self, cache_dir: str) -> None:
        from .jobs import JobRegistry

        self.started = time.time()
        self.instance = f"{int(self.started * 1000):x}-{os.getpid()}"
        self.cache_dir = cache_dir
        self.roots: dict[str, Root] = {}
        self.connections: set[LanguageServer] = set()
        self.subscriptions: dict[LanguageServer, dict[str, dict[str, Any]]] = {}
        """Per connection: root path -> its subscription (``name``, ...)."""
        self.conn_roots: dict[Any, set[str]] = {}
        """Per connection: the roots it named (at most MAX_ROOTS_PER_CONNECTION)."""
        self.stop_event = asyncio.Event()
        self.jobs: JobRegistry = JobRegistry(self, os.path.join(cache_dir, "jobs"))
        self._listeners: list[tuple[Any, ChangeListener]] = []
        """(owner, listener): a connection's listeners go with it."""
        self._closed_listeners: set[Callable[[str], None]] = set()
        self._resolved: dict[str, tuple[float, str]] = {}
        """Root path as given -> (until, the repo's real top folder): every request names its
        root, and resolving it (realpath, the walk up to .git) was 10% of a busy daemon."""
        from .index.snapshot import remove_leftovers

        remove_leftovers(cache_dir)  # half-written snapshots of a daemon killed mid-write

    # -- roots ----------------------------------------------------------------------------
    async def root(self, path: str | None) -> Root:
        """The open root for ``path`` (opened on first use)."""
        if not path:
            raise RootNotFound("no root was given", 'pass "root": the path of your repo')
        if "\x00" in path:
            raise RootNotFound("the root path contains a NUL byte", "pass the folder of your repo as root")
        now = time.monotonic()
        hit = self._resolved.get(path)
        if hit is not None and hit[0] > now:
            real = hit[1]
        else:
            real = os.path.realpath(os.path.expanduser(path))
            if not os.path.isdir(real):
                what = "is a file" if os.path.exists(real) else "does not exist"
                raise RootNotFound(f"{path} {what}", "pass the folder of your repo as root")
            real = repo_top(real)
            if len(self._resolved) >= 256:
                self._resolved.clear()
            self._resolved[path] = (now + RESOLVE_TTL, real)
        conn = CONNECTION.get(None)
        if conn is not None:
            named = self.conn_roots.setdefault(conn, set())
            if real not in named:
                if len(named) >= MAX_ROOTS_PER_CONNECTION:
                    raise TooManyRoots(
                        f"this connection has already opened {len(named)} roots, the most one "
                        "connection may", "close roots you are done with by opening a new "
                        "connection for the next ones", limit=MAX_ROOTS_PER_CONNECTION)
                named.add(real)
        root = self.roots.get(real)
        if root is None:
            root = Root(real, self.instance, self.cache_dir, self._on_change)
            self.roots[real] = root
            await root.open()
        root.last_used = time.monotonic()
        await root.ready.wait()
        return root

    async def close_idle_roots(self) -> None:
        while True:
            await asyncio.sleep(60)
            now = time.monotonic()
            watched = {r for subs in self.subscriptions.values() for r in subs}
            for path, root in list(self.roots.items()):
                if path not in watched and now - root.last_used > ROOT_IDLE_SECONDS:
                    del self.roots[path]
                    await self._close_root(root)

    async def _close_root(self, root: Root) -> None:
        await root.close()
        for fn in list(self._closed_listeners):
            try:
                fn(root.path)
            except Exception:  # noqa: BLE001 - one listener must not stop the others
                log.debug("a root-closed listener failed", exc_info=True)

    async def close(self) -> None:
        """Stop: cancel running jobs (and wait for their cleanup), close every root."""
        await self.jobs.shutdown()
        for root in list(self.roots.values()):
            await self._close_root(root)
        self.roots.clear()

    # -- listeners ------------------------------------------------------------------------
    def listen(self, fn: ChangeListener, owner: Any = None) -> None:
        """Call ``fn(root, changes)`` on every change of an open root, until ``owner`` (a
        connection) disconnects; with no owner, for the hub's life."""
        self._listeners.append((owner, fn))

    def on_root_closed(self, fn: Callable[[str], None]) -> None:
        """Call ``fn(root_path)`` when a root is closed (caches kept per root drop it)."""
        self._closed_listeners.add(fn)

    def _on_change(self, root: Root, changes: Changes) -> None:
        payload = {
            "root": root.path,
            "clock": changes.clock,
            "runs": changes.runs,
            "removed": changes.removed,
            "experiments": changes.experiments,
            "environment": changes.environment,
            "git": changes.git,
        }
        for ls, subs in list(self.subscriptions.items()):
            sub = subs.get(root.path)
            if sub is not None:
                self.publish(protocol.NOTIFICATION_CHANGED, {**payload, "subscription": sub["name"]},
                             to=(ls,))
        for _owner, fn in list(self._listeners):
            try:
                fn(root, changes)
            except Exception:  # noqa: BLE001 - one listener must not stop the others
                log.debug("a change listener failed", exc_info=True)

    # -- connections and notifications ----------------------------------------------------
    def connect(self, ls: LanguageServer) -> None:
        self.connections.add(ls)

    def disconnect(self, ls: LanguageServer) -> None:
        self.connections.discard(ls)
        self.subscriptions.pop(ls, None)
        self.conn_roots.pop(ls.protocol, None)
        self._listeners = [(o, fn) for o, fn in self._listeners if o is not ls]

    def subscribers(self, root_path: str) -> set[LanguageServer]:
        """The live connections subscribed to ``root_path``."""
        return {ls for ls, subs in self.subscriptions.items()
                if root_path in subs and ls in self.connections}

    def publish(self, method: str, payload: Any, *, to: Iterable[LanguageServer] = (),
                root: str | None = None) -> None:
        """Send notification ``method`` to the connections ``to`` and, with ``root``, to
        every connection subscribed to that root (each once).  A connection that went away
        is skipped: no producer ever fails on a dead client."""
        targets = {ls for ls in to if ls in self.connections}
        if root is not None:
            targets |= self.subscribers(root)
        for ls in targets:
            try:
                ls.protocol.notify(method, payload)
            except Exception:  # noqa: BLE001 - a dead connection must not stop the others
                log.debug("notification %s failed", method, exc_info=True)
