"""``octostore``: scripting against the daemon from a shell.

Every error a user can cause ends as one sentence on stderr and a non-zero
exit (2 for usage and request errors, 1 when no daemon can be reached); no
tracebacks.  ``--json`` prints machine-readable output on every read command.
Imports stay light: the client, orjson and the standard library.

One module per command group (each with ``add_parsers(sub)``, ``COMMANDS`` and maybe
``LOCAL``), the shared helpers in :mod:`.common`; this module only builds the parser
and dispatches.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from ..client import Client, OctostoreClientError, RequestError
from ..inert import inert
from . import cache, capture, commit, daemonctl, imports, logs, query, remote, reproduce
from .common import UsageError, table  # noqa: F401 - the CLI's public names

SUBCOMMANDS: tuple[Any, ...] = (query, daemonctl, commit, reproduce, logs, remote, cache,
                                capture, imports)
"""Modules adding commands: each has ``add_parsers(sub)`` and ``COMMANDS`` (name -> function
of a client and the args), and may have ``LOCAL`` (commands that need no daemon)."""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="octostore", description="Query and manage MLflow runs through octostored.")
    sub = ap.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parsers(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if commit.is_run_command(argv):
        return commit.main_run(argv)
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        for module in SUBCOMMANDS:
            local = getattr(module, "LOCAL", {})
            if args.command in local:
                return local[args.command](args)
        if getattr(args, "limit", 1) < 0:
            raise UsageError("--limit must be 0 or more")
        commands: dict[str, Any] = {}
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
