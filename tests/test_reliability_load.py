"""Load, sized for CI: 20 clients for 8 s while MLflow writes 1,000 metric lines a second.

The full size (50 clients, 60 s) is ``python -m bench.load``; both run
:func:`bench.load.run_load`.  Promises checked: no client call fails, the writer
keeps its pace, and once it stops the daemon's index equals MLflow's view of
the store (runs, params, tags, statuses, latest metrics and every metric
history), so no update was lost.  The p99 latency is printed and bounded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow import MlflowClient

from bench.load import run_load

from .conftest import DaemonProc, make_repo

CLIENTS = int(os.environ.get("OCTOSTORE_LOAD_CLIENTS", "20"))
SECONDS = float(os.environ.get("OCTOSTORE_LOAD_SECONDS", "8"))
RATE = 1000
P99_BOUND = 5.0
"""Seconds.  Generous on purpose: CI machines are shared; the bench reports the real figure."""


def test_many_clients_and_a_writer_lose_nothing(short_tmp: Path, daemon: DaemonProc,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(short_tmp / "repo")
    uri = (repo / "mlruns").as_uri()
    exp = MlflowClient(tracking_uri=uri).create_experiment("load")
    report = run_load(daemon.socket, str(repo), uri, exp, clients=CLIENTS, seconds=SECONDS,
                      rate=RATE)
    with capsys.disabled():
        print("\n" + report.table())
    assert report.errors == []
    assert report.differences == []
    assert report.compared_runs == report.runs_created > CLIENTS // 4
    assert report.compared_histories >= report.runs_created
    assert report.lines >= 0.5 * RATE * SECONDS, f"the writer reached {report.rate:.0f} lines/s"
    assert report.calls >= CLIENTS * 5
    assert report.p99() < P99_BOUND
