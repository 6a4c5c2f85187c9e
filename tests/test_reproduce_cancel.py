"""Cancelling a reproduction in the middle of its environment build, and a daemon that dies
in the middle of one: the process tree stops, the worktree and the half-built environment go.

The build is held in place by a stand-in for uv (``OCTOSTORE_UV``) that creates the
venv with the real uv and then, for ``pip install``, starts a child and waits: a real
process tree, recorded in a pid file, that only a kill ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from .conftest import DaemonProc, git, wait_for
from .test_reproduce_support import follow, make_project, train, train_env, uv_bin

pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def project() -> Any:
    base = Path(tempfile.mkdtemp(prefix="oct-c-", dir="/tmp"))
    old = os.environ.get("OCTOSTORE_CAPTURE_CACHE")
    os.environ["OCTOSTORE_CAPTURE_CACHE"] = str(base / "capture-cache")
    try:
        repo = make_project(base / "repo")
        train(repo, train_env(), "--seed", "1")
        yield base, repo
    finally:
        if old is None:
            os.environ.pop("OCTOSTORE_CAPTURE_CACHE", None)
        else:
            os.environ["OCTOSTORE_CAPTURE_CACHE"] = old
        shutil.rmtree(base, ignore_errors=True)


def _stalling_uv(folder: Path) -> tuple[Path, Path]:
    pids = folder / "uv.pids"
    fake = folder / "uv"
    fake.write_text(f"""#!/bin/bash
if [ "$1" = "venv" ]; then exec {uv_bin()} "$@"; fi
echo $$ >> {pids}
sleep 300 &
echo $! >> {pids}
wait
""")
    fake.chmod(0o755)
    return fake, pids


def _start(base: Path, fake: Path, name: str) -> DaemonProc:
    old = os.environ.get("OCTOSTORE_UV")
    os.environ["OCTOSTORE_UV"] = str(fake)
    try:
        d = DaemonProc(base)
        d.socket = str(base / f"{name}.sock")
        return d.start()
    finally:
        if old is None:
            os.environ.pop("OCTOSTORE_UV", None)
        else:
            os.environ["OCTOSTORE_UV"] = old


def _building(pids: Path) -> list[int]:
    def ready() -> list[int] | None:
        if pids.exists():
            got = [int(p) for p in pids.read_text().split()]
            return got if len(got) >= 2 else None
        return None

    return wait_for(ready, timeout=120, what="the environment build to start")  # type: ignore[return-value]


def _no_leftovers(repo: Path, cache: Path) -> bool:
    worktrees = cache / "reproduce" / "worktrees"
    envs = cache / "reproduce" / "envs"
    return (git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
            and not any(worktrees.iterdir() if worktrees.exists() else [])
            and not [p for p in (envs.iterdir() if envs.exists() else []) if p.is_dir()])


def test_cancel_in_the_middle_of_the_environment_build(project: Any) -> None:
    """Cancel answers once the build's process tree is gone, with the worktree and the
    half-built environment; the job ends ``cancelled`` in phase environment."""
    base, repo = project
    here = Path(tempfile.mkdtemp(prefix="c1-", dir=base))
    fake, pids = _stalling_uv(here)
    d = _start(here, fake, "a")
    try:
        with d.client(timeout=120) as c:
            run_id = c.call("octostore/runs", root=str(repo))["runs"][0]["run_id"]
            job = c.call("octostore/reproduce", root=str(repo), run_id=run_id, confirmed=True)["job"]
            building = _building(pids)
            assert all(_alive(p) for p in building)
            wt = Path(d.cache) / "reproduce" / "worktrees" / job
            assert (wt / "train.py").exists()
            res = c.call("octostore/cancel", job=job)
            assert res["cancelled"] and res["state"] == "cancelled"
            assert res["phase"] == "environment"
            assert not any(_alive(p) for p in building)
            assert _no_leftovers(repo, Path(d.cache))
            final = follow(c, job)
            assert final["state"] == "cancelled" and final["result"]["verdict"] == "cancelled"
            listed = c.call("octostore/jobs", job=job)["jobs"][0]
            assert listed["state"] == "cancelled"
            again = c.call("octostore/cancel", job=job)
            assert not again["cancelled"] and again["state"] == "cancelled"
    finally:
        d.stop()


def test_a_daemon_restart_cleans_up_after_the_jobs_that_died_with_it(project: Any) -> None:
    """kill -9 of the daemon mid-build: the next daemon stops the orphaned build and
    removes the worktree and the half-built environment."""
    base, repo = project
    here = Path(tempfile.mkdtemp(prefix="c2-", dir=base))
    fake, pids = _stalling_uv(here)
    d = _start(here, fake, "a")
    with d.client(timeout=120) as c:
        run_id = c.call("octostore/runs", root=str(repo))["runs"][0]["run_id"]
        c.call("octostore/reproduce", root=str(repo), run_id=run_id, confirmed=True)
        building = _building(pids)
    d.kill9()
    assert all(_alive(p) for p in building)  # orphans: the build is in its own session
    assert not _no_leftovers(repo, Path(d.cache))
    d2 = _start(here, fake, "b")
    try:
        with d2.client() as c:
            c.call("octostore/jobs")
        wait_for(lambda: not any(_alive(p) for p in building), timeout=30,
                 what="the orphaned build to be stopped")
        wait_for(lambda: _no_leftovers(repo, Path(d2.cache)), timeout=30,
                 what="the worktree and the half-built environment to be removed")
    finally:
        d2.stop()
