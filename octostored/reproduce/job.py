"""One reproduction, phase by phase: resolve, checkout, environment, run, compare.

This is the coroutine a :class:`~octostored.jobs.JobRegistry` job runs.  Each
phase reports through the job context (``octostore/job`` notifications) and
fails with a :class:`~octostored.jobs.JobError` that names the phase, says
what happened and what to do; the verdict is then ``failed`` and the result
keeps what was learnt so far.  Whatever happens (failure, cancel, daemon
stop) the ``finally`` block stops the processes, and removes the worktree
unless ``--keep-worktree`` was asked and the job was not cancelled.

The run phase lets the entry point make its own MLflow run, exactly as the
first time (MLflow's run-name generator draws from the global ``random``, so
a run made for the script, as ``mlflow run`` does with ``MLFLOW_RUN_ID``,
would change what a script seeded with ``random.seed`` draws next).  The run
is tagged ``octostore.job`` through ``MLFLOW_RUN_CONTEXT``; afterwards the
MLflow helper (in the reproduced environment) finds it, attaches the console
log and the ``octostore.reproduces`` tags, and, when the script died before
it made a run, makes one so that the failure is on record too.

The files the run read (:mod:`.inputs`) are checked in the resolve phase, before
anything is checked out, built or run: a missing one stops the job there, named with its
size, hash and why.  After checkout the git-ignored ones (and big changes the patch does not
carry) are provided read-only in the worktree from the user's clone, and the in-commit ones
are checked there; each input's case is a progress line and ``result.inputs``; an input that
differs makes the verdict ``diverged`` (``result.diverged_inputs``).  A notebook run runs the
copy of its notebook taken when it started, put at the notebook's path in the worktree.

The entry point runs under the console tee (:mod:`octostored.console.runner`), so
its console is also kept in ``.octostore/logs/`` of the repo, as ``octostore run``
keeps the original's, and the new run is tagged ``octostore.console_log`` with it
(the artifact ``octostore/console.log`` stays as well).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..capture import envlock as capture_envlock
from ..capture import files as capture_files
from ..console import helper_argv
from ..console import logformat as console_format
from ..jobs import JobContext, JobError
from . import compare, envbuild, envspec, proc, projectenv, trust, worktree
from . import inputs as run_inputs
from .interpreters import find_uv
from .mlflow_link import DROP_ENV, Helper, store_env
from .plan import Plan, Store, nb_copy_path, resolve

if TYPE_CHECKING:
    from ..index.root import Root
    from ..model import Run

PHASES = ("resolve", "checkout", "environment", "run", "compare")
HERE = os.path.dirname(os.path.abspath(__file__))
NOTEBOOK_RUNNER = os.path.join(HERE, "notebook_runner.py")
LOG_ARTIFACT_DIR = "octostore"
"""Artifact folder of the new run that holds ``console.log`` (and ``environment.log`` when the
environment was built, ``notebook.ipynb`` for a notebook)."""
TAIL = 30
"""Lines of the console log quoted in a failed verdict."""


@dataclass
class Request:
    run: Run
    experiment: str
    sets: dict[str, str] = field(default_factory=dict)
    env: str = "auto"
    tracking_uri: str | None = None
    python: str | None = None
    tolerance: float = 0.0
    ignore_metrics: list[str] = field(default_factory=list)
    keep_worktree: bool = False
    allow_differences: bool = False
    rebuild_env: bool = False
    artifact_dir: str | None = None
    plan: Plan | None = None
    """Resolved by the handler (what the person was shown and accepted), else resolved here."""


def work_dir(cache_dir: str) -> str:
    return os.path.join(cache_dir, "reproduce")


class LogSink:
    """Every output line goes to the job's notifications and, when open, to a file."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.file: Any = None
        self.path: str | None = None

    def open(self, path: str) -> None:
        self.close()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        self.file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def __call__(self, text: str) -> None:
        if self.file is not None:
            self.file.write(text + "\n")
            self.file.flush()
        self.ctx.log(text)


