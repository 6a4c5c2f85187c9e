"""What a commit chooses: the best run among finished ones, runs of other branches left
apart, and the capture records (inputs, notebook copies) committed with their runs.

Real MLflow stores, real git repos, a real daemon and the real CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import DaemonProc, make_repo
from .test_commit_support import file_client, git, isolate_git, log_run


@pytest.fixture
def daemon_here(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    isolate_git(monkeypatch, short_tmp, lfs=False)
    procs: list[DaemonProc] = []

    def start() -> DaemonProc:
        base = short_tmp / f"d{len(procs)}"
        base.mkdir()
        procs.append(DaemonProc(base).start())
        return procs[-1]

    yield start
    for d in procs:
        d.stop()


def _cli(d: DaemonProc, repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "octostored.cli", *args], cwd=repo,
                          env=d.env(), capture_output=True, text=True, timeout=300)


def test_the_best_run_is_a_finished_one(daemon_here: Any, short_tmp: Path,
                                        tmp_path: Path) -> None:
    """A run that failed half-way with the lowest loss is not named the best."""
    repo = make_repo(short_tmp / "repo")
    fc = file_client(repo)
    exp = fc.create_experiment("wine")
    good = log_run(fc, exp, "good", 0.3)  # val_rmse ends at 0.68
    bad = log_run(fc, exp, "crashed", 0.9, status="FAILED")  # val_rmse 0.08: lower, but failed
    d = daemon_here()
    with d.client() as c:
        res = c.call("octostore/commit", root=str(repo))
    assert res["committed"] and {r["run_id"] for r in res["runs"]} == {good, bad}
    subject = res["message"].splitlines()[0]
    assert subject == f"octostore: 2 runs of wine (best val_rmse 0.68 in run {good[:8]})", subject
    assert bad[:8] not in subject


def test_runs_of_other_branches_are_left_apart(daemon_here: Any, short_tmp: Path) -> None:
    """A run made on a feature branch is not committed onto main without a word."""
    repo = make_repo(short_tmp / "repo")
    main_commit = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-qb", "feature")
    (repo / "train.py").write_text("print('feature')\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-qm", "feature work")
    feature_commit = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-q", "main")
    fc = file_client(repo)
    exp = fc.create_experiment("wine")
    here = fc.create_run(exp, run_name="on-main",
                         tags={"mlflow.source.git.commit": main_commit}).info.run_id
    there = fc.create_run(exp, run_name="on-feature",
                          tags={"mlflow.source.git.commit": feature_commit}).info.run_id
    lost = fc.create_run(exp, run_name="elsewhere",
                         tags={"octostore.git.commit": "ab" * 20}).info.run_id
    untagged = fc.create_run(exp, run_name="no-commit").info.run_id
    for rid in (here, there, lost, untagged):
        fc.set_terminated(rid)
    d = daemon_here()

    dry = _cli(d, repo, "commit", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would commit 2 run(s) on main:" in dry.stdout
    assert "left out 2 run(s) made on other branches (commit them with " \
           "--include-other-branches, or name them by id):" in dry.stdout
    line = next(x for x in dry.stdout.splitlines() if there[:8] in x)
    assert f"commit {feature_commit[:10]}" in line and "made on another branch" in line
    line = next(x for x in dry.stdout.splitlines() if lost[:8] in x)
    assert "its commit is not in this repo" in line

    out = _cli(d, repo, "commit", "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert {r["run_id"] for r in res["runs"]} == {here, untagged}
    assert {o["run_id"]: o["included"] for o in res["other_branches"]} == {
        there: False, lost: False}
    tree = git(repo, "ls-tree", "-r", "--name-only", "HEAD", ".octostore/runs")
    assert there not in tree and lost not in tree

    named = _cli(d, repo, "commit", "--json", there)  # named by id: taken
    res = json.loads(named.stdout)
    assert [r["run_id"] for r in res["runs"]] == [there] and res["committed"]
    assert res["other_branches"] == [{"run_id": there, "run_name": "on-feature",
                                      "commit": feature_commit, "reason": res[
                                          "other_branches"][0]["reason"], "included": True}]

    again = _cli(d, repo, "commit")  # the rest still waits, and the output says why
    assert "nothing to commit: the runs not committed yet were made on other branches" in \
        again.stdout, again.stdout
    asked = _cli(d, repo, "commit", "--json", "--include-other-branches")
    res = json.loads(asked.stdout)
    assert [r["run_id"] for r in res["runs"]] == [lost] and res["committed"]


def test_input_records_and_notebook_copies_go_with_their_runs(daemon_here: Any,
                                                             short_tmp: Path) -> None:
    """``.octostore/inputs/<token>.json`` and ``.octostore/notebooks/<sha>.ipynb`` are committed
    with the runs whose tags name them, as locks and patches are; a tag that tries to climb
    out of its folder names nothing."""
    repo = make_repo(short_tmp / "repo")
    token = "20261207-235000-4242-0a1b2c3d"
    digest = "c" * 64
    inputs = repo / ".octostore" / "inputs"
    notebooks = repo / ".octostore" / "notebooks"
    inputs.mkdir(parents=True)
    notebooks.mkdir(parents=True)
    (inputs / f"{token}.json").write_text('{"files": []}\n')
    (notebooks / f"{digest}.ipynb").write_text('{"cells": []}\n')
    (inputs / "unreferenced.json").write_text("{}\n")
    secret = short_tmp / "secret.json"
    secret.write_text('{"token": "hunter2"}\n')
    fc = file_client(repo)
    exp = fc.create_experiment("nb")
    rid = fc.create_run(exp, tags={"octostore.inputs": token, "octostore.notebook.copy": digest,
                                   "octostore.notebook": "train.ipynb"}).info.run_id
    evil = fc.create_run(exp, tags={"octostore.inputs": "../../../secret"}).info.run_id
    for r in (rid, evil):
        fc.set_terminated(r)
    d = daemon_here()
    with d.client() as c:
        res = c.call("octostore/commit", root=str(repo))
    assert res["committed"] and res["inputs"] == [token] and res["notebooks"] == [digest]
    names = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert f".octostore/inputs/{token}.json" in names
    assert f".octostore/notebooks/{digest}.ipynb" in names
    assert ".octostore/inputs/unreferenced.json" not in names
    assert not any("secret" in n for n in names)
    assert any(f"run {evil}: tag octostore.inputs is not a record name" in w
               for w in res["warnings"])
    assert "hunter2" not in git(repo, "log", "-p", "--format=", "HEAD")
    assert os.path.exists(secret)
