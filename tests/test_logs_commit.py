"""``octostore commit`` takes the console logs of the runs it commits; a clone reads them.

Real MLflow runs tagged with logs written in the agreed format, a real daemon, real git
(with and without Git LFS), and a real ``git clone`` whose daemon resolves the tags.
"""

from __future__ import annotations

import base64
import os
import random
import subprocess
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from .conftest import make_repo
from .test_commit import nolfs, octo, withlfs  # noqa: F401 - fixtures
from .test_commit_support import git, user_state
from .test_logs_daemon import T0, LogWriter, _run

__all__ = ["nolfs", "octo", "withlfs"]


def _noisy(n_lines: int, seed: int) -> bytes:
    """Log lines that do not compress away (random words)."""
    rng = random.Random(seed)
    return b"".join(b"step %d %s\n" % (i, base64.b64encode(rng.randbytes(60)))
                    for i in range(n_lines))


def _repo(base: Path) -> tuple[Path, MlflowClient, str]:
    repo = make_repo(base / "repo")
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    return repo, mlf, mlf.create_experiment("logs")


def _logs(c: Any, root: Path, rid: str) -> tuple[list[dict[str, Any]], str]:
    info = c.call("octostore/run", root=str(root), run_id=rid)["logs"]
    data, offset = [], 0
    while True:
        r = c.call("octostore/log", root=str(root), run_id=rid, offset=offset,
                   max_bytes=1024 * 1024)
        data.append(r["data"])
        offset = r["next_offset"]
        if r["eof"]:
            return info, "".join(data)


def test_commit_takes_the_logs_and_a_clone_reads_them(nolfs: None, octo: Any, short_tmp: Path) -> None:
    repo, mlf, exp = _repo(short_tmp)
    shared = LogWriter(repo, "shared")
    shared.write(T0, b"A epoch 1\n")
    shared.write(T0 + 1000, "A done \x1b[32m✓\x1b[0m\r\n".encode())
    shared.write(T0 + 5000, b"B epoch 1\n")
    shared.exit(T0 + 7000)
    big = LogWriter(repo, "big")
    big.write(T0, b"progress 1%\r" * 20_000 + b"\n")  # 240 kB that compresses to ~1 kB
    big.exit(T0 + 100)
    a = _run(mlf, exp, "a", T0, T0 + 2000, shared.rel)
    b = _run(mlf, exp, "b", T0 + 4500, T0 + 6000, shared.rel)
    c_ = _run(mlf, exp, "c", T0, T0 + 50, big.rel)
    plain = _run(mlf, exp, "plain", T0, T0 + 50, None)
    before = user_state(repo)
    d = octo()
    with d.client() as c:
        originals = {rid: _logs(c, repo, rid) for rid in (a, b, c_)}
        plan = c.call("octostore/commit", root=str(repo), dry_run=True, max_artifact_mb=0.1)
        assert not (repo / ".octostore" / "logs" / ".gitignore").exists()
        assert {e["path"]: e["stored"] for e in plan["logs"]} == {
            shared.rel: "plain", big.rel + ".gz": "gzip"}
        res = c.call("octostore/commit", root=str(repo), max_artifact_mb=0.1)
    assert res["committed"] and len(res["runs"]) == 4, res
    assert {e["path"]: e["stored"] for e in res["logs"]} == {shared.rel: "plain",
                                                              big.rel + ".gz": "gzip"}
    assert sorted(next(e for e in res["logs"] if e["path"] == shared.rel)["runs"]) == sorted([a, b])
    tree = set(git(repo, "ls-tree", "-r", "--name-only", "HEAD").split())
    assert {".octostore/logs/shared.log", ".octostore/logs/shared.idx",
            ".octostore/logs/big.log.gz", ".octostore/logs/big.idx",
            ".octostore/logs/.gitignore"} <= tree
    assert ".octostore/logs/big.log" not in tree
    # The user's work is as it was; octostore's folder is clean (the plain big.log is ignored).
    assert user_state(repo) == before
    assert git(repo, "status", "--porcelain", "-uall", "--", ".octostore") == ""
    assert (repo / ".octostore" / "logs" / "big.log").exists()  # her file stays
    # A second commit finds nothing new.
    with d.client() as c:
        again = c.call("octostore/commit", root=str(repo), run_ids=[a, c_], max_artifact_mb=0.1)
        assert again["nothing_to_commit"], again
    # A clone (no mlruns/: only the committed runs) resolves every tag to the same text.
    clone = short_tmp / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert not (clone / "mlruns").exists() and not (clone / ".octostore/logs/big.log").exists()
    with d.client() as c:
        for rid, (info, text) in originals.items():
            got_info, got_text = _logs(c, clone, rid)
            assert got_text == text, rid
            assert [(x["part"], x["size"], x["live"]) for x in got_info] == [
                (x["part"], x["size"], x["live"]) for x in info]
        assert _logs(c, clone, c_)[0][0]["path"] == big.rel + ".gz"
        assert c.call("octostore/log", root=str(clone), run_id=b, grep="epoch")["matches"] == [
            [1, "B epoch 1"]]
        assert c.call("octostore/run", root=str(clone), run_id=plain)["logs"] == []
    assert git(clone, "status", "--porcelain", "-uall") == ""