async def reproduce(ctx: JobContext, root: Root, req: Request, cache_dir: str) -> dict[str, Any]:
    job = ctx.job
    run = req.run
    result: dict[str, Any] = {"verdict": None, "run_id": run.run_id, "run_name": run.run_name,
                              "experiment": req.experiment, "new_run_id": None,
                              "overrides": req.sets, "tolerance": req.tolerance,
                              "ignore_metrics": req.ignore_metrics}
    job.result = result
    base = work_dir(cache_dir)
    wt: str | None = None
    helper: Helper | None = None
    sink = LogSink(ctx)
    cancelled = False
    plan: Plan | None = None
    helper_start: asyncio.Task[Helper] | None = None
    try:
        ctx.phase("resolve", f"run {run.run_id[:8]}")
        try:
            plan = req.plan or await resolve(
                root.path, run, req.experiment, root.index.sources, sets=req.sets,
                env=req.env, tracking_uri=req.tracking_uri, python=req.python,
                artifact_dir=req.artifact_dir)
        except JobError as exc:
            if exc.details.get("inputs"):
                result["inputs"] = exc.details["inputs"]
                for item in exc.details["inputs"]:
                    ctx.progress(item["detail"])
            raise
        _check_accepted(plan)
        result.update(commit=plan.commit, patch=plan.patch_digest,
                      entry_point=plan.entry.describe(), command=plan.command,
                      store={"uri": plan.store.uri, "why": plan.store.why},
                      notes=list(plan.notes),
                      inputs=[i.describe() for i in plan.inputs.items])
        ctx.progress(_resolved(plan))
        for item in plan.inputs.items:
            ctx.progress(item.detail)

        ctx.phase("checkout", f"commit {plan.commit[:10]}")
        wt = os.path.join(base, "worktrees", job.id)
        ctx.record(keep_worktree=False)
        await worktree.add(plan.repo, wt, plan.commit, ctx)
        if plan.patch:
            ctx.progress(f"applying the run's patch {plan.patch_digest[:12]}")  # type: ignore[index]
            await worktree.apply_patch(wt, plan.patch, ctx)
        result["notes"] += _copy_untracked(plan, wt)
        if plan.entry.kind == "notebook" and plan.entry.copy:
            _place_notebook(plan, wt)
            ctx.progress(f"the notebook {plan.entry.notebook} as it stood when the run started "
                         f"(copy {plan.entry.copy[:12]})")
        before = {i.path: i.case for i in plan.inputs.items}
        try:
            run_inputs.provide(plan.inputs, wt)
        finally:
            result["inputs"] = [i.describe() for i in plan.inputs.items]
        for item in plan.inputs.items:
            if before.get(item.path) != item.case:
                ctx.progress(item.detail)
        ctx.progress(f"checked out at {wt}")

        ctx.phase("environment", plan.env_kind)
        spec = await _env_spec(plan, wt)
        if plan.lock is not None and spec.original_lock is None:
            spec.original_lock = plan.lock[0]
        if plan.entry.kind == "notebook" and spec.kind != "current":
            spec.extras = list(envspec.NOTEBOOK_EXTRAS)
        blocking = [s for s in spec.skipped if s.get("blocking")]
        if blocking and not req.allow_differences:
            raise JobError("environment", "the run's environment cannot be rebuilt as it was: "
                           + "; ".join(f"{s['name']}: {s['reason']}" for s in blocking),
                           "allow the differences with --allow-env-differences",
                           differences=blocking)
        logs = os.path.join(base, "logs", job.id)
        sink.open(os.path.join(logs, "environment.log"))
        cache = envbuild.EnvCache(os.path.join(base, "envs"))
        built = await cache.ensure(spec, ctx=ctx, allow=req.allow_differences,
                                   rebuild=req.rebuild_env, on_line=sink)
        sink.close()
        env_log = sink.path if not built.cached else None
        editable = {p["name"] for p in (spec.original_lock or {}).get("packages", [])
                    if p.get("editable")}
        diffs = [{k: v for k, v in d.items() if k != "blocking"} for d in built.differences]
        diffs += envspec.diff_locks(spec.original_lock, built.lock, editable)
        result["environment"] = {**spec.describe(), **built.describe(), "differences": diffs}
        ctx.progress(("cached" if built.cached else f"built in {built.seconds:.1f} s")
                     + f": Python {built.version}, {spec.source}")

        ctx.phase("run", plan.entry.display())
        # The helper imports MLflow (seconds) while the entry point starts, unless the
        # experiment must be made first (then by the helper: beside the store, so that its
        # artifacts do not land in the worktree).
        helper_start = asyncio.create_task(Helper.start(built.python, plan.store, ctx, sink))
        exp_id = known_experiment(root, plan.store, req.experiment)
        if exp_id is None:
            helper = await helper_start
            exp_id = (await helper.call({"op": "experiment", "name": req.experiment}))[
                "experiment_id"]
        log_path = os.path.join(logs, "console.log")
        sink.open(log_path)
        cmd, cwd = _command(plan, wt, built.python, logs, req.sets)
        console = _console_log(plan.repo, job.id, result)
        if console is not None:
            cmd = helper_argv("runner", ["--log", console, "--", *cmd])
        t0 = time.monotonic()
        res = await proc.run(cmd, cwd=cwd, env=_run_env(plan, built, spec, wt, req.experiment,
                                                        job.id, result.get("console_log")),
                             ctx=ctx, on_line=sink, tail=TAIL)
        sink.close()
        result["run_seconds"] = round(time.monotonic() - t0, 3)
        artifacts = [[log_path, LOG_ARTIFACT_DIR]]
        if env_log:
            artifacts.append([env_log, LOG_ARTIFACT_DIR])
        nb_out = os.path.join(logs, "notebook.ipynb")
        if os.path.exists(nb_out):
            artifacts.append([nb_out, LOG_ARTIFACT_DIR])
        if helper is None:
            helper = await helper_start
        finish_msg = {"op": "finish", "job": job.id, "experiment_id": exp_id,
                      "artifacts": artifacts, "run_name": _run_name(run),
                      "status": "FINISHED" if res.code == 0 else "FAILED",
                      **_new_run_tags(plan, req, job.id, built, spec,
                                      result.get("console_log"))}
        fin = await helper.call(finish_msg)
        new_id = fin["run_id"]
        result.update(new_run_id=new_id, new_experiment_id=exp_id,
                      new_run_status=fin["status"], other_runs=fin.get("other_runs") or [])
        result["notes"] += fin.get("warnings") or []
        if fin.get("other_runs"):
            result["notes"].append(f"the entry point made {len(fin['other_runs']) + 1} runs; "
                                   f"{new_id} (the first top-level one) is compared")

        ctx.phase("compare")
        if res.code != 0 or fin["status"] != "FINISHED" or fin.get("created"):
            why = (f"the entry point exited with code {res.code}" if res.code != 0
                   else "the entry point logged no run" if fin.get("created")
                   else f"the new run ended {fin['status']}")
            raise JobError("run", why, "see the log tail; the whole console log is the "
                           f"artifact {LOG_ARTIFACT_DIR}/{os.path.basename(log_path)} of run "
                           f"{new_id}", exit_code=res.code, log_tail=res.lines[-TAIL:])
        rows = compare.compare_metrics(plan.original_metrics, fin["metrics"], req.tolerance,
                                       set(req.ignore_metrics))
        differing = plan.inputs.differing()
        verdict = compare.verdict(rows, differing)
        result.update(verdict=verdict, metrics=rows, diverged_inputs=differing,
                      diverged=[r["key"] for r in rows if r["status"] in ("diverged", "missing")],
                      params=compare.compare_params(plan.original_params, fin["params"],
                                                    req.sets))
        await helper.call({"op": "tag", "run_id": new_id, "tags": {
            "octostore.verdict": verdict,
            "octostore.verdict.detail": compare.summary(rows, differing)[:4000]}})
        ctx.progress(f"{verdict}: {compare.summary(rows, differing)}")
        await helper.close()
        helper = None
        await root.sync()
        result["clock"] = root.index.clock
        return result
    except JobError as exc:
        result["verdict"] = "failed"
        result["failed"] = exc.to_dict()
        if helper is None and helper_start is not None:
            helper = await _started(helper_start)
        marked = False
        if helper is not None and job.phase in ("run", "compare"):
            marked = await _mark_failed(helper, result, exc.message, job.id, sink, req, run)
        if helper is not None:
            await helper.close()
            helper = None
        if marked:
            await root.sync()
        exc.result = result
        raise
    except asyncio.CancelledError:
        cancelled = True
        if helper is None and helper_start is not None and helper_start.done():
            helper = await _started(helper_start)
        if helper is not None and job.phase in ("run", "compare"):
            await asyncio.shield(_mark_failed(helper, result, f"cancelled during {job.phase}",
                                              job.id, sink, req, run, status="KILLED"))
        raise
    finally:
        sink.close()
        if helper_start is not None and not helper_start.done():
            helper_start.cancel()  # Helper.start stops its process when cancelled
            await asyncio.wait({helper_start})
        elif helper is None and helper_start is not None:
            helper = await _started(helper_start)
        if helper is not None:
            await asyncio.shield(helper.close())
        if wt is not None and plan is not None:
            if req.keep_worktree and not cancelled:
                result["worktree"] = wt
                ctx.record(keep_worktree=True)
            else:
                await asyncio.shield(worktree.remove(plan.repo, wt))
        shutil.rmtree(os.path.join(base, "logs", job.id), ignore_errors=True)


