"""``octostore-tui [DIR]``: open the dashboard on the repo at DIR (default: the current one)."""

from __future__ import annotations

import argparse
import os
import sys


def _cache_bytecode() -> None:
    """Cache compiled bytecode outside the tree when the environment forbids writing it.

    With ``PYTHONDONTWRITEBYTECODE`` set and no bytecode shipped (these dev machines),
    every launch recompiles Textual and Rich from source, which alone costs more than the
    one-second start-up budget.  As ``demo/prepare.py`` does, keep the bytecode in the
    user's cache folder (``PYTHONPYCACHEPREFIX``), never in the source tree.
    """
    if not sys.dont_write_bytecode or sys.pycache_prefix:
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    prefix = os.path.join(base, "octostore", "pycache")
    try:
        os.makedirs(prefix, exist_ok=True)
    except OSError:
        return
    sys.pycache_prefix = prefix
    sys.dont_write_bytecode = False


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="octostore-tui",
        description="The octostore dashboard: every MLflow run of a repo, live.",
    )
    parser.add_argument("dir", nargs="?", default=".", help="the repo to open (default: here)")
    parser.add_argument(
        "--socket", help="the daemon's socket (default: $OCTOSTORE_SOCKET or the per-user socket)"
    )
    parser.add_argument(
        "--no-start", action="store_true", help="do not start the daemon when none answers"
    )
    parser.add_argument("--light", action="store_true", help="start in the light theme")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if not os.path.isdir(args.dir):
        print(
            f"octostore-tui: {args.dir} is not a folder; give the path of your repo",
            file=sys.stderr,
        )
        return 2
    _cache_bytecode()
    app = build(
        args.dir,
        args.socket,
        autostart=not args.no_start,
        theme="textual-light" if args.light else None,
    )
    app.run()
    return 0


def build(root: str, socket: str | None, *, autostart: bool = True, theme: str | None = None):
    """The app as the console script builds it: the daemon start (if needed) overlaps imports."""
    from .prestart import start_if_absent

    starter = start_if_absent(socket) if autostart else None
    from .app import make_app

    return make_app(root, socket, autostart=autostart, theme=theme, starter=starter)


if __name__ == "__main__":
    sys.exit(main())
