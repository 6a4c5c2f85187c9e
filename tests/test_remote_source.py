"""octostored.sources.remote against a real ``mlflow server`` on a loopback port.

One module-scoped server (SQLite backend, local artifact root) gets the ~40 reference runs of
``test_query_mlflow_agreement`` logged through MLflow's REST client.  Then: a full sync equals
``MlflowClient.search_runs`` on the server and ``sqlitestore`` on the server's own database;
octostore's search over the synced runs returns what the server's search returns for every
filter and order of the query tests; incremental syncs pick up new runs and metric values and
send only what changed; a listing catches edits an incremental sync cannot see; histories
equal MLflow's; a stopped, hung or credential-rejecting server is a warning, never an
exception, and the next sync after a restart recovers; credentials never show.

Server starts dominate the time (10-50 s each on a busy 2-core box), so the tests that need
no server come first and run while it starts, and the test that stops the server starts it
again in the background for ``test_recovers_after_restart`` to wait on.  Every test that needs
the server calls ``server.up()``, so any order or subset still works, only slower.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mlflow.entities import Metric, ViewType

from octostored import servertrust
from octostored.query import search
from octostored.sources import sqlitestore
from octostored.sources.remote import (
    RemoteCursor, RemoteScan, RemoteSource, Scrubber, SyncPolicy, is_remote_uri, scrub_uri,
)
from tests.test_query_mlflow_agreement import BASE, FILTERS, ORDERS, _log_store, _to_run

pytestmark = pytest.mark.e2e

SERVER_START_S = 180.0
"""Deadline for ``/health``: a fresh SQLite backend migrates first (~12 s idle, far more busy)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real ``mlflow server`` in its own process group; stop, hang and restart it at will."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.db = os.path.join(base, "mlflow.db")
        self.artifacts = os.path.join(base, "artifacts")
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = os.path.join(base, "server.log")
        self.starts = 0
        self.saved_cursor: RemoteCursor | None = None
        """Left by the test that stops the server, for the one that sees it come back."""

    def start(self) -> MlflowServer:
        """Start without waiting (see :meth:`up`)."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        env.pop("MLFLOW_TRACKING_URI", None)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [os.path.join(os.path.dirname(sys.executable), "mlflow"), "server",
                 "--backend-store-uri", f"sqlite:///{self.db}",
                 "--default-artifact-root", self.artifacts,
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                cwd=self.base, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                start_new_session=True)
        self.starts += 1
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.uri + "/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def up(self) -> MlflowServer:
        """Start if needed and wait for ``/health``."""
        self.start()
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"mlflow server exited: {self.tail()}")
            if self.healthy():
                return self
            time.sleep(0.2)
        raise AssertionError(f"mlflow server not healthy after {SERVER_START_S} s: {self.tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(5)
        # uvicorn is a child in the same group: make sure the port is free again
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            self.signal(signal.SIGKILL)
            time.sleep(0.1)

    def signal(self, sig: int) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def tail(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""


@pytest.fixture(scope="module", autouse=True)
def user_config() -> Iterator[str]:
    """The user's config folder (where trusted servers are kept), private to this module."""
    folder = tempfile.mkdtemp(prefix="octostore-config-")
    old = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = folder
    try:
        yield folder
    finally:
        if old is None:
            os.environ.pop("XDG_CONFIG_HOME", None)
        else:
            os.environ["XDG_CONFIG_HOME"] = old
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def server() -> Iterator[MlflowServer]:
    """Started at the module's first test but not waited for: tests that need it call
    ``up()``, and the first tests of the module need none."""
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    base = tempfile.mkdtemp(prefix="octostore-remote-", dir=shm)
    srv = MlflowServer(base).start()
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)


class Logged:
    def __init__(self, uri: str) -> None:
        self.client, self.exps, self.ids = _log_store(uri)


@pytest.fixture(scope="module")
def logged(server: MlflowServer) -> Logged:
    return Logged(server.up().uri)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def full_scan(server: MlflowServer, logged: Logged, tmp_path_factory) -> RemoteScan:
    server.up()
    cache = str(tmp_path_factory.mktemp("cache"))
    return run(_with_source(server.uri, cache, lambda s: s.sync(full=True)))


