"""reproduce, jobs, cancel: start a reproduction job, list jobs, stop one.

Thin by design: check params, find the run, start the job
(:func:`octostored.reproduce.job.reproduce`) on the daemon's job registry
(:mod:`octostored.jobs`), and answer at once with the job's id; progress
comes as ``octostore/job`` notifications to this connection and to every
connection subscribed to the root.  ``wait: true`` answers only when the
job has finished, with the job in full (scripts that want one call).

``octostore/reproduce`` params: ``root``, ``run_id`` (id or 6+ character
prefix), ``set`` (``{"key": "value"}`` or ``["key=value", ...]``), ``env``
(``auto``, ``captured``, ``model``, ``project``, ``current``), ``python``
(the interpreter for ``env: current``), ``tolerance`` (relative; default
``[tool.octostore.reproduce] tolerance`` or 0 = exact), ``ignore_metrics``,
``tracking_uri`` (where the new run goes; default: the original's store),
``keep_worktree``, ``allow_env_differences``, ``rebuild_env``, ``wait``,
``confirmed``, ``dry_run``.

The command a reproduction runs comes from the repo (a run's ``octostore.argv``
tag, its MLproject entry point, ...), so the handler resolves it first
(:func:`octostored.reproduce.plan.resolve`) and starts the job only when this
user accepted that exact command for this repo before
(:mod:`octostored.reproduce.trust`) or sends ``confirmed: true`` now (which
records the acceptance); otherwise it answers ``CONFIRMATION_REQUIRED`` with
``data.command``, the display of :mod:`octostored.reproduce.command`.
``dry_run: true`` answers with the plan (``command`` and ``accepted``
included) and starts nothing.  A run that cannot be resolved starts a job
that fails in its resolve phase, saying why, as before; so does a run whose
recorded inputs are missing (:mod:`octostored.reproduce.inputs`): nothing is
asked and nothing runs, and the job's error and result carry ``inputs``, each
``{path, size, sha256, why, case, detail}``.

``octostore/jobs`` params: ``root`` (only its jobs), ``job`` (one job),
``log_lines`` (tail length, default 50), ``follow`` (true: this connection
gets the notifications of the listed running jobs, e.g. after reconnecting).

``octostore/cancel`` params: ``job``.  Answers once the job has stopped
its processes and removed its worktree.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any

from ... import jobs
from ..errors import (CannotReproduce, ConfirmationRequired, InvalidParams, JobNotFound,
                      OctostoreError)
from ..params import Params
from ..register import method, rooted
from .artifacts import artifact_dir
from .lookup import find_run

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from ...hub import Hub
    from ...index.root import Root

def _cleanup_registered() -> None:
    from ...reproduce.job import cleanup_after_crash

    jobs.register_cleanup("reproduce", cleanup_after_crash)


def register(ls: LanguageServer, daemon: Hub) -> None:
    _cleanup_registered()
    registry = jobs.registry(daemon)

    @rooted(ls, daemon, "octostore/reproduce")
    async def reproduce(ls: LanguageServer, p: Params, root: Root) -> dict[str, Any]:
        from ...jobs import JobError
        from ...reproduce import job as job_mod
        from ...reproduce import overrides, trust
        from ...reproduce.plan import ENV_KINDS, config, resolve

        run_id = p.str("run_id", required=True) or ""
        try:
            run = find_run(root, run_id)
        except OctostoreError:
            await root.sync()  # a run logged or committed a moment ago
            run = find_run(root, run_id)
        try:
            sets = overrides.parse_sets(p.raw.get("set"))
        except overrides.CannotOverride as exc:
            raise InvalidParams(exc.message, exc.remedy) from None
        env = p.choice("env", ENV_KINDS, "auto")
        python = p.str("python")
        if env == "current" and not python:
            raise InvalidParams("octostore/reproduce: env 'current' needs 'python'",
                                "pass the interpreter to run with, e.g. --python .venv/bin/python")
        cfg = config(root.path)
        tolerance = p.float("tolerance")
        if tolerance is None:
            tolerance = cfg.get("tolerance", 0.0)
        if tolerance < 0:
            raise InvalidParams("octostore/reproduce: 'tolerance' must be 0 or more",
                                "pass a relative tolerance such as 1e-6")
        ignore = p.str_list("ignore_metrics") or cfg.get("ignore_metrics", [])
        if run.status == "RUNNING":
            raise CannotReproduce(f"run {run.run_id[:8]} is still running",
                                  "wait for it to finish, then reproduce it")
        exp = root.index.experiments.get(run.experiment_key or run.experiment_id)
        req = job_mod.Request(
            run=dataclasses.replace(run), experiment=exp.name if exp else "Default", sets=sets,
            env=env, tracking_uri=p.str("tracking_uri"), python=python, tolerance=tolerance,
            ignore_metrics=ignore, keep_worktree=p.bool("keep_worktree", False),
            allow_differences=p.bool("allow_env_differences", False),
            rebuild_env=p.bool("rebuild_env", False), artifact_dir=artifact_dir(run))
        confirmed = p.bool("confirmed", False)
        dry_run = p.bool("dry_run", False)
        wait = p.bool("wait", False)
        try:
            req.plan = await resolve(root.path, req.run, req.experiment, root.index.sources,
                                     sets=sets, env=env, tracking_uri=req.tracking_uri,
                                     python=python, artifact_dir=req.artifact_dir)
        except JobError as exc:
            if dry_run:
                raise CannotReproduce(exc.message, exc.remedy, phase=exc.phase,
                                      **({"inputs": exc.details["inputs"]}
                                         if exc.details.get("inputs") else {})) from None
            # the job fails in its resolve phase and says why, as any failed reproduction
        if dry_run:
            assert req.plan is not None
            return {"plan": req.plan.describe(), "command": req.plan.command,
                    "accepted": trust.is_accepted(req.plan.repo, req.plan.command["hash"])}
        if req.plan is not None:
            command = req.plan.command
            if not trust.is_accepted(req.plan.repo, command["hash"]):
                if not confirmed:
                    unusual = (" (unusual: " + "; ".join(command["reasons"]) + ")"
                               if command["unusual"] else "")
                    raise ConfirmationRequired(
                        f"run {run.run_id[:8]} would run a command that its repo recorded and "
                        f"that you have not accepted on this machine{unusual}",
                        "check data.command, then send the request again with confirmed: true "
                        "(`octostore reproduce` asks, or takes --yes)", command=command)
                try:
                    trust.accept(req.plan.repo, command["hash"], command["display"])
                except OSError as exc:
                    raise CannotReproduce(
                        f"cannot record the accepted command in {trust.store_path()} "
                        f"({exc.strerror or exc})", "make your state folder writable") from None
        summary = {"run_id": run.run_id, "set": sets, "env": env, "tolerance": tolerance}
        job = registry.start("reproduce", root.path,
                             lambda ctx: job_mod.reproduce(ctx, root, req, daemon.cache_dir),
                             owner=ls, phases=job_mod.PHASES, params=summary)
        if wait and job.task is not None:
            await asyncio.shield(asyncio.wait({job.task}))
            return job.to_dict()
        return {"job": job.id, "kind": job.kind, "root": root.path, "run_id": run.run_id,
                "state": job.state, "phases": list(job.phases)}

    @method(ls, "octostore/jobs")
    async def jobs_(ls: LanguageServer, params: Any) -> dict[str, Any]:
        p = Params("octostore/jobs", params)
        job_id = p.str("job")
        log_lines = p.int("log_lines", 50, lo=0, hi=jobs.LOG_TAIL) or 0
        follow = p.bool("follow", False)
        if job_id:
            job = registry.get(job_id)
            if job is None:
                raise JobNotFound(f"no job {job_id}", "list the jobs with `octostore jobs`")
            found = [job]
        else:
            root_arg = p.str("root")
            root_path = (await daemon.root(root_arg)).path if root_arg else None
            found = registry.list(root_path)
        if follow:
            for j in found:
                if not j.finished:
                    j.owners.add(ls)
        return {"jobs": [j.to_dict(log_lines) for j in found]}

    @method(ls, "octostore/cancel")
    async def cancel(ls: LanguageServer, params: Any) -> dict[str, Any]:
        p = Params("octostore/cancel", params)
        job_id = p.str("job", required=True) or ""
        job = registry.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id}", "list the jobs with `octostore jobs`")
        was = job.state
        await registry.cancel(job_id)
        return {"job": job.id, "cancelled": was == "running" and job.state == "cancelled",
                "state": job.state, "phase": job.phase, "result": job.result}
