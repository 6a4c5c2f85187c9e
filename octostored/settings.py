"""The project's octostore settings: ``octostore.toml`` (the whole file), then
``[tool.octostore]`` of ``pyproject.toml``, at the root; and the user's own settings,
``config.toml`` in :func:`~octostored.paths.config_dir`, for what a repo must not decide
(a repo is a stranger's input: it may not, say, empty the user's environment cache).

Standard library only: the capture plugin reads ``capture_console`` inside the user's
training process.
"""

from __future__ import annotations

import os
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11: the capture plugin (octostore-capture) runs there
    tomllib = None  # type: ignore[assignment]  # and project settings read as none

FILES = ("octostore.toml", "pyproject.toml")


def sections(root: str, warnings: list[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``(file name, settings table)`` for each file that has one, most specific first.

    A file that cannot be read or parsed is skipped; with ``warnings`` given, it says so
    there.  A file without settings (a ``pyproject.toml`` with no ``[tool.octostore]``)
    gives no entry.
    """
    out: list[tuple[str, dict[str, Any]]] = []
    if tomllib is None:
        return out
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


USER_FILE = "config.toml"


def user_sections(warnings: list[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The user's own settings file, as :func:`sections` gives a project's."""
    from .paths import config_dir

    path = os.path.join(config_dir(), USER_FILE)
    if not os.path.isfile(path):
        return []
    try:
        with open(path, "rb") as f:
            return [(path, tomllib.load(f))]
    except (OSError, tomllib.TOMLDecodeError) as exc:
        if warnings is not None:
            warnings.append(f"{path}: cannot read configuration ({exc})")
        return []


def env_cache_max_gb(root: str | None = None, warnings: list[str] | None = None) -> float | None:
    """``env_cache_max_gb`` in the user's ``config.toml``: the most disk (in GB, 10⁹ bytes)
    that built reproduction environments may take, or None (no cap).  The cache is the
    user's, shared by every repo, so a repo's own settings do not set it (``root`` is kept
    for callers).  A value that is not a number >= 0 is ignored, with a warning."""
    for name, section in user_sections(warnings):
        value = section.get("env_cache_max_gb")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            if warnings is not None:
                warnings.append(f"{name}: env_cache_max_gb must be a number of GB (0 or more), "
                                f"not {value!r}; no cap is applied")
            return None
        return float(value)
    return None


OUTSIDE_GIT_DEPTH = 1
"""Folders deep that stores are searched for under a root that is not a git work tree and
has no store at its top (``/tmp``, a home folder): its children only, by default."""


def outside_git_depth(warnings: list[str] | None = None) -> int:
    """``search_depth_outside_git`` in the user's ``config.toml`` (0 or more), else
    :data:`OUTSIDE_GIT_DEPTH`.  The user's, not a repo's: a root outside git has no repo."""
    for name, section in user_sections(warnings):
        value = section.get("search_depth_outside_git")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            if warnings is not None:
                warnings.append(f"{name}: search_depth_outside_git must be a whole number of "
                                f"folders (0 or more), not {value!r}; using {OUTSIDE_GIT_DEPTH}")
            return OUTSIDE_GIT_DEPTH
        return value
    return OUTSIDE_GIT_DEPTH
