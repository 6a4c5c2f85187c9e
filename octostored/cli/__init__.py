"""``octostore``: scripting against the daemon from a shell.

Every error a user can cause ends as one sentence on stderr and a non-zero
exit (2 for usage and request errors, 1 when no daemon can be reached); no
tracebacks.  ``--json`` prints machine-readable output on every read command.
Imports stay light: the client, orjson and the standard library.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import sys
import time
from typing import Any

import orjson

from . import cli_cache, cli_capture, cli_commit, cli_import, cli_logs, cli_remote, cli_reproduce
from .client import Client, DaemonUnavailable, OctostoreClientError, RequestError, default_root
from .inert import inert, inert_text
from .paths import log_path, socket_path


class UsageError(Exception):
    pass


def _fmt_time(ms: int | None) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def _fmt_num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def _duration(start: int | None, end: int | None) -> str:
    if not start or not end:
        return "-"
    s = (end - start) / 1000
    return f"{s:.1f}s" if s < 60 else f"{s / 60:.1f}m" if s < 3600 else f"{s / 3600:.1f}h"


def table(headers: list[str], rows: list[list[str]], max_width: int | None = None) -> str:
    """Cells come from stores: each is made inert (escapes shown, never acted on)."""
    max_width = max_width or shutil.get_terminal_size((160, 24)).columns
    headers = [inert(h) for h in headers]
    rows = [[inert(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = min(max(widths[i], len(c)), 40)
    lines = []
    for r in [headers, ["-" * w for w in widths], *rows]:
        cells = [(c if len(c) <= widths[i] else c[: widths[i] - 1] + "…").ljust(widths[i])
                 for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip()[:max_width])
    return "\n".join(lines)


def _print_json(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def _root(args: argparse.Namespace) -> str:
    root = os.path.abspath(args.root) if args.root else default_root()
    if not os.path.isdir(root):
        raise UsageError(f"{args.root} is not a folder; pass --root with the path of your repo")
    return root


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
        from .paths import config_dir

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


def _fmt_bytes(n: int) -> str:
    return f"{n} B" if n < 1000 else f"{n / 1e3:.0f} kB" if n < 1e6 else f"{n / 1e6:.1f} MB"


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
    for n in c.iter_notifications("octostore/changed"):
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


def cmd_daemon(args: argparse.Namespace) -> int:
    sock = socket_path()
    if args.action == "logs":
        path = log_path(sock)
        if not os.path.exists(path):
            raise UsageError(f"no daemon log at {path} yet; start the daemon with `octostored --detach`")
        with open(path, encoding="utf-8", errors="replace") as f:
            sys.stdout.write("".join(f.readlines()[-args.lines:]))
        return 0
    if args.action in ("stop", "restart"):
        from .daemonstop import StillRunning, stop_daemon

        try:
            stopped = stop_daemon(sock)
        except StillRunning as exc:
            raise UsageError(str(exc)) from None
        if stopped is not None:
            print(stopped)
        elif args.action == "stop":
            print("no daemon is running")
    if args.action in ("start", "restart", "status"):
        autostart = args.action != "status"
        try:
            with Client(sock, autostart=autostart) as c:
                return cmd_status(c, args)
        except DaemonUnavailable:
            print(f"no daemon is running at {sock}; start one with `octostored --detach`")
            return 1
    return 0


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """Wait until process ``pid`` is gone; whether it went within ``timeout``."""
    from .daemonstop import wait_gone

    return wait_gone(pid, timeout)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="octostore", description="Query and manage MLflow runs through octostored.")
    sub = ap.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str, root: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        if root:
            p.add_argument("--root", help="the repo (default: the git work tree of the current folder)")
        p.add_argument("--json", action="store_true", help="print JSON")
        return p

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
    p = add("daemon", "manage the daemon", root=False)
    p.add_argument("action", choices=["status", "start", "stop", "restart", "logs"])
    p.add_argument("--lines", type=int, default=50)
    for module in SUBCOMMANDS:
        module.add_parsers(sub)
    return ap


COMMANDS = {"status": cmd_status, "experiments": cmd_experiments, "runs": cmd_runs, "run": cmd_run,
            "metrics": cmd_metrics, "artifacts": cmd_artifacts, "watch": cmd_watch}

SUBCOMMANDS: tuple[Any, ...] = (cli_commit, cli_reproduce, cli_logs, cli_remote, cli_cache,
                                 cli_capture, cli_import)
"""Modules adding commands: each has ``add_parsers(sub)`` and ``COMMANDS`` (name -> function
of a client and the args), and may have ``LOCAL`` (commands that need no daemon)."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if cli_commit.is_run_command(argv):
        return cli_commit.main_run(argv)
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        if args.command == "daemon":
            return cmd_daemon(args)
        for module in SUBCOMMANDS:
            local = getattr(module, "LOCAL", {})
            if args.command in local:
                return local[args.command](args)
        if getattr(args, "limit", 1) < 0:
            raise UsageError("--limit must be 0 or more")
        commands = dict(COMMANDS)
        for module in SUBCOMMANDS:
            commands.update(module.COMMANDS)
        with Client() as c:
            return commands[args.command](c, args)
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        print(f"octostore: {inert(exc)}", file=sys.stderr)
        return 2
    except RequestError as exc:
        print(f"octostore: {inert(exc.message)}", file=sys.stderr)
        return 2
    except OctostoreClientError as exc:
        print(f"octostore: {inert(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    # Run the canonical module, not this __main__ copy: lazily imported helpers (cli_commit,
    # cli_reproduce, cli_logs) import octostored.cli, and its UsageError must be the one caught here.
    from octostored.cli import main as _main

    sys.exit(_main())
