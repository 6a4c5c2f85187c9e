"""Where a run's (or logged model's) artifact files are, in the source and the destination.

Standard library, plus MLflow's artifact repositories inside :func:`dest_files`; used by
:mod:`.copier` in the worker.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlparse

LFS_HEADER = b"version https://git-lfs.github.com/spec/"
KEEP = ".keep"
"""The committed layout's placeholder in an empty ``artifacts/``."""


def local_path(uri: str | None) -> str | None:
    """The absolute local path an artifact URI names, or None (remote, relative, empty)."""
    if not uri:
        return None
    if uri.startswith("file:"):
        return unquote(urlparse(uri).path)
    if "://" in uri or ":" in uri.split("/", 1)[0]:
        return None
    return uri if os.path.isabs(uri) else None


def inside(path: str, folder: str) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(folder)
    return real == top or real.startswith(top + os.sep)


def source_dir(src: dict[str, Any], exp_id: str, run_or_model: str, uri: str | None,
               model: bool = False) -> str | None:
    """The local folder of a run's (or model's) artifacts in the source, or None: the folder
    its ``uri`` names (unless the source is the repo's committed runs, whose recorded paths
    are untrusted), else where the store keeps it (``<exp>/<run>/artifacts`` in a file
    store, ``mlruns/<exp>/<run>/artifacts`` beside a SQLite file: a store copied from another
    machine keeps that machine's absolute paths)."""
    rel = (os.path.join(exp_id, "models", run_or_model, "artifacts") if model
           else os.path.join(exp_id, run_or_model, "artifacts"))
    cands: list[str] = []
    own = local_path(uri)
    if own and src.get("absolute_ok", True):
        cands.append(own)
    if src["kind"] == "file":
        cands.append(os.path.join(src["folder"], rel))
    elif src["kind"] == "sql" and src.get("folder"):
        cands.append(os.path.join(src["folder"], "mlruns", rel))
    for c in cands:
        if os.path.isdir(c) and not os.path.islink(c):
            if not src.get("absolute_ok", True) and not inside(c, src["folder"]):
                continue
            return c
    return None


def source_files(folder: str, warnings: list[str]) -> dict[str, tuple[int, str]]:
    """rel path -> (size, local path) of the regular files under ``folder`` (links, the
    committed layout's empty ``.keep`` and Git LFS pointers left out)."""
    out: dict[str, tuple[int, str]] = {}
    for dirpath, dirs, names in os.walk(folder, followlinks=False):
        for name in names:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not os.path.isfile(path) or os.path.islink(path):
                warnings.append(f"{path} is not a regular file; not copied")
                continue
            if rel == KEEP and st.st_size == 0:
                continue
            if st.st_size < 1024:
                with open(path, "rb") as f:
                    if f.read(len(LFS_HEADER)) == LFS_HEADER:
                        warnings.append(
                            f"{path} is a Git LFS pointer, not the file; run `git lfs "
                            "pull` and import again")
                        continue
            out[rel] = (st.st_size, path)
    return out


def server_files(client: Any, run_id: str, warnings: list[str],
                 path: str = "") -> dict[str, tuple[int, str | None]]:
    """rel path -> (size, None) of a server run's artifacts, through ``MlflowClient``."""
    out: dict[str, tuple[int, str | None]] = {}
    for fi in client.list_artifacts(run_id, path or None):
        parts = fi.path.split("/")
        if fi.path.startswith("/") or ".." in parts or "" in parts:
            warnings.append(f"run {run_id}: artifact {fi.path!r} skipped (its path "
                                 "leaves the run's folder)")
            continue
        if fi.is_dir:
            out.update(server_files(client, run_id, warnings, fi.path))
        else:
            out[fi.path] = (fi.file_size or 0, None)
    return out


def dest_files(uri: str) -> dict[str, int]:
    """rel path -> size of what the artifact repository at ``uri`` holds."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(uri)
    out: dict[str, int] = {}

    def walk(path: str | None) -> None:
        for fi in repo.list_artifacts(path):
            if fi.is_dir:
                walk(fi.path)
            else:
                out[fi.path] = fi.file_size or 0
    walk(None)
    return out
