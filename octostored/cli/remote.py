"""``octostore remote add|remove|trust|untrust URI``, ``octostore remote list``.

The servers a root reads besides its own stores (see docs/remote.md).  ``add`` and
``remove`` edit ``.octostore/remotes.toml`` (``remotes = [...]``, written atomically) and
need no daemon; the daemon's watcher sees the file change and starts or stops reading the
server.  When a daemon is running, ``add`` also waits for the server's first sync and says
how it went.  ``list`` shows every server the root reads (``remotes.toml``,
``[tool.octostore] stores`` and the ``.env`` ``MLFLOW_TRACKING_URI``) with where it is named,
whether the user trusts it and, from the daemon, its state, run count and warning.

A repo is untrusted input, so a server it names is not contacted until the user trusts it
(:mod:`octostored.servertrust`, in her own config).  ``trust`` and ``untrust`` edit that
list; ``add`` trusts the server it adds (a ``remotes.toml`` a stranger committed cannot be
told apart from one the user wrote, so the file itself proves nothing).  When a daemon runs,
``trust`` and ``untrust`` make every open root that names the server sync at once.

A URI with credentials in it is refused: ``remotes.toml`` is meant to be committed, so
credentials go in ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` or ``MLFLOW_TRACKING_TOKEN``.

Imports stay light (the standard library and the client), like cli.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from ..client import Client, DaemonUnavailable, OctostoreClientError, default_root

HEADER = ("# MLflow tracking servers this repo's runs are read from, besides its own stores.\n"
          "# Managed by `octostore remote add/remove`; never put credentials here (use\n"
          "# MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN).\n")


def _fail(msg: str) -> int:
    print(f"octostore: {msg}", file=sys.stderr)
    return 2


# -- parsers ---------------------------------------------------------------------------------
def add_parsers(sub: Any) -> None:
    p = sub.add_parser("remote", help="MLflow tracking servers this repo reads (add, list, "
                       "remove)")
    rs = p.add_subparsers(dest="remote_action", required=True)
    for name, help_ in (("add", "read an MLflow tracking server (http:// or https://)"),
                        ("remove", "stop reading a server named by `octostore remote add`"),
                        ("trust", "let octostore contact a server a repo names and send it "
                         "your MLflow credentials"),
                        ("untrust", "stop contacting a server (and sending it credentials)")):
        q = rs.add_parser(name, help=help_)
        q.add_argument("uri", metavar="URI")
        q.add_argument("--root", help="the repo (default: the git work tree of the current "
                       "folder)")
        q.add_argument("--json", action="store_true", help="print JSON")
    q = rs.add_parser("list", help="the servers this repo reads, with their state")
    q.add_argument("--root", help="the repo (default: the git work tree of the current folder)")
    q.add_argument("--json", action="store_true", help="print JSON")


# -- the file ----------------------------------------------------------------------------------
def remotes_path(root: str) -> str:
    from ..sources.discover import REMOTES_FILE

    return os.path.join(root, REMOTES_FILE)


def read_remotes(root: str) -> list[str]:
    """The URIs of ``.octostore/remotes.toml`` (read as the daemon reads it).

    Raises:
        ValueError: the file cannot be read or is not ``remotes = [...]`` (one sentence, with
            what to do): it is not overwritten then.
    """
    from ..sources.discover import configured_remotes

    warnings: list[str] = []
    uris = configured_remotes(root, warnings)
    if warnings:
        raise ValueError(warnings[0] if ";" in warnings[0] else
                         f"{warnings[0]}; fix the file or delete it")
    return uris


def write_remotes(root: str, uris: list[str]) -> None:
    """Write ``.octostore/remotes.toml`` atomically (temp file and rename)."""
    from ..atomicfile import atomic_write

    body = "".join(f"  {json.dumps(u)},\n" for u in uris)
    text = HEADER + (f"remotes = [\n{body}]\n" if uris else "remotes = []\n")
    atomic_write(remotes_path(root), text.encode("utf-8"))


def check_uri(uri: str) -> tuple[str | None, str]:
    """(error sentence or None, the server's id)."""
    from urllib.parse import urlsplit

    from ..sources.remote import is_remote_uri, scrub_uri

    uri = uri.strip()
    if uri.lower().startswith("databricks"):
        return ("Databricks tracking URIs are not read by octostore; give the http:// or "
                "https:// URI of an MLflow server"), ""
    if not is_remote_uri(uri):
        return (f"{uri!r} is not an http:// or https:// tracking URI; give one like "
                "https://mlflow.example.com (the repo's local stores need no configuration)"), ""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return (f"the URI is not valid ({exc}); give one like https://mlflow.example.com:5000"
                ), ""
    if "@" in parts.netloc or parts.username or parts.password or _secret_query(parts.query):
        return ("the URI holds credentials, which must not be written to a file: give it "
                "without them and set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, "
                "or MLFLOW_TRACKING_TOKEN, where octostored starts (or in the repo's .env)"), ""
    sid = scrub_uri(uri)
    if not parts.hostname or sid.endswith("://"):
        return f"{uri!r} names no host; give e.g. https://mlflow.example.com", ""
    return None, sid


def _secret_query(query: str) -> bool:
    low = query.lower()
    return any(k in low for k in ("token", "password", "secret", "key="))


# -- commands --------------------------------------------------------------------------------
def _root(args: argparse.Namespace) -> str | None:
    root = os.path.abspath(args.root) if args.root else default_root()
    return root if os.path.isdir(root) else None


def cmd_remote(args: argparse.Namespace) -> int:
    root = _root(args)
    if root is None:
        return _fail(f"{args.root} is not a folder; pass --root with the path of your repo")
    try:
        if args.remote_action == "add":
            return _add(root, args)
        if args.remote_action == "remove":
            return _remove(root, args)
        if args.remote_action in ("trust", "untrust"):
            return _trust(root, args)
        return _list(root, args)
    except ValueError as exc:  # servertrust.TrustFileError too
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write {remotes_path(root)} ({exc.strerror}); check the folder's "
                     "permissions")


