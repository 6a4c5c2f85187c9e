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


def import_cycles(*packages: str) -> list[list[str]]:
    """Strongly connected sets of modules (2 or more) in the import graph of ``packages``,
    counting imports made inside functions too (grimp sees every import statement but those
    under ``if TYPE_CHECKING``, which never run)."""
    import grimp

    graph = grimp.build_graph(*packages, exclude_type_checking_imports=True)
    edges = {m: graph.find_modules_directly_imported_by(m) & graph.modules for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan, iterative enough for a few hundred modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(graph.modules):
        if m not in index:
            visit(m)
    return out


def test_no_import_cycle() -> None:
    """Not even through an import inside a function: each was a knot a maintainer had to hold
    in their head (cli <-> cli_*, rpc.server <-> rpc.handlers, envspec <-> projectenv...)."""
    assert import_cycles("octostored", "octostore_tui") == []


def test_the_cycle_finder_finds_one(tmp_path: Path) -> None:
    pkg = tmp_path / "knot"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "b.py").write_text("from . import a\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert import_cycles("knot") == [["knot.a", "knot.b"]]
    finally:
        sys.path.remove(str(tmp_path))
