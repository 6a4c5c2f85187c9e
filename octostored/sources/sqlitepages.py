"""Whether a few tables of an SQLite database changed, from the file's pages (stdlib only).

:mod:`octostored.sources.sqlitestore` asks this before comparing every run's ``runs`` row and
tags (what MLflow rewrites in place): when neither table changed, that comparison is skipped.

A table's rows all live in its b-tree pages (the table's own; its indexes only repeat them),
and SQLite changes a b-tree by rewriting pages in place: every change to a table writes at
least one page that belonged to the table before the change (the leaf or overflow page that
held or receives the row, or the parent of a split).  So a **witness** of a table is its page
list (``dbstat``, in the read's snapshot) and a hash of those pages' bytes as the snapshot sees
them; a later read asks whether any of the listed pages was written since:

* **WAL mode**: each commit appends frames to ``-wal``; a frame header names its page.  While
  the WAL generation (the salts in the ``-shm`` wal-index header and the WAL header) is the
  same and the frame the witness stopped at still carries the same cumulative checksum, the
  frames after it name every page written since.  An empty WAL gives no such frame (and its
  salts can repeat: a wal-index rebuilt after the last connection closed has zeros), so a
  witness taken then hashes next time.
* **Otherwise** (rollback journal, a new WAL generation after a checkpoint restarted it, or a
  switch of journal mode): the listed pages are read again as the snapshot sees them (the
  latest committed WAL frame of the page, else the main file) and hashed.  In rollback mode
  the read transaction's SHARED lock keeps writers out of the file meanwhile; in WAL mode a
  checkpoint never overwrites what a reader's snapshot still needs.

Anything uncertain (a frame committed while the snapshot was being taken, a torn or missing
header, a WAL too long to map cheaply, no ``dbstat``) reports the table as changed, so the
caller's comparison decides: a witness can cost a needless comparison, never a missed change.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
import sys
from array import array
from typing import Any

from octostored.safefile import open_regular

WATCHED = ("runs", "tags")
"""Tables whose rows MLflow updates in place or deletes (the others are insert-only)."""

_MAX_FRAMES = 20_000
"""Frame headers read at most (24 bytes each, ~1 us): MLflow's WAL restarts after ~1000 frames
(SQLite's auto-checkpoint); a longer one leaves the witness to the caller's comparison."""

_SHM_VERSION = 3007000
_WAL_MAGIC = (0x377F0682, 0x377F0683)


def shm_header(db_path: str) -> tuple[bytes, int] | None:
    """(salts, mxFrame) of the wal-index header in ``-shm``; None when absent, uninitialised or
    torn (SQLite keeps two copies and a reader trusts them only when they agree)."""
    try:
        fd, _st = open_regular(db_path + "-shm")  # never blocks on a FIFO
    except OSError:
        return None
    try:
        for _ in range(3):
            b = os.pread(fd, 96, 0)
            if (len(b) == 96 and b[:48] == b[48:] and b[12] == 1
                    and int.from_bytes(b[0:4], sys.byteorder) == _SHM_VERSION):
                return b[32:40], int.from_bytes(b[16:20], sys.byteorder)
    except OSError:
        pass
    finally:
        os.close(fd)
    return None


def _pack(pages: list[int]) -> bytes:
    a = array("I", pages)
    if sys.byteorder == "little":
        a.byteswap()
    return a.tobytes()


def _unpack(blob: bytes) -> array[int]:
    a = array("I")
    a.frombytes(blob)
    if sys.byteorder == "little":
        a.byteswap()
    return a


assert array("I").itemsize == 4


class _View:
    """Pages as the current read transaction sees them, read from the files."""

    def __init__(self, db_path: str, page: int, wal: bool,
                 before: tuple[bytes, int] | None) -> None:
        self.db_path, self.page = db_path, page
        self.fds: dict[str, int] = {}
        self.ok = True
        """False when the files could not be matched to the snapshot: nothing is known."""
        self.salt, self.lo, self.hi = b"", 0, 0
        self._map: dict[int, int] | None = None
        """Page -> its latest frame, once needed; None again (with ``_unmapped``) if too long."""
        self._unmapped = False
        self._late: set[int] = set()
        if not wal:
            return
        after = shm_header(db_path)
        if after is None:
            self.ok = False
            return
        self.salt, self.hi = after
        # The snapshot holds every frame up to some mxFrame between the headers read before and
        # after it was taken; with another generation before, only "up to hi" is known.
        if before is not None and before[0] == self.salt and before[1] <= self.hi:
            self.lo = before[1]
        if self.hi:
            try:
                head = self._pread("-wal", 32, 0)
            except OSError:
                head = b""
            if (len(head) < 32 or int.from_bytes(head[:4], "big") not in _WAL_MAGIC
                    or (int.from_bytes(head[8:12], "big") or 65536) != page
                    or head[16:24] != self.salt):
                self.ok = False

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)

    def _pread(self, suffix: str, n: int, offset: int) -> bytes:
        fd = self.fds.get(suffix)
        if fd is None:
            fd = self.fds[suffix] = open_regular(self.db_path + suffix)[0]  # Refused: OSError
        return os.pread(fd, n, offset)

    def _frame(self, i: int, size: int = 24) -> bytes | None:
        """Frame ``i``'s header (and page, with ``size``), or None when it is not this WAL's."""
        b = self._pread("-wal", size, 32 + (i - 1) * (self.page + 24))
        return b if len(b) == size and b[8:16] == self.salt else None

    def mark(self) -> bytes:
        """Salts and the cumulative checksum of frame ``lo``, what :meth:`written_since` checks;
        empty without a frame: the salts of an empty WAL are no generation's (a wal-index
        rebuilt from a deleted WAL has zeros, and a WAL rewritten in place may keep them)."""
        head = self._frame(self.lo) if self.lo else None
        return b"" if head is None else self.salt + head[16:24]

    def written_since(self, mark: bytes, frame: int) -> set[int] | None:
        """Pages written by frames after ``frame`` of the WAL ``mark`` names; None if unknown."""
        if (not self.ok or not frame or len(mark) != 16 or mark[:8] != self.salt
                or frame > self.hi or (head := self._frame(frame)) is None
                or head[16:24] != mark[8:]):
            return None
        if self.hi - frame > _MAX_FRAMES:
            return None
        out = set()
        for i in range(frame + 1, self.hi + 1):
            head = self._frame(i)
            if head is None:
                return None
            out.add(int.from_bytes(head[:4], "big"))
        return out

    def read(self, pgno: int) -> bytes | None:
        """Page ``pgno`` as the snapshot sees it; None when that is uncertain."""
        if not self.ok or self._unmapped:
            return None
        if self.hi:
            if self._map is None:
                self._map = self._frames()
                if self._map is None:
                    self._unmapped = True
                    return None
            if pgno in self._late:
                return None
            i = self._map.get(pgno)
            if i is not None:
                b = self._frame(i, 24 + self.page)
                return None if b is None else b[24:]
        b = self._pread("", self.page, (pgno - 1) * self.page)
        return b if len(b) == self.page else None

    def _frames(self) -> dict[int, int] | None:
        if self.hi > _MAX_FRAMES:
            return None
        out = {}
        for i in range(1, self.hi + 1):
            head = self._frame(i)
            if head is None:
                return None
            p = int.from_bytes(head[:4], "big")
            out[p] = i
            if i > self.lo:
                self._late.add(p)  # committed while the snapshot was taken: in it or not
        return out

    def digest(self, pages: bytes) -> bytes:
        """Hash of the page list and the pages' bytes; empty when a page is uncertain."""
        h = hashlib.sha256(pages)
        for pgno in _unpack(pages):
            b = self.read(pgno)
            if b is None:
                return b""
            h.update(b)
        return h.digest()[:16]


