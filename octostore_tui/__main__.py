"""``octostore-tui [DIR]``: open the dashboard on the repo at DIR."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from octostored.cli import main as cli_main

    args = list(sys.argv[1:] if argv is None else argv)
    root = args[0] if args else "."
    print("octostore-tui: the dashboard is not built yet; showing `octostore runs` instead",
          file=sys.stderr)
    return cli_main(["runs", "--root", root])


if __name__ == "__main__":
    sys.exit(main())
