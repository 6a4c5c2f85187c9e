"""``octostore reproduce`` end to end: real training, real git, real environments, a real daemon.

One *lab* per module: a repo with a tiny seeded training script, runs made
with their capture tags (as ``octostore run -- python train.py`` makes them),
one from a dirty tree and one with nothing captured, and one daemon whose
cache (and so whose built environments) all tests share: the first
reproduction of the lock builds it, the others find it built.

Each test states the promise it checks.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from .conftest import DaemonProc, git, wait_for
from .test_commit_support import sqlite_template
from .test_reproduce_support import (  # noqa: F401 - shared_cache is a fixture
    follow,
    make_project,
    reproduce,
    shared_cache,
    train,
    train_env,
    user_state,
    uv_bin,
)

pytestmark = pytest.mark.e2e


class Lab:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.python = train_env()
        self.repo = make_project(base / "repo")
        self.daemon: DaemonProc | None = None
        self.runs: dict[str, str] = {}


@pytest.fixture(scope="module")
def lab(shared_cache: Path) -> Any:  # noqa: F811 - the fixture imported above
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="oct-r-", dir="/tmp"))
    old = {k: os.environ.get(k) for k in ("OCTOSTORE_UV", "OCTOSTORE_CAPTURE_CACHE")}
    os.environ["OCTOSTORE_UV"] = uv_bin()
    os.environ["OCTOSTORE_CAPTURE_CACHE"] = str(base / "capture-cache")
    lab: Lab | None = None
    try:
        lab = Lab(base)
        repo, py = lab.repo, lab.python
        # A run from a dirty tree first (it makes the experiment): the patch carries the
        # change (BONUS), which is undone afterwards.
        train_py = repo / "train.py"
        clean = train_py.read_text()
        train_py.write_text(clean.replace("BONUS = 0.0", "BONUS = 0.5"))
        train(repo, py, "--seed", "7")
        train_py.write_text(clean)
        # Three runs with their capture tags and one with nothing captured, side by side.
        jobs = [("--lr", "0.2", "--seed", "1"), ("--lr", "0.25", "--seed", "2"),
                ("--lr", "0.15", "--seed", "3")]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            done = [pool.submit(train, repo, py, *args) for args in jobs]
            done.append(pool.submit(train, repo, py, capture=False))
            for f in done:
                f.result()
        lab.daemon = DaemonProc(base)
        lab.daemon.cache = str(shared_cache)
        lab.daemon.start()
        with lab.daemon.client() as c:
            runs = c.call("octostore/runs", root=str(repo))["runs"]
        names = {"1": "a", "2": "b", "3": "c", "7": "dirty", "0": "bare"}
        lab.runs = {names[r["params"]["seed"]]: r["run_id"] for r in runs}
        assert len(lab.runs) == 5
        yield lab
    finally:
        if lab is not None and lab.daemon is not None:
            lab.daemon.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(base, ignore_errors=True)


def _metrics(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in res["result"]["metrics"]}


def test_best_run_reproduces_in_a_fresh_clone_and_a_changed_param_diverges(lab: Lab) -> None:
    """Train, commit, clone: the best run reproduces there with equal metrics, linked both
    ways; ``--set`` makes a new run with that param and a diverged verdict naming what moved."""
    assert lab.daemon is not None
    with lab.daemon.client(timeout=120) as c:
        committed = c.call("octostore/commit", root=str(lab.repo),
                           run_ids=[lab.runs[k] for k in ("a", "b", "c")])
        assert committed["committed"]
    clone = lab.base / "clone"
    git(lab.base, "clone", "-q", str(lab.repo), str(clone))
    # A pre-migrated MLflow database: the clone's default store (saves MLflow's migrations).
    import shutil

    shutil.copy(sqlite_template(), clone / "mlflow.db")
    with lab.daemon.client(timeout=120) as c:
        best = c.call("octostore/runs", root=str(clone), order_by=["metrics.loss ASC"],
                      limit=1)["runs"][0]
        assert best["committed"] and best["run_id"] in (lab.runs["a"], lab.runs["b"],
                                                          lab.runs["c"])
        res = reproduce(c, clone, best["run_id"])
        r = res["result"]
        assert res["state"] == "done" and r["verdict"] == "reproduced", res
        assert set(_metrics(res)) == {"loss", "acc"}
        assert all(m["status"] == "equal" and m["original"] == m["reproduced"]
                   for m in r["metrics"])
        assert r["environment"]["kind"] == "captured" and r["environment"]["differences"] == []
        assert r["store"]["uri"] == f"sqlite:///{clone}/mlflow.db"
        phases = [e["phase"] for e in res["events"] if e["event"] == "phase"]
        assert phases == ["resolve", "checkout", "environment", "run", "compare"]
        assert any("epoch 4 loss" in line for e in res["events"] if e["event"] == "log"
                   for line in e["lines"])  # the console streamed live
        new = c.call("octostore/run", root=str(clone), run_id=r["new_run_id"])
        assert new["reproduces"] == best["run_id"]
        assert new["tags"]["octostore.verdict"] == "reproduced"
        assert new["tags"]["mlflow.source.git.commit"] == r["commit"]
        orig = c.call("octostore/run", root=str(clone), run_id=best["run_id"])
        assert {"run_id": r["new_run_id"], "verdict": "reproduced", "status": "FINISHED"} in (
            orig["reproduced_by"])
        arts = c.call("octostore/artifacts", root=str(clone), run_id=r["new_run_id"])
        assert any(a["path"] == "octostore/console.log" for a in arts["artifacts"])

    # The same through the CLI, with a changed parameter.
    env = dict(os.environ, OCTOSTORE_SOCKET=lab.daemon.socket)
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([sys.executable, "-m", "octostored.cli", "reproduce", best["run_id"],
                           "--set", "lr=0.5", "--yes", "--json", "--root", str(clone)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["verdict"] == "diverged" and sorted(out["diverged"]) == ["acc", "loss"]
    assert out["environment"]["cached"] is True  # the same lock: nothing built
    assert {"key": "lr", "original": best["params"]["lr"], "reproduced": "0.5",
            "expected": True} in out["params"]
    assert out["entry_point"]["argv"][-4:] == ["--lr", "0.5", "--seed",
                                               best["params"]["seed"]]
    assert "[1/5] resolve" in proc.stderr and "| epoch 0 loss" in proc.stderr
    with lab.daemon.client() as c:
        new = c.call("octostore/run", root=str(clone), run_id=out["new_run_id"])
        assert new["params"]["lr"] == "0.5"
        assert json.loads(new["tags"]["octostore.overrides"]) == {"lr": "0.5"}
        assert new["tags"]["octostore.verdict"] == "diverged"


def test_run_from_a_dirty_tree_reproduces_through_its_patch(lab: Lab) -> None:
    """The patch turns the commit into the code the run ran; the user's tree stays as it is."""
    assert lab.daemon is not None
    (lab.repo / "notes.txt").write_text("my own untracked file\n")
    before = user_state(lab.repo)
    with lab.daemon.client(timeout=120) as c:
        orig = c.call("octostore/run", root=str(lab.repo), run_id=lab.runs["dirty"])
        assert orig["git"]["dirty"] == "true" and orig["git"]["patch"]
        res = reproduce(c, lab.repo, lab.runs["dirty"])
    r = res["result"]
    assert r["verdict"] == "reproduced", (r["metrics"], r.get("message"))
    assert r["patch"] == orig["git"]["patch"]
    acc = _metrics(res)["acc"]
    assert acc["reproduced"] > 0.8  # BONUS = 0.5 came through the patch (0.39 without it)
    assert user_state(lab.repo) == before
    assert git(lab.repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_a_run_whose_commit_is_missing_says_which_and_suggests_fetch(lab: Lab) -> None:
    """A run made on a commit this repo does not have fails in resolve, naming the commit."""
    from .test_commit_support import file_client

    client = file_client(lab.repo)
    exp = client.get_experiment_by_name("tiny").experiment_id
    missing = "0123456789abcdef0123456789abcdef01234567"
    rid = client.create_run(exp, tags={"mlflow.source.git.commit": missing,
                                       "mlflow.source.name": "train.py"}).info.run_id
    client.set_terminated(rid)
    with lab.daemon.client(timeout=60) as c:  # type: ignore[union-attr]
        res = reproduce(c, lab.repo, rid)
    assert res["state"] == "failed"
    err = res["error"]
    assert err["phase"] == "resolve" and missing in err["message"]
    assert "git fetch" in err["remedy"]
    assert res["result"]["verdict"] == "failed" and res["result"]["new_run_id"] is None


def test_a_run_with_nothing_captured_falls_back_to_the_repo_files_and_says_so(lab: Lab) -> None:
    """No lock, no command line: requirements.txt at the commit, the source script, a note."""
    with lab.daemon.client(timeout=120) as c:  # type: ignore[union-attr]
        orig = c.call("octostore/run", root=str(lab.repo), run_id=lab.runs["bare"])
        assert orig["environment"]["lock"] is None and orig["environment"]["argv"] is None
        res = reproduce(c, lab.repo, lab.runs["bare"], timeout=400)
        r = res["result"]
        assert r["verdict"] == "reproduced", res
        env = r["environment"]
        assert env["kind"] == "project" and env["source"].startswith("requirements.txt at ")
        assert any("falling back to the repo's environment files" in n for n in r["notes"])
        assert r["entry_point"]["kind"] == "script"
        refused = c.call("octostore/reproduce", root=str(lab.repo), run_id=lab.runs["bare"],
                         set={"lr": "0.3"}, confirmed=True)
        res = follow(c, refused["job"])
        assert res["state"] == "failed" and res["error"]["phase"] == "resolve"
        assert "cannot be changed from outside" in res["error"]["message"]


def test_a_failing_training_script_gives_a_failed_verdict_with_the_log_tail(lab: Lab) -> None:
    """The script dies: verdict failed in phase run, with its traceback; the run says so."""
    with lab.daemon.client(timeout=120) as c:  # type: ignore[union-attr]
        res = reproduce(c, lab.repo, lab.runs["c"], set={"fail_at": "2"})
        assert res["state"] == "failed"
        err, r = res["error"], res["result"]
        assert err["phase"] == "run" and "exited with code 1" in err["message"]
        assert any("the loss exploded at epoch 2" in line for line in err["log_tail"])
        assert r["verdict"] == "failed" and r["new_run_id"]
        new = c.call("octostore/run", root=str(lab.repo), run_id=r["new_run_id"])
        assert new["status"] == "FAILED" and new["tags"]["octostore.verdict"] == "failed"
        assert new["params"]["fail_at"] == "2"
        orig = c.call("octostore/run", root=str(lab.repo), run_id=lab.runs["c"])
        assert {"run_id": r["new_run_id"], "verdict": "failed", "status": "FAILED"} in (
            orig["reproduced_by"])


def test_two_reproductions_at_once(lab: Lab) -> None:
    """Two jobs side by side, from two connections: both finish, each with its own run."""
    results: dict[str, dict[str, Any]] = {}

    def go(key: str) -> None:
        with lab.daemon.client(timeout=120) as c:  # type: ignore[union-attr]
            results[key] = reproduce(c, lab.repo, lab.runs[key])

    threads = [threading.Thread(target=go, args=(k,)) for k in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert set(results) == {"a", "b"}
    for key, res in results.items():
        assert res["result"]["verdict"] == "reproduced", res
        assert res["result"]["run_id"] == lab.runs[key]
    assert results["a"]["result"]["new_run_id"] != results["b"]["result"]["new_run_id"]
    with lab.daemon.client() as c:  # type: ignore[union-attr]
        listed = {j["job"]: j for j in c.call("octostore/jobs", root=str(lab.repo))["jobs"]}
    assert {results[k]["job"] for k in results} <= set(listed)
    assert git(lab.repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_keep_worktree_leaves_it_and_says_where(lab: Lab) -> None:
    """--keep-worktree: the checked-out code stays for inspection at the path given."""
    with lab.daemon.client(timeout=120) as c:  # type: ignore[union-attr]
        res = reproduce(c, lab.repo, lab.runs["a"], keep_worktree=True)
    wt = Path(res["result"]["worktree"])
    try:
        assert (wt / "train.py").exists()
        assert str(wt) in git(lab.repo, "worktree", "list")
    finally:
        git(lab.repo, "worktree", "remove", "--force", str(wt))
    wait_for(lambda: not wt.exists(), what="the worktree to go")


def test_an_environment_that_no_longer_installs_stops_unless_allowed(lab: Lab) -> None:
    """A lock with a package that does not install: verdict failed in phase environment,
    naming the package and how to go on anyway."""
    from octostored.capture import files as capture_files

    from .test_commit_support import file_client

    lock = {"format": "octostore-lock/1", "platform": {"tag": "linux-x86_64"},
            "python": {"version": ".".join(map(str, sys.version_info[:3])),
                       "implementation": "cpython"},
            "packages": [{"name": "octostore-no-such-package", "version": "0.0.1"}]}
    text = json.dumps(lock, indent=2, sort_keys=True) + "\n"
    digest = capture_files.sha256_hex(text.encode())
    capture_files.store_once(capture_files.lock_path(str(lab.repo), digest), text.encode())
    client = file_client(lab.repo)
    exp = client.get_experiment_by_name("tiny").experiment_id
    head = git(lab.repo, "rev-parse", "HEAD").strip()
    rid = client.create_run(exp, tags={"mlflow.source.git.commit": head,
                                       "octostore.env": digest,
                                       "octostore.argv": '["python", "train.py"]',
                                       "octostore.cwd": "."}).info.run_id
    client.set_terminated(rid)
    with lab.daemon.client(timeout=120) as c:  # type: ignore[union-attr]
        res = reproduce(c, lab.repo, rid)
    assert res["state"] == "failed" and res["error"]["phase"] == "environment"
    assert "octostore-no-such-package==0.0.1 does not install here" in res["error"]["message"]
    assert "--allow-env-differences" in res["error"]["remedy"]
    assert [d["name"] for d in res["error"]["differences"]] == [
        "octostore-no-such-package==0.0.1"]


def test_env_current_runs_in_an_interpreter_as_it_is(lab: Lab) -> None:
    """--env current: nothing is built; the differences from the run's lock are listed."""
    with lab.daemon.client(timeout=120) as c:  # type: ignore[union-attr]
        res = reproduce(c, lab.repo, lab.runs["b"], env="current", python=str(lab.python))
    r = res["result"]
    assert r["verdict"] == "reproduced", res
    assert r["environment"]["kind"] == "current" and r["environment"]["cached"] is True
    assert r["environment"]["differences"] == []  # the very environment the run had
