"""Reading commands: status, experiments, runs, run, metrics, artifacts, watch."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from typing import Any

import orjson

from ..client import Client
from ..inert import inert, inert_text
from ..rpc.protocol import NOTIFICATION_CHANGED
from .common import (
    UsageError,
    _duration,
    _fmt_bytes,
    _fmt_num,
    _fmt_time,
    _print_json,
    _root,
    add_command,
    table,
)


def add_parsers(sub: Any) -> None:
    def add(name: str, help_: str, root: bool = True) -> argparse.ArgumentParser:
        return add_command(sub, name, help_, root)

    add("status", "the daemon and its open roots", root=False)
    p = add("experiments", "list experiments")
    p.add_argument("--view", choices=["active", "deleted", "all"], default="active")
    p = add("runs", "search runs (MLflow's search syntax)")
    p.add_argument("--filter", help="e.g. \"metrics.rmse < 0.7 and params.model = 'rf'\"")
    p.add_argument("--order-by", action="append", help="e.g. 'metrics.rmse ASC' (repeatable)")
    p.add_argument("--experiment", action="append", help="experiment id or name (repeatable)")
    p.add_argument("--view", choices=["active", "deleted", "all"], default="active")
    p.add_argument("--limit", type=int, default=100,
                   help="at most this many runs (default 100); 0 for every run")
    p.add_argument("--all", action="store_true", help="every run (the same as --limit 0)")
    p = add("run", "one run in full; `octostore run -- CMD ...` runs CMD keeping its console")
    p.description = ("octostore run RUN_ID shows one run in full. "
                     "octostore run -- CMD ... runs CMD (e.g. python train.py) with its output "
                     "passed to the terminal unchanged and kept in .octostore/logs/, tagged on "
                     "every MLflow run it starts (see `octostore logs`).")
    p.add_argument("run_id", help="the run (id or a unique prefix)")
    p = add("metrics", "a run's metric history")
    p.add_argument("run_id")
    p.add_argument("keys", nargs="+")
    p.add_argument("--x", choices=["step", "time", "relative"], default="step")
    p.add_argument("--max-points", type=int, default=1000)
    p = add("artifacts", "list a run's artifacts, or print one")
    p.add_argument("run_id")
    p.add_argument("path", nargs="?")
    add("watch", "stream changes as they happen")


ROOT_STATES = {
    "indexing": "indexing (reading its stores)",
    "verifying": "verifying (every run is listed; setting up the watch and re-checking the disk)",
    "failed": "failed (see the warnings below)",
}


def cmd_status(c: Client, args: argparse.Namespace) -> int:
    st = c.call("octostore/status")
    if args.json:
        _print_json(st)
        return 0
    print(f"octostored {st['version']} (pid {st['pid']}, protocol {st['protocol_version']}), "
          f"up {st['uptime']:.0f} s, {st['clients']} client(s)")
    for r in st["roots"]:
        state = ROOT_STATES.get(r["state"], r["state"])
        print(f"  {inert(r['root'])}: {r['runs']} runs, {r['experiments']} experiments, {state}")
        for s in r["sources"]:
            extra = f", {s['state']}" if s.get("state") else ""
            if s.get("last_sync"):
                extra += f", read {max(0.0, time.time() - s['last_sync']):.0f} s ago"
            print(f"    {s['kind']:6} {inert(s['id'])}: {s['runs']} runs" + (" (committed)" if s["committed"] else "")
                  + extra)
        for w in r["warnings"]:
            print(f"    warning: {inert(w)}")
    return 0


def cmd_experiments(c: Client, args: argparse.Namespace) -> int:
    res = c.call("octostore/experiments", root=_root(args), view=args.view)
    if args.json:
        _print_json(res["experiments"])
        return 0
    rows = [[e["key"], e["name"], str(e["runs"]), _fmt_time(e["last_activity"]), e["source"]]
            for e in res["experiments"]]
    if not rows:
        print(f"no experiments in {inert(res['root'])}")
        return 0
    print(table(["id", "name", "runs", "last activity", "store"], rows))
    return 0


def _open_checked(c: Client, root: str) -> dict[str, Any]:
    info = c.call("octostore/open", root=root)
    search = info.get("search") or {}
    if search.get("limited"):
        # A folder outside git (say /tmp): name it, and say why other folders were not read.
        from ..paths import config_dir

        depth = search.get("depth", 0)
        why = (f"{inert(root)} is not a git work tree and has no MLflow store at its top, so "
               f"stores were looked for only {depth} folder{'s' if depth != 1 else ''} deep")
        fix = ("cd into your project or pass --root PATH, or set search_depth_outside_git in "
               f"{inert(os.path.join(config_dir(), 'config.toml'))}")
        if not info["sources"]:
            raise UsageError(f"no MLflow runs found: {why}; {fix}")
        print(f"octostore: using {inert(root)}, which{why[len(inert(root)):]} (found {len(info['sources'])} store"
              f"{'s' if len(info['sources']) != 1 else ''}); if that is not what you meant, {fix}",
              file=sys.stderr)
    if not info["sources"]:
        raise UsageError(f"no MLflow runs found in {inert(root)} (no mlruns/ folder or mlflow.db); "
                         "run your training script with MLflow first, or pass --root")
    return info


def cmd_runs(c: Client, args: argparse.Namespace) -> int:
    root = _root(args)
    _open_checked(c, root)
    params: dict[str, Any] = {"root": root, "view": args.view}
    if args.filter:
        params["filter"] = args.filter
    if args.order_by:
        params["order_by"] = args.order_by
    if args.experiment:
        params["experiment_ids"] = args.experiment
    want = None if args.all or args.limit == 0 else args.limit
    res = runs_pages(c, params, want)
    runs = res["runs"]
    if args.json:
        _print_json(runs)
        return 0
    if not runs:
        print("no runs match" if args.filter else f"no runs in {inert(root)}")
        return 0
    metric_keys = sorted({k for r in runs for k in r["metrics"]})[:5]
    param_keys = sorted({k for r in runs for k in r["params"]})[:4]
    headers = ["run_id", "name", "status", "start", "duration", *param_keys, *metric_keys]
    rows = [[r["run_id"][:8], r["run_name"] or "-", r["status"], _fmt_time(r["start_time"]),
             _duration(r["start_time"], r["end_time"]),
             *[r["params"].get(k, "-") for k in param_keys],
             *[_fmt_num(r["metrics"].get(k)) for k in metric_keys]] for r in runs]
    print(table(headers, rows))
    if res["total"] > len(runs):
        print(f"({len(runs)} of {res['total']} runs; use --limit to see more)")
    return 0


PAGE = 10_000
"""The daemon's largest page (octostore/runs' limit cap)."""


def runs_pages(c: Client, params: dict[str, Any], want: int | None) -> dict[str, Any]:
    """``octostore/runs`` for up to ``want`` runs (None: every run), a page at a time (a run
    that moves between two pages while training writes is kept once)."""
    runs: list[dict[str, Any]] = []
    seen: set[str] = set()
    offset = 0
    while True:
        limit = PAGE if want is None else min(PAGE, want - len(runs))
        res = c.call("octostore/runs", {**params, "offset": offset, "limit": limit})
        for r in res["runs"]:
            if r["run_id"] not in seen:
                seen.add(r["run_id"])
                runs.append(r)
        offset += len(res["runs"])
        if not res["runs"] or offset >= res["total"] or (want is not None and len(runs) >= want):
            return {**res, "runs": runs}


def cmd_run(c: Client, args: argparse.Namespace) -> int:
    r = c.call("octostore/run", root=_root(args), run_id=args.run_id)
    if args.json:
        _print_json(r)
        return 0
    print(f"run {inert(r['run_id'])}  {inert(r['run_name'] or '')}")
    print(f"  experiment  {inert(r['experiment_name'])} ({inert(r['experiment_id'])})")
    print(f"  status      {inert(r['status'])}  ({inert(r['lifecycle_stage'])})")
    print(f"  started     {_fmt_time(r['start_time'])}   duration {_duration(r['start_time'], r['end_time'])}")
    print(f"  store       {inert(', '.join(r['sources']))}" + ("  [committed]" if r["committed"] else ""))
    if r["git"]["commit"]:
        print(f"  git commit  {inert(r['git']['commit'])}" + ("  (dirty)" if r["git"]["dirty"] == "true" else ""))
    for title, items in (("params", r["params"]), ("tags", {k: v for k, v in r["tags"].items()
                                                             if not k.startswith("mlflow.log-model")})):
        if items:
            print(f"  {title}:")
            for k in sorted(items):
                print(f"    {inert(k)} = {inert(str(items[k])[:100])}")
    if r["metrics"]:
        print("  metrics:")
        for k in sorted(r["metrics"]):
            m = r["metrics"][k]
            print(f"    {inert(k)} = {_fmt_num(m['value'])}  (step {m['step']})")
    if r.get("reproduces"):
        print(f"  reproduces  {inert(r['reproduces'])}")
    for o in r.get("reproduced_by") or []:
        verdict = inert(o.get("verdict") or o.get("status") or "-")
        print(f"  reproduced  by {inert(o['run_id'])}: {verdict}")
    for log in r.get("logs", []):
        what = "live, " if log["live"] else ""
        part = "" if log["part"] == "run" else ", whole log: shared with overlapping runs"
        print(f"  log         {inert(log['name'])}: {inert(log['path'])} ({what}{_fmt_bytes(log['size'])}{part})")
    if r.get("logs"):
        print(f"              show it with `octostore logs {r['run_id'][:8]}`")
    for w in r["warnings"]:
        print(f"  warning: {inert(w)}")
    return 0


def cmd_metrics(c: Client, args: argparse.Namespace) -> int:
    res = c.call("octostore/metric_history", root=_root(args), run_ids=[args.run_id],
                 keys=args.keys, x=args.x, max_points=args.max_points)
    if args.json:
        _print_json(res)
        return 0
    for s in res["series"]:
        print(f"{inert(s['key'])} ({s['points']} points)")
        for x, y in zip(s["x"], s["y"]):
            print(f"  {_fmt_num(x):>10}  {_fmt_num(y)}")
    return 0


def cmd_artifacts(c: Client, args: argparse.Namespace) -> int:
    root = _root(args)
    if args.path:
        res = c.call("octostore/artifact", root=root, run_id=args.run_id, path=args.path)
        if res["binary"]:
            raise UsageError(f"{args.path} is a binary file ({res['size']} bytes); open it from the artifact folder")
        sys.stdout.write(inert_text(res["text"]))
        return 0
    res = c.call("octostore/artifacts", root=root, run_id=args.run_id)
    if args.json:
        _print_json(res)
        return 0
    for w in res["warnings"]:
        print(f"warning: {inert(w)}", file=sys.stderr)
    for a in res["artifacts"]:
        print(f"{a['size']:>10}  {inert(a['path'])}")
    return 0


def cmd_watch(c: Client, args: argparse.Namespace) -> int:
    root = _root(args)
    sub = c.call("octostore/subscribe", root=root)
    print(f"watching {inert(sub['root'])} (clock {sub['clock']}); Ctrl-C stops", file=sys.stderr)
    for n in c.iter_notifications(NOTIFICATION_CHANGED):
        p = n["params"]
        if args.json:
            sys.stdout.write(orjson.dumps(p).decode() + "\n")
        else:
            parts = [f"{len(p['runs'])} run(s) changed" if p["runs"] else "",
                     f"{len(p['removed'])} removed" if p["removed"] else "",
                     "environment" if p["environment"] else "", "git" if p["git"] else ""]
            print(f"{dt.datetime.now():%H:%M:%S} {p['clock']}: " + ", ".join(x for x in parts if x))
        sys.stdout.flush()
    return 0


COMMANDS = {"status": cmd_status, "experiments": cmd_experiments, "runs": cmd_runs, "run": cmd_run,
            "metrics": cmd_metrics, "artifacts": cmd_artifacts, "watch": cmd_watch}
