"""Finding and reading a project's environment files (requirements, locks, conda, MLproject...).

octostore shows, next to a run, what environment the repo declares (and uses it to
rebuild one when reproducing a run), and the daemon re-reads it whenever one of
these files changes. This package owns both questions: *which files count* (so that
the watcher, which calls :func:`is_env_file` on every changed path, and
:func:`find_env_files` agree) and *what they say*, as one uniform record per file.

It runs inside the daemon, on its hot path, so it is standard library only (tomllib
included) and never imports mlflow, pandas or numpy; PyYAML is used for YAML files if
importable, else a small built-in reader. Parsing never raises on a bad file: a
malformed file yields a record whose ``warnings`` say what is wrong.

Public API::

    ENV_FILE_NAMES                    # file-name patterns that count as env files
    is_env_file(relpath) -> bool
    env_file_kind(relpath) -> str | None
    find_env_files(root) -> list[str]
    parse_env_file(root, relpath) -> dict
    environment_summary(root) -> dict
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
from collections.abc import Callable
from typing import Any

from ._common import mark_pinned, new_result

__all__ = [
    "ENV_FILE_NAMES",
    "KINDS",
    "SKIP_DIRS",
    "env_file_kind",
    "environment_summary",
    "find_env_files",
    "is_env_file",
    "parse_env_file",
]

# Pattern -> kind. Patterns are matched against the file name (fnmatch, case-sensitive
# except MLproject, which MLflow itself matches case-insensitively).
_PATTERNS: tuple[tuple[str, str], ...] = (
    ("requirements*.txt", "requirements"),
    ("requirements*.in", "requirements"),  # pip-tools sources of requirements*.txt
    ("pyproject.toml", "pyproject"),
    ("uv.lock", "uv_lock"),
    ("poetry.lock", "poetry_lock"),
    ("Pipfile", "pipfile"),
    ("Pipfile.lock", "pipfile_lock"),
    ("conda.yaml", "conda"),
    ("conda.yml", "conda"),
    ("environment.yml", "conda"),
    ("environment.yaml", "conda"),
    ("MLproject", "mlproject"),
    ("python_env.yaml", "python_env"),
    ("setup.cfg", "setup_cfg"),
    (".python-version", "python_version"),
)

ENV_FILE_NAMES: tuple[str, ...] = tuple(pattern for pattern, _ in _PATTERNS)
"""File-name patterns (fnmatch) of environment files."""

KINDS: tuple[str, ...] = tuple(dict.fromkeys(kind for _, kind in _PATTERNS))
"""The values of a parsed record's ``kind``."""

SKIP_DIRS = frozenset({
    ".git", ".hg", ".svn", ".venv", "venv", "node_modules", "mlruns", "__pycache__",
    ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".octostore",
})
"""Folders never searched: VCS data, virtualenvs, MLflow stores, caches."""

_REQUIREMENTS_DIR = "requirements"
"""``requirements/*.txt`` (base.txt, dev.txt...) is a common layout for split requirements."""


def env_file_kind(relpath: str) -> str | None:
    """The kind of env file ``relpath`` (relative to a root) is, or None.

    Only files at the root or one folder down count, as :func:`find_env_files`
    searches, and not inside :data:`SKIP_DIRS`.
    """
    parts = [p for p in relpath.replace(os.sep, "/").split("/") if p and p != "."]
    if not parts or len(parts) > 2 or ".." in parts:
        return None
    if len(parts) == 2 and parts[0] in SKIP_DIRS:
        return None
    name = parts[-1]
    if name.lower() == "mlproject":
        return "mlproject"
    for pattern, kind in _PATTERNS:
        if fnmatch.fnmatchcase(name, pattern):
            return kind
    if len(parts) == 2 and parts[0] == _REQUIREMENTS_DIR and name.endswith((".txt", ".in")):
        return "requirements"
    return None


def is_env_file(relpath: str) -> bool:
    """Whether a change to ``relpath`` (relative to the root) changes the environment summary."""
    return env_file_kind(relpath) is not None


