"""The daemon on an ``mlflow.db`` store (MLflow 3.7+'s default), written by real MLflow."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from .conftest import DaemonProc, git, make_repo, wait_for

FILTERS = [
    None,
    "metrics.rmse < 0.5",
    "params.model = 'rf' and metrics.rmse >= 0.2",
    "tags.team LIKE 'a%'",
    "attributes.status = 'FAILED'",
    "attributes.run_name LIKE 'run-%'",
    "metrics.acc > 0.55",
]
ORDERS = [None, ["metrics.rmse ASC"], ["params.alpha DESC", "attributes.start_time ASC"]]


@pytest.fixture
def sqlite_repo(short_tmp: Path) -> tuple[Path, MlflowClient, str]:
    repo = make_repo(short_tmp / "repo")
    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    exp = client.create_experiment("wine")
    for i in range(6):
        r = client.create_run(exp, run_name=f"run-{i}", tags={"team": "ab"[i % 2]})
        rid = r.info.run_id
        client.log_param(rid, "alpha", f"0.{i}")
        client.log_param(rid, "model", "rf" if i % 2 else "linear")
        for step in range(3):
            client.log_metric(rid, "rmse", 1.0 / (i + 1) + step / 100, step=step)
        client.log_metric(rid, "acc", 0.5 + i / 20)
        client.set_terminated(rid, "FAILED" if i == 3 else "FINISHED")
    client.delete_run(rid)
    return repo, client, exp


def test_sqlite_runs_agree_with_mlflow(daemon: DaemonProc, sqlite_repo: tuple[Path, MlflowClient, str]) -> None:
    repo, mlf, exp = sqlite_repo
    with daemon.client() as c:
        info = c.call("octostore/open", root=str(repo))
        assert [s["kind"] for s in info["sources"]] == ["sqlite"]
        for flt in FILTERS:
            for order in ORDERS:
                for view, vt in (("active", ViewType.ACTIVE_ONLY), ("all", ViewType.ALL)):
                    want = mlf.search_runs([exp], flt or "", vt, order_by=order)
                    got = c.call("octostore/runs", root=str(repo), filter=flt, order_by=order, view=view)
                    assert [r["run_id"] for r in got["runs"]] == [r.info.run_id for r in want], (flt, order, view)
                    for g, w in zip(got["runs"], want):
                        assert g["params"] == w.data.params and g["tags"] == w.data.tags
                        assert g["metrics"] == w.data.metrics
        rid = want[0].info.run_id
        hist = c.call("octostore/metric_history", root=str(repo), run_ids=[rid], keys=["rmse"])
        assert hist["series"][0]["y"] == [m.value for m in mlf.get_metric_history(rid, "rmse")]


def test_sqlite_live_updates_and_wal(daemon: DaemonProc, sqlite_repo: tuple[Path, MlflowClient, str]) -> None:
    repo, mlf, exp = sqlite_repo
    with daemon.client() as c:
        c.call("octostore/subscribe", root=str(repo))
        rid = mlf.create_run(exp, run_name="live").info.run_id
        mlf.log_metric(rid, "rmse", 0.9, step=0)

        def seen() -> bool:
            n = c.wait_notification("octostore/changed", timeout=10)
            return rid in n["params"]["runs"]

        wait_for(seen, timeout=15, what="the new SQLite run to be notified")
        # Switch the database to WAL (as `mlflow migrate-filestore` leaves it): only -wal changes.
        with sqlite3.connect(repo / "mlflow.db") as db:
            db.execute("PRAGMA journal_mode=WAL")
        mlf.log_metric(rid, "rmse", 0.4, step=1)
        mlf.log_metric(rid, "loss", math.nan, step=1)
        c.call("octostore/sync", root=str(repo))
        run = c.call("octostore/run", root=str(repo), run_id=rid)
        assert run["metrics"]["rmse"]["value"] == 0.4
        assert run["metrics"]["loss"]["value"] == "NaN"
        mlf.set_terminated(rid)
        c.call("octostore/sync", root=str(repo))
        assert c.call("octostore/run", root=str(repo), run_id=rid)["status"] == "FINISHED"


def test_a_deleted_database_takes_its_runs_with_it(
        daemon: DaemonProc, sqlite_repo: tuple[Path, MlflowClient, str]) -> None:
    """Removing mlflow.db is a change the watcher reports: its runs leave the index with a
    notification, no sync asked."""
    repo, mlf, exp = sqlite_repo
    with daemon.client() as c:
        c.call("octostore/subscribe", root=str(repo))
        c.call("octostore/sync", root=str(repo))
        ids = {r["run_id"] for r in c.call("octostore/runs", root=str(repo), view="all")["runs"]}
        assert len(ids) == 6
        mlf._tracking_client.store.engine.dispose()  # MLflow lets go of its connections
        for suffix in ("", "-wal", "-shm", "-journal"):
            (repo / f"mlflow.db{suffix}").unlink(missing_ok=True)

        def gone() -> bool:
            n = c.wait_notification("octostore/changed", timeout=10)
            return ids <= set(n["params"]["removed"])

        wait_for(gone, timeout=20, what="the runs of the deleted database to be removed")
        info = c.call("octostore/open", root=str(repo))
        assert info["runs"] == 0 and info["sources"] == []


def test_run_in_two_stores_is_one_run(daemon: DaemonProc, sqlite_repo: tuple[Path, MlflowClient, str]) -> None:
    """A run in mlflow.db and in octostore's committed store is one run, marked committed."""
    repo, mlf, exp = sqlite_repo
    run = mlf.search_runs([exp], max_results=1)[0]
    rid = run.info.run_id
    exp_dir = repo / ".octostore" / "runs" / exp
    (exp_dir / rid / "params").mkdir(parents=True)
    (exp_dir / "meta.yaml").write_text(f"experiment_id: '{exp}'\nlifecycle_stage: active\nname: wine\n")
    (exp_dir / rid / "meta.yaml").write_text(
        f"run_id: {rid}\nexperiment_id: '{exp}'\nstatus: 3\nlifecycle_stage: active\n"
        f"start_time: {run.info.start_time}\nrun_name: {run.info.run_name}\n")
    (exp_dir / rid / "params" / "alpha").write_text(run.data.params["alpha"])
    git(repo, "add", ".octostore")  # committed means in HEAD's tree (issue 16, item 6)
    git(repo, "commit", "-qm", "runs")
    with daemon.client() as c:
        c.call("octostore/sync", root=str(repo))
        runs = c.call("octostore/runs", root=str(repo), view="all")["runs"]
        assert len([r for r in runs if r["run_id"] == rid]) == 1
        assert len(runs) == len(mlf.search_runs([exp], run_view_type=ViewType.ALL))
        got = c.call("octostore/run", root=str(repo), run_id=rid)
        assert got["committed"] is True
        assert sorted(got["sources"]) == [".octostore/runs", "mlflow.db"]
        assert got["metrics"]["rmse"]["value"] == run.data.metrics["rmse"]  # the live store's record
        exps = c.call("octostore/experiments", root=str(repo))["experiments"]
        assert [e["key"] for e in exps if e["name"] == "wine"] == [exp]
