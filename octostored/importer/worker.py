"""MLflow's side of ``octostore import``, in its own process.

Run as ``python -m octostored.importer.worker`` (by :mod:`.spawn`) under a Python that has
MLflow; standard library + MLflow only.  It reads one JSON request on stdin (``source``,
``destination``, ``dry_run``: see :mod:`.where`) and writes JSON lines on its real stdout:
``{"hello": {"mlflow": VERSION}}`` once MLflow is imported (or ``{"fatal": "..."}`` when it
cannot be), ``{"progress": {"done": N, "total": M, ...}}`` as runs are copied, then
``{"result": {...}}`` (the summary) or ``{"fatal": "..."}`` (one sentence).  Anything
MLflow prints goes to stderr (fd 1 is pointed at fd 2 before MLflow loads).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any


def _take_stdout() -> Any:
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1 << 16)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def main() -> int:
    out = _take_stdout()

    def send(msg: dict[str, Any]) -> None:
        out.write(json.dumps(msg, default=str) + "\n")
        out.flush()

    try:
        req = json.loads(sys.stdin.readline())
    except ValueError:
        send({"fatal": "the import worker got no request"})
        return 2
    try:
        import mlflow

        from .copier import Copier, ImportFailure
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        send({"fatal": f"MLflow cannot be imported by {sys.executable} "
                       f"({type(exc).__name__}: {exc})"})
        return 3
    send({"hello": {"mlflow": mlflow.__version__, "python": sys.executable}})
    try:
        result = Copier(req, send).run()
    except ImportFailure as exc:
        send({"fatal": str(exc)})
        return 2
    except Exception as exc:  # noqa: BLE001 - one sentence for the CLI, the trace on stderr
        traceback.print_exc()
        text = str(exc).strip().splitlines()
        send({"fatal": f"{type(exc).__name__}: {text[0][:500] if text else ''}"})
        return 2
    send({"result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
