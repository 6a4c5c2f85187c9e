"""The SQLite reader against real MLflow 3.18.0 writing real ``mlflow.db`` files.

Every expectation comes from MLflow's own answers (``search_runs``, ``search_experiments``,
``get_metric_history`` and, for ``deleted_time`` which no API returns, MLflow's ORM), never
from what the reader printed.  MLflow logs once per module; later tests work on copies.
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from octostored.model import Experiment, Run
from octostored.sources import sqlitepages
from octostored.sources.sqlitestore import (
    SqliteCursor,
    SqliteStoreError,
    fingerprint,
    metric_history,
    read_changed,
    read_store,
)

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import DatasetInput, InputTag, ViewType  # noqa: E402
from mlflow.store.tracking.dbmodels.models import SqlRun  # noqa: E402
from mlflow.tracking._tracking_service import utils as tracking_utils  # noqa: E402

SRC = "sqlite:test"
NAN, INF = float("nan"), float("inf")


# -- MLflow's view -----------------------------------------------------------------------------

def mlflow_experiments(client: MlflowClient) -> list[Experiment]:
    return sorted(
        (Experiment(experiment_id=e.experiment_id, name=e.name, lifecycle_stage=e.lifecycle_stage,
                    artifact_location=e.artifact_location, creation_time=e.creation_time,
                    last_update_time=e.last_update_time, tags=dict(e.tags), source=SRC)
         for e in client.search_experiments(view_type=ViewType.ALL)),
        key=lambda e: int(e.experiment_id))


def mlflow_runs(client: MlflowClient, db: str) -> dict[str, Run]:
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    found = client.search_runs(ids, run_view_type=ViewType.ALL, max_results=50000)
    with client._tracking_client.store.ManagedSessionMaker() as session:
        deleted = dict(session.query(SqlRun.run_uuid, SqlRun.deleted_time).all())
    out = {}
    for r in found:
        i = r.info
        out[i.run_id] = Run(
            run_id=i.run_id, experiment_id=i.experiment_id, run_name=i.run_name, status=i.status,
            lifecycle_stage=i.lifecycle_stage, start_time=i.start_time, end_time=i.end_time,
            user_id=i.user_id, artifact_uri=i.artifact_uri, params=dict(r.data.params),
            # RunData keeps the latest Metric entities (value, timestamp, step) here.
            metrics={m.key: (m.value, m.timestamp, m.step) for m in r.data._metric_objs},
            tags=dict(r.data.tags),
            inputs=[{"name": d.dataset.name, "digest": d.dataset.digest,
                     "source_type": d.dataset.source_type, "source": d.dataset.source,
                     "schema": d.dataset.schema, "profile": d.dataset.profile,
                     "tags": {t.key: t.value for t in d.tags}} for d in r.inputs.dataset_inputs],
            deleted_time=deleted[i.run_id], source=SRC, location=db)
    return out


def plain(record: Any) -> dict[str, Any]:
    """A record as a dict where NaN equals NaN and input order does not matter."""
    d = asdict(record)
    if "metrics" in d:
        d["metrics"] = {k: tuple("NaN" if isinstance(x, float) and math.isnan(x) else x for x in v)
                        for k, v in d["metrics"].items()}
        d["inputs"] = sorted(d["inputs"], key=lambda i: (i["name"], i["digest"]))
    return d


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[Any, ...]]:
    return [(m.timestamp, "NaN" if math.isnan(m.value) else m.value, m.step)
            for m in client.get_metric_history(run_id, key)]


def ours(points: list[tuple[int, float, int]]) -> list[tuple[Any, ...]]:
    return [(t, "NaN" if math.isnan(v) else v, s) for t, v, s in points]


# -- one store, logged once ------------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import numpy as np

    folder = tmp_path_factory.mktemp("sqlitestore")
    db = str(folder / "mlflow.db")
    uri = "sqlite:///" + db
    previous = tracking_utils._tracking_uri
    mlflow.set_tracking_uri(uri)
    try:
        client = MlflowClient(uri)
        exp = client.create_experiment("octo-a", tags={"team": "vision"})
        ids: dict[str, str] = {}
        with mlflow.start_run(experiment_id=exp, run_name="parent") as parent:
            ids["parent"] = parent.info.run_id
            mlflow.log_params({"lr": "0.1", "model": "rf"})
            for step, value in enumerate([1.0, 0.5, NAN, 0.25]):
                mlflow.log_metric("loss", value, step=step)
            mlflow.log_metric("acc", INF, step=0)
            mlflow.log_metric("acc", -INF, step=1)
            mlflow.log_metric("gap", 0.3, step=0)
            mlflow.log_metric("gap", NAN, step=5)
            mlflow.set_tag("owner", "ada")
            data = mlflow.data.from_numpy(np.arange(6).reshape(3, 2), name="train-set")
            mlflow.log_input(data, context="training", tags={"split": "a"})
            with mlflow.start_run(run_name="child", nested=True) as child:
                ids["child"] = child.info.run_id
                mlflow.log_param("fold", "1")
                mlflow.log_metric("loss", 0.9)
                mlflow.set_tag("scratch", "x")
        failing = mlflow.start_run(experiment_id=exp, run_name="failing")
        ids["failed"] = failing.info.run_id
        mlflow.log_param("x", "y")
        mlflow.end_run("FAILED")
        ids["running"] = client.create_run(exp, run_name="still-running").info.run_id
        client.log_metric(ids["running"], "loss", 2.0, step=0)
        ids["deleted"] = client.create_run(exp, run_name="binned").info.run_id
        client.set_terminated(ids["deleted"])
        client.delete_run(ids["deleted"])
        gone = client.create_experiment("octo-b")
        client.set_experiment_tag(gone, "k", "v")
        ids["in_deleted_exp"] = client.create_run(gone, run_name="orphan").info.run_id
        client.delete_experiment(gone)
        yield {"db": db, "uri": uri, "client": client, "ids": ids, "exp": exp, "data": data,
               "runs": mlflow_runs(client, db), "experiments": mlflow_experiments(client)}
    finally:
        mlflow.set_tracking_uri(previous)


def copy_of(store: dict[str, Any], tmp_path: Path, name: str = "copy.db") -> str:
    path = str(tmp_path / name)
    shutil.copy(store["db"], path)
    return path


# -- agreement with MLflow -------------------------------------------------------------------

def alembic_head_of_installed_mlflow() -> str:
    """The newest schema revision the installed MLflow migrates to (MLflow's own scripts)."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db_migrations import __file__ as migrations

    return ScriptDirectory(os.path.dirname(migrations)).get_current_head()


def test_checked_schema_is_the_installed_mlflows() -> None:
    """The rules were checked against the MLflow we test with: a bump must re-check them."""
    from octostored.sources.sqlitestore import MLFLOW_HEAD

    assert MLFLOW_HEAD == alembic_head_of_installed_mlflow()


def test_reads_what_mlflow_returns(store: dict[str, Any]) -> None:
    expected = store["runs"]
    # The fixture covers what it claims to (checked on MLflow's side).
    statuses = {r.status for r in expected.values()}
    assert {"FINISHED", "FAILED", "RUNNING"} <= statuses
    assert {r.lifecycle_stage for r in expected.values()} == {"active", "deleted"}
    assert expected[store["ids"]["parent"]].inputs
    assert expected[store["ids"]["child"]].tags["mlflow.parentRunId"] == store["ids"]["parent"]
    assert expected[store["ids"]["deleted"]].deleted_time is not None

    scan = read_store(store["db"], SRC)
    assert scan.warnings == [] and scan.full and scan.removed == []
    assert scan.schema == alembic_head_of_installed_mlflow()
    assert [plain(e) for e in scan.experiments] == [plain(e) for e in store["experiments"]]
    assert sorted(r.run_id for r in scan.runs) == sorted(expected)
    for run in scan.runs:
        assert plain(run) == plain(expected[run.run_id]), run.run_name


def test_latest_metrics_decode_nan_and_inf_like_mlflow(store: dict[str, Any]) -> None:
    run = next(r for r in read_store(store["db"], SRC).runs if r.run_id == store["ids"]["parent"])
    mine = plain(run)["metrics"]
    assert mine == plain(store["runs"][run.run_id])["metrics"]
    assert mine["gap"][0] == "NaN"  # NaN at the highest step is the latest
    # MLflow stores -inf as -max float and returns it as such.
    assert mine["acc"][0] == store["runs"][run.run_id].metrics["acc"][0] < -1e308


def test_metric_history_matches_get_metric_history(store: dict[str, Any]) -> None:
    client, db = store["client"], store["db"]
    checked = 0
    for run in store["runs"].values():
        for key in run.metrics:
            assert ours(metric_history(db, run.run_id, key)) == history(client, run.run_id, key)
            checked += 1
    assert checked >= 5
    assert metric_history(db, store["ids"]["parent"], "no-such-metric") == []


# -- never in MLflow's way, never raising ----------------------------------------------------

def test_reads_beside_an_uncommitted_write(store: dict[str, Any]) -> None:
    db, run_id = store["db"], store["ids"]["parent"]
    before, cursor = read_changed(db, SRC, None)
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO tags (key, value, run_uuid) VALUES ('uncommitted', 'x', ?)",
                       (run_id,))
        writer.execute("UPDATE runs SET status = 'KILLED' WHERE run_uuid = ?", (run_id,))
        started = time.monotonic()
        scan = read_store(db, SRC)
        changed, _ = read_changed(db, SRC, cursor)
        assert time.monotonic() - started < 1.0
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert scan.warnings == []
    assert [plain(r) for r in scan.runs] == [plain(r) for r in before.runs]
    assert changed.runs == [] and not changed.full and changed.warnings == []


