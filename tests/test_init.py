"""``octostore init``: the scaffold, ready to commit, never overwriting the user's files.

The example training script itself is run for real in ``test_commit_e2e.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from octostored.gitops.scaffold import package_name, scaffold

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
