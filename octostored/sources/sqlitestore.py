"""Reader for MLflow's SQLite tracking store (``mlflow.db``), standard library only.

Owns: turning one database into :class:`~octostored.model.Experiment` and
:class:`~octostored.model.Run` records (:func:`read_store`), telling cheaply whether it
changed (:func:`fingerprint`), re-reading only the runs that changed (:func:`read_changed`),
and metric histories (:func:`metric_history`).  The daemon never imports MLflow, so the
rules below copy MLflow 3.18.0's ``SqlAlchemyStore`` and the tests hold them to it.

Why it is shaped so:

* **Never in MLflow's way.** A ``mode=ro`` URI (the database is never created or written;
  in WAL mode SQLite may add the empty ``-wal``/``-shm`` any reader needs), a 100 ms busy
  timeout, and one short read transaction per call, closed before returning.  In WAL mode it
  pins a snapshot without blocking anyone; in rollback-journal mode (MLflow's default) its
  SHARED lock can delay a commit by at most the read itself (MLflow waits up to 20 s).  A
  locked database is retried for ~0.7 s, then reported as a warning.  Nothing raises except
  :func:`metric_history`, whose list has no room for a warning.
* **Bulk queries grouped in Python**, one per table rather than one per run, with the garbage
  collector paused while ~300k row tuples are built (STACK.md section 2: 30-40% faster).
* **Values as MLflow returns them**: NaN comes back from ``is_nan``; +-inf stays
  +-1.7976931348623157e308, because MLflow stores that and never maps it back.  A missing run
  name falls back to the ``mlflow.runName`` tag, as ``SqlRun.to_mlflow_entity`` does.
* **Change detection without an ``updated_at``.**  MLflow writes ``runs`` by UPDATE in place
  (status, end_time, name, lifecycle_stage, deleted_time); ``tags`` by INSERT, UPDATE in place
  (``set_tag`` on an existing key) and DELETE (``delete_tag``); ``metrics``, ``params``,
  ``inputs`` and ``input_tags`` by INSERT only, deleting rows only in ``mlflow gc`` together
  with their run; ``latest_metrics`` by UPDATE, but only in the transaction that INSERTs the
  ``metrics`` row it reflects.  So a run changed exactly when (a) its runs row or its tags
  differ, which an 8-byte digest of each (the tags spelled out unambiguously in SQL) shows, or
  (b) it owns a row above the previous max rowid of an insert-only table: SQLite numbers a new
  row max(rowid)+1 and reuses a number only after the max row was deleted.  Only gc deletes,
  and it removes runs; so a vanished run, a max rowid below its mark, a new alembic revision
  or ``schema_version``, or a replaced file (inode) makes the read a full one.
* **Digests only when their table's pages changed.**  Comparing every run's tags costs ~0.12 s
  CPU at 10k runs (the runs rows ~0.06 s), and a training loop's ``log_metric`` touches
  neither table.  :mod:`.sqlitepages` keeps a witness of each (its pages and their hash; in
  WAL mode, where the WAL stood) and says which may have changed: only those are compared run
  by run, and when neither did the read is the rowid marks plus the marked runs (~3 ms at 10k
  in WAL mode, ~13 ms in rollback mode, which re-hashes the pages).  Uncertainty counts as
  changed, so the witness never trades exactness for speed.  :func:`fingerprint` lets the
  caller skip even that when nothing was committed.
"""

from __future__ import annotations

import gc
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any
from urllib.parse import quote

from octostored.model import ACTIVE, Experiment, LatestMetric, Run
from octostored.safefile import Refused, check_regular, open_regular
from octostored.sources import sqlitepages

MLFLOW_HEAD = "f4a9b2c7d1e6"
"""Alembic revision of MLflow 3.18.0's schema, the one these rules were checked against."""

_NAN = float("nan")
"""One shared NaN, so that equal metric tuples compare equal (tuples test identity first)."""

_BUSY_S = 0.1
"""Busy timeout per attempt: a reader waits only for a commit in progress, never a writer's work."""

_ATTEMPTS = 4
"""Attempts while the database is locked: about 0.7 s in all, then a warning."""

_FORMAT = "2"
"""Version of the cursor's digests, part of its identity: a cursor of another one reads in full."""

_CHUNK = 500
"""Run ids per ``IN (...)`` list, well under SQLite's bound-parameter limit."""

