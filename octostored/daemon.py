"""``octostored``: start the per-user daemon.

One daemon per user: a lock file beside the socket, held for the daemon's
lifetime, makes a second one refuse to start; a socket left by a dead daemon
(its lock is free) is replaced.  ``--detach`` starts the daemon in its own
session and returns once it answers.  Nothing heavy is imported here: the
daemon's start path is stdlib, pygls, msgpack and orjson only (watchfiles runs in the
watcher processes, :mod:`octostored.watchproc`).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import logging.handlers
import os
import signal
import stat
import subprocess
import sys
import time

from . import __version__, paths

log = logging.getLogger("octostored")


LOG_MAX_BYTES = 5 << 20
"""The daemon log rotates at this size (``OCTOSTORE_LOG_MAX_BYTES``), keeping LOG_BACKUPS."""
LOG_BACKUPS = 3


class PrivateLogHandler(logging.handlers.RotatingFileHandler):
    """The daemon log: size-bounded (a looping client must not fill the disk), private (0600:
    it names the user's repos and servers), and the process's stdout and stderr follow it
    across rotations (a crash or a library's print lands in the current file, and rotates
    away with it, instead of growing a renamed one forever)."""

    def __init__(self, path: str, max_bytes: int, backups: int, *, own_std: bool) -> None:
        self.own_std = own_std
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        for i in range(1, backups + 1):  # logs an older version left readable by others
            try:
                os.chmod(f"{path}.{i}", 0o600)
            except OSError:
                pass

    def _open(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                     0o600)
        os.fchmod(fd, 0o600)
        if self.own_std:
            for std in (1, 2):
                os.dup2(fd, std)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def setup_logging(level: str, log_file: str | None = None, *, own_std: bool = True) -> None:
    """Log to stderr, or to ``log_file`` through :class:`PrivateLogHandler` (rotating at
    ``OCTOSTORE_LOG_MAX_BYTES``, default 5 MB, keeping 3)."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if log_file:
        try:
            max_bytes = int(os.environ.get("OCTOSTORE_LOG_MAX_BYTES", "")) or LOG_MAX_BYTES
        except ValueError:
            max_bytes = LOG_MAX_BYTES
        handler: logging.Handler = PrivateLogHandler(log_file, max(max_bytes, 4096),
                                                     LOG_BACKUPS, own_std=own_std)
        handler.setFormatter(logging.Formatter(fmt))
        logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
        logging.captureWarnings(True)
    else:
        logging.basicConfig(level=level.upper(), format=fmt)
    logging.getLogger("pygls").setLevel(logging.WARNING)  # pygls logs every body at INFO
    logging.getLogger("pygls.protocol.json_rpc").addFilter(QuietClientErrors())


class AlreadyRunning(RuntimeError):
    pass


class NotASocket(RuntimeError):
    pass


class QuietClientErrors(logging.Filter):
    """Keep a client's mistakes out of the log.

    pygls logs a full traceback for every request that ends in an error reply, so a
    client repeating a bad request (or a fuzzer) would grow the log without bound.  The
    client got the error; only internal errors (-32603, a bug of ours) stay in the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from pygls.exceptions import JsonRpcException

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, JsonRpcException):
            return exc.code == JsonRpcException.CODE
        if exc is None and str(record.msg).startswith(self.CLIENT_MISTAKES):
            return False
        return True

    CLIENT_MISTAKES = (
        "Unable to deserialize message", "Server shutting down", "Failed to handle request",
        "Received response to unknown", "Cancel notification for unknown",
        "Ignoring notification for unknown", "Unknown message",
    )


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
    import functools

    from .hub import Hub
    from .rpc.server import serve_connection

    paths.ensure_socket_dir(sock)
    cache = paths.cache_dir()
    paths.ensure_cache_dir(cache)
    lock_fd = _acquire_lock(sock)
    try:
        st = os.lstat(sock)
    except FileNotFoundError:
        pass
    else:
        if not (stat.S_ISSOCK(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            os.close(lock_fd)
            raise NotASocket(f"{sock} exists and is not a socket; it is left alone. Remove it "
                             "or set OCTOSTORE_SOCKET to another path")
        os.unlink(sock)  # we hold the lock: whoever made this socket is dead
    daemon = Hub(cache)
    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(
            functools.partial(serve_connection, daemon), path=sock, limit=2**20)
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


def _child_env() -> dict[str, str]:
    """The environment of a detached daemon, which runs with ``-P`` from ``/``.

    ``python -m`` puts the current folder first on ``sys.path``: started from inside a
    cloned repo, the daemon would import that repo's ``argparse.py`` or ``yaml.py`` instead
    of the real ones, and run them.  So it is started with ``-P`` (no such entry) from
    ``/``; only when octostored itself is reachable through the current folder alone (a
    source checkout that is not installed) is its own parent folder passed on.
    """
    env = dict(os.environ)
    parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cwd = os.getcwd()
    reachable = {os.path.abspath(p) for p in sys.path if p and os.path.abspath(p) != cwd}
    if parent not in reachable:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [parent, env.get("PYTHONPATH")]))
    return env


def _drop_current_folder_from_path() -> None:
    """Forget the folder we were started in as a place to import from (see _child_env)."""
    if sys.flags.safe_path or not sys.path:
        return
    if sys.path[0] in ("", os.getcwd()):  # what `python -m` put there (later entries stay)
        del sys.path[0]


def detach(sock: str, timeout: float = 15.0) -> int:
    """Start a daemon in its own session; return once it answers (exit code)."""
    from .client import Client, DaemonUnavailable

    paths.ensure_socket_dir(sock)
    logfile = paths.log_path(sock)
    paths.ensure_log_dir(logfile)
    fd = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "octostored.daemon", "--socket", sock,
             "--log-file", logfile],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            close_fds=True, cwd="/", env=_child_env(),
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
    _drop_current_folder_from_path()  # before the lazy imports (pygls, msgpack, tomllib, yaml)
    ap = argparse.ArgumentParser(prog="octostored", description="The octostore run-index daemon.")
    ap.add_argument("--socket", help="socket path (default: $OCTOSTORE_SOCKET or the per-user path)")
    ap.add_argument("--detach", action="store_true", help="start in the background and return")
    ap.add_argument("--log-level", default=os.environ.get("OCTOSTORE_LOG_LEVEL", "INFO"))
    ap.add_argument("--log-file", help="log to this file (rotated, 0600) instead of stderr")
    ap.add_argument("--version", action="version", version=f"octostored {__version__}")
    args = ap.parse_args(argv)
    sock = paths.private_socket(os.path.abspath(args.socket)) if args.socket \
        else paths.socket_path()
    if len(sock.encode()) > paths.MAX_SOCKET_PATH:
        print(f"octostored: the socket path {sock} is longer than {paths.MAX_SOCKET_PATH} bytes; "
              "set OCTOSTORE_SOCKET to a shorter path", file=sys.stderr)
        return 2
    if args.detach:
        try:
            return detach(sock)
        except paths.UnsafeRuntimeDir as exc:
            print(f"octostored: {exc}", file=sys.stderr)
            return 2
    try:
        setup_logging(args.log_level, args.log_file)
    except OSError as exc:
        print(f"octostored: cannot write the log {args.log_file} ({exc.strerror}); check the "
              "folder's permissions", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(sock))
    except AlreadyRunning as exc:
        print(f"octostored: {exc}; stop it with `octostore daemon stop`", file=sys.stderr)
        return 1
    except (paths.UnsafeRuntimeDir, NotASocket) as exc:
        print(f"octostored: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
