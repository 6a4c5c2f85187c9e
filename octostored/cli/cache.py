"""``octostore cache list|prune``: the environments reproductions built, and freeing them.

Each reproduced lock leaves a built environment (often half a gigabyte) in
``<cache>/reproduce/envs``.  ``list`` shows each one (its key, what it was built from,
its size on disk, when a reproduction last used it) and the total; ``prune`` removes
``--all``, those unused for ``--older-than DAYS``, all but the ``--keep N`` most
recently used, or (with none of these) as many of the least recently used as it takes
to bring the cache under the project's ``env_cache_max_gb``; ``--dry-run`` says what it
would remove.  An environment that a reproduction is building or running in is never
removed.  No daemon needed: both read the cache folder directly (:mod:`.reproduce.envcache`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
from typing import Any

import orjson

from ..inert import inert
from ..reproduce import envcache


def _usage(msg: str) -> Exception:
    from .common import UsageError

    return UsageError(msg)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("cache", help="see and free the environments reproductions built")
    cs = p.add_subparsers(dest="cache_command", metavar="{list,prune}", required=True)
    ls = cs.add_parser("list", help="each cached environment: what it was built from, its "
                       "size, when it was last used; and the total")
    ls.add_argument("--json", action="store_true", help="print JSON")
    pr = cs.add_parser("prune", help="remove cached environments (never one in use)")
    pr.add_argument("--all", action="store_true", help="remove every environment not in use")
    pr.add_argument("--older-than", type=float, metavar="DAYS",
                    help="remove those unused for more than DAYS days")
    pr.add_argument("--keep", type=int, metavar="N",
                    help="keep only the N most recently used")
    pr.add_argument("--dry-run", action="store_true", help="say what would go; remove nothing")
    pr.add_argument("--json", action="store_true", help="print JSON")


def _cap(args: argparse.Namespace) -> tuple[float | None, list[str]]:
    from .. import settings

    warnings: list[str] = []
    return settings.env_cache_max_gb(None, warnings), warnings


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _json(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")


def cmd_list(args: argparse.Namespace) -> int:
    folder = envcache.envs_folder()
    envs = envcache.entries(folder)
    total = sum(e.size_bytes for e in envs)
    cap, warnings = _cap(args)
    if args.json:
        _json({"folder": folder, "environments": [e.describe() for e in envs],
               "total_bytes": total, "cap_bytes": None if cap is None else int(cap * envcache.GB),
               "warnings": warnings})
        return 0
    for w in warnings:
        print(f"octostore: {inert(w)}", file=sys.stderr)
    if not envs:
        print(f"no cached environments (in {inert(folder)})")
        return 0
    rows = [("KEY", "BUILT FROM", "PYTHON", "SIZE", "LAST USED", "")]
    for e in envs:
        what = e.source or {"building": "(being built)", "unfinished": "(unfinished build)"}.get(
            e.state, "")
        if e.packages is not None:
            what += f", {e.packages} packages"
        rows.append((e.key, inert(what), e.python_version or "-", envcache.human(e.size_bytes),
                     _when(e.last_used), "in use" if e.in_use else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    cap_text = f", cap {cap:g} GB (env_cache_max_gb)" if cap is not None else ""
    print(f"total: {len(envs)} environment(s), {envcache.human(total)}{cap_text}, in "
          f"{inert(folder)}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    if args.keep is not None and args.keep < 0:
        raise _usage("--keep must be 0 or more")
    if args.older_than is not None and args.older_than < 0:
        raise _usage("--older-than must be a number of days, 0 or more")
    cap, warnings = _cap(args)
    if not args.all and args.keep is None and args.older_than is None and cap is None:
        raise _usage("say what to prune: --all, --older-than DAYS or --keep N (or set "
                     "env_cache_max_gb in ~/.config/octostore/config.toml to prune down to "
                     "that cap)")
    folder = envcache.envs_folder()
    envs = envcache.entries(folder)
    before = sum(e.size_bytes for e in envs)
    by_cap = not args.all and args.keep is None and args.older_than is None
    victims = envcache.choose(envs, everything=args.all, older_than_days=args.older_than,
                              keep=args.keep,
                              cap_bytes=int(cap * envcache.GB) if by_cap and cap is not None
                              else None)
    removed, skipped = envcache.prune(folder, victims, dry_run=args.dry_run)
    # Those the selection names but that a reproduction is building or running in.
    free = [dataclasses.replace(e, in_use=False) for e in envs]
    named = {e.key for e in envcache.choose(
        free, everything=args.all, older_than_days=args.older_than, keep=args.keep,
        cap_bytes=int(cap * envcache.GB) if by_cap and cap is not None else None)}
    in_use = [e for e in envs if e.in_use and e.key in named]
    freed = sum(e.size_bytes for e in removed)
    if args.json:
        _json({"folder": folder, "dry_run": args.dry_run,
               "removed": [e.describe() for e in removed],
               "skipped_in_use": [e.describe() for e in skipped + in_use],
               "freed_bytes": freed, "total_bytes_before": before,
               "total_bytes_after": before - freed, "warnings": warnings})
        return 0
    for w in warnings:
        print(f"octostore: {inert(w)}", file=sys.stderr)
    verb = "would remove" if args.dry_run else "removed"
    for e in removed:
        print(f"{verb} {e.key}  {inert(e.source or e.state)}  {envcache.human(e.size_bytes)}"
              f"  last used {_when(e.last_used)}")
    for e in skipped + in_use:
        print(f"kept {e.key}: in use by a reproduction")
    print(f"{'would free' if args.dry_run else 'freed'} {envcache.human(freed)}; "
          f"{len(envs) - len(removed)} environment(s), {envcache.human(before - freed)} left")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    return {"list": cmd_list, "prune": cmd_prune}[args.cache_command](args)


COMMANDS: dict[str, Any] = {}
LOCAL = {"cache": cmd_cache}
