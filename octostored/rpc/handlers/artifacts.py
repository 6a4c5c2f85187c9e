"""artifacts, artifact: a run's outputs, read without ever leaving its artifact folder.

The artifact folder is the run's local ``artifact_uri``; when that path does
not exist here (a store cloned from another machine keeps absolute paths,
often Windows ones), the run folder's own ``artifacts/`` is used, which is
where MLflow put them relative to the store.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from ..errors import ArtifactNotFound, PathOutside
from ...sources.artifacts import local_artifact_dir as artifact_dir
from ..params import Params
from ..register import rooted
from .lookup import find_run

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from ...hub import Hub
    from ...index.root import Root

MAX_READ = 1024 * 1024
"""Most bytes one ``octostore/artifact`` call returns; page with ``offset``."""
MAX_ENTRIES = 5000


def _resolve(base: str, rel: str) -> str:
    if rel.startswith("/") or "\x00" in rel:
        raise PathOutside(f"artifact path {rel!r} is absolute",
                          "give a path relative to the run's artifact folder")
    full = os.path.realpath(os.path.join(base, rel))
    if full != base and not full.startswith(base + os.sep):
        raise PathOutside(f"artifact path {rel!r} leaves the run's artifact folder",
                          "give a path inside the run's artifacts")
    return full


def list_artifacts(base: str, rel: str) -> list[dict[str, Any]]:
    folder = _resolve(base, rel) if rel else base
    if not os.path.isdir(folder):
        raise ArtifactNotFound(f"no artifact folder {rel!r}", "list the run's artifacts first")
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if _inside(base, os.path.join(dirpath, d))]
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if not _inside(base, full):
                continue
            try:
                size = os.stat(full).st_size
            except OSError:
                continue
            out.append({"path": os.path.relpath(full, base), "size": size})
            if len(out) >= MAX_ENTRIES:
                return out
    out.sort(key=lambda e: e["path"])
    return out


def _inside(base: str, path: str) -> bool:
    real = os.path.realpath(path)
    return real == base or real.startswith(base + os.sep)


def read_artifact(base: str, rel: str, offset: int, max_bytes: int) -> dict[str, Any]:
    full = _resolve(base, rel)
    if not os.path.isfile(full):
        raise ArtifactNotFound(f"no artifact {rel!r} in this run",
                               "list the run's artifacts with `octostore artifacts RUN`")
    size = os.path.getsize(full)
    with open(full, "rb") as f:
        f.seek(min(offset, size))
        data = f.read(max_bytes)
    binary = b"\x00" in data[:8192]
    text = "" if binary else data.decode("utf-8", "replace")
    end = min(offset, size) + len(data)
    return {"path": rel, "size": size, "offset": offset, "next_offset": end,
            "truncated": end < size, "binary": binary, "text": text}


def never_made(run: Any) -> bool:
    """A local run with no artifact folder because none was ever made (MLflow 3 makes none
    for a run that logs only a model; git drops an empty one), not one whose artifacts are
    on another machine: its experiment's folder is here."""
    uri = run.artifact_uri or ""
    path = unquote(urlparse(uri).path) if uri.startswith("file:") else uri
    if not path.startswith("/"):
        return False
    return os.path.isdir(os.path.dirname(os.path.dirname(os.path.normpath(path))))


def register(ls: LanguageServer, daemon: Hub) -> None:
    @rooted(ls, daemon, "octostore/artifacts")
    async def artifacts(ls: LanguageServer, p: Params, root: Root) -> dict[str, Any]:
        run = find_run(root, p.str("run_id", required=True) or "")
        base = artifact_dir(run)
        if base is None:
            if never_made(run):
                return {"run_id": run.run_id, "artifacts": [], "warnings": []}
            return {"run_id": run.run_id, "artifacts": [], "warnings": [
                f"the artifacts of this run are not on this machine ({run.artifact_uri})"]}
        entries = await asyncio.to_thread(list_artifacts, base, p.str("path", "") or "")
        return {"run_id": run.run_id, "artifacts": entries, "warnings": []}

    @rooted(ls, daemon, "octostore/artifact")
    async def artifact(ls: LanguageServer, p: Params, root: Root) -> dict[str, Any]:
        run = find_run(root, p.str("run_id", required=True) or "")
        rel = p.str("path", required=True) or ""
        offset = p.int("offset", 0, lo=0) or 0
        max_bytes = p.int("max_bytes", 256 * 1024, lo=1, hi=MAX_READ) or 1
        base = artifact_dir(run)
        if base is None:
            raise ArtifactNotFound(f"the artifacts of run {run.run_id} are not on this machine",
                                   "fetch the run's artifacts (git lfs pull) and try again")
        out = await asyncio.to_thread(read_artifact, base, rel, offset, max_bytes)
        return {"run_id": run.run_id, **out}
