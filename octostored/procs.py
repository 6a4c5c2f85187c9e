"""Processes: whether one is still there, and stopping a job's process groups and the
processes that carry its marker (standard library only)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

KILL_GRACE_SECONDS = 3.0
"""Seconds between SIGTERM and SIGKILL."""
JOB_ENV = "OCTOSTORE_JOB"
"""Environment variable marking every process a job starts (with the job's id): found again
after a daemon crash, even when it left the job's process groups (setsid)."""


def alive(pid: object) -> bool:
    """A process with this id exists (ours or another user's); False for anything that is not
    a positive process id."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError):
        return False
    return True


def zombie(pid: int) -> bool:
    """It has exited and waits to be reaped (Linux's /proc; False where there is none)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def running(pid: object) -> bool:
    """Alive and not a zombie: it can still do something."""
    return alive(pid) and not zombie(pid)  # type: ignore[arg-type]


# -- processes ---------------------------------------------------------------------------------
def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _has_marker(pid: int, job_id: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:
        return False
    return f"{JOB_ENV}={job_id}".encode() in env.split(b"\0")


def _term_then_kill(targets: list[int], send: Any, alive: Any) -> None:
    """``send(t, SIGTERM)`` to each target, wait up to :data:`KILL_GRACE_SECONDS` while any is
    ``alive``, then ``send(t, SIGKILL)`` to the ones still alive."""
    for t in targets:
        try:
            send(t, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    while targets and time.monotonic() < deadline:
        targets = [t for t in targets if alive(t)]
        if targets:
            time.sleep(0.05)
    for t in targets:
        try:
            send(t, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def kill_groups(pgids: list[int], job_id: str | None = None) -> None:
    """SIGTERM the process groups, then SIGKILL what is left after a grace period.

    With ``job_id`` (after a daemon crash, when a pgid may have been reused) a group
    is only signalled when its leader carries the job's marker in its environment.
    """
    targets = [g for g in pgids if g > 1 and g != os.getpgrp()
               and (job_id is None or _has_marker(g, job_id))]
    _term_then_kill(targets, os.killpg, _group_alive)


def marked_pids(job_id: str) -> list[int]:
    """Processes of ours whose environment says they belong to ``job_id`` (Linux /proc)."""
    out = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    me = os.getpid()
    for e in entries:
        if e.isdigit() and int(e) != me and _has_marker(int(e), job_id):
            out.append(int(e))
    return out


def kill_marked(job_id: str) -> None:
    """Kill processes that carry the job's marker but escaped its process groups (setsid)."""
    _term_then_kill(marked_pids(job_id), os.kill, running)
