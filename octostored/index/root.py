"""One open root: its stores, its index, its watcher and its updater task.

The updater is the only writer of the root's :class:`RootIndex`.  It runs on
the event loop and takes work from one queue: paths reported by the watcher,
``verify`` requests (``octostore/sync``, warm start) and reopen requests.
Disk reads happen in a worker thread and produce fresh records; applying them
is a few dict assignments on the loop, so handlers always see a consistent
index without locks.  Bursts coalesce: everything queued while a batch is
read is applied as the next single batch (one clock tick, one notification).

A tracking server (a ``remote`` store) is polled by its
:class:`~octostored.sources.remote.RemoteSource`, whose poll loop puts each scan on
the same queue; the updater keeps the server's runs as of the last applied scan
(``StoreState.server_runs``) and applies a full scan with replace, an incremental
one as a merge.  A failing server is a standing note on the index (``notes``) while
every local store keeps serving.  The cursor of the last applied scan is saved in a
small sidecar file beside the snapshot (:func:`save_remote_cursors`), written after
the snapshot from cursors taken before it, so a restarted daemon resumes with an
incremental sync and never trusts a cursor newer than the runs it restored.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..atomicfile import atomic_write
from ..gitops.git import head_run_ids
from ..model import Experiment, Run
from ..safefile import SMALL_CAP, read_text
from ..sources import filestore
from ..sources.discover import (COMMITTED_STORE, CONFIG_FILES, Search, StoreRef, config_signature,
                                discover, search_depth)
from ..sources.remote import RemoteCursor, RemoteError, RemoteScan, RemoteSource, \
    env_seconds, policy_from_env
from .history import HistoryCache
from .snapshot import SNAP_PREFIX, load_snapshot, save_snapshot
from .state import Changes, RootIndex, SourceInfo, experiment_key, merge_runs

log = logging.getLogger(__name__)

SNAPSHOT_INTERVAL = 30.0
"""Seconds between snapshot writes while changes keep coming (a write re-packs the index)."""
REMOTE_SYNC_WAIT = 45.0
"""Longest :meth:`Root.sync` waits for a server's sync (``OCTOSTORE_REMOTE_SYNC_WAIT``); a
slower server is still syncing afterwards and its status says so."""


@dataclass
class StoreState:
    ref: StoreRef
    runs: dict[str, filestore.RunState] = field(default_factory=dict)
    """File stores: per-run signature and metric offsets."""
    cursor: object = None
    """SQLite stores: the reader's change cursor."""
    warnings: list[str] = field(default_factory=list)
    """SQLite stores: the warnings of the last read that learned something (schema, ...).
    Servers: the warnings of the last scan."""
    last_read: float | None = None
    """Wall clock of the last read of the store (a server: of the last applied scan)."""
    remote: RemoteSource | None = None
    """Servers: the source, its worker and its poll loop."""
    remote_key: tuple[Any, ...] = ()
    """Servers: (URI, env) the source was made with; a change makes a new source."""
    server_runs: dict[str, Run] = field(default_factory=dict)
    """Servers: their runs as of the last applied scan (the index holds merged copies)."""
    server_exps: list[Experiment] = field(default_factory=list)
    applied_cursor: RemoteCursor | None = None
    """Servers: the cursor of the last applied scan (what the sidecar file keeps)."""
    stale: str = ""
    """SQLite stores: why the last read failed when the database cannot be read at all (its
    runs are served as its last known state, each with :func:`stale_warning`); "" once it
    reads again."""


class _RootHistory(HistoryCache):
    """Local histories as :class:`HistoryCache` reads them; a server's through its source
    (which caches them until a sync shows the metric's latest value changed)."""

    def __init__(self, root: Root) -> None:
        super().__init__()
        self._root = root

    def get(self, run: Run, key: str, store_kind: str) -> tuple[list[Any], list[str]]:
        if store_kind != "remote":
            return super().get(run, key, store_kind)
        st = self._root.stores.get(run.source)
        src = st.remote if st is not None else None
        if src is None:
            return [], [f"the MLflow server {run.source} is no longer a source of this root"]
        try:
            return src.metric_history_threadsafe(run.run_id, key), []
        except RemoteError as exc:
            return [], [str(exc)]
        except concurrent.futures.TimeoutError:
            return [], [f"the MLflow server {run.source} did not send the history of {key!r}"
                        " in time; try again"]