_MARKED = {
    "metrics": "SELECT DISTINCT run_uuid FROM metrics NOT INDEXED WHERE rowid > ?",
    "params": "SELECT DISTINCT run_uuid FROM params NOT INDEXED WHERE rowid > ?",
    "inputs": "SELECT DISTINCT destination_id FROM inputs NOT INDEXED WHERE rowid > ?"
    " AND destination_type = 'RUN'",
    "input_tags": "SELECT DISTINCT i.destination_id FROM input_tags t NOT INDEXED"
    " JOIN inputs i ON i.input_uuid = t.input_uuid WHERE t.rowid > ?",
}
"""Insert-only tables, and how to find the runs owning rows above a rowid mark (NOT INDEXED
keeps SQLite on the rowid range: its DISTINCT would otherwise scan a whole run_uuid index)."""

_RUN_COLS = ("name", "status", "start_time", "end_time", "user_id", "artifact_uri",
             "lifecycle_stage", "experiment_id", "deleted_time")
_REQUIRED = {"experiments": ("experiment_id", "name"), "runs": ("run_uuid", "experiment_id"),
             "params": ("key", "value", "run_uuid"), "tags": ("key", "value", "run_uuid"),
             "metrics": ("key", "value", "timestamp", "run_uuid")}
"""Columns without which a database is not one this reader can read."""
_OPTIONAL = {"experiments": ("artifact_location", "lifecycle_stage", "creation_time",
                             "last_update_time"), "runs": _RUN_COLS, "metrics": ("step", "is_nan"),
             "latest_metrics": (), "experiment_tags": (), "inputs": (), "input_tags": (),
             "datasets": ()}
"""Columns and tables older schemas may lack; they read as NULL (step and is_nan as 0)."""
_DATASET = ("source_type", "source", "schema", "profile")
"""Dataset fields an input carries, as MLflow names them (columns add a ``dataset_`` prefix)."""


class SqliteStoreError(Exception):
    """The database could not be read: missing, locked too long, corrupt or not MLflow's."""

    def __init__(self, message: str, reason: str = "", locked: bool = False) -> None:
        super().__init__(message)
        self.reason = reason or message
        """What is wrong, without the path ("file is not a database")."""
        self.locked = locked
        """A writer held it: it reads again shortly, its runs are not stale."""


@dataclass(slots=True)
class SqliteCursor:
    """Where a read of one database left off; pass it to :func:`read_changed`.

    Plain types only (str, int, bytes, and lists and dicts of them), so the index can keep it
    in its msgpack snapshot (:meth:`to_row`, :meth:`from_row`).
    """

    fingerprint: str
    """:func:`fingerprint` taken just before the read (so a later commit always differs)."""
    identity: str
    """Inode, alembic revision and schema cookie: when it changes, rowid marks mean nothing."""
    marks: dict[str, int]
    """Max rowid of each insert-only table at the read."""
    runs: dict[str, bytes]
    """Run id -> 16 bytes: an 8-byte digest of its runs row, then one of its tags."""
    witness: dict[str, Any] = field(default_factory=dict)
    """Pages of ``runs`` and ``tags`` and where the WAL stood (:mod:`.sqlitepages`); empty
    when unknown, which only costs the next read a run-by-run comparison."""

    def to_row(self) -> list[Any]:
        return [self.fingerprint, self.identity, self.marks, self.runs, self.witness]

    @classmethod
    def from_row(cls, row: Any) -> SqliteCursor:
        """The cursor :meth:`to_row` gave (msgpack may turn its lists into tuples)."""
        return cls(row[0], row[1], dict(row[2]), dict(row[3]),
                   dict(row[4]) if len(row) > 4 and row[4] else {})


@dataclass(slots=True)
class SqliteScan:
    """What one read of a database found."""

    experiments: list[Experiment]
    """Every experiment (there are few); empty when the read failed."""
    runs: list[Run]
    """Every run when ``full``, else only the runs that changed since the cursor."""
    removed: list[str]
    """Ids of runs in the cursor that are gone from the database (hard-deleted by gc)."""
    warnings: list[str]
    """Store-level problems.  With ``full`` False and nothing else, the read failed: keep what
    you have and retry later (the file's fingerprint still differs from the cursor's)."""
    fingerprint: str
    full: bool
    """True when ``runs`` holds every run: replace this source's runs instead of merging."""
    schema: str = ""
    """The database's alembic revision."""
    compared: tuple[str, ...] = ()
    """Tables (``runs``, ``tags``) whose rows an incremental read compared run by run because
    their pages changed; empty when neither did (and on a full read)."""
    unreadable: str = ""
    """Why the read failed when the database cannot be read at all (not a regular file,
    truncated, corrupt, not MLflow's), as opposed to locked for a moment; "" otherwise."""


