"""MLflow's side of the benchmark, in its own process (``python -m bench.mlflow_worker``).

The harness never imports MLflow itself: it sends one JSON command per line on
this process's stdin and reads one ``@@``-prefixed JSON reply per command from
its stdout (anything else MLflow prints is ignored).  Timings are taken here,
around MLflow's calls only: wall time (``perf_counter``) and this process's CPU
time (``process_time``), which a busy machine disturbs less.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
_T0 = time.perf_counter()
_C0 = time.process_time()
import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import ViewType  # noqa: E402

IMPORT_S = time.perf_counter() - _T0
IMPORT_CPU_S = time.process_time() - _C0
PAGE = 50_000
"""MLflow's largest page (SEARCH_MAX_RESULTS_THRESHOLD): MLflow at its best."""

_clients: dict[str, MlflowClient] = {}


def client(uri: str) -> tuple[MlflowClient, float]:
    c = _clients.get(uri)
    if c is not None:
        return c, 0.0
    t = time.perf_counter()
    c = MlflowClient(tracking_uri=uri)
    c.search_experiments(max_results=1)  # builds the store (SQLite: engine, schema check)
    _clients[uri] = c
    return c, time.perf_counter() - t


def norm_run(r: Any) -> dict[str, Any]:
    """A run as both sides can spell it (compared with the daemon's rows by the harness)."""
    i, d = r.info, r.data
    return {
        "run_id": i.run_id, "experiment_id": str(i.experiment_id), "run_name": i.run_name,
        "status": i.status, "lifecycle_stage": i.lifecycle_stage, "start_time": i.start_time,
        "end_time": i.end_time, "artifact_uri": i.artifact_uri, "params": dict(d.params),
        "tags": dict(d.tags), "metrics": dict(d.metrics),
    }


def cmd_hello(a: dict) -> dict:
    return {"import_s": IMPORT_S, "import_cpu_s": IMPORT_CPU_S, "mlflow": mlflow.__version__,
            "pid": os.getpid()}


def cmd_list_all(a: dict) -> dict:
    """Page through every run (active and deleted) of every experiment."""
    c, open_s = client(a["uri"])
    exps = [e.experiment_id for e in c.search_experiments(view_type=ViewType.ALL)]
    t, cpu = time.perf_counter(), time.process_time()
    runs, token, pages = [], None, 0
    while True:
        page = c.search_runs(exps, run_view_type=ViewType.ALL, max_results=PAGE, page_token=token)
        runs.extend(page)
        pages += 1
        token = page.token
        if not token:
            break
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    out = {"wall_s": wall, "cpu_s": cpu, "open_s": open_s, "count": len(runs), "pages": pages}
    if a.get("rows"):
        out["rows"] = [norm_run(r) for r in runs]
    return out


def _timed(fn, reps: int) -> tuple[list[float], list[float], Any]:
    walls, cpus, last = [], [], None
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        last = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return walls, cpus, last


def cmd_search(a: dict) -> dict:
    c, _ = client(a["uri"])
    exps = [e.experiment_id for e in c.search_experiments(view_type=ViewType.ALL)]
    walls, cpus, res = _timed(lambda: c.search_runs(
        exps, filter_string=a.get("filter", ""), order_by=a.get("order_by"),
        max_results=a.get("max_results", 100)), a.get("reps", 5))
    return {"wall_s": walls, "cpu_s": cpus, "ids": [r.info.run_id for r in res]}


def cmd_get_run(a: dict) -> dict:
    c, _ = client(a["uri"])
    ids = a["run_ids"]
    n = iter(range(10**9))
    walls, cpus, _ = _timed(lambda: c.get_run(ids[next(n) % len(ids)]), a.get("reps", 20))
    return {"wall_s": walls, "cpu_s": cpus}


def cmd_history(a: dict) -> dict:
    c, _ = client(a["uri"])
    walls, cpus, res = _timed(lambda: c.get_metric_history(a["run_id"], a["key"]),
                              a.get("reps", 5))
    return {"wall_s": walls, "cpu_s": cpus, "points": len(res)}


def cmd_log_metric(a: dict) -> dict:
    c, _ = client(a["uri"])
    t_before = time.monotonic()
    c.log_metric(a["run_id"], a["key"], a["value"], timestamp=a.get("timestamp"),
                 step=a.get("step", 0))
    return {"t_before": t_before, "t_after": time.monotonic()}


def cmd_check_sample(a: dict) -> dict:
    """Compare the generator's expected values with what MLflow reads from the store."""
    c, _ = client(a["uri"])
    problems = []
    for s in a["samples"]:
        try:
            r = c.get_run(s["run_id"])
        except Exception as exc:  # noqa: BLE001 - reported
            problems.append(f"{s['run_id']}: get_run failed: {exc}")
            continue
        got = norm_run(r)
        for k in ("experiment_id", "run_name", "status", "lifecycle_stage", "start_time",
                  "end_time", "params", "tags", "metrics"):
            if got[k] != s[k]:
                problems.append(f"{s['run_id']}: {k}: MLflow reads {got[k]!r}, generated {s[k]!r}")
        if s.get("m1_points"):
            hist = c.get_metric_history(s["run_id"], "m1")
            if len(hist) != s["m1_points"]:
                problems.append(f"{s['run_id']}: m1 has {len(hist)} points, generated {s['m1_points']}")
            else:
                first = min(hist, key=lambda m: m.step)
                line = f"{first.timestamp} {first.value!r} {first.step}"
                if line != s["m1_first_line"]:
                    problems.append(f"{s['run_id']}: m1 step 0 is {line!r}, generated {s['m1_first_line']!r}")
    return {"checked": len(a["samples"]), "problems": problems}


def cmd_make_schema(a: dict) -> dict:
    """An empty database at MLflow's head revision (what migrate-filestore starts from)."""
    from sqlalchemy import create_engine

    from mlflow.store.db.utils import _initialize_tables

    t = time.perf_counter()
    engine = create_engine(f"sqlite:///{a['path']}")
    _initialize_tables(engine)
    engine.dispose()
    return {"wall_s": time.perf_counter() - t}


COMMANDS = {name[4:]: fn for name, fn in globals().items() if name.startswith("cmd_")}


def main() -> int:
    out = sys.stdout
    sys.stdout = sys.stderr  # MLflow's own prints must not mix with replies
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            reply = {"ok": True, **COMMANDS[req["cmd"]](req)}
        except Exception as exc:  # noqa: BLE001 - reported to the harness
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc()}
        out.write("@@" + json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
