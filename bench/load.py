"""Load: many clients querying while MLflow writes runs and metrics; nothing lost, nothing fails.

    .venv/bin/python -m bench.load                       # 50 clients, 60 s, 1,000 lines/s
    .venv/bin/python -m bench.load --clients 20 --seconds 8   # what the CI test runs

A writer thread logs through ``MlflowClient`` into a file store at ``--rate``
metric lines a second (``log_batch`` into the live runs, a new run every
second, the oldest live run finished, now and then one deleted), while
``--clients`` threads, each with its own connection, issue a mix of queries:
filtered and sorted searches, ``since_clock`` polls, run details, metric
histories, experiments, insights and status.  When the time is up the writer
stops, the daemon is synced, and its index must equal MLflow's view of the store:
every run, param, tag, status, latest metric and every metric history.  Any
client error or any difference is a failure.  Prints latency percentiles per
method (p50, p90, p99, max) and the write rate reached.

The test (``tests/test_reliability_load.py``) calls :func:`run_load` with CI sizes
against the conftest daemon; this script starts its own daemon and store.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from octostored.client import Client

WRITE_TICK = 0.05
"""The writer catches up with its target line count this often (seconds)."""
LIVE_RUNS = 8
KEYS = ("loss", "acc", "lr")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


@dataclass
class Report:
    clients: int
    seconds: float
    target_rate: int
    lines: int = 0
    runs_created: int = 0
    write_seconds: float = 0.0
    calls: int = 0
    errors: list[str] = field(default_factory=list)
    latency: dict[str, list[float]] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)
    compared_runs: int = 0
    compared_histories: int = 0
    settle_seconds: float = 0.0
    """How long after the writer stopped the live index took to equal MLflow's view."""

    @property
    def rate(self) -> float:
        return self.lines / self.write_seconds if self.write_seconds else 0.0

    def all_latencies(self) -> list[float]:
        return [x for xs in self.latency.values() for x in xs]

    def p99(self) -> float:
        return pct(self.all_latencies(), 0.99)

    def summary(self) -> dict[str, Any]:
        def row(xs: list[float]) -> dict[str, Any]:
            return {"n": len(xs), "p50_ms": round(pct(xs, 0.5) * 1000, 1),
                    "p90_ms": round(pct(xs, 0.9) * 1000, 1),
                    "p99_ms": round(pct(xs, 0.99) * 1000, 1),
                    "max_ms": round(max(xs) * 1000, 1) if xs else None}

        return {
            "clients": self.clients, "seconds": self.seconds, "calls": self.calls,
            "errors": len(self.errors), "lines_written": self.lines,
            "write_rate": round(self.rate), "target_rate": self.target_rate,
            "runs_created": self.runs_created, "compared_runs": self.compared_runs,
            "compared_histories": self.compared_histories,
            "differences": len(self.differences),
            "settle_s": round(self.settle_seconds, 2),
            "all": row(self.all_latencies()),
            "by_method": {m: row(xs) for m, xs in sorted(self.latency.items())},
        }

    def table(self) -> str:
        s = self.summary()
        lines = [f"{s['clients']} clients for {s['seconds']} s: {s['calls']} calls, "
                 f"{s['errors']} errors; writer {s['lines_written']} metric lines "
                 f"({s['write_rate']}/s of {s['target_rate']}/s), {s['runs_created']} runs; "
                 f"final index vs MLflow: {s['compared_runs']} runs, "
                 f"{s['compared_histories']} histories, {s['differences']} differences "
                 f"(live index equal {s['settle_s']} s after the writer stopped)",
                 f"{'method':<28}{'n':>7}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"]
        for name, r in [*s["by_method"].items(), ("all", s["all"])]:
            lines.append(f"{name:<28}{r['n']:>7}{r['p50_ms']:>9}{r['p90_ms']:>9}"
                         f"{r['p99_ms']:>9}{r['max_ms']:>9}")
        return "\n".join(lines)


