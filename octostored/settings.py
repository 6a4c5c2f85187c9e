"""The project's octostore settings: ``octostore.toml`` (the whole file), then
``[tool.octostore]`` of ``pyproject.toml``, at the root.

Standard library only: the capture plugin reads ``capture_console`` inside the user's
training process.
"""

from __future__ import annotations

import os
import tomllib
from typing import Any

FILES = ("octostore.toml", "pyproject.toml")


def sections(root: str, warnings: list[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``(file name, settings table)`` for each file that has one, most specific first.

    A file that cannot be read or parsed is skipped; with ``warnings`` given, it says so
    there.  A file without settings (a ``pyproject.toml`` with no ``[tool.octostore]``)
    gives no entry.
    """
    out: list[tuple[str, dict[str, Any]]] = []
    for name in FILES:
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            if warnings is not None:
                warnings.append(f"{name}: cannot read configuration ({exc})")
            continue
        section = data if name == "octostore.toml" else (data.get("tool") or {}).get("octostore")
        if isinstance(section, dict):
            out.append((name, section))
    return out


def table(root: str, name: str) -> dict[str, Any] | None:
    """The first ``[<name>]`` sub-table of the settings (``[tool.octostore.<name>]``)."""
    for _file, section in sections(root):
        sub = section.get(name)
        if isinstance(sub, dict):
            return sub
    return None
