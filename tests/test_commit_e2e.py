"""End to end: a project from ``octostore init``, real training runs on both backends,
``octostore commit``, ``git clone``, and the clone seen by octostore and by MLflow.

The training script is the one ``init`` writes (scikit-learn, MLflow's defaults),
run through ``octostore run --`` so its runs carry the capture tags without the
plugin.  One process trains two runs per backend to keep the test short.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from octostored.gitops.scaffold import scaffold

from .conftest import REPO, DaemonProc
from .test_commit_support import git, isolate_git, mlflow_view, sqlite_template, user_state

TRAIN = """
import sys
import mlflow
sys.path.insert(0, "src")
from wine.train import main
main(["--alpha", "0.001", "--epochs", "6"])  # MLflow's defaults: sqlite:///mlflow.db
main(["--alpha", "0.05", "--l1-ratio", "0.5", "--epochs", "6"])
mlflow.set_tracking_uri(sys.argv[1])  # then a file store, as older projects log
main(["--alpha", "0.01", "--epochs", "6"])
main(["--alpha", "0.1", "--epochs", "6"])
"""
"""Four real training runs, two per backend, in one process (importing MLflow takes seconds)."""


def _train(repo: Path, env: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, "-m", "octostored.cli", "run", "--", sys.executable,
                          "-c", TRAIN, (repo / "tracking").as_uri()], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def _daemon_view(c: Any, root: Path) -> dict[str, dict[str, Any]]:
    runs = c.call("octostore/runs", root=str(root), view="all")["runs"]
    out = {}
    for r in runs:
        hist = c.call("octostore/metric_history", root=str(root), run_ids=[r["run_id"]],
                      keys=sorted(r["metrics"]), max_points=10_000)
        out[r["run_id"]] = {
            "name": r["run_name"], "status": r["status"], "start": r["start_time"],
            "params": r["params"], "metrics": r["metrics"], "tags": r["tags"],
            "committed": r["committed"],
            "histories": {s["key"]: sorted(zip(s["x"], s["y"])) for s in hist["series"]},
        }
    return out


def test_train_commit_clone_and_see(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, short_tmp, lfs=False)
    monkeypatch.setenv("OCTOSTORE_CAPTURE_CACHE", str(short_tmp / "capture-cache"))
    repo = short_tmp / "wine"
    scaffold(str(repo), package="wine")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "scaffold")
    shutil.copy(sqlite_template(), repo / "mlflow.db")  # MLflow's own schema, already migrated
    env = dict(os.environ, PYTHONPATH=str(REPO), OCTOSTORE_CAPTURE="0")
    env.pop("MLFLOW_TRACKING_URI", None)
    _train(repo, env)
    (repo / "README.md").write_text("my notes\n")  # the user's own unstaged change
    sources = {**mlflow_view(MlflowClient(f"sqlite:///{repo}/mlflow.db")),
               **mlflow_view(MlflowClient((repo / "tracking").as_uri()))}
    assert len(sources) == 4
    mine = user_state(repo)

    (short_tmp / "d").mkdir()
    d = DaemonProc(short_tmp / "d").start()
    try:
        with d.client() as c:
            res = c.call("octostore/commit", root=str(repo), gitignore_db=True)
            assert res["committed"], res
            assert len(res["runs"]) == 4 and len(res["locks"]) == 1
            assert res["message"].startswith("octostore: 4 runs of wine (best val_rmse ")
            assert res["gitignore"]["added"] == []  # init's .gitignore already has mlflow.db
            here = _daemon_view(c, repo)
            assert user_state(repo) == mine

            clone = short_tmp / "clone"
            git(short_tmp, "clone", "-q", str(repo), str(clone))
            assert not (clone / "mlflow.db").exists() and not (clone / "mlruns").exists()
            there = _daemon_view(c, clone)
            info = c.call("octostore/open", root=str(clone))
            assert [(s["id"], s["committed"]) for s in info["sources"]] == [
                (".octostore/runs", True)]
            rid = next(iter(there))
            full = c.call("octostore/run", root=str(clone), run_id=rid)
            assert full["environment"]["lock"] and full["environment"]["argv"]
            lock = clone / ".octostore" / "envs" / f"{full['environment']['lock']}.json"
            python = json.loads(lock.read_text())["python"]["version"]
            assert python == full["environment"]["python"]
            arts = c.call("octostore/artifacts", root=str(clone), run_id=rid)["artifacts"]
            assert [a["path"] for a in arts] == ["coefficients.json"]
    finally:
        d.stop()

    # The daemon in the clone lists the same runs, params, metrics and histories.
    assert set(there) == set(here) == set(sources)
    for rid, run in here.items():
        assert run["committed"] is True and there[rid]["committed"] is True
        for key in ("name", "status", "start", "params", "metrics", "tags", "histories"):
            assert there[rid][key] == run[key], (rid, key)
        assert there[rid]["params"] == sources[rid]["params"]
        assert there[rid]["tags"] == sources[rid]["tags"]
        assert {k: sorted((step, value) for _, value, step in h)
                for k, h in sources[rid]["histories"].items()} == there[rid]["histories"]
        assert sources[rid]["tags"]["octostore.env"] and "octostore.argv" in sources[rid]["tags"]

    # MLflow reads the clone's committed runs as it reads the original stores.
    monkeypatch.chdir(clone)  # artifact URIs are relative to the repo's top
    committed = MlflowClient(str(clone / ".octostore" / "runs"))
    assert mlflow_view(committed) == sources
    assert [a.path for a in committed.list_artifacts(rid)] == ["coefficients.json"]
    # A colleague's next `python train.py` with MLflow's defaults still gets SQLite: nothing in
    # ./mlruns makes MLflow switch to the file store (which refuses to run since 3.13).
    from mlflow.tracking._tracking_service.utils import _get_default_tracking_uri

    assert _get_default_tracking_uri().startswith("sqlite:")
