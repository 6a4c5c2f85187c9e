"""Running a command with its console teed into a log: ``octostore run -- CMD``'s engine.

The command is a child process (no longer ``exec``): its stdout and stderr go
through :mod:`.tee` (a pty when the stream is a terminal, a pipe otherwise) to this
process's streams, unchanged, and to ``<root>/.octostore/logs/<id>.log``.  Its stdin,
process group and controlling terminal are this process's, so the terminal's
Ctrl-C, Ctrl-Z and window-size changes reach it directly, as they would have.

Signals: ``SIGINT``, ``SIGTERM``, ``SIGHUP`` and ``SIGQUIT`` sent to this process by
another process (``kill``, a job scheduler) are passed on to the command; the
same signals from the terminal are not (the command already got them: a second
Ctrl-C would break a script's clean-up).  Telling them apart needs the sender
(``sigtimedwait``'s ``si_code``); where that is missing (macOS) a signal is passed
on unless this process is in the terminal's foreground.  ``SIGWINCH`` resizes the
pty and is passed on after the resize (the command may have read the old size).
The exit code is the command's (128 + N when signal N killed it).

``python -m octostored.console.runner --log PATH -- CMD ...`` (or
:func:`~octostored.console.helper_argv`) tees a command into ``PATH`` without the
capture tags: the reproduce job runs its entry point through it.

Standard library only.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import sys

from . import tee
from .logformat import ENV_LOG, LOGS_DIR
from .logwriter import LogWriter, new_log_file

SI_KERNEL = 0x80
"""``si_code`` of a signal the kernel sent (the terminal's Ctrl-C, hang-up, resize; Linux)."""
FORWARD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
WATCH = (*FORWARD, signal.SIGWINCH, signal.SIGCHLD)
RESET_IN_CHILD = tuple(s for s in (signal.SIGPIPE, getattr(signal, "SIGXFSZ", None)) if s)
"""Signals Python ignores at start: the command gets their default back (as subprocess does)."""


def open_log(root: str, argv: list[str]) -> LogWriter | None:
    """A new log under ``root``; on failure a one-line warning and None (the command still runs)."""
    try:
        return LogWriter(new_log_file(root), argv)
    except OSError as exc:
        where = os.path.join(root, LOGS_DIR)
        print(f"octostore: cannot keep the console log in {where} ({exc.strerror or exc}); "
              "running without it", file=sys.stderr)
        return None


def run(cmd: list[str], exe: str, env: dict[str, str], writer: LogWriter | None,
        use_pty: bool | None = None) -> int:
    """Run ``cmd`` (``exe`` is its resolved program) teed into ``writer``; its exit code."""
    env = dict(env)
    channels: list[tee.Channel] = []
    if writer is not None:
        env[ENV_LOG] = writer.path
        try:
            channels = tee.open_channels(use_pty=use_pty)
        except OSError as exc:
            print(f"octostore: cannot capture the console ({exc.strerror or exc}); running "
                  "without a log", file=sys.stderr)
            writer.close(None)
            writer = None
    precise = hasattr(signal, "sigtimedwait")
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, WATCH) if precise else None
    actions = [(os.POSIX_SPAWN_DUP2, ch.write_fd, fd) for ch in channels for fd in ch.child_fds]
    try:
        pid = os.posix_spawn(exe, cmd, env, file_actions=actions,
                             setsigmask=old_mask or (), setsigdef=RESET_IN_CHILD)
    except OSError as exc:
        for ch in channels:
            ch.close()
        if old_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        if writer is not None:
            writer.discard()  # nothing ran: no log of it
        print(f"octostore: {cannot_run(cmd[0], exc)}", file=sys.stderr)
        return 127 if exc.errno == errno.ENOENT else 126
    for ch in channels:
        ch.close_parent_end()
    pump = tee.Pump(channels, writer)
    thread = pump.start() if channels else None
    try:
        if precise:
            status = _wait_precise(pid, channels)
        else:
            status = _wait_with_handlers(pid, channels)
    finally:
        pump.exited.set()
        if thread is not None:
            thread.join()
        if old_mask is not None:
            while signal.sigtimedwait(WATCH, 0) is not None:
                pass  # the command is gone: nothing left to pass them to
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code
    if writer is not None:
        writer.close(code)
        if writer.error:
            print(f"octostore: the console log is incomplete: {writer.error}", file=sys.stderr)
    return code


def find_program(name: str) -> str | None:
    """The program ``name`` runs: a path as it is when it exists (so that a file that cannot
    be run says why, see :func:`cannot_run`), else looked up on ``PATH``; None if not found."""
    if os.sep in name or (os.altsep and os.altsep in name):
        return name if os.path.lexists(name) else None
    return shutil.which(name)


def cannot_run(name: str, exc: OSError) -> str:
    """The sentence for a command that could not be started: what is wrong, what to do."""
    why = exc.strerror or str(exc)
    if os.path.isdir(name):
        return f"cannot run {name}: it is a folder; name the program to run"
    if exc.errno == errno.ENOEXEC:
        return (f"cannot run {name}: it is not a program the system can start ({why}); give "
                f"it a #! line, or name its interpreter (`octostore run -- sh {name}`)")
    if exc.errno == errno.EACCES:
        return f"cannot run {name} ({why}); make it executable with `chmod +x {name}`"
    if exc.errno == errno.ENOENT:
        return (f"cannot run {name} ({why}); if it is a script, check the interpreter its "
                "#! line names")
    return f"cannot run {name} ({why}); check the command"


def _resize(pid: int, channels: list[tee.Channel]) -> None:
    for ch in channels:
        tee.copy_winsize(ch)
    if any(ch.pty for ch in channels):
        _kill(pid, signal.SIGWINCH)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_precise(pid: int, channels: list[tee.Channel]) -> int:
    """Wait for the command with the watched signals blocked, taking them one by one."""
    while True:
        info = signal.sigtimedwait(WATCH, 0.5)
        if info is not None:
            sig = info.si_signo
            if sig == signal.SIGWINCH:
                _resize(pid, channels)
            elif sig in FORWARD and info.si_code != SI_KERNEL:
                _kill(pid, sig)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status


def _wait_with_handlers(pid: int, channels: list[tee.Channel]) -> int:
    def on_signal(sig: int, _frame: object) -> None:
        if sig == signal.SIGWINCH:
            _resize(pid, channels)
        elif not (sig in (signal.SIGINT, signal.SIGQUIT) and _in_terminal_foreground()):
            _kill(pid, sig)

    old = {sig: signal.signal(sig, on_signal) for sig in (*FORWARD, signal.SIGWINCH)}
    try:
        return os.waitpid(pid, 0)[1]
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _in_terminal_foreground() -> bool:
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    """``--log PATH -- CMD ...``: tee ``CMD`` into ``PATH`` (no capture tags)."""
    if len(argv) < 4 or argv[0] != "--log" or argv[2] != "--":
        print("usage: python -m octostored.console.runner --log PATH -- CMD ...", file=sys.stderr)
        return 2
    log_file, cmd = os.path.abspath(argv[1]), argv[3:]
    exe = find_program(cmd[0])
    if exe is None:
        print(f"octostore: command not found: {cmd[0]}; check its name and your PATH",
              file=sys.stderr)
        return 127
    try:
        writer: LogWriter | None = LogWriter(log_file, cmd)
    except OSError as exc:
        print(f"octostore: cannot keep the console log {log_file} ({exc.strerror or exc}); "
              "running without it", file=sys.stderr)
        writer = None
    return run(cmd, exe, dict(os.environ), writer)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
