"""The `octostore` CLI as a user runs it: real processes, real daemon, readable errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from .conftest import DaemonProc, make_repo


def octostore(d: DaemonProc, *args: str, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "octostored.cli", *args], cwd=cwd,
                          env=env or d.env(), capture_output=True, text=True, timeout=60)


@pytest.fixture
def repo(short_tmp: Path) -> Path:
    repo = make_repo(short_tmp / "repo")
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = mlf.create_experiment("wine")
    for i in range(3):
        rid = mlf.create_run(exp, run_name=f"run-{i}").info.run_id
        mlf.log_param(rid, "alpha", str(i))
        mlf.log_metric(rid, "rmse", 1.0 - i / 10)
        mlf.set_terminated(rid)
    return repo


def test_runs_json_has_the_documented_fields(daemon: DaemonProc, repo: Path) -> None:
    out = octostore(daemon, "runs", "--json", "--order-by", "metrics.rmse ASC", cwd=repo)
    assert out.returncode == 0, out.stderr
    runs = json.loads(out.stdout)
    assert [r["run_name"] for r in runs] == ["run-2", "run-1", "run-0"]
    for key in ("run_id", "experiment_id", "run_name", "status", "lifecycle_stage", "start_time",
                "end_time", "params", "metrics", "tags"):
        assert key in runs[0]
    assert runs[0]["metrics"] == {"rmse": 0.8}


def test_runs_table_and_run_detail(daemon: DaemonProc, repo: Path) -> None:
    out = octostore(daemon, "runs", "--root", str(repo), "--filter", "metrics.rmse < 0.95")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:5] == ["run_id", "name", "status", "start", "duration"]
    assert sum("run-" in line for line in lines) == 2
    rid = lines[2].split()[0]
    detail = octostore(daemon, "run", rid, "--root", str(repo))
    assert detail.returncode == 0, detail.stderr
    assert "rmse = " in detail.stdout and "alpha = " in detail.stdout


@pytest.mark.parametrize("args, message", [
    (["runs", "--filter", "metrics.rmse <<< 1"], "filter"),
    (["runs", "--root", "/nonexistent/place"], "not a folder"),
    (["run", "ffffffffffff"], "no run ffffffffffff"),
    (["runs", "--limit", "-3"], "--limit must be"),
])
def test_user_errors_are_one_sentence(daemon: DaemonProc, repo: Path, args: list[str], message: str) -> None:
    out = octostore(daemon, *args, cwd=repo)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1


def test_folder_without_mlflow_data(daemon: DaemonProc, short_tmp: Path) -> None:
    empty = make_repo(short_tmp / "empty")
    out = octostore(daemon, "runs", cwd=empty)
    assert out.returncode == 2
    assert "no MLflow runs found" in out.stderr and "Traceback" not in out.stderr


def test_no_daemon_can_start(short_tmp: Path) -> None:
    env = dict(os.environ, OCTOSTORE_SOCKET=str(short_tmp / ("x" * 120)))  # over the path limit
    out = subprocess.run([sys.executable, "-m", "octostored.cli", "status"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "could not start the daemon" in out.stderr and "Traceback" not in out.stderr


def test_daemon_status_and_stop(daemon: DaemonProc) -> None:
    st = octostore(daemon, "daemon", "status")
    assert st.returncode == 0 and f"pid {daemon.proc.pid}" in st.stdout  # type: ignore[union-attr]
    stop = octostore(daemon, "daemon", "stop")
    assert stop.returncode == 0 and "stopped the daemon" in stop.stdout
    daemon.proc.wait(10)  # type: ignore[union-attr]
    again = octostore(daemon, "daemon", "status")
    assert again.returncode == 1 and "no daemon is running" in again.stdout
