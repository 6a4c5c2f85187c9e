"""20 concurrent socket clients, a live writer appending metrics, a daemon restart in the middle.

Nothing may be lost and nothing may err: after the writer stops and the index
is synced, every client sees exactly the runs and the latest metric values
MLflow sees in the store.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import ViewType

from octostored.client import Client, DaemonUnavailable

from .conftest import DaemonProc, make_repo, wait_for

CLIENTS = 20


def test_many_clients_live_writer_and_restart(short_tmp: Path) -> None:
    repo = make_repo(short_tmp / "repo")
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = mlf.create_experiment("load")
    runs = [mlf.create_run(exp, run_name=f"r{i}").info.run_id for i in range(4)]
    d = DaemonProc(short_tmp / "d")
    (short_tmp / "d").mkdir()
    d.start()
    stop = threading.Event()
    errors: list[str] = []
    calls = [0] * CLIENTS

    def writer() -> None:
        step = 0
        while not stop.is_set():
            for rid in runs:
                mlf.log_metric(rid, "loss", 1.0 / (step + 1), step=step)
            step += 1
            if step % 10 == 0:
                runs.append(mlf.create_run(exp, run_name=f"r{len(runs)}").info.run_id)
            time.sleep(0.01)

    def reader(i: int) -> None:
        c: Client | None = None
        while not stop.is_set():
            try:
                if c is None:
                    c = Client(d.socket, autostart=False, timeout=30)
                kind = calls[i] % 4
                if kind == 0:
                    c.call("octostore/runs", root=str(repo), filter="metrics.loss < 0.5",
                           order_by=["metrics.loss ASC"], limit=10)
                elif kind == 1:
                    c.call("octostore/experiments", root=str(repo))
                elif kind == 2:
                    c.call("octostore/run", root=str(repo), run_id=runs[0])
                else:
                    c.call("octostore/metric_history", root=str(repo), run_ids=[runs[0]],
                           keys=["loss"], max_points=50)
                calls[i] += 1
            except DaemonUnavailable:
                c = None  # the daemon is restarting: reconnect, as every client must
                time.sleep(0.05)
            except Exception as exc:  # noqa: BLE001 - any other failure is a bug
                errors.append(f"client {i}: {type(exc).__name__}: {exc}")
                return

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: min(calls) >= 5, timeout=60, what="every client to make calls")
        d.stop()  # restart in the middle, writer still writing
        d.start()
        before = list(calls)
        wait_for(lambda: all(c > b for c, b in zip(calls, before)), timeout=60,
                 what="every client to be served after the restart")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    try:
        assert not errors, errors[:5]
        want = {r.info.run_id: r.data.metrics.get("loss")
                for r in mlf.search_runs([exp], run_view_type=ViewType.ALL, max_results=1000)}
        with d.client() as c:
            c.call("octostore/sync", root=str(repo))
            got = c.call("octostore/runs", root=str(repo), view="all", limit=10_000)["runs"]
        assert {r["run_id"]: r["metrics"].get("loss") for r in got} == want
    finally:
        d.stop()
