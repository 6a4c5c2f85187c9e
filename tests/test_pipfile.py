"""Project environments: a Pipfile without its lock is read, shown and rebuilt; when several
environment files could be used, the reproduction says which one it used and why; and
``--env current`` with an interpreter that is not there ends in one sentence.

Real parts: real Pipfiles, environments built by the repo's uv, a real daemon reproducing
real runs of a tiny MLflow training (the reproduce tests' training environment).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from octostored.envfiles import parse_env_file
from octostored.envfiles.pipfile import requirement_lines
from octostored.reproduce import envbuild, envcache, envspec, projectenv

from .conftest import DaemonProc, git
from .test_reproduce_support import TRAIN_REQUIREMENTS, make_project, reproduce, train, \
    train_env, uv_bin

PIPFILE = '''\
[[source]]
url = "https://pypi.org/simple"
verify_ssl = true
name = "pypi"

[[source]]
url = "https://download.pytorch.org/whl/cpu"
name = "pytorch"

[packages]
iniconfig = "*"
six = "1.16.0"
torch = {version = "==2.3.0", index = "pytorch"}
pywin32 = {version = "*", sys_platform = "== 'win32'"}
requests = {git = "https://github.com/psf/requests.git", ref = "v2.32.3", extras = ["socks"]}
mylib = {path = "./mylib", editable = true}

[dev-packages]
pytest = "*"

[requires]
python_version = "3.11"

[pipenv]
allow_prereleases = true
'''


def test_a_pipfile_is_read_as_pipenv_reads_it(tmp_path: Path) -> None:
    """Sources, bare versions, per-package marker keys, named indexes, git refs, local paths:
    each becomes the record the daemon shows and the pip line a reproduction installs."""
    (tmp_path / "Pipfile").write_text(PIPFILE)
    rec = parse_env_file(tmp_path, "Pipfile")
    assert rec["kind"] == "pipfile" and rec["python"] == "3.11" and rec["warnings"] == []
    by_name = {p["name"]: p for p in rec["packages"]}
    assert set(by_name) == {"iniconfig", "six", "torch", "pywin32", "requests", "mylib"}
    assert by_name["six"]["spec"] == "==1.16.0"  # pipenv reads a bare version as ==
    assert by_name["pywin32"]["marker"] == "sys_platform == 'win32'"
    assert by_name["requests"]["url"] == "git+https://github.com/psf/requests.git@v2.32.3"
    assert rec["groups"] == {"dev-packages": [{"name": "pytest", "spec": ""}]}
    assert rec["indexes"] == {"pypi": "https://pypi.org/simple",
                              "pytorch": "https://download.pytorch.org/whl/cpu"}
    lines, notes = requirement_lines(rec)
    assert lines == [
        "--pre", "--extra-index-url https://download.pytorch.org/whl/cpu",
        "iniconfig", "six==1.16.0", "torch==2.3.0", "pywin32; sys_platform == 'win32'",
        "requests[socks] @ git+https://github.com/psf/requests.git@v2.32.3",
        "-e ./mylib"]
    assert any("dev-packages" in n and "not installed" in n for n in notes)


def test_a_broken_pipfile_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    (tmp_path / "Pipfile").write_text("[packages]\nsix = \n")
    rec = parse_env_file(tmp_path, "Pipfile")
    assert rec["packages"] == [] and rec["warnings"][0].startswith("invalid TOML")


def test_a_pipfile_only_project_builds_its_environment_with_uv(tmp_path: Path,
                                                               monkeypatch: Any) -> None:
    """No Pipfile.lock: the Pipfile's [packages] are resolved by uv and installed; the
    dev-packages and the Windows-only package are not; the local project goes on PYTHONPATH."""
    monkeypatch.setenv("OCTOSTORE_UV", uv_bin())
    repo = tmp_path / "repo"
    (repo / "mylib").mkdir(parents=True)
    (repo / "mylib" / "pyproject.toml").write_text(
        '[project]\nname = "mylib"\nversion = "0"\ndependencies = ["iniconfig"]\n')
    (repo / "Pipfile").write_text(
        '[packages]\nsix = "==1.16.0"\nmylib = {path = "./mylib", editable = true}\n'
        'pywin32 = {version = "*", sys_platform = "== \'win32\'"}\n'
        '[dev-packages]\npytest = "*"\n')
    spec = projectenv.from_project(str(repo), ".", "c" * 40)
    assert spec.source == "Pipfile (no Pipfile.lock: resolved now) at cccccccccc"
    assert spec.pythonpath == ["mylib"] and spec.why == ""
    cache = envbuild.EnvCache(str(tmp_path / "envs"))
    built = asyncio.run(cache.ensure(spec))
    built.release()
    out = subprocess.run([built.python, "-c", "import importlib.metadata as m; print(sorted("
                          "d.metadata['Name'].lower() for d in m.distributions()))"],
                         capture_output=True, text=True, check=True).stdout
    installed = eval(out)  # noqa: S307 - our own print of a list of names
    assert "six" in installed and "iniconfig" in installed
    assert "pytest" not in installed and "pywin32" not in installed and "mylib" not in installed


def test_the_choice_is_explained_from_the_files_and_predicted_from_the_commit(
        tmp_path: Path) -> None:
    """Several files could give the environment: the job's sentence (from the checked-out
    files) and the plan's prediction (from the commit's file names) name the one used and why
    not the others; the run's own folder wins over the folders above it."""
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "requirements.txt").write_text("six==1.16.0\n")
    (repo / "conda.yaml").write_text("dependencies:\n  - pip:\n    - six==1.16.0\n")
    (repo / "sub" / "MLproject").write_text("name: x\npython_env: python_env.yaml\n")
    (repo / "sub" / "python_env.yaml").write_text("dependencies:\n  - six==1.16.0\n")
    (repo / "sub" / "environment.yml").write_text("dependencies:\n  - pip:\n    - six\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "files")
    top = ("environment from requirements.txt, not conda.yaml: a requirements file comes "
           "before a Pipfile, an MLproject, conda files and pyproject.toml, since pip installs "
           "it exactly as written; conda is not available here, so a conda file could only "
           "give its pip section")
    assert projectenv.from_project(str(repo), ".", "d" * 40).why == top
    assert projectenv.predict(str(repo), "HEAD", ".") == top
    sub = ("environment from sub/python_env.yaml, not sub/environment.yml: the environment the "
           "MLproject names comes before the other conda and python_env files and "
           "pyproject.toml; conda is not available here, so a conda file could only give its "
           "pip section; not conda.yaml, requirements.txt: the run's own folder comes before "
           "the folders above it")
    spec = projectenv.from_project(str(repo), "sub", "d" * 40)
    assert spec.why == sub and spec.notes[0] == sub and spec.describe()["why"] == sub
    assert projectenv.predict(str(repo), "HEAD", "sub") == sub.replace(
        "sub/python_env.yaml", "sub/MLproject")
    for name in ("conda.yaml", "requirements.txt", "sub/environment.yml"):
        (repo / name).unlink()
    alone = projectenv.from_project(str(repo), "sub", "d" * 40)
    assert alone.why == "" and "why" not in alone.describe()


# -- end to end ---------------------------------------------------------------------------------
class Lab:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.python = train_env()
        self.repo = base / "repo"
        self.daemon = DaemonProc(base)
        self.runs: dict[str, str] = {}


def _pipfile(requirements: str) -> str:
    pkgs = "\n".join(f'{line.split("==")[0]} = "=={line.split("==")[1]}"'
                     for line in requirements.split())
    return f'[packages]\n{pkgs}\n\n[dev-packages]\npytest = "*"\n'


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    base = Path(tempfile.mkdtemp(prefix="oct-pf-", dir="/tmp"))
    old = os.environ.get("OCTOSTORE_UV")
    os.environ["OCTOSTORE_UV"] = uv_bin()
    lab = Lab(base)
    try:
        repo = make_project(lab.repo)
        # A pipenv project: its Pipfile only, no lock, no requirements.txt.
        (repo / "requirements.txt").unlink()
        (repo / "Pipfile").write_text(_pipfile(TRAIN_REQUIREMENTS))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "pipenv")
        # Bare runs (nothing captured: the reproduction falls back to the repo's files and
        # runs the script without arguments); the second commit's default tells them apart.
        train(repo, lab.python, capture=False)
        # Later, requirements.txt and conda.yaml side by side (and the Pipfile still there).
        (repo / "requirements.txt").write_text(TRAIN_REQUIREMENTS)
        (repo / "conda.yaml").write_text(
            "name: tiny\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n"
            + "".join(f"    - {r}\n" for r in TRAIN_REQUIREMENTS.split()))
        train_py = repo / "train.py"
        train_py.write_text(train_py.read_text().replace('"--epochs", type=int, default=5',
                                                         '"--epochs", type=int, default=6'))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "requirements and conda")
        train(repo, lab.python, capture=False)
        lab.daemon.start()
        with lab.daemon.client() as c:
            runs = c.call("octostore/runs", root=str(repo))["runs"]
        by_epochs = {r["params"]["epochs"]: r["run_id"] for r in runs}
        lab.runs = {"1": by_epochs["5"], "2": by_epochs["6"]}
        yield lab
    finally:
        lab.daemon.stop()
        if old is None:
            os.environ.pop("OCTOSTORE_UV", None)
        else:
            os.environ["OCTOSTORE_UV"] = old
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.e2e
def test_the_daemon_lists_a_pipfiles_packages(lab: Lab) -> None:
    with lab.daemon.client() as c:
        env = c.call("octostore/environment", root=str(lab.repo))
    pipfile = next(f for f in env["files"] if f["path"] == "Pipfile")
    assert [p["name"] for p in pipfile["packages"]] == ["mlflow-skinny", "sqlalchemy", "alembic"]
    assert pipfile["pinned"] is True and pipfile["groups"]["dev-packages"][0]["name"] == "pytest"


