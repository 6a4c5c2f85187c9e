"""Whether a process is still there (standard library only)."""

from __future__ import annotations

import os


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
