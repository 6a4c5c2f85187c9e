"""One open root: its stores, its index, its watcher and its updater task.

The updater is the only writer of the root's :class:`RootIndex`.  It runs on
the event loop and takes work from one queue: paths reported by the watcher,
``verify`` requests (``octostore/sync``, warm start) and reopen requests.
Disk reads happen in a worker thread and produce fresh records; applying them
is a few dict assignments on the loop, so handlers always see a consistent
index without locks.  Bursts coalesce: everything queued while a batch is
read is applied as the next single batch (one clock tick, one notification).

Each store is an object of its kind (:mod:`octostored.index.stores`): it reads itself,
says what to watch and what a changed path means, reads metric histories and keeps its
read state in the snapshot.  The root plans a batch of paths over its stores, merges what
they read (a run met in two stores is one run) and applies it.  A store that reads itself
(a tracking server) puts each read on the same queue; the updater hands it back to the
store, which says what to apply; a failing one is a standing note on the index (``notes``)
while every local store keeps serving.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from ..gitops.git import head_run_ids
from ..model import Experiment, Run
from ..safefile import SMALL_CAP, read_text
from ..sources.discover import (COMMITTED_STORE, CONFIG_FILES, Search, config_signature,
                                discover, search_depth)
from ..sources.remote import env_seconds
from .history import HistoryCache
from .snapshot import load_snapshot, save_snapshot
from .state import Changes, RootIndex, SourceInfo, experiment_key, merge_runs
from .stores import RESCAN, Delta, Store, adopt_sidecar, make_store, store_for

log = logging.getLogger(__name__)

SNAPSHOT_INTERVAL = 30.0
"""Seconds between snapshot writes while changes keep coming (a write re-packs the index)."""
REMOTE_SYNC_WAIT = 45.0
"""Longest :meth:`Root.sync` waits for a server's sync (``OCTOSTORE_REMOTE_SYNC_WAIT``); a
slower server is still syncing afterwards and its status says so."""


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
        self.stores: dict[str, Store] = {}
        self.history = HistoryCache(store_of=lambda run, kind: store_for(self.stores, run, kind))
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
        """What the configuration said at the last discovery (see ``config_signature``)."""
        self.search: Search | None = None
        """How deep the last discovery looked for stores, and why (for the CLI to say)."""

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
            await st.stop()
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
            futs = [f for st in list(self.stores.values())
                    if (f := st.request_sync()) is not None]
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

    # -- what its watcher may do (watch.WatchSink): report, never write the index itself ----
    def notify_paths(self, paths: set[str]) -> None:
        self.queue.put_nowait(("paths", paths))

    def request(self, kind: str, payload: Any = None) -> None:
        """Ask the updater for a ``verify`` (payload: a future set when done) or a ``rescan``."""
        self.queue.put_nowait((kind, payload))

    def store_watch_paths(self) -> list[tuple[list[str], list[str]]]:
        """(recursive, flat) paths to watch, per store (a server: none)."""
        return [st.watch_paths() for st in self.stores.values()]

    def answering(self) -> bool:
        """Runs are in the index already (from a snapshot or a first scan)."""
        return bool(self.index.runs)

    def verifying(self) -> bool:
        return self.index.state == "verifying"

    def watch_note(self, msg: str | None, replaces: str = "") -> None:
        """Say ``msg`` about the watch on the root; None clears the note when it starts with
        ``replaces`` (all of it when empty)."""
        if msg is not None:
            self.index.notes["watch"] = msg
        elif self.index.notes.get("watch", "").startswith(replaces):
            self.index.notes.pop("watch", None)

    def polled(self, under: list[str] | None = None, warning: str = "") -> None:
        """The stores under ``under`` (every watched store when None) are polled, not
        watched; ``warning`` goes on each."""
        for sid, info in self.index.sources.items():
            if under is None:
                st = self.stores.get(sid)
                if st is None or st.watched:
                    info.watching = "polling"
            elif any(info.path == p or info.path.startswith(p + os.sep) for p in under):
                info.watching = "polling"
                if warning and warning not in info.watch_warnings:
                    info.watch_warnings.append(warning)

    # -- the updater --------------------------------------------------------------------
    async def _run(self) -> None:
        from ..watch import RootWatcher  # imported with the first root

        try:
            loaded = await asyncio.to_thread(self._load_snapshot)
            for sid, st in self.stores.items():  # answer with the snapshot's sources at once
                self.index.sources.setdefault(
                    sid, SourceInfo(sid, st.ref.kind, st.ref.path, st.ref.committed))
                st.restored(self.index)
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
        pushed = [p for k, p in items if k == "store"]
        if pushed:  # before a full scan of the same batch, which then includes them
            self._apply_pushed(pushed)  # type: ignore[arg-type]
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
        # A store discovery no longer finds may stay (a database made a folder or a FIFO
        # keeps its runs, marked as its last known state, until it is gone or a file again).
        refs += [st.ref for sid, st in self.stores.items()
                 if sid not in {r.id for r in refs} and st.lingers()]
        known = {r.id for r in refs}
        for sid in list(self.stores):
            if sid not in known:
                gone = self.stores.pop(sid)
                await gone.stop()
                self.index.sources.pop(sid, None)
                self.index.notes.pop(gone.note_key, None)
        for ref in refs:
            if ref.id not in self.stores or self.stores[ref.id].ref.kind != ref.kind:
                old = self.stores.get(ref.id)
                if old is not None:
                    await old.stop()
                self.stores[ref.id] = make_store(ref)
            st = self.stores[ref.id]
            st.ref = ref
            if ref.id not in self.index.sources:
                self.index.sources[ref.id] = SourceInfo(ref.id, ref.kind, ref.path, ref.committed)
            if not st.watched:
                self.index.sources[ref.id].watching = "off"  # it reads itself
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
        changes = self.index.apply(runs, exps, replace_sources=vanished,
                                   environment=environment, git=git)
        self._changed(changes)
        self._changed(self.index.set_head_runs(await asyncio.to_thread(head_run_ids, self.path)))
        for st in list(self.stores.values()):
            await st.start(self.path, self._store_folder(st), self._deliver)

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
                out[sid] = st.full_scan(self.index)
        finally:
            if enabled:
                gc.enable()
        return out

    async def _apply_paths(self, paths: set[str]) -> None:
        plan = self._plan(paths)
        if plan is None:
            from ..envfiles import is_env_file

            rels = [os.path.relpath(p, self.path) for p in paths]
            await self._full_scan(
                environment=any(is_env_file(r) for r in rels),
                git=any(r == ".git" or r.startswith(".git" + os.sep) for r in rels))
            return
        items, env, git = plan
        runs: dict[str, Run] = {}
        exps: dict[str, Experiment] = {}
        replace: set[str] = set()
        left: dict[str, list[str]] = {}
        if items:
            deltas = await asyncio.to_thread(self._read_changed, items)
            for sid, delta in deltas.items():
                if delta.warnings is not None and sid in self.index.sources:
                    self.index.sources[sid].warnings = delta.warnings
            for sid, delta in deltas.items():
                self._merge_into(runs, exps, delta.runs, delta.experiments)
                if delta.full:
                    replace.add(sid)
                if delta.removed:
                    left[sid] = delta.removed
            gone = [rid for d in deltas.values() for rid in d.expected if rid not in runs]
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

    def _plan(self, paths: set[str]) -> tuple[dict[str, set[str]], bool, bool] | None:
        """Map changed paths to what each store must read (:meth:`Store.route`); None means
        rescan everything."""
        items: dict[str, set[str]] = {}
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
                item = st.route(path)
                if item is None:
                    continue
                if item is RESCAN:
                    return None
                if item:
                    items.setdefault(sid, set()).add(item)
                break
            else:
                if is_env_file(rel_root):
                    env = True
                elif os.path.basename(path) in ("mlflow.db", "mlruns.db", "mlruns") or (
                        rel_root.startswith(COMMITTED_STORE + os.sep)):
                    return None  # a new store appeared (a `git pull` may bring committed runs)
        # In the order of the stores (a full scan's order), whatever the order of the paths.
        return {sid: items[sid] for sid in self.stores if sid in items}, env, git

    def _read_changed(self, items: dict[str, set[str]]) -> dict[str, Delta]:
        """What changed in these stores under these items (in a worker thread)."""
        out: dict[str, Delta] = {}
        for sid, store_items in items.items():
            delta = self.stores[sid].read_changed(store_items, self.index)
            for r in delta.runs:
                self.history.invalidate_run(r.run_id)
            for rid in delta.removed:
                self.history.invalidate_run(rid)
            out[sid] = delta
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
        loaded = load_snapshot(self.snapshot_path(), self.index, self.stores, make_store)
        adopt_sidecar(self.snapshot_path(), self.path, self.stores)  # written before issue 18
        return loaded

    # -- stores that read themselves (tracking servers) ----------------------------------------
    def _store_folder(self, st: Store) -> str:
        """A store's own cache folder (a server's worker keeps its downloads there)."""
        return os.path.join(self.cache_dir, st.kind, _digest(self.path + "\0" + st.ref.id))

    def _deliver(self, st: Store, payload: Any) -> None:
        self.queue.put_nowait(("store", (st, payload)))

    def _apply_pushed(self, pushed: list[tuple[Store, Any]]) -> None:
        """Bring the index up to what stores read themselves (each store says what to apply;
        a failed read is a standing note on the root)."""
        for st, payload in pushed:
            sid = st.ref.id
            if self.stores.get(sid) is not st:
                continue  # the store was removed or remade meanwhile
            delta = st.take(payload, self.index)
            if delta is None:
                continue  # its source was remade meanwhile
            info = self.index.sources.get(sid)
            if info is not None:
                info.warnings = list(st.warnings)
            if st.note is not None:
                self.index.notes[st.note_key] = st.note
                continue
            self.index.notes.pop(st.note_key, None)
            runs: dict[str, Run] = {}
            exps: dict[str, Experiment] = {}
            self._merge_into(runs, exps, delta.runs, delta.experiments)
            changes = self.index.apply(runs, exps, {sid} if delta.full else None)
            st.applied(delta)
            self._changed(changes)

    def source_status(self, sid: str) -> dict[str, Any]:
        """Last read, state and first warning of one source (for ``octostore/status``)."""
        st = self.stores.get(sid)
        info = self.index.sources.get(sid)
        warnings = (info.warnings + info.watch_warnings) if info is not None else []
        note = self.index.notes.get(st.note_key) if st is not None else None
        out: dict[str, Any] = {"last_sync": st.last_read if st is not None else None,
                               "warning": note or (warnings[0] if warnings else None)}
        if st is not None:
            st.status(out)
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


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]