def fingerprint(db_path: str) -> str:
    """A string that changes on every commit to the database; no SQLite connection needed.

    Rollback-journal mode: the header's file change counter (offset 24) goes up at every
    commit.  WAL mode: commits touch only ``-wal``, and the first wal-index header in ``-shm``
    (48 bytes: ``iChange`` counts transactions, plus ``mxFrame`` and salts) changes with each.
    Size and mtime of the files add a second witness.  The rest of ``-shm`` (readers' marks,
    which our own reads move) is left out, so reading never changes the fingerprint.
    """
    parts = []
    for suffix, offset, size in (("", 24, 4), ("-wal", 0, 0), ("-shm", 0, 48)):
        path = db_path + suffix
        try:
            fd, st = open_regular(path)  # never blocks: mlflow.db may have become a FIFO
        except Refused:
            parts.append("!")
            continue
        except OSError:
            parts.append("-")
            continue
        try:
            head = os.pread(fd, size, offset).hex() if size else ""
        except OSError:
            head = "?"
        finally:
            os.close(fd)
        stamp = "" if suffix == "-shm" else f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:"
        parts.append(stamp + head)
    return "|".join(parts)


def read_store(db_path: str, source_id: str) -> SqliteScan:
    """Read every experiment and run of ``db_path``; problems come back as warnings."""
    return read_changed(db_path, source_id, None)[0]


def read_changed(db_path: str, source_id: str,
                 since: SqliteCursor | None) -> tuple[SqliteScan, SqliteCursor | None]:
    """Read the runs that changed since ``since`` (all runs when it is None or stale).

    Returns the scan and the cursor for the next call; when the read fails, the scan holds
    only warnings and the cursor is ``since`` unchanged.
    """
    fp = fingerprint(db_path)
    enabled = gc.isenabled()
    gc.disable()  # the read builds ~30 small objects per run
    try:
        return _in_read_transaction(db_path, lambda c: _read(c, db_path, source_id, since, fp))
    except SqliteStoreError as exc:
        return SqliteScan([], [], [], [str(exc)], "", False,
                          unreadable="" if exc.locked else exc.reason), since
    finally:
        if enabled:
            gc.enable()


def metric_history(db_path: str, run_id: str, key: str) -> list[tuple[int, float, int]]:
    """Every logged point of one metric as ``(timestamp, value, step)``, in MLflow's order.

    MLflow's ``get_metric_history`` orders by timestamp, step, value (the stored value, so a
    NaN sorts as 0); ``is_nan`` and rowid only make ties deterministic.

    Raises:
        SqliteStoreError: the database is missing, corrupt, not MLflow's or stayed locked.
    """

    def query(conn: sqlite3.Connection) -> list[tuple[int, float, int]]:
        cols = _Schema(conn).cols["metrics"]
        step = "step" if "step" in cols else "0"
        nan = "is_nan" if "is_nan" in cols else "0"
        rows = conn.execute(
            f"SELECT timestamp, value, {step}, {nan} FROM metrics WHERE run_uuid = ? AND key = ?"
            f" ORDER BY timestamp, {step}, value, {nan}, rowid", (run_id, key))
        return [(ts, _NAN if isnan else float(v), st) for ts, v, st, isnan in rows]

    return _in_read_transaction(db_path, query)


# -- reading --------------------------------------------------------------------------------

def _in_read_transaction(db_path: str, work: Callable[[sqlite3.Connection], Any]) -> Any:
    """Run ``work`` in one read transaction, retrying while a writer holds the database."""
    uri = f"file:{quote(os.path.abspath(db_path))}?mode=ro"
    last = ""
    for attempt in range(_ATTEMPTS):
        if attempt:
            time.sleep(0.05 * attempt)
        # SQLite opens the file itself, without O_NONBLOCK: on a FIFO it would wait for a
        # writer forever, holding a worker thread.  Only a regular file is handed to it.
        _check_files(db_path)
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise SqliteStoreError(f"cannot open {db_path} read-only: {exc}",
                                   f"cannot open it: {exc}") from exc
        try:
            conn.execute("BEGIN")
            return work(conn)  # closing the connection below ends the transaction
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise SqliteStoreError(f"cannot read {db_path}: {exc}", str(exc)) from exc
            last = str(exc)
        except sqlite3.DatabaseError as exc:
            raise SqliteStoreError(
                f"cannot read {db_path}: {exc} (truncated, corrupt or not a database);"
                " restore it from a backup or remove it from the configuration",
                f"{exc}: truncated, corrupt or not a database") from exc
        finally:
            conn.close()
    raise SqliteStoreError(f"{db_path} stayed locked by a writer ({last}); read it again later",
                           locked=True)


