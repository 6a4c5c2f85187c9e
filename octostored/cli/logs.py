"""``octostore logs RUN``: a run's console log, as the terminal showed it.

Prints the raw text (ANSI colours and ``\\r`` progress updates intact, so the terminal
renders them as it did when the command ran) of the run's part of its log
(``octostore/log``).  ``--tail N`` prints the last N lines, ``--grep PATTERN`` the
matching lines with line numbers (RE2 syntax, Python's without backreferences and
lookaround; the daemon checks it), ``--follow`` keeps printing while
the run writes and stops when it ends (polling, as every client does).  A run without a
log ends in one sentence and exit 2, like every request error.

Imports stay light (the standard library, orjson and the client), like cli.py.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from typing import Any

import orjson

from ..client import Client, default_root
from ..inert import inert_text

READ_BYTES = 1024 * 1024
"""Bytes asked per request (the daemon's maximum)."""
POLL_SECONDS = 0.5
FIRST_TAIL_BYTES = 64 * 1024
MAX_LINES = 100_000
"""The most matching lines the daemon sends (``octostored.console.reader.MAX_LINES``)."""


def _usage(msg: str) -> Exception:
    from .common import UsageError

    return UsageError(msg)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("logs", help="print a run's console log (as the terminal showed it)")
    p.add_argument("run_id", metavar="RUN", help="the run (id or 6+ character prefix)")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing while the run writes; stop when it ends")
    p.add_argument("--grep", metavar="PATTERN",
                   help="print only the lines matching a regular expression (RE2 syntax), with line numbers")
    p.add_argument("--max-lines", type=int, default=1000,
                   help="with --grep: at most this many lines (default 1000)")
    p.add_argument("-n", "--tail", type=int, metavar="N", help="print only the last N lines")
    p.add_argument("--name", help="which log, when the run has several (see `octostore run`)")
    p.add_argument("--root", help="the repo (default: the git work tree of the current folder)")
    p.add_argument("--json", action="store_true", help="print the daemon's replies as JSON")


_PARTIAL_ESCAPE = re.compile(r"\x1b(\[[0-9;:]*)?$")
"""An escape sequence cut off at the end of a page (printed with the next one, whole)."""


def _write(text: str) -> None:
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
    if out is not None:
        sys.stdout.flush()
        out.write(text.encode("utf-8", "surrogateescape"))
        out.flush()
    else:  # a replaced stdout (tests capturing text)
        sys.stdout.write(text)
        sys.stdout.flush()


def _json(obj: Any) -> None:
    _write(orjson.dumps(obj).decode() + "\n")


def cmd_logs(c: Client, args: argparse.Namespace) -> int:
    root = os.path.abspath(args.root) if args.root else default_root()
    if not os.path.isdir(root):
        raise _usage(f"{args.root} is not a folder; pass --root with the path of your repo")
    if args.tail is not None and args.tail < 0:
        raise _usage("--tail must be 0 or more")
    if not 1 <= args.max_lines <= MAX_LINES:
        raise _usage(f"--max-lines must be from 1 to {MAX_LINES}")
    if args.grep is not None and (args.follow or args.tail is not None):
        raise _usage("--grep searches the whole log; leave out --follow and --tail")
    base: dict[str, Any] = {"root": root, "run_id": args.run_id}
    if args.name:
        base["name"] = args.name
    if args.grep is not None:
        return _grep(c, base, args)
    if args.tail is not None:
        reply = _tail(c, base, args.tail, args.json)
    else:
        reply = _print_from(c, base, 0, args.json)
    if args.follow:
        while reply["live"] or not reply["eof"]:
            if reply["eof"]:
                time.sleep(POLL_SECONDS)
            reply = _print_from(c, base, reply["next_offset"], args.json, once=True)
    return 0


def _print_from(c: Client, base: dict[str, Any], offset: int, as_json: bool,
                once: bool = False) -> dict[str, Any]:
    """Print from ``offset`` to the end known now (one request with ``once``)."""
    while True:
        reply = c.call("octostore/log", {**base, "offset": offset, "max_bytes": READ_BYTES})
        if as_json:
            _json(reply)
            offset = reply["next_offset"]
        else:
            data = reply["data"]
            cut = _PARTIAL_ESCAPE.search(data) if not reply["eof"] else None
            if cut is not None and cut.start() > 0:  # an escape split by the page: read it whole next
                data = data[:cut.start()]
            if data:
                _write(inert_text(data))
            offset = reply["next_offset"] - len(reply["data"][len(data):].encode("utf-8", "surrogateescape"))
        if once or reply["eof"]:
            return {**reply, "next_offset": offset}


def _tail(c: Client, base: dict[str, Any], lines: int, as_json: bool) -> dict[str, Any]:
    """Print the last ``lines`` lines; widen the window until it holds them."""
    want = FIRST_TAIL_BYTES
    while True:
        reply = c.call("octostore/log", {**base, "tail": want, "max_bytes": READ_BYTES})
        text = reply["data"]
        if reply["offset"] == 0 or text.count("\n") > lines or want >= READ_BYTES:
            break
        want = min(want * 4, READ_BYTES)
    kept = last_lines(text, lines)
    if as_json:
        _json({**reply, "data": kept, "offset": reply["next_offset"] - len(kept.encode())})
    else:
        _write(inert_text(kept))
    return reply


def last_lines(text: str, n: int) -> str:
    """The last ``n`` lines of ``text``, split at ``\n`` only (a ``\r`` redraws a line, it
    does not start one)."""
    pos = len(text) - 1 if text.endswith("\n") else len(text)
    for _ in range(n):
        pos = text.rfind("\n", 0, pos)
        if pos < 0:
            return text
    return text[pos + 1:]


def shown(line: str) -> str:
    """What a terminal leaves of a line: the text after its last ``\r`` (a progress bar in
    its last state; printed whole, each ``\r`` would also wipe the line number)."""
    if "\r" not in line:
        return line
    parts = [p for p in line.split("\r") if p]
    return parts[-1] if parts else ""


def _grep(c: Client, base: dict[str, Any], args: argparse.Namespace) -> int:
    reply = c.call("octostore/log", {**base, "grep": args.grep, "max_lines": args.max_lines})
    if args.json:
        _json(reply)
        return 0
    _write("".join(f"{n}:{inert_text(shown(text))}\n" for n, text in reply["matches"]))
    if reply["truncated"]:
        print(f"octostore: showing the first {len(reply['matches'])} matching lines; "
              "pass --max-lines for more", file=sys.stderr)
    return 0


COMMANDS = {"logs": cmd_logs}