async def _started(task: asyncio.Task[Helper]) -> Helper | None:
    """The helper a finished start task made, or None when it failed to start."""
    try:
        return await task
    except (JobError, OSError, asyncio.CancelledError):
        return None


def _check_accepted(plan: Plan) -> None:
    """Nothing a repo recorded runs (nor builds) unless this user accepted it
    (:mod:`.trust`); the handler asks first, this holds whoever starts the job."""
    digest = plan.command.get("hash") or ""
    if not trust.is_accepted(plan.repo, digest):
        raise JobError("resolve", "the command this run recorded has not been accepted on "
                       f"this machine ({plan.command.get('display', '')[:200]})",
                       "check it, then reproduce again and accept it (octostore reproduce "
                       "asks, or takes --yes)", command=plan.command)


def known_experiment(root: Root, store: Store, name: str) -> str | None:
    """The id of experiment ``name`` in ``store`` when the index already knows it there."""
    if store.kind == "sqlite":
        path = store.uri[len("sqlite:///"):]
    elif store.kind == "file":
        path = store.uri[len("file://"):]
    else:
        return None
    real = os.path.realpath(path)
    sids = {sid for sid, info in root.index.sources.items()
            if os.path.realpath(info.path) == real and not info.committed}
    for exp in root.index.experiments.values():
        if exp.source in sids and exp.name == name and exp.lifecycle_stage == "active":
            return exp.experiment_id
    return None