class Writer(threading.Thread):
    """Logs into the store the way a training loop does, at ``rate`` metric lines a second."""

    def __init__(self, tracking_uri: str, experiment_id: str, rate: int, report: Report,
                 stop: threading.Event) -> None:
        super().__init__(name="writer", daemon=True)
        from mlflow import MlflowClient

        self.mlf = MlflowClient(tracking_uri=tracking_uri)
        self.exp = experiment_id
        self.rate = rate
        self.report = report
        self.stop = stop
        self.steps: dict[str, int] = {}
        self.live: list[str] = []
        self.finished: list[str] = []
        self.error: BaseException | None = None
        self.rng = random.Random(1)

    def new_run(self) -> None:
        from mlflow.entities import Param, RunTag

        i = self.report.runs_created
        rid = self.mlf.create_run(self.exp, run_name=f"load-{i}").info.run_id
        self.mlf.log_batch(rid, params=[Param("lr", str(10 ** -(i % 4))),
                                        Param("model", self.rng.choice(["rf", "mlp", "lin"]))],
                           tags=[RunTag("team", "ab"[i % 2])])
        self.live.append(rid)
        self.steps[rid] = 0
        self.report.runs_created += 1

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported by run_load
            self.error = exc

    def _run(self) -> None:
        from mlflow.entities import Metric

        for _ in range(LIVE_RUNS):
            self.new_run()
        start = time.perf_counter()
        next_run = start + 1.0
        while not self.stop.is_set():
            now = time.perf_counter()
            due = int((now - start) * self.rate) - self.report.lines
            if due > 0:
                per_run: dict[str, list[Any]] = {}
                ts = int(time.time() * 1000)
                for n in range(due):
                    rid = self.live[n % len(self.live)]
                    step = self.steps[rid]
                    key = KEYS[step % len(KEYS)]
                    value = math.nan if step % 97 == 96 else 1.0 / (step + 1)
                    per_run.setdefault(rid, []).append(Metric(key, value, ts, step))
                    self.steps[rid] = step + 1
                for rid, metrics in per_run.items():
                    self.mlf.log_batch(rid, metrics=metrics)
                self.report.lines += due
            if now >= next_run:
                next_run += 1.0
                self.new_run()
                done = self.live.pop(0)
                self.mlf.set_terminated(done, "FINISHED" if len(self.finished) % 5 else "FAILED")
                self.finished.append(done)
                if len(self.finished) % 4 == 0:
                    self.mlf.delete_run(self.finished[-2])
            self.report.write_seconds = time.perf_counter() - start
            self.stop.wait(WRITE_TICK)


def client_loop(i: int, sock: str, root: str, until: float, report: Report,
                lock: threading.Lock) -> None:
    rng = random.Random(100 + i)
    mix = [("octostore/runs", 3), ("octostore/runs since_clock", 2), ("octostore/run", 3),
           ("octostore/metric_history", 3), ("octostore/experiments", 1),
           ("octostore/insights", 1), ("octostore/status", 1)]
    names = [m for m, w in mix for _ in range(w)]
    ids: list[str] = []
    clock: str | None = None
    lat: dict[str, list[float]] = {}
    errors: list[str] = []
    calls = 0
    try:
        c = Client(sock, autostart=False, timeout=60)
    except Exception as exc:  # noqa: BLE001 - counted
        with lock:
            report.errors.append(f"client {i}: cannot connect: {exc}")
        return
    with c:
        while time.perf_counter() < until:
            name = rng.choice(names)
            if name in ("octostore/run", "octostore/metric_history") and not ids:
                name = "octostore/runs"
            method = name.split()[0]
            if name == "octostore/runs":
                params: dict[str, Any] = {
                    "root": root, "limit": 50, "view": rng.choice(["active", "all"]),
                    "filter": rng.choice([None, "metrics.loss < 0.05", "params.model = 'rf'",
                                          "tags.team = 'a' and metrics.acc > 0"]),
                    "order_by": rng.choice([None, ["metrics.loss ASC"],
                                            ["attributes.start_time DESC"]])}
            elif name == "octostore/runs since_clock":
                params = {"root": root, "view": "all", "since_clock": clock, "limit": 10_000}
            elif name == "octostore/run":
                params = {"root": root, "run_id": rng.choice(ids)}
            elif name == "octostore/metric_history":
                params = {"root": root, "run_ids": rng.sample(ids, min(3, len(ids))),
                          "keys": list(KEYS), "max_points": 200}
            elif name == "octostore/status":
                params = {}
            else:
                params = {"root": root}
            t = time.perf_counter()
            try:
                out = c.call(method, params)
            except Exception as exc:  # noqa: BLE001 - every failure is reported
                errors.append(f"client {i} {name}: {type(exc).__name__}: {exc}")
                break
            lat.setdefault(name, []).append(time.perf_counter() - t)
            calls += 1
            if method == "octostore/runs":
                if name.endswith("since_clock"):
                    clock = out["clock"]
                ids = list(dict.fromkeys(ids + [r["run_id"] for r in out["runs"]]))[-200:]
    with lock:
        report.calls += calls
        report.errors.extend(errors)
        for k, v in lat.items():
            report.latency.setdefault(k, []).extend(v)


