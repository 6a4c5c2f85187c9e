"""Issue 16, items 5 and 15: repos built to hang the daemon with special files, and a store
that becomes unreadable.

Each test is the attack: a cloned repo whose ``.env``, ``requirements.txt`` or ``conda.yaml``
is a FIFO (a plain ``open`` waits forever for a writer), six such repos at once (the worker
pool), an ``mlflow.db`` swapped for a FIFO, a FIFO ``.py`` and a 10 MB ``.py`` asked about by an
editor, a daemon that stops answering (``SIGSTOP``) when the user runs ``octostore daemon
stop``, and an ``mlflow.db`` that is truncated or replaced by a folder, whose last runs must be
shown as such.  Real daemon processes, real sockets, real MLflow stores.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from octostored.client import Client
from octostored.rpc import protocol
from octostored.rpc.deadline import within
from octostored.rpc.errors import DeadlineExceeded
from octostored.safefile import Refused, read_bytes

from .conftest import DaemonProc, make_repo, wait_for
from .test_lsp import LspClient

QUICK = 5.0
"""Seconds an answer may take on this shared machine; a hang is forever."""


def file_store_repo(path: Path, runs: int = 1) -> Path:
    from mlflow import MlflowClient

    repo = make_repo(path)
    client = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = client.create_experiment("e")
    for i in range(runs):
        rid = client.create_run(exp, run_name=f"r{i}",
                                tags={"mlflow.source.name": "train.py"}).info.run_id
        client.log_metric(rid, "rmse", 0.5 + i / 10)
        client.set_terminated(rid)
    return repo


def timed(c: Client, method: str, **params: Any) -> tuple[Any, float]:
    t0 = time.monotonic()
    out = c.call(method, **params)
    return out, time.monotonic() - t0


# -- FIFO environment files ------------------------------------------------------------------

def test_fifo_env_files_are_skipped_with_a_warning(daemon: DaemonProc, short_tmp: Path) -> None:
    repo = file_store_repo(short_tmp / "evil")
    for name in (".env", "requirements.txt", "conda.yaml"):
        os.mkfifo(repo / name)
    other = file_store_repo(short_tmp / "other")
    with daemon.client(timeout=15) as c:
        info, took = timed(c, "octostore/open", root=str(repo))
        assert took < QUICK and info["runs"] == 1
        assert ".env is not a regular file (a FIFO); octostore skipped it" in info["warnings"]
        env, took = timed(c, "octostore/environment", root=str(repo))
        assert took < QUICK
        files = {f["path"]: f["warnings"] for f in env["files"]}
        assert files["requirements.txt"] == [
            "requirements.txt is not a regular file (a FIFO); octostore skipped it"]
        assert files["conda.yaml"] == [
            "conda.yaml is not a regular file (a FIFO); octostore skipped it"]
        c.call("octostore/sync", root=str(repo), timeout=QUICK)
        # and the daemon still serves everyone else
        info, took = timed(c, "octostore/open", root=str(other))
        assert took < QUICK and info["runs"] == 1


def test_six_fifo_repos_do_not_wedge_a_seventh(daemon: DaemonProc, short_tmp: Path) -> None:
    evil = []
    for i in range(6):
        repo = make_repo(short_tmp / f"evil{i}")
        os.mkfifo(repo / ".env")
        os.mkfifo(repo / "requirements.txt")
        evil.append(repo)
    good = file_store_repo(short_tmp / "good")

    def open_root(repo: Path) -> dict[str, Any]:
        with daemon.client(timeout=15) as c:
            return c.call("octostore/open", root=str(repo))

    with ThreadPoolExecutor(len(evil)) as pool:
        pending = [pool.submit(open_root, repo) for repo in evil]
        with daemon.client(timeout=15) as c:
            info, took = timed(c, "octostore/open", root=str(good))
            assert took < QUICK and info["runs"] == 1
            _, took = timed(c, "octostore/environment", root=str(good))
            assert took < QUICK
        for fut in pending:
            assert ".env is not a regular file (a FIFO); octostore skipped it" in \
                fut.result(timeout=15)["warnings"]


# -- SQLite: a FIFO, then a truncated or replaced database ------------------------------------

@pytest.fixture
def sqlite_repo(short_tmp: Path) -> tuple[Path, list[str]]:
    from mlflow import MlflowClient

    repo = make_repo(short_tmp / "repo")
    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    exp = client.create_experiment("wine")
    ids = []
    for i in range(3):
        rid = client.create_run(exp, run_name=f"run-{i}").info.run_id
        client.log_metric(rid, "rmse", 0.5 + i / 10)
        client.set_terminated(rid)
        ids.append(rid)
    client._tracking_client.store.engine.dispose()  # MLflow lets go of the file
    shutil.copy(repo / "mlflow.db", short_tmp / "backup.db")
    return repo, ids


def _runs(c: Client, repo: Path) -> dict[str, list[str]]:
    return {r["run_id"]: r["warnings"]
            for r in c.call("octostore/runs", root=str(repo), view="all")["runs"]}


def _source(c: Client, repo: Path) -> dict[str, Any]:
    (src,) = [s for s in c.call("octostore/open", root=str(repo))["sources"]
              if s["id"] == "mlflow.db"]
    return src


STALE = "the store mlflow.db could not be read ("
LAST = "); these runs are its last known state"


def _all_stale(runs: dict[str, list[str]]) -> bool:
    return all(any(w.startswith(STALE) and w.endswith(LAST) for w in ws) for ws in runs.values())


def _swap_for_fifo(path: Path) -> None:
    """Put a FIFO in place of ``path`` in one rename: the path never stops existing."""
    tmp = path.with_name(path.name + ".tmp")
    os.mkfifo(tmp)
    os.replace(tmp, path)


def test_mlflow_db_swapped_for_a_fifo(daemon: DaemonProc, sqlite_repo: tuple[Path, list[str]],
                                      short_tmp: Path) -> None:
    repo, ids = sqlite_repo
    other = file_store_repo(short_tmp / "other")
    with daemon.client(timeout=15) as c:
        c.call("octostore/sync", root=str(repo))
        assert set(_runs(c, repo)) == set(ids)
        _swap_for_fifo(repo / "mlflow.db")
        _, took = timed(c, "octostore/sync", root=str(repo))
        assert took < QUICK
        runs = _runs(c, repo)
        assert set(runs) == set(ids) and _all_stale(runs)
        assert "not a regular file (a FIFO)" in runs[ids[0]][-1]
        assert _source(c, repo)["warning"].startswith(STALE)
        info, took = timed(c, "octostore/open", root=str(other))
        assert took < QUICK and info["runs"] == 1
        # the file comes back: the marks go
        (repo / "mlflow.db").unlink()
        shutil.copy(short_tmp / "backup.db", repo / "mlflow.db")
        c.call("octostore/sync", root=str(repo))
        runs = _runs(c, repo)
        assert set(runs) == set(ids) and all(ws == [] for ws in runs.values())
        assert _source(c, repo)["warning"] is None


def _truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(0)
        f.write(b"this is not SQLite " * 300)


def _folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize("spoil", [_truncate, _folder])
def test_an_unreadable_mlflow_db_marks_its_runs_stale_across_restarts(
        short_tmp: Path, sqlite_repo: tuple[Path, list[str]], spoil: Any) -> None:
    repo, ids = sqlite_repo
    d = DaemonProc(short_tmp / "d1")
    d.base.mkdir()
    d.start()
    try:
        with d.client() as c:
            c.call("octostore/sync", root=str(repo))
            assert set(_runs(c, repo)) == set(ids)
            spoil(repo / "mlflow.db")
            c.call("octostore/sync", root=str(repo))
            runs = _runs(c, repo)
            assert set(runs) == set(ids) and _all_stale(runs), runs
            assert _source(c, repo)["warning"].startswith(STALE)
            run = c.call("octostore/run", root=str(repo), run_id=ids[0])
            assert run["warnings"][-1].startswith(STALE)
    finally:
        d.stop()
    d.start()  # a restart serves the snapshot's runs: still marked as the last known state
    try:
        with d.client() as c:
            runs = _runs(c, repo)
            assert set(runs) == set(ids) and _all_stale(runs), runs
            c.call("octostore/sync", root=str(repo))
            runs = _runs(c, repo)
            assert set(runs) == set(ids) and _all_stale(runs), runs
            assert _source(c, repo)["warning"].startswith(STALE)
            # restored from the backup, it reads again and the marks go
            p = repo / "mlflow.db"
            shutil.rmtree(p) if p.is_dir() else p.unlink()
            shutil.copy(short_tmp / "backup.db", p)
            c.call("octostore/sync", root=str(repo))
            runs = _runs(c, repo)
            assert set(runs) == set(ids) and all(ws == [] for ws in runs.values()), runs
            assert _source(c, repo)["warning"] is None
    finally:
        d.stop()


# -- the language server: a FIFO .py and a 10 MB .py ------------------------------------------

SCRIPT = "import mlflow\n\nwith mlflow.start_run():\n    mlflow.log_metric('rmse', 0.7)\n"


def test_lsp_on_a_fifo_and_a_huge_py_answers_and_blocks_nobody(
        daemon: DaemonProc, short_tmp: Path) -> None:
    repo = file_store_repo(short_tmp / "repo", runs=2)
    (repo / "train.py").write_text(SCRIPT)
    os.mkfifo(repo / "pipe.py")
    big = SCRIPT + "mlflow.log_metric('rmse', 0.5 * x + f(a, b=[1, 2, 3]))\n" * 200_000
    assert len(big) > 10_000_000
    (repo / "big.py").write_text(big)

    ed = LspClient(daemon.socket)
    try:
        ed.initialize([repo])
        good = ed.open(repo / "train.py")
        assert wait_for(lambda: ed.lenses(good), timeout=20, what="lenses on train.py")
        with daemon.client(timeout=15) as other:
            # a file the editor did not open is read from disk: a FIFO must not hang anyone
            t0 = time.monotonic()
            assert ed.lenses((repo / "pipe.py").as_uri()) == []
            assert ed.hover((repo / "pipe.py").as_uri(), 3, 10) is None
            assert time.monotonic() - t0 < QUICK
            _, took = timed(other, "octostore/status")
            assert took < 1.0
            # 10 MB from disk and from the editor (refused at once), and 1 MB from the editor
            # (parsed, which takes seconds of CPU): the other client is answered meanwhile
            medium = SCRIPT + "x = 1\n" * 170_000
            for uri in ((repo / "big.py").as_uri(), ed.open(repo / "big.py", big),
                        ed.open(repo / "medium.py", medium)):
                ed.next_id += 1
                ed.send({"id": ed.next_id, "method": "textDocument/codeLens",
                         "params": {"textDocument": {"uri": uri}}})
                sent = ed.next_id
                deadline = time.monotonic() + 60
                reply = None
                while reply is None and time.monotonic() < deadline:
                    _, took = timed(other, "octostore/status")
                    assert took < 1.0, f"octostore/status took {took:.2f} s during {uri}"
                    reply = ed.pump(sent, timeout=0.1)
                assert reply is not None and reply["result"] == []
            warned = [n["params"]["message"] for n in ed.notifications
                      if n["method"] == "window/logMessage"]
            assert any("pipe.py is not a regular file (a FIFO)" in m for m in warned), warned
            assert any("big.py is 10" in m and "over the 2 MiB cap" in m for m in warned), warned
            # the editor's own file still gets its lenses
            assert ed.lenses(good)
    finally:
        ed.close()


# -- daemon stop on a daemon that does not answer ---------------------------------------------

def _octostore(d: DaemonProc, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "octostored.cli", *args], env=d.env(),
                          capture_output=True, text=True, timeout=60)


def test_daemon_stop_ends_a_stopped_daemon_by_signal(short_tmp: Path) -> None:
    d = DaemonProc(short_tmp).start()
    assert d.proc is not None
    try:
        d.proc.send_signal(signal.SIGSTOP)
        out = _octostore(d, "daemon", "stop")
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(f"the daemon (pid {d.proc.pid}) did not answer; sent SIGTERM")
        assert d.proc.poll() is not None  # gone (and reaped by us), not merely reported so
        assert _octostore(d, "daemon", "stop").stdout == "no daemon is running\n"
    finally:
        if d.proc.poll() is None:
            d.proc.send_signal(signal.SIGCONT)
            d.stop()


class DeafDaemon(DaemonProc):
    """A real daemon that cannot act on SIGTERM (blocked in its signal mask, as a daemon whose
    every thread is wedged is deaf to it): only SIGKILL ends it."""

    def start(self) -> DaemonProc:
        code = ("import signal, sys; signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM});"
                " from octostored.daemon import main; sys.exit(main(sys.argv[1:]))")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-c", code, "--socket", self.socket],
                                         env=self.env(), stdout=out, stderr=out,
                                         stdin=subprocess.DEVNULL)
        wait_for(self._answers, timeout=20, what="the daemon to answer")
        return self


def test_daemon_stop_kills_a_daemon_deaf_to_sigterm(short_tmp: Path) -> None:
    d = DeafDaemon(short_tmp).start()
    assert d.proc is not None
    try:
        d.proc.send_signal(signal.SIGSTOP)  # and it does not answer on its socket either
        out = _octostore(d, "daemon", "stop")
        assert out.returncode == 0, out.stderr
        assert out.stdout == (f"the daemon (pid {d.proc.pid}) did not answer, nor ended within"
                              " 5 s of SIGTERM; killed it (SIGKILL)\n")
        assert d.proc.wait(5) == -signal.SIGKILL
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(5)


# -- the pieces ---------------------------------------------------------------------------------

def test_safefile_refuses_special_and_oversized_files(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(Refused, match=r"^fifo is not a regular file \(a FIFO\); octostore"
                                      r" skipped it$"):
        read_bytes(str(tmp_path / "fifo"), 100, "a test file", label="fifo")
    (tmp_path / "big").write_bytes(b"x" * 3000)
    with pytest.raises(Refused, match=r"^big is 2.9 KiB, over the 1 KiB cap for a test file;"):
        read_bytes(str(tmp_path / "big"), 1024, "a test file", label="big")
    (tmp_path / "link").symlink_to(tmp_path / "big")
    with pytest.raises(Refused, match="is a symlink"):
        read_bytes(str(tmp_path / "link"), 1 << 20, "a test file", follow=False)
    with pytest.raises(Refused, match=r"is not a regular file \(a character device\)"):
        read_bytes("/dev/zero", 1 << 20, "a test file")
    assert read_bytes(str(tmp_path / "big"), 3000, "a test file") == b"x" * 3000


def test_a_request_past_its_deadline_answers_deadline_exceeded() -> None:
    async def main() -> None:
        never = asyncio.Event()
        with pytest.raises(DeadlineExceeded) as err:
            await within(never.wait(), 0.05, "octostore/open")
        assert err.value.code == protocol.DEADLINE_EXCEEDED == 1012
        assert "octostore/open did not finish within its 0.05 s deadline" in err.value.message

    asyncio.run(main())
