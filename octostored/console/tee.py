"""The tee: a command's stdout and stderr passed through unchanged and copied to a log.

:func:`open_channels` decides, per output stream of this process (fd 1, fd 2), what
the command writes into instead: a pseudo-terminal when the stream is a terminal (so
the command still sees one and keeps its colours and progress bars), a pipe
otherwise.  Streams that go to the same place (``2>&1``, one terminal) share one
channel, so their order is kept exactly.  The pty's output processing is off
(``OPOST``): the command's bytes reach the log as written (``\\n``, not ``\\r\\n``)
and the real terminal translates them once, as it would have.

:class:`Pump` reads the channels and writes every chunk to the real stream (as
fast as that stream takes it, which is what the command would wait for anyway)
after handing it to the :class:`~octostored.console.logwriter.LogWriter` (which
never waits for the disk).  When the real stream is closed (``| head``) the
channel is closed too, so the command gets the same broken pipe it would have
got.

Standard library only.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import termios
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .logwriter import LogWriter

READ_SIZE = 256 * 1024
PIPE_SIZE = 1024 * 1024
"""The pipes' capacity (Linux): the command can write this much while the pump gathers."""
GATHER = 0.002
"""Seconds the pump lets a trickle of small writes gather before reading again (a command
printing line by line, unbuffered or on a terminal): a few big reads instead of one per
line.  A pipe holds ``PIPE_SIZE`` and a pty about 64 KB meanwhile, so the command does
not wait (a terminal emulator reads no faster)."""
SMALL = 16 * 1024
SMALL_PTY = 1024
"""Reads below these sizes mean a trickle (a pty read returns at most 4 KB)."""
IDLE_AFTER_EXIT = 0.1
"""Seconds without output, once the command has exited, after which its leftover children
(still holding the streams) are no longer waited for."""


@dataclass
class Channel:
    out_fd: int
    """Where the bytes go: this process's real stream."""
    child_fds: tuple[int, ...]
    """The command's fds (1, 2) that write into it."""
    read_fd: int
    write_fd: int
    """The command's end (a pty slave or a pipe's write end); closed here once it started."""
    pty: bool = False
    open: bool = field(default=True)

    def close_parent_end(self) -> None:
        if self.write_fd >= 0:
            _close(self.write_fd)
            self.write_fd = -1

    def close(self) -> None:
        self.close_parent_end()
        if self.open:
            _close(self.read_fd)
            self.open = False


def open_channels(fds: tuple[int, ...] = (1, 2), use_pty: bool | None = None) -> list[Channel]:
    """One channel per distinct destination among ``fds`` (see the module's doc).

    ``use_pty=False`` forces pipes; a closed fd gets no channel (the command inherits
    it as it is).  Raises ``OSError`` (then nothing is left open).
    """
    groups: dict[tuple[bool, int, int], list[int]] = {}
    for fd in fds:
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        tty = use_pty is not False and os.isatty(fd)
        groups.setdefault((tty, st.st_dev, st.st_ino), []).append(fd)
    channels: list[Channel] = []
    try:
        for (tty, _, _), members in groups.items():
            if tty:
                master, slave = os.openpty()
                ch = Channel(members[0], tuple(members), master, slave, pty=True)
                channels.append(ch)
                _mirror_terminal(members[0], slave)
                copy_winsize(ch)
            else:
                r, w = os.pipe()
                channels.append(Channel(members[0], tuple(members), r, w))
                if hasattr(fcntl, "F_SETPIPE_SZ"):
                    try:
                        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
                    except OSError:
                        pass  # above /proc/sys/fs/pipe-max-size: the default will do
    except OSError:
        for ch in channels:
            ch.close()
        raise
    return channels


def _mirror_terminal(real_fd: int, slave: int) -> None:
    """The real terminal's settings on the pty, output processing off."""
    try:
        attrs = termios.tcgetattr(real_fd)
    except termios.error:
        attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST
    termios.tcsetattr(slave, termios.TCSANOW, attrs)


def copy_winsize(ch: Channel) -> None:
    """Give the pty the real terminal's size (at start and on ``SIGWINCH``)."""
    if not ch.pty or not ch.open:
        return
    try:
        size = fcntl.ioctl(ch.out_fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(ch.read_fd, termios.TIOCSWINSZ, size)
    except OSError:
        pass


class Pump:
    """Copies every channel to its real stream and to the log until they all end."""

    def __init__(self, channels: list[Channel], writer: LogWriter | None) -> None:
        self.channels = channels
        self.writer = writer
        self.exited = threading.Event()
        """Set when the command has exited: stop once its leftovers go quiet."""
        self.write_errors = 0

    def run(self) -> None:
        poller = select.poll()
        by_fd = {}
        for ch in self.channels:
            if ch.open:
                poller.register(ch.read_fd, select.POLLIN)
                by_fd[ch.read_fd] = ch
        feed = self.writer.feed if self.writer is not None else None
        try:
            while by_fd:
                exited = self.exited.is_set()
                events = poller.poll(IDLE_AFTER_EXIT * 1000 if exited else 250)
                if not events:
                    if exited:
                        break
                    continue
                got, busy = 0, False
                for fd, _ in events:
                    ch = by_fd[fd]
                    try:
                        data = os.read(fd, READ_SIZE)
                    except OSError as exc:  # EIO: a pty whose last writer closed it
                        if exc.errno not in (errno.EIO, errno.EBADF):
                            raise
                        data = b""
                    if not data:
                        poller.unregister(fd)
                        del by_fd[fd]
                        ch.close()
                        continue
                    got += len(data)
                    busy = busy or len(data) >= (SMALL_PTY if ch.pty else SMALL)
                    if feed is not None:
                        feed(data)
                    if not write_out(ch.out_fd, data):
                        # The reader went away (`| head`, a closed terminal): the command
                        # gets the broken pipe it would have got without us.
                        self.write_errors += 1
                        poller.unregister(fd)
                        del by_fd[fd]
                        ch.close()
                if got and not busy:
                    time.sleep(GATHER)
        finally:  # also when a read fails: the command must not block on a full pipe
            for ch in self.channels:
                ch.close()

    def start(self) -> threading.Thread:
        from .logwriter import quiet_thread

        return quiet_thread(self.run, "octostore-console-pump")


def write_out(fd: int, data: bytes) -> bool:
    """Write everything (waiting on a non-blocking stream); False when it is closed."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        except OSError:  # EPIPE, EIO (a hung-up terminal), ENOSPC (a full disk): gone
            return False
        view = view[n:]
    return True


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
