"""Logged models (MLflow 3) travel with ``octostore commit`` and load in a clone.

Real parts only: a real MLflow run logs a scikit-learn model with
``mlflow.sklearn.log_model(model, name="model")`` to a file store and to ``mlflow.db``,
in a real git repo; ``octostore commit`` goes through the real CLI and daemon; the repo is
cloned with git; and in the clone a fresh Python with stock MLflow loads each model by
``runs:/<run>/model`` and ``models:/<model_id>``, predicts, and ``search_logged_models``
finds it.  The model file goes through Git LFS (the size limit is set below it), and a
daemon without git-lfs says it would leave the model out and why.
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

from octostored.sources.models import file_store_models, run_models, sqlite_models

from .conftest import REPO, DaemonProc, make_repo
from .test_commit_support import git, hide_git_lfs, isolate_git, sqlite_template

TRAIN = """
import json, sys
import mlflow
import numpy as np
from sklearn.linear_model import LinearRegression

X = np.arange(20, dtype=float).reshape(-1, 1)
out = []
for uri, slope in ((sys.argv[1], 2.0), (sys.argv[2], 3.0)):
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("wine")
    with mlflow.start_run() as run:
        model = LinearRegression().fit(X, slope * X[:, 0] + 1.0)
        mlflow.log_param("slope", slope)
        mlflow.log_metric("val_rmse", 0.1)
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2],
                                        params={"fit_intercept": "true"})
        mlflow.log_metric("val_rmse", 0.1, model_id=info.model_id)
    out.append([run.info.run_id, info.model_id, slope])
print(json.dumps(out))
"""
"""One process, two runs: file store first, then ``mlflow.db`` (importing MLflow is slow)."""

LOAD = """
import json, sys
import mlflow
import numpy as np

mlflow.set_tracking_uri(sys.argv[1])
X = np.array([[3.0], [4.0]])
out = {"runs": {}, "models": {}}
for rid, mid, _ in json.loads(sys.argv[2]):
    out["runs"][rid] = mlflow.sklearn.load_model(f"runs:/{rid}/model").predict(X).tolist()
    out["models"][mid] = mlflow.sklearn.load_model(f"models:/{mid}").predict(X).tolist()
exps = [e.experiment_id for e in mlflow.search_experiments()]
found = mlflow.search_logged_models(experiment_ids=exps, output_format="list")
out["found"] = sorted([m.model_id, m.name, m.source_run_id, m.params.get("fit_intercept"),
                       sorted(x.key for x in m.metrics)] for m in found)