def _resolved(plan: Plan) -> str:
    parts = [f"commit {plan.commit[:10]}"]
    if plan.patch_digest:
        parts.append(f"patch {plan.patch_digest[:12]}")
    parts.append(f"{plan.entry.kind}: {plan.entry.display()}")
    parts.append(f"environment: {plan.env_kind}")
    return ", ".join(parts)


def _copy_untracked(plan: Plan, wt: str) -> list[str]:
    notes = []
    for rel in plan.untracked:
        norm = os.path.normpath(rel)
        if os.path.isabs(norm) or norm == ".." or norm.startswith(".." + os.sep):
            continue  # a tag from someone else's machine: never a path outside the repo
        src = os.path.join(plan.repo, norm)
        dest = os.path.join(wt, norm)
        if os.path.isfile(src) and not os.path.lexists(dest):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy2(src, dest)
            notes.append(f"{rel} was untracked at run time; copied from your working tree "
                         "(it may have changed since)")
    return notes


def _place_notebook(plan: Plan, wt: str) -> None:
    """The notebook's copy (as it stood when the run started) at its path in the checkout."""
    assert plan.entry.copy is not None and plan.entry.notebook is not None
    dest = os.path.join(wt, plan.entry.notebook)
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    top = os.path.join(os.path.realpath(wt), "")
    if not os.path.join(os.path.realpath(parent), "").startswith(top):
        raise JobError("checkout", f"the notebook's folder {os.path.dirname(plan.entry.notebook)}"
                       " leads outside the checkout (a symbolic link at the run's commit)",
                       "reproduce a run whose notebook is a plain file of the repo")
    try:
        if os.path.isdir(dest) and not os.path.islink(dest):
            shutil.rmtree(dest)
        elif os.path.lexists(dest):
            os.unlink(dest)
        shutil.copyfile(nb_copy_path(plan.repo, plan.entry.copy), dest)
    except OSError as exc:
        raise JobError("checkout", f"the notebook's copy cannot be put in the checkout "
                       f"({exc.strerror or exc})", "check that the cache folder is "
                       "writable and has space, then try again") from None