def _add(root: str, args: argparse.Namespace) -> int:
    err, sid = check_uri(args.uri)
    if err:
        return _fail(err)
    current = read_remotes(root)
    from ..servertrust import trust
    from ..sources.remote import scrub_uri

    added = sid not in {scrub_uri(u) for u in current}
    if added:
        write_remotes(root, [*current, sid])
    trust(sid)  # the user named it herself: recorded in her config, not only in the repo
    status = _daemon_sync(root, sid) if added or not args.json else None
    if args.json:
        sys.stdout.write(json.dumps({"root": root, "uri": sid, "added": added,
                                     "file": remotes_path(root), "status": status}, indent=2)
                         + "\n")
        return 0
    if not added:
        print(f"{sid} is already a remote of {root}")
    else:
        print(f"added {sid} to {os.path.relpath(remotes_path(root), root)} (commit it to share "
              "it with your team)")
    if status is not None:
        if status.get("warning"):
            print(f"warning: {status['warning']}", file=sys.stderr)
        else:
            print(f"  {status.get('runs', 0)} runs read from {sid}")
    return 0


def _remove(root: str, args: argparse.Namespace) -> int:
    from ..sources.remote import is_remote_uri, scrub_uri

    sid = scrub_uri(args.uri) if is_remote_uri(args.uri) else args.uri.strip()
    current = read_remotes(root)
    keep = [u for u in current if scrub_uri(u) != sid]
    if len(keep) == len(current):
        elsewhere = [label for label in _named_in(root).get(sid, [])
                     if label != "remotes.toml"]
        if elsewhere:
            return _fail(f"{sid} is not in {remotes_path(root)} but in "
                         f"{' and '.join(elsewhere)}; remove it there")
        return _fail(f"{sid} is not a remote of {root}; see `octostore remote list`")
    write_remotes(root, keep)
    if args.json:
        sys.stdout.write(json.dumps({"root": root, "uri": sid, "removed": True}) + "\n")
    else:
        print(f"removed {sid}; its runs leave the index (committed ones stay)")
    return 0


def _trust(root: str, args: argparse.Namespace) -> int:
    from ..servertrust import origin, server_key, trust, trust_path, untrust

    err, _sid = check_uri(args.uri)
    if err:
        return _fail(err)
    server = origin(args.uri)
    changed = trust(args.uri) if args.remote_action == "trust" else untrust(args.uri)
    synced = _daemon_resync(server_key(args.uri) or "")
    if args.json:
        sys.stdout.write(json.dumps({"uri": server, "trusted": args.remote_action == "trust",
                                     "changed": changed, "file": trust_path(),
                                     "roots": synced}, indent=2) + "\n")
        return 0
    if args.remote_action == "trust":
        print(f"{server} is {'now' if changed else 'already'} trusted: octostore may contact "
              "it and send it your MLflow credentials")
    else:
        print(f"{server} is {'no longer' if changed else 'not'} trusted: octostore does not "
              "contact it" + ("; its runs leave the index" if synced else ""))
    for r in synced:
        if r.get("warning"):
            print(f"  {r['root']}: warning: {r['warning']}", file=sys.stderr)
        elif args.remote_action == "trust":
            print(f"  {r['root']}: {r.get('runs', 0)} runs read from {r['id']}")
    return 0