def find_env_files(root: str | os.PathLike[str]) -> list[str]:
    """Env files at ``root`` and one folder down, as sorted ``/``-separated relative paths.

    Root files come first. Sub-folders in :data:`SKIP_DIRS`, symlinked folders and
    virtualenvs (folders holding ``pyvenv.cfg``) are skipped. A missing or unreadable
    root gives an empty list.
    """
    root = os.fspath(root)
    top: list[str] = []
    below: list[str] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if entry.name in SKIP_DIRS:
                    continue
                below += _scan_subdir(entry.path, entry.name)
            elif _listed(entry) and env_file_kind(entry.name):
                top.append(entry.name)
        except OSError:
            continue
    return top + below


def _listed(entry: os.DirEntry[str]) -> bool:
    """A file the search reports: a regular file (or a link to one), and also a FIFO, socket
    or device under an env file's name, so that its record says it was skipped (reading it
    is refused without blocking) instead of the file silently missing."""
    return entry.is_file() or not (entry.is_dir() or entry.is_symlink())


def _scan_subdir(path: str, name: str) -> list[str]:
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError:
        return []
    if any(e.name == "pyvenv.cfg" for e in entries):
        return []
    out = []
    for entry in entries:
        rel = f"{name}/{entry.name}"
        try:
            if _listed(entry) and env_file_kind(rel):
                out.append(rel)
        except OSError:
            continue
    return out


def _parsers() -> dict[str, Callable[[str, str, dict[str, Any]], None]]:
    # Imported here, not at module level, so that is_env_file (called by the watcher
    # on every change) does not pay for the parsers.
    from . import locks, pipfile, projects, yaml_files
    from .requirements import parse_requirements_file

    return {
        "requirements": parse_requirements_file,
        "pyproject": projects.parse_pyproject,
        "uv_lock": locks.parse_uv_lock,
        "poetry_lock": locks.parse_poetry_lock,
        "pipfile": pipfile.parse_pipfile,
        "pipfile_lock": locks.parse_pipfile_lock,
        "conda": yaml_files.parse_conda,
        "mlproject": yaml_files.parse_mlproject,
        "python_env": yaml_files.parse_python_env,
        "setup_cfg": projects.parse_setup_cfg,
        "python_version": projects.parse_python_version,
    }


def parse_env_file(root: str | os.PathLike[str], relpath: str) -> dict[str, Any]:
    """What the env file ``relpath`` (relative to ``root``) declares.

    Always returns ``{"path", "kind", "python", "packages", "warnings", "pinned", ...}``:

    - ``python``: the interpreter requirement as written (``">=3.11"``, ``"3.11"``,
      poetry's ``"^3.11"``), or None if the file states none;
    - ``packages``: ``{"name", "spec"}`` records (``spec`` is ``""`` when unconstrained),
      with ``extras``, ``marker``, ``url``, ``editable``, ``from`` (the included file it
      came from) or ``manager``/``channel`` (conda) when they apply;
    - ``warnings``: what could not be understood; the file's other content is kept;
    - ``pinned``: every package has one exact version;

    plus keys specific to the kind (``includes``, ``optional``, ``groups``,
    ``entry_points``, ``env``...). Never raises for a bad or missing file.
    """
    root = os.fspath(root)
    relpath = posixpath.normpath(relpath.replace(os.sep, "/"))
    kind = env_file_kind(relpath) or _kind_by_name(relpath)
    result = new_result(relpath, kind or "unknown")
    if kind is None:
        result["warnings"].append("not an environment file")
        result["pinned"] = False
        return result
    try:
        _parsers()[kind](root, relpath, result)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"
        # A shape no parser check anticipated: report it instead of failing the caller.
        result["warnings"].append(f"could not be parsed ({type(exc).__name__}: {exc})")
    mark_pinned(result)
    return result


def _kind_by_name(relpath: str) -> str | None:
    """The kind from the file name alone, for a path deeper than the search reaches."""
    return env_file_kind(relpath.rsplit("/", 1)[-1])


def environment_summary(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Every env file of ``root``, parsed, with the stated python versions gathered.

    Returns ``{"files": [record, ...], "python": [{"path", "python"}, ...],
    "pinned": [path, ...], "warning_count": int}``; ``files`` is in
    :func:`find_env_files` order.
    """
    files = [parse_env_file(root, rel) for rel in find_env_files(root)]
    return {
        "files": files,
        "python": [{"path": f["path"], "python": f["python"]} for f in files if f["python"]],
        "pinned": [f["path"] for f in files if f["pinned"]],
        "warning_count": sum(len(f["warnings"]) for f in files),
    }
