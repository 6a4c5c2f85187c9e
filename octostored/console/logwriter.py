"""Writing one console log (:mod:`.logformat`) without ever making the producer wait for
the disk.

:meth:`LogWriter.feed` only appends the bytes to an in-memory queue (and decides the
time marks: the time is when the bytes arrived, not when the disk took them;
after a pause, both ends of it); a
thread writes the queue to ``<id>.log`` and the marks to ``<id>.idx``, a mark only
once the bytes before its offset are in the log, so a reader never sees a mark
pointing past the end.  A disk slower than the command's output makes the queue
grow up to ``MAX_PENDING`` bytes; beyond that bytes are dropped and counted (the
next mark says ``"lost": <bytes>``), never waited for.  A disk error (full, gone)
stops the writing and is kept in :attr:`LogWriter.error`; the producer goes on.

Standard library only (it runs in the in-process tee, :mod:`.tee_proc`).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable

from .logformat import GAP_MS, MARK_INTERVAL_MS, index_line, index_path, log_path, new_log_id

MAX_PENDING = 256 * 1024 * 1024
"""Bytes queued for a slow disk before output is dropped (and counted) instead."""
WAKE_BYTES = 1024 * 1024
FLUSH_INTERVAL = 0.05
"""The disk thread wakes every ``FLUSH_INTERVAL`` seconds, or sooner once ``WAKE_BYTES`` are
queued: big writes, and no thread switch per chunk of output."""
CLOSE_TIMEOUT = 60.0
"""Seconds :meth:`LogWriter.close` waits for a stuck disk before giving up."""


def now_ms() -> int:
    return int(time.time() * 1000)


def quiet_thread(target: Callable[[], None], name: str) -> threading.Thread:
    """A started daemon thread that never takes a signal (they stay for the main thread,
    which may be waiting for them with ``sigtimedwait``)."""
    t = threading.Thread(target=target, name=name, daemon=True)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        t.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return t


def new_log_file(root: str) -> str:
    """A fresh log path under ``root`` (the file is created by :class:`LogWriter`)."""
    return log_path(root, new_log_id())


GITIGNORE_TEXT = b"# Console logs: octostore commits those of committed runs.\n*\n"
"""Keeps uncommitted logs out of ``git status`` (ignores itself too); ``octostore commit``
writes the same file (``gitops.contents.LOGS_GITIGNORE_TEXT``)."""


def _ignore_folder(folder: str) -> None:
    """Write ``<folder>/.gitignore`` once (best effort: a log matters more than this)."""
    path = os.path.join(folder, ".gitignore")
    if os.path.exists(path):
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError:
        return
    try:
        _write_all(fd, GITIGNORE_TEXT)
    except OSError:
        pass
    finally:
        os.close(fd)


class LogWriter:
    """One ``.log`` + ``.idx`` pair, written by a background thread."""

    def __init__(self, log_file: str, argv: list[str], pid: int | None = None,
                 max_pending: int = MAX_PENDING) -> None:
        """Create the files (the folder too) and write the header.

        ``pid`` is the writer's process (default: this one): a log without the final
        mark whose writer is gone was cut short.  Raises ``OSError`` when the files
        cannot be made.
        """
        os.makedirs(os.path.dirname(log_file), exist_ok=True)
        _ignore_folder(os.path.dirname(log_file))
        base = log_file
        n = 1
        while True:
            try:
                self._log = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                    0o644)
                break
            except FileExistsError:  # same second, same pid (a pid reused): never clobber
                n += 1
                stem = base[: -len(".log")] if base.endswith(".log") else base
                log_file = f"{stem}-{n}.log"
        self.path = log_file
        try:
            self._idx = os.open(index_path(log_file), os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                                | os.O_CLOEXEC, 0o644)
        except OSError:
            os.close(self._log)
            raise
        t = now_ms()
        _write_all(self._idx, index_line(0, t, v=1, argv=list(argv),
                                         pid=pid if pid is not None else os.getpid(),
                                         host=socket.gethostname()))
        self._cond = threading.Condition()
        self._items: list[bytes | tuple[int, int, dict]] = []
        self._offset = 0
        """Bytes accepted (logged or queued); the offset of the next byte."""
        self._pending = 0
        self._last_mark = t
        self._last_data = t
        self._lost_unmarked = 0
        self.lost = 0
        """Bytes dropped because the disk fell ``max_pending`` behind."""
        self.error: str | None = None
        """Why writing stopped (a disk error), else None."""
        self._max = max_pending
        self._end: tuple[int, int, dict] | None = None
        self._thread = quiet_thread(self._run, "octostore-console-log")

    # -- producer side (never blocks on the disk) ------------------------------------------------
    def feed(self, data: bytes) -> None:
        if not data:
            return
        now = now_ms()
        with self._cond:
            if self.error is not None or self._end is not None:
                return
            if self._pending + len(data) > self._max:
                self.lost += len(data)
                self._lost_unmarked += len(data)
                return
            o = self._offset
            if self._lost_unmarked:
                self._items.append((o, now, {"lost": self._lost_unmarked}))
                self._lost_unmarked = 0
                self._last_mark = now
            elif now - self._last_data >= GAP_MS:
                if self._last_data > self._last_mark:
                    self._items.append((o, self._last_data, {}))
                self._items.append((o, now, {}))
                self._last_mark = now
            elif now - self._last_mark >= MARK_INTERVAL_MS:
                self._items.append((o, now, {}))
                self._last_mark = now
            self._last_data = now
            self._items.append(data)
            self._offset += len(data)
            self._pending += len(data)
            if self._pending >= WAKE_BYTES:
                self._cond.notify()

    def close(self, exit_code: int | None, timeout: float = CLOSE_TIMEOUT) -> None:
        """Write the last mark (``exit``) after everything queued; wait up to ``timeout``."""
        now = now_ms()
        with self._cond:
            if self._end is None:
                extra: dict = {"exit": exit_code}
                if self.lost:
                    extra["lost"] = self.lost
                self._end = (self._offset, now, extra)
            self._cond.notify()
        self._thread.join(timeout)

    def discard(self) -> None:
        """Stop and remove the files (the command could not even start)."""
        self.close(None)
        for path in (self.path, index_path(self.path)):
            try:
                os.unlink(path)
            except OSError:
                pass

    # -- the writing thread ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except OSError as exc:
            with self._cond:
                self.error = f"{exc.strerror or exc} ({self.path})"
                self._items.clear()
                self._pending = 0
        finally:
            for fd in (self._log, self._idx):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._end is None and (not self._items or self._pending < WAKE_BYTES):
                    if not self._cond.wait(FLUSH_INTERVAL) and self._items:
                        break
                items, self._items = self._items, []
                end = self._end if not items else None
            if end is not None:
                _write_all(self._idx, index_line(end[0], end[1], **end[2]))
                return
            chunk: list[bytes] = []
            size = 0
            for item in items:
                if isinstance(item, bytes):
                    chunk.append(item)
                    size += len(item)
                    continue
                if chunk:
                    _write_chunks(self._log, chunk)
                    chunk = []
                _write_all(self._idx, index_line(item[0], item[1], **item[2]))
            if chunk:
                _write_chunks(self._log, chunk)
            with self._cond:
                self._pending -= size


def _write_chunks(fd: int, chunks: list[bytes]) -> None:
    """``chunks`` in order, without joining them (``writev``, up to 512 at a time)."""
    for i in range(0, len(chunks), 512):
        batch = chunks[i:i + 512]
        n = os.writev(fd, batch)
        if n < sum(len(c) for c in batch):  # a short write: finish piece by piece
            for c in batch:
                if n >= len(c):
                    n -= len(c)
                    continue
                _write_all(fd, c[n:])
                n = 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