def _json_value(v: float) -> Any:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def mlflow_view(tracking_uri: str) -> tuple[Any, dict[str, dict[str, Any]]]:
    """MLflow's own answer for every run, in the shape the daemon's rows have."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    mlf = MlflowClient(tracking_uri=tracking_uri)
    exps = [e.experiment_id for e in mlf.search_experiments(view_type=ViewType.ALL)]
    out = {}
    for r in mlf.search_runs(exps, run_view_type=ViewType.ALL, max_results=50_000):
        out[r.info.run_id] = {
            "status": r.info.status, "lifecycle_stage": r.info.lifecycle_stage,
            "end_time": r.info.end_time, "run_name": r.info.run_name,
            "params": r.data.params, "tags": r.data.tags,
            "metrics": {k: _json_value(v) for k, v in r.data.metrics.items()}}
    return mlf, out


def daemon_view(rows: Any) -> dict[str, dict[str, Any]]:
    fields = ("status", "lifecycle_stage", "end_time", "run_name", "params", "tags", "metrics")
    return {r["run_id"]: {f: r[f] for f in fields} for r in rows}


def differences(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    out = []
    if set(got) != set(want):
        out.append(f"runs: missing {sorted(set(want) - set(got))[:5]}, "
                   f"extra {sorted(set(got) - set(want))[:5]}")
    for rid in sorted(set(got) & set(want)):
        for f in want[rid]:
            if got[rid][f] != want[rid][f]:
                out.append(f"{rid} {f}: daemon {got[rid][f]!r} != mlflow {want[rid][f]!r}")
    return out


def compare_with_mlflow(sock: str, root: str, tracking_uri: str, report: Report,
                        follower: dict[str, Any], settle: float = 30.0) -> None:
    """The daemon's index must come to equal MLflow's view of the store.

    First live, without ``octostore/sync``: the watcher and the incremental reads alone
    must get there (a lost event never would) within ``settle`` seconds.  Then a client
    that only ever applied ``since_clock`` deltas must hold the same view.  Then, after a
    sync, every metric history must equal MLflow's.
    """
    mlf, want = mlflow_view(tracking_uri)
    with Client(sock, autostart=False, timeout=120) as c:
        started = time.perf_counter()
        while True:
            rows = c.call("octostore/runs", root=root, view="all", limit=10_000)["runs"]
            diffs = differences(daemon_view(rows), want)
            if not diffs or time.perf_counter() - started > settle:
                break
            time.sleep(0.05)  # polling a deadline, not waiting for a guess
        report.settle_seconds = time.perf_counter() - started
        report.differences.extend(f"live: {d}" for d in diffs)
        follow(c, root, follower)
        report.differences.extend(f"since_clock: {d}" for d in differences(
            daemon_view(follower["runs"].values()), want))
        c.call("octostore/sync", root=root)
        got = daemon_view(c.call("octostore/runs", root=root, view="all", limit=10_000)["runs"])
        report.differences.extend(f"synced: {d}" for d in differences(got, want))
        report.compared_runs = len(set(got) & set(want))
        for rid in sorted(set(got) & set(want)):
            keys = sorted(want[rid]["metrics"])
            if not keys:
                continue
            series = c.call("octostore/metric_history", root=root, run_ids=[rid], keys=keys,
                            max_points=100_000)["series"]
            for s in series:
                hist = sorted(mlf.get_metric_history(rid, s["key"]), key=lambda m: m.step)
                theirs = ([m.step for m in hist], [_json_value(m.value) for m in hist])
                if (s["x"], s["y"]) != theirs:
                    report.differences.append(f"{rid} history {s['key']}: daemon "
                                              f"{len(s['x'])} points, mlflow {len(hist)}")
                report.compared_histories += 1


def follow(c: Client, root: str, state: dict[str, Any]) -> None:
    """Apply what changed since the follower's clock to its copy of the index."""
    out = c.call("octostore/runs", root=root, view="all", limit=10_000,
                 since_clock=state.get("clock"))
    if out["is_fresh_instance"]:
        state["runs"] = {}
    for r in out["runs"]:
        state["runs"][r["run_id"]] = r
    for rid in out["removed"]:
        state["runs"].pop(rid, None)
    state["clock"] = out["clock"]