def _named_in(root: str) -> dict[str, list[str]]:
    """Server id -> the files that name it."""
    from ..sources.discover import configured_remotes, configured_stores, read_dotenv
    from ..sources.remote import is_remote_uri, scrub_uri

    env_uri = read_dotenv(root).get("MLFLOW_TRACKING_URI", "")
    named: dict[str, list[str]] = {}
    for label, uris in (("remotes.toml", configured_remotes(root, [])),
                        ("pyproject.toml/octostore.toml",
                         [u for u in configured_stores(root, []) if u != env_uri]),
                        (".env", [env_uri])):
        for u in uris:
            if is_remote_uri(u):
                named.setdefault(scrub_uri(u), []).append(label)
    return named


def _list(root: str, args: argparse.Namespace) -> int:
    from ..sources.discover import remote_stores

    named = _named_in(root)
    live = _daemon_sources(root)
    from ..servertrust import is_trusted, origin

    rows = []
    for ref in remote_stores(root, []):
        s = live.get(ref.id, {})
        rows.append({"uri": ref.id, "named_in": named.get(ref.id, []),
                     "trusted": is_trusted(ref.id),
                     "state": s.get("state"), "runs": s.get("runs"),
                     "last_sync": s.get("last_sync"), "warning": s.get("warning")})
    if args.json:
        sys.stdout.write(json.dumps({"root": root, "remotes": rows}, indent=2) + "\n")
        return 0
    if not rows:
        print(f"no MLflow servers for {root}; add one with `octostore remote add URI`")
        return 0
    for r in rows:
        state = f"{r['state']}, {r['runs']} runs" if r["state"] else "not read yet"
        if r["last_sync"]:
            state += f", synced {max(0, time.time() - r['last_sync']):.0f} s ago"
        if not r["trusted"]:
            state = "not trusted, not contacted"
        print(f"{r['uri']}  ({state}; named in {', '.join(r['named_in']) or '?'})")
        if not r["trusted"]:
            print(f"  trust it with `octostore remote trust {origin(r['uri'])}`")
        elif r["warning"]:
            print(f"  warning: {r['warning']}")
    return 0


# -- the daemon, when one runs -----------------------------------------------------------------
def _daemon_sources(root: str) -> dict[str, dict[str, Any]]:
    """The root's sources as a running daemon sees them (nothing when none runs)."""
    try:
        with Client(autostart=False, timeout=10) as c:
            info = c.call("octostore/open", root=root)
    except (DaemonUnavailable, OctostoreClientError, OSError):
        return {}
    return {s["id"]: s for s in info.get("sources", [])}


def _daemon_sync(root: str, sid: str) -> dict[str, Any] | None:
    """Ask a running daemon to read the new server now; its source's status after."""
    try:
        with Client(autostart=False, timeout=120) as c:
            c.call("octostore/sync", root=root, timeout=120)
            info = c.call("octostore/open", root=root)
    except (DaemonUnavailable, OctostoreClientError, OSError):
        return None
    for s in info.get("sources", []):
        if s["id"] == sid:
            return s
    return None


def _daemon_resync(key: str) -> list[dict[str, Any]]:
    """Make every root a running daemon has open that names the server ``key`` (see
    :func:`octostored.servertrust.server_key`) sync now; each such source's status after."""
    from ..servertrust import server_key

    out: list[dict[str, Any]] = []
    try:
        with Client(autostart=False, timeout=120) as c:
            roots = c.call("octostore/status").get("roots", [])
            for r in roots:
                ids = [s["id"] for s in r.get("sources", [])
                       if s.get("kind") == "remote" and server_key(s["id"]) == key]
                if not ids:
                    continue
                c.call("octostore/sync", root=r["root"], timeout=120)
                info = c.call("octostore/open", root=r["root"])
                out += [{"root": r["root"], **s} for s in info.get("sources", [])
                        if s["id"] in ids]
    except (DaemonUnavailable, OctostoreClientError, OSError):
        pass
    return out


LOCAL = {"remote": cmd_remote}
"""Commands that work without the daemon (``add`` and ``list`` use one when it runs)."""
COMMANDS: dict[str, Any] = {}
