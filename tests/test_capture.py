"""Capture: the tags a run gets at start, the lock and patch files, and never failing a run.

The provider is tested directly, through MLflow's real plugin loading (a
throwaway ``dist-info`` with the entry point on ``PYTHONPATH``), and through
``octostore run -- CMD`` for environments without the plugin.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from octostored.capture import collect, envlock, gitstate
from octostored.capture.provider import OctostoreRunContext

from .conftest import REPO, make_repo
from .test_commit_support import git


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OCTOSTORE_CAPTURE_CACHE", str(tmp_path / "capture-cache"))
    monkeypatch.delenv(collect.ARGV_ENV, raising=False)
    envlock._MEMO.clear()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tags_in_a_dirty_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "src").mkdir()
    (repo / "src" / "train.py").write_text("print('v1')\n")
    (repo / "data.bin").write_bytes(b"\x00\x01")
    (repo / "my notes.md").write_text("a\n")
    (repo / "mlruns" / "0").mkdir(parents=True)  # a store someone committed: MLflow's, not code
    (repo / "mlruns" / "0" / "meta.yaml").write_text("name: Default\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "code")
    (repo / "mlruns" / "0" / "meta.yaml").write_text("name: Default\nlast_update_time: 1\n")
    (repo / "mlruns" / "0" / "new.py").write_text("x = 1\n")
    (repo / "my notes.md").write_text("b\n")
    (repo / "src" / "train.py").write_text("print('v2')\n")
    (repo / "data.bin").write_bytes(b"\x00\x02\xff")  # binary change: the patch must carry it
    (repo / "src" / "new_model.py").write_text("x = 1\n")
    (repo / "notes.txt").write_text("not source\n")
    monkeypatch.chdir(repo / "src")
    tags = OctostoreRunContext().tags()

    assert "octostore.capture_error" not in tags
    assert tags["octostore.cwd"] == "src"
    assert tags["octostore.python"] == envlock.python_version()
    assert json.loads(tags["octostore.argv"])[0] == "python"
    assert tags["octostore.git.dirty"] == "true"
    assert json.loads(tags["octostore.git.untracked"]) == ["src/new_model.py"]
    lock = repo / ".octostore" / "envs" / f"{tags['octostore.env']}.json"
    patch = repo / ".octostore" / "patches" / f"{tags['octostore.git.patch']}.patch"
    assert _sha(lock) == tags["octostore.env"] and _sha(patch) == tags["octostore.git.patch"]
    doc = json.loads(lock.read_text())
    names = {p["name"]: p for p in doc["packages"]}
    assert names["mlflow"]["version"] == "3.18.0"
    assert doc["python"]["version"] == envlock.python_version()
    # The patch turns HEAD into the run's code, binary files included.
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "apply", str(patch))
    assert (clone / "src" / "train.py").read_text() == "print('v2')\n"
    assert (clone / "data.bin").read_bytes() == b"\x00\x02\xff"
    assert (clone / "my notes.md").read_text() == "b\n"
    assert b"mlruns" not in patch.read_bytes()
    # A second run in the same state reuses both files.
    again = OctostoreRunContext().tags()
    assert again["octostore.env"] == tags["octostore.env"]
    assert again["octostore.git.patch"] == tags["octostore.git.patch"]
    assert len(list((repo / ".octostore" / "patches").iterdir())) == 1


def test_clean_repo_and_repo_without_commits(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    tags = OctostoreRunContext().tags()
    assert tags["octostore.git.dirty"] == "false" and tags["octostore.cwd"] == "."
    assert "octostore.git.patch" not in tags and "octostore.git.untracked" not in tags
    assert not (repo / ".octostore" / "patches").exists()

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(fresh, "init", "-q")
    (fresh / "a.py").write_text("a = 1\n")
    git(fresh, "add", "a.py")
    monkeypatch.chdir(fresh)
    tags = OctostoreRunContext().tags()
    assert "octostore.capture_error" not in tags
    patch = fresh / ".octostore" / "patches" / f"{tags['octostore.git.patch']}.patch"
    assert b"+a = 1" in patch.read_bytes()


def test_outside_a_repo_records_what_it_can(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    monkeypatch.chdir(folder)
    tags = OctostoreRunContext().tags()
    assert set(tags) == {"octostore.env", "octostore.python", "octostore.argv", "octostore.cwd"}
    assert tags["octostore.cwd"] == str(folder)
    assert not (folder / ".octostore").exists()
    # The lock is still kept in the user's cache, so a later commit can find it.
    assert envlock.cached_text(tags["octostore.env"]) is not None


def test_failures_become_a_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / ".octostore").mkdir()
    (repo / ".octostore" / "envs").write_text("a file where a folder should be")
    (repo / "README.md").write_text("changed\n")
    monkeypatch.chdir(repo)
    tags = OctostoreRunContext().tags()
    assert tags["octostore.capture_error"].startswith("environment: ")
    assert tags["octostore.env"] and tags["octostore.git.patch"]  # the rest is still recorded

    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))  # no git at all
    tags = OctostoreRunContext().tags()
    assert "git: cannot run git" in tags["octostore.capture_error"]
    assert "octostore.argv" in tags

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(collect, "collect", boom)
    assert OctostoreRunContext().tags() == {"octostore.capture_error": "RuntimeError: unexpected"}
    monkeypatch.setenv("OCTOSTORE_CAPTURE", "0")
    assert OctostoreRunContext().in_context() is False


def test_lock_matches_importlib_and_cache_follows_installs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata as md

    lock = envlock.build_lock(str(REPO))
    ours = {p["name"]: p["version"] for p in lock["packages"]}
    theirs = {envlock.normalize(d.metadata["Name"]): d.version for d in md.distributions()}
    assert ours == theirs
    octo = next(p for p in lock["packages"] if p["name"] == "octostore")
    assert octo.get("editable") is True and octo.get("path") == "."

    first, _ = envlock.cached_lock(None)
    envlock._MEMO.clear()
    assert envlock.cached_lock(None) == (first, None)  # warm: from the on-disk cache
    site = tmp_path / "lib" / "site-packages"
    site.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(site))
    (site / "extra_pkg-1.2.dist-info").mkdir()  # "pip install extra-pkg==1.2"
    second, text = envlock.cached_lock(None)
    assert second != first and text is not None and '"extra-pkg"' in text


def _plugin_site(tmp_path: Path) -> Path:
    """A throwaway distribution whose only content is the entry point (as pyproject declares it)."""
    site = tmp_path / "plugin-site"
    info = site / "octostore_capture_probe-0.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: octostore-capture-probe\n"
                                   "Version: 0.0.0\n")
    (info / "entry_points.txt").write_text(
        "[mlflow.run_context_provider]\n"
        "octostore = octostored.capture.provider:OctostoreRunContext\n")
    return site


SCRIPT = """
import mlflow, os, sys
mlflow.set_tracking_uri(sys.argv[1])
with mlflow.start_run() as run:
    mlflow.log_param("alpha", 0.5)
