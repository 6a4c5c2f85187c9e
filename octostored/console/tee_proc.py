"""The in-process capture's tee: a small process that outlives the script it copies.

Started by :mod:`.inprocess` (``python -I -S -c ...``, standard library only) with
one JSON argument::

    {"log": PATH, "argv": [...], "script": PID, "status": FD,
     "channels": [[READ_FD, OUT_FD, IS_PTY], ...]}

It creates the log (answering ``ok <path>`` or ``error <why>`` on the ``status`` pipe, so
the script only swaps its streams once the log exists), then copies each channel
(what the script now writes to its fds 1 and 2) to the script's original stream
``OUT_FD`` and to the log until every writer is gone: the script's exit, crash or
``SIGKILL`` alike.  The log then holds everything printed up to that point; the
last mark has ``"exit": null`` (the script's code is not known here).

It is in the script's process group, so the terminal's signals reach it too: it
ignores Ctrl-C, Ctrl-\\, hang-up and ``SIGTERM`` (it ends when its input ends)
and, on a window resize, resizes its ptys and tells the script again.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from . import tee
from .logwriter import LogWriter


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    channels = [tee.Channel(out_fd=out, child_fds=(), read_fd=read, write_fd=-1, pty=bool(pty))
                for read, out, pty in spec["channels"]]
    status = spec["status"]
    try:
        writer = LogWriter(spec["log"], spec["argv"])
    except OSError as exc:
        _say(status, f"error cannot create {spec['log']}: {exc.strerror or exc}")
        return 1
    _say(status, f"ok {writer.path}")

    def on_resize(_sig: int, _frame: object) -> None:
        for ch in channels:
            tee.copy_winsize(ch)
        try:
            os.kill(spec["script"], signal.SIGWINCH)
        except OSError:
            pass

    if any(ch.pty for ch in channels):
        signal.signal(signal.SIGWINCH, on_resize)
    try:
        tee.Pump(channels, writer).run()
    finally:
        writer.close(None)
    return 0


def _say(fd: int, text: str) -> None:
    try:
        os.write(fd, text.encode("utf-8", "replace") + b"\n")
        os.close(fd)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
