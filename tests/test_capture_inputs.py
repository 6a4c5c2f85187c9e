"""Capture on a researcher's own project: HEAD's commit, the data a run reads, big data files.

Each test runs a real training script under real MLflow, with the plugin loaded by MLflow
itself (a throwaway ``dist-info`` naming the entry point), in a real git repo.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

from .conftest import REPO, git, make_repo, wait_for
from .test_capture import _plugin_site

SCRIPT = """
import json, sys
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
raw = open("data/raw/wine.csv").read()               # git-ignored, read before the run
tracked = open("data/small.csv", "rb").read()        # tracked
with mlflow.start_run() as run:
    open("outputs.txt", "w").write("written, not read")
    cfg = json.load(open("config.json"))             # read while the run goes on
    mlflow.log_param("rows", len(raw.splitlines()))
print(run.info.run_id)
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(_plugin_site(tmp_path)), str(REPO)]),
               MLFLOW_ALLOW_FILE_STORE="true", OCTOSTORE_CAPTURE_CACHE=str(tmp_path / "cc"))
    for var in ("OCTOSTORE_CAPTURE", "OCTOSTORE_CAPTURE_INPUTS", "OCTOSTORE_RUN_ARGV"):
        env.pop(var, None)
    return env


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _project(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo")
    (repo / ".gitignore").write_text("data/raw/\nmlruns/\noutputs.txt\n")
    (repo / "data" / "raw").mkdir(parents=True)
    (repo / "data" / "raw" / "wine.csv").write_text("a,b\n1,2\n3,4\n")
    (repo / "data" / "small.csv").write_text("x\n1\n")
    (repo / "config.json").write_text('{"alpha": 0.5}')
    (repo / "train.py").write_text(SCRIPT)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "project")
    return repo


def _train(repo: Path, tmp_path: Path) -> dict[str, str]:
    store = (repo / "mlruns").as_uri()
    out = subprocess.run([sys.executable, "train.py", store], cwd=repo, env=_env(tmp_path),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return MlflowClient(store).get_run(out.stdout.split()[-1]).data.tags


def _record(repo: Path, tags: dict[str, str]) -> dict:
    path = repo / ".octostore" / "inputs" / f"{tags['octostore.inputs']}.json"
    return json.loads(wait_for(lambda: path.is_file() and path.read_text(), what="the record"))


def test_a_run_records_head_and_the_files_it_read(tmp_path: Path) -> None:
    repo = _project(tmp_path)
    tags = _train(repo, tmp_path)
    assert "octostore.capture_error" not in tags
    assert tags["octostore.git.commit"] == git(repo, "rev-parse", "HEAD").strip()
    record = _record(repo, tags)
    assert record["complete"] is True
    files = {f["path"]: f for f in record["files"]}
    # What it read under the repo, before and during the run; not its code, not what it
    # wrote, not MLflow's store.
    assert set(files) == {"data/raw/wine.csv", "data/small.csv", "config.json"}
    for path, entry in files.items():
        data = (repo / path).read_bytes()
        assert entry["sha256"] == _sha(data) and entry["size"] == len(data), path
        assert entry["why"] == "read"


def test_a_big_modified_data_file_is_recorded_by_hash_not_in_the_patch(tmp_path: Path) -> None:
    repo = _project(tmp_path)
    big = repo / "data" / "big.bin"
    big.write_bytes(os.urandom(1 << 20) * 12)  # 12 MB, over the 4 MiB patch limit
    git(repo, "add", "data/big.bin")
    git(repo, "commit", "-qm", "big data")
    with big.open("ab") as f:  # the researcher changes it and does not commit
        f.write(b"new rows\n" * 1000)
    (repo / "train.py").write_text(SCRIPT + "# tuned\n")
    tags = _train(repo, tmp_path)
    assert "octostore.capture_error" not in tags
    assert tags["octostore.git.dirty"] == "true"
    assert json.loads(tags["octostore.git.big"]) == ["data/big.bin"]
    patch = (repo / ".octostore" / "patches" / f"{tags['octostore.git.patch']}.patch").read_bytes()
    assert b"# tuned" in patch and b"big.bin" not in patch  # the code change is kept
    record = _record(repo, tags)
    entry = next(f for f in record["files"] if f["path"] == "data/big.bin")
    assert entry["why"] == "changed" and entry["sha256"] == _sha(big.read_bytes())


def test_no_inputs_recorded_when_turned_off(tmp_path: Path) -> None:
    repo = _project(tmp_path)
    env = _env(tmp_path)
    env["OCTOSTORE_CAPTURE_INPUTS"] = "0"
    store = (repo / "mlruns").as_uri()
    out = subprocess.run([sys.executable, "train.py", store], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    tags = MlflowClient(store).get_run(out.stdout.split()[-1]).data.tags
    assert "octostore.inputs" not in tags and "octostore.git.commit" in tags
    assert not (repo / ".octostore" / "inputs").exists()


NOTEBOOK_CELLS = [
    ("import sys, mlflow", []),
    ("alpha = 0.5", ["parameters"]),
    ("mlflow.set_tracking_uri(STORE)\n"
     "with mlflow.start_run() as run:\n"
     "    mlflow.log_param('alpha', alpha)\n"
     "    print(run.info.run_id)", []),
]

RUNNER = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": "notebooks"}}).execute()
print(nb.cells[-1].outputs[0]["text"].strip())
"""


def test_a_notebook_run_records_its_notebook_and_a_copy(tmp_path: Path) -> None:
    """Run as `jupyter nbconvert --execute` does (nbclient, a real ipykernel): the run says which
    notebook it came from and keeps the notebook as it stood, though the kernel's own command
    line names neither."""
    import nbformat

    repo = make_repo(tmp_path / "repo")
    store = (repo / "mlruns").as_uri()
    nb = nbformat.v4.new_notebook()
    for source, tags in NOTEBOOK_CELLS:
        cell = nbformat.v4.new_code_cell(source.replace("STORE", repr(store)))
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    (repo / "notebooks").mkdir()
    nbformat.write(nb, repo / "notebooks" / "train.ipynb")
    (repo / "run_nb.py").write_text(RUNNER)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "notebook")
    out = subprocess.run([sys.executable, "run_nb.py", "notebooks/train.ipynb"], cwd=repo,
                         env=_env(tmp_path), capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    tags = MlflowClient(store).get_run(out.stdout.split()[-1]).data.tags
    assert "octostore.capture_error" not in tags
    assert tags["octostore.notebook"] == "notebooks/train.ipynb"
    copy = repo / ".octostore" / "notebooks" / f"{tags['octostore.notebook.copy']}.ipynb"
    assert copy.read_bytes() == (repo / "notebooks" / "train.ipynb").read_bytes()
    assert tags["octostore.git.commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert "ipykernel" in tags["octostore.argv"]  # what really ran: the kernel
