"""Remote source: first sync and incremental syncs of N runs against a real ``mlflow server``.

    .venv/bin/python -m bench.remote_sync                # 1,000 runs
    .venv/bin/python -m bench.remote_sync --runs 10000 --reps 3 --json out.json

Setup (not timed as a result): the synthetic store of :mod:`bench.generate` (N runs, ~12
params, 8 metrics, 10 tags each; ~6% RUNNING and 2% SCHEDULED, as stale runs are on real
servers), bulk-loaded into an ``mlflow.db`` that MLflow itself created (the server's SQLite
backend is written before it starts: logging N runs through REST takes minutes), then
``mlflow server --backend-store-uri sqlite:///... --host 127.0.0.1 --port <free>``.

Measured, each the median of ``--reps``:

* ``MLflow search_runs (all pages)``: MLflow's own client paging through every run, in an
  MLflow process (:mod:`bench.mlflow_worker`): the floor for any REST reader.
* ``first sync, cold``: a new :class:`~octostored.sources.remote.RemoteSource`, so it
  includes starting the worker (importing MLflow); measured once.
* ``full sync`` (warm worker), ``incremental sync, nothing changed``, ``incremental sync
  after --new new runs and a metric``, ``listing sync`` (the periodic one that re-reads
  everything and sends back only what changed).

For each: wall time seen by the caller, the worker's time in REST calls, the daemon
process's CPU (JSON decode and record building: what the daemon pays), REST requests and
runs sent over the pipe.  This harness process plays the daemon and never imports MLflow.

Then the same server through a real daemon (``octostored`` on a private socket, its poll
interval set high so that every measured sync is the one ``octostore/sync`` asks for), on
a folder whose ``pyproject.toml`` names the server:

* ``daemon: first sync``: ``octostore/open`` on a fresh daemon until the server's source lists
  every run (worker start, the poll loop's full sync, applying the runs to the index);
* ``daemon: incremental sync, nothing changed`` and ``daemon: incremental sync after --new
  new runs and a metric``: ``octostore/sync`` until it returns, the new runs then listed.

Daemon CPU is the daemon process's own (the worker is a separate process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

from bench.daemon import Daemon
from bench.generate import Spec, default_experiments, generate, store_paths
from bench.sqlite_load import bulk_load
from bench.worker_client import MlflowWorker
from octostored.sources.remote import RemoteSource, SyncPolicy

NEW_RUNS_SCRIPT = r"""
import json, sys, time
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
uri, exp, n, live = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = MlflowClient(uri)
for line in sys.stdin:
    ids = []
    now = int(time.time() * 1000)
    for i in range(n):
        rid = c.create_run(exp, run_name=f"new-{now}-{i}").info.run_id
        c.log_batch(rid, metrics=[Metric("m1", i / n, now, 0)], params=[Param("k", str(i))])
        c.set_terminated(rid)
        ids.append(rid)
    c.log_metric(live, "live", float(now % 1000), step=now % 100000)
    print("@@" + json.dumps({"ids": ids}), flush=True)
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(uri + "/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def start_server(base: str, db: str) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    env.pop("MLFLOW_TRACKING_URI", None)
    t = time.perf_counter()
    with open(os.path.join(base, "server.log"), "ab") as out:
        proc = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "mlflow"), "server",
             "--backend-store-uri", f"sqlite:///{db}",
             "--default-artifact-root", os.path.join(base, "artifacts"),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=base, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
            start_new_session=True)
    deadline = time.monotonic() + 300
    while not healthy(uri):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"mlflow server did not start; see {base}/server.log")
        time.sleep(0.2)
    return proc, uri, time.perf_counter() - t


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(15)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


async def timed_sync(src: RemoteSource, full: bool = False) -> dict[str, Any]:
    cpu = time.process_time()
    t = time.perf_counter()
    scan = await src.sync(full=full)
    wall = time.perf_counter() - t
    if not scan.ok:
        raise SystemExit(f"sync failed: {scan.warnings}")
    return {"wall_s": wall, "daemon_cpu_s": time.process_time() - cpu,
            "server_s": scan.stats.get("server_seconds", 0.0),
            "worker_start_s": scan.stats.get("worker_start_seconds"),
            "requests": scan.stats.get("requests"), "listed": scan.stats.get("listed"),
            "sent": scan.stats.get("sent"), "runs": len(scan.runs), "mode": scan.mode,
            "scan": scan}