def follower_loop(sock: str, root: str, until: float, state: dict[str, Any],
                  report: Report, lock: threading.Lock) -> None:
    """One more client that keeps a copy of the index from since_clock deltas alone."""
    try:
        with Client(sock, autostart=False, timeout=60) as c:
            while time.perf_counter() < until:
                follow(c, root, state)
    except Exception as exc:  # noqa: BLE001 - reported
        with lock:
            report.errors.append(f"follower: {type(exc).__name__}: {exc}")


def run_load(sock: str, root: str, tracking_uri: str, experiment_id: str, *, clients: int,
             seconds: float, rate: int) -> Report:
    """Run the load against a running daemon serving ``root``; return what happened."""
    report = Report(clients, seconds, rate)
    with Client(sock, autostart=False, timeout=120) as c:
        c.call("octostore/open", root=root)
    stop = threading.Event()
    writer = Writer(tracking_uri, experiment_id, rate, report, stop)
    writer.start()
    lock = threading.Lock()
    until = time.perf_counter() + seconds
    follower: dict[str, Any] = {"runs": {}, "clock": None}
    threads = [threading.Thread(target=client_loop, args=(i, sock, root, until, report, lock),
                                daemon=True) for i in range(clients)]
    threads.append(threading.Thread(target=follower_loop, daemon=True,
                                    args=(sock, root, until, follower, report, lock)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    stop.set()
    writer.join(60)
    if writer.error is not None:
        report.errors.append(f"writer: {type(writer.error).__name__}: {writer.error}")
    if any(t.is_alive() for t in threads):
        report.errors.append("a client did not finish within two minutes of the end")
    compare_with_mlflow(sock, root, tracking_uri, report, follower)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=int, default=1000, help="metric lines a second")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON too")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args(argv)
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow import MlflowClient

    from .daemon import Daemon

    base = tempfile.mkdtemp(prefix="oct-load-", dir="/tmp")
    root = os.path.join(base, "repo")
    os.makedirs(root)
    uri = "file://" + os.path.join(root, "mlruns")
    exp = MlflowClient(tracking_uri=uri).create_experiment("load")
    d = Daemon(os.path.join(base, "d"))
    d.start()
    try:
        report = run_load(d.socket, root, uri, exp, clients=args.clients, seconds=args.seconds,
                          rate=args.rate)
        print(report.table())
        print(f"daemon peak RSS {d.memory_mb().get('VmHWM', 0):.0f} MB, CPU {d.cpu_s():.1f} s")
        if args.json:
            print(json.dumps(report.summary()))
        for line in (report.errors + report.differences)[:20]:
            print("FAIL", line, file=sys.stderr)
        return 1 if report.errors or report.differences else 0
    finally:
        d.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