async def _env_spec(plan: Plan, wt: str) -> envspec.EnvSpec:
    try:
        if plan.env_kind == "captured":
            assert plan.lock is not None
            lock, digest, where = plan.lock
            return envspec.from_lock(lock, digest, where)
        if plan.env_kind == "model":
            assert plan.model_dir is not None
            return projectenv.from_model(plan.model_dir, plan.repo)
        if plan.env_kind == "current":
            python = plan.interpreter
            if not python:
                raise envspec.EnvUnavailable("--env current needs an interpreter",
                                             "pass --python PATH")
            return envspec.EnvSpec("current", f"the interpreter {python}", interpreter=python)
        exported = None
        folder = projectenv.uv_lock_dir(wt, plan.entry.cwd)
        uv = find_uv()
        if folder is not None and uv:
            code, out, err = await proc.output(
                [uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project",
                 "--no-header", "--format", "requirements-txt"], cwd=folder,
                env=envbuild.build_env(), timeout=300)
            if code == 0:
                exported = out.splitlines()
        return projectenv.from_project(wt, plan.entry.cwd, plan.commit, exported)
    except envspec.EnvUnavailable as exc:
        raise JobError("environment", exc.message, exc.remedy) from None


def _run_name(run: Run) -> str:
    return f"{run.run_name or run.run_id[:8]}-repro"


def _console_log(repo: str, job_id: str, result: dict[str, Any]) -> str | None:
    """Where the entry point's console goes in the repo (``result["console_log"]`` gets the
    tag value), or None when ``.octostore/logs/`` cannot be made there (a note says so)."""
    path = console_format.log_path(repo, f"{console_format.new_log_id()}-{job_id}")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError as exc:
        result["notes"].append(f"the console is not kept in {console_format.LOGS_DIR} "
                               f"({exc.strerror or exc}); it is in the artifact "
                               f"{LOG_ARTIFACT_DIR}/console.log")
        return None
    result["console_log"] = console_format.rel_path(repo, path)
    return path


def _new_run_tags(plan: Plan, req: Request, job_id: str, built: envbuild.BuiltEnv,
                  spec: envspec.EnvSpec, console_log: str | None = None,
                  ) -> dict[str, dict[str, str]]:
    """``tags`` for the new run, and ``created_tags`` for a run the helper has to make."""
    orig = plan.original_tags
    tags = {
        "octostore.reproduces": plan.run_id,
        "octostore.job": job_id,
        "octostore.reproduce.env": spec.kind,
        "octostore.cwd": plan.entry.cwd,
        "octostore.python": built.version,
        "octostore.git.dirty": orig.get("octostore.git.dirty", "false"),
    }
    if plan.patch_digest:
        tags["octostore.git.patch"] = plan.patch_digest
    if plan.entry.argv and plan.entry.kind in ("argv", "script"):
        tags["octostore.argv"] = json.dumps(plan.entry.argv)[:5000]
    if req.sets:
        tags["octostore.overrides"] = json.dumps(req.sets)[:5000]
    if console_log:
        tags[console_format.TAG] = console_log
    if built.lock:
        digest, text = envbuild.lock_digest(built.lock)
        tags["octostore.env"] = digest
        _keep_lock(plan.repo, digest, text)
    created = {
        "mlflow.source.git.commit": plan.commit,
        "mlflow.source.type": orig.get("mlflow.source.type", "LOCAL"),
        "mlflow.source.name": orig.get("mlflow.source.name") or plan.entry.display()[:500],
        "mlflow.user": _user(),
    }
    if orig.get("mlflow.project.entryPoint"):
        created["mlflow.project.entryPoint"] = orig["mlflow.project.entryPoint"]
    return {"tags": tags, "created_tags": created}


