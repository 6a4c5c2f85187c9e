"""``octostored``: start the per-user daemon.

One daemon per user: a lock file beside the socket, held for the daemon's
lifetime, makes a second one refuse to start; a socket left by a dead daemon
(its lock is free) is replaced.  ``--detach`` starts the daemon in its own
session and returns once it answers.  Nothing heavy is imported here: the
daemon's start path is stdlib, pygls, watchfiles, msgpack and orjson only.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time

from . import __version__, paths

log = logging.getLogger("octostored")


class AlreadyRunning(RuntimeError):
    pass


def _acquire_lock(sock: str) -> int:
    fd = os.open(paths.lock_path(sock), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise AlreadyRunning(f"a daemon already serves {sock}") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


async def serve(sock: str) -> None:
    from .rpc.server import Daemon

    paths.ensure_private_dir(os.path.dirname(sock))
    lock_fd = _acquire_lock(sock)
    if os.path.exists(sock) or os.path.islink(sock):
        os.unlink(sock)  # we hold the lock: whoever made this socket is dead
    daemon = Daemon(paths.cache_dir())
    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(daemon.serve_connection, path=sock, limit=2**20)
    finally:
        os.umask(old_umask)
    os.chmod(sock, 0o600)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, daemon.stop_event.set)
    idle = asyncio.create_task(daemon.close_idle_roots())
    log.info("octostored %s serving %s (pid %d)", __version__, sock, os.getpid())
    try:
        async with server:
            await daemon.stop_event.wait()
    finally:
        idle.cancel()
        server.close()
        await daemon.close()
        try:
            if os.path.exists(sock):
                os.unlink(sock)
        except OSError:
            pass
        os.close(lock_fd)
        log.info("octostored stopped")


def detach(sock: str, timeout: float = 15.0) -> int:
    """Start a daemon in its own session; return once it answers (exit code)."""
    from .client import Client, DaemonUnavailable

    paths.ensure_private_dir(os.path.dirname(sock))
    logfile = paths.log_path(sock)
    os.makedirs(os.path.dirname(logfile), exist_ok=True)
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "octostored.daemon", "--socket", sock],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None and proc.returncode != 0:
            # It may have lost the race to another daemon, which is fine if that one answers.
            try:
                Client(sock, autostart=False).close()
                return 0
            except DaemonUnavailable:
                print(f"octostored: the daemon exited at start; see {logfile}", file=sys.stderr)
                return 1
        try:
            Client(sock, autostart=False, timeout=2).close()
            return 0
        except DaemonUnavailable:
            time.sleep(0.05)
    print(f"octostored: the daemon did not answer within {timeout:.0f} s; see {logfile}",
          file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="octostored", description="The octostore run-index daemon.")
    ap.add_argument("--socket", help="socket path (default: $OCTOSTORE_SOCKET or the per-user path)")
    ap.add_argument("--detach", action="store_true", help="start in the background and return")
    ap.add_argument("--log-level", default=os.environ.get("OCTOSTORE_LOG_LEVEL", "INFO"))
    ap.add_argument("--version", action="version", version=f"octostored {__version__}")
    args = ap.parse_args(argv)
    sock = os.path.abspath(args.socket) if args.socket else paths.socket_path()
    if len(sock.encode()) > paths.MAX_SOCKET_PATH:
        print(f"octostored: the socket path {sock} is longer than {paths.MAX_SOCKET_PATH} bytes; "
              "set OCTOSTORE_SOCKET to a shorter path", file=sys.stderr)
        return 2
    if args.detach:
        return detach(sock)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pygls").setLevel(logging.WARNING)  # pygls logs every body at INFO
    try:
        asyncio.run(serve(sock))
    except AlreadyRunning as exc:
        print(f"octostored: {exc}; stop it with `octostore daemon stop`", file=sys.stderr)
        return 1
    except paths.UnsafeRuntimeDir as exc:
        print(f"octostored: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
