"""The `octostore` CLI as a user runs it: real processes, real daemon, readable errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from .conftest import DaemonProc, make_repo


def octostore(d: DaemonProc, *args: str, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "octostored.cli", *args], cwd=cwd,
                          env=env or d.env(), capture_output=True, text=True, timeout=60)


@pytest.fixture
def repo(short_tmp: Path) -> Path:
    repo = make_repo(short_tmp / "repo")
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = mlf.create_experiment("wine")
    for i in range(3):
        rid = mlf.create_run(exp, run_name=f"run-{i}").info.run_id
        mlf.log_param(rid, "alpha", str(i))
        mlf.log_metric(rid, "rmse", 1.0 - i / 10)
        mlf.set_terminated(rid)
    return repo


def test_runs_json_has_the_documented_fields(daemon: DaemonProc, repo: Path) -> None:
    out = octostore(daemon, "runs", "--json", "--order-by", "metrics.rmse ASC", cwd=repo)
    assert out.returncode == 0, out.stderr
    runs = json.loads(out.stdout)
    assert [r["run_name"] for r in runs] == ["run-2", "run-1", "run-0"]
    for key in ("run_id", "experiment_id", "run_name", "status", "lifecycle_stage", "start_time",
                "end_time", "params", "metrics", "tags"):
        assert key in runs[0]
    assert runs[0]["metrics"] == {"rmse": 0.8}


def test_runs_table_and_run_detail(daemon: DaemonProc, repo: Path) -> None:
    out = octostore(daemon, "runs", "--root", str(repo), "--filter", "metrics.rmse < 0.95")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:5] == ["run_id", "name", "status", "start", "duration"]
    assert sum("run-" in line for line in lines) == 2
    rid = lines[2].split()[0]
    detail = octostore(daemon, "run", rid, "--root", str(repo))
    assert detail.returncode == 0, detail.stderr
    assert "rmse = " in detail.stdout and "alpha = " in detail.stdout


@pytest.mark.parametrize("args, message", [
    (["runs", "--filter", "metrics.rmse <<< 1"], "filter"),
    (["runs", "--root", "/nonexistent/place"], "not a folder"),
    (["run", "ffffffffffff"], "no run ffffffffffff"),
    (["runs", "--limit", "-3"], "--limit must be"),
])
def test_user_errors_are_one_sentence(daemon: DaemonProc, repo: Path, args: list[str], message: str) -> None:
    out = octostore(daemon, *args, cwd=repo)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1


def test_folder_without_mlflow_data(daemon: DaemonProc, short_tmp: Path) -> None:
    empty = make_repo(short_tmp / "empty")
    out = octostore(daemon, "runs", cwd=empty)
    assert out.returncode == 2
    assert "no MLflow runs found" in out.stderr and "Traceback" not in out.stderr


def test_no_daemon_can_start(short_tmp: Path) -> None:
    env = dict(os.environ, OCTOSTORE_SOCKET=str(short_tmp / ("x" * 120)))  # over the path limit
    out = subprocess.run([sys.executable, "-m", "octostored.cli", "status"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "could not start the daemon" in out.stderr and "Traceback" not in out.stderr


def test_daemon_status_and_stop(daemon: DaemonProc, short_tmp: Path) -> None:
    repo = make_repo(short_tmp / "repo")
    MlflowClient(tracking_uri=(repo / "mlruns").as_uri()).create_experiment("e")
    with daemon.client() as c:
        c.call("octostore/sync", root=str(repo))
    st = octostore(daemon, "daemon", "status")
    assert st.returncode == 0 and f"pid {daemon.proc.pid}" in st.stdout  # type: ignore[union-attr]
    assert f"{repo}: 0 runs, 2 experiments, ready" in st.stdout, st.stdout
    stop = octostore(daemon, "daemon", "stop")
    assert stop.returncode == 0 and "stopped the daemon" in stop.stdout
    daemon.proc.wait(10)  # type: ignore[union-attr]
    again = octostore(daemon, "daemon", "status")
    assert again.returncode == 1 and "no daemon is running" in again.stdout


# -- octostore logs ----------------------------------------------------------------------------
def _console_log(repo: Path, log_id: str, chunks: list[tuple[int, bytes]],
                 exit_at: int | None, pid: int | None = None) -> str:
    """A console log in the agreed format (as `octostore run -- CMD` writes it)."""
    from octostored.console.logformat import index_line

    logs = repo / ".octostore" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    data, idx = b"", b""
    for i, (t, chunk) in enumerate(chunks):
        idx += index_line(len(data), t, **({"v": 1, "argv": ["python", "train.py"],
                                            "pid": pid or os.getpid()} if i == 0 else {}))
        data += chunk
    if exit_at is not None:
        idx += index_line(len(data), exit_at, exit=0)
    (logs / f"{log_id}.log").write_bytes(data)
    (logs / f"{log_id}.idx").write_bytes(idx)
    return f".octostore/logs/{log_id}.log"


@pytest.fixture
def logged(short_tmp: Path) -> tuple[Path, str, bytes]:
    from octostored.console.logformat import TAG

    repo = make_repo(short_tmp / "repo")
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = mlf.create_experiment("wine")
    t0 = 1_700_000_000_000
    body = b"".join(f"epoch {i} \x1b[32mloss {1 / (i + 1):.2f}\x1b[0m\n".encode() for i in range(50))
    body += "10%|█         |\r100%|██████████|\n".encode()
    rel = _console_log(repo, "train", [(t0, b"before\n"), (t0 + 1000, body), (t0 + 9000, b"after\n")],
                       t0 + 9500)
    rid = mlf.create_run(exp, run_name="logged", start_time=t0 + 900, tags={TAG: rel}).info.run_id
    mlf.set_terminated(rid, end_time=t0 + 5000)
    mlf.create_run(exp, run_name="plain")
    return repo, rid, body


def test_logs_prints_the_runs_part_raw(daemon: DaemonProc, logged: tuple[Path, str, bytes]) -> None:
    repo, rid, body = logged
    out = subprocess.run([sys.executable, "-m", "octostored.cli", "logs", rid[:8]], cwd=repo,
                         env=daemon.env(), capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == body  # byte for byte: colours and \r as the terminal got them
    detail = octostore(daemon, "run", rid, cwd=repo)
    assert "log         console: .octostore/logs/train.log" in detail.stdout
    assert f"octostore logs {rid[:8]}" in detail.stdout


def test_logs_tail_grep_and_json(daemon: DaemonProc, logged: tuple[Path, str, bytes]) -> None:
    repo, rid, body = logged
    tail = subprocess.run([sys.executable, "-m", "octostored.cli", "logs", rid, "--tail", "3"],
                          cwd=repo, env=daemon.env(), capture_output=True, timeout=60)
    assert tail.returncode == 0, tail.stderr
    assert tail.stdout == b"\n".join(body.split(b"\n")[-4:])  # a \r does not start a line
    assert octostore(daemon, "logs", rid, "--tail", "0", cwd=repo).stdout == ""
    grep = octostore(daemon, "logs", rid, "--grep", r"epoch 4\d ", "--max-lines", "3", cwd=repo)
    assert grep.returncode == 0, grep.stderr
    assert [ln.split(":", 1)[0] for ln in grep.stdout.splitlines()] == ["41", "42", "43"]
    assert "first 3 matching lines" in grep.stderr
    js = octostore(daemon, "logs", rid, "--json", cwd=repo)
    reply = json.loads(js.stdout.splitlines()[0])
    assert reply["data"] == body.decode() and reply["eof"] and reply["live"] is False


@pytest.mark.parametrize("args, message", [
    (["logs", "RUN"], "has no console log; run it with `octostore run -- CMD`"),
    (["logs", "ffffffffffff"], "no run ffffffffffff"),
    (["logs", "LOGGED", "--grep", "epoch ("], "is not a valid regular expression"),
    (["logs", "LOGGED", "--grep", "x", "--follow"], "leave out --follow"),
    (["logs", "LOGGED", "--tail", "-1"], "--tail must be 0 or more"),
    (["logs", "LOGGED", "--name", "nope"], "no log named 'nope'"),
])
def test_logs_user_errors(daemon: DaemonProc, logged: tuple[Path, str, bytes], args: list[str],
                          message: str) -> None:
    repo, rid, _ = logged
    plain = json.loads(octostore(daemon, "runs", "--json", "--filter",
                                 "attributes.run_name = 'plain'", cwd=repo).stdout)[0]["run_id"]
    args = [{"RUN": plain, "LOGGED": rid}.get(a, a) for a in args]
    out = octostore(daemon, *args, cwd=repo)
    assert out.returncode == 2, out
    assert message in out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1


def test_logs_follow_prints_until_the_run_ends(daemon: DaemonProc, short_tmp: Path) -> None:
    import time

    from octostored.console.logformat import TAG, index_line

    repo = make_repo(short_tmp / "repo")
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = mlf.create_experiment("live")
    now = int(time.time() * 1000)
    rid = mlf.create_run(exp, run_name="live", start_time=now - 1000).info.run_id
    rel = _console_log(repo, "live", [(now - 900, b"step 1\n")], None)  # pid: this test process
    mlf.set_tag(rid, TAG, rel)
    proc = subprocess.Popen([sys.executable, "-m", "octostored.cli", "logs", rid, "--follow"],
                            cwd=repo, env=daemon.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"step 1\n"
        log, idx = repo / rel, repo / rel.replace(".log", ".idx")
        size = log.stat().st_size
        with open(idx, "ab") as f:
            f.write(index_line(size, int(time.time() * 1000)))
        with open(log, "ab") as f:
            f.write(b"step 2\n")
        assert proc.stdout.readline() == b"step 2\n"
        assert proc.poll() is None  # still following
        with open(idx, "ab") as f:
            f.write(index_line(size + 7, int(time.time() * 1000) + 1, exit=0))
        mlf.set_terminated(rid)
        assert proc.wait(30) == 0
        assert proc.stdout.read() == b""
    finally:
        proc.kill()
        proc.wait()


def test_every_run_in_one_call_pages_for_the_user(daemon: DaemonProc, short_tmp: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`--limit 0`/`--all` used to be refused past the daemon's page cap: the CLI pages."""
    from octostored.cli import query as cli  # the runs command and its paging

    repo = make_repo(short_tmp / "many")
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = mlf.create_experiment("sweep")
    made = {mlf.create_run(exp, run_name=f"r{i}").info.run_id for i in range(23)}
    out = octostore(daemon, "runs", "--root", str(repo), "--all", "--json")
    assert out.returncode == 0, out.stderr
    assert {r["run_id"] for r in json.loads(out.stdout)} == made
    monkeypatch.setattr(cli, "PAGE", 5)  # the same paging, over pages small enough to test
    with daemon.client() as c:
        every = cli.runs_pages(c, {"root": str(repo), "order_by": ["attributes.run_name ASC"]}, None)
        some = cli.runs_pages(c, {"root": str(repo)}, 12)
    assert [r["run_id"] for r in every["runs"]] == [r["run_id"] for r in sorted(
        every["runs"], key=lambda r: r["run_name"])]
    assert {r["run_id"] for r in every["runs"]} == made and every["total"] == 23
    assert len(some["runs"]) == 12


def test_run_text_lists_its_reproductions_as_json_does(daemon: DaemonProc, repo: Path) -> None:
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    orig = mlf.search_runs([mlf.get_experiment_by_name("wine").experiment_id])[0].info.run_id
    exp = mlf.get_experiment_by_name("wine").experiment_id
    again = mlf.create_run(exp, run_name="again", tags={"octostore.reproduces": orig,
                                                         "octostore.verdict": "reproduced"})
    mlf.set_terminated(again.info.run_id)
    text = octostore(daemon, "run", orig, "--root", str(repo))
    assert text.returncode == 0, text.stderr
    as_json = json.loads(octostore(daemon, "run", orig, "--root", str(repo), "--json").stdout)
    assert [o["run_id"] for o in as_json["reproduced_by"]] == [again.info.run_id]
    assert f"reproduced  by {again.info.run_id}: reproduced" in text.stdout
    back = octostore(daemon, "run", again.info.run_id, "--root", str(repo)).stdout
    assert f"reproduces  {orig}" in back
