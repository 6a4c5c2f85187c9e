"""Data travels with ``octostore commit --data PATH``; the plan names the data it leaves out.

Real parts only: a real training run (plugin loaded by MLflow) reads a git-ignored
``data/raw/wine.csv`` in a real git repo; ``octostore commit`` goes through the real CLI and
daemon; the repo is cloned with git (Git LFS smudges the data) and the clone's file has the
sha256 of the run's input record.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DaemonProc, make_repo
from .test_capture_inputs import _env, _record
from .test_commit_support import git, isolate_git

SCRIPT = """
import sys
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("wine")
raw = open("data/raw/wine.csv").read()
with mlflow.start_run() as run:
    mlflow.log_param("rows", len(raw.splitlines()))
    mlflow.log_metric("rmse", 0.5)
print(run.info.run_id)
"""
LIMIT_MB = 0.001
"""About 1 kB: the data file (8 kB) goes through Git LFS."""


def _project(base: Path) -> tuple[Path, str]:
    repo = make_repo(base / "proj")
    (repo / ".gitignore").write_text("data/raw/\nmlruns/\n")
    (repo / "data" / "raw").mkdir(parents=True)
    (repo / "data" / "raw" / "wine.csv").write_text(
        "a,b\n" + "".join(f"{i},{i * i}\n" for i in range(800)))
    (repo / "train.py").write_text(SCRIPT)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "project")
    out = subprocess.run([sys.executable, "train.py", (repo / "mlruns").as_uri()], cwd=repo,
                         env=_env(base), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return repo, out.stdout.split()[-1]


def test_data_is_listed_then_committed_through_lfs(short_tmp: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, short_tmp, lfs=True)
    repo, run_id = _project(short_tmp)
    from mlflow import MlflowClient

    tags = MlflowClient((repo / "mlruns").as_uri()).get_run(run_id).data.tags
    record = _record(repo, tags)
    [wine] = [f for f in record["files"] if f["path"] == "data/raw/wine.csv"]
    size = (repo / "data" / "raw" / "wine.csv").stat().st_size
    outside = short_tmp / "elsewhere.csv"
    outside.write_text("x\n1\n")

    base = short_tmp / "d"
    base.mkdir()
    d = DaemonProc(base).start()
    try:
        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "octostored.cli", "commit", *args,
                                   "--max-artifact-mb", str(LIMIT_MB)], cwd=repo,
                                  env=d.env(), capture_output=True, text=True, timeout=600)

        with d.client() as c:
            c.call("octostore/sync", root=str(repo))
        # Without --data: the plan says the run's ignored input is not committed, and why.
        dry = cli("--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert ("not committed: a clone cannot reproduce these runs without them; add them "
                "with --data PATH or keep them where your colleagues can get them") in dry.stdout
        line = next(x for x in dry.stdout.splitlines() if "data/raw/wine.csv" in x)
        assert "git-ignored" in line and "kB" in line, dry.stdout

        # A path outside the repo: refused in one sentence, nothing committed.
        head = git(repo, "rev-parse", "HEAD")
        bad = cli("--data", str(outside))
        assert bad.returncode != 0
        err = bad.stderr.strip()
        assert "outside the repo" in err and str(outside) in err and "Traceback" not in err
        assert len(err.splitlines()) == 1, err
        assert git(repo, "rev-parse", "HEAD") == head

        # With --data: the dry run lists it with size and route, forced because named.
        plan = cli("--dry-run", "--data", "data/raw/wine.csv")
        assert plan.returncode == 0, plan.stderr
        line = next(x for x in plan.stdout.splitlines()
                    if "data/raw/wine.csv" in x and "Git LFS" in x)
        assert "added with force because you named it" in line, plan.stdout
        assert "not committed:" not in plan.stdout

        out = cli("--json", "--data", "data/raw/wine.csv")
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        assert res["committed"] and res["not_committed"] is None
        assert res["data"] == [{"path": "data/raw/wine.csv", "size": size, "route": "git-lfs",
                                "ignored": True,
                                "note": "git-ignored: added with force because you named it"}]
    finally:
        d.stop()
    tree = git(repo, "ls-tree", "-r", "--name-only", "HEAD")
    assert "data/raw/wine.csv" in tree.split() and run_id in tree
    blob = git(repo, "cat-file", "-p", "HEAD:data/raw/wine.csv")
    assert blob.startswith("version https://git-lfs"), blob  # a pointer in git
    assert "/data/raw/wine.csv filter=lfs" in (repo / ".gitattributes").read_text()
    assert git(repo, "status", "--porcelain") == ""

    clone = short_tmp / "clone"
    git(short_tmp, "clone", "-q", str(repo), str(clone))
    data = (clone / "data" / "raw" / "wine.csv").read_bytes()
    assert not data.startswith(b"version https://git-lfs")  # smudged
    assert hashlib.sha256(data).hexdigest() == wine["sha256"]


def test_a_data_folder_without_git_lfs_is_refused_then_split_by_size(
        short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder: each regular file by its size; a big one without git-lfs is refused in one
    sentence that says how to install it; a link in the folder is not followed."""
    isolate_git(monkeypatch, short_tmp, lfs=False)
    repo = make_repo(short_tmp / "proj")
    (repo / ".gitignore").write_text("data/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-qm", "ignore data")
    (repo / "data" / "sub").mkdir(parents=True)
    (repo / "data" / "small.csv").write_text("x\n1\n")
    (repo / "data" / "sub" / "big.bin").write_bytes(b"\1" * 5000)
    secret = short_tmp / "secret.txt"
    secret.write_text("private")
    (repo / "data" / "link.txt").symlink_to(secret)
    head = git(repo, "rev-parse", "HEAD")

    base = short_tmp / "d"
    base.mkdir()
    d = DaemonProc(base).start()
    try:
        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "octostored.cli", "commit", *args,
                                   "--max-artifact-mb", str(LIMIT_MB)], cwd=repo,
                                  env=d.env(), capture_output=True, text=True, timeout=600)

        # A link in the repo that leads out: refused like the outside path it is.
        link = cli("--data", "data/link.txt")
        err = link.stderr.strip()
        assert link.returncode != 0 and len(err.splitlines()) == 1, err
        assert "outside the repo" in err and str(secret) in err, err

        bad = cli("--data", "data")
        err = bad.stderr.strip()
        assert bad.returncode != 0 and len(err.splitlines()) == 1, err
        assert "data/sub/big.bin" in err and "git-lfs is not installed" in err, err
        assert "install" in err.split("git-lfs is not installed", 1)[1], err
        assert git(repo, "rev-parse", "HEAD") == head

        monkeypatch.undo()  # git-lfs back on PATH, for a new daemon
        isolate_git(monkeypatch, short_tmp, lfs=True)
        d.stop()
        d = DaemonProc(base).start()
        out = cli("--json", "--data", "data")
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        routes = {e["path"]: e["route"] for e in res["data"]}
        assert routes == {"data/small.csv": "git", "data/sub/big.bin": "git-lfs"}, res
    finally:
        d.stop()
    tree = git(repo, "ls-tree", "-r", "HEAD").splitlines()
    assert not any("link.txt" in x for x in tree)
    assert git(repo, "cat-file", "-p", "HEAD:data/small.csv") == "x\n1\n"
    assert git(repo, "cat-file", "-p", "HEAD:data/sub/big.bin").startswith("version https://")
