"""File store -> SQLite: ``mlflow migrate-filestore``, or a bulk loader with the same result.

``migrate-filestore`` inserts through SQLAlchemy's ORM, about 7,000 metric
points a second: 8 M points (10,000 runs x 8 metrics x 100 steps) would take
~20 minutes.  :func:`bulk_load` reads the file store exactly as
``mlflow/store/fs2db/_tracking.py`` (MLflow 3.17.2) does and writes the same
rows with ``executemany`` into an empty database that MLflow itself created
(its alembic head, ``_initialize_tables``), in WAL mode as migrate leaves it.
``tests/test_bench_smoke.py`` holds it to ``migrate-filestore`` table by table
(:func:`table_rows`) at a small N.

Only what the generator writes (and migrate reads for runs) is covered:
experiments and their tags, runs, params, tags, metrics and latest metrics.
Datasets, traces, logged models and the registry are not generated.
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
RESERVED = {"tags", "datasets", "traces", "models", ".trash"}
STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
TABLES = ("experiments", "experiment_tags", "runs", "params", "tags", "metrics", "latest_metrics")
MAX_INF = 1.7976931348623157e308


def migrate_filestore(file_root: str, db_path: str, log_path: str | None = None) -> float:
    """Run the real ``mlflow migrate-filestore``; return its wall time."""
    if os.path.exists(db_path):
        os.unlink(db_path)
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true")
    t = time.perf_counter()
    with open(log_path or os.devnull, "ab") as log:
        subprocess.run([sys.executable, "-m", "mlflow", "migrate-filestore", "--source", file_root,
                        "--target", f"sqlite:///{db_path}", "--no-progress"],
                       check=True, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    return time.perf_counter() - t


def _yaml(path: Path) -> dict[str, Any] | None:
    try:
        return yaml.load(path.read_text(), Loader=_Loader)
    except Exception:  # noqa: BLE001 - migrate skips unreadable meta files too
        return None


def _kv_files(folder: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not folder.is_dir():
        return out
    for p in folder.rglob("*"):
        if p.is_file():
            out[p.relative_to(folder).as_posix()] = p.read_text()
    return out


def _experiment_dirs(mlruns: Path) -> list[tuple[Path, str]]:
    out = []
    for base in (mlruns, mlruns / ".trash"):
        if not base.is_dir():
            continue
        for d in sorted(base.iterdir(), key=lambda p: p.name):
            if d.is_dir():
                try:
                    int(d.name)
                except ValueError:
                    continue
                out.append((d, d.name))
    return out


def _metric_rows(metrics_dir: Path, run_uuid: str, rows: list, latest_rows: list) -> None:
    if not metrics_dir.is_dir():
        return
    for p in metrics_dir.rglob("*"):
        if not p.is_file():
            continue
        key = p.relative_to(metrics_dir).as_posix()
        latest = None
        latest_nan = False
        for line in p.read_text().splitlines():
            parts = line.strip().split(" ")
            if len(parts) == 2:
                ts, val, step = int(parts[0]), float(parts[1]), 0
            elif len(parts) >= 3:
                ts, val, step = int(parts[0]), float(parts[1]), int(parts[2])
            else:
                raise ValueError(f"Malformed metric line: {line!r}")
            is_nan = val != val
            if is_nan:
                val = 0.0
            elif math.isinf(val):
                val = MAX_INF if val > 0 else -MAX_INF
            rows.append((key, val, ts, run_uuid, step, int(is_nan)))
            cmp = (step, ts, val)
            if latest is None or cmp > latest:
                latest, latest_nan = cmp, is_nan
        if latest is not None:
            step, ts, val = latest
            latest_rows.append((key, val, ts, step, int(latest_nan), run_uuid))


def bulk_load(mlruns: str, db_path: str, schema_db: str, log=None) -> dict[str, Any]:
    """Write ``mlruns`` into a fresh copy of ``schema_db`` at ``db_path``; return counts."""
    t0 = time.perf_counter()
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(db_path + suffix):
            os.unlink(db_path + suffix)
    shutil.copyfile(schema_db, db_path)
    conn = sqlite3.connect(db_path, isolation_level=None)
    # No journal while loading (a failed load is simply redone), secondary indexes built
    # once at the end from their own CREATE statements (same schema text), WAL mode after.
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name"
        " IN ('metrics', 'latest_metrics', 'params', 'tags')").fetchall()
    for name, _sql in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    conn.execute("BEGIN")
    counts = dict.fromkeys(TABLES, 0)
    root = Path(mlruns)
    exps = _experiment_dirs(root)
    n_runs = 0
    for exp_dir, exp_id in exps:
        meta = _yaml(exp_dir / "meta.yaml")
        if meta is None:
            continue
        eid = int(exp_id)
        conn.execute(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage,"
            " creation_time, last_update_time) VALUES (?, ?, ?, ?, ?, ?)",
            (eid, meta.get("name", f"experiment_{exp_id}"), meta.get("artifact_location"),
             meta.get("lifecycle_stage", "active"), meta.get("creation_time"),
             meta.get("last_update_time")))
        counts["experiments"] += 1
        etags = [(k, v, eid) for k, v in _kv_files(exp_dir / "tags").items()]
        conn.executemany("INSERT INTO experiment_tags (key, value, experiment_id) VALUES (?, ?, ?)",
                         etags)
        counts["experiment_tags"] += len(etags)
        runs, params, tags, metrics, latest = [], [], [], [], []
        for run_dir in sorted((d for d in exp_dir.iterdir() if d.is_dir()), key=lambda d: d.name):
            if run_dir.name in RESERVED or not (run_dir / "meta.yaml").is_file():
                continue
            m = _yaml(run_dir / "meta.yaml")
            if m is None:
                continue
            rid = m.get("run_uuid") or m.get("run_id")
            if not rid:
                continue
            raw = m.get("status", 1)
            status = STATUS[raw] if isinstance(raw, int) else str(raw)
            st = m.get("source_type", "LOCAL")
            runs.append((rid, m.get("run_name") or m.get("name"),
                         st if isinstance(st, str) else "LOCAL", m.get("source_name", ""),
                         m.get("entry_point_name", ""), m.get("user_id"), status,
                         m.get("start_time"), m.get("end_time"), m.get("deleted_time"),
                         m.get("source_version", ""), m.get("lifecycle_stage", "active"),
                         m.get("artifact_uri"), eid))
            params.extend((k, v, rid) for k, v in _kv_files(run_dir / "params").items())
            tags.extend((k, v, rid) for k, v in _kv_files(run_dir / "tags").items())
            _metric_rows(run_dir / "metrics", rid, metrics, latest)
            if len(metrics) > 500_000:
                _flush(conn, runs, params, tags, metrics, latest, counts)
        _flush(conn, runs, params, tags, metrics, latest, counts)
        n_runs = counts["runs"]
        if log:
            log(f"  bulk-loaded experiment {exp_id}: {n_runs} runs, {counts['metrics']} points so far")
    for _name, sql in indexes:
        conn.execute(sql)
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=WAL")  # as migrate-filestore leaves the database
    conn.close()
    return {"wall_s": time.perf_counter() - t0, "counts": counts}


def _flush(conn: sqlite3.Connection, runs: list, params: list, tags: list, metrics: list,
           latest: list, counts: dict[str, int]) -> None:
    conn.executemany(
        "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id,"
        " status, start_time, end_time, deleted_time, source_version, lifecycle_stage,"
        " artifact_uri, experiment_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", runs)
    conn.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", params)
    conn.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tags)
    metrics.sort(key=lambda r: (r[0], r[2], r[4], r[3]))  # primary-key order: local B-tree writes
    conn.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                     " VALUES (?, ?, ?, ?, ?, ?)", metrics)
    conn.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
                     " VALUES (?, ?, ?, ?, ?, ?)", latest)
    for name, rows in (("runs", runs), ("params", params), ("tags", tags), ("metrics", metrics),
                       ("latest_metrics", latest)):
        counts[name] += len(rows)
        rows.clear()


def table_rows(db_path: str) -> dict[str, Any]:
    """Every row of every table, sorted (rowids left out), plus schema and journal mode."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        out: dict[str, Any] = {}
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        for t in tables:
            cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')]
            rows = conn.execute(f'SELECT * FROM "{t}"').fetchall()
            out[t] = {"columns": cols, "rows": sorted(rows, key=repr)}
        out["_schema"] = sorted(r for r in conn.execute(
            "SELECT type, name, sql FROM sqlite_master") if r[2] is not None)
        out["_journal_mode"] = conn.execute("PRAGMA journal_mode").fetchone()[0]
        return out
    finally:
        conn.close()
