"""A remote MLflow tracking server (``http://`` / ``https://``) as a source; standard library only.

Owns: syncing one tracking server into :class:`~octostored.model.Run` and
:class:`~octostored.model.Experiment` records (:meth:`RemoteSource.sync`), metric histories
on demand with a bounded cache (:meth:`RemoteSource.metric_history`), an optional poll loop
with interval and backoff (:meth:`RemoteSource.start`, :class:`SyncPolicy`), and keeping
credentials out of everything it says (:func:`scrub_uri`, :class:`Scrubber`).  Its parts
live beside it: :mod:`.remote_uri` (which URIs are servers, scrubbing), :mod:`.remote_state`
(cursor, scan, policy, error), :mod:`.remote_link` (the worker process); their names are
importable from here too.

Why it is shaped so:

* **MLflow stays out of the daemon.**  Talking REST the way MLflow does (auth variables, TLS
  options, paging tokens, entity decoding) means importing MLflow, which costs 2 s and 166 MB
  (STACK.md section 4).  So the MLflow side runs in a long-lived worker subprocess
  (:mod:`octostored.sources.remote_worker`) started on the first call, spoken to in
  line-delimited JSON.  A worker that dies is restarted on the next call, with a warning; a
  call that stays silent longer than ``timeout`` kills it (it may be wedged in a socket).
* **Only servers the user trusts.**  A repo names servers; the user trusts them
  (:mod:`octostored.servertrust`).  Until she does, a sync sends nothing and starts no
  worker, so no credential leaves the daemon (:meth:`RemoteSource._untrusted_scan`).
* **Never raises from sync.**  An unreachable, slow, failing or credential-rejecting server is
  a :class:`RemoteScan` with ``ok`` False and one warning saying which; the caller keeps the
  runs it has, and every local source keeps serving.
* **Incremental without an ``updated_at``.**  The REST API has no "changed since" query and no
  id-only listing.  What it has is filters on ``start_time``, ``end_time``, ``status`` and
  ``run_id``.  A sync is one of three modes:

  ``full``
      page through every experiment and run (first sync, or asked for).
  ``incremental``
      the experiment list (cheap), then runs with ``start_time >= W`` or ``end_time >= W``,
      runs whose status is RUNNING or SCHEDULED now, and runs that were so at the last sync
      (by id).  ``W`` is the watermark minus a safety margin (:attr:`SyncPolicy.margin_ms`):
      the watermark is ``min(wall clock when the previous sync started, newest start/end time
      ever seen)``, so neither a client clock running ahead nor a daemon clock running ahead
      blinds it.  Experiments that are new or changed lifecycle stage (delete/restore marks
      all their runs) have all their runs re-listed.
  ``list``
      every run again, but the worker sends back only runs whose digest differs from the
      cursor's, plus the ids that vanished (each confirmed with ``get_run``).  Due every
      :attr:`SyncPolicy.listing_interval` seconds, and never more often than
      :attr:`SyncPolicy.listing_load` times its own duration (at most ~5% of server time).

  What an incremental sync can miss, and the listing then catches: changes to a run that is
  neither unfinished nor started/ended within the margin (a tag set, a metric logged or a
  rename long after it ended; a soft delete or restore of a single run; a hard delete by
  ``mlflow gc``), runs logged with explicit start times older than the watermark, and runs
  from a client whose clock lags the others by more than the margin.
* **State is the caller's.**  The worker is stateless; the :class:`RemoteCursor` (plain types,
  ``to_row``/``from_row`` for the snapshot) holds the watermark, unfinished ids, known
  experiments and per-run digests.  Keep it together with the index it was built with.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from ..model import ACTIVE, Experiment, Run
from .remote_link import _PKG_PARENT, START_TIMEOUT, _Pending, _Worker  # noqa: F401
from .remote_state import (  # noqa: F401 - importers name these from here
    RemoteCursor,
    RemoteError,
    RemoteScan,
    SyncPolicy,
    env_seconds,
    policy_from_env,
)
from .remote_uri import (  # noqa: F401
    _SECRET_VARS,
    Scrubber,
    _split_userinfo,
    is_remote_uri,
    scrub_uri,
)

log = logging.getLogger(__name__)

_NAN = float("nan")
"""One shared NaN, so that equal metric tuples compare equal (tuples test identity first)."""

UNFINISHED = ("RUNNING", "SCHEDULED")
HISTORY_POINTS = 1_000_000
"""Cached history points per source, least recently used dropped first."""


# -- the source ------------------------------------------------------------------------------

class RemoteSource:
    """One MLflow tracking server, read through a worker process that imports MLflow.

    ``uri`` may hold ``user:password@`` (sent to the worker on its stdin, never in argv);
    ``env`` adds variables for the worker (``MLFLOW_TRACKING_TOKEN`` and friends, for example
    from the root's ``.env``) on top of the daemon's own environment.  Nothing here says the
    credentials: answers carry :attr:`where`, the URI without them.

    A server the user has not trusted (:mod:`octostored.servertrust`: her own config, never
    the repo's) is never contacted: no worker starts for it, so neither the daemon's
    ``MLFLOW_TRACKING_*`` variables nor the URI's user info reach it; each sync is a full scan
    with no runs and one warning saying how to trust it (state ``untrusted``).
    """

    def __init__(self, uri: str, source_id: str, cache_dir: str, *,
                 env: Mapping[str, str] | None = None, policy: SyncPolicy | None = None,
                 cursor: RemoteCursor | None = None, timeout: float = 60.0,
                 history_timeout: float = 30.0, python: str | None = None) -> None:
        self._uri = uri.strip()
        self.where = scrub_uri(self._uri)
        self.source_id = source_id
        self.cache_dir = cache_dir
        self.policy = policy or SyncPolicy()
        self.timeout = timeout
        self.history_timeout = history_timeout
        self._env = dict(env or {})
        full_env = {**os.environ, **self._env}
        self.scrub = Scrubber(self._uri, full_env)
        self.cursor = cursor if cursor is not None and cursor.where == self.where else None
        self.python = python or os.environ.get("OCTOSTORE_MLFLOW_PYTHON") or sys.executable
        self._worker: _Worker | None = None
        self._worker_lock = asyncio.Lock()
        self._sync_lock = asyncio.Lock()
        self._notes: list[str] = []
        """Warnings for the next scan (a worker restart)."""
        self._starts = 0
        self._last_start_s = 0.0
        self._history: OrderedDict[tuple[str, str], tuple[list[tuple[int, float, int]], Any]] = \
            OrderedDict()
        self._history_points = 0
        self._sync_seq = 0
        """Bumped by every applied sync: a history fetched across one is not cached."""
        self._loop: asyncio.AbstractEventLoop | None = None
        # status
        self.last_ok: float | None = None
        """Wall clock of the last successful sync."""
        self.last_error: str = ""
        self.last_scan_stats: dict[str, Any] = {}
        self.syncs_by_mode: dict[str, int] = {"full": 0, "list": 0, "incremental": 0}
        """Successful syncs of this source object, by mode (a resumed cursor: no "full")."""
        self.syncing = False
        self.untrusted = False
        """The user has not trusted this server (see :mod:`octostored.servertrust`)."""
        # poll loop
        self._poll_task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._req_gen = 0
        self._waiters: list[tuple[int, asyncio.Future[RemoteScan]]] = []
        self._full_requested = False
        self.next_sync_at: float | None = None

    # -- sync -------------------------------------------------------------------------------
    async def sync(self, full: bool = False) -> RemoteScan:
        """Read what changed on the server since the cursor (everything when ``full`` or when
        there is no cursor yet).  Never raises: failures are a scan with ``ok`` False."""
        async with self._sync_lock:
            self.syncing = True
            try:
                return await self._sync(full)
            finally:
                self.syncing = False

    async def _sync(self, full: bool) -> RemoteScan:
        if not self._trusted():
            return await self._untrusted_scan()
        self.untrusted = False
        t_wall = time.time()
        t0 = time.perf_counter()
        cur = self.cursor
        if full or cur is None:
            mode = "full"
        elif self.policy.listing_due(cur, t_wall):
            mode = "list"
        else:
            mode = "incremental"
        req: dict[str, Any] = {"mode": mode}
        if cur is not None and mode != "full":
            req["experiments"] = cur.experiments
            req["unfinished"] = cur.unfinished
            req["since"] = max(0, cur.watermark - self.policy.margin_ms)
            if mode == "list":
                req["digests"] = cur.digests
            else:  # unfinished runs come back every time: send only those that changed
                req["digests"] = {r: cur.digests[r] for r in cur.unfinished if r in cur.digests}
        rows: list[list[Any]] = []
        starts = self._starts
        for attempt in (1, 2):
            rows.clear()
            started = False
            try:
                worker = await self._ensure_worker()
                started = True
                result = await worker.call("sync", req, self.timeout,
                                           on_part=lambda p: rows.extend(p.get("runs") or ()))
                break
            except TimeoutError:
                await self._drop_worker()
                return self._failed("timeout", f"the MLflow server {self.where} did not answer"
                                    f" within {self.timeout:g} s (slow or hung)")
            except RemoteError as exc:
                if exc.kind != "worker":
                    return self._failed(exc.kind, str(exc))
                await self._drop_worker()
                if attempt == 2 or not started:
                    return self._failed(exc.kind, str(exc))
                # the worker died under this call: one more try with a fresh one
                log.warning("remote %s: %s", self.where, exc)
                self._notes.append(f"the MLflow worker for {self.where} exited unexpectedly;"
                                   " restarted it")
        try:
            scan, new_cursor, removed = await asyncio.to_thread(
                self._apply, result, rows, cur, mode, t_wall)
        except Exception as exc:  # noqa: BLE001 - a malformed reply is a warning, not a crash
            log.exception("remote %s: bad sync reply", self.where)
            return self._failed("error", f"the MLflow worker for {self.where} sent a reply"
                                f" octostore cannot read ({type(exc).__name__}: {exc})")
        self.cursor = new_cursor
        self._sync_seq += 1
        self._invalidate_histories(scan.runs, removed)
        scan.stats = {**(result.get("stats") or {}), "mode": mode,
                      "seconds": round(time.perf_counter() - t0, 4)}
        if self._starts != starts:
            scan.stats["worker_start_seconds"] = self._last_start_s
        if mode in ("full", "list"):
            new_cursor.listing_seconds = scan.stats["seconds"]
        self.last_ok = time.time()
        self.last_error = ""
        self.last_scan_stats = scan.stats
        self.syncs_by_mode[mode] = self.syncs_by_mode.get(mode, 0) + 1
        scan.warnings = [self.scrub(w) for w in [*self._notes, *scan.warnings]]
        self._notes.clear()
        return scan

    def _apply(self, result: dict[str, Any], rows: list[list[Any]], cur: RemoteCursor | None,
               mode: str, t_wall: float) -> tuple[RemoteScan, RemoteCursor, set[str]]:
        """Turn a sync reply into records and the next cursor (in a thread: pure Python work)."""
        sid, where = self.source_id, self.where
        exps = [Experiment(experiment_id=str(e[0]), name=e[1], lifecycle_stage=e[2] or ACTIVE,
                           artifact_location=e[3] or "", creation_time=e[4],
                           last_update_time=e[5], tags=dict(e[6] or {}), source=sid)
                for e in result.get("experiments") or []]
        new = RemoteCursor(where) if mode == "full" or cur is None else RemoteCursor(
            where, cur.watermark, cur.max_seen, list(cur.unfinished), dict(cur.experiments),
            dict(cur.digests), dict(cur.experiment_of), cur.last_listing, cur.listing_seconds,
            cur.syncs)
        exp_ids = {e.experiment_id for e in exps}
        removed = set(result.get("removed") or ())
        if mode != "full":
            relisted = set(result.get("relisted") or ())
            returned = {r[0] for r in rows}
            for rid, eid in new.experiment_of.items():
                if eid not in exp_ids or (eid in relisted and rid not in returned):
                    removed.add(rid)
        unfinished = set(new.unfinished)
        max_seen = new.max_seen
        runs: list[Run] = []
        for row in rows:
            (rid, eid, name, status, stage, start, end, user, art, params, metrics, tags,
             inputs, digest) = row
            for t in (start, end):
                if isinstance(t, int) and t > max_seen:
                    max_seen = t
            if status in UNFINISHED:
                unfinished.add(rid)
            else:
                unfinished.discard(rid)
            if mode != "full" and new.digests.get(rid) == digest:
                continue  # unchanged since the last sync
            new.digests[rid] = digest
            new.experiment_of[rid] = eid
            runs.append(Run(
                run_id=rid, experiment_id=eid, run_name=name, status=status,
                lifecycle_stage=stage or ACTIVE, start_time=start, end_time=end, user_id=user,
                artifact_uri=art, params=params,
                metrics={k: (_NAN if v[0] != v[0] else v[0], v[1], v[2])
                         for k, v in metrics.items()},
                tags=tags, inputs=inputs, source=sid, location=where, sources=[sid]))
        removed -= {r[0] for r in rows}
        for rid in removed:
            new.digests.pop(rid, None)
            new.experiment_of.pop(rid, None)
            unfinished.discard(rid)
        new.unfinished = sorted(unfinished)
        new.experiments = {e.experiment_id: e.lifecycle_stage for e in exps}
        new.max_seen = max_seen
        new.watermark = min(int(t_wall * 1000), max_seen) if max_seen else int(t_wall * 1000)
        new.syncs += 1
        if mode in ("full", "list"):
            new.last_listing = t_wall
        scan = RemoteScan(exps, runs, sorted(removed), [], mode == "full", True, mode, cursor=new)
        return scan, new, removed

    def _trusted(self) -> bool:
        """Whether the user trusts this server (read from her config at every sync, so
        ``octostore remote trust/untrust`` takes effect at the next one)."""
        from ..servertrust import is_trusted

        return is_trusted(self._uri)

    async def _untrusted_scan(self) -> RemoteScan:
        """What a server the user has not trusted gives: no request, no worker (so none of
        her credentials), no runs (a full scan with none replaces what it had), and one
        warning that says how to trust it."""
        from ..servertrust import untrusted_warning

        if self._worker is not None:  # trusted before, untrusted since
            await self._drop_worker()
        self.untrusted = True
        self.cursor = None
        self._history.clear()
        self._history_points = 0
        self._sync_seq += 1
        self.last_ok = None
        self.last_error = untrusted_warning(self.where)
        return RemoteScan([], [], [], [self.last_error], True, True, "untrusted", "untrusted")

    def _failed(self, kind: str, message: str) -> RemoteScan:
        message = self.scrub(message)
        self.last_error = message
        if self.cursor is not None and self.last_ok is not None:
            ago = time.time() - self.last_ok
            message += (f"; showing its {len(self.cursor.digests)} runs as of the last successful"
                        f" sync {_age(ago)} ago")
        elif self.cursor is not None:
            message += f"; showing its {len(self.cursor.digests)} runs from the snapshot"
        else:
            message += "; none of its runs are indexed yet"
        warnings = [self.scrub(w) for w in [*self._notes, message]]
        self._notes.clear()
        return RemoteScan([], [], [], warnings, False, False, "", kind, self.cursor)

    # -- worker -----------------------------------------------------------------------------
    async def _ensure_worker(self) -> _Worker:
        async with self._worker_lock:
            self._loop = asyncio.get_running_loop()
            w = self._worker
            if w is not None and w.alive:
                return w
            if not self._trusted():  # never a worker (nor credentials) for such a server
                from ..servertrust import untrusted_warning

                raise RemoteError("untrusted", untrusted_warning(self.where))
            if w is not None:
                code = w.proc.returncode if w.proc is not None else None
                self._notes.append(f"the MLflow worker for {self.where} exited unexpectedly"
                                   f" (code {code}); restarted it")
                await w.stop()
            env = {**os.environ, **self._env}
            env["PYTHONPATH"] = _PKG_PARENT + (os.pathsep + env["PYTHONPATH"]
                                               if env.get("PYTHONPATH") else "")
            env["OCTOSTORE_REMOTE_REQUEST_TIMEOUT"] = str(self._request_timeout())
            env.pop("MLFLOW_TRACKING_URI", None)
            env.setdefault("PYTHONUNBUFFERED", "1")
            self._worker = w = _Worker(self.python, env, self.cache_dir, self.where, self.scrub)
            self._starts += 1
            init = {"uri": self._uri, "where": self.where, "secrets": self.scrub.secrets,
                    "timeout": self._request_timeout()}
            t = time.perf_counter()
            try:
                await w.start(init, max(START_TIMEOUT, self.timeout))
                self._last_start_s = round(time.perf_counter() - t, 4)
            except BaseException:
                self._worker = None
                await w.stop()
                raise
            log.info("remote %s: worker %s started (MLflow %s, import %.1f s)", self.where,
                     w.proc.pid if w.proc else "?", w.hello.get("mlflow"),
                     w.hello.get("import_s", 0.0))
            return w

    def _request_timeout(self) -> int:
        """MLflow's per-request timeout: below ours (one retry + backoff fit in ``timeout``),
        so a slow server is reported by the worker rather than by killing it."""
        return max(1, int((self.timeout - 1.5) / 2))

    async def _drop_worker(self) -> None:
        async with self._worker_lock:
            w, self._worker = self._worker, None
        if w is not None:
            await w.kill()
            await w.stop()

    @property
    def worker_pid(self) -> int | None:
        w = self._worker
        return w.proc.pid if w is not None and w.alive and w.proc is not None else None

    # -- histories ----------------------------------------------------------------------------
    async def metric_history(self, run_id: str, key: str) -> list[tuple[int, float, int]]:
        """Every point of one metric as ``(timestamp, value, step)``, as MLflow returns them.

        Cached until a sync shows that the metric's latest value changed.

        Raises:
            RemoteError: the server could not be asked (scrubbed, actionable message).
        """
        ck = (run_id, key)
        hit = self._history.get(ck)
        if hit is not None:
            self._history.move_to_end(ck)
            return hit[0]
        seq = self._sync_seq
        try:
            worker = await self._ensure_worker()
            result = await worker.call("metric_history", {"run_id": run_id, "key": key},
                                       self.history_timeout)
        except TimeoutError:
            raise RemoteError("timeout", f"the MLflow server {self.where} did not send the"
                              f" history of {key!r} within {self.history_timeout:g} s") from None
        except RemoteError as exc:
            if exc.kind == "worker":
                await self._drop_worker()
            raise RemoteError(exc.kind, self.scrub(str(exc))) from None
        points = [(int(t), _NAN if v != v else float(v), int(s))
                  for t, v, s in result.get("points") or ()]
        if seq == self._sync_seq:  # else a sync may have invalidated it meanwhile
            self._put_history(ck, points)
        return points

    def metric_history_threadsafe(self, run_id: str, key: str,
                                  timeout: float | None = None) -> list[tuple[int, float, int]]:
        """:meth:`metric_history` from a worker thread (an export, a handler's to_thread)."""
        loop = self._loop
        if loop is None:
            raise RemoteError("worker", f"{self.where} has not been synced yet")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("metric_history_threadsafe called on the event loop; await"
                               " metric_history instead")
        fut = asyncio.run_coroutine_threadsafe(self.metric_history(run_id, key), loop)
        return fut.result(timeout or self.history_timeout + 5)

    async def download_artifacts(self, run_id: str, dest: str, path: str = "") -> str:
        """Download a run's artifacts (or ``path`` among them) into ``dest``; returns the local
        path.  For ``octostore commit`` of a server run.  Raises :class:`RemoteError`."""
        try:
            worker = await self._ensure_worker()
            result = await worker.call("download_artifacts",
                                       {"run_id": run_id, "dest": dest, "path": path},
                                       max(self.timeout, 300.0))
        except TimeoutError:
            raise RemoteError("timeout", f"downloading the artifacts of {run_id} from"
                              f" {self.where} took too long") from None
        except RemoteError as exc:
            raise RemoteError(exc.kind, self.scrub(str(exc))) from None
        return str(result["path"])

    def _put_history(self, ck: tuple[str, str], points: list[tuple[int, float, int]]) -> None:
        old = self._history.pop(ck, None)
        if old is not None:
            self._history_points -= len(old[0])
        self._history[ck] = (points, _latest_key(points))
        self._history_points += len(points)
        while self._history_points > HISTORY_POINTS and len(self._history) > 1:
            _, (dropped, _) = self._history.popitem(last=False)
            self._history_points -= len(dropped)

    def _invalidate_histories(self, runs: list[Run], removed: set[str]) -> None:
        if not self._history:
            return
        by_run: dict[str, list[str]] = {}
        for rid, key in list(self._history):
            by_run.setdefault(rid, []).append(key)
        for run in runs:
            for key in by_run.get(run.run_id, ()):
                entry = self._history.get((run.run_id, key))
                latest = run.metrics.get(key)
                if entry is not None and (latest is None or _norm(latest) != entry[1]):
                    self._drop_history((run.run_id, key))
        for rid in removed:
            for key in by_run.get(rid, ()):
                self._drop_history((rid, key))

    def _drop_history(self, ck: tuple[str, str]) -> None:
        entry = self._history.pop(ck, None)
        if entry is not None:
            self._history_points -= len(entry[0])

    # -- poll loop ----------------------------------------------------------------------------
    def start(self, deliver: Callable[[RemoteScan], Any]) -> None:
        """Sync now and then on the policy's interval, handing each scan to ``deliver`` (a
        plain function or a coroutine function; put the scan on the updater's queue)."""
        if self._poll_task is None:
            self._wake = asyncio.Event()
            self._poll_task = asyncio.create_task(self._poll(deliver),
                                                  name=f"remote:{self.where}")

    def request_sync(self, full: bool = False) -> asyncio.Future[RemoteScan]:
        """Ask the poll loop for a sync now; the future resolves with the first scan that
        started after this call, once ``deliver`` returned for it."""
        if self._poll_task is None or self._wake is None:
            raise RuntimeError("start() the poll loop first")
        fut: asyncio.Future[RemoteScan] = asyncio.get_running_loop().create_future()
        self._req_gen += 1
        self._waiters.append((self._req_gen, fut))
        self._full_requested = self._full_requested or full
        self._wake.set()
        return fut

    async def _poll(self, deliver: Callable[[RemoteScan], Any]) -> None:
        assert self._wake is not None
        while True:
            gen = self._req_gen
            self._wake.clear()
            full, self._full_requested = self._full_requested, False
            t = time.monotonic()
            scan = await self.sync(full=full)
            # the load a sync put on the server: the worker's own timing (a worker start, or
            # the daemon's busy loop, is not the server's doing); a failure counts whole
            elapsed = scan.stats.get("server_seconds") if scan.ok else None
            delay = self.policy.next_delay(scan.ok, elapsed if elapsed is not None
                                           else time.monotonic() - t)
            scan.next_sync_in = round(delay, 1)
            self.next_sync_at = time.time() + delay
            if not scan.ok and scan.warnings:
                scan.warnings[-1] += f"; retrying in {_age(delay)}"
            try:
                res = deliver(scan)
                if inspect.isawaitable(res):
                    await res
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop must go on
                log.exception("remote %s: delivering a scan failed", self.where)
            keep = []
            for g, fut in self._waiters:
                if g <= gen:
                    if not fut.done():
                        fut.set_result(scan)
                else:
                    keep.append((g, fut))
            self._waiters = keep
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    # -- status and shutdown ---------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """For ``octostore status`` and the TUI: never holds credentials."""
        if self.untrusted:
            state = "untrusted"
        elif self.syncing:
            state = "syncing"
        elif self.last_error:
            state = "error"
        else:
            state = "ok" if self.last_ok else "starting"
        return {
            "uri": self.where,
            "state": state,
            "last_sync": self.last_ok,
            "error": self.last_error or None,
            "next_sync_in": None if self.next_sync_at is None
            else max(0.0, round(self.next_sync_at - time.time(), 1)),
            "runs": len(self.cursor.digests) if self.cursor else 0,
            "last_sync_stats": self.last_scan_stats,
            "syncs": dict(self.syncs_by_mode),
            "worker_pid": self.worker_pid,
        }

    async def close(self) -> None:
        if self._poll_task is not None:
            self._poll_task.cancel()
            with contextlib.suppress(BaseException):
                await self._poll_task
            self._poll_task = None
        for _, fut in self._waiters:
            if not fut.done():
                fut.cancel()
        self._waiters = []
        w, self._worker = self._worker, None
        if w is not None:
            await w.stop()


def _latest_key(points: list[tuple[int, float, int]]) -> Any:
    """The (value, timestamp, step) MLflow reports as latest for a history, normalised."""
    best = None
    for ts, v, step in points:
        k = (step, ts, 0.0 if v != v else v)
        if best is None or k > best[0]:
            best = (k, (v, ts, step))
    return _norm(best[1]) if best else None


def _norm(latest: tuple[float, int, int]) -> tuple[Any, ...]:
    v, ts, step = latest
    return ("nan" if v != v else float(v), int(ts), int(step))


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
