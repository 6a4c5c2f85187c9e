"""experiments, runs, run, metric_history, insights, compare."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ...index import insights as insights_mod
from ...index.history import downsample
from ...model import Run, json_float
from ..errors import BadFilter, ExperimentNotFound, InvalidParams, ReplyTooLarge, RequestTooLarge
from ..params import Params
from ..register import rooted
from ..shape import experiment_row, run_full, run_row, run_row_json
from .lookup import find_run

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from ...index.root import Root
    from ...hub import Hub

MAX_LIMIT = 10_000
MAX_SERIES = 200
"""Most series one metric_history request may ask for (runs x keys): more than a screen shows."""
VIEWS = ("active", "deleted", "all")
MAX_COMPARE = 100
"""Most runs one compare request may put side by side (a request naming one run a million
times once made a 528 MB reply)."""
MAX_POINTS_TOTAL = 1_000_000
"""Most points one metric_history reply may carry, counted after downsampling (asking for
100,000 points of 26 series is fine when the histories hold fewer)."""
PAGE_BYTES = 24 * 1024 * 1024
"""A runs page stops growing past this many bytes of rows; next_offset says where to go on."""


def check_query(filter_string: str | None, order_by: list[str] | None) -> None:
    """Refuse a filter or order_by over its size cap before anything parses it (O(1))."""
    from ...index.search import MAX_FILTER, MAX_ORDER_BY  # a module: no package fromlist

    if filter_string is not None and len(filter_string) > MAX_FILTER:
        raise RequestTooLarge(f"the filter has {len(filter_string)} characters, more than "
                              f"{MAX_FILTER}", "write a shorter filter", limit=MAX_FILTER)
    if order_by and (len(order_by) > 100 or sum(map(len, order_by)) > MAX_ORDER_BY):
        raise RequestTooLarge(f"order_by has more than 100 items or {MAX_ORDER_BY} characters",
                              "sort by fewer keys", limit=MAX_ORDER_BY)


def _experiment_runs(root: Root, ids: list[str] | None) -> list[Run]:
    from ...index.search import UnknownExperiment, experiment_runs

    try:
        return experiment_runs(root.index, tuple(ids or ()))
    except UnknownExperiment as exc:
        raise ExperimentNotFound(f"no experiment {str(exc)!r} in {root.path}",
                                 "list them with `octostore experiments`") from None


def search_runs(root: Root, p: Params) -> dict[str, Any]:
    """``octostore/runs``: the params checked here, the plan in the index
    (:meth:`RootIndex.search`), the rows shaped here.  Runs in a worker thread."""
    # One import of a plain module (the query package loads with the first search, not at
    # the first connection; a package's fromlist would run importlib's Python code each call).
    from ...index.search import (MAX_FILTER, FilterError, FilterTooLarge, RunQuery,
                                 UnknownExperiment)

    q = RunQuery(
        experiment_ids=tuple(p.str_list("experiment_ids") or ()),
        view=p.choice("view", VIEWS, "active"),
        filter=p.str("filter"),
        order_by=tuple(p.str_list("order_by") or ()),
        offset=p.int("offset", 0, lo=0) or 0,
        limit=p.int("limit", 1000, lo=0, hi=MAX_LIMIT) or 0,
        since=p.str("since_clock"),
    )
    columns = p.str_list("columns")
    check_query(q.filter, list(q.order_by) or None)
    try:
        res = root.index.search(q)
    except UnknownExperiment as exc:
        raise ExperimentNotFound(f"no experiment {str(exc)!r} in {root.path}",
                                 "list them with `octostore experiments`") from None
    except FilterTooLarge as exc:
        raise RequestTooLarge(str(exc), "", limit=MAX_FILTER) from None
    except FilterError as exc:
        raise BadFilter(str(exc), "see MLflow's search syntax, e.g. metrics.rmse < 0.7 and "
                        "params.model = 'rf'", filter=q.filter) from None
    if columns is not None:
        rows: list[Any] = [run_row(r, columns) for r in res.runs]
    else:
        # Full rows are encoded once per run version and reused (orjson copies the bytes).
        row = root.index.row
        pairs = [row(r, run_row_json) for r in res.runs]
        rows = [frag for frag, _n in pairs]
        if sum(n for _frag, n in pairs) > PAGE_BYTES:  # a page of huge runs: cut it, and
            size, keep = 0, 0                          # the client goes on from next_offset
            for _frag, n in pairs:
                if keep and size + n > PAGE_BYTES:
                    break
                size += n
                keep += 1
            rows = rows[:keep]
    nxt = q.offset + len(rows)
    return {
        "root": root.path,
        "clock": res.clock,
        "is_fresh_instance": res.fresh,
        "total": res.total,
        "offset": q.offset,
        "next_offset": nxt if nxt < res.total else None,
        "runs": rows,
        "removed": res.removed,
    }


def _valid_metric_key(key: str) -> bool:
    # A metric key names a file under metrics/: nothing that could leave that folder.
    parts = key.split("/")
    return bool(key) and "\x00" not in key and len(key) <= 1000 and "" not in parts and not (
        {".", ".."} & set(parts))


def _history(root: Root, run: Run, key: str, x: str, max_points: int) -> dict[str, Any]:
    if not _valid_metric_key(key):
        return {"run_id": run.run_id, "key": key, "x": [], "y": [], "points": 0,
                "warnings": [f"{key[:60]!r} is not a metric key"]}
    kind = root.index.sources.get(run.source)
    try:
        points, warnings = root.history.get(run, key, kind.kind if kind else "file")
    except Exception as exc:  # a store that cannot be read costs this series a warning
        points, warnings = [], [f"cannot read the history of {key}: {exc}"]
    if x == "step":
        xy = [(p[2], p[1]) for p in points]
    elif x == "time":
        xy = [(p[0], p[1]) for p in points]
    else:
        t0 = run.start_time if run.start_time is not None else (points[0][0] if points else 0)
        xy = [((p[0] - t0) / 1000.0, p[1]) for p in points]
    if x != "step" or any(xy[i][0] > xy[i + 1][0] for i in range(len(xy) - 1)):
        xy = sorted(xy, key=lambda t: t[0])
    total = len(xy)
    xy = downsample(xy, max_points)
    return {
        "run_id": run.run_id,
        "key": key,
        "x": [a for a, _ in xy],
        "y": [json_float(b) for _, b in xy],
        "points": total,
        "warnings": warnings,
    }


def register(ls: LanguageServer, daemon: Hub) -> None:
    @rooted(ls, daemon, "octostore/experiments")
    async def experiments(ls: LanguageServer, p: Params, root: Root) -> dict[str, Any]:
        view = p.choice("view", VIEWS, "active")
        counts: dict[str, list[Any]] = {}
        for r in root.index.runs.values():
            c = counts.setdefault(r.experiment_key or r.experiment_id, [0, 0, None])
            c[0] += 1
            if r.lifecycle_stage == "active":
                c[1] += 1
            last = max(t for t in (r.start_time, r.end_time, c[2]) if t is not None) if (
                r.start_time or r.end_time or c[2]) else None
            c[2] = last
        rows = []
        for key, exp in root.index.experiments.items():
            in_trash = exp.dir.startswith(".trash")
            deleted = exp.lifecycle_stage == "deleted" or in_trash
            if (view == "active" and deleted) or (view == "deleted" and not deleted):
                continue
            n, active, last = counts.get(key, [0, 0, None])
            rows.append(experiment_row(exp, n, active, last))
        rows.sort(key=lambda e: (-(e["last_activity"] or 0), e["name"]))
        return {"root": root.path, "clock": root.index.clock, "experiments": rows}

    @rooted(ls, daemon, "octostore/runs")
    async def runs(ls: LanguageServer, p: Params, root: Root) -> dict[str, Any]:
        return await asyncio.to_thread(search_runs, root, p)

    @rooted(ls, daemon, "octostore/run")
    async def run(ls: LanguageServer, p: Params, root: Root) -> dict[str, Any]:
        r = find_run(root, p.str("run_id", required=True) or "")
        out = run_full(r)
        exp = root.index.experiments.get(r.experiment_key or r.experiment_id)
        out["experiment_name"] = exp.name if exp else None
        out["git"] = {
            # MLflow records no commit for notebook runs: the capture's own tag then.
            "commit": r.tags.get("mlflow.source.git.commit") or r.tags.get("octostore.git.commit"),
            "dirty": r.tags.get("octostore.git.dirty"),
            "patch": r.tags.get("octostore.git.patch"),
        }
        out["environment"] = {
            "lock": r.tags.get("octostore.env"),
            "python": r.tags.get("octostore.python"),
            "argv": r.tags.get("octostore.argv"),
        }
        for key, tag in (("notebook", "octostore.notebook"), ("inputs", "octostore.inputs"),
                         ("big_changes", "octostore.git.big")):
            if r.tags.get(tag):
                out["environment"][key] = r.tags[tag]
        from ...sources.models import may_have_models, run_models

        info = root.index.sources.get(r.source)
        kind = info.kind if info else None
        # root.path is the repo's top already (a root is named by it): no walk up per request.
        out["models"] = await asyncio.to_thread(run_models, r, kind, root.path) \
            if may_have_models(r, kind) else []
        orig = r.tags.get("octostore.reproduces")
        out["reproduces"] = orig
        out["reproduced_by"] = [
            {"run_id": o.run_id, "verdict": o.tags.get("octostore.verdict"), "status": o.status}
            for o in root.index.reproductions(r.run_id)
        ]
        from .logs import resolve as resolve_logs

        logs = await resolve_logs(root, r)
        out["logs"] = [ref.describe() for ref in logs.logs]
        if logs.warnings:
            out["warnings"] = [*out["warnings"], *logs.warnings]
        out["clock"] = root.index.clock
        return out

    @rooted(ls, daemon, "octostore/metric_history")
    async def metric_history(ls: LanguageServer, p: Params, root: Root) -> dict[str, Any]:
        run_ids = p.str_list("run_ids") or p.str_list("run_id")
        keys = p.str_list("keys") or p.str_list("key")
        if not run_ids or not keys:
            raise InvalidParams("octostore/metric_history needs run_ids and keys",
                                'pass e.g. {"run_ids": ["<id>"], "keys": ["rmse"]}')
        x = p.choice("x", ("step", "time", "relative"), "step")
        max_points = p.int("max_points", 1000, lo=2, hi=100_000) or 1000
        if len(run_ids) * len(keys) > MAX_SERIES:
            raise InvalidParams(
                f"octostore/metric_history: {len(run_ids) * len(keys)} series asked for, "
                f"at most {MAX_SERIES} in one request", "ask for fewer runs or keys at a time")
        found = [find_run(root, rid) for rid in dict.fromkeys(run_ids)]
        keys = list(dict.fromkeys(keys))

        def read() -> list[dict[str, Any]]:
            return [_history(root, r, k, x, max_points) for r in found for k in keys]

        series = await asyncio.to_thread(read)
        points = sum(len(s.get("x") or ()) for s in series)
        if points > MAX_POINTS_TOTAL:
            raise ReplyTooLarge(
                f"octostore/metric_history: {len(series)} series hold {points} points, more "
                f"than {MAX_POINTS_TOTAL} in one reply", "ask for fewer series or a smaller "
                "max_points", limit=MAX_POINTS_TOTAL)
        return {"root": root.path, "clock": root.index.clock, "x": x, "series": series}

    @rooted(ls, daemon, "octostore/insights")
    async def insights(ls: LanguageServer, p: Params, root: Root) -> dict[str, Any]:
        runs = [r for r in _experiment_runs(root, p.str_list("experiment_ids"))
                if r.lifecycle_stage == "active"]
        lower = p.raw.get("lower_is_better")
        if lower is not None and not isinstance(lower, bool):
            raise InvalidParams("octostore/insights: 'lower_is_better' must be true or false",
                                "fix the request's params")
        out = await asyncio.to_thread(insights_mod.insights, runs, p.str("metric"), lower)
        return {"root": root.path, "clock": root.index.clock, **out}

    @rooted(ls, daemon, "octostore/compare")
    async def compare(ls: LanguageServer, p: Params, root: Root) -> dict[str, Any]:
        ids = p.str_list("run_ids")
        ids = list(dict.fromkeys(ids)) if ids else ids
        if ids and len(ids) > MAX_COMPARE:
            raise RequestTooLarge(f"octostore/compare: {len(ids)} runs, more than {MAX_COMPARE}",
                                  "compare fewer runs at a time", limit=MAX_COMPARE)
        if not ids or len(ids) < 2:
            raise InvalidParams("octostore/compare needs at least two run_ids",
                                "pick two or more runs to compare")
        runs = [find_run(root, rid) for rid in ids]
        return {"root": root.path, "clock": root.index.clock, **insights_mod.compare(runs)}