def _check_files(db_path: str) -> None:
    """Raise :class:`SqliteStoreError` unless the database and the side files SQLite may open
    (``-wal``, ``-shm``, ``-journal``) are regular files, so that no open of SQLite's blocks."""
    try:
        check_regular(db_path)
    except Refused as exc:
        raise SqliteStoreError(f"cannot read {db_path}: it is {exc.detail}",
                               f"it is {exc.detail}") from exc
    except OSError as exc:
        raise SqliteStoreError(f"cannot open {db_path} read-only: {exc.strerror or exc}",
                               f"cannot open it: {exc.strerror or exc}") from exc
    for suffix in ("-wal", "-shm", "-journal"):
        try:
            check_regular(db_path + suffix)
        except Refused as exc:
            raise SqliteStoreError(f"cannot read {db_path}: its {suffix[1:]} file is"
                                   f" {exc.detail}", f"its {suffix[1:]} file is {exc.detail}"
                                   ) from exc
        except OSError:
            pass  # absent: SQLite makes or skips it


class _Schema:
    """Tables and columns present, the alembic revision, and what they imply."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        wanted = tables & (set(_REQUIRED) | set(_OPTIONAL))
        self.cols = {t: {r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')} for t in wanted}
        self.revision = ""
        if "alembic_version" in tables:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            self.revision = row[0] if row else ""
        elif "runs" not in tables:
            raise SqliteStoreError("not an MLflow tracking database: no alembic_version or runs"
                                   " table; point octostore at mlflow.db or remove this path")
        lacking = [f"{t}.{c}" for t, cs in _REQUIRED.items() for c in cs
                   if c not in self.cols.get(t, ())]
        if lacking:
            raise SqliteStoreError(f"not an MLflow tracking database octostore can read (revision"
                                   f" {self.revision or 'none'}): no {', '.join(lacking)}")
        self.warnings: list[str] = []
        if self.revision != MLFLOW_HEAD:
            absent = []
            for t, cs in _OPTIONAL.items():
                have = self.cols.get(t)
                absent += [t] if have is None else [f"{t}.{c}" for c in cs if c not in have]
            self.warnings.append(
                f"schema revision {self.revision or 'unknown'} is not MLflow 3.18.0's"
                f" {MLFLOW_HEAD}; read with the tables and columns it has"
                + (f" (missing: {', '.join(absent)})" if absent else ""))

    def col(self, table: str, name: str, default: str = "NULL") -> str:
        return name if name in self.cols.get(table, ()) else default


def _rows(conn: sqlite3.Connection, sql: str, ids: list[str] | None, col: str) -> Iterable[Any]:
    """Rows of ``sql`` (which holds ``{w}``) for all runs, or for ``ids`` in chunks.

    Cursors are chained rather than re-yielded so that rows never pass through Python code.
    """
    if ids is None:
        return conn.execute(sql.format(w="1"))
    return chain.from_iterable(
        conn.execute(sql.format(w=f"{col} IN ({','.join('?' * len(ids[i:i + _CHUNK]))})"),
                     ids[i:i + _CHUNK])
        for i in range(0, len(ids), _CHUNK))


def _kv(rows: Iterable[Any]) -> dict[Any, dict[str, str]]:
    out: dict[Any, dict[str, str]] = {}
    for owner, key, value in rows:
        d = out.get(owner)
        if d is None:
            d = out[owner] = {}
        d[key] = value
    return out


_TAG_SIGS = (
    "SELECT run_uuid, ifnull(group_concat(key, char(0)), '') || char(1) || ifnull(group_concat("
    "length(ifnull(value, ''))), '') || char(1) || ifnull(group_concat(ifnull(value, ''), ''), '')"
    " FROM tags GROUP BY run_uuid")
"""Each run's tags as "keys \\x01 lengths \\x01 values" in rowid order (the run_uuid index
gives that order), unambiguous because MLflow's keys hold no control characters.
:func:`_tag_sig` spells the same string from tags already read (a stray NUL or BLOB only makes
that run look changed when the tags next change)."""


def _tag_sig(tags: dict[str, str]) -> str:
    return ("\0".join(tags) + "\x01" + ",".join(str(len(v)) for v in tags.values()) + "\x01"
            + "".join(tags.values()))


def _digest(row: tuple[Any, ...]) -> bytes:
    return hashlib.blake2b(repr(row).encode(), digest_size=8).digest()


_NO_TAGS = _digest((_tag_sig({}),))


def _read(conn: sqlite3.Connection, db_path: str, source_id: str,
          since: SqliteCursor | None, fp: str) -> tuple[SqliteScan, SqliteCursor]:
    wal_before = sqlitepages.shm_header(db_path)  # before the first query takes the snapshot
    s = _Schema(conn)
    version = conn.execute("PRAGMA schema_version").fetchone()[0]
    identity = f"{_FORMAT}:{os.stat(db_path).st_ino}:{s.revision}:{version}"
    experiments = _experiments(conn, s, source_id)
    # max(rowid) alone is O(log n); wrapped in ifnull() SQLite would scan the table.
    marks = {t: conn.execute(f"SELECT max(rowid) FROM {t}").fetchone()[0] or 0
             for t in _MARKED if t in s.cols}
    full = (since is None or since.identity != identity
            or any(m < since.marks.get(t, 0) for t, m in marks.items()))
    moved, witness = sqlitepages.witness(conn, db_path, wal_before,
                                         None if since is None or full else since.witness)
    cols = ", ".join(f"r.{c}" if c in s.cols["runs"] else "NULL" for c in _RUN_COLS)
    sql = f"SELECT r.run_uuid, {cols} FROM runs r WHERE {{w}}"
    removed: list[str] = []
    rows: dict[str, tuple[Any, ...]] | None = None
    if not full:
        assert since is not None
        old = since.runs
        digests = dict(old)
        changed: set[str] = set()
        if "runs" in moved:
            rows = {row[0]: row for row in _rows(conn, sql, None, "r.run_uuid")}
            removed = [r for r in old if r not in rows]
            digests = {}
            for rid, row in rows.items():
                d, was = _digest(row), old.get(rid, b"")
                if was.startswith(d):
                    digests[rid] = was
                else:  # a new run's tag part is added below
                    digests[rid] = d + was[8:]
                    changed.add(rid)
        if "tags" in moved:
            sigs = {rid: _digest((sig,)) for rid, sig in conn.execute(_TAG_SIGS)}
            for rid, d in digests.items():
                tag = sigs.get(rid, _NO_TAGS)
                if len(d) != 16 or not d.endswith(tag):
                    digests[rid] = d[:8] + tag
                    changed.add(rid)
        for table in marks:
            new = conn.execute(_MARKED[table], (since.marks.get(table, 0),))
            changed.update(rid for (rid,) in new if rid in digests)
        ids = sorted(changed)
        if rows is None:  # runs unchanged: only the changed runs' rows are needed
            rows = {row[0]: row for row in _rows(conn, sql, ids, "r.run_uuid")}
        # gc deleted rows (rowids may be reused below the marks), or a run the witness vouched
        # for is missing (never seen; reading everything is the safe answer).
        full = bool(removed) or any(rid not in rows for rid in ids)
    if full:
        if rows is None or not removed:
            rows = {row[0]: row for row in _rows(conn, sql, None, "r.run_uuid")}
            removed = [] if since is None else [r for r in since.runs if r not in rows]
        runs = _runs(conn, s, rows, None, source_id, db_path)
        # the tag part from the tags just read (the same string _TAG_SIGS spells)
        digests = {r.run_id: _digest(rows[r.run_id]) + _digest((_tag_sig(r.tags),))
                   for r in runs}
    else:
        runs = _runs(conn, s, rows, ids, source_id, db_path)
        for run in runs:  # a new run whose tags were not compared: from the tags just read
            if len(digests[run.run_id]) != 16:
                digests[run.run_id] = digests[run.run_id][:8] + _digest((_tag_sig(run.tags),))
    scan = SqliteScan(experiments, runs, removed, s.warnings, fp, full, s.revision,
                      () if full else tuple(t for t in sqlitepages.WATCHED if t in moved))
    return scan, SqliteCursor(fp, identity, marks, digests, witness)


def _experiments(conn: sqlite3.Connection, s: _Schema, source_id: str) -> list[Experiment]:
    c = [s.col("experiments", n) for n in _OPTIONAL["experiments"]]
    tags = _kv(conn.execute("SELECT experiment_id, key, ifnull(value, '') FROM experiment_tags")
               ) if "experiment_tags" in s.cols else {}
    return [
        Experiment(experiment_id=str(eid), name=name, lifecycle_stage=stage or ACTIVE,
                   artifact_location=loc or "", creation_time=created, last_update_time=updated,
                   tags=tags.get(eid, {}), source=source_id)
        for eid, name, loc, stage, created, updated in conn.execute(
            f"SELECT experiment_id, name, {', '.join(c)} FROM experiments ORDER BY experiment_id")
    ]


def _runs(conn: sqlite3.Connection, s: _Schema, rows: dict[str, tuple[Any, ...]],
          ids: list[str] | None, source_id: str, db_path: str) -> list[Run]:
    if ids == []:
        return []
    sql = "SELECT run_uuid, key, ifnull(value, '') FROM params WHERE {w}"
    params = _kv(_rows(conn, sql, ids, "run_uuid"))
    sql = "SELECT run_uuid, key, ifnull(CAST(value AS TEXT), '') FROM tags WHERE {w} ORDER BY rowid"
    tags = _kv(_rows(conn, sql, ids, "run_uuid"))  # in rowid order, as _tag_sig needs
    metrics = _latest(conn, s, ids)
    inputs = _inputs(conn, s, ids)
    out = []
    for rid in rows if ids is None else ids:
        name, status, start, end, user, uri, stage, exp, deleted = rows[rid][1:10]
        rtags = tags.get(rid, {})
        out.append(Run(
            run_id=rid, experiment_id="" if exp is None else str(exp),
            run_name=name or rtags.get("mlflow.runName", ""), status=status or "",
            lifecycle_stage=stage or ACTIVE, start_time=start, end_time=end, user_id=user or "",
            artifact_uri=uri or "", params=params.get(rid, {}), metrics=metrics.get(rid, {}),
            tags=rtags, inputs=inputs.get(rid, []), deleted_time=deleted, source=source_id,
            location=db_path))
    return out


def _latest(conn: sqlite3.Connection, s: _Schema,
            ids: list[str] | None) -> dict[str, dict[str, LatestMetric]]:
    """Latest metrics from ``latest_metrics``, or for schemas older than it from ``metrics``,
    picked as MLflow picks: the max by (step, timestamp, stored value; a NaN is stored as 0)."""
    t = "latest_metrics" if "latest_metrics" in s.cols else "metrics"
    sql = (f"SELECT run_uuid, key, value, {s.col(t, 'timestamp')}, {s.col(t, 'step', '0')},"
           f" {s.col(t, 'is_nan', '0')} FROM {t} WHERE {{w}}")
    out: dict[str, dict[str, LatestMetric]] = {}
    for rid, key, value, ts, step, nan in _rows(conn, sql, ids, "run_uuid"):
        d = out.get(rid)
        if d is None:
            d = out[rid] = {}
        cur = d.get(key)  # set already only when reading a full history
        if cur is None or (step, ts, value) > (cur[2], cur[1], cur[0] if cur[0] == cur[0] else 0.0):
            d[key] = (_NAN if nan else float(value), ts, step)
    return out


def _inputs(conn: sqlite3.Connection, s: _Schema,
            ids: list[str] | None) -> dict[str, list[dict[str, Any]]]:
    """Dataset inputs per run, keyed like MLflow's ``Dataset`` plus ``tags`` (input tags)."""
    if "inputs" not in s.cols or "datasets" not in s.cols:
        return {}
    where = " WHERE i.destination_type = 'RUN' AND {w}"
    sql = ("SELECT t.input_uuid, t.name, ifnull(t.value, '') FROM input_tags t"
           " JOIN inputs i ON i.input_uuid = t.input_uuid" + where)
    tags = _kv(_rows(conn, sql, ids, "i.destination_id")) if "input_tags" in s.cols else {}
    cols = ", ".join(s.col("datasets", "dataset_" + c) for c in _DATASET)
    sql = (f"SELECT i.destination_id, i.input_uuid, d.name, d.digest, {cols} FROM inputs i"
           " JOIN datasets d ON d.dataset_uuid = i.source_id" + where + " ORDER BY i.rowid")
    out: dict[str, list[dict[str, Any]]] = {}
    for rid, iid, name, digest, *rest in _rows(conn, sql, ids, "i.destination_id"):
        out.setdefault(rid, []).append({"name": name, "digest": digest, **dict(zip(_DATASET, rest)),
                                        "tags": tags.get(iid, {})})
    return out
