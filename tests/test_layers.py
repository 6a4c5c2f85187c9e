"""The layers of pyproject.toml's ``[tool.importlinter]`` contracts hold (``lint-imports``).

And they can fail: the same contracts run over a copy of the code with one import across a
layer (a source reaching into the index) report it broken.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINT = os.path.join(os.path.dirname(sys.executable), "lint-imports")


def lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_contracts_hold() -> None:
    res = lint(REPO, REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


def test_a_broken_layer_is_reported(tmp_path: Path) -> None:
    for pkg in ("octostored", "octostore_tui"):
        shutil.copytree(REPO / pkg, tmp_path / pkg,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "octostored" / "sources" / "reaches_in.py").write_text(
        "from octostored.index import root  # a source reaching into the index\n")
    res = lint(tmp_path, tmp_path)
    assert res.returncode != 0
    assert "sources never import the index or the socket layer BROKEN" in res.stdout
    assert "octostored.sources.reaches_in -> octostored.index.root" in res.stdout
