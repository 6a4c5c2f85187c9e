"""A researcher's own project, committed, cloned and reproduced in the clone.

A repo written the way the story goes: ``train.py`` (argparse, ``log_params``, a metric,
``mlflow.sklearn.log_model``) and ``train.ipynb`` (a cell tagged ``parameters``) both read
``data/raw/wine.csv``, which git ignores, and log a metric; ``requirements.txt`` and
``conda.yaml``; a tracked data file over the patch limit, left modified.  Both run for real
with the capture plugin loaded by MLflow itself, the notebook through nbclient in a real
ipykernel as ``jupyter nbconvert --execute`` runs it.  ``octostore commit`` commits the runs
(their model, input records and notebook copy with them) and the modified data file
(``--data``), the repo is cloned, and in the clone: stock MLflow loads the model from the
committed runs; ``octostore reproduce`` (the CLI, a real daemon, real jobs) names the missing
data file before running anything; with the file copied back (still ignored by git, so
absent from the worktree) it reproduces the script run and the notebook run; it says
*diverged* for the notebook with ``--set`` on its parameter, and when the data differs,
naming the file.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from .conftest import DaemonProc, git, wait_for
from .test_capture_inputs import _env

pytestmark = pytest.mark.e2e

WINE = "kind,alcohol\nred,12.5\nwhite,11.0\nred,13.25\n"

TRAIN_PY = """\
import argparse

import mlflow
import numpy as np
from sklearn.linear_model import LinearRegression

p = argparse.ArgumentParser()
p.add_argument("--alpha", type=float, default=0.5)
a = p.parse_args()
rows = [line.split(",") for line in open("data/raw/wine.csv").read().splitlines()[1:]]
score = a.alpha * sum(float(r[1]) for r in rows)
big = len(open("data/big.bin", "rb").read())
mlflow.set_experiment("wine")
with mlflow.start_run() as run:
    mlflow.log_params({"alpha": a.alpha, "big_bytes": big})
    mlflow.log_metric("score", score)
    X = np.array([[float(r[1])] for r in rows])
    model = LinearRegression().fit(X, a.alpha * X[:, 0])
    mlflow.sklearn.log_model(model, name="model")
print(run.info.run_id)
"""

CELLS = [
    ("import mlflow", []),
    ("alpha = 0.5", ["parameters"]),
    ("rows = [line.split(',') for line in open('data/raw/wine.csv').read().splitlines()[1:]]\n"
     "score = alpha * sum(float(r[1]) for r in rows)", []),
    ("mlflow.set_experiment('wine')\n"
     "with mlflow.start_run() as run:\n"
     "    mlflow.log_param('alpha', alpha)\n"
     "    mlflow.log_metric('score', score)\n"
     "print(run.info.run_id)", []),
]

NBCONVERT = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
print(nb.cells[-1].outputs[0]["text"].strip())
"""
"""What ``jupyter nbconvert --execute --to notebook train.ipynb`` does (nbclient, a real
kernel, the notebook named on the parent's command line)."""


class Project:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.repo = base / "repo"
        self.clone = base / "clone"
        self.daemon = DaemonProc(base)
        self.script_run = ""
        self.notebook_run = ""


def _write_project(repo: Path) -> None:
    import nbformat

    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitignore").write_text("data/raw/\n")
    (repo / "data" / "raw").mkdir(parents=True)
    (repo / "data" / "raw" / "wine.csv").write_text(WINE)
    (repo / "train.py").write_text(TRAIN_PY)
    (repo / "requirements.txt").write_text("mlflow\nscikit-learn\n")
    (repo / "conda.yaml").write_text("name: wine\ndependencies:\n  - python=3.11\n  - pip\n"
                                     "  - pip:\n    - mlflow\n    - scikit-learn\n")
    (repo / "data" / "big.bin").write_bytes(bytes(range(256)) * (5 * 4096))  # 5 MiB, tracked
    nb = nbformat.v4.new_notebook()
    for source, tags in CELLS:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, repo / "train.ipynb")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "wine: script and notebook")
    with (repo / "data" / "big.bin").open("ab") as f:  # changed, not committed
        f.write(b"new rows\n" * 100)