async def _with_source(uri: str, cache: str, work: Any, **kw: Any) -> Any:
    """``work(source)`` on a source for ``uri``, a server the user trusts."""
    servertrust.trust(uri)
    src = RemoteSource(uri, "server", cache, **kw)
    try:
        return await work(src)
    finally:
        await src.close()


def same_value(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def comparable(r: Any) -> dict[str, Any]:
    """A run's fields as both sides spell them (NaN made comparable; no source/location)."""
    return {
        "run_id": r.run_id, "experiment_id": r.experiment_id, "run_name": r.run_name,
        "status": r.status, "lifecycle_stage": r.lifecycle_stage, "start_time": r.start_time,
        "end_time": r.end_time, "user_id": r.user_id, "artifact_uri": r.artifact_uri,
        "params": r.params, "tags": r.tags,
        "metrics": {k: ("NaN" if math.isnan(v[0]) else v[0], v[1], v[2])
                    for k, v in r.metrics.items()},
    }


def mlflow_runs(logged: Logged) -> list[Any]:
    exps = [e.experiment_id for e in logged.client.search_experiments(view_type=ViewType.ALL)]
    return logged.client.search_runs(exps, run_view_type=ViewType.ALL, max_results=5000)


# -- no server needed (they run while the module's server starts) ------------------------

def test_scrubber_removes_every_form_of_credentials() -> None:
    uri = "https://bob:p%40ss/w0rd!@mlflow.example.com:8443/prefix?token=abc123"
    env = {"MLFLOW_TRACKING_TOKEN": "tok-123456", "MLFLOW_TRACKING_USERNAME": "u",
           "MLFLOW_TRACKING_PASSWORD": "hunter22"}
    s = Scrubber(uri, env)
    assert scrub_uri(uri) == "https://mlflow.example.com:8443/prefix"
    texts = [
        f"API request to {uri}/api/2.0/mlflow/runs/search failed",
        "password p@ss/w0rd! and p%40ss/w0rd! here",
        "headers {'Authorization': 'Bearer tok-123456'}",
        "Authorization: Basic dTpodW50ZXIyMg==",
        "got tok-123456 and hunter22 in a body",
        "https://x:y@host/path?access_token=zzz&a=1",
    ]
    for text in texts:
        out = s(text)
        for secret in ("p%40ss", "p@ss", "w0rd", "tok-123456", "hunter22", "dTpodW50ZXIyMg",
                       "abc123", "zzz", "x:y"):
            assert secret not in out, (text, out)
    assert is_remote_uri(" HTTPS://a") and not is_remote_uri("sqlite:///mlflow.db")


def test_worker_scrubs_and_classifies_without_importing_mlflow() -> None:
    """The worker's own scrubbing (defence in depth: its stderr and error replies) and its
    reading of MLflow's error messages (as MLflow 3.17 words them)."""
    from octostored.sources import remote_worker as w

    where = "https://h:1"
    text = "API request to https://ann:pw%2Fx@h:1/api/2.0/mlflow/runs/search failed"
    assert "pw%2Fx" not in w.scrub(text) and "ann" not in w.scrub(text)
    assert "tok9" not in w.scrub("got {'Authorization': 'Bearer tok9'}")
    cases = {
        "unreachable": "API request to https://h:1/api/2.0/mlflow/experiments/search failed with"
        " exception HTTPSConnectionPool(host='h', port=1): Max retries exceeded with url: /api"
        " (Caused by NewConnectionError(': Failed to establish a new connection: [Errno 111]"
        " Connection refused'))",
        "timeout": "API request to https://h:1/api failed with exception HTTPSConnectionPool("
        "host='h', port=1): Read timed out. (read timeout=29)",
        "server": "API request to https://h:1/api failed with exception HTTPSConnectionPool("
        "host='h', port=1): Max retries exceeded with url: /api (Caused by ResponseError("
        "'too many 503 error responses'))",
        "auth": "API request to endpoint /api/2.0/mlflow/experiments/search failed with error"
        " code 401 != 200. Response body: 'You are not authenticated.'",
    }
    for kind, message in cases.items():
        got = w.classify(RuntimeError(message), where, 29, [])
        assert got["kind"] == kind, (kind, got)
        assert where in got["message"]


def test_scan_apply_to() -> None:
    from octostored.model import Run

    a, b, c = (Run(run_id=x, experiment_id="1") for x in "abc")
    runs = {"a": a, "b": b}
    RemoteScan([], [c], ["b"], [], full=False, ok=True).apply_to(runs)
    assert runs == {"a": a, "c": c}
    RemoteScan([], [], [], ["down"], full=False, ok=False).apply_to(runs)
    assert runs == {"a": a, "c": c}
    RemoteScan([], [b], [], [], full=True, ok=True).apply_to(runs)
    assert runs == {"b": b}


def test_policy_interval_backoff_and_listing() -> None:
    p = SyncPolicy(interval=10, max_delay=300, load_factor=4, jitter=0)
    assert p.next_delay(True, 0.5) == 10
    assert p.next_delay(True, 5.0) == 20  # a slow server is asked less often
    assert [p.next_delay(False, 0.1) for _ in range(6)] == [20, 40, 80, 160, 300, 300]
    assert p.next_delay(True, 0.1) == 10 and p.failures == 0
    j = SyncPolicy(interval=10, jitter=0.1)
    assert all(9 <= j.next_delay(True, 0) <= 11 for _ in range(50))
    c = RemoteCursor("http://h", last_listing=1000.0, listing_seconds=60.0)
    lp = SyncPolicy(listing_interval=600, listing_load=20)
    assert not lp.listing_due(c, 1000 + 600)  # 20 x 60 s = 1200 s
    assert lp.listing_due(c, 1000 + 1200)
    assert RemoteCursor.from_row(c.to_row()) == c
    assert RemoteCursor.from_row({"bogus": 1}) is None


class _Canned(http.server.BaseHTTPRequestHandler):
    status = 401
    seen: list[dict[str, str]] = []

    def _reply(self) -> None:
        _Canned.seen.append(dict(self.headers))
        body = b'{"error_code": "UNAUTHENTICATED", "message": "bad creds"}' \
            if self.status == 401 else b"<html>oops</html>"
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json" if self.status == 401 else "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _reply

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("status,kind,text", [
    (401, "auth", "rejected the credentials"), (500, "server", "answered with an error")])
def test_rejected_credentials_and_server_errors_are_warnings(status: int, kind: str, text: str,
                                                              tmp_path) -> None:
    handler = type("H", (_Canned,), {"status": status})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{httpd.server_address[1]}"
    env = {"MLFLOW_TRACKING_TOKEN": "sekrit-token-42"}
    try:
        scan = run(_with_source(uri, str(tmp_path), lambda s: s.sync(), env=env, timeout=10))
    finally:
        httpd.shutdown()
    assert not scan.ok and scan.error == kind, scan
    assert text in scan.warnings[-1] and uri in scan.warnings[-1]
    assert "sekrit" not in " ".join(scan.warnings)
    # the token did reach the server (MLflow's own auth handling is used)
    assert any(h.get("Authorization") == "Bearer sekrit-token-42" for h in _Canned.seen)


def test_worker_that_cannot_start_is_a_warning(tmp_path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'no mlflow here' >&2\nexit 3\n")
    fake.chmod(0o755)
    scan = run(_with_source("http://127.0.0.1:9", str(tmp_path), lambda s: s.sync(),
                            python=str(fake)))
    assert not scan.ok and scan.error == "worker"
    assert "MLflow worker" in scan.warnings[-1] and "exited" in scan.warnings[-1]


def test_remote_module_does_not_import_mlflow() -> None:
    code = ("import octostored.sources.remote, sys\n"
            "print(','.join(m for m in ('mlflow', 'pandas', 'numpy', 'sqlalchemy', 'requests')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# -- a full sync is what MLflow says ------------------------------------------------------------

def test_full_sync_equals_search_runs(server: MlflowServer, logged: Logged,
                                      full_scan: RemoteScan) -> None:
    scan = full_scan
    assert scan.ok and scan.full and scan.mode == "full" and scan.warnings == []
    ours = {r.run_id: r for r in scan.runs}
    theirs = {r.info.run_id: _to_run(r) for r in mlflow_runs(logged)}
    assert set(ours) == set(theirs) and len(ours) >= 40
    for rid, want in theirs.items():
        got = ours[rid]
        assert comparable(got) == comparable(want), rid
        assert [{k: d[k] for k in ("name", "digest", "tags")} for d in got.inputs] == want.inputs
        assert got.source == "server" and got.sources == ["server"]
        assert got.location == server.uri
    deleted = {r.run_id for r in scan.runs if r.lifecycle_stage == "deleted"}
    assert deleted == {logged.ids[i] for i in (5, 17, 30)}
    names = {e.name for e in scan.experiments}
    assert {"Default", "exp-a", "exp-b"} <= names
    assert all(e.source == "server" for e in scan.experiments)


def test_records_match_sqlitestore_on_the_server_database(server: MlflowServer,
                                                          full_scan: RemoteScan) -> None:
    """The worker converts runs exactly as the SQLite reader does (read the same database)."""
    scan = full_scan
    local = sqlitestore.read_store(server.db, "db")
    assert local.warnings == []
    ours = {r.run_id: r for r in scan.runs}
    theirs = {r.run_id: r for r in local.runs}
    assert set(ours) == set(theirs)
    for rid, want in theirs.items():
        assert comparable(ours[rid]) == comparable(want), rid
        assert ours[rid].inputs == want.inputs, rid
    exp_fields = ("experiment_id", "name", "lifecycle_stage", "artifact_location",
                  "creation_time", "last_update_time", "tags")
    got = sorted(tuple(str(getattr(e, f)) for f in exp_fields) for e in scan.experiments)
    want_e = sorted(tuple(str(getattr(e, f)) for f in exp_fields) for e in local.experiments)
    assert got == want_e


def test_search_agrees_with_the_server(server: MlflowServer, logged: Logged,
                                       full_scan: RemoteScan) -> None:
    """The daemon's search over synced runs returns what the server's search_runs returns,
    for every filter and order of the query agreement tests (nothing logged since the scan:
    the tests that log come later)."""
    server.up()
    mine = [r for r in full_scan.runs if r.experiment_id in logged.exps]
    fill = {"base": BASE, "id0": logged.ids[0], "id1": logged.ids[1], "id7": logged.ids[7]}
    cases = [(f, None) for _, f in FILTERS] + [(f, o) for _, o in ORDERS
                                               for f in (None, "metrics.acc > 0.3")]

    def check(case: tuple[str | None, list[str] | None]) -> tuple[Any, ...] | None:
        flt, order = case
        text = flt.format(**fill) if flt else flt
        want = [r.info.run_id for r in logged.client.search_runs(
            logged.exps, text or "", run_view_type=ViewType.ACTIVE_ONLY, order_by=order,
            max_results=1000)]
        got = [r.run_id for r in search(mine, text, order, view="active")]
        return None if got == want else (text, order, got, want)

    with ThreadPoolExecutor(4) as pool:
        bad = [b for b in pool.map(check, cases) if b is not None]
    assert len(cases) > 80 and bad == []


# -- incremental syncs -------------------------------------------------------------------------

def test_incremental_sync_picks_up_new_runs_and_metrics(server: MlflowServer, logged: Logged,
                                                        tmp_path) -> None:
    server.up()
    c = logged.client
    exp = c.create_experiment("live")

    async def work(src: RemoteSource) -> None:
        first = await src.sync()
        assert first.mode == "full"
        live = c.create_run(exp, run_name="live")
        rid = live.info.run_id
        c.log_batch(rid, metrics=[Metric("loss", 1.0, int(time.time() * 1000), 0)],
                    params=[], tags=[])
        s1 = await src.sync()
        assert s1.ok and s1.mode == "incremental" and not s1.full
        assert [r.run_id for r in s1.runs] == [rid]
        assert s1.runs[0].status == "RUNNING" and s1.runs[0].metrics["loss"][0] == 1.0
        assert rid in src.cursor.unfinished
        # nothing changed: an incremental sync sends nothing
        quiet = await src.sync()
        assert quiet.ok and quiet.runs == [] and quiet.removed == []
        # new metric values on the running run, and a new finished run
        c.log_metric(rid, "loss", 0.5, step=1)
        c.log_metric(rid, "acc", 0.9, step=1)
        done = c.create_run(exp, run_name="done")
        c.log_param(done.info.run_id, "p", "1")
        c.set_terminated(done.info.run_id)
        s2 = await src.sync()
        got = {r.run_id: r for r in s2.runs}
        assert set(got) == {rid, done.info.run_id}
        assert got[rid].metrics["loss"][0] == 0.5 and got[rid].metrics["acc"][2] == 1
        assert got[done.info.run_id].params == {"p": "1"}
        # the running run ends with an end time far in the past: still seen (by id)
        c.set_terminated(rid, status="KILLED", end_time=BASE)
        s3 = await src.sync()
        assert [(r.run_id, r.status, r.end_time) for r in s3.runs] == [(rid, "KILLED", BASE)]
        assert rid not in src.cursor.unfinished
        assert s3.stats["requests"] <= 8

    run(_with_source(server.uri, str(tmp_path), work))


def test_listing_catches_what_incremental_syncs_cannot_see(server: MlflowServer, logged: Logged,
                                                           tmp_path) -> None:
    server.up()
    c = logged.client
    old = logged.ids[2]  # finished, started and ended in 2023
    policy = SyncPolicy(listing_interval=3600)
    recent = c.create_run(logged.exps[1], run_name="recent").info.run_id  # watermark: now
    c.set_terminated(recent)

    async def work(src: RemoteSource) -> None:
        await src.sync()
        c.set_tag(old, "reviewed", "yes")
        inc = await src.sync()
        assert inc.mode == "incremental" and old not in {r.run_id for r in inc.runs}
        # a run the cursor knows but the server does not (hard-deleted by `mlflow gc`)
        src.cursor.digests["0" * 32] = "x"
        src.cursor.experiment_of["0" * 32] = logged.exps[0]
        policy.listing_interval = policy.listing_load = 0
        listing = await src.sync()
        assert listing.ok and listing.mode == "list" and not listing.full
        assert [r.run_id for r in listing.runs] == [old]
        assert listing.runs[0].tags["reviewed"] == "yes"
        assert listing.removed == ["0" * 32]
        assert "0" * 32 not in src.cursor.digests
        assert listing.stats["sent"] == 1 and listing.stats["listed"] >= 40

    run(_with_source(server.uri, str(tmp_path), work, policy=policy))


def test_deleting_an_experiment_is_seen_at_once(server: MlflowServer, logged: Logged,
                                                 tmp_path) -> None:
    """Deleting an experiment marks all its runs deleted without touching their times: its
    changed lifecycle stage makes the next incremental sync re-list its runs."""
    server.up()
    c = logged.client
    exp = c.create_experiment("doomed")
    ids = []
    for i in range(3):
        r = c.create_run(exp, start_time=BASE + i)
        c.set_terminated(r.info.run_id, end_time=BASE + 10)
        ids.append(r.info.run_id)

    async def work(src: RemoteSource) -> None:
        await src.sync()
        c.delete_experiment(exp)
        s = await src.sync()
        assert s.mode == "incremental"
        assert sorted(r.run_id for r in s.runs if r.lifecycle_stage == "deleted") == sorted(ids)
        assert {e.experiment_id: e.lifecycle_stage for e in s.experiments}[exp] == "deleted"
        c.restore_experiment(exp)
        s = await src.sync()
        assert sorted(r.run_id for r in s.runs if r.lifecycle_stage == "active") == sorted(ids)

    run(_with_source(server.uri, str(tmp_path), work))


def test_metric_history_equals_mlflow_and_is_cached(server: MlflowServer, logged: Logged,
                                                    tmp_path) -> None:
    server.up()
    c = logged.client
    exp = c.create_experiment("history")
    rid = c.create_run(exp).info.run_id
    t = int(time.time() * 1000)
    c.log_batch(rid, metrics=[Metric("loss", 1.0 / (s + 1), t + s, s) for s in range(50)]
                + [Metric("loss", float("nan"), t + 50, 50)])

    def mlflow_points() -> list[tuple[int, Any, int]]:
        return [(m.timestamp, "NaN" if math.isnan(m.value) else m.value, m.step)
                for m in c.get_metric_history(rid, "loss")]

    def norm(points: list[tuple[int, float, int]]) -> list[tuple[int, Any, int]]:
        return [(ts, "NaN" if math.isnan(v) else v, st) for ts, v, st in points]

    async def work(src: RemoteSource) -> None:
        await src.sync()
        got = await src.metric_history(rid, "loss")
        assert norm(got) == mlflow_points() and len(got) == 51
        assert (await src.metric_history(rid, "loss")) is got  # cached
        assert await src.metric_history(rid, "nope") == []
        c.log_metric(rid, "loss", 0.01, timestamp=t + 60, step=60)
        assert (await src.metric_history(rid, "loss")) is got  # until a sync shows the change
        await src.sync()
        again = await src.metric_history(rid, "loss")
        assert again is not got and norm(again) == mlflow_points() and len(again) == 52
        # from a thread, as an export running in a worker thread would ask
        pts = await asyncio.to_thread(src.metric_history_threadsafe, rid, "loss")
        assert pts is again

    run(_with_source(server.uri, str(tmp_path), work))


def test_artifacts_download_for_commit(server: MlflowServer, logged: Logged, tmp_path) -> None:
    server.up()
    c = logged.client
    rid = c.create_run(logged.exps[0]).info.run_id
    src_file = tmp_path / "model.txt"
    src_file.write_text("weights\n")
    c.log_artifact(rid, str(src_file), "model")

    async def work(src: RemoteSource) -> str:
        return await src.download_artifacts(rid, str(tmp_path / "dl"))

    path = run(_with_source(server.uri, str(tmp_path), work))
    assert open(os.path.join(path, "model", "model.txt")).read() == "weights\n"


def test_worker_that_dies_is_restarted_with_a_warning(server: MlflowServer, logged: Logged,
                                                      tmp_path) -> None:
    server.up()

    async def work(src: RemoteSource) -> None:
        await src.sync()
        pid = src.worker_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        s = await src.sync()
        assert s.ok, s.warnings
        assert any("exited unexpectedly" in w and "restarted" in w for w in s.warnings)
        assert src.worker_pid not in (None, pid)
        s = await src.sync()
        assert s.ok and s.warnings == []

    run(_with_source(server.uri, str(tmp_path), work))


def test_poll_loop_picks_up_a_new_run_within_one_interval(server: MlflowServer, logged: Logged,
                                                          tmp_path) -> None:
    """The first scan the poll loop starts after a run is logged (at most one announced
    interval later) carries it; the same for a new metric value."""
    server.up()
    c = logged.client

    async def work(src: RemoteSource) -> None:
        scans: list[tuple[float, RemoteScan]] = []  # (when the scan started, scan)
        src.start(lambda scan: scans.append((time.monotonic() - scan.stats["seconds"], scan)))
        first = await src.request_sync()
        assert first.ok and first.next_sync_in is not None

        async def first_scan_after(t: float) -> RemoteScan:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                later = [sc for started, sc in scans if started > t]
                if later:
                    before = [sc for started, sc in scans if started <= t]
                    # it started within one announced interval of the change
                    assert later and before and later[0].ok
                    gap = [started for started, sc in scans if started > t][0] - t
                    # (the scan before may have been in flight at t: add its duration)
                    prev = before[-1]
                    assert gap <= prev.next_sync_in + prev.stats["seconds"] + 1.0, (gap, prev)
                    return later[0]
                await asyncio.sleep(0.02)
            raise AssertionError("no scan")

        rid = await asyncio.to_thread(lambda: c.create_run(logged.exps[1]).info.run_id)
        await asyncio.to_thread(c.log_metric, rid, "m", 3.0)
        scan = await first_scan_after(time.monotonic())
        assert {r.run_id: r.metrics["m"][0] for r in scan.runs}.get(rid) == 3.0
        await asyncio.to_thread(c.log_metric, rid, "m", 4.0, step=1)
        scan = await first_scan_after(time.monotonic())
        assert [(r.run_id, r.metrics["m"][0]) for r in scan.runs] == [(rid, 4.0)]
        assert src.status()["state"] in ("ok", "syncing")

    run(_with_source(server.uri, str(tmp_path), work,
                     policy=SyncPolicy(interval=1.0, jitter=0)))


# -- the server goes away ----------------------------------------------------------------------

def test_stopped_and_hung_server_give_warnings(server: MlflowServer, logged: Logged,
                                               tmp_path, caplog) -> None:
    """Hung (SIGSTOP): a timeout warning.  Stopped: an unreachable warning, quickly.  Both keep
    the cursor, and a URI with credentials never shows them.  The server is then started
    again in the background; ``test_recovers_after_restart`` waits for it."""
    server.up()
    secret_uri = server.uri.replace("://", "://alice:s3cr%40t-pw@")
    caplog.set_level("INFO", logger="octostored.sources.remote")

    async def work(src: RemoteSource) -> None:
        assert (await src.sync()).ok  # the server ignores the basic-auth header
        known = len(src.cursor.digests)
        server.signal(signal.SIGSTOP)
        try:
            t = time.monotonic()
            hung = await src.sync()
            took = time.monotonic() - t
        finally:
            server.signal(signal.SIGCONT)
        assert not hung.ok and hung.error == "timeout" and took < 15, (hung, took)
        assert "did not answer" in hung.warnings[-1]
        assert f"showing its {known} runs" in hung.warnings[-1]
        assert (await src.sync()).ok
        server.stop()
        t = time.monotonic()
        down = await src.sync()
        took = time.monotonic() - t
        assert not down.ok and down.error == "unreachable" and took < 10, (down, took)
        assert down.warnings[-1].startswith(f"cannot reach the MLflow server {server.uri} "
                                            "(connection refused)")
        assert src.cursor is not None and len(src.cursor.digests) == known
        for text in [*hung.warnings, *down.warnings, json.dumps(src.status()),
                     *(r.getMessage() for r in caplog.records)]:
            assert "s3cr" not in text and "alice" not in text, text
        hist_error = None
        try:
            await src.metric_history(logged.ids[0], "acc")
        except Exception as exc:  # noqa: BLE001
            hist_error = str(exc)
        assert hist_error and "s3cr" not in hist_error and "cannot reach" in hist_error
        server.saved_cursor = src.cursor

    try:
        run(_with_source(secret_uri, str(tmp_path), work, timeout=4))
    finally:
        server.start()  # no wait: see the docstring


def test_recovers_after_restart(server: MlflowServer, logged: Logged, tmp_path) -> None:
    """A source with a cursor from before the outage warns while the server is down (or still
    starting), then recovers with an incremental sync that sees what was logged meanwhile."""
    cursor = server.saved_cursor
    if cursor is None or server.healthy():  # run alone: make the outage here
        server.up()
        cursor = run(_with_source(server.uri, str(tmp_path), _sync_cursor))
        server.stop()
        server.start()

    async def work(src: RemoteSource) -> None:
        down = await src.sync()  # refused while the server starts: a warning, no exception
        assert down.ok or down.error == "unreachable", down
        await asyncio.to_thread(server.up)
        up = await src.sync()
        assert up.ok and up.mode == "incremental" and up.warnings == [], up
        rid = logged.client.create_run(logged.exps[0], run_name="after restart").info.run_id
        again = await src.sync()
        assert again.ok and again.mode == "incremental"
        assert [r.run_id for r in again.runs] == [rid]

    run(_with_source(server.uri, str(tmp_path), work, cursor=cursor))


async def _sync_cursor(src: RemoteSource) -> RemoteCursor:
    scan = await src.sync()
    assert scan.ok and src.cursor is not None
    return src.cursor
