"""``octostore daemon stop``: make sure the daemon's process ends, and say how it ended.

Asking over the socket is the polite way, but a daemon that is wedged (a read that never
returns, a ``SIGSTOP``) accepts the connection and never answers, and "stopped" printed then
is a lie.  So: ask (``octostore/shutdown``), wait a grace; then SIGTERM (with SIGCONT, which a
stopped process needs before it can act on it), wait another; then SIGKILL.  The process is
the one holding the daemon's lock file, whose pid the lock file names; a free lock means no
daemon runs, so no unrelated process that reused a pid is ever signalled.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time

from .client import Client, DaemonUnavailable, OctostoreClientError
from .paths import lock_path
from .procs import running

ANSWER_S = 3.0
"""How long the daemon gets to answer over its socket."""
GRACE_S = 10.0
"""How long it then gets to end on its own (it writes its snapshots first)."""
SIGNAL_GRACE_S = 5.0
"""How long it gets after SIGTERM before SIGKILL, and after SIGKILL."""


class StillRunning(Exception):
    """Even SIGKILL did not end it (a process in uninterruptible sleep)."""


def stop_daemon(sock: str) -> str | None:
    """End the daemon serving ``sock``; the sentence saying what it took, or None when no
    daemon runs."""
    pid = None
    asked = False
    try:
        with Client(sock, autostart=False, timeout=ANSWER_S) as c:
            pid = int(c.call("octostore/status")["pid"])
            c.call("octostore/shutdown")
            asked = True
    except (DaemonUnavailable, OctostoreClientError, KeyError, TypeError, ValueError, OSError):
        pass
    holder = lock_holder(sock)
    if asked and pid is not None and wait_gone(pid, GRACE_S):
        return f"stopped the daemon (pid {pid})"
    if holder is None:
        if pid is None or not running(pid):
            return None if pid is None else f"stopped the daemon (pid {pid})"
        holder = pid  # it answered with its pid but holds no lock (an older daemon)
    said = (f"the daemon (pid {holder}) did not stop within {GRACE_S:g} s of being asked"
            if asked else f"the daemon (pid {holder}) did not answer")
    if not _signal(holder, signal.SIGTERM):
        return f"stopped the daemon (pid {holder})"
    _signal(holder, signal.SIGCONT)  # a stopped (SIGSTOP'd) process acts on SIGTERM only now
    if wait_gone(holder, SIGNAL_GRACE_S):
        return f"{said}; sent SIGTERM, and it stopped"
    _signal(holder, signal.SIGKILL)
    if wait_gone(holder, SIGNAL_GRACE_S):
        return (f"{said}, nor ended within {SIGNAL_GRACE_S:g} s of SIGTERM;"
                " killed it (SIGKILL)")
    raise StillRunning(f"the daemon (pid {holder}) is still running after SIGKILL; look at it"
                       f" with `ps -o pid,stat,cmd -p {holder}`")


def _signal(pid: int, sig: int) -> bool:
    """Send ``sig``; False when the process is already gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def lock_holder(sock: str) -> int | None:
    """The pid the daemon's lock file names while a process holds the lock, else None."""
    try:
        fd = os.open(lock_path(sock), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held: a daemon runs
            try:
                return int(os.pread(fd, 32, 0).decode("ascii").strip())
            except (OSError, ValueError, UnicodeDecodeError):
                return None
        fcntl.flock(fd, fcntl.LOCK_UN)  # free: no daemon
        return None
    finally:
        os.close(fd)


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until process ``pid`` has ended; whether it did within ``timeout``."""
    deadline = time.monotonic() + timeout
    while running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