def _record(repo: Path, tags: dict[str, str]) -> dict:
    path = repo / ".octostore" / "inputs" / f"{tags['octostore.inputs']}.json"

    def done() -> dict | None:
        doc = json.loads(path.read_text()) if path.is_file() else None
        return doc if doc and doc["complete"] and doc["files"] else None

    return wait_for(done, timeout=30, what="the run's input record")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def project() -> Iterator[Project]:
    base = Path(tempfile.mkdtemp(prefix="oct-p-", dir="/tmp"))
    p = Project(base)
    try:
        _write_project(p.repo)
        store = (p.repo / "mlruns").as_uri()
        env = dict(_env(base), MLFLOW_TRACKING_URI=store)
        out = subprocess.run([sys.executable, "train.py", "--alpha", "0.7"], cwd=p.repo, env=env,
                             capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        p.script_run = out.stdout.split()[-1]
        (base / "nbconvert.py").write_text(NBCONVERT)
        out = subprocess.run([sys.executable, str(base / "nbconvert.py"), "train.ipynb"],
                             cwd=p.repo, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        p.notebook_run = out.stdout.split()[-1]
        client = MlflowClient(store)
        script_tags = client.get_run(p.script_run).data.tags
        nb_tags = client.get_run(p.notebook_run).data.tags
        # What the capture gave the notebook run: its notebook and copy, HEAD's commit (MLflow
        # records none for it), and the kernel's useless command line.
        assert nb_tags["octostore.notebook"] == "train.ipynb"
        assert "mlflow.source.git.commit" not in nb_tags
        assert nb_tags["octostore.git.commit"] == git(p.repo, "rev-parse", "HEAD").strip()
        for tags in (script_tags, nb_tags):
            assert "octostore.capture_error" not in tags
            files = {f["path"]: f for f in _record(p.repo, tags)["files"]}
            assert files["data/raw/wine.csv"]["why"] == "read"
            assert files["data/big.bin"]["why"] in ("read", "changed")
            assert "train.ipynb" not in files
        assert json.loads(script_tags["octostore.git.big"]) == ["data/big.bin"]
        p.daemon.start()
        # octostore commit: the runs with their model, input records and notebook copy, and
        # the big data file the runs read as it is now (--data); the ignored data stays out.
        env = p.daemon.env()
        env.pop("MLFLOW_TRACKING_URI", None)
        dry = subprocess.run([sys.executable, "-m", "octostored.cli", "commit", "--dry-run"],
                             cwd=p.repo, env=env, capture_output=True, text=True, timeout=300)
        assert dry.returncode == 0, dry.stderr
        assert "data/raw/wine.csv" in dry.stdout and "not committed" in dry.stdout
        out = subprocess.run([sys.executable, "-m", "octostored.cli", "commit", "--data",
                              "data/big.bin"], cwd=p.repo, env=env, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        git(base, "clone", "-q", str(p.repo), str(p.clone))
        assert not (p.clone / "data" / "raw" / "wine.csv").exists()  # ignored: not cloned
        assert (p.clone / "train.ipynb").is_file()
        yield p
    finally:
        p.daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


def octostore(p: Project, *args: str) -> subprocess.CompletedProcess[str]:
    env = p.daemon.env()
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "octostored.cli", *args], cwd=p.clone, env=env,
                          capture_output=True, text=True, timeout=600)


def reproduce(p: Project, run_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    return octostore(p, "reproduce", run_id, "--yes", "--env", "current", "--python",
                     sys.executable, *args)


def _reproductions(p: Project, run_id: str) -> list[dict]:
    with p.daemon.client(timeout=60) as c:
        c.call("octostore/sync", root=str(p.clone))
        return c.call("octostore/runs", root=str(p.clone),
                      filter=f"tags.`octostore.reproduces` = '{run_id}'")["runs"]


def _data_back(p: Project) -> Path:
    """The data file copied into the clone (git ignores it there too)."""
    data = p.clone / "data" / "raw" / "wine.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text(WINE)
    return data


def test_1_missing_data_is_named_before_anything_runs(project: Project) -> None:
    """In a clone without the git-ignored data file, reproduce names it (path, size, hash, why)
    and runs nothing: no new run, no run phase."""
    out = reproduce(project, project.script_run, "--json")
    assert out.returncode == 4, out.stderr + out.stdout
    res = json.loads(out.stdout)
    assert res["error"]["phase"] == "resolve"
    msg = res["error"]["message"]
    digest = __import__("hashlib").sha256(WINE.encode()).hexdigest()
    assert "data/raw/wine.csv" in msg and f"{len(WINE)} bytes" in msg and digest[:12] in msg
    assert "git-ignored and not in this clone" in msg
    cases = {i["path"]: i["case"] for i in res["inputs"]}
    assert cases["data/raw/wine.csv"] == "missing"
    # The big data file left modified at the run is not in the run's patch; committed with
    # --data, the clone has exactly the content the run read.
    assert cases["data/big.bin"] in ("provided", "in-commit")
    assert "run" not in (res.get("timings") or {})
    assert _reproductions(project, project.script_run) == []
    # The text display says the same in one sentence.
    out = reproduce(project, project.script_run)
    assert out.returncode == 4
    assert "verdict: failed in phase resolve: 1 input(s) the run read are missing" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_2_the_data_copied_back_is_provided_read_only_and_the_script_reproduces(
        project: Project) -> None:
    data = _data_back(project)
    assert "wine.csv" not in git(project.clone, "status", "--porcelain", "--ignored=no")
    mode = stat.S_IMODE(data.stat().st_mode)
    quiet = reproduce(project, project.script_run, "-q")
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert quiet.stderr == ""  # -q: no progress at all, only the verdict
    assert quiet.stdout.startswith("verdict: reproduced (1 metric(s) equal, exact)\n")
    assert "note:" not in quiet.stdout and "input" not in quiet.stdout
    out = reproduce(project, project.script_run, "--keep-worktree")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verdict: reproduced (1 metric(s) equal, exact)" in out.stdout
    assert ("input provided: input data/raw/wine.csv (" in out.stdout
            and "is git-ignored; your clone's file has the recorded hash" in out.stdout)
    assert "input data/raw/wine.csv" in out.stderr  # in the progress lines too
    # The verdict table: every column has a heading.
    header = next(line for line in out.stdout.splitlines() if line.startswith("metric"))
    assert header.split() == ["metric", "original", "reproduced", "diff", "rel", "status"]
    kept = next(line for line in out.stdout.splitlines() if line.startswith("worktree kept at"))
    wt = Path(kept.split()[3])
    try:
        copy = wt / "data" / "raw" / "wine.csv"
        assert copy.read_text() == WINE
        assert not stat.S_IMODE(copy.stat().st_mode) & 0o222  # read-only in the worktree
        assert copy.stat().st_ino != data.stat().st_ino  # not the user's file itself
    finally:
        git(project.clone, "worktree", "remove", "--force", str(wt))
    assert data.read_text() == WINE and stat.S_IMODE(data.stat().st_mode) == mode


def test_3_the_notebook_run_reproduces_from_its_copy(project: Project) -> None:
    _data_back(project)
    dry = octostore(project, "reproduce", project.notebook_run, "--dry-run", "--env", "current",
                    "--python", sys.executable)
    assert dry.returncode == 0, dry.stderr
    assert "notebook:    every cell of train.ipynb runs in order with nbclient" in dry.stdout
    assert "input provided: input data/raw/wine.csv" in dry.stdout
    assert "as it stood when the run started" in dry.stdout
    out = reproduce(project, project.notebook_run)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verdict: reproduced (1 metric(s) equal, exact)" in out.stdout
    assert "--- cell 3 (4/4) ---" in out.stderr  # cell progress streamed
    assert "input data/raw/wine.csv" in out.stdout and "input train.ipynb" not in out.stdout
    new = _reproductions(project, project.notebook_run)
    assert len(new) == 1
    with project.daemon.client(timeout=60) as c:
        kept = [a["path"] for a in c.call("octostore/artifacts", root=str(project.clone),
                                          run_id=new[0]["run_id"])["artifacts"]]
    assert "octostore/notebook.ipynb" in kept  # the executed notebook, with the new run


def test_4_the_notebook_with_set_diverges(project: Project) -> None:
    _data_back(project)
    out = reproduce(project, project.notebook_run, "--set", "alpha=0.9")
    assert out.returncode == 0, out.stdout + out.stderr  # --set: a moved metric is expected
    assert "verdict: diverged; 1 of 1 metric(s) moved: score" in out.stdout
    assert "alpha: 0.5 -> 0.9  (--set)" in out.stdout


def test_5_changed_data_is_named_in_the_verdict(project: Project) -> None:
    data = _data_back(project)
    data.write_text(WINE.replace("13.25", "14.0"))
    try:
        out = reproduce(project, project.script_run)
    finally:
        data.write_text(WINE)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "verdict: diverged; input data/raw/wine.csv differs" in out.stdout
    assert "input differs: input data/raw/wine.csv (" in out.stdout


def test_0_stock_mlflow_loads_the_committed_model_in_the_clone(project: Project) -> None:
    """No daemon involved: MLflow itself, from the clone's top, reading the committed runs
    (.octostore/runs), loads the script run's model."""
    code = ("import mlflow, sys; m = mlflow.sklearn.load_model(f'runs:/{sys.argv[1]}/model'); "
            "print(m.predict([[10.0]])[0])")
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true", OCTOSTORE_CAPTURE="0",
               MLFLOW_TRACKING_URI=(project.clone / ".octostore" / "runs").as_uri())
    out = subprocess.run([sys.executable, "-c", code, project.script_run], cwd=project.clone,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert abs(float(out.stdout.strip().splitlines()[-1]) - 7.0) < 1e-6  # alpha 0.7 x 10
