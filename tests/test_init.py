"""``octostore init``: the scaffold, ready to commit, never overwriting the user's files, and
next steps that work: followed literally, from octostore installed from its built wheel into a
fresh venv, they log a run with the capture plugin's tags and commit it.

The example training script is also run for real in ``test_commit_e2e.py``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from octostored.gitops.scaffold import package_name, scaffold

from .dist_support import installed, venv_env
from .test_commit_support import git, isolate_git


@pytest.fixture(autouse=True)
def _git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path, lfs=False)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "octostored.cli", "init", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_scaffold_is_ready_to_commit(tmp_path: Path) -> None:
    out = _cli("Wine Quality", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    root = tmp_path / "Wine Quality"
    assert "package wine_quality" in out.stdout and "ran git init" in out.stdout
    for rel in ("README.md", ".gitignore", ".gitattributes", "pyproject.toml", "requirements.txt",
                "data/raw/.gitkeep", "data/processed/.gitkeep", "notebooks/.gitkeep",
                "models/.gitkeep", "reports/figures/.gitkeep", "src/wine_quality/__init__.py",
                "src/wine_quality/train.py"):
        assert (root / rel).is_file(), rel
    assert os.access(root / "src/wine_quality/train.py", os.X_OK)
    compile((root / "src/wine_quality/train.py").read_text(), "train.py", "exec")
    readme = (root / "README.md").read_text()
    assert "octostore commit" in readme and ".octostore/runs" in readme
    # Data, MLflow's database and its artifact folder stay out of git; placeholders go in.
    (root / "data/raw/wine.csv").write_text("a,b\n")
    (root / "mlflow.db").write_bytes(b"")
    (root / "mlruns/1/abc/artifacts").mkdir(parents=True)
    (root / "mlruns/1/abc/artifacts/model.json").write_text("{}")
    git(root, "add", "-A")
    staged = set(git(root, "diff", "--cached", "--name-only").split("\n")) - {""}
    assert "data/raw/.gitkeep" in staged and "src/wine_quality/train.py" in staged
    assert not any(p.startswith(("data/raw/wine", "mlflow.db", "mlruns/")) for p in staged)
    assert git(root, "check-attr", "filter", "--", "models/model.pkl").strip().endswith("lfs")
    git(root, "commit", "-qm", "scaffold")
    assert git(root, "status", "--porcelain") == ""


def test_existing_files_are_kept_and_no_second_git_init(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    git(root, "init", "-q")
    (root / "README.md").write_text("my readme\n")
    res = scaffold(str(root), package="proj")
    assert "README.md" in res["skipped"] and res["git_init"] is False
    assert (root / "README.md").read_text() == "my readme\n"
    again = scaffold(str(root), package="proj")
    assert again["created"] == [] and len(again["skipped"]) == len(res["created"]) + 1
    nested = scaffold(str(root / "sub"), package="sub")  # inside a work tree: no nested repo
    assert nested["git_init"] is False and not (root / "sub" / ".git").exists()


def test_names_and_errors(tmp_path: Path) -> None:
    assert package_name("/x/Wine Quality-2") == "wine_quality_2"
    assert package_name("/x/2024 study") == "p_2024_study"
    out = _cli("proj", "--package", "not-valid", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "'not-valid' is not a valid Python package name" in out.stderr
    blocked = tmp_path / "file"
    blocked.write_text("x")
    out = _cli(str(blocked / "proj"), cwd=tmp_path)
    assert out.returncode == 2 and "cannot create" in out.stderr and "Traceback" not in out.stderr


def _requirement_names(text: str) -> list[str]:
    return [line.split(";")[0].split("@")[0].split("=")[0].split(">")[0].split("<")[0]
            .split("[")[0].strip().lower() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_names_a_source_that_exists_and_requirements_no_bare_octostore(
        tmp_path: Path) -> None:
    spec = "octostore @ git+https://github.com/acme/octostore@7f0b1a2c3d4e5f6071829"
    out = _cli("given", "--octostore", spec, "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["octostore"] == {"kind": "override", "requirement": spec,
                                "detail": "given with --octostore", "problem": None}
    readme = (tmp_path / "given" / "README.md").read_text()
    assert f"pip install {shlex.quote(spec)}" in readme
    reqs = (tmp_path / "given" / "requirements.txt").read_text()
    assert _requirement_names(reqs) == ["mlflow", "scikit-learn"]  # octostore is not one
    # This checkout is an editable install: the README cannot name it, and init says why.
    out = _cli("mine", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "note: the README cannot say where to get octostore" in out.stdout
    assert "--octostore" in out.stdout
    readme = (tmp_path / "mine" / "README.md").read_text()
    assert "where whoever set up this project got it" in readme
    assert "pip install 'octo" not in readme


def _printed_steps(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("next, "))
    return [line[4:] for line in lines[start + 1:] if line.startswith("    ")]


def _shell(step: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``step`` through the shell; a uv command first from uv's cache alone (``UV_OFFLINE``:
    no network needed when the cache is warm), again with the network if that fails."""
    def run(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(step, shell=True, cwd=cwd, env={**env, **extra},
                              capture_output=True, text=True, timeout=600,
                              stdin=subprocess.DEVNULL)
    if step.split()[0] != "uv":
        return run({})
    proc = run({"UV_OFFLINE": "1"})
    return proc if proc.returncode == 0 else run({})


def test_the_printed_next_steps_followed_literally_log_a_run_and_commit_it(
        tmp_path: Path) -> None:
    """From octostore installed from its wheel into a fresh venv: init, then each printed
    command through the shell, in order, in the project; the run has the plugin's tags."""
    bin_dir = installed("wheel")
    base = Path(tempfile.mkdtemp(prefix="oct-init-", dir="/tmp"))  # a short socket path
    env = venv_env(bin_dir, base)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME",
                 "MLFLOW_EXPERIMENT_ID"):
        env.pop(name, None)
    (tmp_path / "shown").mkdir()
    (tmp_path / "run").mkdir()
    shown = subprocess.run(["octostore", "init", "demo_project"], cwd=tmp_path / "shown",
                           env=env, capture_output=True, text=True, timeout=60)
    out = subprocess.run(["octostore", "init", "demo_project", "--json"], cwd=tmp_path / "run",
                         env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and out.returncode == 0, shown.stderr + out.stderr
    res = json.loads(out.stdout)
    steps, root = res["next_steps"], Path(res["root"])
    assert steps == _printed_steps(shown.stdout)  # --json lists what a person is told
    assert "octostore capture install --python .venv/bin/python" in steps
    assert steps[-1] == "octostore commit"
    timings = []
    try:
        for step in steps:
            t0 = time.monotonic()
            proc = _shell(step, root, env)
            timings.append((step, round(time.monotonic() - t0, 1)))
            assert proc.returncode == 0, (
                f"{step!r} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    finally:
        subprocess.run(["octostore", "daemon", "stop"], cwd=tmp_path, env=env,
                       capture_output=True, timeout=60)
        print(timings)
    store = MlflowClient(f"sqlite:///{root}/mlflow.db")
    runs = [r for e in store.search_experiments() for r in store.search_runs([e.experiment_id])]
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.params["alpha"] == "0.001"
    tags = run.data.tags
    assert tags.get("octostore.env") and tags.get("octostore.argv")  # the plugin was there
    assert tags.get("octostore.git.commit") == git(root, "rev-list", "--max-parents=0",
                                                   "HEAD").strip()
    committed = list((root / ".octostore" / "runs").glob(f"*/{run.info.run_id}/meta.yaml"))
    assert len(committed) == 1
    assert git(root, "log", "-1", "--format=%s").startswith("octostore: 1 run")
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""