print(json.dumps(out))
"""
"""Run in the clone, at its top (committed artifact locations are repo-relative)."""


def _python(args: list[str], cwd: Path, env: dict[str, str]) -> Any:
    proc = subprocess.run([sys.executable, "-c", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mlflow_env() -> dict[str, str]:
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true", OCTOSTORE_CAPTURE="0",
               PYTHONPATH=str(REPO))
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def test_models_commit_clone_and_load(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, short_tmp, lfs=True)
    repo = make_repo(short_tmp / "proj")
    (repo / ".gitignore").write_text("/mlflow.db\n/mlflow.db-*\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-qm", "ignore the db")
    shutil.copy(sqlite_template(), repo / "mlflow.db")
    runs = _python([TRAIN, (repo / "mlruns").as_uri(), f"sqlite:///{repo}/mlflow.db"], repo,
                   _mlflow_env())
    (file_run, file_model, _), (db_run, db_model, _) = runs

    # The reader, on both backends (no MLflow in it).
    [fm] = next(iter(file_store_models(str(next((repo / "mlruns").glob("*/models")).parent)
                                       ).values()))
    assert (fm.model_id, fm.name, fm.source_run_id) == (file_model, "model", file_run)
    assert "sklearn" in fm.flavors and "python_function" in fm.flavors and fm.signature
    assert fm.size > 0 and fm.files >= 3 and fm.params["fit_intercept"] == "true"
    [dm] = sqlite_models(str(repo / "mlflow.db"))[db_run]
    assert (dm.model_id, dm.name, dm.source_run_id) == (db_model, "model", db_run)
    assert dm.signature and "sklearn" in dm.flavors and dm.size > 0
    assert dm.params == {"fit_intercept": "true", "slope": "3.0"}
    assert list(dm.metric_lines) == ["val_rmse"]
    from octostored.model import Run

    [shown] = run_models(Run(run_id=db_run, experiment_id="1",
                             location=str(repo / "mlflow.db")), "sqlite")
    assert (shown["model_id"], shown["status"], shown["signature"]) == (db_model, "READY", True)
    assert shown["size"] == dm.size and shown["local"]
    skops = next(Path(dm.artifact_dir or "").glob("model.*")).stat().st_size
    limit_mb = (skops - 1) / (1024 * 1024)  # the model file goes through Git LFS

    base = short_tmp / "d"
    base.mkdir()
    d = DaemonProc(base).start()
    try:
        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "octostored.cli", *args], cwd=repo,
                                  env=d.env(), capture_output=True, text=True, timeout=600)

        with d.client() as c:
            c.call("octostore/sync", root=str(repo))
        dry = cli("commit", "--dry-run", "--max-artifact-mb", f"{limit_mb:.9f}")
        assert dry.returncode == 0, dry.stderr
        assert "logged models:" in dry.stdout
        for rid, mid in ((file_run, file_model), (db_run, db_model)):
            line = next(x for x in dry.stdout.splitlines() if mid in x)
            assert rid[:8] in line and "Git LFS" in line and "model." in line, dry.stdout
        out = cli("commit", "--json", "--max-artifact-mb", f"{limit_mb:.9f}")
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        assert res["committed"] and len(res["runs"]) == 2
        routes = {m["model_id"]: (m["run_id"], m["route"], m["size"] > skops)
                  for m in res["models"]}
        assert routes == {file_model: (file_run, "git-lfs", True),
                          db_model: (db_run, "git-lfs", True)}
        tree = git(repo, "ls-tree", "-r", "--name-only", "HEAD", ".octostore/runs")
        assert sum(1 for p in tree.splitlines() if p.endswith("/MLmodel")) == 2
        attrs = (repo / ".octostore" / ".gitattributes").read_text()
        assert attrs.count("/models/m-") == 2
    finally:
        d.stop()

    # Without git-lfs, the plan says the model would be left out, and why.
    hide_git_lfs(monkeypatch, short_tmp)
    base2 = short_tmp / "d2"
    base2.mkdir()
    d2 = DaemonProc(base2).start()
    try:
        with d2.client() as c:
            plan = c.call("octostore/commit", root=str(repo), run_ids=[db_run], dry_run=True,
                          max_artifact_mb=limit_mb)
        text = subprocess.run([sys.executable, "-m", "octostored.cli", "commit", "--dry-run",
                               db_run, "--max-artifact-mb", f"{limit_mb:.9f}"], cwd=repo,
                              env=d2.env(), capture_output=True, text=True, timeout=300)
    finally:
        d2.stop()
    line = next(x for x in text.stdout.splitlines() if db_model in x)
    assert "LEFT OUT: model." in line and "git-lfs is not installed" in line, text.stdout
    assert "0 logged model(s), 1 left out" in text.stdout
    [entry] = plan["models"]
    assert entry["route"] == "left-out" and "git-lfs is not installed" in entry["reason"]
    assert any("left out" in w and db_model in w for w in plan["warnings"])
    monkeypatch.undo()
    isolate_git(monkeypatch, short_tmp, lfs=True)

    clone = short_tmp / "clone"
    git(short_tmp, "clone", "-q", str(repo), str(clone))
    assert not (clone / "mlflow.db").exists() and not (clone / "mlruns").exists()
    pointer = next((clone / ".octostore" / "runs").glob(f"*/models/{db_model}/artifacts/model.*"))
    assert not pointer.read_bytes().startswith(b"version https://git-lfs")  # smudged
    got = _python([LOAD, str(clone / ".octostore" / "runs"), json.dumps(runs)], clone,
                  _mlflow_env())
    for rid, mid, slope in runs:
        want = [slope * 3.0 + 1.0, slope * 4.0 + 1.0]
        assert got["runs"][rid] == pytest.approx(want)
        assert got["models"][mid] == pytest.approx(want)
    assert got["found"] == sorted([[file_model, "model", file_run, "true", ["val_rmse"]],
                                   [db_model, "model", db_run, "true", ["val_rmse"]]])

    # The reader in the clone: the committed store's models, with repo-relative locations.
    folder = next((clone / ".octostore" / "runs").glob(f"*/{db_run}"))
    run = Run(run_id=db_run, experiment_id="", location=str(folder))
    [shown] = run_models(run, base=str(clone))
    assert shown["model_id"] == db_model and shown["local"] and shown["signature"]
    assert "sklearn" in shown["flavors"] and shown["size"] > skops


def test_a_model_that_points_outside_the_repo_is_left_out(short_tmp: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack: a cloned store whose model's ``artifact_location`` names the user's private
    folder, and a model folder with a link to a private file.  Nothing outside the repo is
    committed; the plan says which model was left out and why."""
    from mlflow import MlflowClient

    isolate_git(monkeypatch, short_tmp, lfs=False)
    repo = make_repo(short_tmp / "proj")
    private = short_tmp / "home" / ".ssh"
    private.mkdir(parents=True)
    (private / "MLmodel").write_text("flavors: {}\n")
    (private / "id_rsa").write_text("PRIVATE KEY hunter2\n")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient((repo / "mlruns").as_uri())
    exp = client.create_experiment("wine")
    rid = client.create_run(exp).info.run_id
    stolen = client.create_logged_model(exp, name="stolen", source_run_id=rid)
    linked = client.create_logged_model(exp, name="linked", source_run_id=rid)
    client.set_terminated(rid)
    models = repo / "mlruns" / exp / "models"
    meta = models / stolen.model_id / "meta.yaml"
    text = meta.read_text()
    meta.write_text("\n".join(f"artifact_location: {private.as_uri()}"
                              if line.startswith("artifact_location:") else line
                              for line in text.splitlines()) + "\n")
    arts = models / linked.model_id / "artifacts"
    arts.mkdir()
    (arts / "MLmodel").write_text("flavors:\n  sklearn: {}\n")
    (arts / "leak").symlink_to(private / "id_rsa")
    (short_tmp / "d").mkdir()
    d = DaemonProc(short_tmp / "d").start()
    try:
        with d.client() as c:
            res = c.call("octostore/commit", root=str(repo))
    finally:
        d.stop()
    assert res["committed"]
    by_id = {m["model_id"]: m for m in res["models"]}
    assert by_id[stolen.model_id]["route"] == "left-out"
    assert "outside the repo" in by_id[stolen.model_id]["reason"]
    assert by_id[linked.model_id]["route"] == "git"
    assert any(r["real"] == str(private) for r in res["refused"]), res["refused"]
    tree = git(repo, "ls-tree", "-r", "--name-only", "HEAD")
    assert f"models/{linked.model_id}/artifacts/MLmodel" in tree
    assert stolen.model_id not in tree and "/leak" not in tree and "id_rsa" not in tree
    assert "hunter2" not in git(repo, "log", "-p", "--format=", "HEAD")
