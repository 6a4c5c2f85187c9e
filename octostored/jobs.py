"""Long actions as jobs: a registry of asyncio tasks with phases, progress, a log tail and a result.

A *job* is one long action the daemon runs for a client (a reproduction now;
commit may move here later).  It is an asyncio task on the daemon's loop that
drives subprocesses, so the loop never blocks; this module owns what every
such action shares and nothing specific to any of them:

* **Identity and state.**  ``id`` (``<kind prefix>-<8 hex>``), ``kind``,
  ``root``, ``state`` (``running``, ``done``, ``failed``, ``cancelled``), the
  current ``phase`` out of the declared ``phases``, a ``message``, an optional
  ``progress`` fraction, timings, the ``result`` (a JSON-ready dict) and, for
  a failure, ``error``.
* **Notifications.**  Every change is pushed as an ``octostore/job``
  notification ``{job, kind, root, event, state, phase, phases, message,
  progress, ...}`` to the connections that started the job and to every
  connection subscribed to the job's root (``octostore/subscribe``).  Log
  lines are coalesced (one notification per :data:`LOG_FLUSH_SECONDS`) so a
  chatty process cannot flood a client; the last :data:`LOG_TAIL` lines stay
  on the job for ``octostore/jobs``.
* **Cancel.**  :meth:`JobRegistry.cancel` cancels the task; the job's own
  ``finally`` blocks stop its processes and remove what it made.  Each job
  may register process groups (:meth:`JobContext.track`) that are killed on
  cancel even if its code is stuck elsewhere.
* **Crash safety.**  A job can record what it leaves on disk in a small state
  file (:meth:`JobContext.record`) under the daemon's cache; a daemon that
  starts finds the files of jobs whose daemon is dead and hands them to the
  cleanup function their kind registered (:func:`register_cleanup`).  So a
  ``kill -9`` of the daemon costs nothing permanent: the next daemon removes
  the worktrees and stops the processes of the jobs that died with it.

The registry hangs off the daemon (:func:`registry`), created on first use.
Finished jobs are kept (at most :data:`KEEP_FINISHED`) so that a client that
reconnects can still read a result.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from . import procs
from .atomicfile import atomic_write
from .procs import kill_groups, kill_marked
from .rpc.protocol import NOTIFICATION_JOB

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from .hub import Hub

log = logging.getLogger(__name__)

NOTIFICATION = NOTIFICATION_JOB
LOG_TAIL = 200
"""Log lines a job keeps (the full console log is the job's business, e.g. an artifact)."""
LOG_FLUSH_SECONDS = 0.05
"""Log lines are sent at most this often, in one notification."""
KEEP_FINISHED = 100
"""Finished jobs kept for ``octostore/jobs``; older ones are forgotten."""
TERMINAL = ("done", "failed", "cancelled")

Cleanup = Callable[[dict[str, Any]], Awaitable[None]]
_CLEANUPS: dict[str, Cleanup] = {}


def register_cleanup(kind: str, fn: Cleanup) -> None:
    """Register how to clean up after a job of ``kind`` whose daemon died (its state file)."""
    _CLEANUPS[kind] = fn


class JobError(Exception):
    """A job failed in a way a person can act on: what happened, in which phase, what to do."""

    def __init__(self, phase: str, message: str, remedy: str = "", **details: Any) -> None:
        super().__init__(message)
        self.phase = phase
        self.message = message
        self.remedy = remedy
        self.details = details
        self.result: dict[str, Any] | None = None
        """What the job produced before it failed (kept as the job's result)."""

    def to_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "message": self.message, "remedy": self.remedy,
                **self.details}


class Job:
    """One job's state.  Only its own task (through :class:`JobContext`) changes it."""

    def __init__(self, kind: str, root: str, phases: tuple[str, ...],
                 params: dict[str, Any]) -> None:
        prefix = {"reproduce": "r", "commit": "c"}.get(kind, kind[:1] or "j")
        self.id = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kind = kind
        self.root = root
        self.phases = phases
        self.params = params
        self.state = "running"
        self.phase = phases[0] if phases else ""
        self.message = ""
        self.progress: float | None = None
        self.created = time.time()
        self.ended: float | None = None
        self.phase_started = time.monotonic()
        self.timings: dict[str, float] = {}
        self.result: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.log: collections.deque[str] = collections.deque(maxlen=LOG_TAIL)
        self.owners: set[LanguageServer] = set()
        self.task: asyncio.Task[None] | None = None
        self.pgids: set[int] = set()
        self.state_file: str | None = None
        self.record_data: dict[str, Any] = {}

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    def to_dict(self, log_lines: int = 50) -> dict[str, Any]:
        return {
            "job": self.id, "kind": self.kind, "root": self.root, "state": self.state,
            "phase": self.phase, "phases": list(self.phases), "message": self.message,
            "progress": self.progress, "created": self.created, "ended": self.ended,
            "timings": dict(self.timings), "params": self.params,
            "log_tail": list(self.log)[-log_lines:] if log_lines else [],
            "result": self.result, "error": self.error,
        }


