"""Helpers shared by the reproduce tests (no tests here).

* A small *training environment*: a venv with ``mlflow-skinny`` and what it needs to
  open SQLite stores (SQLAlchemy, alembic), built with uv once per machine and kept in
  the temp folder, so that the runs the tests reproduce have a lock that
  rebuilds in seconds, not the whole project venv.
* A tiny seeded training script (global ``random.seed``, a loss curve, an
  accuracy, a ``--fail-at`` switch for a failing run) in a fresh git repo.
* :func:`train` runs it as ``octostore run -- python train.py`` does: the
  capture tags computed for *that* interpreter's environment, handed to
  MLflow through ``MLFLOW_RUN_CONTEXT``; or bare, with nothing captured.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from octostored.client import Client

from .conftest import REPO, git

CACHE = Path(tempfile.gettempdir()) / "octostore-test-cache"
TRAIN_REQUIREMENTS = "mlflow-skinny==3.18.0\nsqlalchemy==2.1.9\nalembic==1.20.1\n"

TRAIN_PY = '''\
"""A tiny seeded training: params, a loss curve and an accuracy, logged to MLflow."""
import argparse
import random

import mlflow

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--fail-at", type=int, default=-1)
a = p.parse_args()
random.seed(a.seed)  # the global generator: MLflow's run names draw from it too
# The loss's own generator: MLflow also draws from the global one when it retries a
# locked database (jitter), which a loaded machine makes happen at random.
rng = random.Random(a.seed)
BONUS = 0.0
mlflow.set_experiment("tiny")
with mlflow.start_run():
    mlflow.log_params(vars(a))
    loss = 1.0
    for epoch in range(a.epochs):
        if epoch == a.fail_at:
            raise RuntimeError(f"the loss exploded at epoch {epoch}")
        loss = loss * (1 - a.lr) + rng.random() * 0.01
        mlflow.log_metric("loss", loss, step=epoch)
        print(f"epoch {epoch} loss {loss:.6f}", flush=True)
    mlflow.log_metric("acc", 1 - loss + BONUS)
'''


def uv_bin() -> str:
    local = REPO / ".tools" / "bin" / "uv"
    if local.exists():
        return str(local)
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    return found


def train_env() -> Path:
    """The python of a venv with only ``mlflow-skinny`` (built once per machine)."""
    digest = hashlib.sha256((TRAIN_REQUIREMENTS + sys.version).encode()).hexdigest()[:12]
    CACHE.mkdir(exist_ok=True)
    folder = CACHE / f"trainenv-{digest}"
    python = folder / "bin" / "python"
    with open(CACHE / "trainenv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "ready").exists():
            shutil.rmtree(folder, ignore_errors=True)
            env = dict(os.environ, UV_COMPILE_BYTECODE="1", UV_PYTHON_DOWNLOADS="never")
            env.pop("VIRTUAL_ENV", None)
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([uv_bin(), "venv", "-q", "--python", base, str(folder)], check=True,
                           env=env)
            req = folder / "requirements.txt"
            req.write_text(TRAIN_REQUIREMENTS)
            subprocess.run([uv_bin(), "pip", "install", "-q", "--python", str(python), "-r",
                            str(req)], check=True, env=env)
            (folder / "ready").write_text("ok\n")
    return python


def make_project(path: Path) -> Path:
    """A git repo with the tiny training script, its requirements, and stores ignored."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / "train.py").write_text(TRAIN_PY)
    (path / "requirements.txt").write_text(TRAIN_REQUIREMENTS)
    (path / ".gitignore").write_text("mlruns/\nmlflow.db\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "tiny training")
    return path


def train(repo: Path, python: Path, *args: str, capture: bool = True,
          store: str = "mlruns") -> subprocess.CompletedProcess[str]:
    """Run ``train.py`` as ``octostore run -- python train.py ARGS`` would (or bare)."""
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = (repo / store).as_uri()
    env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    env.pop("MLFLOW_RUN_CONTEXT", None)
    argv = ["python", "train.py", *args]
    if capture:
        from octostored.capture import collect, envlock

        lock = subprocess.run([str(python), "-c", Path(envlock.__file__).read_text(), str(repo)],
                              capture_output=True, text=True, check=True).stdout
        tags = collect.collect(cwd=str(repo), argv=argv, lock_text=lock,
                               python=json.loads(lock)["python"]["version"])
        env["MLFLOW_RUN_CONTEXT"] = json.dumps(tags)
    return subprocess.run([str(python), "train.py", *args], cwd=repo, env=env, check=True,
                          capture_output=True, text=True)


def reproduce(c: Client, root: Path | str, run_id: str, timeout: float = 300,
              **params: Any) -> dict[str, Any]:
    """Start a reproduction (its command accepted: ``confirmed``), follow its notifications to
    the end; the final one."""
    params.setdefault("confirmed", True)
    started = c.call("octostore/reproduce", root=str(root), run_id=run_id, **params)
    return follow(c, started["job"], timeout)


def follow(c: Client, job: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    events: list[dict[str, Any]] = []
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"job {job} did not finish; events: {[e.get('event') for e in events]}"
        p = c.wait_notification("octostore/job", timeout=left)["params"]
        if p["job"] != job:
            c.notifications.append({"method": "octostore/job", "params": p})
            time.sleep(0.01)
            continue
        events.append(p)
        if p["event"] == "finished":
            p["events"] = events
            return p


def user_state(repo: Path) -> dict[str, str]:
    """Everything of the user's a reproduction must leave alone."""
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "branches": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "diff": git(repo, "diff"),
        "cached": git(repo, "diff", "--cached"),
        "stash": git(repo, "stash", "list"),
    }


@pytest.fixture(scope="session")
def shared_cache() -> Iterator[Path]:
    """One daemon cache for the session's reproduce tests: an environment built by one test
    is found built by the next (as a user's second reproduction finds it)."""
    folder = Path(tempfile.mkdtemp(prefix="oct-cache-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
