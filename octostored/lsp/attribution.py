"""Which runs came from which file of a root: the ``mlflow.source.name`` tag, resolved in the repo.

MLflow records the script a run came from as ``mlflow.source.name``: the
path as the user typed it (``train.py``, ``src/train.py``) or an absolute
one, on the machine that ran it.  A run belongs to ``<root>/<rel>`` when
that tag resolves to it:

* an absolute path inside the root is taken as is;
* an absolute path elsewhere (a colleague's clone, a CI runner) is matched by
  its longest tail that names a file of the root
  (``/home/bob/proj/src/train.py`` -> ``src/train.py``);
* a relative path is resolved against the run's working folder: the
  ``octostore.cwd`` tag when the capture plugin recorded it, else the folder
  MLflow's default store implies (the folder holding ``mlflow.db``, or the
  one holding the ``mlruns`` file store), else the root itself.

A tag that resolves to no file of the root attributes the run to nothing, so
unrelated files never get runs.  Results are cached per root and rebuilt
only when the root's clock moves.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..index.root import Root
    from ..model import Run

SOURCE_NAME = "mlflow.source.name"
CWD_TAG = "octostore.cwd"
_WINDOWS_ABS = re.compile(r"^[A-Za-z]:[\\/]")


def _parts(path: str) -> list[str]:
    return [p for p in re.split(r"[\\/]+", path) if p and p != "."]


def _inside(root: str, path: str) -> str | None:
    """``path`` relative to ``root`` (posix separators) when it lies inside, else None."""
    if path == root:
        return None
    if path.startswith(root.rstrip(os.sep) + os.sep):
        return os.path.relpath(path, root).replace(os.sep, "/")
    return None


class Attribution:
    """Maps a root's files to the runs whose source they are."""

    def __init__(self, root_path: str) -> None:
        self.root = os.path.realpath(root_path)
        self._tick = -1
        self._by_file: dict[str, list[str]] = {}
        self._resolved: dict[tuple[str, str, str], str | None] = {}

    # -- resolution ------------------------------------------------------------------------
    def _file(self, rel: str) -> bool:
        return os.path.isfile(os.path.join(self.root, rel))

    def _tail_in_root(self, parts: list[str]) -> str | None:
        for i in range(len(parts)):
            rel = "/".join(parts[i:])
            if rel and self._file(rel):
                return rel
        return None

    def _map_foreign(self, path: str) -> str | None:
        """A path from another machine (or another clone) mapped into this root."""
        parts = _parts(path)
        real = os.path.realpath(path) if not _WINDOWS_ABS.match(path) else path
        rel = _inside(self.root, real)
        if rel is not None:
            return rel
        return self._tail_in_root(parts)

    def _base_dirs(self, run: Run, sources: dict) -> Iterable[str]:
        cwd = run.tags.get(CWD_TAG)
        if cwd:
            if os.path.isabs(cwd) or _WINDOWS_ABS.match(cwd):
                real = os.path.realpath(cwd) if not _WINDOWS_ABS.match(cwd) else cwd
                if real == self.root or _inside(self.root, real) is not None:
                    yield real
                else:
                    mapped = self._tail_dir(_parts(cwd))
                    if mapped is not None:
                        yield mapped
        src = sources.get(run.source)
        if src is not None and not getattr(src, "committed", False):
            path = src.path
            if getattr(src, "kind", "") == "sqlite" or os.path.isfile(path):
                yield os.path.dirname(path)
            else:
                yield os.path.dirname(path.rstrip(os.sep))
        yield self.root

    def _tail_dir(self, parts: list[str]) -> str | None:
        for i in range(1, len(parts) + 1):
            rel = "/".join(parts[i:])
            cand = os.path.join(self.root, rel) if rel else self.root
            if os.path.isdir(cand):
                return cand
        return None

    def resolve(self, run: Run, sources: dict) -> str | None:
        """The file of the root ``run`` came from (relative, posix), or None."""
        name = run.tags.get(SOURCE_NAME)
        if not name or "://" in name:
            return None
        key = (name, run.tags.get(CWD_TAG, ""), run.source)
        if key in self._resolved:
            return self._resolved[key]
        rel: str | None = None
        if os.path.isabs(name) or _WINDOWS_ABS.match(name):
            rel = self._map_foreign(name)
        else:
            for base in self._base_dirs(run, sources):
                cand = os.path.realpath(os.path.join(base, *_parts(name)))
                inside = _inside(self.root, cand)
                if inside is not None and os.path.isfile(cand):
                    rel = inside
                    break
        if rel is not None and not rel.endswith((".py", ".ipynb", ".pyw")):
            rel = None  # a project folder or an entry-point name: not a file we annotate
        self._resolved[key] = rel
        return rel

    # -- the map ---------------------------------------------------------------------------
    def refresh(self, root: Root) -> None:
        idx = root.index
        if idx.tick == self._tick:
            return
        by_file: dict[str, list[str]] = {}
        self._resolved.clear()  # files may have appeared or moved since the last tick
        for run in idx.runs.values():
            if run.lifecycle_stage != "active":
                continue
            rel = self.resolve(run, idx.sources)
            if rel is not None:
                by_file.setdefault(rel, []).append(run.run_id)
        self._by_file = by_file
        self._tick = idx.tick

    def runs_for(self, root: Root, path: str) -> list[Run]:
        """The active runs of ``path`` (absolute), newest first."""
        self.refresh(root)
        rel = _inside(self.root, os.path.realpath(path))
        if rel is None:
            return []
        runs = [root.index.runs[r] for r in self._by_file.get(rel, ()) if r in root.index.runs]
        runs.sort(key=lambda r: (r.start_time or 0, r.run_id), reverse=True)
        return runs

    def files(self, root: Root) -> dict[str, int]:
        """Every attributed file with its run count."""
        self.refresh(root)
        return {rel: len(ids) for rel, ids in self._by_file.items()}


_CACHE: dict[str, Attribution] = {}


def attribution(root: Root) -> Attribution:
    """The shared attribution of ``root`` (one per root path, kept across connections)."""
    att = _CACHE.get(root.path)
    if att is None:
        att = _CACHE[root.path] = Attribution(root.path)
    return att


def forget(root_path: str) -> None:
    _CACHE.pop(root_path, None)
