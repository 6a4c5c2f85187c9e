"""The daemon end to end: a real process, a real socket, stores written by real MLflow."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from octostored.client import RequestError

from .conftest import DaemonProc, make_repo, wait_for


def log_run(client: MlflowClient, exp_id: str, i: int, **metrics: float) -> str:
    run = client.create_run(exp_id, run_name=f"run-{i}", tags={"team": "a" if i % 2 else "b"})
    rid = run.info.run_id
    client.log_param(rid, "alpha", str(0.1 * i))
    client.log_param(rid, "model", "rf" if i % 2 else "linear")
    for step in range(3):
        client.log_metric(rid, "rmse", 1.0 / (i + 1) + step * 0.01, step=step)
    for k, v in metrics.items():
        client.log_metric(rid, k, v)
    client.set_terminated(rid, "FINISHED" if i != 2 else "FAILED")
    return rid


@pytest.fixture
def file_repo(short_tmp: Path) -> tuple[Path, MlflowClient, str]:
    repo = make_repo(short_tmp / "repo")
    client = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = client.create_experiment("wine")
    for i in range(5):
        log_run(client, exp, i, acc=0.5 + i / 10)
    return repo, client, exp


def test_runs_match_mlflow(daemon: DaemonProc, file_repo: tuple[Path, MlflowClient, str]) -> None:
    repo, mlf, exp = file_repo
    with daemon.client() as c:
        info = c.call("octostore/open", root=str(repo))
        assert [s["kind"] for s in info["sources"]] == ["file"]
        got = c.call("octostore/runs", root=str(repo), view="all")["runs"]
        want = mlf.search_runs([exp], run_view_type=ViewType.ALL)
        assert [r["run_id"] for r in got] == [r.info.run_id for r in want]
        for g, w in zip(got, want):
            assert g["params"] == w.data.params
            assert g["metrics"] == w.data.metrics
            assert g["tags"] == w.data.tags
            assert g["status"] == w.info.status
            assert g["run_name"] == w.info.run_name
            assert g["start_time"] == w.info.start_time
            assert g["end_time"] == w.info.end_time


def test_listing_pages_follow_metric_and_attribute_changes(
        daemon: DaemonProc, file_repo: tuple[Path, MlflowClient, str]) -> None:
    """A listing page is a slice of an ordering kept while only metrics change: the page must
    still carry the new metric values, and a changed name or a new run must re-order it."""
    repo, mlf, exp = file_repo
    r = str(repo)

    def page(order_by: list[str], offset: int, limit: int) -> list[dict]:
        c.call("octostore/sync", root=r)
        return c.call("octostore/runs", root=r, order_by=order_by, offset=offset,
                      limit=limit)["runs"]

    def mlflow_ids(order_by: list[str]) -> list[str]:
        return [x.info.run_id for x in mlf.search_runs([exp], order_by=order_by)]

    with daemon.client() as c:
        for order in ([], ["attributes.run_name ASC"]):
            assert [x["run_id"] for x in page(order, 1, 3)] == mlflow_ids(order)[1:4]
        rid = mlflow_ids([])[2]
        mlf.log_metric(rid, "acc", 0.125)
        (row,) = [x for x in page([], 1, 3) if x["run_id"] == rid]
        assert row["metrics"]["acc"] == 0.125
        mlf.set_tag(rid, "mlflow.runName", "a-first")  # MLflow renames the run with it
        mlf.update_run(rid, name="a-first")
        assert [x["run_id"] for x in page(["attributes.run_name ASC"], 0, 2)] == \
            mlflow_ids(["attributes.run_name ASC"])[:2]
        assert page(["attributes.run_name ASC"], 0, 1)[0]["run_id"] == rid
        new = log_run(mlf, exp, 9)
        assert [x["run_id"] for x in page([], 0, 6)] == mlflow_ids([])
        assert new in [x["run_id"] for x in page([], 0, 1)]


def test_filter_order_and_errors(daemon: DaemonProc, file_repo: tuple[Path, MlflowClient, str]) -> None:
    repo, mlf, exp = file_repo
    flt = "metrics.rmse < 0.4 and params.model = 'rf'"
    with daemon.client() as c:
        got = c.call("octostore/runs", root=str(repo), filter=flt, order_by=["metrics.rmse ASC"])
        want = mlf.search_runs([exp], flt, order_by=["metrics.rmse ASC"])
        assert [r["run_id"] for r in got["runs"]] == [r.info.run_id for r in want]
        assert got["total"] == len(want) > 0
        with pytest.raises(RequestError) as bad:
            c.call("octostore/runs", root=str(repo), filter="metrics.rmse <")
        assert bad.value.code == 1002
        with pytest.raises(RequestError) as missing:
            c.call("octostore/runs", root=str(repo / "nope"))
        assert missing.value.code == 1001 and "does not exist" in missing.value.message
        with pytest.raises(RequestError) as typ:
            c.call("octostore/runs", root=str(repo), limit="ten")
        assert typ.value.code == -32602 and "'limit' must be an integer" in typ.value.message
        with pytest.raises(RequestError) as neg:
            c.call("octostore/runs", root=str(repo), limit=-1)
        assert neg.value.code == -32602
        with pytest.raises(RequestError) as unknown:
            c.call("octostore/nope", root=str(repo))
        assert unknown.value.code == -32601
        # The connection still serves after every error.
        assert c.call("octostore/status")["protocol_version"] == 1


def test_live_changes_reach_subscribers(daemon: DaemonProc, file_repo: tuple[Path, MlflowClient, str]) -> None:
    repo, mlf, exp = file_repo
    with daemon.client() as c, daemon.client() as other:
        sub = c.call("octostore/subscribe", root=str(repo))
        clock0 = sub["clock"]
        # A new run.
        rid = log_run(mlf, exp, 7)
        note = c.wait_notification("octostore/changed", timeout=10)
        seen = set(note["params"]["runs"])
        while rid not in seen:
            seen |= set(c.wait_notification("octostore/changed", timeout=10)["params"]["runs"])
        # An appended metric line on a running run reaches the index without a restart.
        live = mlf.create_run(exp, run_name="live").info.run_id
        mlf.log_metric(live, "loss", 1.0, step=0)
        other.call("octostore/sync", root=str(repo))
        mlf.log_metric(live, "loss", 0.5, step=1)
        other.call("octostore/sync", root=str(repo))
        run = other.call("octostore/run", root=str(repo), run_id=live)
        assert run["metrics"]["loss"] == {"value": 0.5, "step": 1, "timestamp": run["metrics"]["loss"]["timestamp"]}
        assert run["status"] == "RUNNING"
        hist = other.call("octostore/metric_history", root=str(repo), run_ids=[live], keys=["loss"])
        assert hist["series"][0]["y"] == [1.0, 0.5]
        # Deleted and restored.
        mlf.delete_run(rid)
        other.call("octostore/sync", root=str(repo))
        assert other.call("octostore/run", root=str(repo), run_id=rid)["lifecycle_stage"] == "deleted"
        active = other.call("octostore/runs", root=str(repo))["runs"]
        assert rid not in {r["run_id"] for r in active}
        mlf.restore_run(rid)
        other.call("octostore/sync", root=str(repo))
        assert other.call("octostore/run", root=str(repo), run_id=rid)["lifecycle_stage"] == "active"
        # since_clock returns exactly what changed after clock0.
        changed = other.call("octostore/runs", root=str(repo), since_clock=clock0, view="all")
        assert changed["is_fresh_instance"] is False
        assert {r["run_id"] for r in changed["runs"]} == {rid, live}


def test_nan_and_inf_travel_as_strings(daemon: DaemonProc, file_repo: tuple[Path, MlflowClient, str]) -> None:
    repo, mlf, exp = file_repo
    rid = mlf.create_run(exp).info.run_id
    mlf.log_metric(rid, "bad", math.nan)
    mlf.log_metric(rid, "big", math.inf)
    with daemon.client() as c:
        c.call("octostore/sync", root=str(repo))
        run = c.call("octostore/run", root=str(repo), run_id=rid)
        assert run["metrics"]["bad"]["value"] == "NaN"
        assert run["metrics"]["big"]["value"] == "Infinity"


def test_restart_uses_snapshot_and_fresh_instance(short_tmp: Path, file_repo: tuple[Path, MlflowClient, str]) -> None:
    repo, mlf, exp = file_repo
    d = DaemonProc(short_tmp / "d")
    (short_tmp / "d").mkdir()
    d.start()
    with d.client() as c:
        first = c.call("octostore/runs", root=str(repo), view="all")
    d.stop()
    snaps = list(Path(d.cache).glob("root-*.msgpack"))
    assert snaps, "the daemon wrote no snapshot on shutdown"
    new_id = log_run(mlf, exp, 9)  # changed while no daemon ran
    d.start()
    try:
        with d.client() as c:
            c.call("octostore/sync", root=str(repo))
            again = c.call("octostore/runs", root=str(repo), view="all", since_clock=first["clock"])
            assert again["is_fresh_instance"] is True
            ids = {r["run_id"] for r in again["runs"]}
            assert ids == {r["run_id"] for r in first["runs"]} | {new_id}
    finally:
        d.stop()


def test_corrupt_snapshot_is_discarded(short_tmp: Path, file_repo: tuple[Path, MlflowClient, str]) -> None:
    repo, _, _ = file_repo
    d = DaemonProc(short_tmp / "d")
    (short_tmp / "d").mkdir()
    d.start()
    with d.client() as c:
        n = c.call("octostore/runs", root=str(repo))["total"]
    d.stop()
    for snap in Path(d.cache).glob("root-*.msgpack"):
        snap.write_bytes(b"\x93garbage" * 10)
    d.start()
    try:
        with d.client() as c:
            assert c.call("octostore/runs", root=str(repo))["total"] == n
    finally:
        d.stop()


def test_socket_is_private_and_single(daemon: DaemonProc) -> None:
    st = os.stat(daemon.socket)
    assert st.st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(daemon.socket)).st_mode & 0o077 == 0
    second = DaemonProc(Path(daemon.base))
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "octostored.daemon", "--socket", daemon.socket],
                         env=second.env(), capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "already serves" in out.stderr


def test_stale_socket_is_replaced(short_tmp: Path) -> None:
    d = DaemonProc(short_tmp).start()
    d.kill9()
    assert os.path.exists(d.socket)  # left behind by the dead daemon
    d.start()
    try:
        with d.client() as c:
            assert c.call("octostore/status")["pid"] == d.proc.pid  # type: ignore[union-attr]
    finally:
        d.stop()


def test_daemon_imports_nothing_heavy(daemon: DaemonProc, file_repo: tuple[Path, MlflowClient, str]) -> None:
    repo, _, _ = file_repo
    with daemon.client() as c:
        c.call("octostore/runs", root=str(repo), filter="metrics.rmse > 0")
        c.call("octostore/insights", root=str(repo))
        assert c.call("octostore/status")["heavy_modules"] == []