@pytest.mark.e2e
def test_a_run_of_a_pipfile_only_project_reproduces(lab: Lab) -> None:
    with lab.daemon.client(timeout=120) as c:
        res = reproduce(c, lab.repo, lab.runs["1"], timeout=400)
    r = res["result"]
    assert r["verdict"] == "reproduced", {k: r.get(k) for k in ("metrics", "params", "notes")}
    env = r["environment"]
    assert env["kind"] == "project"
    assert env["source"].startswith("Pipfile (no Pipfile.lock: resolved now) at ")
    assert any("dev-packages" in n for n in env["notes"])


@pytest.mark.e2e
def test_with_requirements_and_conda_the_reproduction_says_which_it_used_and_why(
        lab: Lab) -> None:
    with lab.daemon.client(timeout=120) as c:
        res = reproduce(c, lab.repo, lab.runs["2"], timeout=400)
    r = res["result"]
    assert r["verdict"] == "reproduced", res
    env = r["environment"]
    assert env["source"].startswith("requirements.txt at ")
    why = ("environment from requirements.txt, not Pipfile, conda.yaml: a requirements file "
           "comes before a Pipfile")
    assert env["why"].startswith(why) and "conda is not available here" in env["why"]
    assert env["why"] in env["notes"]
    # ... and the user saw it while the job ran.
    assert any(e.get("message", "").startswith(why) for e in res["events"])


