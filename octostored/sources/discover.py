"""Finding a root's MLflow stores with zero configuration.

A root is a git work tree or any folder.  Its stores are:

* file stores: folders anywhere under the root (bounded depth, skipping
  virtualenvs, ``node_modules`` and other hidden folders) that hold experiment
  ``meta.yaml`` files, as MLflow decides (a plain ``./mlruns`` that only holds
  the artifacts of ``mlflow.db`` is not one);
* octostore's committed runs under ``.octostore/runs`` (a file-store layout);
* SQLite stores: ``mlflow.db`` and ``mlruns.db`` at the root or one level down;
* whatever ``[tool.octostore]`` in ``pyproject.toml`` / ``octostore.toml`` names
  (``stores = ["path", ...]``) and the root's ``MLFLOW_TRACKING_URI`` when it is
  set in a ``.env`` file and names one of those kinds.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass

from .filestore import is_file_store

SKIP_DIRS = {
    "node_modules", "site-packages", "__pycache__", "venv", "env", "build", "dist",
    "artifacts", "data", "models", "wandb", "lightning_logs",
}
"""Folders never searched for stores: big, and never an MLflow tracking root."""
MAX_DEPTH = 4
SQLITE_NAMES = ("mlflow.db", "mlruns.db")
COMMITTED_STORE = os.path.join(".octostore", "runs")
"""Where ``octostore commit`` keeps exported runs (not ``./mlruns``: see DESIGN.md)."""


@dataclass(frozen=True, slots=True)
class StoreRef:
    kind: str
    """"file" or "sqlite"."""
    path: str
    """Absolute path of the folder or database file."""
    id: str
    """Path relative to the root: names the store in answers and warnings."""
    committed: bool = False
    """True for octostore's committed-runs store."""


def discover(root: str) -> tuple[list[StoreRef], list[str]]:
    """The stores of ``root`` and warnings about configured stores that are missing."""
    warnings: list[str] = []
    found: dict[str, StoreRef] = {}

    def add(kind: str, path: str, committed: bool = False) -> None:
        path = os.path.realpath(path)
        rel = os.path.relpath(path, root)
        found.setdefault(path, StoreRef(kind, path, rel, committed))

    committed = os.path.join(root, COMMITTED_STORE)
    if is_file_store(committed):
        add("file", committed, committed=True)
    for path in _walk_for_file_stores(root):
        add("file", path)
    for base in [root, *_child_dirs(root)]:
        for name in SQLITE_NAMES:
            p = os.path.join(base, name)
            if os.path.isfile(p):
                add("sqlite", p)
    for uri in configured_stores(root, warnings):
        path = uri_to_path(uri, root)
        if path is None:
            continue
        if os.path.isfile(path):
            add("sqlite", path)
        elif os.path.isdir(path) and is_file_store(path):
            add("file", path)
        elif not os.path.exists(path):
            warnings.append(f"configured store {uri} does not exist yet")
    return sorted(found.values(), key=lambda s: (not s.committed, s.id)), warnings


def uri_to_path(uri: str, root: str) -> str | None:
    """Local path of a tracking URI, or None for remote ones (http, databricks, ...)."""
    if uri.startswith("sqlite:///"):
        return os.path.join(root, uri[len("sqlite:///") :])
    if uri.startswith("file://"):
        return os.path.join(root, uri[len("file://") :])
    if "://" in uri or uri.startswith("databricks"):
        return None
    return os.path.join(root, uri)


def configured_stores(root: str, warnings: list[str]) -> list[str]:
    uris: list[str] = []
    for name in ("octostore.toml", "pyproject.toml"):
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            warnings.append(f"{name}: cannot read configuration ({exc})")
            continue
        section = data if name == "octostore.toml" else data.get("tool", {}).get("octostore", {})
        stores = section.get("stores", []) if isinstance(section, dict) else []
        if isinstance(stores, list):
            uris.extend(str(s) for s in stores)
    env = os.path.join(root, ".env")
    if os.path.isfile(env):
        try:
            with open(env, encoding="utf-8", errors="replace") as f:
                for line in f:
                    key, _, value = line.strip().partition("=")
                    if key.strip().removeprefix("export ").strip() == "MLFLOW_TRACKING_URI":
                        uris.append(value.strip().strip("'\""))
        except OSError:
            pass
    return uris


def _child_dirs(root: str) -> list[str]:
    try:
        return [
            e.path for e in os.scandir(root)
            if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
            and e.name not in SKIP_DIRS
        ]
    except OSError:
        return []


def _walk_for_file_stores(root: str) -> list[str]:
    out: list[str] = []
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        if depth > 0 and os.path.basename(folder) == "mlruns" or _looks_like_store(folder):
            if is_file_store(folder):
                out.append(folder)
                continue
        if depth >= MAX_DEPTH:
            continue
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if e.name.startswith(".") or e.name in SKIP_DIRS:
                continue
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, depth + 1))
            except OSError:
                continue
    return sorted(out)


def _looks_like_store(folder: str) -> bool:
    # Cheap pre-check so only folders with a ".trash" or a "0" experiment get a closer look.
    return os.path.isfile(os.path.join(folder, "0", "meta.yaml")) or os.path.isdir(
        os.path.join(folder, ".trash")
    )
