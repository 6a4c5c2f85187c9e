"""Run the import worker (:mod:`.worker`) and follow it (the CLI's side; no MLflow here).

The request goes as one JSON line on the worker's stdin; its stdout is JSON lines (hello,
progress, result or fatal); its stderr (MLflow talking, a trace) goes to a temporary file
whose tail is shown when the worker dies without saying why.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable
from typing import Any

from .where import ImportRefused, worker_env, worker_python


def run_worker(req: dict[str, Any], cwd: str, progress: Callable[[dict[str, Any]], None],
               started: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """The worker's summary; ``started`` gets the worker's hello (MLflow is imported),
    ``progress`` each progress message.

    Raises:
        ImportRefused: MLflow is not available, or the import failed (one sentence).
    """
    python = worker_python()
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen([python, "-m", "octostored.importer.worker"], cwd=cwd,
                                    env=worker_env(req["source"]), stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err)
        except OSError as exc:
            raise ImportRefused(f"cannot start {python} ({exc.strerror}); set "
                                "OCTOSTORE_MLFLOW_PYTHON to a Python that has MLflow") from None
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write((json.dumps(req) + "\n").encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        hello = result = fatal = None
        try:
            for raw in proc.stdout:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                if "hello" in msg:
                    hello = msg["hello"]
                    if started is not None:
                        started(hello)
                elif "progress" in msg:
                    progress(msg["progress"])
                elif "result" in msg:
                    result = msg["result"]
                elif "fatal" in msg:
                    fatal = msg["fatal"]
        finally:
            code = proc.wait()
        if result is not None:
            result["mlflow"] = (hello or {}).get("mlflow")
            return result
        if hello is None:
            raise ImportRefused(f"{fatal or f'the import worker could not start ({python})'}; "
                                "install mlflow there, or set OCTOSTORE_MLFLOW_PYTHON to a "
                                "Python that has it")
        if fatal:
            raise ImportRefused(fatal)
        err.seek(0)
        tail = err.read().decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise ImportRefused(f"the import worker exited with code {code} ({tail[0][:300]}); "
                            "nothing after its last reported run was imported")
