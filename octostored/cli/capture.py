"""``octostore capture install|uninstall|status [--python PY] [--json]``: the capture plugin in
any environment (a venv, a conda environment, a system Python) as the one small distribution
``octostore-capture``, with no dependencies, through that interpreter's own installer,
offline (:mod:`.capture_dist`).  Without ``--python``: the ``python`` on PATH, and it says so.
No daemon needed.  ``status`` exits 0 when the plugin is installed and current, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from .. import capture_dist as cd
from ..inert import inert


def _usage(msg: str) -> Exception:
    from .common import UsageError

    return UsageError(msg)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("capture", help="put octostore's capture plugin into your training "
                       "environment (or take it out, or see whether it is there)")
    cs = p.add_subparsers(dest="capture_command", metavar="{install,uninstall,status}",
                          required=True)
    for name, text in (("install", (f"install {cd.DIST} (the plugin alone, no dependencies, "
                                    "offline) into an environment")),
                       ("uninstall", f"remove {cd.DIST} from an environment"),
                       ("status", (f"whether {cd.DIST} is installed in an environment and "
                                   "current (exit code 1 when not)"))):
        q = cs.add_parser(name, help=text)
        q.add_argument("--python", metavar="PY",
                       help="the environment's interpreter (a path such as .venv/bin/python, "
                       "an environment's folder, or a command on PATH); default: the `python` "
                       "on PATH")
        q.add_argument("--json", action="store_true", help="print JSON")


def _json(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")


def _target(args: argparse.Namespace) -> cd.Target:
    python, how = cd.find_python(args.python)
    return cd.probe(python, how)


def _where(t: cd.Target) -> str:
    picked = (f"; picked as {t.how_found}, pass --python to choose another"
              if t.how_found.startswith("the `") else "")
    return f"{inert(t.describe())}{picked}"


def cmd_install(args: argparse.Namespace) -> int:
    t = _target(args)
    before = t.installed_version()
    out = cd.install(t)
    if args.json:
        _json({**out.after.json(), "action": "install", "previous_version": before,
               "installer": out.installer, "command": out.command, "notes": out.notes,
               "other_versions_changed": out.changed_others})
    else:
        was = "" if before is None else (
            f" (was {inert(before)})" if before != cd.version() else " (reinstalled)")
        print(f"installed {cd.DIST} {cd.version()}{was} into {_where(t)}")
        for note in out.notes:
            print(f"  {inert(note)}")
        print("  every mlflow.start_run() there now gets octostore.* tags "
              "(OCTOSTORE_CAPTURE=0 turns them off)")
    if out.changed_others:
        names = ", ".join(f"{inert(n)} {a} -> {b}" for n, (a, b) in out.changed_others.items())
        print(f"octostore: other distributions changed while installing ({names}): check "
              f"that nothing else was installing into {inert(t.prefix)} at the same time",
              file=sys.stderr)
        return 1
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    t = _target(args)
    out = cd.uninstall(t)
    if args.json:
        after = out.after if out else t
        _json({**after.json(), "action": "uninstall", "removed": out is not None,
               "previous_version": t.installed_version(),
               "installer": out.installer if out else None,
               "command": out.command if out else None,
               "other_versions_changed": out.changed_others if out else {}})
        return 0
    if out is None:
        print(f"{cd.DIST} is not installed in {_where(t)}; nothing to remove")
    else:
        print(f"removed {cd.DIST} {inert(t.installed_version() or '')} from {_where(t)}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    t = _target(args)
    ok = t.installed is not None and t.current()
    if args.json:
        _json(t.json())
        return 0 if ok else 1
    have = t.installed_version()
    if have is None:
        print(f"{cd.DIST} is not installed in {_where(t)}")
        fix = f"octostore capture install --python {t.python}"
        print(f"  install it with: {inert(fix)}")
    elif ok:
        print(f"{cd.DIST} {inert(have)} is installed in {_where(t)}, and current")
    else:
        why = (f"this octostore is {cd.version()}" if have != cd.version() else
               "its files differ from this octostore's")
        print(f"{cd.DIST} {inert(have)} is installed in {_where(t)}, but not current ({why})")
        print(f"  update it with: octostore capture install --python {inert(t.python)}")
    if t.full_octostore:
        print(f"  the full octostore is installed there too: its own plugin tags the runs"
              f"{f' and {cd.DIST} stands aside' if have else ''}")
    return 0 if ok else 1


def cmd_capture(args: argparse.Namespace) -> int:
    fn = {"install": cmd_install, "uninstall": cmd_uninstall,
          "status": cmd_status}[args.capture_command]
    try:
        return fn(args)
    except cd.CaptureDistError as exc:
        raise _usage(str(exc)) from None


COMMANDS: dict[str, Any] = {}
LOCAL = {"capture": cmd_capture}
