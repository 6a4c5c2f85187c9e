"""An MLflow SQLite store (``mlflow.db``, ``mlruns.db``, a configured file), opened read-only.

Its read state is the reader's change cursor (:class:`~octostored.sources.sqlitestore
.SqliteCursor`): a ``log_metric`` on one run of 10,000 reads that run, not the store.  A
database that cannot be read at all (made a folder or a FIFO, truncated, corrupt) keeps its
last known runs, each marked with :func:`stale_warning`, and the source says so; the marks go
when it reads again.  ``sqlitestore`` is imported with the first read (it is not needed to
answer from a snapshot).
"""

from __future__ import annotations

import dataclasses
import os
import stat
import time
from typing import TYPE_CHECKING, Any

from ...model import Experiment, Run
from .base import RESCAN, Delta, Store

if TYPE_CHECKING:
    from ...sources.discover import StoreRef
    from ..history import HistoryCache
    from ..state import RootIndex


class SqliteStore(Store):
    kind = "sqlite"

    def __init__(self, ref: StoreRef) -> None:
        super().__init__(ref)
        self.cursor: Any = None
        """The reader's change cursor (None: never read)."""
        self.stale = ""
        """Why the last read failed when the database cannot be read at all (its runs are
        served as its last known state); "" once it reads again."""

    def full_scan(self, index: RootIndex) -> tuple[list[Run], list[Experiment], list[str]]:
        out = self._read_all(index)
        self.last_read = time.time()
        return out

    def _read_all(self, index: RootIndex) -> tuple[list[Run], list[Experiment], list[str]]:
        ref = self.ref
        runs, exps, warnings = self._read(index)
        warnings = [w if ref.id in w else f"{ref.id}: {w}" for w in warnings]
        self.stamp(runs)
        return runs, exps, warnings

    def _read(self, index: RootIndex) -> tuple[list[Run], list[Experiment], list[str]]:
        """Every run and experiment of the store, reading only what changed."""
        from ...sources import sqlitestore

        ref = self.ref
        known = {rid: r for rid, r in index.runs.items() if ref.id in r.sources}
        known_exps = [e for e in index.experiments.values() if e.source == ref.id]
        cursor = self.cursor if isinstance(self.cursor, sqlitestore.SqliteCursor) else None
        if (cursor is not None and known and not self.stale
                and sqlitestore.fingerprint(ref.path) == cursor.fingerprint):
            return _fresh(known.values(), ref.id), known_exps, list(self.warnings)
        scan, new_cursor = sqlitestore.read_changed(ref.path, ref.id, cursor)
        warnings = list(scan.warnings)
        if not scan.full and not scan.experiments and not scan.runs and warnings:
            # The read failed: keep what we have, retry on the next change.  Locked for a
            # moment, the runs are current; unreadable, they are its last known state.
            self.stale = scan.unreadable
            if scan.unreadable:
                if known:  # first, so that status shows it as the source's warning
                    warnings.insert(0, stale_warning(ref.id, scan.unreadable))
                return _marked(known.values(), ref.id, scan.unreadable), known_exps, warnings
            return _fresh(known.values(), ref.id), known_exps, warnings
        self.stale = ""
        self.cursor = new_cursor
        self.warnings = warnings
        if scan.full:
            return scan.runs, scan.experiments, warnings
        merged = {r.run_id: r for r in _fresh(known.values(), ref.id) if r.run_id not in scan.removed}
        for run in scan.runs:
            merged[run.run_id] = run
        return list(merged.values()), scan.experiments or known_exps, warnings

    def route(self, path: str) -> Any:
        if not path.startswith(self.ref.path):
            return None
        if not os.path.exists(self.ref.path):
            return RESCAN  # the database was deleted or moved: re-discover
        return self.ref.path

    def read_changed(self, items: set[str], index: RootIndex) -> Delta:
        """Only what changed since the last read; nothing is copied."""
        self.last_read = time.time()
        runs, exps, removed, full, warnings = self._read_changes(index)
        self.stamp(runs)
        return Delta(runs, exps, full, removed, warnings)

    def _read_changes(
        self, index: RootIndex
    ) -> tuple[list[Run], list[Experiment], list[str], bool, list[str] | None]:
        """(runs, experiments, ids of removed runs, whether the runs are all of the store's,
        the source's warnings or None when unchanged)."""
        from ...sources import sqlitestore

        ref = self.ref
        cursor = self.cursor if isinstance(self.cursor, sqlitestore.SqliteCursor) else None
        if cursor is None or self.stale:  # never read, or unreadable until now: all of it
            runs, exps, warnings = self._read_all(index)
            return runs, exps, [], True, warnings
        if sqlitestore.fingerprint(ref.path) == cursor.fingerprint:
            return [], [], [], False, None
        scan, new_cursor = sqlitestore.read_changed(ref.path, ref.id, cursor)
        if not scan.full and not scan.experiments and not scan.runs and scan.warnings:
            if scan.unreadable:  # its runs become its last known state, marked so
                runs, exps, warnings = self._read_all(index)
                return runs, exps, [], True, warnings
            return [], [], [], False, None  # locked for a moment: the next change retries
        self.cursor = new_cursor
        self.warnings = list(scan.warnings)
        return scan.runs, scan.experiments, list(scan.removed), scan.full, \
            [w if ref.id in w else f"{ref.id}: {w}" for w in scan.warnings]

    def lingers(self) -> bool:
        """A database that became a folder or a FIFO is no store to discovery, but its runs
        stay, marked as its last known state, until the path is gone or a file again."""
        try:
            return not stat.S_ISREG(os.stat(self.ref.path).st_mode)
        except OSError:
            return False

    def watch_paths(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        # Its folder, not recursively: a WAL database changes only its -wal file.
        return (), (os.path.dirname(self.ref.path),)

    def metric_history(self, run: Run, key: str,
                       cache: HistoryCache) -> tuple[list[Any], list[str]]:
        from ...sources import sqlitestore

        return sqlitestore.metric_history(run.location, run.run_id, key), []

    def dump_state(self) -> dict[str, Any]:
        return {"runs": {}, "cursor": None if self.cursor is None else self.cursor.to_row()}

    def load_state(self, row: dict[str, Any]) -> None:
        if row.get("cursor"):
            from ...sources.sqlitestore import SqliteCursor

            self.cursor = SqliteCursor.from_row(row["cursor"])


def stale_warning(sid: str, reason: str) -> str:
    """The warning each run of an unreadable SQLite store carries (and its source too)."""
    return f"the store {sid} could not be read ({reason}); these runs are its last known state"


def _stale_prefix(sid: str) -> str:
    return f"the store {sid} could not be read ("


def _fresh(runs: Any, sid: str) -> list[Run]:
    """Copies of ``runs`` without the stale mark of store ``sid`` (it reads again)."""
    prefix = _stale_prefix(sid)
    out = []
    for r in runs:
        c = dataclasses.replace(r)
        if any(w.startswith(prefix) for w in r.warnings):
            c.warnings = [w for w in r.warnings if not w.startswith(prefix)]
        out.append(c)
    return out


def _marked(runs: Any, sid: str, reason: str) -> list[Run]:
    """Copies of ``runs`` marked as the last known state of the unreadable store ``sid``."""
    prefix, mark = _stale_prefix(sid), stale_warning(sid, reason)
    out = []
    for r in runs:
        c = dataclasses.replace(r)
        c.warnings = [w for w in r.warnings if not w.startswith(prefix)] + [mark]
        out.append(c)
    return out
