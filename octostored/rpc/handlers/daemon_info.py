"""status, sync, open, subscribe, environment, shutdown."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from ... import __version__
from .. import protocol
from ..deadline import seconds_for, within
from ..params import Params
from ..register import method, rooted

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from ...index.root import Root
    from ...hub import Hub


HEAVY = ("mlflow", "pandas", "numpy", "sqlalchemy", "git")
"""Modules the daemon must not load on its own (checked by the tests through status)."""


def root_summary(root: Root) -> dict[str, Any]:
    """A root and its sources: each with ``kind``, ``runs``, ``last_sync`` (wall clock of its
    last read), ``warning`` (the first, or a server's standing one) and, for a tracking
    server, ``state`` and ``remote`` (:meth:`RemoteSource.status`)."""
    idx = root.index
    return {
        "root": root.path,
        "clock": idx.clock,
        "state": idx.state,
        "runs": len(idx.runs),
        "experiments": len(idx.experiments),
        "sources": [
            {"id": s.id, "kind": s.kind, "path": s.path, "committed": s.committed,
             "runs": s.runs, "warnings": s.warnings + s.watch_warnings, "watching": s.watching,
             **root.source_status(s.id)}
            for s in list(idx.sources.values())
        ],
        "warnings": idx.all_warnings(),
        # How deep stores were looked for: a root outside git with no store at its top is
        # searched only a folder or so deep (the CLI says so, and what to do).
        "search": {"depth": root.search.depth, "git": root.search.git,
                   "limited": root.search.limited} if root.search else None,
    }


def register(ls: LanguageServer, daemon: Hub) -> None:
    @method(ls, "octostore/status")
    def status(ls: LanguageServer, params: Any) -> dict[str, Any]:
        Params("octostore/status", params)
        return {
            "protocol_version": protocol.PROTOCOL_VERSION,
            "capabilities": [f"cmd-{m}" for m in protocol.METHODS],
            "version": __version__,
            "pid": os.getpid(),
            "instance": daemon.instance,
            "uptime": time.time() - daemon.started,
            "clients": len(daemon.connections),
            "roots": [root_summary(r) for r in daemon.roots.values()],
            "heavy_modules": sorted(m for m in HEAVY if m in sys.modules),
        }

    @method(ls, "octostore/open")  # opens its root within the deadline, itself
    async def open_(ls: LanguageServer, params: Any) -> dict[str, Any]:
        p = Params("octostore/open", params)
        root = await within(daemon.root(p.str("root", required=True)),
                            seconds_for("octostore/open"), "octostore/open")
        return root_summary(root)

    @rooted(ls, daemon, "octostore/sync")
    async def sync(ls: LanguageServer, p: Params, root: Root) -> dict[str, Any]:
        await root.sync()
        return {"root": root.path, "clock": root.index.clock}

    @rooted(ls, daemon, "octostore/subscribe")
    async def subscribe(ls: LanguageServer, p: Params, root: Root) -> dict[str, Any]:
        name = p.str("name", "default")
        daemon.subscriptions.setdefault(ls, {})[root.path] = {"name": name}
        since = p.str("since")
        tick = root.index.parse_clock(since)
        return {"root": root.path, "subscription": name, "clock": root.index.clock,
                "is_fresh_instance": since is not None and tick is None}

    @rooted(ls, daemon, "octostore/unsubscribe")
    async def unsubscribe(ls: LanguageServer, p: Params, root: Root) -> dict[str, Any]:
        removed = daemon.subscriptions.get(ls, {}).pop(root.path, None) is not None
        return {"root": root.path, "removed": removed}

    @rooted(ls, daemon, "octostore/environment")
    async def environment(ls: LanguageServer, p: Params, root: Root) -> dict[str, Any]:
        from ...envfiles import environment_summary

        # Env files are read without blocking and within a cap (a FIFO or a huge file is a
        # warning in its record); the deadline is the second wall.
        summary = await within(asyncio.to_thread(environment_summary, root.path),
                               seconds_for("octostore/environment"), "octostore/environment")
        return {"root": root.path, "clock": root.index.clock, **summary}

    @method(ls, "octostore/shutdown")
    def shutdown(ls: LanguageServer, params: Any) -> dict[str, Any]:
        asyncio.get_running_loop().call_later(0.05, daemon.stop_event.set)
        return {"stopping": True, "pid": os.getpid()}
