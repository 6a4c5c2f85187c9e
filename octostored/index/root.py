"""One open root: its stores, its index, its watcher and its updater task.

The updater is the only writer of the root's :class:`RootIndex`.  It runs on
the event loop and takes work from one queue: paths reported by the watcher,
``verify`` requests (``octostore/sync``, warm start) and reopen requests.
Disk reads happen in a worker thread and produce fresh records; applying them
is a few dict assignments on the loop, so handlers always see a consistent
index without locks.  Bursts coalesce: everything queued while a batch is
read is applied as the next single batch (one clock tick, one notification).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..model import Experiment, Run
from ..sources import filestore
from ..sources.discover import COMMITTED_STORE, StoreRef, discover
from .history import HistoryCache
from .snapshot import load_snapshot, save_snapshot
from .state import Changes, RootIndex, SourceInfo, experiment_key, merge_runs

log = logging.getLogger(__name__)

SNAPSHOT_INTERVAL = 30.0
"""Seconds between snapshot writes while changes keep coming (a write re-packs the index)."""


@dataclass
class StoreState:
    ref: StoreRef
    runs: dict[str, filestore.RunState] = field(default_factory=dict)
    """File stores: per-run signature and metric offsets."""
    cursor: object = None
    """SQLite stores: the reader's change cursor."""
    warnings: list[str] = field(default_factory=list)
    """SQLite stores: the warnings of the last read that learned something (schema, ...)."""


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
        self.history = HistoryCache()
        self.queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self.ready = asyncio.Event()
        self.last_used = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._watcher: object | None = None
        self._snapshot_due = 0.0
        self._dirty = False

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
        if self._dirty:
            await asyncio.to_thread(self._save_snapshot)

    async def sync(self) -> None:
        """Return once every change on disk before this call is in the index."""
        await self.ready.wait()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.queue.put(("verify", fut))
        await fut

    def notify_paths(self, paths: set[str]) -> None:
        self.queue.put_nowait(("paths", paths))

    # -- the updater --------------------------------------------------------------------
    async def _run(self) -> None:
        from ..watch import RootWatcher  # the watcher pulls in watchfiles' Rust extension

        try:
            loaded = await asyncio.to_thread(self._load_snapshot)
            for sid, st in self.stores.items():  # answer with the snapshot's sources at once
                self.index.sources.setdefault(
                    sid, SourceInfo(sid, st.ref.kind, st.ref.path, st.ref.committed))
            self.index._count_sources()
            # Start watching before the scan: changes during the scan are then queued, not lost.
            self._watcher = RootWatcher(self)
            await self._watcher.start()  # type: ignore[attr-defined]
            if loaded:
                self.index.state = "verifying"
                self.ready.set()
            await self._full_scan()
            self.index.state = "ready"
            self.ready.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed first scan leaves an empty index, not a dead root
            log.exception("indexing %s failed", self.path)
            self.index.notes["updater"] = f"indexing failed: {exc}; see `octostore daemon logs`"
            self.index.state = "failed"
            self.ready.set()
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

    async def _full_scan(self) -> None:
        refs, warnings = await asyncio.to_thread(discover, self.path)
        known = {r.id for r in refs}
        for sid in list(self.stores):
            if sid not in known:
                del self.stores[sid]
                self.index.sources.pop(sid, None)
        for ref in refs:
            if ref.id not in self.stores or self.stores[ref.id].ref.kind != ref.kind:
                self.stores[ref.id] = StoreState(ref)
            self.stores[ref.id].ref = ref
            if ref.id not in self.index.sources:
                self.index.sources[ref.id] = SourceInfo(ref.id, ref.kind, ref.path, ref.committed)
        if self._watcher is not None:
            await self._watcher.update_paths()  # type: ignore[attr-defined]
        results = await asyncio.to_thread(self._read_all)
        runs: dict[str, Run] = {}
        exps: dict[str, Experiment] = {}
        for sid, (store_runs, store_exps, store_warnings) in results.items():
            self.index.sources[sid].warnings = store_warnings
            self._merge_into(runs, exps, store_runs, store_exps)
        self.index.warnings = warnings
        vanished = set(self.index.sources) | {
            s for r in self.index.runs.values() for s in r.sources
        }
        changes = self.index.apply(runs, exps, replace_sources=vanished)
        self._changed(changes)

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
        """Every run and experiment of a SQLite store, reading only what changed."""
        from dataclasses import replace

        from ..sources import sqlitestore

        ref = st.ref
        known = {rid: r for rid, r in self.index.runs.items() if ref.id in r.sources}
        known_exps = [e for e in self.index.experiments.values() if e.source == ref.id]
        cursor = st.cursor if isinstance(st.cursor, sqlitestore.SqliteCursor) else None
        if cursor is not None and known and sqlitestore.fingerprint(ref.path) == cursor.fingerprint:
            return [replace(r) for r in known.values()], known_exps, list(st.warnings)
        scan, new_cursor = sqlitestore.read_changed(ref.path, ref.id, cursor)
        warnings = list(scan.warnings)
        if not scan.full and not scan.experiments and not scan.runs and warnings:
            # The read failed (locked, corrupt): keep what we have, retry on the next change.
            return [replace(r) for r in known.values()], known_exps, warnings
        st.cursor = new_cursor
        st.warnings = warnings
        if scan.full:
            return scan.runs, scan.experiments, warnings
        merged = {rid: replace(r) for rid, r in known.items() if rid not in scan.removed}
        for run in scan.runs:
            merged[run.run_id] = run
        return list(merged.values()), scan.experiments or known_exps, warnings

    def _reusable(self, source_id: str) -> dict[str, Run]:
        return {rid: r for rid, r in self.index.runs.items() if r.source == source_id}

    async def _apply_paths(self, paths: set[str]) -> None:
        plan = self._plan(paths)
        if plan is None:
            await self._full_scan()
            return
        run_dirs, sqlite_ids, env, git = plan
        runs: dict[str, Run] = {}
        exps: dict[str, Experiment] = {}
        replace: set[str] = set()
        if run_dirs or sqlite_ids:
            results = await asyncio.to_thread(self._read_some, run_dirs, sqlite_ids)
            for sid, (store_runs, store_exps, removed_all) in results.items():
                self._merge_into(runs, exps, store_runs, store_exps)
                if removed_all:
                    replace.add(sid)
            gone = [rid for rid in self._runs_in_dirs(run_dirs) if rid not in runs]
            for rid in gone:
                old = self.index.runs.get(rid)
                if old is not None:
                    replace.add(old.source)
            if gone:
                # A run folder vanished: re-list that store so its runs can be removed.
                await self._full_scan()
                return
        changes = self.index.apply(runs, exps, replace or None, environment=env, git=git)
        self._changed(changes)

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
            for sid, st in self.stores.items():
                ref = st.ref
                if ref.kind == "sqlite":
                    if path.startswith(ref.path):
                        sqlite_ids.add(sid)
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
        self, run_dirs: dict[str, set[str]], sqlite_ids: set[str]
    ) -> dict[str, tuple[list[Run], list[Experiment], bool]]:
        out: dict[str, tuple[list[Run], list[Experiment], bool]] = {}
        for sid, dirs in run_dirs.items():
            st = self.stores[sid]
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
            out[sid] = (runs, exps, False)
        for sid in sqlite_ids:
            runs_, exps_, _ = self._read_store(self.stores[sid])
            for r in runs_:
                self.history.invalidate_run(r.run_id)
            out[sid] = (runs_, exps_, True)
        return out

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
        try:
            save_snapshot(self.snapshot_path(), self.index, self.stores)
            self._dirty = False
            self.index.notes.pop("snapshot", None)
        except OSError as exc:
            self.index.notes["snapshot"] = (
                f"cannot write the index snapshot in {self.cache_dir} ({exc.strerror}); "
                "everything still works, but a restart will re-read the stores")

    def _load_snapshot(self) -> bool:
        return load_snapshot(self.snapshot_path(), self.index, self.stores, StoreState)
