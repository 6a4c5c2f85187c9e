"""``octostore reproduce --env model`` with MLflow 3 logged models, in a clone.

Real parts only: a git repo whose ``train.py`` fits a scikit-learn model, logs it with
``mlflow.sklearn.log_model(model, name="model")`` and a metric, run for real with MLflow to a
file store (MLflow 3 keeps the model beside the runs, ``mlruns/<exp>/models/m-<id>/``, not in
the run's artifacts); the runs are committed with the real ``octostore commit``; the repo is
cloned with git; in the clone a real daemon reproduces the run with ``env: "model"``, the
environment built from the committed model's ``requirements.txt``.  A run with two models and
none named ``model`` is refused in one sentence naming them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from octostored.client import Client

from .conftest import DaemonProc, git
from .test_commit_support import isolate_git, sqlite_template
from .test_reproduce_support import (  # noqa: F401 - shared_cache is a fixture
    reproduce,
    shared_cache,
    train,
    uv_bin,
)

pytestmark = pytest.mark.e2e

TRAIN_PY = '''\
"""Fit a line, log the model (MLflow 3: a logged model of its own) and its error."""
import argparse

import mlflow
import numpy as np
from sklearn.linear_model import LinearRegression

p = argparse.ArgumentParser()
p.add_argument("--slope", type=float, default=2.0)
p.add_argument("--names", default="model")
p.add_argument("--experiment", default="lines")
a = p.parse_args()
X = np.arange(20, dtype=float).reshape(-1, 1)
y = a.slope * X[:, 0] + 1.0 + np.sin(X[:, 0])
mlflow.set_experiment(a.experiment)
with mlflow.start_run():
    mlflow.log_param("slope", a.slope)
    model = LinearRegression().fit(X, y)
    for name in a.names.split(","):
        mlflow.sklearn.log_model(model, name=name)
    rmse = float(np.sqrt(np.mean((model.predict(X) - y) ** 2)))
    mlflow.log_metric("rmse", rmse)
    print(f"rmse {rmse:.6f}", flush=True)
'''


def _project(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "train.py").write_text(TRAIN_PY)
    (path / ".gitignore").write_text("mlruns/\nmlflow.db\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "fit a line")
    return path


def test_a_committed_mlflow3_model_gives_the_environment_in_a_clone(
        short_tmp: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    isolate_git(monkeypatch, short_tmp, lfs=True)
    monkeypatch.setenv("OCTOSTORE_UV", uv_bin())
    monkeypatch.setenv("OCTOSTORE_CAPTURE_CACHE", str(short_tmp / "capture-cache"))
    monkeypatch.setenv("OCTOSTORE_CAPTURE", "0")  # the tags come from train() (MLFLOW_RUN_CONTEXT)
    repo = _project(short_tmp / "repo")
    python = Path(sys.executable)  # MLflow 3 and scikit-learn, as the researcher's venv
    train(repo, python)
    # In the same experiment: the commit must take every run's models from one experiment
    # folder (sources.models.file_store_models once kept only the first run's).
    train(repo, python, "--slope", "3", "--names", "reg,clf")
    # And one to an SQLite store: MLflow 3 makes no artifacts folder for a run that logs only
    # a model there; the model's artifacts are under ./mlruns/<exp>/models/ beside mlflow.db.
    shutil.copy(sqlite_template(), repo / "mlflow.db")
    subprocess.run([str(python), "train.py", "--slope", "4", "--experiment", "db"], cwd=repo,
                   env=dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{repo}/mlflow.db"),
                   check=True, capture_output=True, text=True)
    assert sum(len(list(d.iterdir())) for d in (repo / "mlruns").glob("*/models")) == 4

    d = DaemonProc(short_tmp / "d")
    (short_tmp / "d").mkdir()
    d.cache = str(shared_cache)
    d.start()
    try:
        with d.client(timeout=120) as c:
            c.call("octostore/sync", root=str(repo))
            runs = {r["params"]["slope"]: r for r in c.call("octostore/runs",
                                                            root=str(repo))["runs"]}
            one, two, db = (runs[k]["run_id"] for k in ("2.0", "3.0", "4.0"))
            # In the live stores too, the MLflow 3 model is found.
            for rid in (one, db):
                live = c.call("octostore/reproduce", root=str(repo), run_id=rid, env="model",
                              dry_run=True)
                assert live["plan"]["environment"] == "model", live
            _refused_when_several(c, repo, two)
        out = subprocess.run([sys.executable, "-m", "octostored.cli", "commit", "--json", one,
                              two, db],
                             cwd=repo, env=d.env(), capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        done = json.loads(out.stdout)
        assert len(done["models"]) == 4, {k: done[k] for k in ("runs", "models", "warnings")
                                          if k in done}

        clone = short_tmp / "clone"
        git(short_tmp, "clone", "-q", str(repo), str(clone))
        assert not (clone / "mlruns").exists()
        shutil.copy(sqlite_template(), clone / "mlflow.db")  # the clone's default store
        with d.client(timeout=120) as c:
            c.call("octostore/sync", root=str(clone))
            plan = c.call("octostore/reproduce", root=str(clone), run_id=one, env="model",
                          dry_run=True)["plan"]
            assert plan["environment"] == "model"
            assert c.call("octostore/reproduce", root=str(clone), run_id=db, env="model",
                          dry_run=True)["plan"]["environment"] == "model"
            assert any("the run's model model (m-" in n for n in plan["notes"]), plan["notes"]
            _refused_when_several(c, clone, two)
            res = reproduce(c, clone, one, timeout=900, env="model")
        r = res["result"]
        assert res["state"] == "done" and r["verdict"] == "reproduced", res
        env = r["environment"]
        assert env["kind"] == "model", env
        assert env["source"].startswith("the logged model's requirements (.octostore/runs/")
        assert "/models/m-" in env["source"]
        [rmse] = r["metrics"]
        assert rmse["key"] == "rmse" and rmse["status"] == "equal"
    finally:
        d.stop()


def _refused_when_several(c: Client, clone: Path, run_id: str) -> None:
    """Two models, none named ``model``: one sentence naming both, nothing run."""
    from octostored.client import RequestError

    with pytest.raises(RequestError) as err:
        c.call("octostore/reproduce", root=str(clone), run_id=run_id, env="model",
               dry_run=True)
    msg = err.value.message
    assert msg.startswith(f"run {run_id[:8]} logged 2 models (")
    assert "clf (m-" in msg and "reg (m-" in msg and "none is named 'model'" in msg, msg
    assert "\n" not in msg and "Traceback" not in msg


def test_a_model_with_only_a_conda_file_gives_its_pip_section(tmp_path: Path) -> None:
    """A model folder with no requirements.txt: its conda.yaml's pip section, said so."""
    from octostored.reproduce import envspec, projectenv

    folder = tmp_path / "models" / "m-1" / "artifacts"
    folder.mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "conda.yaml").write_text(
        "channels: [conda-forge]\ndependencies:\n- python=3.11.7\n- pip<=24.0\n- pip:\n"
        "  - mlflow==3.17.2\n  - scikit-learn==1.9.1\nname: mlflow-env\n")
    spec = projectenv.from_model(str(folder), str(tmp_path))
    assert spec.kind == "model" and spec.python == "3.11.7"
    assert spec.requirements == ["mlflow==3.17.2", "scikit-learn==1.9.1"]
    assert spec.source == "the logged model's pip section of its conda.yaml (models/m-1/artifacts)"
    # Chosen by name 'model' among several; else the only one; else refused.
    other = tmp_path / "models" / "m-2" / "artifacts"
    other.mkdir(parents=True)
    (other / "requirements.txt").write_text("numpy\n")
    a = envspec.RunModel("model", "m-1", str(folder), 1)
    b = envspec.RunModel("clf", "m-2", str(other), 2)
    assert envspec.choose_model([b, a], "abcd1234")[0] is a
    assert envspec.choose_model([b], "abcd1234")[0] is b
    assert envspec.choose_model([b, a], "abcd1234", wanted="m-2")[0] is b
    c = envspec.RunModel("reg", "m-3", str(other), 3)
    chosen, why = envspec.choose_model([b, c], "abcd1234")
    assert chosen is None and why == (
        "run abcd1234 logged 2 models (clf (m-2), reg (m-3)) and none is named 'model', so "
        "which one's environment to use is not clear")
