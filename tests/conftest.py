"""Shared fixtures: real daemons on private sockets, real MLflow stores, real git repos.

Every daemon runs as its own process with its socket, cache and log in a short
temp folder (a socket path must stay under 104 bytes, which ``tmp_path`` can
pass).  Tests wait on ``octostore/sync`` or on deadlines, never on sleeps.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
os.environ.setdefault("GIT_AUTHOR_NAME", "octostore tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@octostore.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "octostore tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@octostore.invalid")

from octostored.client import Client, DaemonUnavailable  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def wait_for(cond: Callable[[], object], timeout: float = 10.0, interval: float = 0.02,
             what: str = "condition") -> object:
    """Poll ``cond`` until it returns a truthy value; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))


class DaemonProc:
    """A real ``octostored`` process on a private socket."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.socket = str(base / "d.sock")
        self.cache = str(base / "cache")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = base / "daemon.log"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(OCTOSTORE_SOCKET=self.socket, OCTOSTORE_CACHE_DIR=self.cache,
                   XDG_STATE_HOME=str(self.base / "state"), XDG_CONFIG_HOME=str(self.base / "config"))
        return env

    def start(self) -> DaemonProc:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "octostored.daemon", "--socket", self.socket],
                env=self.env(), stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        wait_for(self._answers, timeout=20, what="the daemon to answer")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
        try:
            Client(self.socket, autostart=False).close()
            return True
        except DaemonUnavailable:
            return False

    def client(self, timeout: float = 30.0) -> Client:
        return Client(self.socket, autostart=False, timeout=timeout)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="oct-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemon(short_tmp: Path) -> Iterator[DaemonProc]:
    d = DaemonProc(short_tmp).start()
    yield d
    d.stop()


def git(cwd: Path | str, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("test repo\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "init")
    return path