def test_locked_database_is_a_warning(store: dict[str, Any], tmp_path: Path) -> None:
    db = copy_of(store, tmp_path)
    first, cursor = read_changed(db, SRC, None)
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")  # what a committing writer holds in rollback mode
        started = time.monotonic()
        scan, kept = read_changed(db, SRC, cursor)
        waited = time.monotonic() - started
        with pytest.raises(SqliteStoreError, match="locked"):
            metric_history(db, store["ids"]["parent"], "loss")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert waited < 1.5
    assert kept is cursor and scan.runs == [] and not scan.full
    assert "locked" in scan.warnings[0]


def _truncated(path: str) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) // 3)


def _not_mlflow(path: str) -> None:
    os.remove(path)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")


def _garbage(path: str) -> None:
    Path(path).write_bytes(os.urandom(8192))


def _missing(path: str) -> None:
    os.remove(path)


@pytest.mark.parametrize("spoil", [_truncated, _not_mlflow, _garbage, _missing])
def test_unreadable_files_are_warnings(store: dict[str, Any], tmp_path: Path, spoil: Any) -> None:
    db = copy_of(store, tmp_path)
    spoil(db)
    scan = read_store(db, SRC)
    assert scan.warnings and scan.runs == [] and not scan.full
    assert not os.path.exists(db) or spoil is not _missing  # never created
    with pytest.raises(SqliteStoreError):
        metric_history(db, store["ids"]["parent"], "loss")


