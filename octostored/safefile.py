"""Reading a file from a repo: never block, only a regular file, never more than a cap.

Everything in a repo may come from a stranger, file types included.  A plain ``open`` of a
named pipe waits for a writer that never comes (one ``.env`` made a FIFO wedged its repo,
six wedged the daemon's whole worker pool), a device such as ``/dev/zero`` never ends, and a
10 MB ``.py`` froze the language server for 14 s.  So every file the daemon reads from a repo
goes through here: opened with ``O_NONBLOCK`` (a FIFO opens at once and is then refused),
``O_CLOEXEC``, and ``O_NOFOLLOW`` where a symlink must not be followed; checked with one
``fstat``; read only when it is a regular file within the cap for its kind.  Anything else
raises :class:`Refused`, whose message is the warning to show ("X is not a regular file (a
FIFO); octostore skipped it").

SQLite opens files itself (and blocks on a FIFO): :func:`check_regular` comes first.

Standard library only: the capture plugin and the watcher may import it.
"""

from __future__ import annotations

import errno
import os
import stat

KIB = 1024
MIB = 1024 * KIB

ENV_CAP = 4 * MIB
"""Environment files (requirements, locks, conda.yaml, ``.env``...): a big ``uv.lock`` is
~1 MiB."""
CONFIG_CAP = 1 * MIB
"""``pyproject.toml``, ``octostore.toml``, ``.octostore/remotes.toml``."""
META_CAP = 64 * KIB
"""MLflow ``meta.yaml`` files: a few hundred bytes."""
SOURCE_CAP = 2 * MIB
"""A Python file the language server parses: larger ones are generated, not written."""
SMALL_CAP = 4 * KIB
"""One-line files such as ``.git/HEAD``."""

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISLNK, "a symlink"),
)


class Refused(OSError):
    """A repo file that is not read: not a regular file, or over its cap.

    ``str(exc)`` is the whole warning, naming the file and saying it was skipped.
    """

    def __init__(self, message: str, reason: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        """"type" (not a regular file) or "size" (over the cap)."""
        self.detail = detail or message
        """What is wrong without the file's name ("not a regular file (a FIFO)")."""

    def __str__(self) -> str:
        return self.message


def kind_of(mode: int) -> str:
    """What a non-regular ``st_mode`` is, in words ("a FIFO", "a folder", ...)."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def human(n: int) -> str:
    """A size in words: 512 bytes, 3 KiB, 10 MB."""
    if n >= MIB:
        value, unit = n / MIB, "MiB"
    elif n >= KIB:
        value, unit = n / KIB, "KiB"
    else:
        return f"{n} bytes"
    return f"{value:.1f}".rstrip("0").rstrip(".") + f" {unit}"


def not_regular(label: str, mode: int) -> Refused:
    detail = f"not a regular file ({kind_of(mode)})"
    return Refused(f"{label} is {detail}; octostore skipped it", "type", detail)


def too_big(label: str, size: int, cap: int, what: str) -> Refused:
    detail = f"{human(size)}, over the {human(cap)} cap for {what}"
    return Refused(f"{label} is {detail}; octostore skipped it", "size", detail)


def open_regular(path: str, *, follow: bool = True, dir_fd: int | None = None,
                 label: str | None = None) -> tuple[int, os.stat_result]:
    """(descriptor, its ``fstat``) of the regular file ``path``; never blocks.

    Raises :class:`Refused` when it is not a regular file (or, with ``follow`` False, a
    symlink), ``OSError`` when it cannot be opened.  The caller closes the descriptor.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    name = label or path
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if not follow and exc.errno == errno.ELOOP:  # the last component is a symlink
            raise Refused(f"{name} is a symlink; octostore does not follow it here", "type",
                          "a symlink") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise not_regular(name, st.st_mode)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_bytes(path: str, cap: int, what: str, *, follow: bool = True,
               dir_fd: int | None = None, label: str | None = None) -> bytes:
    """The bytes of the regular file ``path``, refused (:class:`Refused`) above ``cap``.

    ``what`` names the kind of file in the warning ("an environment file").  A file that
    grows past the cap while it is read is refused too, never cut silently.
    """
    name = label or path
    fd, st = open_regular(path, follow=follow, dir_fd=dir_fd, label=name)
    try:
        if st.st_size > cap:
            raise too_big(name, st.st_size, cap, what)
        parts: list[bytes] = []
        got = 0
        while True:
            chunk = os.read(fd, max(st.st_size - got + 1, 1 << 16))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
            if got > cap:
                raise too_big(name, got, cap, what)
        return b"".join(parts)
    finally:
        os.close(fd)


def read_text(path: str, cap: int, what: str, *, follow: bool = True,
              label: str | None = None) -> str:
    """:func:`read_bytes` decoded as UTF-8 (a BOM dropped, bad bytes replaced)."""
    return read_bytes(path, cap, what, follow=follow, label=label).decode("utf-8-sig", "replace")


def check_regular(path: str, label: str | None = None) -> os.stat_result:
    """The ``stat`` of ``path`` when it is a regular file (symlinks followed), for files
    another library opens itself (SQLite); raises :class:`Refused` or ``OSError``."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise not_regular(label or path, st.st_mode)
    return st