@functools.cache
def _has_dbstat() -> bool:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("SELECT count(*) FROM dbstat").fetchall()
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def _valid(w: Any) -> bool:
    """Whether ``w`` has the shape :func:`witness` gives (a snapshot is a cache, not the truth)."""
    if not isinstance(w, dict) or not isinstance(w.get("page"), int):
        return False
    if not isinstance(w.get("wal", b""), bytes) or not isinstance(w.get("frame", 0), int):
        return False
    for table in WATCHED:
        entry = w.get(table)
        if entry is not None and not (
                isinstance(entry, (list, tuple)) and len(entry) == 2
                and isinstance(entry[0], bytes) and len(entry[0]) % 4 == 0
                and isinstance(entry[1], bytes)):
            return False
    return True


def _pages(conn: sqlite3.Connection, table: str) -> bytes:
    return _pack([p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name = ?", (table,))])


def witness(conn: sqlite3.Connection, db_path: str, before: tuple[bytes, int] | None,
            since: dict[str, Any] | None) -> tuple[set[str], dict[str, Any]]:
    """Tables of :data:`WATCHED` that may have changed since the witness ``since``, and the
    witness of this read (plain types, for the cursor).

    Call inside the read transaction, after its first query; ``before`` is :func:`shm_header`
    read before that query.
    """
    if not _has_dbstat():  # an SQLite built without it: compare every time
        return set(WATCHED), {}
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    wal = conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    old = since if since is not None and _valid(since) and since["page"] == page else {}
    view = _View(db_path, page, wal, before)
    try:
        written = view.written_since(old.get("wal", b""), old.get("frame", 0)) if wal else None
        new: dict[str, Any] = {"page": page}
        changed = set()
        for table in WATCHED:
            entry = old.get(table)
            if entry is not None:
                pages, digest = entry
                if written is not None:
                    same = written.isdisjoint(_unpack(pages))
                else:
                    same = bool(digest) and view.digest(pages) == digest
                if same:
                    new[table] = [pages, digest]
                    continue
            changed.add(table)
            pages = _pages(conn, table)
            new[table] = [pages, view.digest(pages)]
        new["wal"] = view.mark() if wal and view.ok else b""
        new["frame"] = view.lo if new["wal"] else 0
        if wal and (shm_header(db_path) or (b"", 0))[0] != view.salt:
            return set(WATCHED), {}  # the WAL restarted while it was read: nothing is certain
        return changed, new
    except OSError:
        return set(WATCHED), {}
    finally:
        view.close()
