"""Synthetic MLflow file stores, written byte for byte the way MLflow 3.17 writes them.

One store per (N, E, S, seed): ``<dir>/file/mlruns`` (an MLflow file store in a
git work tree of its own, so the daemon takes that folder as the root),
``<dir>/sqlite/mlflow.db`` (made later by :mod:`bench.sqlite_load`) and
``<dir>/manifest.json`` (ids, sizes and a sample of expected values that
:mod:`bench.mlflow_worker` checks with MLflow's own client).

Every run has ~12 params, 8 metrics (``m1``..``m8``) of S steps, 10 tags,
a small artifact; the status mix is ~80% FINISHED, 8% FAILED, 4% KILLED,
6% RUNNING, 2% SCHEDULED; ~2% of runs are deleted; ~10% are nested under an
earlier run of their experiment.  Run 0 also has ``m_long`` with
``long_steps`` points (the metric-history benchmark), and a few "live" runs
(tag ``bench.role=live``) carry a ``live`` metric that the update and
concurrency benchmarks append to, so the rest of the data never changes.

Generation is deterministic for a seed (ids included), so a store can be
regenerated and compared.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass

MODELS = ("rf", "xgb", "lr", "mlp", "svm")
STATUSES = ((3, 0.80), (4, 0.08), (5, 0.04), (1, 0.06), (2, 0.02))
"""(MLflow status code, share): FINISHED, FAILED, KILLED, RUNNING, SCHEDULED."""
STATUS_NAMES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
N_METRICS = 8
LIVE_RUNS = 4
SAMPLE = 25
BASE_TIME = 1_767_225_600_000  # 2026-01-01 00:00 UTC, ms
FORMAT = 2
"""Bump when the generated data changes: stores of another format are regenerated."""


@dataclass(frozen=True)
class Spec:
    runs: int
    experiments: int
    steps: int
    long_steps: int = 10_000
    seed: int = 0

    @property
    def name(self) -> str:
        return f"n{self.runs}-e{self.experiments}-s{self.steps}-l{self.long_steps}-seed{self.seed}"


def default_experiments(n: int) -> int:
    return max(1, min(20, n // 500)) if n >= 500 else max(1, min(3, n // 20))


def _hex(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def store_paths(base: str) -> dict[str, str]:
    return {
        "base": base,
        "file_root": os.path.join(base, "file"),
        "mlruns": os.path.join(base, "file", "mlruns"),
        "sqlite_root": os.path.join(base, "sqlite"),
        "db": os.path.join(base, "sqlite", "mlflow.db"),
        "manifest": os.path.join(base, "manifest.json"),
    }


def load_manifest(base: str) -> dict | None:
    try:
        with open(store_paths(base)["manifest"]) as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    return m if m.get("format") == FORMAT else None


def _write(path: str, data: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(data)


def _git_init(path: str) -> None:
    os.makedirs(path, exist_ok=True)
    if not os.path.isdir(os.path.join(path, ".git")):
        subprocess.run(["git", "init", "-q", path], check=True)


def _exp_meta(exp_id: str, name: str, location: str, created: int) -> str:
    return (
        f"artifact_location: {location}\n"
        f"creation_time: {created}\n"
        "effective_trace_archival_retention: null\n"
        f"experiment_id: '{exp_id}'\n"
        f"last_update_time: {created}\n"
        "lifecycle_stage: active\n"
        f"name: {name}\n"
        "trace_location: null\n"
        "workspace: default\n"
    )


def _yaml_str(s: str) -> str:
    """``s`` as PyYAML's safe_dump writes it: quoted when it would read back as a number
    (a run id of 32 decimal digits, ~1 in 3 million ids, happens at 100k runs)."""
    return f"'{s}'" if s.isdigit() else s


def _run_meta(r: dict) -> str:
    lines = [f"artifact_uri: {r['artifact_uri']}"]
    if r["deleted_time"] is not None:
        lines.append(f"deleted_time: {r['deleted_time']}")
    lines += [
        f"end_time: {'null' if r['end_time'] is None else r['end_time']}",
        "entry_point_name: ''",
        f"experiment_id: '{r['experiment_id']}'",
        f"lifecycle_stage: {r['lifecycle_stage']}",
        f"run_id: {_yaml_str(r['run_id'])}",
        f"run_name: {r['run_name']}",
        "source_name: ''",
        "source_type: 4",
        "source_version: ''",
        f"start_time: {r['start_time']}",
        f"status: {r['status']}",
        "tags: []",
        "user_id: bench",
    ]
    return "\n".join(lines) + "\n"


def _curve(rng: random.Random, steps: int, start_time: int, offset: int,
           final: float) -> tuple[str, tuple[float, int, int]]:
    """A decaying metric of ``steps`` points ending near ``final``: file text and latest."""
    start = final + rng.uniform(0.5, 1.5)
    k = 5.0 / max(1, steps)
    span = start - final
    noise = rng.random
    vals = [round(final + span * math.exp(-k * s) + 0.001 * noise(), 6) for s in range(steps)]
    text = "".join(f"{start_time + s * 1000 + offset} {v!r} {s}\n" for s, v in enumerate(vals))
    last = steps - 1
    return text, (vals[last], start_time + last * 1000 + offset, last)


def generate(spec: Spec, base: str, log=print) -> dict:
    """Write the file store for ``spec`` under ``base`` (replacing any) and its manifest."""
    p = store_paths(base)
    if os.path.exists(base):
        shutil.rmtree(base)
    _git_init(p["file_root"])
    _git_init(p["sqlite_root"])
    mlruns = p["mlruns"]
    os.makedirs(mlruns)
    rng = random.Random(spec.seed)
    t0 = time.perf_counter()

    # Experiments: "0" Default (empty, as MLflow creates it) and E named ones with
    # random 18-digit ids, as MLflow 3.x makes them.
    _write_experiment(mlruns, "0", "Default", BASE_TIME - 10_000, {})
    exp_ids = []
    for e in range(spec.experiments):
        eid = str(rng.randrange(10**17, 10**18))
        exp_ids.append(eid)
        _write_experiment(mlruns, eid, f"bench-exp-{e:03d}", BASE_TIME + e,
                          {"project": "octostore-bench", "owner": f"team-{e % 3}"})

    status_codes = [c for c, _ in STATUSES]
    status_weights = [w for _, w in STATUSES]
    pool = range(LIVE_RUNS + 1, spec.runs)  # neither the long run nor a live one
    sample_idx = set(rng.sample(pool, min(SAMPLE, len(pool))))
    run_ids: list[str] = []
    by_exp: dict[str, list[str]] = {e: [] for e in exp_ids}
    samples = []
    live = []
    deleted = 0
    long_run = None
    for i in range(spec.runs):
        eid = exp_ids[i % len(exp_ids)]
        rid = _hex(rng, 128)
        run_ids.append(rid)
        is_live = 1 <= i <= LIVE_RUNS
        status = 1 if is_live else rng.choices(status_codes, status_weights)[0]
        start = BASE_TIME + i * 60_000 + rng.randrange(1000)
        end = None if status in (1, 2) else start + 1000 * max(spec.steps, 1) + rng.randrange(60_000)
        is_deleted = not is_live and end is not None and rng.random() < 0.02
        deleted += is_deleted
        run_dir = os.path.join(mlruns, eid, rid)
        run = {
            "run_id": rid, "experiment_id": eid, "run_name": f"run-{i:06d}", "status": status,
            "lifecycle_stage": "deleted" if is_deleted else "active", "start_time": start,
            "end_time": end, "deleted_time": end + 5000 if is_deleted else None,
            "artifact_uri": f"file://{run_dir}/artifacts",
        }
        model = "rf" if rng.random() < 0.2 else rng.choice(MODELS[1:])
        params = {
            "model": model,
            "lr": repr(round(10 ** rng.uniform(-4, -1), 6)),
            "n_estimators": str(rng.choice((50, 100, 200, 400))),
            "max_depth": str(rng.randrange(2, 16)),
            "batch_size": str(rng.choice((32, 64, 128, 256))),
            "optimizer": rng.choice(("adam", "sgd", "adamw")),
            "dropout": repr(round(rng.uniform(0, 0.5), 3)),
            "seed": str(rng.randrange(10_000)),
            "dataset": rng.choice(("wine", "iris", "digits")),
            "features": str(rng.randrange(4, 64)),
            "epochs": str(max(spec.steps, 1)),
            "loss": rng.choice(("mse", "mae", "huber")),
        }
        tags = {
            "mlflow.runName": run["run_name"],
            "mlflow.user": "bench",
            "mlflow.source.name": "train.py",
            "mlflow.source.type": "LOCAL",
            "mlflow.source.git.commit": _hex(rng, 160),
            "team": rng.choice(("vision", "nlp", "tabular")),
            "stage": rng.choice(("dev", "prod")),
            "priority": str(rng.randrange(1, 4)),
            "note": f"synthetic run {i} of {spec.runs}",
            "dataset.version": rng.choice(("v1", "v2", "v3")),
        }
        if is_live:
            tags["bench.role"] = "live"
        siblings = by_exp[eid]
        if siblings and not is_live and rng.random() < 0.10:
            tags["mlflow.parentRunId"] = rng.choice(siblings[-50:])
        siblings.append(rid)

        os.makedirs(os.path.join(run_dir, "metrics"))
        os.makedirs(os.path.join(run_dir, "params"))
        os.makedirs(os.path.join(run_dir, "tags"))
        os.makedirs(os.path.join(run_dir, "artifacts"))
        _write(os.path.join(run_dir, "meta.yaml"), _run_meta(run))
        for k, v in params.items():
            _write(os.path.join(run_dir, "params", k), v)
        for k, v in tags.items():
            _write(os.path.join(run_dir, "tags", k), v)
        latest = {}
        first_m1 = None
        for m in range(1, N_METRICS + 1):
            if spec.steps <= 0:
                break
            text, last = _curve(rng, spec.steps, start, m, rng.random())
            _write(os.path.join(run_dir, "metrics", f"m{m}"), text)
            latest[f"m{m}"] = last[0]
            if m == 1:
                first_m1 = text.split("\n", 1)[0]
        if is_live:
            text, last = _curve(rng, max(spec.steps, 1), start, 99, rng.random())
            _write(os.path.join(run_dir, "metrics", "live"), text)
            live.append(rid)
        if i == 0 and spec.long_steps:
            text, _ = _curve(rng, spec.long_steps, start, 50, 0.1)
            _write(os.path.join(run_dir, "metrics", "m_long"), text)
            long_run = rid
        _write(os.path.join(run_dir, "artifacts", "model.txt"),
               f"model {model} for run {rid}\n")
        if i in sample_idx:
            samples.append({
                **{k: run[k] for k in ("run_id", "experiment_id", "run_name", "lifecycle_stage",
                                       "start_time", "end_time")},
                "status": STATUS_NAMES[status], "params": params, "tags": tags,
                "metrics": latest, "m1_points": spec.steps, "m1_first_line": first_m1,
            })
        if log and spec.runs >= 10_000 and (i + 1) % (spec.runs // 10) == 0:
            log(f"  generated {i + 1}/{spec.runs} runs ({time.perf_counter() - t0:.0f} s)")

    manifest = {
        "format": FORMAT,
        "spec": spec.__dict__,
        "paths": p,
        "experiment_ids": exp_ids,
        "run_ids": run_ids,
        "deleted": deleted,
        "long_run": long_run,
        "live_runs": live,
        "samples": samples,
        "generate_s": round(time.perf_counter() - t0, 2),
        "sqlite": None,
    }
    save_manifest(base, manifest)
    return manifest


def save_manifest(base: str, manifest: dict) -> None:
    path = store_paths(base)["manifest"]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f)
    os.replace(tmp, path)


def _write_experiment(mlruns: str, eid: str, name: str, created: int, tags: dict[str, str]) -> None:
    d = os.path.join(mlruns, eid)
    os.makedirs(os.path.join(d, "tags"))
    _write(os.path.join(d, "meta.yaml"), _exp_meta(eid, name, f"file://{d}", created))
    for k, v in tags.items():
        _write(os.path.join(d, "tags", k), v)
