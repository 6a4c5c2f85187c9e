"""On a shared machine: the socket's folder, the daemon log, the cache and reproduce's checkouts.

The attacks: a user points ``OCTOSTORE_SOCKET`` into a shared sticky folder (the daemon used
to chmod it 0700, so ``/tmp`` itself lost its sticky bit), or into a folder others may write
(they could swap the socket); another user reads the daemon log, the index snapshots or a
private checkout made by ``octostore reproduce``; a looping client grows the log without end.
Real detached daemons, real git worktrees, real files; modes are read back with ``stat``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from octostored.client import Client

from .conftest import git, make_repo, wait_for


def mode(p: Path | str) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def user_env(base: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("OCTOSTORE_SOCKET", "OCTOSTORE_CACHE_DIR", "XDG_RUNTIME_DIR"):
        env.pop(k, None)
    env.update(XDG_STATE_HOME=str(base / "state"), XDG_CACHE_HOME=str(base / "cachehome"),
               XDG_CONFIG_HOME=str(base / "config"), **extra)
    return env


def stop(*socks: str) -> None:
    """Stop the detached daemon serving one of ``socks`` (its pid from the lock file beside the
    socket) and wait until its process is gone."""
    pids = []
    for sock in socks:
        try:
            pids.append(int(Path(sock + ".lock").read_text()))
        except (OSError, ValueError):
            pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue

        def gone(pid: int = pid) -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        try:
            wait_for(gone, timeout=20, what="the daemon to exit")
        finally:
            if not gone():
                os.kill(pid, signal.SIGKILL)


def test_a_socket_in_a_shared_folder_goes_to_a_private_subfolder_and_all_is_private(
        short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = short_tmp / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    cache = short_tmp / "cachehome" / "octostore"
    cache.mkdir(parents=True)
    os.chmod(cache, 0o755)  # as an older octostore left it
    repo = make_repo(short_tmp / "repo")
    from mlflow import MlflowClient

    local = MlflowClient((repo / "mlruns").as_uri())
    local.set_terminated(local.create_run("0", run_name="private-run").info.run_id)
    env = user_env(short_tmp, OCTOSTORE_SOCKET=str(shared / "d.sock"))
    old_umask = os.umask(0o022)
    try:
        res = subprocess.run([sys.executable, "-m", "octostored.daemon", "--detach"], env=env,
                             capture_output=True, text=True, timeout=60, cwd="/")
    finally:
        os.umask(old_umask)
    assert res.returncode == 0, res.stderr
    private = shared / f"octostore-{os.getuid()}"
    sock = private / "d.sock"
    try:
        assert mode(shared) == 0o1777  # the shared folder keeps its mode and sticky bit
        assert mode(private) == 0o700 and stat.S_ISSOCK(os.lstat(sock).st_mode)
        assert mode(sock) == 0o600 and not (shared / "d.sock").exists()
        # the client computes the same path from the same variable
        monkeypatch.setenv("OCTOSTORE_SOCKET", str(shared / "d.sock"))
        with Client(autostart=False) as c:
            assert c.path == str(sock)
            c.call("octostore/sync", root=str(repo), timeout=60)
        log = Path(str(sock) + ".log")
        assert "serving" in log.read_text() and mode(log) == 0o600
    finally:
        stop(str(sock), str(shared / "d.sock"))
    assert mode(cache) == 0o700
    snaps = [p for p in cache.iterdir() if p.name.startswith("root-")]
    assert snaps and all(mode(p) == 0o600 for p in snaps), snaps


@pytest.mark.parametrize("loose", [0o777, 0o775])
def test_a_socket_folder_others_may_write_is_refused_in_one_sentence(short_tmp: Path,
                                                                      loose: int) -> None:
    folder = short_tmp / "open"
    folder.mkdir()
    os.chmod(folder, loose)
    sock = str(folder / "d.sock")
    env = user_env(short_tmp, OCTOSTORE_SOCKET=sock)
    for argv in (["--socket", sock], ["--detach"]):
        res = subprocess.run([sys.executable, "-m", "octostored.daemon", *argv], env=env,
                             capture_output=True, text=True, timeout=60, cwd="/")
        assert res.returncode == 2, res.stderr
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
        assert "can be written by other users" in res.stderr and "chmod 700" in res.stderr
        assert mode(folder) == loose and not os.path.exists(sock)


def test_a_folder_the_user_named_keeps_its_mode(short_tmp: Path) -> None:
    from octostored import paths

    mine = short_tmp / "mine"
    mine.mkdir()
    os.chmod(mine, 0o755)
    paths.ensure_socket_dir(str(mine / "d.sock"))
    assert mode(mine) == 0o755
    new = short_tmp / "new" / "deeper"
    paths.ensure_socket_dir(str(new / "d.sock"))
    assert mode(new) == 0o700


def test_reproduce_worktrees_and_environments_are_private(short_tmp: Path) -> None:
    from octostored.reproduce import envbuild, worktree

    repo = make_repo(short_tmp / "repo")
    (repo / "train.py").write_text("SECRET_KEY = 'x'\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "train")
    head = git(repo, "rev-parse", "HEAD").strip()
    cache = short_tmp / "cache"
    cache.mkdir()
    base = cache / "reproduce"
    wt = base / "worktrees" / "job1"
    old_umask = os.umask(0o022)
    try:
        asyncio.run(worktree.add(str(repo), str(wt), head))

        async def lock() -> None:
            fd = await envbuild.EnvCache(str(base / "envs"))._lock("k", None)
            os.close(fd)

        asyncio.run(lock())
    finally:
        os.umask(old_umask)
    try:
        assert (wt / "train.py").read_text() == "SECRET_KEY = 'x'\n"
        for p in (base, base / "worktrees", wt, base / "envs"):
            assert mode(p) == 0o700, (p, oct(mode(p)))
        assert mode(base / "envs" / "k.lock") == 0o600
    finally:
        asyncio.run(worktree.remove(str(repo), str(wt)))


ROTATE = r"""
import logging, os, sys
from octostored.daemon import setup_logging
setup_logging("INFO", sys.argv[1])
log = logging.getLogger("octostored.test")
for i in range(3000):
    log.warning("a looping client's bad request %05d %s", i, "x" * 150)
    if i % 500 == 0:
        os.write(2, b"stray stderr output %05d\n" % i)
print("LAST WORDS ON STDERR", file=sys.stderr, flush=True)
"""


def test_the_daemon_log_rotates_and_stays_private(short_tmp: Path) -> None:
    log = short_tmp / "octostored.log"
    log.write_text("an old log\n")
    os.chmod(log, 0o644)  # as an older octostore left it
    cap = 20_000
    env = dict(os.environ, OCTOSTORE_LOG_MAX_BYTES=str(cap))
    res = subprocess.run([sys.executable, "-c", ROTATE, str(log)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    files = sorted(short_tmp.glob("octostored.log*"))
    assert [f.name for f in files] == ["octostored.log", "octostored.log.1", "octostored.log.2",
                                       "octostored.log.3"]
    line = 250
    for f in files:
        assert f.stat().st_size <= cap + line, (f, f.stat().st_size)
        assert mode(f) == 0o600, f
    assert sum(f.stat().st_size for f in files) <= 4 * (cap + line)  # 500 KB were written
    current = log.read_text()
    assert "LAST WORDS ON STDERR" in current  # stderr follows the current file
    assert "bad request 02999" in current
