"""Shared parts of the TUI tests: deterministic MLflow stores, a daemon, and waiting helpers.

Stores are written by real MLflow (``MlflowClient`` on a file store).  Run ids,
experiment ids and times are made deterministic (a seeded ``uuid4``, fixed
start/end/metric timestamps) so that snapshot tests can pin what the screens
show.  Holds no tests itself.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from .conftest import DaemonProc, make_repo

T0 = 1710147600000
"""2024-03-11 09:00:00 UTC: every fixed store starts here (a past year, so dates print in full)."""
HOUR = 3600 * 1000
MODELS = ("rf", "linear", "gbm")


@contextmanager
def deterministic_ids(seed: int) -> Iterator[None]:
    """Make MLflow's run and experiment ids a function of ``seed``."""
    rng = random.Random(seed)

    def fake_uuid4() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    state = random.getstate()
    random.seed(seed)
    try:
        with mock.patch("uuid.uuid4", side_effect=fake_uuid4):
            yield
    finally:
        random.setstate(state)


def mlflow_client(repo: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=(repo / "mlruns").as_uri())


def write_wine_store(repo: Path, n_runs: int = 24, seed: int = 7) -> dict[str, Any]:
    """Experiment "wine" with ``n_runs`` runs and "baseline" with 3, written by MLflow.

    Each test module must use its own ``seed``: ids derive from it, and MLflow caches a
    run's artifact repository by run id for the life of the process.

    Runs: params model/alpha/depth; metrics rmse and loss with 10-step histories, acc
    single-valued; run 3 FAILED, run 5 KILLED, run 7 deleted, the rest FINISHED;
    run 0 has artifacts notes.txt and logs/train.log.
    """
    client = mlflow_client(repo)
    out: dict[str, Any] = {"runs": [], "names": {}}
    with deterministic_ids(seed):
        exp = client.create_experiment("wine")
        base = client.create_experiment("baseline")
        out["experiment"] = exp
        out["baseline"] = base
        for i in range(n_runs):
            start = T0 + i * 5 * HOUR
            model = MODELS[i % 3]
            name = f"{model}-{i:02d}"
            run = client.create_run(
                exp,
                run_name=name,
                start_time=start,
                tags={"team": "vision" if i % 2 else "tabular"},
            )
            rid = run.info.run_id
            depth = (2, 4, 8)[(i // 3) % 3]
            alpha = round(0.05 * (i % 5 + 1), 2)
            final = 0.3 + 0.04 * depth / 8 + 0.5 * alpha + 0.05 * (i % 3)
            metrics = []
            for step in range(10):
                ts = start + step * 60_000
                rmse = final + (1.2 - final) * math.exp(-step / 2.5)
                metrics.append(Metric("rmse", round(rmse, 6), ts, step))
                metrics.append(Metric("loss", round(rmse * rmse, 6), ts, step))
            metrics.append(Metric("acc", round(1.0 - final / 2, 6), start + 10 * 60_000, 0))
            client.log_batch(
                rid,
                metrics=metrics,
                params=[
                    Param("model", model),
                    Param("alpha", str(alpha)),
                    Param("depth", str(depth)),
                ],
            )
            status = "FAILED" if i == 3 else "KILLED" if i == 5 else "FINISHED"
            client.set_terminated(rid, status, end_time=start + 11 * 60_000 + i * 1000)
            if i == 0:
                client.log_text(rid, "first run of the wine study\n", "notes.txt")
                client.log_text(
                    rid,
                    "".join(f"epoch {k}: rmse {1.0 - k / 20:.3f}\n" for k in range(12)),
                    "logs/train.log",
                )
            out["runs"].append(rid)
            out["names"][rid] = name
        client.delete_run(out["runs"][7])
        for j in range(3):
            start = T0 + j * 2 * HOUR
            run = client.create_run(base, run_name=f"baseline-{j}", start_time=start)
            client.log_batch(
                run.info.run_id,
                metrics=[Metric("rmse", 0.9 - j * 0.05, start, 0)],
                params=[Param("model", "mean")],
            )
            client.set_terminated(run.info.run_id, "FINISHED", end_time=start + 30_000)
    return out


class TuiEnv:
    """A daemon plus stores for TUI tests (one per test module)."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="oct-tui-", dir="/tmp"))
        self.daemon = DaemonProc(self.base)

    def start(self) -> TuiEnv:
        self.daemon.start()
        return self

    def repo(self, name: str) -> Path:
        return make_repo(self.base / name)

    def sync(self, repo: Path) -> None:
        with self.daemon.client() as c:
            c.call("octostore/sync", root=str(repo))

    def close(self) -> None:
        self.daemon.stop()
        shutil.rmtree(self.base, ignore_errors=True)


async def wait_until(
    pilot: Any, cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition"
) -> Any:
    """Let the app run until ``cond()`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - the screen may not be mounted yet
            last = exc
        await pilot.pause(0.02)
    shown = [f"{n.title}: {n.message}" for n in pilot.app._notifications]  # noqa: SLF001
    raise AssertionError(
        f"timed out waiting for {what}"
        + (f" (last error: {last!r})" if last else "")
        + (f"; notifications: {shown}" if shown else "")
    )


class ConsoleLog:
    """A console log written the way ``octostore run`` writes one (logformat's layout):
    ``.octostore/logs/<id>.log`` raw bytes, ``.idx`` time marks, ``rel`` for the run tag."""

    def __init__(self, repo: Path, log_id: str, t_ms: int, pid: int | None = None) -> None:
        from octostored.console.logformat import index_line, index_path, log_path, rel_path

        self._line = index_line
        self.log = Path(log_path(str(repo), log_id))
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.idx = Path(index_path(str(self.log)))
        self.rel = rel_path(str(repo), str(self.log))
        self.size = 0
        self.log.write_bytes(b"")
        header = index_line(0, t_ms, v=1, argv=["python", "train.py"], pid=pid or os.getpid())
        self.idx.write_bytes(header)

    def write(self, data: str | bytes, t_ms: int | None = None) -> None:
        raw = data.encode() if isinstance(data, str) else data
        with open(self.log, "ab") as f:
            f.write(raw)
        if t_ms is not None:
            with open(self.idx, "ab") as f:
                f.write(self._line(self.size, t_ms))
        self.size += len(raw)

    def exit(self, t_ms: int, code: int | None = 0) -> None:
        with open(self.idx, "ab") as f:
            f.write(self._line(self.size, t_ms, exit=code))


# -- fixtures shared by the TUI test modules (import them by name) ----------------------------
@pytest.fixture(autouse=True)
def no_worker_errors(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every app of a test must end without an unexpected worker failure."""
    from octostore_tui.app import OctostoreApp

    apps: list[OctostoreApp] = []
    init = OctostoreApp.__init__

    def tracking_init(self: OctostoreApp, *args: Any, **kw: Any) -> None:
        init(self, *args, **kw)
        apps.append(self)

    monkeypatch.setattr(OctostoreApp, "__init__", tracking_init)
    yield
    for app in apps:
        assert app.worker_errors == [], f"unexpected worker failures: {app.worker_errors!r}"


@pytest.fixture(scope="module")
def env() -> Iterator[TuiEnv]:
    """One daemon for a test module's apps."""
    e = TuiEnv().start()
    yield e
    e.close()