def test_a_large_log_goes_through_lfs(withlfs: None, octo: Any, short_tmp: Path) -> None:
    repo, mlf, exp = _repo(short_tmp)
    w = LogWriter(repo, "noisy")
    w.write(T0, _noisy(3000, 1))  # ~250 kB that stays ~190 kB compressed
    w.exit(T0 + 10)
    rid = _run(mlf, exp, "n", T0, T0 + 5, w.rel)
    d = octo()
    with d.client() as c:
        want = _logs(c, repo, rid)[1]
        res = c.call("octostore/commit", root=str(repo), max_artifact_mb=0.1)
    assert [e["stored"] for e in res["logs"]] == ["gzip+git-lfs"], res["logs"]
    attrs = git(repo, "show", "HEAD:.octostore/.gitattributes")
    assert "/logs/noisy.log.gz filter=lfs" in attrs
    pointer = git(repo, "show", "HEAD:.octostore/logs/noisy.log.gz")
    assert pointer.startswith("version https://git-lfs.github.com/spec/v1")
    clone = short_tmp / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    with d.client() as c:
        assert _logs(c, clone, rid)[1] == want  # the clone's LFS smudge gives the real file


def test_without_lfs_a_log_too_large_even_compressed_is_left_out(
        nolfs: None, octo: Any, short_tmp: Path) -> None:
    repo, mlf, exp = _repo(short_tmp)
    w = LogWriter(repo, "noisy")
    w.write(T0, _noisy(3000, 2))
    w.exit(T0 + 10)
    rid = _run(mlf, exp, "n", T0, T0 + 5, w.rel)
    d = octo()
    with d.client() as c:
        res = c.call("octostore/commit", root=str(repo), max_artifact_mb=0.1)
    assert res["committed"] and [e["stored"] for e in res["logs"]] == ["left-out"]
    assert any("noisy.log.gz" in w_ and "left out" in w_ for w_ in res["warnings"])
    tree = git(repo, "ls-tree", "-r", "--name-only", "HEAD").split()
    assert rid in " ".join(tree) and not any(p.startswith(".octostore/logs/noisy.log") for p in tree)
    assert not any(name.startswith("staging-") for name in os.listdir(repo / ".git" / "octostore"))


def test_a_log_still_being_written_is_committed_as_it_is(nolfs: None, octo: Any, short_tmp: Path) -> None:
    repo, mlf, exp = _repo(short_tmp)
    w = LogWriter(repo, "going")  # the writer is this test process: alive, no exit mark
    w.write(T0, b"run 1 done\n")
    rid = _run(mlf, exp, "first", T0, T0 + 100, w.rel)
    d = octo()
    with d.client() as c:
        res = c.call("octostore/commit", root=str(repo))
    assert res["committed"] and res["logs"][0]["live"] is True
    assert any("still being written" in x for x in res["warnings"])
    assert git(repo, "show", f"HEAD:{w.rel}") == "run 1 done\n"
    assert rid in git(repo, "log", "-1", "--format=%B")
