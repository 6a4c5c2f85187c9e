"""``octostore daemon status|start|stop|restart|logs``: the daemon itself (no root)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..client import Client, DaemonUnavailable
from ..paths import log_path, socket_path
from .common import UsageError, add_command
from .query import cmd_status


def add_parsers(sub: Any) -> None:
    def add(name: str, help_: str, root: bool = True) -> argparse.ArgumentParser:
        return add_command(sub, name, help_, root)

    p = add("daemon", "manage the daemon", root=False)
    p.add_argument("action", choices=["status", "start", "stop", "restart", "logs"])
    p.add_argument("--lines", type=int, default=50)


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
        from ..daemonstop import StillRunning, stop_daemon

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
    from ..daemonstop import wait_gone

    return wait_gone(pid, timeout)


LOCAL = {"daemon": cmd_daemon}
"""Commands that need no connection made first (they start or stop the daemon)."""
COMMANDS: dict[str, Any] = {}
