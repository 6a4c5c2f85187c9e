"""``octostore/commit`` against a real daemon, real git repos and stores written by MLflow.

Each test states the promise it checks: only octostore's paths in the commit,
the user's work untouched, nothing new commits nothing, large artifacts through
Git LFS or listed and left out, kill -9 at every phase, refusal mid-merge.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from octostored.client import RequestError

from .conftest import DaemonProc, make_repo, wait_for
from .test_commit_support import (
    file_client,
    git,
    isolate_git,
    log_run,
    mlflow_view,
    repo_state,
    sqlite_client,
    user_state,
)


@pytest.fixture
def nolfs(monkeypatch: pytest.MonkeyPatch, short_tmp: Path) -> None:
    isolate_git(monkeypatch, short_tmp, lfs=False)


@pytest.fixture
def withlfs(monkeypatch: pytest.MonkeyPatch, short_tmp: Path) -> None:
    isolate_git(monkeypatch, short_tmp, lfs=True)


@pytest.fixture
def octo(short_tmp: Path) -> Any:
    """A daemon started after the test's environment is set (it inherits PATH and git config)."""
    procs: list[DaemonProc] = []

    def start(name: str = "", **env: str) -> DaemonProc:
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        base = short_tmp / name if name else short_tmp
        base.mkdir(exist_ok=True)
        try:
            d = DaemonProc(base).start()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        procs.append(d)
        return d

    yield start
    for d in procs:
        d.stop()


def _user_changes(repo: Path) -> None:
    """A staged edit, an unstaged edit on top of it, a staged new file, untracked files."""
    (repo / "src").mkdir()
    for name in ("model.py", "data.py"):
        (repo / "src" / name).write_text(f"# {name}\nVALUE = 1\n")
    git(repo, "add", "src")
    git(repo, "commit", "-qm", "code")
    (repo / "src" / "model.py").write_text("# model.py\nVALUE = 2\n")
    git(repo, "add", "src/model.py")
    (repo / "src" / "model.py").write_text("# model.py\nVALUE = 3\n")  # partly staged
    (repo / "src" / "data.py").write_text("# data.py\nVALUE = 9\n")  # unstaged
    (repo / "src" / "new.py").write_text("NEW = True\n")
    git(repo, "add", "src/new.py")
    (repo / "scratch.txt").write_text("mine\n")


def _repo_with_runs(base: Path, tmp: Path) -> tuple[Path, list[str], Any, Any]:
    repo = make_repo(base / "repo")
    fc = file_client(repo)
    fexp = fc.create_experiment("wine-quality")
    ids = [log_run(fc, fexp, f"file-{i}", 0.1 * (i + 1), artifacts={"plots/curve.txt": b"c" * 10},
                   tmp=tmp) for i in range(2)]
    sc = sqlite_client(repo)
    sexp = sc.create_experiment("wine-quality-sql", artifact_location=str(repo / "mlruns-sql"))
    ids += [log_run(sc, sexp, f"sql-{i}", 0.2 * (i + 1), artifacts={"notes.md": b"# run"}, tmp=tmp)
            for i in range(2)]
    from mlflow.entities import Dataset, DatasetInput, InputTag

    ds = Dataset("wine", "d1g3st", "local", '{"uri": "data/wine.csv"}', '{"cols": 12}', '{"n": 9}')
    for client, rid in ((fc, ids[0]), (sc, ids[2])):
        client.log_inputs(rid, [DatasetInput(ds, [InputTag("mlflow.data.context", "train")])])
    return repo, ids, fc, sc


