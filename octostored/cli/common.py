"""What every ``octostore`` command shares: the usage error, table and number formats, JSON
output, the root a command names, and adding a command's parser."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
from typing import Any

import orjson

from ..client import default_root
from ..inert import inert


class UsageError(Exception):
    """A mistake in the command line: one sentence, exit 2."""


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


def _fmt_bytes(n: int) -> str:
    return f"{n} B" if n < 1000 else f"{n / 1e3:.0f} kB" if n < 1e6 else f"{n / 1e6:.1f} MB"


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


def add_command(sub: Any, name: str, help_: str, root: bool = True) -> argparse.ArgumentParser:
    """A command's parser with ``--json`` (and ``--root`` when it reads a repo)."""
    p = sub.add_parser(name, help=help_)
    if root:
        p.add_argument("--root", help="the repo (default: the git work tree of the current folder)")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p
