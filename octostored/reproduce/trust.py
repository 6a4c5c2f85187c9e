"""The commands this user accepted to run, per repo: ``trusted-commands.json``.

A reproduction runs a command that a repo recorded (:mod:`.command`); it runs
without asking only when this user accepted that exact command (its hash:
argv, environment changes, working folder) for that repo before.  The
acceptances live in the user's own state folder
(:func:`octostored.paths.state_dir`), never in the repo: a repo cannot
accept its own commands.  The file is private (0600, its folder 0700) and
written atomically; one that cannot be read counts as empty (everything is
asked again), never as an error.

Format: ``{"version": 1, "repos": {"/real/path/of/repo": {"<sha256>":
{"command": "bash -c ...", "accepted": "2026-12-07T23:59:00Z"}}}}``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from .. import paths
from ..atomicfile import atomic_write

FILE = "trusted-commands.json"
MAX_PER_REPO = 1000
"""Acceptances kept per repo (the oldest go first)."""


def store_path() -> str:
    return os.path.join(paths.state_dir(), FILE)


def _load() -> dict[str, Any]:
    try:
        with open(store_path(), "rb") as f:
            data = json.loads(f.read(16 * 1024 * 1024))
    except (OSError, ValueError):
        return {"version": 1, "repos": {}}
    if not isinstance(data, dict) or not isinstance(data.get("repos"), dict):
        return {"version": 1, "repos": {}}
    return data


def _key(repo: str) -> str:
    return os.path.realpath(repo)


def is_accepted(repo: str, digest: str) -> bool:
    """Whether this user accepted the command ``digest`` for ``repo``."""
    entries = _load()["repos"].get(_key(repo))
    return isinstance(entries, dict) and digest in entries


def accept(repo: str, digest: str, display: str) -> None:
    """Remember that this user accepted the command ``digest`` (shown as ``display``).

    Raises:
        OSError: the state folder cannot be written.
    """
    data = _load()
    entries = data["repos"].setdefault(_key(repo), {})
    if not isinstance(entries, dict):
        entries = data["repos"][_key(repo)] = {}
    entries[digest] = {"command": display[:2000],
                       "accepted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    while len(entries) > MAX_PER_REPO:
        del entries[next(iter(entries))]
    data["version"] = 1
    folder = paths.state_dir()
    os.makedirs(folder, mode=0o700, exist_ok=True)
    atomic_write(store_path(), json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8"),
                 mode=0o600, folder_mode=0o700)