def test_commit_holds_only_the_runs_and_leaves_the_users_work_alone(
        nolfs: None, octo: Any, short_tmp: Path, tmp_path: Path) -> None:
    """Staged, partly staged, unstaged and untracked changes are exactly as before."""
    repo, ids, fc, sc = _repo_with_runs(short_tmp, tmp_path)
    _user_changes(repo)
    before = user_state(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    d = octo()
    with d.client() as c:
        plan = c.call("octostore/commit", root=str(repo), dry_run=True)
        assert [r["run_id"] for r in plan["runs"]] and not plan["committed"]
        assert git(repo, "rev-parse", "HEAD").strip() == head and user_state(repo) == before
        res = c.call("octostore/commit", root=str(repo))
    assert res["committed"] and sorted(r["run_id"] for r in res["runs"]) == sorted(ids)
    assert user_state(repo) == before
    assert git(repo, "rev-parse", "HEAD^").strip() == head
    changed = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert changed and all(p.startswith(".octostore/") for p in changed)
    tree = git(repo, "ls-tree", "-r", "--name-only", "HEAD").split()
    assert not any("mlflow.db" in p for p in tree)
    assert git(repo, "status", "--porcelain", "--", ".octostore") == ""
    subject, *_ = res["message"].splitlines()
    assert subject.startswith("octostore: 4 runs of wine-quality, wine-quality-sql (best val_rmse ")
    body = git(repo, "log", "-1", "--format=%(trailers:key=Octostore-Run,valueonly)")
    assert sorted(body.split()) == sorted(ids)
    # The daemon marks them committed, still one run each (live store + committed copy).
    with d.client() as c:
        runs = c.call("octostore/runs", root=str(repo))["runs"]
    assert sorted(r["run_id"] for r in runs) == sorted(ids)
    assert all(r["committed"] and ".octostore/runs" in r["sources"] for r in runs)
    # MLflow reads the committed folder as it reads the sources.
    from mlflow import MlflowClient

    committed = mlflow_view(MlflowClient(str(repo / ".octostore" / "runs")))
    assert committed == {**mlflow_view(fc), **mlflow_view(sc)}
    # The user's next plain `git commit` commits her staged changes only.
    git(repo, "commit", "-qm", "mine")
    assert sorted(git(repo, "show", "--name-only", "--format=", "HEAD").split()) == [
        "src/model.py", "src/new.py"]


def test_nothing_new_commits_nothing_then_new_runs_do(nolfs: None, octo: Any,
                                                      short_tmp: Path, tmp_path: Path) -> None:
    repo, ids, fc, _ = _repo_with_runs(short_tmp, tmp_path)
    d = octo()
    with d.client() as c:
        assert c.call("octostore/commit", root=str(repo))["committed"]
        head = git(repo, "rev-parse", "HEAD").strip()
        again = c.call("octostore/commit", root=str(repo))
        assert again["nothing_to_commit"] and not again["committed"]
        assert again["already_committed"] == 4 and again["runs"] == []
        assert git(repo, "rev-parse", "HEAD").strip() == head
        # Named runs already committed and unchanged: nothing either.
        named = c.call("octostore/commit", root=str(repo), run_ids=[ids[0][:8]])
        assert named["nothing_to_commit"] and git(repo, "rev-parse", "HEAD").strip() == head
        # A tag set after the commit: naming the run commits the change.
        fc.set_tag(ids[0], "reviewed", "yes")
        upd = c.call("octostore/commit", root=str(repo), run_ids=[ids[0]])
        assert upd["committed"], upd
        assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == [
            f"{upd['runs'][0]['folder']}/tags/reviewed"]
        # A new run, plus a running and a deleted one that are skipped.
        exp = fc.get_run(ids[0]).info.experiment_id
        new = log_run(fc, exp, "new", 0.9)
        running = log_run(fc, exp, "live", 0.5, status="RUNNING")
        gone = log_run(fc, exp, "gone", 0.5)
        fc.delete_run(gone)
        third = c.call("octostore/commit", root=str(repo), message="Tune alpha")
        assert [r["run_id"] for r in third["runs"]] == [new]
        assert {s["run_id"]: s["reason"] for s in third["skipped"]} == {
            running: "still running", gone: "deleted"}
        assert git(repo, "log", "-1", "--format=%s").strip() == "Tune alpha"
        assert "octostore: 1 run of wine-quality" in git(repo, "log", "-1", "--format=%b")
        with pytest.raises(RequestError) as bad:
            c.call("octostore/commit", root=str(repo), run_ids=["ffffffffffff"])
        assert bad.value.code == 1003 and "no run ffffffffffff" in bad.value.message


def test_large_artifact_with_git_lfs(withlfs: None, octo: Any, short_tmp: Path,
                                     tmp_path: Path) -> None:
    repo = make_repo(short_tmp / "repo")
    fc = file_client(repo)
    exp = fc.create_experiment("big")
    big = os.urandom(300_000)
    rid = log_run(fc, exp, "big", 0.1, artifacts={"model/weights bin.pt": big,
                                                   "small.txt": b"ok"}, tmp=tmp_path)
    d = octo()
    with d.client() as c:
        res = c.call("octostore/commit", root=str(repo), max_artifact_mb=0.1)
    assert res["committed"] and res["artifacts"]["left_out"] == []
    [entry] = res["artifacts"]["lfs"]
    assert entry["path"] == "model/weights bin.pt" and entry["size"] == len(big)
    folder = res["runs"][0]["folder"]
    rel = f"{folder}/artifacts/model/weights bin.pt"
    pointer = git(repo, "show", f"HEAD:{rel}")
    assert pointer.startswith("version https://git-lfs.github.com/spec/v1")
    assert git(repo, "show", f"HEAD:{folder}/artifacts/small.txt") == "ok"
    assert "filter=lfs" in (repo / ".octostore" / ".gitattributes").read_text()
    assert (repo / rel).read_bytes() == big  # the work tree holds the real file
    assert git(repo, "status", "--porcelain") .strip() == "?? mlruns/"
    clone = short_tmp / "clone"
    git(short_tmp, "clone", "-q", str(repo), str(clone))
    assert (clone / rel).read_bytes() == big
    manifest = json.loads((clone / folder / "octostore-artifacts.json").read_text())
    assert manifest["artifacts"][0]["stored"] == "git-lfs"
    assert rid in res["message"]


def test_large_artifact_without_git_lfs(nolfs: None, octo: Any, short_tmp: Path,
                                        tmp_path: Path) -> None:
    import hashlib

    repo = make_repo(short_tmp / "repo")
    fc = file_client(repo)
    exp = fc.create_experiment("big")
    big = os.urandom(300_000)
    log_run(fc, exp, "big", 0.1, artifacts={"weights.pt": big, "small.txt": b"ok"}, tmp=tmp_path)
    (repo / "pyproject.toml").write_text("[tool.octostore.commit]\nmax_artifact_mb = 0.1\n")
    git(repo, "add", "pyproject.toml")
    git(repo, "commit", "-qm", "limit")
    d = octo()
    with d.client() as c:
        res = c.call("octostore/commit", root=str(repo))
    assert res["committed"] and res["artifacts"]["lfs"] == []
    [left] = res["artifacts"]["left_out"]
    assert left["path"] == "weights.pt" and left["size"] == len(big)
    assert left["sha256"] == hashlib.sha256(big).hexdigest()
    assert any("git-lfs is not installed" in w and "weights.pt" in w for w in res["warnings"])
    folder = res["runs"][0]["folder"]
    tree = git(repo, "ls-tree", "-r", "--name-only", "HEAD").split("\n")
    assert f"{folder}/artifacts/small.txt" in tree
    assert f"{folder}/artifacts/weights.pt" not in tree and ".octostore/.gitattributes" not in tree
    manifest = json.loads(git(repo, "show", f"HEAD:{folder}/octostore-artifacts.json"))
    assert manifest["artifacts"] == [{"path": "weights.pt", "size": len(big),
                                      "sha256": left["sha256"], "stored": "left-out"}]


def test_refuses_in_the_middle_of_a_merge(nolfs: None, octo: Any, short_tmp: Path,
                                          tmp_path: Path) -> None:
    repo, ids, _, _ = _repo_with_runs(short_tmp, tmp_path)
    (repo / "f.txt").write_text("base\n")
    git(repo, "add", "f.txt")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "other")
    (repo / "f.txt").write_text("other\n")
    git(repo, "commit", "-qam", "other")
    git(repo, "checkout", "-q", "main")
    (repo / "f.txt").write_text("main\n")
    git(repo, "commit", "-qam", "main")
    assert subprocess.run(["git", "merge", "other"], cwd=repo, capture_output=True).returncode
    before = repo_state(repo)
    d = octo()
    with d.client() as c:
        with pytest.raises(RequestError) as err:
            c.call("octostore/commit", root=str(repo))
    assert err.value.code == 1020
    assert "in the middle of a merge" in err.value.message
    assert "git merge --abort" in err.value.message
    assert repo_state(repo) == before
    out = subprocess.run([sys.executable, "-m", "octostored.cli", "commit", "--root", str(repo)],
                         env=d.env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "in the middle of a merge" in out.stderr and "Traceback" not in out.stderr


def test_runs_whose_capture_failed_are_committed(nolfs: None, octo: Any, short_tmp: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(short_tmp / "repo")
    monkeypatch.setenv("OCTOSTORE_CAPTURE_CACHE", str(short_tmp / "capture-cache"))
    fc = file_client(repo)
    exp = fc.create_experiment("broken")
    ok = fc.create_run(exp, run_name="ok", tags={
        "octostore.env": "a" * 64, "octostore.git.patch": "b" * 64,
        "octostore.capture_error": "environment: Permission denied"}).info.run_id
    fc.set_terminated(ok)
    odd = fc.create_run(exp, run_name="odd", tags={"octostore.env": "../../etc/passwd"}).info.run_id
    fc.set_terminated(odd)
    # A run folder whose meta.yaml names a path instead of an id.
    shutil.copytree(repo / "mlruns" / exp / odd, repo / "mlruns" / exp / "evil")
    meta = repo / "mlruns" / exp / "evil" / "meta.yaml"
    meta.write_text(meta.read_text().replace(f"run_id: {odd}", "run_id: ../../../evil"))
    d = octo(OCTOSTORE_CAPTURE_CACHE=str(short_tmp / "capture-cache"))
    with d.client() as c:
        res = c.call("octostore/commit", root=str(repo))
    assert res["committed"] and {r["run_id"] for r in res["runs"]} == {ok, odd}
    assert res["skipped"] == [{"run_id": "../../../evil",
                               "reason": "its id is not a plain folder name"}]
    assert not (short_tmp / "evil").exists() and not (repo / "evil").exists()
    assert any("environment lock aaaaaaaaaaaa is not on this machine" in w for w in res["warnings"])
    assert any("code patch bbbbbbbbbbbb" in w for w in res["warnings"])
    assert any("is not a sha256" in w for w in res["warnings"])
    tree = git(repo, "ls-tree", "-r", "--name-only", "HEAD")
    assert ".octostore/envs" not in tree and "passwd" not in tree
    from mlflow import MlflowClient

    got = MlflowClient(str(repo / ".octostore" / "runs")).get_run(ok).data.tags
    assert got["octostore.capture_error"] == "environment: Permission denied"


def test_locks_patches_and_env_files_go_in(nolfs: None, octo: Any, short_tmp: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs bring their lock and patch; untracked env files come along; modified ones do not."""
    from octostored.capture import collect, envlock

    repo = make_repo(short_tmp / "repo")
    (repo / "requirements.txt").write_text("mlflow\n")
    git(repo, "add", "requirements.txt")
    git(repo, "commit", "-qm", "reqs")
    (repo / "requirements.txt").write_text("mlflow\nscikit-learn\n")  # modified: stays the user's
    (repo / "conda.yaml").write_text("name: x\n")  # untracked env file: committed
    (repo / "README.md").write_text("edited\n")
    monkeypatch.setenv("OCTOSTORE_CAPTURE_CACHE", str(short_tmp / "capture-cache"))
    envlock._MEMO.clear()
    tags = collect.collect(cwd=str(repo))
    fc = file_client(repo)
    exp = fc.create_experiment("e")
    rid = fc.create_run(exp, tags=tags).info.run_id
    fc.set_terminated(rid)
    before = user_state(repo)
    d = octo()
    with d.client() as c:
        res = c.call("octostore/commit", root=str(repo))
    assert res["locks"] == [tags["octostore.env"]]
    assert res["patches"] == [tags["octostore.git.patch"]]
    assert res["env_files"] == ["conda.yaml"]
    assert any("requirements.txt has uncommitted changes" in w for w in res["warnings"])
    names = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert f".octostore/envs/{tags['octostore.env']}.json" in names
    assert f".octostore/patches/{tags['octostore.git.patch']}.patch" in names
    assert "conda.yaml" in names and "requirements.txt" not in names
    after = user_state(repo)
    assert after["diff"] == before["diff"]
    assert after["untracked"] == before["untracked"].replace("conda.yaml\n", "")


COMMIT_IN_A_PROCESS = """
import os, sys
from octostored.sources import filestore
from octostored.gitops.commit import CommitRequest, commit
from octostored.gitops.export import RunSource
repo = sys.argv[1]
done = {r.run_id for r in filestore.scan_store(os.path.join(repo, ".octostore", "runs"), "c").runs}
scan = filestore.scan_store(os.path.join(repo, "mlruns"), "mlruns")
exps = {e.experiment_id: e for e in scan.experiments}
commit(CommitRequest(root=repo, sources=[RunSource(r, "file", exps[r.experiment_id])
                                         for r in scan.runs if r.run_id not in done]))
"""
"""What the daemon's commit job runs (gitops.commit.commit), in a process of its own that
starts in a fraction of a daemon's time: the tests kill it."""


def test_kill_9_at_every_phase_leaves_before_or_after(nolfs: None, octo: Any,
                                                      short_tmp: Path, tmp_path: Path) -> None:
    """Killed at each phase: as before (prepare), or finished by the next commit, never lost."""
    repo = make_repo(short_tmp / "repo")
    _user_changes(repo)
    fc = file_client(repo)
    exp = fc.create_experiment("crash")
    mine = user_state(repo)
    committed: list[str] = []
    survivor = octo("ok")  # finishes what the killed daemons left
    for i, phase in enumerate(("exported", "prepared", "journaled", "placed", "indexed",
                               "committed")):
        rid = log_run(fc, exp, f"run-{i}", 0.1 * i, artifacts={"a.txt": b"x"}, tmp=tmp_path)
        before = repo_state(repo)
        paused = repo / ".git" / "octostore" / "paused"
        proc = subprocess.Popen([sys.executable, "-c", COMMIT_IN_A_PROCESS, str(repo)],
                                # the same user's state as the survivor: its journal key
                                env=dict(os.environ, OCTOSTORE_COMMIT_PAUSE=phase,
                                         XDG_STATE_HOME=survivor.env()["XDG_STATE_HOME"]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda p=proc: paused.exists() or p.poll() is not None,  # noqa: B023
                 timeout=60, what=f"the commit to reach {phase}")
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        if i == 0:  # one commit at a time per repo, whichever process asks
            with survivor.client() as c, pytest.raises(RequestError) as busy:
                c.call("octostore/commit", root=str(repo))
            assert busy.value.code == 1020 and "another `octostore commit`" in busy.value.message
        proc.kill()  # SIGKILL
        proc.wait(10)
        paused.unlink()
        now = repo_state(repo)
        if phase in ("exported", "prepared", "journaled"):
            assert now == before, phase  # nothing visible happened
        elif phase == "committed":
            assert now["head"] != before["head"]
            assert git(repo, "status", "--porcelain", "--", ".octostore") == ""
        else:  # placed / indexed: our files are there, the branch has not moved yet
            assert now["head"] == before["head"]
        assert user_state(repo)["diff"] == mine["diff"]
        with survivor.client() as c:
            res = c.call("octostore/commit", root=str(repo))
            if phase in ("exported", "prepared"):
                assert res["recovered"] is None and res["committed"]
            else:
                assert res["recovered"] == "finished an interrupted commit of 1 run"
                assert res["nothing_to_commit"]
            again = c.call("octostore/commit", root=str(repo))
            assert again["nothing_to_commit"]
        committed.append(rid)
        tree = git(repo, "ls-tree", "-r", "--name-only", "HEAD", "--", ".octostore/runs")
        assert all(f"/{r}/meta.yaml" in tree for r in committed)
        assert git(repo, "status", "--porcelain", "--", ".octostore") == ""
        assert not list((repo / ".git" / "octostore").glob("staging-*"))
        assert user_state(repo) == mine
    log = git(repo, "log", "--format=%s").splitlines()
    assert len([s for s in log if s.startswith("octostore: 1 run")]) == 6


def test_push_and_gitignore_and_dry_run_cli(nolfs: None, octo: Any, short_tmp: Path,
                                            tmp_path: Path) -> None:
    repo, ids, _, _ = _repo_with_runs(short_tmp, tmp_path)
    remote = short_tmp / "remote.git"
    git(short_tmp, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "-u", "origin", "main")
    d = octo()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "octostored.cli", *args], cwd=repo,
                              env=d.env(), capture_output=True, text=True, timeout=120)

    dry = cli("commit", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would commit 4 run(s) on main:")
    assert "mlflow.db is not in .gitignore" in dry.stderr
    out = cli("commit", "--push", "--gitignore-db", "--experiment", "wine-quality-sql")
    assert out.returncode == 0, out.stderr
    assert "committed 2 run(s)" in out.stdout and "pushed" in out.stdout
    assert "added /mlflow.db, /mlflow.db-* to .gitignore" in out.stdout
    assert git(remote, "rev-parse", "main") == git(repo, "rev-parse", "HEAD")
    assert git(repo, "status", "--porcelain", "--", ".gitignore").startswith("??")
    assert git(repo, "check-ignore", "mlflow.db").strip() == "mlflow.db"
    nothing = cli("commit", "--experiment", "wine-quality-sql")
    assert nothing.returncode == 0 and "nothing to commit" in nothing.stdout