class JobContext:
    """What a running job uses to report and to register what must be stopped or removed."""

    def __init__(self, registry: JobRegistry, job: Job) -> None:
        self.registry = registry
        self.job = job
        self._pending: list[str] = []
        self._flush: asyncio.TimerHandle | None = None

    # -- reporting --------------------------------------------------------------------------
    def phase(self, name: str, message: str = "") -> None:
        job = self.job
        now = time.monotonic()
        if job.phase and job.phase != name:
            job.timings[job.phase] = round(job.timings.get(job.phase, 0.0)
                                           + now - job.phase_started, 3)
        job.phase, job.message, job.progress = name, message, None
        job.phase_started = now
        self.flush_log()
        self.registry.broadcast(job, "phase")

    def progress(self, message: str, fraction: float | None = None) -> None:
        self.job.message = message
        self.job.progress = fraction
        self.flush_log()
        self.registry.broadcast(self.job, "progress")

    def log(self, text: str) -> None:
        """One line of output (no trailing newline); sent with the next batch."""
        self.job.log.append(text)
        self._pending.append(text)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(LOG_FLUSH_SECONDS, self.flush_log)

    def flush_log(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._pending:
            lines, self._pending = self._pending, []
            self.registry.broadcast(self.job, "log", lines=lines)

    # -- what to stop and remove ------------------------------------------------------------
    def track(self, pgid: int) -> None:
        self.job.pgids.add(pgid)
        self.record(pgids=sorted(self.job.pgids))

    def untrack(self, pgid: int) -> None:
        self.job.pgids.discard(pgid)

    def record(self, **data: Any) -> None:
        """Merge ``data`` into the job's state file (read by the cleanup after a daemon crash)."""
        self.job.record_data.update(data)
        self.registry.write_state(self.job)

    def finish_phase(self) -> None:
        job = self.job
        if job.phase:
            job.timings[job.phase] = round(job.timings.get(job.phase, 0.0)
                                           + time.monotonic() - job.phase_started, 3)
            job.phase_started = time.monotonic()


JobFn = Callable[[JobContext], Awaitable[dict[str, Any]]]


class JobRegistry:
    """Every job of one daemon."""

    def __init__(self, daemon: Hub, state_dir: str) -> None:
        self.daemon = daemon
        self.state_dir = state_dir
        self.jobs: dict[str, Job] = {}
        self._cleanup_task: asyncio.Task[None] | None = None

    # -- starting and stopping --------------------------------------------------------------
    def start(self, kind: str, root: str, fn: JobFn, *, owner: LanguageServer | None = None,
              phases: tuple[str, ...] = (), params: dict[str, Any] | None = None) -> Job:
        job = Job(kind, root, phases, params or {})
        if owner is not None:
            job.owners.add(owner)
        self.jobs[job.id] = job
        self._forget_old()
        ctx = JobContext(self, job)
        self.write_state(job)
        job.task = asyncio.create_task(self._drive(job, ctx, fn), name=f"job:{job.id}")
        return job

    async def _drive(self, job: Job, ctx: JobContext, fn: JobFn) -> None:
        self.broadcast(job, "started")
        try:
            job.result = await fn(ctx)
            job.state = "done"
        except asyncio.CancelledError:
            job.state = "cancelled"
            job.message = f"cancelled during {job.phase}"
            job.error = {"phase": job.phase, "message": f"cancelled during {job.phase}",
                         "remedy": ""}
            partial = job.result if isinstance(job.result, dict) else {}
            partial.update(verdict="cancelled", failed=job.error)
            job.result = partial
        except JobError as exc:
            job.state = "failed"
            job.message = f"failed in {exc.phase}: {exc.message}"
            job.error = exc.to_dict()
            if exc.result is not None:
                job.result = exc.result
        except Exception as exc:  # a bug of ours: the job fails, the daemon lives on
            log.exception("job %s failed", job.id)
            job.state = "failed"
            job.error = {"phase": job.phase, "message": f"internal error: {exc}",
                         "remedy": "see `octostore daemon logs` and report this as a bug"}
        finally:
            await self._kill_groups(job)
            ctx.finish_phase()
            ctx.flush_log()
            job.ended = time.time()
            job.progress = None
            self._remove_state(job)
            self.broadcast(job, "finished", result=job.result, error=job.error,
                           timings=job.timings)

    async def cancel(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        if job is None:
            return None
        if job.finished or job.task is None:
            return job
        job.message = "cancelling"
        self.broadcast(job, "progress")
        job.task.cancel()
        try:
            await asyncio.shield(asyncio.wait({job.task}))
        except asyncio.CancelledError:
            pass
        return job

    async def shutdown(self) -> None:
        """Cancel every running job and wait for their cleanup (daemon stop)."""
        running = [j for j in self.jobs.values() if not j.finished and j.task is not None]
        for j in running:
            j.task.cancel()  # type: ignore[union-attr]
        if running:
            await asyncio.wait({j.task for j in running if j.task is not None}, timeout=30)

    async def _kill_groups(self, job: Job) -> None:
        if job.pgids:
            await asyncio.to_thread(kill_groups, sorted(job.pgids))
            job.pgids.clear()
        await asyncio.to_thread(kill_marked, job.id)

    def _forget_old(self) -> None:
        done = [j for j in self.jobs.values() if j.finished]
        for j in sorted(done, key=lambda j: j.ended or 0)[: max(0, len(done) - KEEP_FINISHED)]:
            self.jobs.pop(j.id, None)

    # -- queries ----------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def list(self, root: str | None = None) -> list[Job]:
        return sorted((j for j in self.jobs.values() if root is None or j.root == root),
                      key=lambda j: j.created)

    # -- notifications ----------------------------------------------------------------------
    def broadcast(self, job: Job, event: str, **extra: Any) -> None:
        payload = {
            "job": job.id, "kind": job.kind, "root": job.root, "event": event,
            "state": job.state, "phase": job.phase, "phases": list(job.phases),
            "message": job.message, "progress": job.progress, **extra,
        }
        job.owners &= self.daemon.connections
        self.daemon.publish(NOTIFICATION, payload, to=job.owners, root=job.root)

    # -- state files (crash recovery) -------------------------------------------------------
    def write_state(self, job: Job) -> None:
        data = {"job": job.id, "kind": job.kind, "root": job.root,
                "daemon_pid": os.getpid(), "instance": self.daemon.instance,
                **job.record_data}
        path = os.path.join(self.state_dir, f"{job.id}.json")
        try:
            atomic_write(path, json.dumps(data).encode(), 0o600, folder_mode=0o700)
            job.state_file = path
        except OSError:
            log.warning("cannot write the state file of job %s", job.id, exc_info=True)

    def _remove_state(self, job: Job) -> None:
        if job.state_file:
            try:
                os.unlink(job.state_file)
            except OSError:
                pass

    def start_cleanup(self) -> None:
        """Clean up after jobs whose daemon died (once, in the background)."""
        if self._cleanup_task is None:
            self._cleanup_task = asyncio.create_task(self.cleanup_stale(), name="jobs:cleanup")

    async def cleanup_stale(self) -> list[str]:
        """Jobs of dead daemons: stop their processes, hand them to their kind's cleanup."""
        cleaned: list[str] = []
        try:
            names = sorted(os.listdir(self.state_dir))
        except OSError:
            return cleaned
        for name in names:
            if not name.endswith(".json"):
                continue
            path = os.path.join(self.state_dir, name)
            try:
                with open(path, encoding="utf-8") as f:
                    data = json.load(f)
            except (OSError, ValueError):
                continue
            if data.get("instance") == self.daemon.instance or procs.alive(data.get("daemon_pid")):
                continue
            job_id = str(data.get("job", name[:-5]))
            try:
                await asyncio.to_thread(kill_groups, [int(p) for p in data.get("pgids", [])],
                                        job_id)
                await asyncio.to_thread(kill_marked, job_id)
                fn = _CLEANUPS.get(str(data.get("kind")))
                if fn is not None:
                    await fn(data)
            except Exception:  # noqa: BLE001 - one bad leftover must not stop the others
                log.warning("cleaning up after job %s failed", job_id, exc_info=True)
                continue
            try:
                os.unlink(path)
            except OSError:
                pass
            log.info("cleaned up after job %s, which died with an earlier daemon", job_id)
            cleaned.append(job_id)
        return cleaned


def registry(daemon: Hub) -> JobRegistry:
    """The daemon's job registry (the hub owns it), stale jobs cleaned up on first use."""
    daemon.jobs.start_cleanup()
    return daemon.jobs
