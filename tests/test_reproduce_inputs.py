"""The inputs a run read, checked by resolve against real git repos (in process): big changes
the patch does not carry, Git LFS pointers not pulled, and records written to harm whoever
reproduces (paths out of the repo, a token that climbs, a symlinked folder at the commit)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from octostored.jobs import JobError
from octostored.reproduce import inputs, plan

from .conftest import git, make_repo
from .test_reproduce_resolve import SOURCES, _run

POINTER = ("version https://git-lfs.github.com/spec/v1\n"
           "oid sha256:" + "ab" * 32 + "\nsize 123456789\n")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _record(repo: Path, files: list[dict], token: str = "20260101-000000-1-abcd") -> str:
    folder = repo / ".octostore" / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{token}.json").write_text(json.dumps({"v": 1, "complete": True, "cut": False,
                                                      "files": files}))
    return token


def _project(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo")
    (repo / "train.py").write_text("print('hi')\n")
    (repo / "data").mkdir()
    (repo / "data" / "big.bin").write_bytes(b"committed rows\n" * 100)
    (repo / "data" / "lfs.bin").write_text(POINTER)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "project")
    return repo


def _entry(path: str, data: bytes, why: str = "read") -> dict:
    return {"path": path, "size": len(data), "mtime_ns": 0, "sha256": _sha(data), "why": why}


async def test_a_big_change_is_provided_when_the_clone_has_it_else_named(tmp_path: Path) -> None:
    repo = _project(tmp_path)
    changed = b"committed rows\n" * 100 + b"new rows\n"
    token = _record(repo, [_entry("data/big.bin", changed, "changed")])
    run = _run(repo, **{"octostore.argv": json.dumps(["python", "train.py"]),
                        "octostore.inputs": token})
    with pytest.raises(JobError) as err:
        await plan.resolve(str(repo), run, "exp", SOURCES, sets={})
    assert "data/big.bin (1.5 KB, sha256 " + _sha(changed)[:12] in err.value.message
    assert "recorded by hash only, and no file in this clone has it" in err.value.message
    # The user committed the change since: her file has the recorded hash and is provided.
    (repo / "data" / "big.bin").write_bytes(changed)
    p = await plan.resolve(str(repo), run, "exp", SOURCES, sets={})
    (item,) = p.inputs.items
    assert item.case == "provided" and "a big change the run made" in item.detail
    wt = tmp_path / "wt"
    wt.mkdir()
    (wt / "data").mkdir()
    (wt / "data" / "big.bin").write_bytes(b"committed rows\n" * 100)  # as checked out
    inputs.provide(p.inputs, str(wt))
    assert (wt / "data" / "big.bin").read_bytes() == changed
    assert not os.stat(wt / "data" / "big.bin").st_mode & 0o222


async def test_an_lfs_pointer_not_pulled_is_named(tmp_path: Path) -> None:
    repo = _project(tmp_path)
    real = b"the real 123 MB of data"
    token = _record(repo, [_entry("data/lfs.bin", real)])
    run = _run(repo, **{"octostore.argv": json.dumps(["python", "train.py"]),
                        "octostore.inputs": token})
    with pytest.raises(JobError, match=r"data/lfs.bin \(23 bytes, sha256 [0-9a-f]{12}\) is a Git "
                       r"LFS file whose content was not pulled into this clone \(run `git lfs "
                       r"pull`\)"):
        await plan.resolve(str(repo), run, "exp", SOURCES, sets={})


async def test_a_record_cannot_make_reproduce_read_outside_the_repo(tmp_path: Path) -> None:
    """An attack: a committed record names files outside the repo (to have them hashed, then
    copied into the worktree where the repo's script reads them)."""
    repo = _project(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("the user's secret\n")
    data = secret.read_bytes()
    token = _record(repo, [_entry("../secret.txt", data), _entry(str(secret), data),
                           _entry("data/../../secret.txt", data)])
    run = _run(repo, **{"octostore.argv": json.dumps(["python", "train.py"]),
                        "octostore.inputs": token})
    with pytest.raises(JobError) as err:
        await plan.resolve(str(repo), run, "exp", SOURCES, sets={})
    assert err.value.message.count("is outside the repo, so it cannot be checked") == 3
    assert all(i["case"] == "missing" and i["path"] != "secret.txt"
               for i in err.value.details["inputs"])
    # A token that climbs out of .octostore/inputs/ is not followed either.
    (tmp_path / "evil.json").write_text(json.dumps({"files": [_entry("../secret.txt", data)]}))
    run = _run(repo, **{"octostore.argv": json.dumps(["python", "train.py"]),
                        "octostore.inputs": "../../../evil"})
    p = await plan.resolve(str(repo), run, "exp", SOURCES, sets={})
    assert p.inputs.items == [] and any("is not a record token" in n for n in p.notes)


async def test_a_symlinked_folder_at_the_commit_does_not_carry_an_input_out(
        tmp_path: Path) -> None:
    """An attack: the commit makes ``data/raw`` a symbolic link to a folder of the user's, so
    that providing the ignored input would write there."""
    repo = _project(tmp_path)
    (repo / ".gitignore").write_text("raw.csv\n")
    (repo / "raw.csv").write_text("a,b\n")
    token = _record(repo, [_entry("raw.csv", b"a,b\n")])
    run = _run(repo, **{"octostore.argv": json.dumps(["python", "train.py"]),
                        "octostore.inputs": token})
    p = await plan.resolve(str(repo), run, "exp", SOURCES, sets={})
    assert p.inputs.items[0].case == "provided"
    victim = tmp_path / "victim"
    victim.mkdir()
    wt = tmp_path / "wt"
    wt.mkdir()
    p.inputs.items[0].path = "sub/raw.csv"
    (wt / "sub").symlink_to(victim)
    with pytest.raises(JobError, match="would land outside the checkout"):
        inputs.provide(p.inputs, str(wt))
    assert list(victim.iterdir()) == []


async def test_why_an_input_is_missing_ignored_or_untracked(tmp_path: Path) -> None:
    repo = _project(tmp_path)
    (repo / ".gitignore").write_text("data/raw/\n")
    token = _record(repo, [_entry("data/raw/wine.csv", b"a,b\n1,2\n"),
                           _entry("notes/extra.csv", b"x\n")])
    run = _run(repo, **{"octostore.argv": json.dumps(["python", "train.py"]),
                        "octostore.inputs": token})
    with pytest.raises(JobError) as err:
        await plan.resolve(str(repo), run, "exp", SOURCES, sets={})
    assert err.value.message == (
        "2 input(s) the run read are missing, so it was not run: input data/raw/wine.csv "
        f"(8 bytes, sha256 {_sha(b'a,b' + bytes([10]) + b'1,2' + bytes([10]))[:12]}) is "
        "git-ignored and not in this clone; input notes/extra.csv (2 bytes, sha256 "
        f"{_sha(b'x' + bytes([10]))[:12]}) is not in git and not in this clone")
