"""``octostore/log`` and the ``logs`` of ``octostore/run`` on a real daemon and real MLflow runs.

The console logs are written here in the agreed format (``octostored.console.logformat``):
a ``.log`` of raw bytes and an ``.idx`` of time marks, named by the runs' tag.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from octostored.client import Client, RequestError
from octostored.console.logformat import TAG, index_line
from octostored.rpc import protocol

from .conftest import DaemonProc, make_repo, wait_for

T0 = 1_700_000_000_000
"""Run times are set explicitly: the cut is by time, so the test decides it."""


class LogWriter:
    """Writes a console log and its marks as ``octostore run`` does."""

    def __init__(self, repo: Path, log_id: str, pid: int | None = None) -> None:
        self.dir = repo / ".octostore" / "logs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / f"{log_id}.log"
        self.idx = self.dir / f"{log_id}.idx"
        self.rel = f".octostore/logs/{log_id}.log"
        self.size = 0
        self.pid = pid if pid is not None else os.getpid()
        self.log.write_bytes(b"")
        self.idx.write_bytes(b"")
        self.header = False

    def write(self, t_ms: int, data: bytes) -> None:
        with open(self.idx, "ab") as f:
            if not self.header:
                f.write(index_line(0, t_ms, v=1, argv=["python", "train.py"], pid=self.pid))
                self.header = True
            else:
                f.write(index_line(self.size, t_ms))
        with open(self.log, "ab") as f:
            f.write(data)
        self.size += len(data)

    def exit(self, t_ms: int, code: int | None = 0) -> None:
        with open(self.idx, "ab") as f:
            f.write(index_line(self.size, t_ms, exit=code))


def _run(mlf: MlflowClient, exp: str, name: str, start: int, end: int | None,
         tag: str | None) -> str:
    tags = {TAG: tag} if tag is not None else {}
    rid = mlf.create_run(exp, start_time=start, run_name=name, tags=tags).info.run_id
    mlf.log_param(rid, "lr", "0.1")
    if end is not None:
        mlf.set_terminated(rid, "FINISHED", end_time=end)
    return rid


@pytest.fixture(params=["file", "sqlite"])
def store(request: pytest.FixtureRequest, short_tmp: Path) -> Iterator[tuple[Path, MlflowClient, str]]:
    repo = make_repo(short_tmp / "repo")
    uri = (repo / "mlruns").as_uri() if request.param == "file" else f"sqlite:///{repo}/mlflow.db"
    mlf = MlflowClient(tracking_uri=uri)
    yield repo, mlf, mlf.create_experiment("logs", artifact_location=(repo / "mlartifacts").as_uri())


def _err(c: Client, **params: object) -> RequestError:
    with pytest.raises(RequestError) as info:
        c.call("octostore/log", params)
    return info.value


def _sync(c: Client, repo: Path, rid: str) -> None:
    c.call("octostore/sync", root=str(repo))
    runs = c.call("octostore/runs", root=str(repo), view="all")["runs"]
    assert rid in [r["run_id"] for r in runs]


def _read_all(c: Client, repo: Path, rid: str, max_bytes: int, **kw: object) -> tuple[str, list[dict]]:
    out, replies, offset = [], [], 0
    while True:
        r = c.call("octostore/log", root=str(repo), run_id=rid, offset=offset,
                   max_bytes=max_bytes, **kw)
        replies.append(r)
        assert r["offset"] == offset
        out.append(r["data"])
        assert r["next_offset"] > offset or r["eof"]
        offset = r["next_offset"]
        if r["eof"]:
            return "".join(out), replies


def test_a_runs_part_is_cut_by_its_times(daemon: DaemonProc, store: tuple[Path, MlflowClient, str]) -> None:
    repo, mlf, exp = store
    w = LogWriter(repo, "20261126T130102Z-4242")
    w.write(T0, b"loading data\n")
    w.write(T0 + 1000, b"A: epoch 1\n")
    w.write(T0 + 2000, b"A: epoch 2\rA: epoch 2 done\n")
    w.write(T0 + 5000, b"B: epoch 1\n")
    w.write(T0 + 6000, b"B: \x1b[32mok\x1b[0m\n")
    w.write(T0 + 8000, b"saving\n")
    w.exit(T0 + 8100, 0)
    a = _run(mlf, exp, "a", T0 + 900, T0 + 4000, w.rel)
    b = _run(mlf, exp, "b", T0 + 4500, T0 + 7000, w.rel)
    with daemon.client() as c:
        _sync(c, repo, b)
        run_a = c.call("octostore/run", root=str(repo), run_id=a)
        assert run_a["logs"] == [{"name": "console", "kind": "console", "path": w.rel,
                                  "size": len(b"A: epoch 1\nA: epoch 2\rA: epoch 2 done\n"),
                                  "live": False, "part": "run"}]
        ra = c.call("octostore/log", root=str(repo), run_id=a)
        assert ra["data"] == "A: epoch 1\nA: epoch 2\rA: epoch 2 done\n"  # \r kept: raw text
        assert ra["eof"] and not ra["live"] and ra["name"] == "console"
        rb = c.call("octostore/log", root=str(repo), run_id=b[:8], name="console")
        assert rb["data"] == "B: epoch 1\nB: \x1b[32mok\x1b[0m\n"
        assert rb["size"] == len(rb["data"].encode()) == rb["next_offset"]


def test_overlapping_runs_of_one_log_each_get_the_whole_log(
        daemon: DaemonProc, store: tuple[Path, MlflowClient, str]) -> None:
    repo, mlf, exp = store
    w = LogWriter(repo, "overlap")
    w.write(T0, b"one\n")
    w.write(T0 + 1000, b"two\n")
    w.write(T0 + 2000, b"three\n")
    w.exit(T0 + 3000)
    a = _run(mlf, exp, "a", T0 + 500, T0 + 2500, w.rel)
    b = _run(mlf, exp, "b", T0 + 1500, T0 + 2800, w.rel)
    alone = _run(mlf, exp, "later", T0 + 10_000, T0 + 11_000, w.rel)
    with daemon.client() as c:
        _sync(c, repo, alone)
        for rid in (a, b):
            logs = c.call("octostore/run", root=str(repo), run_id=rid)["logs"]
            assert [(x["part"], x["size"]) for x in logs] == [("whole", 14)]
            assert c.call("octostore/log", root=str(repo), run_id=rid)["data"] == "one\ntwo\nthree\n"
        # A run after the last mark: its part is empty (the log has nothing of it).
        later = c.call("octostore/run", root=str(repo), run_id=alone)["logs"][0]
        assert (later["part"], later["size"]) == ("run", 0)


def test_offset_tail_max_bytes_and_utf8_boundaries(daemon: DaemonProc, short_tmp: Path) -> None:
    repo = make_repo(short_tmp / "repo")
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = mlf.create_experiment("utf8")
    text = "é€😀 progress 50%\r progress 100% ✓\n" * 7 + "日本語のログ\n"
    raw = text.encode()
    w = LogWriter(repo, "utf8")
    w.write(T0, raw)
    w.exit(T0 + 10)
    rid = _run(mlf, exp, "u", T0, T0 + 5, w.rel)
    with daemon.client() as c:
        _sync(c, repo, rid)
        for mb in (1, 2, 3, 5, 7, 64):
            got, replies = _read_all(c, repo, rid, mb)
            assert got == text, mb
            assert all("\ufffd" not in r["data"] for r in replies)
            assert all(r["size"] == len(raw) for r in replies)
            # next_offset counts bytes consumed and only exceeds max_bytes to finish one character
            assert all(len(r["data"].encode()) == r["next_offset"] - r["offset"] <= max(mb, 4)
                       for r in replies)
        for tail in range(1, 16):
            r = c.call("octostore/log", root=str(repo), run_id=rid, tail=tail)
            assert "\ufffd" not in r["data"] and r["eof"]
            assert raw.endswith(r["data"].encode()) and r["offset"] >= len(raw) - tail
            assert r["offset"] + len(r["data"].encode()) == len(raw)
        # An offset inside a character starts at the next one.
        r = c.call("octostore/log", root=str(repo), run_id=rid, offset=1, max_bytes=2)
        assert (r["offset"], r["data"]) == (2, "€") and r["next_offset"] == 5
        past = c.call("octostore/log", root=str(repo), run_id=rid, offset=10**9)
        assert past["data"] == "" and past["eof"] and past["next_offset"] == len(raw)
        bad = _err(c, root=str(repo), run_id=rid, max_bytes=0)
        assert bad.code == -32602


def test_a_live_log_is_followed_while_it_grows(daemon: DaemonProc, store: tuple[Path, MlflowClient, str]) -> None:
    repo, mlf, exp = store
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        w = LogWriter(repo, "live", pid=writer.pid)
        now = int(__import__("time").time() * 1000)
        rid = _run(mlf, exp, "live", now - 1000, None, w.rel)
        w.write(now - 900, b"step 1\n")
        with daemon.client() as c:
            _sync(c, repo, rid)
            info = c.call("octostore/run", root=str(repo), run_id=rid)["logs"][0]
            assert info["live"] and info["part"] == "run"
            first = c.call("octostore/log", root=str(repo), run_id=rid)
            assert first["live"] and first["eof"] and first["data"] == "step 1\n"
            seen, offset = [first["data"]], first["next_offset"]
            # Half a character first: it waits for the rest rather than showing garbage.
            w.write(now, "step 2 ✓".encode()[:-1])
            r = c.call("octostore/log", root=str(repo), run_id=rid, offset=offset)
            assert r["data"] == "step 2 " and r["live"] and "\ufffd" not in r["data"]
            seen.append(r["data"])
            offset = r["next_offset"]
            with open(w.log, "ab") as f:
                f.write("step 2 ✓".encode()[-1:] + b"\nstep 3\n")
            w.size += len("step 2 ✓".encode()[-1:] + b"\nstep 3\n")
            r = c.call("octostore/log", root=str(repo), run_id=rid, offset=offset)
            seen.append(r["data"])
            assert "".join(seen) == "step 1\nstep 2 ✓\nstep 3\n"
            # The writer ends (exit mark) and the run ends: no longer live.
            w.exit(now + 100, 0)
            mlf.set_terminated(rid, "FINISHED")
            wait_for(lambda: not c.call("octostore/log", root=str(repo), run_id=rid,
                                        offset=r["next_offset"])["live"], what="the log to end")
            # A RUNNING run whose writer died (no exit mark) is not live either.
            w2 = LogWriter(repo, "dead", pid=writer.pid)
            w2.write(now, b"crash soon\n")
            rid2 = _run(mlf, exp, "dead", now, None, w2.rel)
            _sync(c, repo, rid2)
            assert c.call("octostore/log", root=str(repo), run_id=rid2)["live"]
            writer.kill()
            writer.wait()
            r2 = c.call("octostore/log", root=str(repo), run_id=rid2)
            assert not r2["live"] and r2["data"] == "crash soon\n"
    finally:
        writer.kill()
        writer.wait()


def test_grep(daemon: DaemonProc, short_tmp: Path) -> None:
    repo = make_repo(short_tmp / "repo")
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = mlf.create_experiment("grep")
    lines = [f"epoch {i} loss {1 / (i + 1):.3f}" + (" WARNING: nan" if i % 10 == 3 else "")
             for i in range(3000)]
    w = LogWriter(repo, "grep")
    data = ("\n".join(lines) + "\n").encode()
    # Over several read chunks, so lines cross chunk borders.
    w.write(T0, data * 400)
    w.exit(T0 + 10)
    rid = _run(mlf, exp, "g", T0, T0 + 5, w.rel)
    with daemon.client() as c:
        _sync(c, repo, rid)
        r = c.call("octostore/log", root=str(repo), run_id=rid, grep=r"WARNING: \w+", max_lines=5)
        assert r["truncated"] and r["matches"] == [[n + 1, lines[n]] for n in (3, 13, 23, 33, 43)]
        assert r["size"] == len(data) * 400
        r = c.call("octostore/log", root=str(repo), run_id=rid, grep="^epoch 2999 ",
                   max_lines=1000)
        assert not r["truncated"] and [m[0] for m in r["matches"]] == [
            3000 * k for k in range(1, 401)]
        none = c.call("octostore/log", root=str(repo), run_id=rid, grep="no such text")
        assert none["matches"] == [] and not none["truncated"]
        bad = _err(c, root=str(repo), run_id=rid, grep="epoch (")
        assert bad.code == protocol.INVALID_PARAMS and "regular expression" in bad.message
        assert bad.message.count(";") == 1 and "\n" not in bad.message


def test_no_log_missing_log_and_artifact_log(daemon: DaemonProc, store: tuple[Path, MlflowClient, str]) -> None:
    repo, mlf, exp = store
    plain = _run(mlf, exp, "plain", T0, T0 + 10, None)
    gone = _run(mlf, exp, "gone", T0, T0 + 10, ".octostore/logs/not-here.log")
    repro = _run(mlf, exp, "repro", T0, T0 + 10, None)
    mlf.log_text(repro, "reproduced\nrmse 0.5\n", "octostore/console.log")
    with daemon.client() as c:
        _sync(c, repo, repro)
        assert c.call("octostore/run", root=str(repo), run_id=plain)["logs"] == []
        e = _err(c, root=str(repo), run_id=plain)
        assert e.code == protocol.LOG_NOT_FOUND == 1008
        assert f"run {plain} has no console log" in e.message and "octostore run --" in e.message
        g = c.call("octostore/run", root=str(repo), run_id=gone)
        assert g["logs"] == [] and any("not-here.log" in x for x in g["warnings"])
        e = _err(c, root=str(repo), run_id=gone)
        assert e.code == 1008 and "not in this repo" in e.message
        logs = c.call("octostore/run", root=str(repo), run_id=repro)["logs"]
        assert [(x["name"], x["kind"], x["part"], x["live"], x["size"]) for x in logs] == [
            ("octostore/console.log", "artifact", "whole", False, 20)]
        assert logs[0]["path"].endswith("artifacts/octostore/console.log")
        assert c.call("octostore/log", root=str(repo), run_id=repro)["data"] == "reproduced\nrmse 0.5\n"
        assert c.call("octostore/log", root=str(repo), run_id=repro, grep="rmse")["matches"] == [
            [2, "rmse 0.5"]]
        e = _err(c, root=str(repo), run_id=repro, name="console")
        assert e.code == 1008 and "octostore/console.log" in e.message
        e = _err(c, root=str(repo), run_id="ffffffffffff")
        assert e.code == protocol.RUN_NOT_FOUND


@pytest.mark.parametrize("tag", ["../../etc/passwd.log", "/etc/passwd", "../outside.log",
                                 ".octostore/logs/link.log", "~/x.log", "a\\..\\..\\b.log"])
def test_a_tag_leaving_the_root_is_refused(daemon: DaemonProc, short_tmp: Path, tag: str) -> None:
    repo = make_repo(short_tmp / "repo")
    (short_tmp / "outside.log").write_text("secret\n")
    (repo / ".octostore" / "logs").mkdir(parents=True)
    os.symlink(short_tmp / "outside.log", repo / ".octostore" / "logs" / "link.log")
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = mlf.create_experiment("escape")
    rid = _run(mlf, exp, "evil", T0, T0 + 10, tag)
    with daemon.client() as c:
        _sync(c, repo, rid)
        run = c.call("octostore/run", root=str(repo), run_id=rid)
        assert run["logs"] == [] and any("not read" in w for w in run["warnings"])
        e = _err(c, root=str(repo), run_id=rid)
        assert e.code == protocol.PATH_OUTSIDE and "secret" not in e.message
        e = _err(c, root=str(repo), run_id=rid, grep="secret")
        assert e.code == protocol.PATH_OUTSIDE
        assert c.call("octostore/status")["pid"]  # the daemon is still there


def test_a_compressed_log_is_read_as_the_plain_one(daemon: DaemonProc, store: tuple[Path, MlflowClient, str]) -> None:
    repo, mlf, exp = store
    w = LogWriter(repo, "packed")
    w.write(T0, b"first run\n" * 1000)
    w.write(T0 + 5000, "second run ✓\n".encode() * 1000)
    w.exit(T0 + 9000)
    raw = w.log.read_bytes()
    (w.dir / "packed.log.gz").write_bytes(gzip.compress(raw, mtime=0))
    w.log.unlink()  # a clone has only the committed .log.gz; the tag still says .log
    a = _run(mlf, exp, "a", T0, T0 + 4000, w.rel)
    b = _run(mlf, exp, "b", T0 + 4500, T0 + 8000, w.rel)
    with daemon.client() as c:
        _sync(c, repo, b)
        info = c.call("octostore/run", root=str(repo), run_id=b)["logs"][0]
        assert (info["path"], info["part"], info["size"], info["live"]) == (
            w.rel + ".gz", "run", len("second run ✓\n".encode()) * 1000, False)
        got, _ = _read_all(c, repo, b, 4096)
        assert got == "second run ✓\n" * 1000
        assert c.call("octostore/log", root=str(repo), run_id=a, tail=10)["data"] == "first run\n"
        r = c.call("octostore/log", root=str(repo), run_id=b, grep="✓", max_lines=2000)
        assert len(r["matches"]) == 1000 and r["matches"][0] == [1, "second run ✓"]


def test_octostore_run_logs_are_read_per_run(daemon: DaemonProc, short_tmp: Path) -> None:
    """End to end: `octostore run -- python train.py` with real MLflow, then the daemon."""
    repo = make_repo(short_tmp / "repo")
    (repo / "train.py").write_text(
        "import time, mlflow\n"
        "print('loading', flush=True)\n"
        "time.sleep(0.5)\n"
        "for name in ('first', 'second'):\n"
        "    with mlflow.start_run(run_name=name):\n"
        "        for i in range(3):\n"
        "            print(f'{name} {i} \\u2713', flush=True)\n"
        "            time.sleep(0.1)\n"
        "    time.sleep(0.5)\n"
        "print('bye', flush=True)\n")
    env = dict(daemon.env(), MLFLOW_TRACKING_URI=(repo / "mlruns").as_uri())
    out = subprocess.run([sys.executable, "-m", "octostored.cli", "run", "--", sys.executable,
                          "train.py"], cwd=repo, env=env, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().splitlines()[0] == "loading"
    with daemon.client() as c:
        c.call("octostore/sync", root=str(repo))
        runs = {r["run_name"]: r["run_id"] for r in c.call("octostore/runs", root=str(repo))["runs"]}
        assert set(runs) == {"first", "second"}
        for name, rid in runs.items():
            info = c.call("octostore/run", root=str(repo), run_id=rid)["logs"]
            assert [(x["kind"], x["part"], x["live"]) for x in info] == [("console", "run", False)]
            assert info[0]["path"].startswith(".octostore/logs/")
            r = c.call("octostore/log", root=str(repo), run_id=rid)
            assert r["data"] == "".join(f"{name} {i} ✓\n" for i in range(3)), r


def test_grep_a_progress_bar_without_newlines(daemon: DaemonProc, short_tmp: Path) -> None:
    """A 2.5 MB line (tqdm redrawing with \\r only) is searched in pieces and counted as one."""
    repo = make_repo(short_tmp / "repo")
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = mlf.create_experiment("bar")
    bar = b"".join(b"\r%7d/150000 \xe2\x96\x88" % i for i in range(150_000)) + b" MARK"
    assert len(bar) > 2 * 1024 * 1024
    w = LogWriter(repo, "bar")
    w.write(T0, b"start\n" + bar + b"\nafter the bar\n")
    w.exit(T0 + 10)
    rid = _run(mlf, exp, "bar", T0, T0 + 5, w.rel)
    with daemon.client() as c:
        _sync(c, repo, rid)
        r = c.call("octostore/log", root=str(repo), run_id=rid, grep="after|MARK|^start")
        assert [m[0] for m in r["matches"]] == [1, 2, 3]
        assert r["matches"][1][1].endswith("…") and len(r["matches"][1][1]) == 4000
        assert r["matches"][2][1] == "after the bar"


def test_a_pattern_that_backtracks_for_ever_does_not_stop_the_daemon(
        daemon: DaemonProc, short_tmp: Path) -> None:
    """Patterns are matched by RE2, in time linear in the line: ``^(a|aa)+$`` (which takes
    ``re`` for ever on a long line of ``a``) answers at once, a pattern RE2 cannot take (a
    backreference) is refused in one sentence, and another client is served meanwhile."""
    import threading
    import time

    repo = make_repo(short_tmp / "repo")
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = mlf.create_experiment("redos")
    w = LogWriter(repo, "20261126T130102Z-4343")
    w.write(T0, b"a" * 3000 + b"!\n")
    w.write(T0 + 10, b"loss 0.5\rloss 0.25\n")
    w.exit(T0 + 20, 0)
    rid = _run(mlf, exp, "r", T0, T0 + 30, w.rel)
    with daemon.client() as c:
        _sync(c, repo, rid)
        got = c.call("octostore/log", root=str(repo), run_id=rid, grep=r"loss \d+\.\d+$")
        assert got["matches"] == [[2, "loss 0.5\rloss 0.25"]] and not got["truncated"]
        answered: list[float] = []

        def search() -> None:
            with daemon.client(timeout=60) as c2:
                t0 = time.monotonic()
                r = c2.call("octostore/log", root=str(repo), run_id=rid,
                            grep="^(a|aa)+$|^(a+)+$|^(a|a?)+(a|a?)+(a|a?)+(a|a?)+(a|a?)+b$")
                answered.append(time.monotonic() - t0)
                assert r["matches"] == []

        t = threading.Thread(target=search)
        t.start()
        assert c.call("octostore/status")["version"]  # served while the search runs
        t.join(30)
        assert not t.is_alive() and answered and answered[0] < 1.0, answered
        bad = _err(c, root=str(repo), run_id=rid, grep=r"(a)\1")
        assert bad.code == protocol.INVALID_PARAMS and "RE2" in bad.message
        assert bad.message.count(";") == 1 and "\n" not in bad.message
    assert "Error parsing" not in daemon.log.read_text()  # RE2 prints nothing of its own


def test_cli_grep_shows_a_progress_bar_in_its_last_state_and_checks_its_input(
        daemon: DaemonProc, short_tmp: Path) -> None:
    repo = make_repo(short_tmp / "repo")
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = mlf.create_experiment("bar")
    w = LogWriter(repo, "20261126T130102Z-4444")
    w.write(T0, b"start\n")
    w.write(T0 + 10, b"\rloss 0.5\rloss 0.25\r\ndone\n")
    w.exit(T0 + 20, 0)
    rid = _run(mlf, exp, "r", T0, T0 + 30, w.rel)
    with daemon.client() as c:
        _sync(c, repo, rid)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "octostored.cli", "logs", rid, *args],
                              cwd=repo, env=daemon.env(), capture_output=True, text=True,
                              timeout=60)

    out = cli("--grep", "loss")
    assert out.returncode == 0 and out.stdout == "2:loss 0.25\n"  # the number stays visible
    for args, says in ((["--grep", "x", "--max-lines", "1000000"],
                        "octostore: --max-lines must be from 1 to 100000\n"),
                       (["--grep", "loss ("], "octostore: 'loss (' is not a valid regular "
                        "expression (missing ): loss (); fix it: the syntax is Python's without "
                        "backreferences or lookaround (RE2)\n")):
        bad = cli(*args)
        assert bad.returncode == 2 and bad.stderr == says
