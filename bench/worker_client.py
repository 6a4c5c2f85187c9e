"""The harness's end of :mod:`bench.mlflow_worker`: one long-lived MLflow process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WorkerError(RuntimeError):
    pass


class MlflowWorker:
    def __init__(self, log_path: str) -> None:
        env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true",
                   PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self._log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the worker
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.mlflow_worker"], cwd=REPO, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1)
        self.log_path = log_path

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise WorkerError(f"the MLflow worker died during {cmd}; see {self.log_path}")
            if line.startswith("@@"):
                reply = json.loads(line[2:])
                if not reply.pop("ok"):
                    raise WorkerError(f"MLflow worker {cmd}: {reply['error']}\n{reply['traceback']}")
                return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
