"""Give the demo a history: train a handful of runs if it has none yet.

octostore is only interesting with runs to list and compare, so this script seeds
the demo's MLflow store with six runs over a small hyperparameter grid. Each run is
an ordinary ``python train.py ...`` subprocess with the working directory set to
this folder, exactly as a user would train one, so the runs land in the default
store ``demo/mlflow.db`` (artifacts in ``demo/mlruns``).

It is idempotent: if ``demo/mlflow.db`` exists the demo already has runs and
nothing is done. If a run fails, the store this invocation started is removed
again, so that "no mlflow.db" keeps meaning "no runs" and the next call retries
from scratch, and the script exits non-zero with one sentence saying what failed.

Usage: ``python demo/prepare.py`` (from anywhere; the interpreter running it is the
one used for training).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STORE = HERE / "mlflow.db"
ARTIFACTS = HERE / "mlruns"

# Chosen to give visibly different metrics and training curves while keeping every
# fit under a couple of seconds.
GRID: list[dict[str, int]] = [
    {"n_estimators": 50, "max_depth": 4, "min_samples_leaf": 1, "seed": 42},
    {"n_estimators": 100, "max_depth": 8, "min_samples_leaf": 1, "seed": 42},
    {"n_estimators": 200, "max_depth": 6, "min_samples_leaf": 2, "seed": 42},
    {"n_estimators": 100, "max_depth": 12, "min_samples_leaf": 1, "seed": 42},
    {"n_estimators": 150, "max_depth": 0, "min_samples_leaf": 3, "seed": 42},
    {"n_estimators": 100, "max_depth": 8, "min_samples_leaf": 5, "seed": 7},
]


def train_command(params: dict[str, int]) -> list[str]:
    cmd = [sys.executable, "train.py"]
    for name, value in params.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    return cmd


def child_env() -> dict[str, str]:
    # A tracking URI or active run inherited from the caller's shell would send the
    # runs somewhere other than demo/mlflow.db; the demo must use the default store.
    env = dict(os.environ)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID",
                 "MLFLOW_EXPERIMENT_NAME"):
        env.pop(name, None)
    # These machines set PYTHONDONTWRITEBYTECODE=1 and the venv ships no bytecode, so
    # every run would recompile mlflow, pandas and scikit-learn from source (about 10 s
    # of each run's 15 s). Caching the bytecode outside the tree keeps the tree clean
    # and brings later runs down to a few seconds.
    if env.get("PYTHONDONTWRITEBYTECODE") and not env.get("PYTHONPYCACHEPREFIX"):
        env.pop("PYTHONDONTWRITEBYTECODE")
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "octostore-pycache")
    return env


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def discard_store(had_artifacts: bool) -> None:
    """Remove what this invocation created: a half-seeded store would make the next call a no-op."""
    STORE.unlink(missing_ok=True)
    if not had_artifacts:
        shutil.rmtree(ARTIFACTS, ignore_errors=True)


def main() -> int:
    if STORE.exists():
        print(f"demo already has runs ({STORE.relative_to(HERE.parent)} exists); nothing to do")
        return 0

    had_artifacts = ARTIFACTS.exists()
    env = child_env()
    total = len(GRID)
    started = time.perf_counter()
    for i, params in enumerate(GRID, start=1):
        described = " ".join(f"{name}={value}" for name, value in params.items())
        print(f"training run {i}/{total}: {described} ...", end="", flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                train_command(params), cwd=HERE, env=env, capture_output=True, text=True,
                check=False,
            )
            failure = None if proc.returncode == 0 else (
                f"train.py exited with code {proc.returncode}: "
                f"{last_line(proc.stderr or proc.stdout)}"
            )
        except OSError as exc:
            failure = f"could not start {sys.executable}: {exc}"
        except KeyboardInterrupt:
            print(" interrupted", flush=True)
            discard_store(had_artifacts)
            return 130
        if failure is None and not STORE.exists():
            failure = (f"train.py succeeded but {STORE.name} was not created "
                       "(is MLflow older than 3.7?)")
        if failure is not None:
            print(" failed", flush=True)
            discard_store(had_artifacts)
            print(f"error: demo training run {i}/{total} ({described}) failed, {failure}",
                  file=sys.stderr)
            return 1
        print(f" done in {time.perf_counter() - t0:.1f} s", flush=True)

    print(f"trained {total} runs in {time.perf_counter() - started:.0f} s into "
          f"{STORE.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