class Root:
    def __init__(
        self,
        path: str,
        instance: str,
        cache_dir: str,
        on_change: Callable[[Root, Changes], None],
    ) -> None:
        self.path = path
        self.index = RootIndex(path, instance)
        self.cache_dir = cache_dir
        self.on_change = on_change
        self.stores: dict[str, StoreState] = {}
        self.history: HistoryCache = _RootHistory(self)
        self.queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self.ready = asyncio.Event()
        self.last_used = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._watcher: object | None = None
        self._snapshot_due = 0.0
        self._dirty = False
        self._scanned = asyncio.Event()
        """Set once the first full scan is done (servers' sources are started by it)."""
        self._config: tuple[Any, ...] = ()
        self.search: Search | None = None
        """How deep the last discovery looked for stores, and why (for the CLI to say)."""
        """What the configuration said at the last discovery (see ``config_signature``)."""

    # -- lifecycle ----------------------------------------------------------------------
    async def open(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"updater:{self.path}")

    async def close(self) -> None:
        if self._watcher is not None:
            await self._watcher.stop()  # type: ignore[attr-defined]
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        for st in list(self.stores.values()):
            await self._stop_remote(st)
        if self._dirty:
            await asyncio.to_thread(self._save_snapshot)

    async def sync(self, remote: bool = True) -> None:
        """Return once every change on disk before this call is in the index.

        With ``remote`` (the default) each server is asked for a sync first, and waited for
        up to ``OCTOSTORE_REMOTE_SYNC_WAIT`` seconds (a failed sync is a note, not an error).
        """
        await self.ready.wait()
        if remote:
            await self._scanned.wait()
            if await asyncio.to_thread(config_signature, self.path) != self._config:
                await self._verify()  # a server named since the last discovery: start it
            futs = [st.remote.request_sync() for st in list(self.stores.values())
                    if st.remote is not None and st.remote._poll_task is not None]
            if futs:
                wait = env_seconds("OCTOSTORE_REMOTE_SYNC_WAIT", REMOTE_SYNC_WAIT)
                done, pending = await asyncio.wait(futs, timeout=wait)
                for f in pending:
                    f.cancel()
        await self._verify()

    async def _verify(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.queue.put(("verify", fut))
        await fut

    def notify_paths(self, paths: set[str]) -> None:
        self.queue.put_nowait(("paths", paths))

    # -- the updater --------------------------------------------------------------------
    async def _run(self) -> None:
        from ..watch import RootWatcher  # imported with the first root

        try:
            loaded = await asyncio.to_thread(self._load_snapshot)
            for sid, st in self.stores.items():  # answer with the snapshot's sources at once
                self.index.sources.setdefault(
                    sid, SourceInfo(sid, st.ref.kind, st.ref.path, st.ref.committed))
                if st.ref.kind == "remote":
                    self._restore_server_runs(st)
            self.index._count_sources()
            # Environment and git changes made before the watch is armed are found by
            # comparing stamps taken now with stamps taken after it.
            side = await asyncio.to_thread(side_stamps, self.path)
            if not loaded:
                # Cold: read everything before watching.  Every file opened under watchfiles'
                # recursive inotify watch queues an event its thread must drain (~0.7 ms of
                # CPU per run, a third of the cold index), so the scan runs unwatched and the
                # root answers from it like from a snapshot; the verify scan below arms the
                # watch first, then re-reads only runs whose files changed meanwhile.
                await self._full_scan()
            self._watcher = RootWatcher(self)
            await self._watcher.start()  # type: ignore[attr-defined]
            if self.index.runs:
                self.index.state = "verifying"
                self.ready.set()
            await self._full_scan()
            after = await asyncio.to_thread(side_stamps, self.path)
            if after != side:
                self._changed(self.index.apply({}, {}, environment=after[0] != side[0],
                                               git=after[1] != side[1]))
            self.index.state = "ready"
            self.ready.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed first scan leaves an empty index, not a dead root
            log.exception("indexing %s failed", self.path)
            self.index.notes["updater"] = f"indexing failed: {exc}; see `octostore daemon logs`"
            self.index.state = "failed"
            self.ready.set()
            if self._watcher is None:  # the next change must still reach the updater
                try:
                    self._watcher = RootWatcher(self)
                    await self._watcher.start()  # type: ignore[attr-defined]
                except Exception:
                    log.exception("watching %s failed", self.path)
        self._scanned.set()
        while True:
            kind, payload = await self.queue.get()
            items = [(kind, payload)]
            while not self.queue.empty():
                items.append(self.queue.get_nowait())
            try:
                await self._process(items)
                if self.index.state == "failed":
                    self.index.state = "ready"
                    self.index.notes.pop("updater", None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad batch costs a warning, never the updater
                log.exception("applying changes to %s failed", self.path)
                self.index.notes["updater"] = f"an update failed: {exc}; the next change retries"

    async def _process(self, items: list[tuple[str, object]]) -> None:
        scans = [p for k, p in items if k == "remote"]
        if scans:  # before a full scan of the same batch, which then includes them
            self._apply_remote(scans)  # type: ignore[arg-type]
        waiters = [p for k, p in items if k == "verify"]
        paths: set[str] = set()
        for k, p in items:
            if k == "paths":
                paths |= p  # type: ignore[arg-type]
        try:
            if waiters or any(k == "rescan" for k, _ in items):
                if waiters:
                    # Let the watcher hand over what the kernel already reported.
                    await asyncio.sleep(0.03)
                    while not self.queue.empty():
                        k, p = self.queue.get_nowait()
                        if k == "verify":
                            waiters.append(p)
                await self._full_scan()
            elif paths:
                await self._apply_paths(paths)
        finally:
            for fut in waiters:
                if not fut.done():  # type: ignore[attr-defined]
                    fut.set_result(None)  # type: ignore[attr-defined]

    async def _full_scan(self, environment: bool = False, git: bool = False) -> None:
        self._config = await asyncio.to_thread(config_signature, self.path)
        refs, warnings = await asyncio.to_thread(discover, self.path)
        self.search = await asyncio.to_thread(search_depth, self.path)
        # A database that became a folder or a FIFO is no store to discovery, but its runs
        # stay, marked as its last known state, until the path is gone or a file again.
        refs += [st.ref for sid, st in self.stores.items()
                 if st.ref.kind == "sqlite" and sid not in {r.id for r in refs}
                 and _special(st.ref.path)]
        known = {r.id for r in refs}
        for sid in list(self.stores):
            if sid not in known:
                await self._stop_remote(self.stores.pop(sid))
                self.index.sources.pop(sid, None)
                self.index.notes.pop(_note_key(sid), None)
        for ref in refs:
            if ref.id not in self.stores or self.stores[ref.id].ref.kind != ref.kind:
                old = self.stores.get(ref.id)
                if old is not None:
                    await self._stop_remote(old)
                self.stores[ref.id] = StoreState(ref)
            self.stores[ref.id].ref = ref
            if ref.id not in self.index.sources:
                self.index.sources[ref.id] = SourceInfo(ref.id, ref.kind, ref.path, ref.committed)
            if ref.kind == "remote":
                self.index.sources[ref.id].watching = "off"  # polled by its source instead
        if self._watcher is not None:
            await self._watcher.update_paths()  # type: ignore[attr-defined]
        results = await asyncio.to_thread(self._read_all)
        runs: dict[str, Run] = {}
        exps: dict[str, Experiment] = {}
        now = time.time()
        for sid, (store_runs, store_exps, store_warnings) in results.items():
            self.index.sources[sid].warnings = store_warnings
            self._merge_into(runs, exps, store_runs, store_exps)
            if self.stores[sid].ref.kind != "remote":
                self.stores[sid].last_read = now
        self.index.warnings = warnings
        vanished = set(self.index.sources) | {
            s for r in self.index.runs.values() for s in r.sources
        }
        changes = self.index.apply(runs, exps, replace_sources=vanished,
                                   environment=environment, git=git)
        self._changed(changes)
        self._changed(self.index.set_head_runs(await asyncio.to_thread(head_run_ids, self.path)))
        for st in list(self.stores.values()):
            if st.ref.kind == "remote":
                await self._start_remote(st)

    def _merge_into(
        self,
        runs: dict[str, Run],
        exps: dict[str, Experiment],
        store_runs: list[Run],
        store_exps: list[Experiment],
    ) -> None:
        keys: dict[tuple[str, str], str] = {}
        committed = {sid for sid, st in self.stores.items() if st.ref.committed}
        taken = {**self.index.experiments, **exps}
        for exp in store_exps:
            key = experiment_key(exp, taken, committed)
            exp.key = key
            keys[(exp.source, exp.experiment_id)] = key
            prev = exps.get(key)
            # The live store's record wins over the committed mirror of the same experiment.
            if prev is None or prev.source == exp.source or prev.source in committed:
                exps[key] = exp
            taken.setdefault(key, exp)
        for run in store_runs:
            run.experiment_key = keys.get((run.source, run.experiment_id), run.experiment_id)
            old = runs.get(run.run_id)
            if old is not None:
                run = merge_runs(old, run)
            runs[run.run_id] = run

    def _read_all(self) -> dict[str, tuple[list[Run], list[Experiment], list[str]]]:
        out = {}
        enabled = gc.isenabled()
        gc.disable()  # a scan allocates millions of small objects: ~20% faster without GC passes
        try:
            for sid, st in list(self.stores.items()):
                out[sid] = self._read_store(st)
        finally:
            if enabled:
                gc.enable()
        return out

    def _read_store(self, st: StoreState) -> tuple[list[Run], list[Experiment], list[str]]:
        ref = st.ref
        if ref.kind == "remote":  # what the last applied scan brought (the poll loop reads)
            return self._server_copies(st, st.server_runs.values()), list(st.server_exps), \
                list(st.warnings)
        if ref.kind == "file":
            scan = filestore.scan_store(ref.path, ref.id, st.runs, reuse=self._reusable(ref.id))
            st.runs = scan.states
            runs, exps, warnings = scan.runs, scan.experiments, scan.warnings
        else:
            runs, exps, warnings = self._read_sqlite(st)
            warnings = [w if ref.id in w else f"{ref.id}: {w}" for w in warnings]
        for run in runs:
            run.sources = [ref.id]
            run.committed = ref.committed
        return runs, exps, warnings

    def _read_sqlite(self, st: StoreState) -> tuple[list[Run], list[Experiment], list[str]]:
        """Every run and experiment of a SQLite store, reading only what changed.

        A database that cannot be read at all (made a folder or a FIFO, truncated, corrupt)
        keeps its last known runs, each marked with :func:`stale_warning`, and the source says
        so; the marks go when it reads again."""
        from ..sources import sqlitestore

        ref = st.ref
        known = {rid: r for rid, r in self.index.runs.items() if ref.id in r.sources}
        known_exps = [e for e in self.index.experiments.values() if e.source == ref.id]
        cursor = st.cursor if isinstance(st.cursor, sqlitestore.SqliteCursor) else None
        if (cursor is not None and known and not st.stale
                and sqlitestore.fingerprint(ref.path) == cursor.fingerprint):
            return _fresh(known.values(), ref.id), known_exps, list(st.warnings)
        scan, new_cursor = sqlitestore.read_changed(ref.path, ref.id, cursor)
        warnings = list(scan.warnings)
        if not scan.full and not scan.experiments and not scan.runs and warnings:
            # The read failed: keep what we have, retry on the next change.  Locked for a
            # moment, the runs are current; unreadable, they are its last known state.
            st.stale = scan.unreadable
            if scan.unreadable:
                if known:  # first, so that status shows it as the source's warning
                    warnings.insert(0, stale_warning(ref.id, scan.unreadable))
                return _marked(known.values(), ref.id, scan.unreadable), known_exps, warnings
            return _fresh(known.values(), ref.id), known_exps, warnings
        st.stale = ""
        st.cursor = new_cursor
        st.warnings = warnings
        if scan.full:
            return scan.runs, scan.experiments, warnings
        merged = {r.run_id: r for r in _fresh(known.values(), ref.id) if r.run_id not in scan.removed}
        for run in scan.runs:
            merged[run.run_id] = run
        return list(merged.values()), scan.experiments or known_exps, warnings

    def _reusable(self, source_id: str) -> dict[str, Run]:
        return {rid: r for rid, r in self.index.runs.items() if r.source == source_id}

    async def _apply_paths(self, paths: set[str]) -> None:
        plan = self._plan(paths)
        if plan is None:
            from ..envfiles import is_env_file

            rels = [os.path.relpath(p, self.path) for p in paths]
            await self._full_scan(
                environment=any(is_env_file(r) for r in rels),
                git=any(r == ".git" or r.startswith(".git" + os.sep) for r in rels))
            return
        run_dirs, sqlite_ids, env, git = plan
        runs: dict[str, Run] = {}
        exps: dict[str, Experiment] = {}
        replace: set[str] = set()
        left: dict[str, list[str]] = {}
        if run_dirs or sqlite_ids:
            source_warnings: dict[str, list[str]] = {}
            results = await asyncio.to_thread(self._read_some, run_dirs, sqlite_ids,
                                              source_warnings)
            for sid, warnings in source_warnings.items():
                if sid in self.index.sources:
                    self.index.sources[sid].warnings = warnings
            for sid, (store_runs, store_exps, removed_all, removed_ids) in results.items():
                self._merge_into(runs, exps, store_runs, store_exps)
                if removed_all:
                    replace.add(sid)
                if removed_ids:
                    left[sid] = removed_ids
            gone = [rid for rid in self._runs_in_dirs(run_dirs) if rid not in runs]
            for rid in gone:
                old = self.index.runs.get(rid)
                if old is not None:
                    replace.add(old.source)
            if gone:
                # A run folder vanished: re-list that store so its runs can be removed.
                await self._full_scan()
                return
        changes = self.index.apply(runs, exps, replace or None, removed=left, environment=env,
                                   git=git)
        self._changed(changes)
        if git:  # a checkout, reset or commit: `committed` follows HEAD (issue 16, item 6)
            self._changed(self.index.set_head_runs(await asyncio.to_thread(head_run_ids, self.path)))

    def _runs_in_dirs(self, run_dirs: dict[str, set[str]]) -> list[str]:
        return [os.path.basename(d) for dirs in run_dirs.values() for d in dirs]

    def _plan(
        self, paths: set[str]
    ) -> tuple[dict[str, set[str]], set[str], bool, bool] | None:
        """Map changed paths to the runs they touch; None means rescan everything."""
        run_dirs: dict[str, set[str]] = {}
        sqlite_ids: set[str] = set()
        env = git = False
        from ..envfiles import is_env_file

        for path in paths:
            rel_root = os.path.relpath(path, self.path)
            if rel_root.startswith(".git" + os.sep) or rel_root == ".git":
                git = True
                continue
            if (rel_root in CONFIG_FILES or rel_root == ".octostore") and (
                    config_signature(self.path) != self._config):
                return None  # the configuration names other stores or servers
            for sid, st in self.stores.items():
                ref = st.ref
                if ref.kind == "remote":
                    continue
                if ref.kind == "sqlite":
                    if path.startswith(ref.path):
                        if not os.path.exists(ref.path):
                            return None  # the database was deleted or moved: re-discover
                        sqlite_ids.add(sid)
                        break  # else the for-else below takes mlflow.db for a new store
                    continue
                if not path.startswith(ref.path + os.sep):
                    continue
                parts = os.path.relpath(path, ref.path).split(os.sep)
                if parts[0] == filestore.TRASH:
                    parts = parts[1:]
                    base = os.path.join(ref.path, filestore.TRASH)
                else:
                    base = ref.path
                if len(parts) < 2 or parts[1] == "meta.yaml" or parts[1] in (
                    filestore.RESERVED_EXPERIMENT_FOLDERS
                ):
                    if len(parts) >= 2 and parts[1] in ("datasets", "models", "traces"):
                        break
                    return None  # an experiment changed: re-list the store
                run_dirs.setdefault(sid, set()).add(os.path.join(base, parts[0], parts[1]))
                break
            else:
                if is_env_file(rel_root):
                    env = True
                elif os.path.basename(path) in ("mlflow.db", "mlruns.db", "mlruns") or (
                        rel_root.startswith(COMMITTED_STORE + os.sep)):
                    return None  # a new store appeared (a `git pull` may bring committed runs)
        return run_dirs, sqlite_ids, env, git

    def _read_some(
        self, run_dirs: dict[str, set[str]], sqlite_ids: set[str],
        source_warnings: dict[str, list[str]],
    ) -> dict[str, tuple[list[Run], list[Experiment], bool, list[str]]]:
        """What changed in these run folders and SQLite stores: per store (runs, experiments,
        whether they are all of the store's runs, ids of runs that left it).  The new warnings
        of SQLite stores whose read says something new go into ``source_warnings``."""
        out: dict[str, tuple[list[Run], list[Experiment], bool, list[str]]] = {}
        for sid, dirs in run_dirs.items():
            st = self.stores[sid]
            st.last_read = time.time()
            runs: list[Run] = []
            exps: list[Experiment] = []
            for run_dir in dirs:
                exp_dir = os.path.dirname(run_dir)
                label = os.path.relpath(exp_dir, st.ref.path)
                exp = filestore.read_experiment(exp_dir, label.replace(os.sep, "/"), sid)
                if exp is None or not os.path.isdir(run_dir):
                    continue
                rid = os.path.basename(run_dir)
                run, state = filestore.read_run(run_dir, exp, sid, st.runs.get(rid))
                if run is None:
                    continue
                run.sources = [sid]
                run.committed = st.ref.committed
                st.runs[run.run_id] = state
                self.history.invalidate_run(run.run_id)
                runs.append(run)
                exps.append(exp)
            out[sid] = (runs, exps, False, [])
        for sid in sqlite_ids:
            st = self.stores[sid]
            st.last_read = time.time()
            runs_, exps_, removed_ids, full, warnings = self._read_sqlite_changes(st)
            for r in runs_:
                r.sources = [sid]
                r.committed = st.ref.committed
                self.history.invalidate_run(r.run_id)
            for rid in removed_ids:
                self.history.invalidate_run(rid)
            out[sid] = (runs_, exps_, full, removed_ids)
            if warnings is not None:
                source_warnings[sid] = warnings
        return out

    def _read_sqlite_changes(
        self, st: StoreState
    ) -> tuple[list[Run], list[Experiment], list[str], bool, list[str] | None]:
        """Only what changed in a SQLite store since the last read: (runs, experiments, ids of
        removed runs, whether the runs are all of the store's, the source's warnings or None
        when unchanged).  Nothing is copied: a ``log_metric`` on one run of 10,000 costs that
        run, not the store."""
        from ..sources import sqlitestore

        ref = st.ref
        cursor = st.cursor if isinstance(st.cursor, sqlitestore.SqliteCursor) else None
        if cursor is None or st.stale:  # never read, or unreadable until now: all of it
            runs, exps, warnings = self._read_store(st)
            return runs, exps, [], True, warnings
        if sqlitestore.fingerprint(ref.path) == cursor.fingerprint:
            return [], [], [], False, None
        scan, new_cursor = sqlitestore.read_changed(ref.path, ref.id, cursor)
        if not scan.full and not scan.experiments and not scan.runs and scan.warnings:
            if scan.unreadable:  # its runs become its last known state, marked so
                runs, exps, warnings = self._read_store(st)
                return runs, exps, [], True, warnings
            return [], [], [], False, None  # locked for a moment: the next change retries
        st.cursor = new_cursor
        st.warnings = list(scan.warnings)
        return scan.runs, scan.experiments, list(scan.removed), scan.full, \
            [w if ref.id in w else f"{ref.id}: {w}" for w in scan.warnings]

    # -- notifications and snapshot -------------------------------------------------------
    def _changed(self, changes: Changes | None) -> None:
        if changes is None:
            return
        self._dirty = True
        self.on_change(self, changes)
        now = time.monotonic()
        if now >= self._snapshot_due:
            self._snapshot_due = now + SNAPSHOT_INTERVAL
            asyncio.get_running_loop().run_in_executor(None, self._save_snapshot)

    def snapshot_path(self) -> str:
        import hashlib

        digest = hashlib.sha256(self.path.encode()).hexdigest()[:16]
        return os.path.join(self.cache_dir, f"root-{digest}.msgpack")

    def _save_snapshot(self) -> None:
        # The cursors first: one taken before the index is packed is never newer than it
        # (the updater sets ``applied_cursor`` after applying its scan).
        cursors = {sid: st.applied_cursor for sid, st in list(self.stores.items())
                   if st.ref.kind == "remote" and st.applied_cursor is not None}
        try:
            save_snapshot(self.snapshot_path(), self.index, self.stores)
            save_remote_cursors(self.remote_cursor_path(), self.path, cursors)
            self._dirty = False
            self.index.notes.pop("snapshot", None)
        except OSError as exc:
            self.index.notes["snapshot"] = (
                f"cannot write the index snapshot in {self.cache_dir} ({exc.strerror}); "
                "everything still works, but a restart will re-read the stores")

    def _load_snapshot(self) -> bool:
        loaded = load_snapshot(self.snapshot_path(), self.index, self.stores, StoreState)
        if loaded:
            cursors = load_remote_cursors(self.remote_cursor_path(), self.path)
            for sid, st in self.stores.items():
                cur = cursors.get(sid)
                if st.ref.kind == "remote" and cur is not None and cur.where == sid:
                    st.applied_cursor = cur
        return loaded

    def remote_cursor_path(self) -> str:
        return self.snapshot_path().removesuffix(".msgpack") + ".remote.json"

    # -- servers ------------------------------------------------------------------------------
    async def _start_remote(self, st: StoreState) -> None:
        """Make (or, when its URI or credentials changed, remake) a server's source and start
        its poll loop; the first scan arrives on the queue."""
        key = (st.ref.uri, st.ref.env)
        if st.remote is not None and st.remote_key == key:
            return
        await self._stop_remote(st)
        sid = st.ref.id
        folder = os.path.join(self.cache_dir, "remote", _digest(self.path + "\0" + sid))
        src = RemoteSource(st.ref.uri or sid, sid, folder, env=dict(st.ref.env),
                           policy=policy_from_env(), cursor=st.applied_cursor,
                           timeout=env_seconds("OCTOSTORE_REMOTE_TIMEOUT", 60.0))
        st.remote, st.remote_key = src, key

        def deliver(scan: RemoteScan) -> None:
            self.queue.put_nowait(("remote", (sid, src, scan)))

        src.start(deliver)
        log.info("root %s: reading the MLflow server %s", self.path, sid)

    async def _stop_remote(self, st: StoreState) -> None:
        src, st.remote, st.remote_key = st.remote, None, ()
        if src is not None:
            await src.close()

    def _restore_server_runs(self, st: StoreState) -> None:
        """A server's runs and experiments as the snapshot holds them (its sidecar cursor
        then resumes syncing from there)."""
        sid = st.ref.id
        st.server_runs = {rid: self._server_copies(st, [r])[0]
                          for rid, r in self.index.runs.items() if sid in r.sources}
        st.server_exps = [e for e in self.index.experiments.values() if e.source == sid]

    @staticmethod
    def _server_copies(st: StoreState, runs: Any) -> list[Run]:
        """Copies the index may stamp and merge (the kept records stay as the server sent)."""
        out = []
        for r in runs:
            c = dataclasses.replace(r)
            c.source = st.ref.id
            c.sources = [st.ref.id]
            c.committed = False
            out.append(c)
        return out

    def _apply_remote(self, scans: list[tuple[str, RemoteSource, RemoteScan]]) -> None:
        """Bring the index up to each server scan: a full one replaces the server's runs, an
        incremental one is merged (with a replace when runs or experiments went away)."""
        for sid, src, scan in scans:
            st = self.stores.get(sid)
            if st is None or st.remote is not src:
                continue  # the store was removed or remade meanwhile
            st.warnings = list(scan.warnings)
            info = self.index.sources.get(sid)
            if info is not None:
                info.warnings = list(scan.warnings)
            if not scan.ok:
                self.index.notes[_note_key(sid)] = scan.warnings[-1] if scan.warnings else (
                    f"the MLflow server {sid} could not be read")
                continue
            self.index.notes.pop(_note_key(sid), None)
            old_exps = {e.experiment_id for e in st.server_exps}
            scan.apply_to(st.server_runs)
            st.server_exps = list(scan.experiments)
            replace = scan.full or bool(scan.removed) or bool(
                old_exps - {e.experiment_id for e in st.server_exps})
            changed = st.server_runs.values() if replace else scan.runs
            runs: dict[str, Run] = {}
            exps: dict[str, Experiment] = {}
            self._merge_into(runs, exps, self._server_copies(st, changed), st.server_exps)
            changes = self.index.apply(runs, exps, {sid} if replace else None)
            st.applied_cursor = scan.cursor
            st.last_read = time.time()
            self._changed(changes)

    def source_status(self, sid: str) -> dict[str, Any]:
        """Last read, state and first warning of one source (for ``octostore/status``)."""
        st = self.stores.get(sid)
        info = self.index.sources.get(sid)
        warnings = (info.warnings + info.watch_warnings) if info is not None else []
        out: dict[str, Any] = {"last_sync": st.last_read if st is not None else None,
                               "warning": self.index.notes.get(_note_key(sid))
                               or (warnings[0] if warnings else None)}
        if st is not None and st.remote is not None:
            rs = st.remote.status()
            rs.pop("worker_pid", None)
            out.update(state=rs["state"], remote=rs)
            if rs["last_sync"] is not None:
                out["last_sync"] = rs["last_sync"]
        return out


def side_stamps(path: str) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(environment, git) as stat stamps: the env files the environment summary reads, and
    ``.git/HEAD``, ``packed-refs`` and the branch file HEAD names.  Equal stamps mean no
    ``environment`` or ``git`` notification is owed."""
    from ..envfiles import find_env_files

    def stamp(p: str) -> tuple[int, int, int] | None:
        try:
            st = os.stat(p)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    env = tuple((rel, stamp(os.path.join(path, rel))) for rel in find_env_files(path))
    gitdir = os.path.join(path, ".git")
    refs = ["HEAD", "packed-refs"]
    try:
        head = read_text(os.path.join(gitdir, "HEAD"), SMALL_CAP, "git's HEAD").strip()
        if head.startswith("ref: "):
            refs.append(head[5:])
    except OSError:  # a FIFO or a folder is refused without blocking
        pass
    git = tuple((ref, stamp(os.path.join(gitdir, ref))) for ref in refs)
    return env, git


def stale_warning(sid: str, reason: str) -> str:
    """The warning each run of an unreadable SQLite store carries (and its source too)."""
    return f"the store {sid} could not be read ({reason}); these runs are its last known state"


def _stale_prefix(sid: str) -> str:
    return f"the store {sid} could not be read ("


def _fresh(runs: Any, sid: str) -> list[Run]:
    """Copies of ``runs`` without the stale mark of store ``sid`` (it reads again)."""
    prefix = _stale_prefix(sid)
    out = []
    for r in runs:
        c = dataclasses.replace(r)
        if any(w.startswith(prefix) for w in r.warnings):
            c.warnings = [w for w in r.warnings if not w.startswith(prefix)]
        out.append(c)
    return out


def _marked(runs: Any, sid: str, reason: str) -> list[Run]:
    """Copies of ``runs`` marked as the last known state of the unreadable store ``sid``."""
    prefix, mark = _stale_prefix(sid), stale_warning(sid, reason)
    out = []
    for r in runs:
        c = dataclasses.replace(r)
        c.warnings = [w for w in r.warnings if not w.startswith(prefix)] + [mark]
        out.append(c)
    return out


def _special(path: str) -> bool:
    """Whether ``path`` exists and is not a regular file (a folder, a FIFO, a device)."""
    import stat

    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _note_key(sid: str) -> str:
    return f"remote {sid}"


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_remote_cursors(path: str, root: str, cursors: dict[str, RemoteCursor]) -> None:
    """The servers' cursors beside the snapshot, atomically (temp file, fsync, rename)."""
    if not cursors and not os.path.exists(path):
        return
    blob = orjson.dumps({"format": 1, "root": root,
                         "cursors": {sid: c.to_row() for sid, c in cursors.items()}})
    atomic_write(path, blob, 0o600, prefix=SNAP_PREFIX, fsync=True, folder_mode=0o700)


def load_remote_cursors(path: str, root: str) -> dict[str, RemoteCursor]:
    """The cursors :func:`save_remote_cursors` wrote for ``root`` (none when unreadable)."""
    try:
        with open(path, "rb") as f:
            data = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError):
        return {}
    if not isinstance(data, dict) or data.get("format") != 1 or data.get("root") != root:
        return {}
    out = {}
    for sid, row in (data.get("cursors") or {}).items():
        cur = RemoteCursor.from_row(row)
        if cur is not None:
            out[sid] = cur
    return out
