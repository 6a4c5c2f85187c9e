"""``octostore import [SOURCE] [--dry-run] [--json]``: runs into the repo's own MLflow store.

Copies the committed runs (default), an ``mlruns`` folder, another ``mlflow.db`` or a
trusted tracking server into ``./mlflow.db`` at the repo's top (or ``MLFLOW_TRACKING_URI``),
keeping run ids, so that stock MLflow with default settings shows them from any folder.
Idempotent by run id.  No daemon: the copy runs in an MLflow worker process
(:mod:`.importer`); this process never imports MLflow.  See docs/import.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import orjson

from ..client import default_root
from ..inert import inert


def _usage(msg: str) -> Exception:
    from .common import UsageError

    return UsageError(msg)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("import", help="copy runs (the committed ones by default) into the "
                       "repo's MLflow store, keeping their ids",
                       description="Copy runs into the repo's own MLflow store (./mlflow.db at "
                       "the repo's top, or MLFLOW_TRACKING_URI), keeping run ids, so that stock "
                       "MLflow shows them from any folder. Importing again adds only what "
                       "changed. See docs/import.md.")
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="an mlruns folder, an mlflow.db (path or sqlite:/// URI) or a trusted "
                   "http(s):// tracking server (default: the repo's committed runs)")
    p.add_argument("--root", help="the repo (default: the git work tree of the current folder)")
    p.add_argument("--dry-run", action="store_true",
                   help="say what would be added, updated or skipped; write nothing")
    p.add_argument("--json", action="store_true", help="print a JSON summary")


class _Progress:
    """``N of M runs`` on stderr, at most about once a second (and the last one)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.last = 0.0

    def __call__(self, p: dict[str, Any]) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        done, total = p.get("done", 0), p.get("total", 0)
        if done == total or now - self.last >= 1.0:
            self.last = now
            print(f"  {done} of {total} runs", file=sys.stderr, flush=True)


def _changes(ch: dict[str, Any]) -> str:
    parts = []
    steps = sum(len(v) for v in ch.get("metrics", {}).values())
    if steps:
        parts.append(f"{steps} metric step(s)")
    for key, what in (("params", "param(s)"), ("tags", "tag(s)")):
        if ch.get(key):
            parts.append(f"{len(ch[key])} {what}")
    if ch.get("status"):
        parts.append(f"status {ch['status'][0]} -> {ch['status'][1]}")
    if ch.get("run_name"):
        parts.append("name")
    if ch.get("artifacts"):
        parts.append(f"{ch['artifacts']} artifact file(s)")
    if ch.get("delete"):
        parts.append("deleted in the source")
    return ", ".join(parts)


def cmd_import(args: argparse.Namespace) -> int:
    from ..importer import where
    from ..importer.spawn import run_worker

    cwd = os.getcwd()
    top = os.path.abspath(args.root) if args.root else default_root()
    if not os.path.isdir(top):
        raise _usage(f"{args.root} is not a folder; pass --root with the path of your repo")
    try:
        src = where.source(args.source, top, cwd)
        dest = where.destination(top, cwd)
        if where.same_store(src, dest):
            raise where.ImportRefused(f"the source is the destination ({dest['label']}); name "
                                      "another SOURCE or set MLFLOW_TRACKING_URI")

        def started(hello: dict[str, Any]) -> None:
            if not args.json:
                verb = "would import" if args.dry_run else "importing"
                print(f"{verb} from {inert(src['label'])} into {inert(dest['label'])} (MLflow "
                      f"{inert(str(hello.get('mlflow')))})", file=sys.stderr, flush=True)

        req = {"source": src, "destination": dest, "dry_run": args.dry_run}
        res = run_worker(req, top, _Progress(args.json), started)
    except where.ImportRefused as exc:
        raise _usage(str(exc)) from None
    res.update(source=src["label"], destination=dest["label"])
    if args.json:
        for r in res["runs"]:  # metric points as counts: the summary, not the data
            ch = r.get("changes") or {}
            if "metrics" in ch:
                ch["metrics"] = {k: len(v) for k, v in ch["metrics"].items()}
        sys.stdout.write(orjson.dumps(res, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 1 if res["counts"]["failed"] else 0
    dry = args.dry_run
    for e in res["experiments"]:
        if e["action"] == "created" or e.get("mapped") or e["action"].startswith("skipped"):
            if e["action"] == "created":
                what = "would be created" if dry else f"created as id {e['destination_id']}"
            elif e["action"] == "existing":
                what = f"goes into the destination's id {e['destination_id']}"
            else:
                what = e["action"]
            print(f"experiment {inert(e['name'])} (source id {inert(e['source_id'])}): {what}")
    labels = {"added": "would add" if dry else "added",
              "updated": "would update" if dry else "updated", "skipped": "skipped",
              "failed": "FAILED"}
    for r in res["runs"]:
        if r["action"] in labels:
            detail = _changes(r.get("changes") or {}) if r["action"] == "updated" else (
                r.get("reason") or "")
            name = inert(r.get("run_name") or "")
            print(f"{labels[r['action']]:<12} {inert(r['run_id'])}  {inert(r['experiment'])}/{name}"
                  + (f"  ({inert(detail)})" if detail else ""))
    models = [m for m in res["models"] if m["action"] == "added"]
    for m in models:
        print(f"{'would add' if dry else 'added'} logged model {inert(m['model_id'])} "
              f"({inert(m['name'] or '')}, run {inert(m['source_run_id'] or '-')})")
    for w in res["warnings"]:
        print(f"octostore: {inert(w)}", file=sys.stderr)
    c = res["counts"]
    head = "would add" if dry else "added"
    print(f"{head} {c['added']} run(s), {'would update' if dry else 'updated'} {c['updated']}, "
          f"{c['unchanged']} unchanged, {c['skipped']} skipped"
          + (f", {c['failed']} failed" if c["failed"] else "")
          + f"; {len(models)} logged model(s) {'to add' if dry else 'added'}")
    return 1 if c["failed"] else 0


COMMANDS: dict[str, Any] = {}
LOCAL = {"import": cmd_import}
