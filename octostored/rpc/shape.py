"""Records to JSON-ready dicts: the reply shapes of the protocol.

Metric values go through :func:`json_float` (no bare NaN on the wire).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..model import Experiment, Run, json_float


def run_row(run: Run, columns: list[str] | None = None) -> dict[str, Any]:
    """A run as ``octostore/runs`` lists it: latest metric values only."""
    params, metrics, tags = run.params, run.metrics, run.tags
    if columns is not None:
        want: dict[str, set[str]] = {"params": set(), "metrics": set(), "tags": set()}
        for c in columns:
            kind, _, key = c.partition(".")
            kind = {"param": "params", "metric": "metrics", "tag": "tags"}.get(kind, kind)
            if kind in want:
                want[kind].add(key)
        params = {k: v for k, v in params.items() if k in want["params"]}
        metrics = {k: v for k, v in metrics.items() if k in want["metrics"]}
        tags = {k: v for k, v in tags.items() if k in want["tags"]}
    return {
        "run_id": run.run_id,
        "experiment_id": run.experiment_id,
        "experiment_key": run.experiment_key,
        "run_name": run.run_name,
        "status": run.status,
        "lifecycle_stage": run.lifecycle_stage,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "user_id": run.user_id,
        "artifact_uri": run.artifact_uri,
        "params": params,
        "metrics": {k: json_float(v[0]) for k, v in metrics.items()},
        "tags": tags,
        "source": run.source,
        "sources": run.sources,
        "committed": run.committed,
        "warnings": run.warnings,
        "clock": run.clock,
    }


def run_row_json(run: Run) -> tuple[orjson.Fragment, int]:
    """:func:`run_row` (all columns) encoded once (the reply's encoder copies the bytes), and
    its size in bytes (a page is cut by size)."""
    data = orjson.dumps(run_row(run))
    return orjson.Fragment(data), len(data)


def run_full(run: Run) -> dict[str, Any]:
    """A run in full (``octostore/run``): metrics with step and time, datasets."""
    out = run_row(run)
    out["metrics"] = {
        k: {"value": json_float(v[0]), "timestamp": v[1], "step": v[2]}
        for k, v in run.metrics.items()
    }
    out["inputs"] = run.inputs
    out["deleted_time"] = run.deleted_time
    out["location"] = run.location
    return out


def experiment_row(exp: Experiment, runs: int, active_runs: int, last_activity: int | None) -> dict[str, Any]:
    return {
        "experiment_id": exp.experiment_id,
        "key": exp.key or exp.experiment_id,
        "name": exp.name,
        "lifecycle_stage": exp.lifecycle_stage,
        "artifact_location": exp.artifact_location,
        "creation_time": exp.creation_time,
        "last_update_time": exp.last_update_time,
        "tags": exp.tags,
        "source": exp.source,
        "dir": exp.dir,
        "runs": runs,
        "active_runs": active_runs,
        "last_activity": last_activity,
        "warnings": exp.warnings,
    }
