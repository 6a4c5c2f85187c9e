"""Highlights of many runs at a glance, and runs side by side (pure functions).

``insights`` answers what a researcher asks first of hundreds of runs: how
many ran, failed, are running; when; which runs are best on each key metric;
how a metric is distributed; which parameters move it most.  ``compare`` puts
a few runs side by side.  Both read index records only, never the disk.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter, defaultdict
from typing import Any

from ..metricnames import count_keys, key_metric_order, lower_is_better
from ..model import Run, json_float

def _finite(v: float) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def best_runs(runs: list[Run], key: str, n: int = 5, lower: bool | None = None) -> list[dict[str, Any]]:
    low = lower_is_better(key) if lower is None else lower
    scored = [(r.metrics[key][0], r) for r in runs if key in r.metrics and _finite(r.metrics[key][0])]
    scored.sort(key=lambda t: t[0], reverse=not low)
    return [{"run_id": r.run_id, "run_name": r.run_name, "value": v} for v, r in scored[:n]]


def histogram(values: list[float], bins: int = 20) -> dict[str, Any]:
    vals = [v for v in values if _finite(v)]
    if not vals:
        return {"edges": [], "counts": []}
    lo, hi = min(vals), max(vals)
    if lo == hi:
        return {"edges": [lo, hi], "counts": [len(vals)]}
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in vals:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    return {"edges": [lo + i * width for i in range(bins + 1)], "counts": counts}


def param_influence(runs: list[Run], key: str, top: int = 8) -> list[dict[str, Any]]:
    """Which params move ``key`` most: spread of the metric's mean across a param's values.

    For each param with at least two distinct values among the runs that
    logged ``key``, group the runs by the param's value and take the range of
    the group means, relative to the metric's overall standard deviation.  It
    is a screening measure, not a causal one; numeric params are binned into
    at most 5 quantile groups so that a continuous param is comparable.
    """
    pts = [(r, r.metrics[key][0]) for r in runs if key in r.metrics and _finite(r.metrics[key][0])]
    if len(pts) < 3:
        return []
    sd = statistics.pstdev([v for _, v in pts]) or 1.0
    # One pass over the runs' params (not runs x every param key: a store whose runs each
    # have their own thousand keys would make that quadratic).
    seen = Counter(p for r, _ in pts for p in r.params)
    by_param: dict[str, list[tuple[str, float]]] = {p: [] for p, n in seen.items() if n >= 3}
    for r, v in pts:
        for p, pv in r.params.items():
            if (got := by_param.get(p)) is not None:
                got.append((pv, v))
    out = []
    for p, values in by_param.items():
        groups: dict[str, list[float]] = defaultdict(list)
        if len(values) < 3:
            continue
        numeric = _numeric([pv for pv, _ in values])
        if numeric is not None and len(set(numeric)) > 5:
            order = sorted(numeric)
            cuts = [order[int(len(order) * q / 5)] for q in range(1, 5)]
            for (_, v), x in zip(values, numeric):
                groups[f"q{sum(x > c for c in cuts) + 1}"].append(v)
        else:
            for pv, v in values:
                groups[str(pv)].append(v)
        if len(groups) < 2:
            continue
        means = {g: statistics.fmean(vs) for g, vs in groups.items()}
        spread = (max(means.values()) - min(means.values())) / sd
        best_group = (min if lower_is_better(key) else max)(means, key=lambda g: means[g])
        out.append({"param": p, "score": spread, "groups": len(groups), "best_value": best_group,
                    "numeric": numeric is not None})
    out.sort(key=lambda d: -d["score"])
    return out[:top]


def _numeric(values: list[str | None]) -> list[float] | None:
    try:
        return [float(v) for v in values]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def key_metrics(runs: list[Run], limit: int = 6) -> list[str]:
    """The metrics most runs logged, most telling first (see ``metricnames.key_metric_order``)."""
    return key_metric_order(count_keys(r.metrics for r in runs))[:limit]


def insights(runs: list[Run], metric: str | None = None, lower: bool | None = None) -> dict[str, Any]:
    status = Counter(r.status for r in runs)
    per_day: Counter[str] = Counter()
    for r in runs:
        if r.start_time:
            per_day[time.strftime("%Y-%m-%d", time.gmtime(r.start_time / 1000))] += 1
    keys = key_metrics(runs)
    chosen = metric or (keys[0] if keys else None)
    out: dict[str, Any] = {
        "total": len(runs),
        "by_status": dict(status),
        "per_day": sorted(per_day.items()),
        "key_metrics": [
            {"key": k, "lower_is_better": lower_is_better(k) if lower is None or k != chosen else lower,
             "best": [{**b, "value": json_float(b["value"])} for b in best_runs(
                 runs, k, lower=lower if k == chosen else None)]}
            for k in keys
        ],
        "metric": chosen,
    }
    if chosen:
        vals = [r.metrics[chosen][0] for r in runs if chosen in r.metrics]
        out["distribution"] = histogram(vals)
        out["influence"] = param_influence(runs, chosen)
    return out


def compare(runs: list[Run]) -> dict[str, Any]:
    param_keys = sorted({k for r in runs for k in r.params})
    metric_keys = sorted({k for r in runs for k in r.metrics})
    params = []
    for k in param_keys:
        vals = [r.params.get(k) for r in runs]
        params.append({"key": k, "values": vals, "differs": len(set(vals)) > 1})
    metrics = []
    for k in metric_keys:
        vals = [r.metrics[k][0] if k in r.metrics else None for r in runs]
        finite = [v for v in vals if v is not None and _finite(v)]
        best = None
        if finite:
            target = min(finite) if lower_is_better(k) else max(finite)
            best = vals.index(target)
        metrics.append({"key": k, "values": [None if v is None else json_float(v) for v in vals],
                        "best": best, "lower_is_better": lower_is_better(k)})
    env = [r.tags.get("octostore.env") for r in runs]
    commits = [r.tags.get("mlflow.source.git.commit") for r in runs]
    return {
        "runs": [{"run_id": r.run_id, "run_name": r.run_name, "status": r.status} for r in runs],
        "params": params,
        "metrics": metrics,
        "environment": {"values": env, "differs": len(set(env)) > 1},
        "code": {"commits": commits, "differs": len(set(commits)) > 1,
                 "dirty": [r.tags.get("octostore.git.dirty") for r in runs]},
    }
