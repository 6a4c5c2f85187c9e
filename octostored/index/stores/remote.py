"""A remote MLflow tracking server, read by its :class:`~octostored.sources.remote.RemoteSource`.

The source's poll loop reads the server (through an MLflow worker process) and delivers each
scan to the root's updater queue; :meth:`RemoteStore.take` turns it into the changes to apply:
a full scan replaces the server's runs, an incremental one is merged (a replace when runs or
experiments went away).  The store keeps the server's runs as of the last applied scan
(:attr:`RemoteStore.server_runs`; the index holds merged copies), so a full scan of the root
re-reads nothing from the server.  A failing server is a standing :attr:`~Store.note` while
every local store keeps serving.

Its snapshot state is the cursor of the last applied scan, taken before the index is packed,
so a restarted daemon resumes with an incremental sync and never trusts a cursor newer than the
runs it restored.  Daemons before issue 18 kept the cursors in a sidecar file beside the
snapshot (``root-<digest>.remote.json``): :func:`adopt_sidecar` takes them over once.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from ...model import Experiment, Run
from ...sources.remote import RemoteCursor, RemoteError, RemoteScan, RemoteSource, \
    env_seconds, policy_from_env
from .base import Delta, Store

if TYPE_CHECKING:
    import asyncio

    from ...sources.discover import StoreRef
    from ..history import HistoryCache
    from ..state import RootIndex

log = logging.getLogger(__name__)


class RemoteStore(Store):
    kind = "remote"
    watched = False  # polled by its source instead

    def __init__(self, ref: StoreRef) -> None:
        super().__init__(ref)
        self.remote: RemoteSource | None = None
        """The source, its worker and its poll loop (while started)."""
        self.remote_key: tuple[Any, ...] = ()
        """(URI, env) the source was made with; a change makes a new source."""
        self.server_runs: dict[str, Run] = {}
        """The server's runs as of the last applied scan (the index holds merged copies)."""
        self.server_exps: list[Experiment] = []
        self.applied_cursor: RemoteCursor | None = None
        """The cursor of the last applied scan (its snapshot state)."""

    # -- reading ---------------------------------------------------------------------------
    def full_scan(self, index: RootIndex) -> tuple[list[Run], list[Experiment], list[str]]:
        """What the last applied scan brought (the poll loop reads the server)."""
        return self._copies(self.server_runs.values()), list(self.server_exps), \
            list(self.warnings)

    def _copies(self, runs: Any) -> list[Run]:
        """Copies the index may stamp and merge (the kept records stay as the server sent)."""
        sid = self.ref.id
        out = []
        for r in runs:
            c = dataclasses.replace(r)
            c.source = sid
            c.sources = [sid]
            c.committed = False
            out.append(c)
        return out

    def take(self, payload: Any, index: RootIndex) -> Delta | None:
        src, scan = payload
        if src is not self.remote:
            return None  # remade meanwhile
        assert isinstance(scan, RemoteScan)
        self.warnings = list(scan.warnings)
        if not scan.ok:
            self.note = scan.warnings[-1] if scan.warnings else (
                f"the MLflow server {self.ref.id} could not be read")
            return Delta()
        self.note = None
        old_exps = {e.experiment_id for e in self.server_exps}
        scan.apply_to(self.server_runs)
        self.server_exps = list(scan.experiments)
        replace = scan.full or bool(scan.removed) or bool(
            old_exps - {e.experiment_id for e in self.server_exps})
        changed = self.server_runs.values() if replace else scan.runs
        return Delta(self._copies(changed), self.server_exps, full=replace, cursor=scan.cursor)

    def applied(self, delta: Delta) -> None:
        self.applied_cursor = delta.cursor
        self.last_read = time.time()

    def metric_history(self, run: Run, key: str,
                       cache: HistoryCache) -> tuple[list[Any], list[str]]:
        """Through the source (which caches it until a sync shows the latest value changed)."""
        src = self.remote
        if src is None:
            return [], [f"the MLflow server {run.source} is no longer a source of this root"]
        try:
            return src.metric_history_threadsafe(run.run_id, key), []
        except RemoteError as exc:
            return [], [str(exc)]
        except concurrent.futures.TimeoutError:
            return [], [f"the MLflow server {run.source} did not send the history of {key!r}"
                        " in time; try again"]

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, root: str, folder: str,
                    deliver: Callable[[Store, Any], None]) -> None:
        """Make (or, when its URI or credentials changed, remake) the source and start its
        poll loop; the first scan arrives on the queue."""
        ref = self.ref
        key = (ref.uri, ref.env)
        if self.remote is not None and self.remote_key == key:
            return
        await self.stop()
        sid = ref.id
        src = RemoteSource(ref.uri or sid, sid, folder, env=dict(ref.env),
                           policy=policy_from_env(), cursor=self.applied_cursor,
                           timeout=env_seconds("OCTOSTORE_REMOTE_TIMEOUT", 60.0))
        self.remote, self.remote_key = src, key
        src.start(lambda scan: deliver(self, (src, scan)))
        log.info("root %s: reading the MLflow server %s", root, sid)

    async def stop(self) -> None:
        src, self.remote, self.remote_key = self.remote, None, ()
        if src is not None:
            await src.close()

    def request_sync(self) -> asyncio.Future[Any] | None:
        src = self.remote
        if src is None or src._poll_task is None:
            return None
        return src.request_sync()

    def status(self, out: dict[str, Any]) -> None:
        if self.remote is not None:
            rs = self.remote.status()
            rs.pop("worker_pid", None)
            out.update(state=rs["state"], remote=rs)
            if rs["last_sync"] is not None:
                out["last_sync"] = rs["last_sync"]

    # -- snapshot ------------------------------------------------------------------------------
    def dump_state(self) -> dict[str, Any]:
        cur = self.applied_cursor
        return {"runs": {}, "cursor": None,
                "remote_cursor": None if cur is None else orjson.dumps(cur.to_row())}

    def load_state(self, row: dict[str, Any]) -> None:
        blob = row.get("remote_cursor")
        if blob:
            try:
                self._adopt(RemoteCursor.from_row(orjson.loads(blob)))
            except orjson.JSONDecodeError:
                pass

    def _adopt(self, cur: RemoteCursor | None) -> None:
        if cur is not None and cur.where == self.ref.id:
            self.applied_cursor = cur

    def restored(self, index: RootIndex) -> None:
        """The server's runs and experiments as the snapshot holds them (its cursor then
        resumes syncing from there)."""
        sid = self.ref.id
        self.server_runs = {rid: self._copies([r])[0]
                            for rid, r in index.runs.items() if sid in r.sources}
        self.server_exps = [e for e in index.experiments.values() if e.source == sid]


def adopt_sidecar(snapshot_path: str, root: str, stores: dict[str, Store]) -> None:
    """Take the cursors of the sidecar file that daemons before issue 18 wrote beside the
    snapshot (format 1) for servers whose snapshot row has none, and remove the file."""
    path = snapshot_path.removesuffix(".msgpack") + ".remote.json"
    try:
        with open(path, "rb") as f:
            data = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError):
        return
    if isinstance(data, dict) and data.get("format") == 1 and data.get("root") == root:
        for sid, row in (data.get("cursors") or {}).items():
            st = stores.get(sid)
            if isinstance(st, RemoteStore) and st.applied_cursor is None:
                st._adopt(RemoteCursor.from_row(row))
    try:
        os.unlink(path)
    except OSError:
        pass
