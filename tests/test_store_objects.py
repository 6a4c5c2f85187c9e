"""The store objects of a root (``octostored.index.stores``) on stores written by real MLflow.

Each store class gives, through the one interface, the same runs as the pure reader it wraps;
its snapshot state round-trips; and the kind registry covers every kind discovery returns.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from pathlib import Path

import pytest
from mlflow import MlflowClient

from octostored.index.history import HistoryCache
from octostored.index.state import RootIndex
from octostored.index.stores import (KINDS, RESCAN, TAKEN, FileStore, RemoteStore, SqliteStore,
                                     Store, make_store, store_for)
from octostored.sources import filestore, sqlitestore
from octostored.sources.discover import StoreRef, discover
from octostored.sources.remote import RemoteCursor, RemoteScan


def _log(client: MlflowClient, n: int = 4) -> list[str]:
    exp = client.create_experiment("wine")
    ids = []
    for i in range(n):
        rid = client.create_run(exp, run_name=f"run-{i}").info.run_id
        client.log_param(rid, "alpha", f"0.{i}")
        for step in range(3):
            client.log_metric(rid, "rmse", 1.0 / (i + 1) + step / 100, step=step)
        client.set_terminated(rid, "FINISHED")
        ids.append(rid)
    client.delete_run(ids[-1])
    return ids


@pytest.fixture
def file_store(tmp_path: Path) -> tuple[Path, MlflowClient, list[str]]:
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    return tmp_path / "mlruns", client, _log(client)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> tuple[Path, MlflowClient, list[str]]:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    return tmp_path / "mlflow.db", client, _log(client)


def rows(runs: list, sid: str) -> dict[str, tuple]:
    """Runs as comparable rows, stamped as read from store ``sid`` only."""
    out = {}
    for r in runs:
        r = dataclasses.replace(r, source=sid, sources=[sid], committed=False)
        out[r.run_id] = r.to_row()
    return out


def test_the_registry_covers_every_kind_discovery_returns(
        tmp_path: Path, file_store: tuple[Path, MlflowClient, list[str]],
        sqlite_store: tuple[Path, MlflowClient, list[str]]) -> None:
    root = tmp_path
    MlflowClient(tracking_uri=(root / ".octostore" / "runs").as_uri()).create_experiment("c")
    (root / ".octostore" / "remotes.toml").write_text('remotes = ["http://127.0.0.1:9/"]\n')
    refs, _ = discover(str(root))
    assert {r.kind for r in refs} == set(KINDS) == {"file", "sqlite", "remote"}
    assert any(r.committed for r in refs)
    for ref in refs:
        st = make_store(ref)
        assert isinstance(st, Store) and type(st) is KINDS[ref.kind] and st.kind == ref.kind
        assert st.ref is ref
    with pytest.raises(KeyError):
        make_store(StoreRef("ftp", str(root), "x"))


def test_a_file_store_reads_as_its_reader(file_store: tuple[Path, MlflowClient, list[str]]) -> None:
    path, client, ids = file_store
    sid = "mlruns"
    index = RootIndex(str(path.parent), "t")
    st = FileStore(StoreRef("file", str(path), sid))
    runs, exps, warnings = st.full_scan(index)
    scan = filestore.scan_store(str(path), sid)
    assert rows(runs, sid) == rows(scan.runs, sid) and set(rows(runs, sid)) == set(ids)
    assert [e.to_row() for e in exps] == [e.to_row() for e in scan.experiments]
    assert warnings == scan.warnings and st.last_read is not None
    assert all(r.sources == [sid] and r.committed is False for r in runs)
    assert set(st.runs) == set(ids)

    # A changed path routes to its run folder; reading it gives what the reader gives.
    run = next(r for r in runs if r.run_id == ids[0])
    client.log_metric(ids[0], "rmse", 0.01, step=3)
    item = st.route(os.path.join(run.location, "metrics", "rmse"))
    assert item == run.location
    delta = st.read_changed({item}, index)
    exp = filestore.read_experiment(os.path.dirname(run.location),
                                    os.path.basename(os.path.dirname(run.location)), sid)
    want, _ = filestore.read_run(run.location, exp, sid)
    assert rows(delta.runs, sid) == rows([want], sid)
    assert delta.expected == [ids[0]] and not delta.full and delta.warnings is None
    assert delta.runs[0].metrics["rmse"][0] == 0.01
    assert st.route(os.path.join(os.path.dirname(run.location), "meta.yaml")) is RESCAN
    assert st.route(os.path.join(os.path.dirname(run.location), "models", "m-1")) == TAKEN
    assert st.route(str(path) + "-other/x") is None
    assert st.watch_paths() == ((str(path),), ()) and st.watched and not st.lingers()

    # Histories, through the store, as the reader reads them.
    cache = HistoryCache()
    points, warns = st.metric_history(run, "rmse", cache)
    assert (points, warns) == (filestore.read_metric_history(run.location, "rmse")[0], [])
    assert store_for({sid: st}, run, "file") is st

    # Its snapshot state round-trips; a warm scan then re-reads nothing.
    again = FileStore(st.ref)
    again.load_state(_as_decoded(st.dump_state()))
    assert again.runs == st.runs
    index.runs = {r.run_id: r for r in runs}
    warm, _, _ = again.full_scan(index)
    assert rows(warm, sid).keys() == rows(runs, sid).keys()


def test_a_sqlite_store_reads_as_its_reader(
        sqlite_store: tuple[Path, MlflowClient, list[str]]) -> None:
    path, client, ids = sqlite_store
    sid = "mlflow.db"
    index = RootIndex(str(path.parent), "t")
    st = SqliteStore(StoreRef("sqlite", str(path), sid))
    runs, exps, warnings = st.full_scan(index)
    scan = sqlitestore.read_store(str(path), sid)
    assert rows(runs, sid) == rows(scan.runs, sid) and set(rows(runs, sid)) == set(ids)
    assert [e.to_row() for e in exps] == [e.to_row() for e in scan.experiments]
    assert warnings == [w if sid in w else f"{sid}: {w}" for w in scan.warnings]
    assert st.cursor is not None and st.last_read is not None

    index.runs = {r.run_id: r for r in runs}
    assert st.route(str(path) + "-wal") == str(path)
    assert st.route(str(path.parent / "other.txt")) is None
    assert st.watch_paths() == ((), (str(path.parent),))
    unchanged = st.read_changed({str(path)}, index)
    assert not unchanged.runs and unchanged.warnings is None
    client.log_metric(ids[1], "rmse", 0.02, step=9)
    delta = st.read_changed({str(path)}, index)
    assert [r.run_id for r in delta.runs] == [ids[1]] and not delta.full
    assert rows(delta.runs, sid)[ids[1]] == rows(sqlitestore.read_store(str(path), sid).runs,
                                                   sid)[ids[1]]

    run = index.runs[ids[1]]
    points, warns = st.metric_history(run, "rmse", HistoryCache())
    assert points == sqlitestore.metric_history(str(path), ids[1], "rmse") and warns == []
    assert len(points) == 4

    again = SqliteStore(st.ref)
    again.load_state(_as_decoded(st.dump_state()))
    assert _as_decoded(again.dump_state()) == _as_decoded(st.dump_state())
    assert again.cursor.fingerprint == st.cursor.fingerprint

    # A database that became a folder stays a store (its runs are its last known state).
    os.rename(path, str(path) + ".bak")
    os.mkdir(path)
    assert st.lingers()


def test_a_server_store_applies_its_scans(file_store: tuple[Path, MlflowClient, list[str]]) -> None:
    """The server's reader needs a live server (tests/test_remote_source.py); here its scans
    are made from real MLflow runs, and the store turns them into the changes to apply."""
    path, _, ids = file_store
    sid = "http://127.0.0.1:9/"
    scan0 = filestore.scan_store(str(path), "mlruns")
    index = RootIndex(str(path.parent), "t")
    st = RemoteStore(StoreRef("remote", sid, sid, uri=sid))
    assert not st.watched and st.watch_paths() == ((), ()) and st.route(str(path)) is None
    assert st.full_scan(index) == ([], [], [])
    src = object()
    st.remote = src  # type: ignore[assignment]
    cursor = RemoteCursor(sid, watermark=5, unfinished=[ids[0]], digests={ids[0]: "d"})
    full = RemoteScan(scan0.experiments, scan0.runs, [], [], full=True, ok=True, cursor=cursor)
    assert st.take((object(), full), index) is None  # from a source remade meanwhile
    delta = st.take((src, full), index)
    assert delta is not None and delta.full and st.note is None
    assert rows(delta.runs, sid) == rows(scan0.runs, sid)
    assert all(r.source == sid and r.sources == [sid] for r in delta.runs)
    assert st.applied_cursor is None
    st.applied(delta)
    assert st.applied_cursor is cursor and st.last_read is not None
    runs, exps, _ = st.full_scan(index)
    assert rows(runs, sid) == rows(scan0.runs, sid) and len(exps) == len(scan0.experiments)

    one = dataclasses.replace(scan0.runs[0], run_name="renamed")
    inc = RemoteScan(scan0.experiments, [one], [], [], full=False, ok=True, cursor=cursor)
    delta = st.take((src, inc), index)
    assert delta is not None and not delta.full and [r.run_name for r in delta.runs] == ["renamed"]

    failed = RemoteScan([], [], [], ["cannot reach the MLflow server"], full=False, ok=False)
    delta = st.take((src, failed), index)
    assert delta is not None and not delta.runs and st.note == "cannot reach the MLflow server"

    again = RemoteStore(st.ref)
    again.load_state(_as_decoded(st.dump_state()))
    assert again.applied_cursor == cursor
    other = RemoteStore(StoreRef("remote", "http://elsewhere/", "http://elsewhere/"))
    other.load_state(_as_decoded(st.dump_state()))
    assert other.applied_cursor is None  # a cursor for another server is ignored
    index.runs = {r.run_id: dataclasses.replace(r, sources=[sid]) for r in runs}
    again.restored(index)
    assert set(again.server_runs) == set(index.runs)

    run = runs[0]
    assert store_for({sid: st}, run, "remote") is st
    points, warns = store_for({}, run, "remote").metric_history(run, "rmse", HistoryCache())
    assert points == [] and "no longer a source" in warns[0]


def _as_decoded(row: dict) -> dict:
    """A snapshot row as msgpack gives it back (arrays as tuples)."""
    import msgpack

    return msgpack.unpackb(msgpack.packb(row, use_bin_type=True), raw=False,
                           strict_map_key=False, use_list=False)


def test_sqlite3_is_only_read(sqlite_store: tuple[Path, MlflowClient, list[str]]) -> None:
    """Reading through the store leaves the database as MLflow wrote it."""
    path, _, _ = sqlite_store
    before = path.read_bytes()
    SqliteStore(StoreRef("sqlite", str(path), "mlflow.db")).full_scan(RootIndex(str(path), "t"))
    assert path.read_bytes() == before
    with sqlite3.connect(path) as db:
        assert db.execute("select count(*) from runs").fetchone()[0] == 4


def test_a_snapshot_of_the_previous_layout_loads(
        tmp_path: Path, file_store: tuple[Path, MlflowClient, list[str]]) -> None:
    """Snapshot rows as daemons before the store objects wrote them (format 5, the servers'
    cursors in a sidecar file) load into store objects; the sidecar is taken over once."""
    import msgpack
    import orjson

    from octostored.index.root import Root
    from octostored.index.snapshot import FORMAT

    path, _, ids = file_store
    root = str(tmp_path)
    sid = "http://127.0.0.1:9/"
    scan = filestore.scan_store(str(path), "mlruns")
    st = FileStore(StoreRef("file", str(path), "mlruns"))
    st.runs = scan.states
    r = Root(root, "t", str(tmp_path / "cache"), lambda *_: None)
    os.makedirs(r.cache_dir)
    cursor = RemoteCursor(sid, watermark=7, digests={ids[0]: "d"})
    old = {"format": FORMAT, "root": root, "runs": [x.to_row() for x in scan.runs],
           "experiments": [e.to_row() for e in scan.experiments],
           "stores": {"mlruns": {"kind": "file", "path": str(path),
                                 "runs": st.dump_state()["runs"], "cursor": None},
                      sid: {"kind": "remote", "path": sid, "runs": {}, "cursor": None}}}
    with open(r.snapshot_path(), "wb") as f:
        f.write(msgpack.packb(old, use_bin_type=True))
    sidecar = r.snapshot_path().removesuffix(".msgpack") + ".remote.json"
    with open(sidecar, "wb") as f:
        f.write(orjson.dumps({"format": 1, "root": root, "cursors": {sid: cursor.to_row()}}))
    assert r._load_snapshot()
    assert isinstance(r.stores["mlruns"], FileStore) and r.stores["mlruns"].runs == scan.states
    remote = r.stores[sid]
    assert isinstance(remote, RemoteStore) and remote.applied_cursor == cursor
    assert not os.path.exists(sidecar)
    # Written again, the cursor is the server's own snapshot state.
    r._save_snapshot()
    again = Root(root, "t", r.cache_dir, lambda *_: None)
    assert again._load_snapshot()
    assert again.stores[sid].applied_cursor == cursor  # type: ignore[attr-defined]
    assert set(again.index.runs) == set(ids)