print(run.info.run_id)
if len(sys.argv) > 2:  # break capture (its folder becomes a file), then start another run
    os.rename(".octostore/envs", "envs-moved")
    open(".octostore/envs", "w").write("blocked")
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", 0.5)
    print(run.info.run_id)
"""


def test_mlflow_loads_the_plugin_and_a_failing_capture_never_fails_the_run(
        tmp_path: Path) -> None:
    from mlflow import MlflowClient

    repo = make_repo(tmp_path / "repo")
    (repo / "train.py").write_text(SCRIPT)
    store = (tmp_path / "store").as_uri()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(_plugin_site(tmp_path)), str(REPO)]),
               MLFLOW_ALLOW_FILE_STORE="true")
    env.pop("OCTOSTORE_CAPTURE", None)
    out = subprocess.run([sys.executable, "train.py", store, "break"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.split()[-2:]
    tags = MlflowClient(store).get_run(first).data.tags
    assert json.loads(tags["octostore.argv"]) == ["python", "train.py", store, "break"]
    assert tags["octostore.git.untracked"] == '["train.py"]'
    assert (repo / "envs-moved" / f"{tags['octostore.env']}.json").is_file()
    assert "octostore.capture_error" not in tags

    # Capture broke (its folder is a file): the run still finished, with the error as a tag.
    run = MlflowClient(store).get_run(second)
    assert run.info.status == "FINISHED" and run.data.params == {"alpha": "0.5"}
    assert run.data.tags["octostore.capture_error"].startswith("environment:")


def test_octostore_run_tags_runs_without_the_plugin(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    repo = make_repo(tmp_path / "repo")
    (repo / "train.py").write_text(SCRIPT)
    (repo / "README.md").write_text("edited\n")
    store = (tmp_path / "store").as_uri()
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true", PYTHONPATH=str(REPO),
               OCTOSTORE_CAPTURE="0",  # the plugin, if installed, stays out of it
               MLFLOW_RUN_CONTEXT=json.dumps({"team": "vision"}))
    out = subprocess.run([sys.executable, "-m", "octostored.cli", "run", "--",
                          sys.executable, "train.py", store],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    tags = MlflowClient(store).get_run(out.stdout.split()[-1]).data.tags
    assert json.loads(tags["octostore.argv"]) == ["python", "train.py", store]
    assert tags["team"] == "vision"  # the user's own MLFLOW_RUN_CONTEXT is kept
    assert tags["octostore.git.dirty"] == "true" and tags["octostore.cwd"] == "."
    patch = repo / ".octostore" / "patches" / f"{tags['octostore.git.patch']}.patch"
    assert b"+edited" in patch.read_bytes()
    assert (repo / ".octostore" / "envs" / f"{tags['octostore.env']}.json").is_file()
    assert "octostore.capture_error" not in tags

    missing = subprocess.run([sys.executable, "-m", "octostored.cli", "run", "--", "no-such-cmd"],
                             cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    # 127, as a shell says it, with what to check
    assert missing.returncode == 127 and "command not found: no-such-cmd" in missing.stderr
    assert "PATH" in missing.stderr and "Traceback" not in missing.stderr


def test_untracked_files_that_count_as_source() -> None:
    assert gitstate.is_source("src/model.py") and gitstate.is_source("requirements-dev.txt")
    assert gitstate.is_source("conf/params.yaml") and gitstate.is_source("Makefile")
    assert not gitstate.is_source("data/train.csv") and not gitstate.is_source("out.txt")
    assert not gitstate.is_source("models/model.pkl")
    long = collect.json_list([f"file_{i:05d}.py" for i in range(2000)], limit=300)
    assert len(long) <= 300 and json.loads(long)[-1].startswith("... and ")


def test_octostore_run_locks_the_commands_own_interpreter(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`octostore run -- /other/python ...` locks that interpreter's packages, not octostore's."""
    from octostored.cli import commit as cli_commit

    base = getattr(sys, "_base_executable", sys.executable)
    assert os.path.abspath(base) != os.path.abspath(sys.executable), (
        "the tests run in the project's .venv (scripts/test); here there is no second interpreter")
    repo = make_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    env = cli_commit.capture_env([base, "-c", "pass"], base)
    tags = json.loads(env["MLFLOW_RUN_CONTEXT"])
    assert "octostore.capture_error" not in tags
    lock = json.loads((repo / ".octostore" / "envs" / f"{tags['octostore.env']}.json").read_text())
    assert "mlflow" not in {p["name"] for p in lock["packages"]}  # the bare interpreter's
    assert tags["octostore.python"] == lock["python"]["version"]
    assert json.loads(env[collect.ARGV_ENV]) == ["python", "-c", "pass"]