def test_older_schema_reads_what_it_has(store: dict[str, Any], tmp_path: Path) -> None:
    db = copy_of(store, tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'bd07f7e963c5'")
        conn.execute("ALTER TABLE runs DROP COLUMN deleted_time")
        for table in ("latest_metrics", "input_tags", "inputs"):
            conn.execute(f"DROP TABLE {table}")
    scan = read_store(db, SRC)
    assert len(scan.warnings) == 1
    for word in ("bd07f7e963c5", "runs.deleted_time", "latest_metrics", "inputs"):
        assert word in scan.warnings[0]
    for run in scan.runs:  # latest metrics are then chosen from the history, as MLflow does
        want = plain(store["runs"][run.run_id])
        want.update(deleted_time=None, inputs=[], location=db)
        assert plain(run) == want


# -- change detection ------------------------------------------------------------------------

@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_read_changed_follows_mlflow_commits(
        store: dict[str, Any], tmp_path: Path, journal: str) -> None:
    db = copy_of(store, tmp_path, f"{journal}.db")
    with sqlite3.connect(db) as conn:
        assert conn.execute(f"PRAGMA journal_mode={journal}").fetchone()[0] == journal
    client = MlflowClient("sqlite:///" + db)
    ids = store["ids"]
    scan, cursor = read_changed(db, SRC, None)
    assert scan.full and len(scan.runs) == len(store["runs"])
    scan, cursor = read_changed(db, SRC, cursor)
    assert scan.runs == [] and scan.removed == [] and not scan.full
    quiet = fingerprint(db)
    read_changed(db, SRC, cursor)
    assert fingerprint(db) == quiet, "our own reads must not look like commits"

    data = store["data"]._to_mlflow_entity()
    new: dict[str, str] = {}
    runs, tags, both = ("runs",), ("tags",), ("runs", "tags")
    # The last column: the tables the read compared run by run (their pages changed); what
    # MLflow's insert-only writes touch is found from the rowid marks alone.
    steps = [
        ("metric on a running run", lambda: client.log_metric(ids["running"], "loss", 0.1, step=7),
         {ids["running"]}, ()),
        ("tag overwritten in place", lambda: client.set_tag(ids["parent"], "owner", "grace"),
         {ids["parent"]}, tags),
        ("same length, in place", lambda: client.set_tag(ids["parent"], "owner", "grete"),
         {ids["parent"]}, tags),
        ("tag deleted", lambda: client.delete_tag(ids["child"], "scratch"), {ids["child"]}, tags),
        ("param added", lambda: client.log_param(ids["failed"], "extra", "1"), {ids["failed"]},
         ()),
        ("dataset input", lambda: client.log_inputs(
            ids["failed"], [DatasetInput(data, [InputTag("mlflow.data.context", "eval")])]),
         {ids["failed"]}, ()),
        ("run finished", lambda: client.set_terminated(ids["running"], "KILLED"),
         {ids["running"]}, runs),
        ("run renamed", lambda: client.update_run(ids["child"], name="kid"), {ids["child"]}, both),
        ("run restored", lambda: client.restore_run(ids["deleted"]), {ids["deleted"]}, runs),
        ("new run", lambda: new.update(run=client.create_run(store["exp"]).info.run_id), None,
         both),
        ("metric below the latest", lambda: client.log_metric(ids["parent"], "loss", 9.0, step=1,
                                                              timestamp=1), {ids["parent"]}, ()),
    ]
    for what, act, want, compared in steps:
        before = fingerprint(db)
        act()
        assert fingerprint(db) != before, what
        scan, cursor = read_changed(db, SRC, cursor)
        assert not scan.full and scan.removed == [] and scan.warnings == [], what
        assert {r.run_id for r in scan.runs} == (want or {new["run"]}), what
        assert scan.compared == compared, what
        expected = mlflow_runs(client, db)
        for run in scan.runs:
            assert plain(run) == plain(expected[run.run_id]), what
    # MLflow's pooled connection kept one WAL generation: the witness went by its frames.
    assert journal != "wal" or cursor.witness["frame"] > 0

    seen = set()
    for i in range(5):  # commits within one mtime tick still change the fingerprint
        client.log_metric(ids["running"], "burst", float(i), step=i)
        seen.add(fingerprint(db))
    assert len(seen) == 5

    client.delete_run(ids["child"])
    client._tracking_client.store._hard_delete_run(ids["child"])  # what `mlflow gc` calls
    scan, cursor = read_changed(db, SRC, cursor)
    assert scan.removed == [ids["child"]] and scan.full
    assert sorted(r.run_id for r in scan.runs) == sorted(mlflow_runs(client, db))
    assert [plain(e) for e in scan.experiments] == [plain(e) for e in mlflow_experiments(client)]

    writer = sqlite3.connect(db, isolation_level=None)  # an uncommitted write stays unseen
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO params VALUES ('hidden', '1', ?)", (ids["parent"],))
        started = time.monotonic()
        scan, _ = read_changed(db, SRC, cursor)
        assert time.monotonic() - started < 1.0 and scan.runs == [] and scan.warnings == []
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == journal


# -- the page witness: which of runs and tags need comparing ---------------------------------

def _wal_copy(store: dict[str, Any], tmp_path: Path, name: str) -> tuple[str, MlflowClient]:
    db = copy_of(store, tmp_path, name)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode=wal").fetchone()[0] == "wal"
    return db, MlflowClient("sqlite:///" + db)


def _expect(db: str, cursor: SqliteCursor, client: MlflowClient, want: set[str],
            compared: tuple[str, ...], what: str) -> SqliteCursor:
    """Read what changed since ``cursor``: exactly ``want``, as MLflow has them, found by
    comparing the tables ``compared`` run by run (and no others)."""
    scan, cursor = read_changed(db, SRC, cursor)
    assert not scan.full and scan.warnings == [] and scan.removed == [], what
    assert {r.run_id for r in scan.runs} == want, what
    assert scan.compared == compared, what
    expected = mlflow_runs(client, db)
    for run in scan.runs:
        assert plain(run) == plain(expected[run.run_id]), what
    return cursor


def _close_mlflow(client: MlflowClient) -> None:
    """What the end of MLflow's process does: close its pooled connections."""
    client._tracking_client.store.engine.dispose()


def test_witness_across_wal_checkpoints(store: dict[str, Any], tmp_path: Path) -> None:
    """A checkpoint that restarts the WAL drops the frames since the cursor: the witness then
    hashes the pages as the snapshot sees them (now in the main file) instead."""
    db, client = _wal_copy(store, tmp_path, "ckpt.db")
    ids = store["ids"]
    _, cursor = read_changed(db, SRC, None)
    writer = sqlite3.connect(db, isolation_level=None)

    def checkpoint() -> None:
        assert writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # not busy
        assert os.path.getsize(db + "-wal") == 0

    client.log_metric(ids["running"], "loss", 3.0, step=8)
    cursor = _expect(db, cursor, client, {ids["running"]}, (), "frames since the cursor")
    client.set_tag(ids["parent"], "owner", "adb")  # in place, same length
    checkpoint()
    client.log_metric(ids["running"], "loss", 3.0, step=9)  # the first frames of a new WAL
    cursor = _expect(db, cursor, client, {ids["parent"], ids["running"]}, ("tags",),
                     "tag edited, then the WAL restarted")
    client.log_metric(ids["running"], "loss", 3.0, step=10)
    checkpoint()
    client.log_metric(ids["parent"], "loss", 3.0, step=11)
    cursor = _expect(db, cursor, client, {ids["running"], ids["parent"]}, (),
                     "metrics only, across a restart")
    client.set_tag(ids["child"], "scratch", "y")
    checkpoint()
    cursor = _expect(db, cursor, client, {ids["child"]}, ("tags",), "read from an empty WAL")
    client.log_metric(ids["child"], "loss", 1.0, step=3)
    cursor = _expect(db, cursor, client, {ids["child"]}, (), "first frames after an empty WAL")
    client.set_terminated(ids["running"], "FAILED")
    _close_mlflow(client)
    writer.close()
    assert not os.path.exists(db + "-wal")  # the last connection checkpointed and removed it
    cursor = _expect(db, cursor, client, {ids["running"]}, ("runs",), "WAL gone")
    client.set_tag(ids["child"], "scratch", "z")
    _close_mlflow(client)
    cursor = _expect(db, cursor, client, {ids["child"]}, ("tags",), "WAL gone again")
    client.log_metric(ids["child"], "loss", 1.0, step=4)
    _close_mlflow(client)
    _expect(db, cursor, client, {ids["child"]}, (), "metric, WAL gone again")


def test_witness_across_journal_mode_switches(store: dict[str, Any], tmp_path: Path) -> None:
    db, client = _wal_copy(store, tmp_path, "switch.db")
    ids = store["ids"]
    _, cursor = read_changed(db, SRC, None)

    def switch(mode: str) -> None:
        _close_mlflow(client)  # changing the journal mode needs the only connection
        with sqlite3.connect(db) as conn:
            assert conn.execute(f"PRAGMA journal_mode={mode}").fetchone()[0] == mode

    client.log_metric(ids["running"], "loss", 3.0, step=8)
    cursor = _expect(db, cursor, client, {ids["running"]}, (), "WAL frames")
    client.set_tag(ids["parent"], "owner", "adb")
    switch("delete")
    cursor = _expect(db, cursor, client, {ids["parent"]}, ("tags",), "tag, then WAL -> delete")
    client.log_metric(ids["running"], "loss", 3.0, step=9)
    cursor = _expect(db, cursor, client, {ids["running"]}, (), "rollback journal")
    client.set_terminated(ids["running"], "KILLED")
    switch("wal")
    cursor = _expect(db, cursor, client, {ids["running"]}, ("runs",), "status, then -> WAL")
    switch("delete")
    switch("wal")
    cursor = _expect(db, cursor, client, set(), (), "switched back and forth, nothing else")
    client.set_tag(ids["child"], "scratch", "y")
    cursor = _expect(db, cursor, client, {ids["child"]}, ("tags",), "WAL again")
    client.log_metric(ids["child"], "loss", 1.0, step=3)
    _expect(db, cursor, client, {ids["child"]}, (), "metric in WAL again")


def test_witness_doubts_a_commit_racing_the_snapshot(
        store: dict[str, Any], tmp_path: Path) -> None:
    """A frame committed between the wal-index header read and the snapshot may or may not be
    in the snapshot: a page it holds counts as changed, never as unchanged."""
    db, client = _wal_copy(store, tmp_path, "race.db")
    parent = store["ids"]["parent"]
    client.log_metric(parent, "loss", 3.0, step=8)  # so the WAL has frames
    _, cursor = read_changed(db, SRC, None)
    assert cursor.witness["frame"] > 0 and len(cursor.witness["wal"]) == 16
    before = sqlitepages.shm_header(db)
    client.set_tag(parent, "owner", "adb")
    client.set_tag(parent, "owner", "ada")  # the rows are as before; their page was rewritten
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM runs").fetchone()  # the snapshot: both commits
        moved, _ = sqlitepages.witness(conn, db, before, cursor.witness)
        assert moved == {"tags"}  # the frames since the cursor name a tags page
        hashed = dict(cursor.witness, wal=b"")  # as after a restart: the pages are hashed
        moved, new = sqlitepages.witness(conn, db, before, hashed)
        assert moved == {"tags"} and new["tags"][1] == b""  # uncertain, so changed and unknown
        moved, new = sqlitepages.witness(conn, db, sqlitepages.shm_header(db), hashed)
        assert moved == set() and new["tags"] == list(cursor.witness["tags"])
    finally:
        conn.close()
    _expect(db, cursor, client, set(), ("tags",), "a tag set and set back")


def test_witness_survives_the_snapshot(store: dict[str, Any], tmp_path: Path) -> None:
    import msgpack

    db, client = _wal_copy(store, tmp_path, "snap.db")
    running = store["ids"]["running"]
    _, cursor = read_changed(db, SRC, None)
    client.log_metric(running, "loss", 3.0, step=8)
    _, cursor = read_changed(db, SRC, cursor)
    blob = msgpack.packb(cursor.to_row(), use_bin_type=True)
    back = SqliteCursor.from_row(msgpack.unpackb(blob, raw=False, use_list=False,
                                                 strict_map_key=False))
    assert back.witness["frame"] == cursor.witness["frame"] > 0
    pages = sum(len(cursor.witness[t][0]) for t in sqlitepages.WATCHED)  # 4 bytes a page
    assert len(msgpack.packb(cursor.witness, use_bin_type=True)) < pages + 120
    client.log_metric(running, "loss", 3.0, step=9)
    _expect(db, back, client, {running}, (), "cursor from the snapshot")
    # A cursor an older snapshot kept without a witness compares both tables, once.
    bare = SqliteCursor(back.fingerprint, back.identity, back.marks, back.runs)
    cursor = _expect(db, bare, client, {running}, ("runs", "tags"), "cursor without witness")
    client.log_metric(running, "loss", 3.0, step=10)
    cursor = _expect(db, cursor, client, {running}, (), "witness again")
    odd = SqliteCursor(cursor.fingerprint, cursor.identity, cursor.marks, cursor.runs,
                       dict(cursor.witness, tags=["not", "pages"]))
    client.log_metric(running, "loss", 3.0, step=11)
    _expect(db, odd, client, {running}, ("runs", "tags"), "a witness of another shape")


# -- speed -----------------------------------------------------------------------------------

def _bulk(db: str, n: int) -> str:
    """Add n runs x 12 params x 8 metrics x 10 tags, as MLflow lays them out, in one commit."""
    runs, params, tags, metrics, latest = [], [], [], [], []
    t0 = 1_700_000_000_000
    for i, rid in enumerate(sorted(uuid.uuid4().hex for _ in range(n))):
        runs.append((rid, f"bulk-{i}", "alice", "FINISHED", t0 + i, t0 + i + 9, "active",
                     f"/a/{rid}", 0))
        params += [(f"p{j}", str(i * j), rid) for j in range(12)]
        tags += [(f"t{j}", f"v{i}.{j}", rid) for j in range(10)]
        for j in range(8):
            metrics.append((f"m{j}", i / (j + 1), t0 + i, rid, 3, 0))
            latest.append((f"m{j}", i / (j + 1), t0 + i, 3, 0, rid))
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA cache_size = -400000")  # keep the index pages in memory
        conn.executemany("INSERT INTO runs (run_uuid, name, user_id, status, start_time,"
                         " end_time, lifecycle_stage, artifact_uri, experiment_id)"
                         " VALUES (?,?,?,?,?,?,?,?,?)", runs)
        conn.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?,?,?)", params)
        conn.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?,?,?)", tags)
        conn.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                         " VALUES (?,?,?,?,?,?)", metrics)
        conn.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan,"
                         " run_uuid) VALUES (?,?,?,?,?,?)", latest)
    return runs[n // 2][0]


def _best(fn: Any, times: int = 2) -> tuple[float, Any]:
    best, out = math.inf, None
    for _ in range(times):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def test_speed_10k_runs(store: dict[str, Any], tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    db = copy_of(store, tmp_path, "big.db")
    some = _bulk(db, 10_000)
    full_s, (scan, cursor) = _best(lambda: read_changed(db, SRC, None))
    assert len(scan.runs) == 10_000 + len(store["runs"]) and scan.warnings == []
    idle_s, (idle, _) = _best(lambda: read_changed(db, SRC, cursor))
    assert idle.runs == []
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE tags SET value = 'edited' WHERE run_uuid = ? AND key = 't3'", (some,))
    one_s, (one, _) = _best(lambda: read_changed(db, SRC, cursor))
    assert [r.run_id for r in one.runs] == [some] and one.runs[0].tags["t3"] == "edited"
    _, cursor = read_changed(db, SRC, cursor)
    with sqlite3.connect(db) as conn:  # what MLflow's log_metric commits
        conn.execute("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                     " VALUES ('m2', 0.5, 1, ?, 4, 0)", (some,))
        conn.execute("UPDATE latest_metrics SET value = 0.5, step = 4 WHERE run_uuid = ?"
                     " AND key = 'm2'", (some,))
    metric_s, (metric, _) = _best(lambda: read_changed(db, SRC, cursor))
    assert [r.run_id for r in metric.runs] == [some] and metric.compared == ()
    assert metric.runs[0].metrics["m2"][::2] == (0.5, 4)
    hist_s, _ = _best(lambda: metric_history(db, some, "m2"))
    with capsys.disabled():
        print(f"\n[sqlitestore] 10,000 runs x 12 params x 8 metrics x 10 tags:"
              f" read_store {full_s * 1000:.0f} ms, read_changed idle {idle_s * 1000:.0f} ms,"
              f" one tag edited {one_s * 1000:.0f} ms, one metric logged {metric_s * 1000:.0f}"
              f" ms, metric_history {hist_s * 1000:.1f} ms")
    # Bounds only catch a query-per-run regression: the figures above are the measurement, and
    # shared 2-core machines under load run 3-5x slower than idle ones.
    assert full_s < 8.0 and one_s < 3.0
