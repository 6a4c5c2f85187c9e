"""The files of one run folder, read by descriptor with as few system calls as possible.

A cold index reads ~32 files per run, most of them a few bytes long, so the cost is system
calls and Python overhead, not bytes.  Every file here is opened relative to its folder's
descriptor (``openat``: the kernel resolves one name, not a 10-level path), checked and
sized with one ``fstat``, read with one ``read`` and closed: four calls, where a plain
``open().read()`` makes six or seven.  The ``fstat`` also gives the (size, mtime) that the
run's signature needs, so the signature costs no second walk.

:class:`Sig` collects (name, size, mtime_ns) of every file in one fixed order (meta.yaml,
then ``params/``, ``tags/``, ``metrics/``, ``inputs/``, each sorted by name, depth first);
:func:`stat_walk` builds the same list with ``stat`` alone (the verify pass of a warm start),
and :func:`Sig.digest` turns it into 8 bytes.  Both walks treat the odd cases alike (a
symlink to a folder or a dangling one is signed as the link itself, an entry that cannot be
opened is still ``stat``-ed), so an unchanged run always has the same digest.
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_mod
from array import array

O_FILE = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
"""Never blocks on a named pipe (a plain open would wait for a writer)."""
O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
S_IFMT = 0o170000
S_IFREG = 0o100000
S_IFDIR = 0o040000

SHORT_VALUE = 12
"""Values up to this length are shared between runs ("rf", "adam", "FINISHED", ...)."""
_SHARED: dict[str, str] = {}
_SHARED_MAX = 200_000


def shared(text: str) -> str:
    """One string object for equal keys and short values (10k runs repeat the same names)."""
    got = _SHARED.get(text)
    if got is not None:
        return got
    if len(_SHARED) >= _SHARED_MAX:
        _SHARED.clear()
    _SHARED[text] = text
    return text


class Sig:
    """(name, size, mtime_ns) of a run's files, in the order both walks visit them."""

    __slots__ = ("names", "nums")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.nums = array("q")

    def add(self, name: str, st: os.stat_result) -> None:
        self.names.append(name)
        self.nums.append(st.st_size)
        self.nums.append(st.st_mtime_ns)

    def digest(self) -> bytes:
        h = hashlib.blake2b("\0".join(self.names).encode("utf-8", "surrogateescape"),
                            digest_size=8)
        h.update(self.nums.tobytes())
        return h.digest()


def open_dir(name: str, dir_fd: int | None = None) -> int:
    return os.open(name, O_DIR, dir_fd=dir_fd)


def link_stat(name: str, dir_fd: int) -> os.stat_result | None:
    """The ``lstat`` of ``name`` when it is a symlink (to a folder, or dangling), else None."""
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except OSError:
        return None
    return st if stat_mod.S_ISLNK(st.st_mode) else None


def is_link(name: str, dir_fd: int) -> bool:
    return link_stat(name, dir_fd) is not None


def stat_walk(parent_fd: int, folder: str, sig: Sig, max_depth: int, depth: int = 0,
              prefix: str = "") -> None:
    """Add every file below ``folder`` (a name in ``parent_fd``) to ``sig`` with ``stat`` only."""
    if depth > max_depth:
        return
    try:
        fd = os.open(folder, O_DIR, dir_fd=parent_fd)
    except OSError:
        return
    try:
        names = sorted(os.listdir(fd))
        rel = f"{prefix}{folder}/"
        for name in names:
            try:
                st = os.stat(name, dir_fd=fd)
            except OSError:
                link = link_stat(name, fd)  # a dangling symlink is signed as itself
                if link is not None:
                    sig.add(rel + name, link)
                continue
            if st.st_mode & S_IFMT == S_IFDIR:
                link = link_stat(name, fd)
                if link is None:
                    stat_walk(fd, name, sig, max_depth, depth + 1, rel)
                else:
                    sig.add(rel + name, link)  # a symlink to a folder is not followed
            else:
                sig.add(rel + name, st)
    except OSError:
        return
    finally:
        os.close(fd)


def read_open(fd: int, size: int, cap: int) -> bytes:
    """The bytes of the open regular file ``fd`` of ``size`` bytes, at most ``cap``."""
    if size < cap:
        data = os.read(fd, size + 1)  # a short read is the end of a regular file
        if len(data) <= size:
            return data
        parts = [data]  # it grew since fstat
        got = len(data)
    else:
        parts, got = [], 0
    while got < cap:
        chunk = os.read(fd, min(max(size - got + 1, 1 << 16), cap - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)
