"""Console logs: the stdout and stderr of training commands, kept beside their runs."""

from __future__ import annotations

import os
import sys


def helper_argv(module: str, args: list[str], python: str | None = None) -> list[str]:
    """The command that runs ``octostored.console.<module>.main(args)`` in a fresh interpreter
    that sees nothing of the environment it is started in (``-I -S``: no ``PYTHONPATH``, no
    site-packages; these modules need only the standard library), whatever put octostore
    on this process's path."""
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    boot = (f"import sys; sys.path.append({top!r}); "
            f"from {__package__}.{module} import main; sys.exit(main(sys.argv[1:]))")
    return [python or sys.executable, "-I", "-S", "-c", boot, *args]


def flush_std_streams() -> None:
    """Flush Python's ``sys.stdout`` and ``sys.stderr`` (closed or missing ones are skipped)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
