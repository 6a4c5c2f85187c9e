"""The daemon's side of the MLflow helper: one process per job, spoken to line by line.

:mod:`.mlflow_helper` runs in the reproduced environment (the daemon never imports
MLflow).  :class:`Helper` starts it in its own process group with the job's marker,
sends one JSON command per line and reads until the answer's mark; every other line
is MLflow talking and goes to the job's log with an ``[mlflow]`` prefix.  An answer
that is not ``ok`` becomes a :class:`~octostored.jobs.JobError` in the job's phase.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..jobs import JobContext, JobError
from ..procs import JOB_ENV
from . import proc
from .mlflow_helper import MARK

if TYPE_CHECKING:
    from .plan import Store

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlflow_helper.py")
HELPER_TIMEOUT = 600.0
DROP_ENV = ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH", "CONDA_PREFIX", "MLFLOW_RUN_ID",
            "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_CONTEXT",
            "MLFLOW_TRACKING_URI", "OCTOSTORE_RUN_ARGV", "UV_PROJECT_ENVIRONMENT")
"""Variables of the daemon's environment that must not reach the run or the helper."""


def store_env(store: Store) -> dict[str, str]:
    """The environment variables that point MLflow at ``store``."""
    env = {"MLFLOW_TRACKING_URI": store.uri}
    if store.kind == "file":
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    return env


class Helper:
    """The MLflow-side helper process (:mod:`.mlflow_helper`), one per job."""

    def __init__(self, process: asyncio.subprocess.Process, ctx: JobContext,
                 sink: Callable[[str], None]) -> None:
        self.process = process
        self.ctx = ctx
        self.sink = sink

    @classmethod
    async def start(cls, python: str, store: Store, ctx: JobContext,
                    sink: Callable[[str], None]) -> Helper:
        """Start the helper with ``python`` against ``store``; wait until MLflow is imported.

        Raises:
            JobError: MLflow cannot be used in that environment (phase ``run``).
        """
        env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
        env.update(store_env(store))
        env.update({JOB_ENV: ctx.job.id, "OCTOSTORE_CAPTURE": "0", "PYTHONUNBUFFERED": "1"})
        os.makedirs(store.helper_cwd, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            python, HELPER, cwd=store.helper_cwd, env=env, start_new_session=True,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, limit=1 << 24)
        ctx.track(process.pid)
        helper = cls(process, ctx, sink)
        try:
            first = await helper._answer(HELPER_TIMEOUT)
        except BaseException:  # cancelled (or broken) while MLflow was importing
            await asyncio.shield(helper.close())
            raise
        if not first.get("ok"):
            await helper.close()
            raise JobError("run", first.get("error") or "the MLflow helper did not start",
                           "the reproduced environment must have mlflow installed (the run "
                           "logged with it); check the environment's requirements")
        return helper

    async def call(self, msg: dict[str, Any], timeout: float = HELPER_TIMEOUT) -> dict[str, Any]:
        """Send one command; its answer (raises JobError when MLflow failed)."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(msg) + "\n").encode())
            await self.process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise JobError(self.ctx.job.phase, "the MLflow helper died",
                           "see the job's log") from None
        answer = await self._answer(timeout)
        if not answer.get("ok"):
            raise JobError(self.ctx.job.phase, f"MLflow could not {msg.get('op')} the run: "
                           f"{answer.get('error')}", "see the job's log",
                           trace=answer.get("trace", ""))
        return answer

    async def _answer(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise JobError(self.ctx.job.phase, "the MLflow helper did not answer in time",
                               "see the job's log")
            raw = await asyncio.wait_for(self.process.stdout.readline(), left)
            if not raw:
                raise JobError(self.ctx.job.phase, "the MLflow helper exited",
                               "see the job's log; the environment's mlflow may be broken")
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if text.startswith(MARK):
                return json.loads(text[len(MARK):])
            self.sink(f"[mlflow] {text}")

    async def close(self) -> None:
        p = self.process
        if p.returncode is None and p.stdin is not None:
            try:
                p.stdin.write(b'{"op": "exit"}\n')
                await p.stdin.drain()
                p.stdin.close()
                await asyncio.wait_for(p.wait(), 10)
            except (TimeoutError, BrokenPipeError, ConnectionResetError):
                pass
        if p.returncode is None:
            await proc.kill_group(p)
        self.ctx.untrack(p.pid)