def med(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


async def measure(uri: str, cache: str, reps: int, new: int, helper: subprocess.Popen[str],
                  worker: MlflowWorker, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    base_rows = [worker.call("list_all", uri=uri) for _ in range(reps)]
    out["mlflow_search_all"] = {"wall_s": statistics.median(r["wall_s"] for r in base_rows),
                                "count": base_rows[0]["count"], "pages": base_rows[0]["pages"]}

    policy = SyncPolicy(listing_interval=10**9)
    src = RemoteSource(uri, "bench", cache, policy=policy, timeout=300)
    try:
        cold = await timed_sync(src, full=True)
        assert len(cold["scan"].runs) == n, (len(cold["scan"].runs), n)
        out["first_sync_cold"] = {k: v for k, v in cold.items() if k != "scan"}
        out["unfinished_runs"] = len(src.cursor.unfinished) if src.cursor else 0

        full = [await timed_sync(src, full=True) for _ in range(reps)]
        quiet = [await timed_sync(src) for _ in range(reps)]
        changed = []
        for _ in range(reps):
            ids = log_new_runs(helper)
            row = await timed_sync(src)
            got = {r.run_id for r in row["scan"].runs}
            missing = set(ids) - got
            assert not missing, f"incremental sync missed {len(missing)} new runs"
            changed.append(row)
        policy.listing_interval = policy.listing_load = 0
        listing = [await timed_sync(src) for _ in range(reps)]
        assert all(r["mode"] == "list" for r in listing)
    finally:
        await src.close()

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {"wall_s": med(rows, "wall_s"), "server_s": med(rows, "server_s"),
                "daemon_cpu_s": med(rows, "daemon_cpu_s"), "requests": rows[-1]["requests"],
                "listed": rows[-1]["listed"], "sent": rows[-1]["sent"],
                "runs_returned": rows[-1]["runs"], "all_wall_s": [r["wall_s"] for r in rows]}

    out["full_sync"] = summary(full)
    out["incremental_nothing_changed"] = summary(quiet)
    out[f"incremental_{new}_new_runs_and_a_metric"] = summary(changed)
    out["listing_sync"] = summary(listing)
    return out


def log_new_runs(helper: subprocess.Popen[str]) -> list[str]:
    assert helper.stdin is not None and helper.stdout is not None
    helper.stdin.write("go\n")
    helper.stdin.flush()
    line = ""
    while not line.startswith("@@"):  # MLflow prints "View run ..." lines too
        line = helper.stdout.readline()
        if not line:
            raise SystemExit("the run-logging helper died")
    return json.loads(line[2:])["ids"]


def measure_daemon(uri: str, base: str, reps: int, helper: subprocess.Popen[str],
                   n: int) -> dict[str, Any]:
    """First and incremental syncs of the server through a real daemon."""
    root = os.path.join(base, "root")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "pyproject.toml"), "w") as f:
        f.write(f'[tool.octostore]\nstores = ["{uri}"]\n')
    saved = {k: os.environ.get(k) for k in ("OCTOSTORE_REMOTE_INTERVAL",
                                             "OCTOSTORE_REMOTE_SYNC_WAIT")}
    os.environ.update(OCTOSTORE_REMOTE_INTERVAL="3600", OCTOSTORE_REMOTE_SYNC_WAIT="600")
    daemon = Daemon(os.path.join(base, "daemon"))
    out: dict[str, Any] = {}
    try:
        daemon.start()
        with daemon.client(timeout=900) as c:
            def total(**kw: Any) -> int:
                return c.call("octostore/runs", root=root, view="all", limit=0, **kw)["total"]

            def source() -> dict[str, Any]:
                return next(s for s in c.call("octostore/open", root=root)["sources"]
                            if s["kind"] == "remote")

            def timed(first: bool = False) -> dict[str, Any]:
                cpu = daemon.cpu_s()
                t = time.perf_counter()
                if first:  # the poll loop's first (full) sync, applied
                    deadline = time.monotonic() + 900
                    while (src := source())["runs"] < n and not src.get("warning"):
                        if time.monotonic() > deadline:
                            raise SystemExit("the daemon did not list the server's runs")
                        time.sleep(0.1)  # each look costs the daemon ~1 ms of CPU
                else:
                    c.call("octostore/sync", root=root, timeout=900)
                wall = time.perf_counter() - t
                src = source()
                if src.get("warning"):
                    raise SystemExit(f"daemon sync failed: {src['warning']}")
                stats = src["remote"]["last_sync_stats"]
                return {"wall_s": wall, "daemon_cpu_s": daemon.cpu_s() - cpu,
                        "server_s": stats.get("server_seconds", 0.0),
                        "worker_start_s": stats.get("worker_start_seconds"),
                        "requests": stats.get("requests"), "listed": stats.get("listed"),
                        "sent": stats.get("sent"), "runs": src["runs"],
                        "mode": stats.get("mode")}

            first = timed(first=True)
            assert first["runs"] == n and total() == n, (first, total())
            out["daemon_first_sync"] = first
            quiet = [timed() for _ in range(reps)]
            changed = []
            for _ in range(reps):
                ids = log_new_runs(helper)
                row = timed()
                flt = "attributes.run_id IN (" + ", ".join(f"'{i}'" for i in ids) + ")"
                got = total(filter=flt)
                assert got == len(ids), f"the daemon lists {got} of {len(ids)} new runs"
                changed.append(row)
            assert all(r["mode"] == "incremental" for r in quiet + changed)
    finally:
        daemon.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {"wall_s": med(rows, "wall_s"), "server_s": med(rows, "server_s"),
                "daemon_cpu_s": med(rows, "daemon_cpu_s"), "requests": rows[-1]["requests"],
                "listed": rows[-1]["listed"], "sent": rows[-1]["sent"],
                "all_wall_s": [r["wall_s"] for r in rows]}

    out["daemon_incremental_nothing_changed"] = summary(quiet)
    out["daemon_incremental_new_runs_and_a_metric"] = summary(changed)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=20, help="metric points per metric per run")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--new", type=int, default=10, help="runs logged before each incremental")
    ap.add_argument("--keep", help="work folder to keep (default: a temp folder, removed)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    base = args.keep or tempfile.mkdtemp(prefix="octostore-remote-bench-", dir=shm)
    os.makedirs(base, exist_ok=True)
    worker = MlflowWorker(os.path.join(base, "mlflow-worker.log"))
    proc = helper = None
    try:
        spec = Spec(runs=args.runs, experiments=default_experiments(args.runs), steps=args.steps,
                    long_steps=100)
        store = os.path.join(base, "store")
        t = time.perf_counter()
        manifest = generate(spec, store, log=lambda m: None)
        p = store_paths(store)
        schema = os.path.join(base, "schema.db")
        worker.call("make_schema", path=schema)
        bulk_load(p["mlruns"], p["db"], schema)
        setup_s = time.perf_counter() - t
        log(f"store of {args.runs} runs written in {setup_s:.1f} s; starting mlflow server")
        proc, uri, server_s = start_server(base, p["db"])
        log(f"server {uri} up in {server_s:.1f} s")
        live = (manifest.get("live_runs") or manifest["run_ids"])[0]
        live = live["run_id"] if isinstance(live, dict) else live
        exp = manifest["experiment_ids"][0]
        helper = subprocess.Popen([sys.executable, "-c", NEW_RUNS_SCRIPT, uri, exp,
                                   str(args.new), live], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        figures = asyncio.run(measure(uri, os.path.join(base, "cache"), args.reps, args.new,
                                      helper, worker, args.runs))
        log("through a daemon")
        figures.update(measure_daemon(uri, base, args.reps, helper,
                                      args.runs + args.new * args.reps))
    finally:
        if helper is not None:
            helper.kill()
        if proc is not None:
            stop_server(proc)
        worker.close()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    figures = {"runs": args.runs, "reps": args.reps, "setup_s": round(setup_s, 2),
               "server_start_s": round(server_s, 2), "cpus": os.cpu_count(),
               "load_avg": os.getloadavg()[0], **figures}
    print(report(figures, args.new))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


def report(f: dict[str, Any], new: int) -> str:
    lines = [f"remote source, {f['runs']} runs, median of {f['reps']} "
             f"({f['cpus']} CPUs, load average {f['load_avg']:.1f}; server started in"
             f" {f['server_start_s']:.1f} s)", "",
             "| what | wall s | server s | daemon CPU s | requests | runs listed | runs sent |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    m = f["mlflow_search_all"]
    lines.append(f"| MLflow search_runs, all pages ({m['pages']} pages) | {m['wall_s']:.3f} | | |"
                 f" {m['pages']} | {m['count']} | |")
    c = f["first_sync_cold"]
    lines.append(f"| first sync, cold (worker start {c['worker_start_s'] or 0:.2f} s) |"
                 f" {c['wall_s']:.3f} | {c['server_s']:.3f} | {c['daemon_cpu_s']:.3f} |"
                 f" {c['requests']} | {c['listed']} | {c['sent']} |")
    for key, label in (("full_sync", "full sync, warm worker"),
                       ("incremental_nothing_changed", "incremental, nothing changed"),
                       (f"incremental_{new}_new_runs_and_a_metric",
                        f"incremental, {new} new runs + 1 metric"),
                       ("listing_sync", "listing (periodic, sends only changes)")):
        r = f[key]
        lines.append(f"| {label} | {r['wall_s']:.3f} | {r['server_s']:.3f} |"
                     f" {r['daemon_cpu_s']:.3f} | {r['requests']} | {r['listed']} | {r['sent']} |")
    d = f["daemon_first_sync"]
    lines.append(f"| daemon: first sync, open to every run listed (worker start"
                 f" {d['worker_start_s'] or 0:.2f} s) | {d['wall_s']:.3f} | {d['server_s']:.3f} |"
                 f" {d['daemon_cpu_s']:.3f} | {d['requests']} | {d['listed']} | {d['sent']} |")
    for key, label in (("daemon_incremental_nothing_changed",
                        "daemon: octostore/sync, nothing changed"),
                       ("daemon_incremental_new_runs_and_a_metric",
                        f"daemon: octostore/sync, {new} new runs + 1 metric")):
        r = f[key]
        lines.append(f"| {label} | {r['wall_s']:.3f} | {r['server_s']:.3f} |"
                     f" {r['daemon_cpu_s']:.3f} | {r['requests']} | {r['listed']} | {r['sent']} |")
    lines.append("")
    lines.append(f"{f['unfinished_runs']} runs are RUNNING or SCHEDULED: every incremental sync"
                 " re-reads them (the status and by-id queries).")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
