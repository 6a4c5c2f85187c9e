"""The in-process console capture (``[tool.octostore] capture_console = true``).

At the first ``mlflow.start_run`` of a process that is not already teed
(``OCTOSTORE_CONSOLE_LOG`` unset), the capture plugin calls :func:`start`: the
process's fds 1 and 2 are pointed at a pty (where they were a terminal, so
``isatty`` and the window size stay as they were) or a pipe, read by a separate
small process (:mod:`.tee_proc`) that writes every byte to the original streams
and to ``<root>/.octostore/logs/<id>.log``.  Being a separate process, it keeps
everything printed up to a crash, a ``SIGKILL`` of the script included.  The
script only ever waits for it as it would wait for the terminal (plus the tee's
start, some tens of milliseconds, once).

``OCTOSTORE_CONSOLE_LOG`` is then set, so later runs of the process, and the
processes it starts, are tagged with the same log and do not tee again.  At exit
the original streams are put back and the tee is given a moment to pass on what
is left (so the shell's prompt comes after the script's last line).  If the tee
dies, the streams are put back at once and what was left in them is passed on;
later runs get the tag ``octostore.console_capture`` with the reason instead.

Standard library only: this runs in the user's training process.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
from dataclasses import dataclass

from . import flush_std_streams, helper_argv, tee
from .logformat import ENV_LOG
from .logwriter import new_log_file

READY_TIMEOUT = 10.0
"""Seconds the tee may take to start and create the log before capture is turned off."""
EXIT_WAIT = 2.0
"""Seconds the script waits at exit for the tee to pass on the last output."""


class CaptureOff(Exception):
    """The capture cannot run here; the message is the reason (a run tag)."""


@dataclass
class _Tee:
    log: str
    proc: subprocess.Popen[bytes]
    channels: list[tee.Channel]
    originals: dict[int, int]
    pid: int


_lock = threading.Lock()
_current: _Tee | None = None
_off: str | None = None


def off_reason() -> str | None:
    """Why the capture turned itself off in this process, or None."""
    return _off


def turned_off(reason: str) -> None:
    """Keep the capture off in this process (later runs are tagged with ``reason``)."""
    global _off
    _off = reason


def start(root: str, argv: list[str]) -> str:
    """Tee fds 1 and 2 into a new log under ``root``; the log's path.

    Raises :class:`CaptureOff` (the reason); nothing is changed then.
    """
    global _current, _off
    if "ipykernel" in sys.modules:
        raise CaptureOff("off in a notebook kernel: its output does not go through fds 1 and 2")
    if not sys.executable:
        raise CaptureOff("off: no Python executable to start the tee with")
    flush_std_streams()
    try:
        channels = tee.open_channels((1, 2))
    except OSError as exc:
        raise CaptureOff(f"off: cannot make a pty or pipe ({exc.strerror or exc})") from None
    if not channels:
        raise CaptureOff("off: the process has no stdout or stderr")
    originals: dict[int, int] = {}
    status_r = status_w = -1
    proc: subprocess.Popen[bytes] | None = None
    try:
        for ch in channels:
            for fd in ch.child_fds:
                originals[fd] = os.dup(fd)
        status_r, status_w = os.pipe()
        spec = {"log": new_log_file(root), "argv": argv, "script": os.getpid(),
                "status": status_w,
                "channels": [[ch.read_fd, originals[ch.out_fd], ch.pty] for ch in channels]}
        proc = subprocess.Popen(
            helper_argv("tee_proc", [json.dumps(spec)]),
            pass_fds=[status_w, *(originals[ch.out_fd] for ch in channels),
                      *(ch.read_fd for ch in channels)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(status_w)
        status_w = -1
        answer = _read_status(status_r, READY_TIMEOUT)
        if not answer.startswith("ok "):
            raise CaptureOff("off: " + (answer.removeprefix("error ") or
                                        "the console tee did not start"))
        log = answer[3:]
    except (OSError, CaptureOff) as exc:
        for ch in channels:
            ch.close()
        for fd in (status_w, *originals.values()):
            _close(fd)
        if proc is not None:
            proc.kill()
            proc.wait()
        if isinstance(exc, CaptureOff):
            raise
        raise CaptureOff(f"off: cannot start the console tee ({exc.strerror or exc})") from None
    finally:
        _close(status_r)
    flush_std_streams()
    for ch in channels:
        for fd in ch.child_fds:
            os.dup2(ch.write_fd, fd)
        ch.close_parent_end()  # the read ends stay: see _watch
    t = _Tee(log, proc, channels, originals, os.getpid())
    with _lock:
        _current = t
        _off = None
    os.environ[ENV_LOG] = log
    atexit.register(_at_exit)
    threading.Thread(target=_watch, args=(t,), name="octostore-console-watch",
                     daemon=True).start()
    return log


def _read_status(fd: int, timeout: float) -> str:
    data = b""
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return "error the console tee did not start in time"
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").strip()


def _restore(t: _Tee) -> None:
    """The original streams back on fds 1 and 2 (the caller holds ``_lock``)."""
    global _current
    flush_std_streams()
    for fd, orig in t.originals.items():
        os.dup2(orig, fd)
    if os.environ.get(ENV_LOG) == t.log:
        del os.environ[ENV_LOG]
    _current = None


def _at_exit() -> None:
    t = _current
    if t is None or os.getpid() != t.pid:  # a forked child: the tee is its parent's
        return
    with _lock:
        if _current is not t:
            return
        _restore(t)
    try:
        t.proc.wait(EXIT_WAIT)
    except subprocess.TimeoutExpired:
        pass  # children of the script still hold the streams; the tee goes on with them


def _watch(t: _Tee) -> None:
    """The tee ended while the script still runs: put the streams back, pass on what is left."""
    global _off
    code = t.proc.wait()
    with _lock:
        if _current is not t:
            return
        _restore(t)
        _off = f"off: the console tee stopped (exit code {code}); the log ends there"
    for ch in t.channels:
        out = t.originals[ch.out_fd]
        os.set_blocking(ch.read_fd, False)
        while True:
            try:
                data = os.read(ch.read_fd, tee.READ_SIZE)
            except BlockingIOError:
                if not select.select([ch.read_fd], [], [], 0.1)[0]:
                    break
                continue
            except OSError:
                break
            if not data or not tee.write_out(out, data):
                break
        ch.close()
    for fd in t.originals.values():
        _close(fd)



def _close(fd: int) -> None:
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass
