"""The benchmark harness: ``python -m bench`` (or ``python bench/run.py``).

For each size N it makes (or reuses) a file store and an SQLite store of the
same runs, checks a sample with MLflow's own client, then measures octostore
and MLflow side by side on that data and writes a table of medians, min-max
and ratios to ``bench/results/<date>-<machine>.md`` (with the raw figures in
the ``.json`` beside it).  docs/benchmarks.md explains every row.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import report  # noqa: E402
from bench.daemon import Daemon  # noqa: E402
from bench.generate import Spec, default_experiments, generate, load_manifest, save_manifest  # noqa: E402
from bench.stats import summary  # noqa: E402
from bench.worker_client import REPO, MlflowWorker  # noqa: E402
from octostored.client import Timeout  # noqa: E402

FILTER = "metrics.m1 < 0.5 and params.model = 'rf'"
ORDER = ["metrics.m2 DESC"]
TUI_SCRIPT = os.path.join(REPO, "bench", "tui_first_screen.py")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- stores ---------------------------------------------------------------------------------
def ensure_stores(spec: Spec, stores_dir: str, worker: MlflowWorker, migrate_max_points: int,
                  force: bool = False) -> dict[str, Any]:
    """The stores for ``spec``: reused when their manifest says they are complete."""
    base = os.path.join(os.path.abspath(stores_dir), spec.name)
    manifest = None if force else load_manifest(base)
    if manifest is None or manifest.get("spec") != spec.__dict__:
        log(f"generating the file store ({spec.runs} runs) in {base}")
        manifest = generate(spec, base, log=log)
        log(f"  generated in {manifest['generate_s']:.1f} s")
    if not manifest.get("sqlite"):
        manifest["sqlite"] = build_sqlite(manifest, stores_dir, worker, migrate_max_points)
        save_manifest(base, manifest)
    return manifest


def schema_db(stores_dir: str, worker: MlflowWorker) -> str:
    """An empty database at MLflow's head, made once by MLflow itself and cached."""
    version = worker.call("hello")["mlflow"]
    path = os.path.join(os.path.abspath(stores_dir), f"mlflow-{version}-schema.db")
    if not os.path.exists(path):
        log("creating MLflow's empty schema (alembic) for the bulk loader")
        tmp = path + ".tmp"
        if os.path.exists(tmp):
            os.unlink(tmp)
        worker.call("make_schema", path=tmp)
        os.replace(tmp, path)
    return path


def build_sqlite(manifest: dict, stores_dir: str, worker: MlflowWorker,
                 migrate_max_points: int) -> dict[str, Any]:
    from bench.sqlite_load import bulk_load, migrate_filestore

    p = manifest["paths"]
    spec = manifest["spec"]
    points = spec["runs"] * (8 * spec["steps"]) + spec["long_steps"]
    if points <= migrate_max_points:
        log(f"making mlflow.db with `mlflow migrate-filestore` ({points} metric points)")
        wall = migrate_filestore(p["file_root"], p["db"], os.path.join(p["base"], "migrate.log"))
        return {"method": "mlflow migrate-filestore", "wall_s": wall}
    log(f"making mlflow.db with the bulk loader ({points} metric points; migrate-filestore "
        f"would take ~{points / 7000 / 60:.0f} min)")
    out = bulk_load(p["mlruns"], p["db"], schema_db(stores_dir, worker))
    return {"method": "bulk loader (= migrate-filestore rows, tested)", "wall_s": out["wall_s"],
            "counts": out["counts"]}


def du(path: str) -> tuple[int, int, int]:
    """(files, bytes on disk, folders) under ``path``."""
    files = size = folders = 0
    for dirpath, _dirs, names in os.walk(path):
        folders += 1
        for n in names:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except OSError:
                continue
            files += 1
            size += st.st_blocks * 512
    return files, size, folders


def ensure_inotify(folders: int) -> dict[str, Any]:
    """Make room for one inotify watch per folder: the daemon watches within half the per-user
    limit and polls beyond it (slowly, at 100k runs), which is not what this harness measures.
    As root the limit is raised (and reported); otherwise the table says the daemon polled."""
    path = "/proc/sys/fs/inotify/max_user_watches"
    try:
        with open(path) as f:
            limit = int(f.read())
    except (OSError, ValueError):
        return {"max_user_watches": None}
    want = 2 * (folders + 1_000)  # the daemon's budget is half (the rest is other programs')
    out: dict[str, Any] = {"max_user_watches": limit, "needed": folders}
    if limit >= want:
        return out
    try:
        with open(path, "w") as f:
            f.write(str(want))
        out["raised_to"] = want
        log(f"  raised fs.inotify.max_user_watches {limit} -> {want} for {folders} folders")
    except OSError as exc:
        out["polling"] = True
        log(f"  WARNING: {folders} folders need fs.inotify.max_user_watches >= {want} (now {limit}, "
            f"{exc.strerror}); the daemon will poll and the update rows measure polling")
    return out


# -- the raw limit --------------------------------------------------------------------------
def read_every_file(top: str, parse: bool = False) -> dict[str, float]:
    """Read every file of the store in a tight loop (optionally parse every metric line)."""
    t, c = time.perf_counter(), time.process_time()
    files = size = points = 0
    for dirpath, _dirs, names in os.walk(top):
        is_metrics = parse and os.path.basename(dirpath) == "metrics"
        for n in names:
            with open(os.path.join(dirpath, n), "rb") as f:
                data = f.read()
            files += 1
            size += len(data)
            if is_metrics:
                for line in data.splitlines():
                    ts, v, step = line.split(b" ")
                    int(ts), float(v), int(step)
                    points += 1
    return {"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c, "files": files,
            "bytes": size, "points": points}


# -- comparing octostore with MLflow --------------------------------------------------------
def daemon_rows(c: Any, root: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = c.call("octostore/runs", root=root, view="all", limit=10_000, offset=offset)
        rows.extend(page["runs"])
        offset = page["next_offset"]
    return rows


FIELDS = ("experiment_id", "run_name", "status", "lifecycle_stage", "start_time", "end_time",
          "artifact_uri", "params", "tags", "metrics")


def compare_rows(ours: list[dict], theirs: list[dict]) -> dict[str, Any]:
    a = {r["run_id"]: r for r in ours}
    b = {r["run_id"]: r for r in theirs}
    diffs = []
    equal = 0
    for rid in sorted(set(a) | set(b)):
        if rid not in a:
            diffs.append(f"{rid}: only MLflow lists it")
        elif rid not in b:
            diffs.append(f"{rid}: only octostore lists it")
        else:
            bad = [f"{rid}: {f}: octostore {a[rid].get(f)!r} != MLflow {b[rid].get(f)!r}"
                   for f in FIELDS if a[rid].get(f) != b[rid].get(f)]
            diffs.extend(bad)
            equal += not bad
    return {"runs": len(b), "equal": equal, "diffs": len(diffs), "first_diffs": diffs[:5]}


def wait_ready(c: Any, root: str, timeout: float = 900) -> str:
    """Poll status until ``root`` is ``ready`` (or ``failed``, or the timeout): its state."""
    deadline = time.perf_counter() + timeout
    state = ""
    while time.perf_counter() < deadline:
        states = [x["state"] for x in c.call("octostore/status")["roots"] if x["root"] == root]
        state = states[0] if states else ""
        if state in ("ready", "failed"):
            break
        time.sleep(0.01)
    return state


# -- daemon phases --------------------------------------------------------------------------
class Phases:
    def __init__(self, manifest: dict, worker: MlflowWorker, a: argparse.Namespace, tmp: str) -> None:
        self.m = manifest
        self.p = manifest["paths"]
        self.w = worker
        self.a = a
        self.tmp = tmp
        self.n = 0
        self.file_uri = "file://" + self.p["mlruns"]
        self.sqlite_uri = "sqlite:///" + self.p["db"]
        self.r: dict[str, Any] = {}
        self.startups: list[float] = []

    def new_daemon(self, cache: str | None = None) -> Daemon:
        self.n += 1
        return Daemon(os.path.join(self.tmp, f"d{self.n}"), cache)

    # cold index ---------------------------------------------------------------------------
    def cold(self, kind: str, mlflow_rows: list[dict] | None) -> str:
        root = self.p["file_root" if kind == "file" else "sqlite_root"]
        walls, cpus, rss, per_rep, ready_walls, ready_cpus, kids = [], [], [], [], [], [], []
        last_cache = ""
        for rep in range(self.a.reps):
            d = self.new_daemon()
            self.startups.append(d.start())
            try:
                with d.client() as c:
                    cpu0 = d.cpu_s()
                    t = time.perf_counter()
                    info = c.call("octostore/open", root=root)  # answers with every run
                    walls.append(time.perf_counter() - t)
                    cpus.append(d.cpu_s() - cpu0)
                    per_rep.append({"state": info["state"], "runs": info["runs"]})
                    # Then the watch is armed and the store re-checked for what changed
                    # during the unwatched first read (state "verifying" -> "ready").
                    state = wait_ready(c, root)
                    ready_walls.append(time.perf_counter() - t)
                    ready_cpus.append(d.cpu_s() - cpu0)
                    kids.append(d.children_rss_mb())
                    if state != "ready" or info["runs"] != len(self.m["run_ids"]):
                        raise RuntimeError(f"cold index of {root}: state {info['state']}, "
                                           f"{info['runs']} runs, expected {len(self.m['run_ids'])}")
                    if rep == 0 and mlflow_rows is not None:
                        self.r[f"agree_{kind}"] = compare_rows(daemon_rows(c, root), mlflow_rows)
                d.wait_snapshot()
                rss.append(d.memory_mb()["VmHWM"])
            finally:
                d.stop()
            last_cache = d.cache
            log(f"  cold index {kind} rep {rep + 1}: every run answers after {walls[-1]:.2f} s wall, "
                f"{cpus[-1]:.2f} s CPU; watching and re-checked after {ready_walls[-1]:.2f} s wall, "
                f"{ready_cpus[-1]:.2f} s CPU; peak RSS {rss[-1]:.0f} MB")
        self.r[f"cold_{kind}"] = summary(walls)
        self.r[f"cold_{kind}_cpu"] = summary(cpus)
        self.r[f"cold_{kind}_ready"] = summary(ready_walls)
        self.r[f"cold_{kind}_ready_cpu"] = summary(ready_cpus)
        self.r[f"rss_cold_{kind}"] = summary(rss)
        self.r[f"rss_watchers_{kind}"] = summary(kids)
        return last_cache

    # warm start ---------------------------------------------------------------------------
    def warm(self, cache: str) -> None:
        root = self.p["file_root"]
        opens, totals, verified = [], [], []
        for rep in range(self.a.reps):
            d = self.new_daemon(cache)
            proc_s = d.start()
            try:
                with d.client() as c:
                    t = time.perf_counter()
                    c.call("octostore/runs", root=root, limit=1)
                    opens.append(time.perf_counter() - t)
                    totals.append(proc_s + opens[-1])
                    wait_ready(c, root)
                    verified.append(time.perf_counter() - t)
            finally:
                d.stop()
            log(f"  warm start rep {rep + 1}: first answer {opens[-1] * 1000:.0f} ms after open "
                f"({totals[-1]:.2f} s from process start), verified after {verified[-1]:.2f} s")
        self.r["warm_open"] = summary(opens)
        self.r["warm_total"] = summary(totals)
        self.r["warm_verified"] = summary(verified)

    # queries, updates, concurrency (one warm daemon with both roots) -----------------------
    def live(self, cache: str) -> None:
        a = self.a
        d = self.new_daemon(cache)
        d.start()
        froot, sroot = self.p["file_root"], self.p["sqlite_root"]
        try:
            with d.client() as c:
                for root in (froot, sroot):
                    c.call("octostore/open", root=root)
                    c.call("octostore/sync", root=root)
                d.wait_idle()  # the snapshot write and watch setup: not part of a query
                self.queries(c, froot, sroot)
            self.updates(d, froot, sroot)
            self.concurrency(d, froot)
            self.r["rss_all"] = summary([d.memory_mb()["VmHWM"]])
        finally:
            d.stop()

    def _lat(self, c: Any, n: int, method: str, make: Any) -> tuple[dict, Any]:
        xs, res = [], None
        for i in range(n):
            args = make(i)
            t = time.perf_counter()
            res = c.call(method, args)
            xs.append(time.perf_counter() - t)
        return summary(xs), res

    def queries(self, c: Any, froot: str, sroot: str) -> None:
        a, m = self.a, self.m
        rng = random.Random(1)
        ids = m["run_ids"]
        q = a.query_calls
        search = lambda root: lambda i: {"root": root, "filter": FILTER, "order_by": ORDER,  # noqa: E731
                                         "limit": 100}
        self.r["q_filter_file"], res_f = self._lat(c, q, "octostore/runs", search(froot))
        self.r["q_filter_sqlite"], res_s = self._lat(c, q, "octostore/runs", search(sroot))
        ml = self.w.call("search", uri=self.sqlite_uri, filter=FILTER, order_by=ORDER,
                         max_results=100, reps=a.mlflow_query_reps)
        self.r["mlflow_q_filter_sqlite"] = summary(ml["wall_s"])
        mine_f = [r["run_id"] for r in res_f["runs"]]
        mine_s = [r["run_id"] for r in res_s["runs"]]
        self.r["query_agree"] = {"mlflow": len(ml["ids"]), "file_equal": mine_f == ml["ids"],
                                 "sqlite_equal": mine_s == ml["ids"], "total": res_f["total"]}
        self.r["q_page"], _ = self._lat(c, max(5, q // 4), "octostore/runs",
                                        lambda i: {"root": froot, "limit": 1000})
        ml = self.w.call("search", uri=self.sqlite_uri, filter="", order_by=None,
                         max_results=1000, reps=a.mlflow_query_reps)
        self.r["mlflow_q_page_sqlite"] = summary(ml["wall_s"])
        self.r["q_run"], _ = self._lat(c, q, "octostore/run",
                                       lambda i: {"root": froot, "run_id": rng.choice(ids)})
        ml = self.w.call("get_run", uri=self.sqlite_uri, run_ids=ids[:50],
                         reps=max(5, a.mlflow_query_reps * 2))
        self.r["mlflow_q_run_sqlite"] = summary(ml["wall_s"])
        hist = lambda i: {"root": froot, "run_ids": [m["long_run"]], "keys": ["m_long"],  # noqa: E731
                          "max_points": 500}
        self.r["q_hist_first"], res = self._lat(c, 1, "octostore/metric_history", hist)
        self.r["q_hist"], res = self._lat(c, q, "octostore/metric_history", hist)
        series = res["series"][0]
        self.r["hist_shape"] = {"points": series["points"], "returned": len(series["x"])}
        ml = self.w.call("history", uri=self.sqlite_uri, run_id=m["long_run"], key="m_long",
                         reps=a.mlflow_query_reps)
        self.r["mlflow_q_hist_sqlite"] = summary(ml["wall_s"])
        log(f"  queries: filtered p50 {self.r['q_filter_file']['median'] * 1000:.2f} ms "
            f"(MLflow SQLite {self.r['mlflow_q_filter_sqlite']['median'] * 1000:.0f} ms)")

    def _subscriber(self, d: Daemon, roots: list[str], out: queue.Queue, stop: threading.Event,
                    ready: threading.Event) -> None:
        with d.client() as c:
            for root in roots:
                c.call("octostore/subscribe", root=root, name="bench")
            ready.set()
            while not stop.is_set():
                try:
                    n = c.wait_notification("octostore/changed", timeout=0.2)
                except Timeout:
                    continue
                out.put((time.monotonic(), n["params"]))

    def _await(self, q: queue.Queue, run_id: str, since: float, timeout: float = 10.0) -> float | None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                t, params = q.get(timeout=left)
            except queue.Empty:
                return None
            if t >= since and run_id in params.get("runs", []):
                return t

    def updates(self, d: Daemon, froot: str, sroot: str) -> None:
        a, m = self.a, self.m
        q: queue.Queue = queue.Queue()
        stop, ready = threading.Event(), threading.Event()
        th = threading.Thread(target=self._subscriber, args=(d, [froot, sroot], q, stop, ready),
                              daemon=True)
        th.start()
        ready.wait(60)
        rng = random.Random(2)
        live = m["live_runs"]
        file_lat, sqlite_lat, missed = [], [], {"file": 0, "sqlite": 0}
        try:
            for i in range(a.update_events):
                rid = live[i % len(live)]
                exp = m["experiment_ids"][m["run_ids"].index(rid) % len(m["experiment_ids"])]
                path = os.path.join(self.p["mlruns"], exp, rid, "metrics", "live")
                now = int(time.time() * 1000)
                with open(path, "a") as f:
                    f.write(f"{now} {rng.random()!r} {now}\n")
                t0 = time.monotonic()
                t = self._await(q, rid, t0 - 0.001)
                if t is None:
                    missed["file"] += 1
                else:
                    file_lat.append(t - t0)
                time.sleep(rng.uniform(0.05, 0.15))
            for i in range(a.update_events):
                rid = live[i % len(live)]
                now = int(time.time() * 1000)
                w = self.w.call("log_metric", uri=self.sqlite_uri, run_id=rid, key="live",
                                value=rng.random(), timestamp=now, step=now)
                t = self._await(q, rid, w["t_before"])
                if t is None:
                    missed["sqlite"] += 1
                else:
                    sqlite_lat.append(max(0.0, t - w["t_after"]))
                time.sleep(rng.uniform(0.05, 0.15))
        finally:
            stop.set()
            th.join(5)
        self.r["upd_file"] = summary(file_lat)
        self.r["upd_sqlite"] = summary(sqlite_lat)
        self.r["upd_missed"] = missed
        log(f"  updates: file p50 {(self.r['upd_file']['median'] or 0) * 1000:.0f} ms, "
            f"SQLite p50 {(self.r['upd_sqlite']['median'] or 0) * 1000:.0f} ms, missed {missed}")

    def concurrency(self, d: Daemon, froot: str) -> None:
        a, m = self.a, self.m
        ids_path = os.path.join(self.tmp, "run_ids.json")
        with open(ids_path, "w") as f:
            json.dump(m["run_ids"], f)
        stop = threading.Event()
        writes = [0]

        def writer() -> None:
            rng = random.Random(3)
            live = m["live_runs"]
            while not stop.is_set():
                rid = rng.choice(live)
                exp = m["experiment_ids"][m["run_ids"].index(rid) % len(m["experiment_ids"])]
                now = int(time.time() * 1000)
                with open(os.path.join(self.p["mlruns"], exp, rid, "metrics", "live"), "a") as f:
                    f.write(f"{now} {rng.random()!r} {now}\n")
                writes[0] += 1
                stop.wait(0.02)

        th = threading.Thread(target=writer, daemon=True)
        th.start()
        try:
            out = subprocess.run(
                [sys.executable, "-m", "bench.loadgen", "--socket", d.socket, "--root", froot,
                 "--run-ids", ids_path, "--clients", str(a.clients), "--seconds", str(a.concurrency_seconds)],
                cwd=REPO, capture_output=True, text=True, timeout=a.concurrency_seconds + 300,
                env=dict(os.environ, PYTHONPATH=REPO))
        finally:
            stop.set()
            th.join(5)
        if out.returncode != 0:
            raise RuntimeError(f"loadgen failed: {out.stderr[-2000:]}")
        res = json.loads(out.stdout.strip().splitlines()[-1])
        res["writes"] = writes[0]
        self.r["concurrency"] = res
        log(f"  concurrency: {res['throughput']:.0f} req/s, p99 {res['p99'] * 1000:.1f} ms, "
            f"{res['errors']} errors, {writes[0]} appends")

    # start-up and TUI -----------------------------------------------------------------------
    def startup(self) -> None:
        """Process start to first answer, no root open: the cold-index starts plus a few more."""
        xs = list(self.startups)
        for _ in range(self.a.startup_reps):
            d = self.new_daemon()
            try:
                xs.append(d.start())
            finally:
                d.stop()
        self.r["startup"] = summary(xs)

    def tui(self, cache: str | None = None) -> None:
        """bench/tui_first_screen.py's measured process against a daemon with the root indexed."""
        if not os.path.exists(TUI_SCRIPT):
            self.r["tui"] = {"status": "not measured", "why": "bench/tui_first_screen.py does not exist yet"}
            return
        root = self.p["file_root"]
        d = self.new_daemon(cache)
        d.start()
        samples: list[float] = []
        try:
            with d.client() as c:
                c.call("octostore/open", root=root)
                c.call("octostore/sync", root=root)
            env = dict(d.env(), PYTHONPATH=REPO)
            for i in range(self.a.tui_reps + 1):  # the first launch may compile bytecode: not counted
                t0 = time.time()
                out = subprocess.run(
                    [sys.executable, TUI_SCRIPT, "--child", "--socket", d.socket, "--t0", repr(t0),
                     "--timeout", "300", root], cwd=REPO, env=env, capture_output=True, text=True,
                    timeout=400, stdin=subprocess.DEVNULL)
                res = parse_tui(out.returncode, out.stdout, out.stderr)
                if res["status"] != "ok":
                    self.r["tui"] = res
                    return
                if i:
                    samples.append(res["median"])
        except subprocess.TimeoutExpired:
            self.r["tui"] = {"status": "failed", "why": "timed out after 400 s"}
            return
        finally:
            d.stop()
        self.r["tui"] = {"status": "ok", **summary(samples), "runs": res.get("runs")}


def parse_tui(code: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The TUI script's answer: its last JSON line with ``seconds`` (or a bare number)."""
    lines = [x.strip() for x in stdout.strip().splitlines() if x.strip()]
    if code != 0 and not lines:
        return {"status": "failed", "why": (stderr.strip().splitlines() or ["exit " + str(code)])[-1]}
    for last in reversed(lines):
        try:
            val = json.loads(last)
        except ValueError:
            continue
        if isinstance(val, dict) and "error" in val and "seconds" not in val:
            return {"status": "failed", "why": str(val["error"])}
        secs = val.get("seconds") if isinstance(val, dict) else val
        try:
            samples = [float(x) for x in secs] if isinstance(secs, list) else [float(secs)]  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        return {"status": "ok", **summary(samples),
                "runs": val.get("runs") if isinstance(val, dict) else None}
    why = (stderr.strip().splitlines() or [f"exit {code}, no seconds printed"])[-1]
    return {"status": "failed", "why": why}


# -- one size -------------------------------------------------------------------------------
def run_size(n: int, a: argparse.Namespace, worker: MlflowWorker) -> dict[str, Any]:
    spec = Spec(n, a.experiments or default_experiments(n), a.steps, a.long_steps, a.seed)
    t_size = time.perf_counter()
    load0 = os.getloadavg()
    manifest = ensure_stores(spec, a.stores_dir, worker, a.migrate_max_points, a.regenerate)
    p = manifest["paths"]
    files, disk, folders = du(p["mlruns"])
    inotify = ensure_inotify(folders)
    r: dict[str, Any] = {
        "spec": spec.__dict__, "runs": len(manifest["run_ids"]), "deleted": manifest["deleted"],
        "generate_s": manifest["generate_s"], "sqlite": manifest["sqlite"], "files": files,
        "disk_mb": disk / 2**20, "db_mb": os.path.getsize(p["db"]) / 2**20, "folders": folders,
        "inotify": inotify,
    }
    log(f"N={n}: {files} files, {disk / 2**20:.0f} MB on disk; mlflow.db {r['db_mb']:.0f} MB")

    # MLflow reads what we generated.
    for kind, uri in (("file", "file://" + p["mlruns"]), ("sqlite", "sqlite:///" + p["db"])):
        chk = worker.call("check_sample", uri=uri, samples=manifest["samples"])
        r[f"sample_{kind}"] = {"checked": chk["checked"], "problems": len(chk["problems"]),
                               "first_problems": chk["problems"][:5]}

    # The raw limit.
    reads = [read_every_file(p["mlruns"]) for _ in range(a.reps)]
    r["raw_read"] = summary([x["wall_s"] for x in reads])
    r["raw_read_cpu"] = summary([x["cpu_s"] for x in reads])
    log(f"  raw read {r['raw_read']['median']:.2f} s")
    if "parse" not in a.skip:
        parsed = read_every_file(p["mlruns"], parse=True)
        r["raw_parse"] = summary([parsed["wall_s"]])
        log(f"  read + parse {parsed['wall_s']:.2f} s")

    # MLflow listing every run.
    rows: dict[str, list[dict] | None] = {}
    for kind, uri, reps in (("file", "file://" + p["mlruns"], a.mlflow_file_reps),
                            ("sqlite", "sqlite:///" + p["db"], a.reps)):
        if kind == "file" and n > a.mlflow_file_max_runs:
            r["mlflow_list_file"] = {"skipped": f"N > --mlflow-file-max-runs {a.mlflow_file_max_runs}"}
            rows[kind] = None
            continue
        if kind == "sqlite" and "mlflow-sqlite" in a.skip:
            r["mlflow_list_sqlite"] = {"skipped": "--skip mlflow-sqlite"}
            rows[kind] = None
            continue
        walls, cpus = [], []
        for rep in range(reps):
            out = worker.call("list_all", uri=uri, rows=rep == 0)
            if rep == 0:
                rows[kind] = out["rows"]
            if out["count"] != len(manifest["run_ids"]):
                raise RuntimeError(f"MLflow lists {out['count']} runs of {uri}, generated "
                                   f"{len(manifest['run_ids'])}")
            walls.append(out["wall_s"])
            cpus.append(out["cpu_s"])
            log(f"  MLflow lists every run ({kind}): {out['wall_s']:.2f} s wall, "
                f"{out['cpu_s']:.2f} s CPU, {out['pages']} page(s)")
        r[f"mlflow_list_{kind}"] = summary(walls)
        r[f"mlflow_list_{kind}_cpu"] = summary(cpus)

    tmp = tempfile.mkdtemp(prefix="ob-", dir="/tmp")
    try:
        ph = Phases(manifest, worker, a, tmp)
        ph.r = r
        cache = ph.cold("file", rows.get("file"))
        if "sqlite" not in a.skip:
            ph.cold("sqlite", rows.get("sqlite"))
        rows.clear()
        ph.warm(cache)
        if "live" not in a.skip:
            ph.live(cache)
        if "startup" not in a.skip:
            ph.startup()
        if "tui" not in a.skip:
            ph.tui(cache)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    r["load_avg"] = [load0[0], os.getloadavg()[0]]
    r["elapsed_s"] = time.perf_counter() - t_size
    log(f"N={n} done in {r['elapsed_s']:.0f} s")
    return r


def only_tui(n: int, a: argparse.Namespace, worker: MlflowWorker, r: dict[str, Any]) -> dict[str, Any]:
    """Measure the TUI row alone (the daemon indexes the root first) into earlier results."""
    spec = Spec(n, a.experiments or default_experiments(n), a.steps, a.long_steps, a.seed)
    manifest = ensure_stores(spec, a.stores_dir, worker, a.migrate_max_points)
    tmp = tempfile.mkdtemp(prefix="ob-", dir="/tmp")
    try:
        ph = Phases(manifest, worker, a, tmp)
        ph.r = r
        ph.tui()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"N={n}: TUI first screen {r['tui']}")
    return r


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "octostored"], cwd=REPO,
                                    capture_output=True, text=True).stdout.strip())
    except OSError:
        commit, dirty = "", False
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"host": platform.node(), "cpus": os.cpu_count(), "cpu_model": model,
            "ram_gb": round(mem, 1), "python": platform.python_version(), "commit": commit, "dirty": dirty,
            "platform": platform.platform()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000",
                    help="comma-separated run counts N (default 1000,10000; add 100000 for the big one)")
    ap.add_argument("--experiments", type=int, default=0, help="experiments E (default: N/500, 1..20)")
    ap.add_argument("--steps", type=int, default=100, help="steps S per metric (default 100)")
    ap.add_argument("--long-steps", type=int, default=10_000, help="points of the long metric history")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reps", type=int, default=3, help="repetitions of cold index, warm start, reads")
    ap.add_argument("--mlflow-file-reps", type=int, default=1,
                    help="repetitions of MLflow's file-store listing (54 s each at 10k runs)")
    ap.add_argument("--mlflow-file-max-runs", type=int, default=20_000,
                    help="skip MLflow's file-store listing above this N (it takes ~10 min at 100k)")
    ap.add_argument("--mlflow-query-reps", type=int, default=10)
    ap.add_argument("--query-calls", type=int, default=200)
    ap.add_argument("--update-events", type=int, default=40)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--concurrency-seconds", type=float, default=10.0)
    ap.add_argument("--startup-reps", type=int, default=5)
    ap.add_argument("--tui-reps", type=int, default=3, help="measured TUI launches (after one warm-up)")
    ap.add_argument("--only-tui", action="store_true",
                    help="measure only the TUI row and merge it into today's results for the sizes")
    ap.add_argument("--migrate-max-points", type=int, default=300_000,
                    help="use the real `mlflow migrate-filestore` up to this many metric points, "
                    "the bulk loader above (default 300000)")
    ap.add_argument("--skip", type=lambda v: sorted({x.strip() for x in v.split(",") if x.strip()}),
                    default=[], help="phases to leave out, comma-separated: parse (the read "
                    "and parse pass), mlflow-sqlite (MLflow listing the SQLite store), sqlite "
                    "(the SQLite cold index), live (queries, updates, concurrency), startup, tui;"
                    " for N=100,000, whose stores outgrow the page cache of a 24 GB machine")
    ap.add_argument("--stores-dir", default=os.path.join(REPO, "bench", ".stores"))
    ap.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    ap.add_argument("--machine", default="", help="machine name in the results file name")
    ap.add_argument("--note", default="", help="a sentence for the table's header (what was "
                    "measured beyond the commit, the machine's other load, ...)")
    ap.add_argument("--regenerate", action="store_true", help="regenerate stores even if present")
    ap.add_argument("--render", metavar="JSON",
                    help="only re-render the table of an earlier results .json (to its .md)")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny settings for CI: N=50, S=10, one repetition, short phases")
    a = ap.parse_args(argv)
    if a.smoke:
        if a.sizes == "1000,10000":
            a.sizes = "50"
        a.steps = 10 if a.steps == 100 else a.steps
        a.long_steps = 2000 if a.long_steps == 10_000 else a.long_steps
        a.reps, a.mlflow_query_reps, a.query_calls = 1, 2, 20
        a.update_events, a.concurrency_seconds, a.startup_reps, a.tui_reps = 4, 2.0, 1, 1
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.render:
        with open(a.render) as f:
            text = report.render(json.load(f))
        with open(os.path.splitext(a.render)[0] + ".md", "w") as f:
            f.write(text)
        print(text)
        return 0
    sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    os.makedirs(a.stores_dir, exist_ok=True)
    os.makedirs(a.results_dir, exist_ok=True)
    info = machine_info()
    if a.note:
        info["note"] = a.note
    machine = a.machine or info["host"] or "machine"
    date = datetime.date.today().isoformat()
    stem = os.path.join(a.results_dir, f"{date}-{machine}")
    worker = MlflowWorker(os.path.join(a.stores_dir, "mlflow-worker.log"))
    try:
        hello = worker.call("hello")
        info["mlflow"] = hello["mlflow"]
        info["import_mlflow_s"] = hello["import_s"]
        info["import_mlflow_cpu_s"] = hello["import_cpu_s"]
        results: dict[str, Any] = {"meta": info, "sizes": {}}
        old_sizes: dict[str, Any] = {}
        if os.path.exists(stem + ".json"):  # another invocation today: keep its other sizes
            with open(stem + ".json") as f:
                old = json.load(f)
            old_sizes = old.get("sizes", {})
            if a.only_tui:
                results["meta"] = old["meta"]
            results["sizes"] = {k: v for k, v in old_sizes.items()
                                if int(k) not in sizes or a.only_tui}
        for n in sizes:
            if a.only_tui:
                if str(n) not in old_sizes:
                    raise SystemExit(f"--only-tui: no results for N={n} in {stem}.json yet")
                results["sizes"][str(n)] = only_tui(n, a, worker, old_sizes[str(n)])
            else:
                results["sizes"][str(n)] = run_size(n, a, worker)
            results["sizes"] = dict(sorted(results["sizes"].items(), key=lambda kv: int(kv[0])))
            if not a.only_tui:
                results["meta"]["args"] = {k: v for k, v in vars(a).items()
                                           if k not in ("stores_dir", "results_dir", "render")}
            # Written whole or not at all: a failure must not cost the earlier sizes' figures.
            text = report.render(results)
            for ext, body in ((".json", json.dumps(results, indent=1)), (".md", text)):
                with open(stem + ext + ".tmp", "w") as f:
                    f.write(body)
                os.replace(stem + ext + ".tmp", stem + ext)
    finally:
        worker.close()
    print(text)
    print(f"\nwritten: {stem}.md and {stem}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