def _keep_lock(repo: str, digest: str, text: str) -> None:
    """Keep the reproduced environment's lock where ``octostore commit`` finds it.

    Not in the repo (the user's work tree is never touched): in the capture cache,
    which commit reads when ``.octostore/envs/`` lacks a lock.
    """
    if os.path.exists(capture_files.lock_path(repo, digest)):
        return
    path = os.path.join(capture_envlock.cache_dir(), "envs", digest + ".json")
    try:
        capture_files.store_once(path, text.encode("utf-8"))
    except OSError:
        pass


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _command(plan: Plan, wt: str, python: str, logs: str,
             sets: dict[str, str]) -> tuple[list[str], str]:
    entry = plan.entry
    cwd = os.path.normpath(os.path.join(wt, entry.cwd))
    if entry.kind == "mlproject":
        return ["bash", "-c", entry.command or ""], cwd
    if entry.kind == "notebook":
        assert entry.notebook is not None
        out = os.path.join(logs, "notebook.ipynb")
        return [python, NOTEBOOK_RUNNER, os.path.join(wt, entry.notebook), out,
                json.dumps(sets)], cwd
    argv = list(entry.argv or [])
    if argv and argv[0] == "python":
        argv[0] = python
    return argv, cwd


def _run_env(plan: Plan, built: envbuild.BuiltEnv, spec: envspec.EnvSpec, wt: str,
             experiment: str, job_id: str, console_log: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
    bindir = os.path.dirname(built.python)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    if built.tool != "current":
        env["VIRTUAL_ENV"] = built.dir
    roots = envspec.pythonpath_roots(wt, spec.pythonpath)
    if roots:
        env["PYTHONPATH"] = os.pathsep.join(roots)
    env.update(store_env(plan.store))
    # The script makes its own run, as it did the first time (MLflow's run-name generator
    # draws from the global `random`: a run made for it would change what a script seeded
    # with random.seed() draws next).  The job's tag lets the helper find that run.
    env["MLFLOW_EXPERIMENT_NAME"] = experiment
    context = {"octostore.job": job_id}
    if console_log:
        context[console_format.TAG] = console_log
    env["MLFLOW_RUN_CONTEXT"] = json.dumps(context)
    env["OCTOSTORE_CAPTURE"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def _mark_failed(helper: Helper, result: dict[str, Any], why: str, job_id: str,
                       sink: LogSink, req: Request, run: Run, status: str = "FAILED") -> bool:
    """Put the failure on record: the new run (made here if the script made none) gets
    its log, ends ``status`` and is tagged ``octostore.verdict=failed``."""
    try:
        new_id = result.get("new_run_id")
        if not new_id:
            artifacts = [[sink.path, LOG_ARTIFACT_DIR]] if sink.path and os.path.exists(
                sink.path) else []
            sink.close()
            exp = await helper.call({"op": "experiment", "name": req.experiment}, timeout=60)
            fin = await helper.call({
                "op": "finish", "job": job_id, "experiment_id": exp["experiment_id"],
                "artifacts": artifacts, "status": status, "run_name": _run_name(run),
                "tags": {"octostore.reproduces": run.run_id, "octostore.job": job_id,
                         **({console_format.TAG: result["console_log"]}
                            if result.get("console_log") else {})},
                "created_tags": {"mlflow.source.git.commit": result.get("commit") or "",
                                 "mlflow.user": _user()}}, timeout=120)
            new_id = fin["run_id"]
            result.update(new_run_id=new_id, new_run_status=fin["status"])
        await helper.call({"op": "tag", "run_id": new_id, "tags": {
            "octostore.verdict": "failed", "octostore.verdict.detail": why[:4000]}}, timeout=60)
        return True
    except (TimeoutError, JobError, OSError):
        return False


async def cleanup_after_crash(data: dict[str, Any]) -> None:
    """A reproduction whose daemon died: remove its worktree and unfinished env builds."""
    path, repo = data.get("worktree"), data.get("repo")
    if path and repo and not data.get("keep_worktree"):
        await worktree.remove(repo, path)
    env_dir = data.get("env_dir")
    if env_dir:
        await asyncio.to_thread(envbuild.remove_unfinished, os.path.dirname(env_dir))