@pytest.mark.e2e
def test_env_current_with_an_interpreter_that_is_not_there_is_one_sentence(lab: Lab) -> None:
    with lab.daemon.client(timeout=120) as c:
        res = reproduce(c, lab.repo, lab.runs["2"], env="current", python="/nonexistent/python")
    assert res["state"] == "failed"
    err = res["error"]
    assert err["phase"] == "environment", err
    assert err["message"] == "the interpreter /nonexistent/python does not exist", err
    assert "pass --python with the path of a Python interpreter" in err["remedy"]
    assert "internal error" not in str(err) and "Traceback" not in str(err)


@pytest.mark.e2e
def test_a_build_over_the_cache_cap_removes_the_least_recently_used_and_says_so(
        lab: Lab) -> None:
    """env_cache_max_gb in the user's config.toml: the daemon's next build removes the
    other (unused) environment, says so while the job runs, and lists it in the result."""
    folder = envcache.envs_folder(lab.daemon.cache)
    other = asyncio.run(envbuild.EnvCache(folder).ensure(envspec.EnvSpec(
        "project", "iniconfig (test)", requirements=["iniconfig==2.3.0"])))
    other.release()
    config = Path(lab.daemon.env()["XDG_CONFIG_HOME"]) / "octostore" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("env_cache_max_gb = 0.000001\n")
    try:
        with lab.daemon.client(timeout=120) as c:
            res = reproduce(c, lab.repo, lab.runs["2"], timeout=400, rebuild_env=True)
    finally:
        config.unlink()
    r = res["result"]
    assert r["verdict"] == "reproduced", res
    evicted = r["environment"]["cache_evicted"]
    assert [e["key"] for e in evicted] == [other.key] and not os.path.exists(other.dir)
    said = ("the environment cache went over its 1e-06 GB cap (env_cache_max_gb): removed 1 "
            "least recently used environment(s)")
    assert any(e.get("message", "").startswith(said) for e in res["events"])
    assert any(n.startswith(said) for n in r["environment"]["notes"])
    assert os.path.isdir(r["environment"]["dir"])  # never the one just built
