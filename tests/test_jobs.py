"""The job registry in process: who hears about a job, cancel stops its process tree, a
failure keeps its result, and the jobs of a dead daemon are cleaned up by the next one."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from octostored import jobs, procs
from octostored.hub import Hub
from octostored.reproduce import proc


class FakeProtocol:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.sent.append((method, params))


class FakeLS:
    def __init__(self) -> None:
        self.protocol = FakeProtocol()

    def events(self, job: str) -> list[dict[str, Any]]:
        return [p for m, p in self.protocol.sent if m == jobs.NOTIFICATION and p["job"] == job]


@pytest.fixture
def daemon(tmp_path: Path) -> Hub:
    """The daemon's real state owner (connections are the FakeLS recorders above)."""
    (tmp_path / "cache").mkdir()
    return Hub(str(tmp_path / "cache"))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_owner_and_subscribers_hear_the_job_and_log_lines_are_batched(
        daemon: Hub) -> None:
    owner, subscriber, other, gone = FakeLS(), FakeLS(), FakeLS(), FakeLS()
    daemon.connections |= {owner, subscriber, other}
    daemon.subscriptions[subscriber] = {"/repo": {"name": "default"}}
    daemon.subscriptions[other] = {"/elsewhere": {"name": "default"}}
    reg = jobs.JobRegistry(daemon, os.path.join(daemon.cache_dir, "jobs"))  # type: ignore[arg-type]

    async def work(ctx: jobs.JobContext) -> dict[str, Any]:
        ctx.phase("one", "first")
        for i in range(100):
            ctx.log(f"line {i}")
        ctx.phase("two")
        ctx.progress("half way", 0.5)
        return {"answer": 42}

    job = reg.start("test", "/repo", work, owner=owner, phases=("one", "two"))
    job.owners.add(gone)  # a connection that closed: never notified
    await asyncio.wait({job.task})  # type: ignore[arg-type]
    assert job.state == "done" and job.result == {"answer": 42}
    for ls in (owner, subscriber):
        ev = ls.events(job.id)
        assert [e["event"] for e in ev if e["event"] != "log"] == [
            "started", "phase", "phase", "progress", "finished"]
        lines = [line for e in ev if e["event"] == "log" for line in e["lines"]]
        assert lines == [f"line {i}" for i in range(100)]
        assert len([e for e in ev if e["event"] == "log"]) <= 3
        assert ev[-1]["result"] == {"answer": 42} and "one" in ev[-1]["timings"]
    assert other.events(job.id) == [] and gone.events(job.id) == []
    assert list(job.log)[-1] == "line 99"
    assert not os.listdir(reg.state_dir)  # the state file goes with the job


async def test_cancel_stops_the_whole_process_tree(daemon: Hub, tmp_path: Path) -> None:
    reg = jobs.JobRegistry(daemon, str(tmp_path / "jobs"))  # type: ignore[arg-type]
    pids = tmp_path / "pids"
    script = (f"sleep 300 & echo $! >> {pids}; sleep 300 & echo $! >> {pids}; "
              f"echo $$ >> {pids}; wait")
    cleaned: list[str] = []

    async def work(ctx: jobs.JobContext) -> dict[str, Any]:
        ctx.phase("build")
        try:
            await proc.run(["bash", "-c", script], ctx=ctx)
        finally:
            cleaned.append("yes")
        return {}

    job = reg.start("test", "/repo", work, phases=("build",))
    for _ in range(200):
        if pids.exists() and len(pids.read_text().split()) == 3:
            break
        await asyncio.sleep(0.02)
    started = [int(p) for p in pids.read_text().split()]
    assert all(_alive(p) for p in started)
    await reg.cancel(job.id)
    assert job.state == "cancelled" and job.result["verdict"] == "cancelled"  # type: ignore[index]
    assert job.error["phase"] == "build" and cleaned == ["yes"]  # type: ignore[index]
    assert not any(_alive(p) for p in started)


async def test_a_failed_job_keeps_its_error_and_result(daemon: Hub, tmp_path: Path) -> None:
    reg = jobs.JobRegistry(daemon, str(tmp_path / "jobs"))  # type: ignore[arg-type]

    async def work(ctx: jobs.JobContext) -> dict[str, Any]:
        ctx.phase("resolve")
        err = jobs.JobError("resolve", "commit abc is missing", "git fetch", missing="abc")
        err.result = {"verdict": "failed"}
        raise err

    async def bug(ctx: jobs.JobContext) -> dict[str, Any]:
        raise KeyError("oops")

    job = reg.start("test", "/r", work, phases=("resolve",))
    crash = reg.start("test", "/r", bug)
    await asyncio.wait({job.task, crash.task})  # type: ignore[arg-type]
    assert job.state == "failed" and job.result == {"verdict": "failed"}
    assert job.error == {"phase": "resolve", "message": "commit abc is missing",
                         "remedy": "git fetch", "missing": "abc"}
    assert crash.state == "failed" and "internal error" in crash.error["message"]  # type: ignore[index]
    assert [j.id for j in reg.list("/r")] == [job.id, crash.id]


async def test_the_next_daemon_cleans_up_after_jobs_that_died_with_the_last(
        daemon: Hub, tmp_path: Path) -> None:
    state = tmp_path / "jobs"
    state.mkdir()
    # A process the dead daemon's job left running, in its own session, with the marker.
    leftover = subprocess.Popen(["sleep", "300"], start_new_session=True,
                                env={**os.environ, procs.JOB_ENV: "r-dead0001"})
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()
    (state / "r-dead0001.json").write_text(json.dumps({
        "job": "r-dead0001", "kind": "cleanup-test", "root": "/r", "daemon_pid": int(dead_pid),
        "instance": "old", "pgids": [leftover.pid], "worktree": "/somewhere"}))
    # A job of a daemon that is alive (this process) is left alone.
    (state / "r-live0001.json").write_text(json.dumps({
        "job": "r-live0001", "kind": "cleanup-test", "daemon_pid": os.getpid(),
        "instance": "other"}))
    seen: list[dict[str, Any]] = []

    async def cleanup(data: dict[str, Any]) -> None:
        seen.append(data)

    jobs.register_cleanup("cleanup-test", cleanup)
    reg = jobs.JobRegistry(daemon, str(state))  # type: ignore[arg-type]
    cleaned = await reg.cleanup_stale()
    assert cleaned == ["r-dead0001"]
    assert [d["worktree"] for d in seen] == ["/somewhere"]
    assert leftover.wait(10) == -signal.SIGTERM
    assert sorted(os.listdir(state)) == ["r-live0001.json"]


async def test_proc_run_streams_lines_and_keeps_a_tail(tmp_path: Path) -> None:
    got: list[str] = []
    res = await proc.run(["bash", "-c", "for i in $(seq 1 500); do echo l$i; done; exit 3"],
                         on_line=got.append, tail=10)
    assert res.code == 3 and got[0] == "l1" and len(got) == 500
    assert res.lines == [f"l{i}" for i in range(491, 501)]
    with pytest.raises(TimeoutError):
        await proc.run(["sleep", "30"], timeout=0.3)
