"""A run's logged models in the committed store, where MLflow 3 looks for them.

Layout, as MLflow 3.17 and 3.18's ``FileStore`` write and read it::

    .octostore/runs/<exp>/models/<model_id>/meta.yaml     artifact_location, experiment_id
    .octostore/runs/<exp>/models/<model_id>/params/<key>  raw value
    .octostore/runs/<exp>/models/<model_id>/tags/<key>
    .octostore/runs/<exp>/models/<model_id>/metrics/<key> "<ts> <value> <step> <run>[ <ds> <dg>]"
    .octostore/runs/<exp>/models/<model_id>/artifacts/... MLmodel and the model's files
    .octostore/runs/<exp>/models/<model_id>/octostore-artifacts.json   files through Git LFS
    .octostore/runs/<exp>/<run>/outputs/<model_id>/meta.yaml          the run -> model link

``meta.yaml`` is the store's record with two fields rewritten: ``experiment_id`` (the
committed experiment folder, which MLflow checks) and ``artifact_location``, repo-relative
like a committed run's ``artifact_uri``.  So in a clone, with the tracking URI at
``.octostore/runs`` and the repo's top as the working folder, ``models:/<model_id>``
(``get_logged_model``) and ``runs:/<run>/<name>`` (``search_logged_models`` in the run's
experiment, by name and ``source_run_id``) load the model, and ``search_logged_models``
finds it.  File-store models are copied byte for byte (params, tags, metrics); SQLite
models are written from the ``logged_model*`` tables as the FileStore would have.

A model is committed whole or not at all: a file over the size limit goes through Git LFS;
without git-lfs, or with its artifacts not on this machine or outside the repo, the model
is left out and the plan says why (a model missing a file cannot be loaded).
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..digest import sha256_file
from ..sources.models import LoggedModel, file_store_models, sqlite_models
from .export import (
    ARTIFACT_MANIFEST,
    COMMITTED_STORE,
    FileOut,
    RunExport,
    RunSource,
    _file_mode,
    _walk_files,
    safe_key,
    safe_segment,
    yaml_dump,
)

META_FIELDS = ("artifact_location", "creation_timestamp", "experiment_id",
               "last_updated_timestamp", "model_id", "model_type", "name", "source_run_id",
               "status", "status_message")
"""What ``FileStore._make_persisted_model_dict`` keeps in a model's meta.yaml."""


class ModelCache:
    """Each store's models read once per commit (an experiment folder, a database)."""

    def __init__(self, top: str) -> None:
        self.top = top
        self.by_store: dict[str, dict[str, list[LoggedModel]] | str] = {}

    def export(self, src: RunSource, exp_id: str, run_folder: str, limit: int, lfs: bool,
               ex: RunExport) -> list[dict[str, Any]]:
        """:func:`export_models` with this cache (the exporter calls this: it never imports
        this module, which imports it)."""
        return export_models(src, exp_id, run_folder, limit, lfs, ex, self)

    def for_run(self, src: RunSource) -> tuple[list[LoggedModel], str | None]:
        """(the run's models, why they could not be read or None)."""
        from ..sources.sqlitestore import SqliteStoreError

        run = src.run
        loc = run.location or ""
        if src.kind == "sqlite" and os.path.isfile(loc):
            key = loc
        elif src.kind != "remote" and os.path.isdir(loc):
            key = os.path.dirname(loc)
        else:
            return [], None
        if key not in self.by_store:
            try:
                self.by_store[key] = (sqlite_models(key, describe=False) if key == loc
                                      else file_store_models(key, self.top, describe=False))
            except (OSError, SqliteStoreError) as exc:
                self.by_store[key] = str(exc)
        got = self.by_store[key]
        if isinstance(got, str):
            return [], got
        return got.get(run.run_id, []), None


def export_models(src: RunSource, exp_id: str, run_folder: str, limit: int, lfs: bool,
                  ex: RunExport, cache: ModelCache) -> list[dict[str, Any]]:
    """Add the run's logged models to ``ex.files``; one plan entry per model
    ``{model_id, name, size, files, route, reason, lfs_files}`` (route "git", "git-lfs" or
    "left-out"); a server run gets one entry with ``model_id`` None (its models are not
    fetched)."""
    models, error = cache.for_run(src)
    rid = src.run.run_id
    if src.kind == "remote":  # one entry without a model id: what is left out, and why
        return [{"model_id": None, "name": None, "size": 0, "files": 0, "route": "left-out",
                 "reason": "a server run's logged models, if any, stay on its MLflow server "
                 "(octostore does not fetch them); load them from there", "lfs_files": []}]
    if error:
        ex.warnings.append(f"run {rid}: its logged models could not be read ({error}); "
                           "committed without them")
        return []
    entries = []
    for model in models:
        entry: dict[str, Any] = {"model_id": model.model_id, "name": model.name, "size": 0,
                                 "files": 0, "route": "git", "reason": "", "lfs_files": []}
        entries.append(entry)
        files = _model_files(model, exp_id, run_folder, limit, lfs, ex, entry)
        if files is None:
            entry["route"] = "left-out"
            ex.warnings.append(f"run {rid}: logged model {model.name or model.model_id} "
                               f"({model.model_id}) left out: {entry['reason']}")
            continue
        ex.files.extend(files)
    return entries


def _model_files(model: LoggedModel, exp_id: str, run_folder: str, limit: int, lfs: bool,
                 ex: RunExport, entry: dict[str, Any]) -> list[FileOut] | None:
    """The model's files, or None (and ``entry["reason"]``) when it cannot go whole."""
    mid = model.model_id
    if not safe_segment(mid):
        entry["reason"] = "its id is not a plain folder name"
        return None
    base = model.artifact_dir
    if base is None:
        entry["reason"] = (f"its artifacts are at {model.artifact_location or '(nowhere)'}, "
                           "not on this machine")
        return None
    if ex.guard is not None and not ex.guard.allowed(base):
        ex.guard.refuse(base, f"its model {mid}'s artifact folder", ex.run_id)
        entry["reason"] = (f"its artifact folder {base} is outside the repo (octostore copies "
                           "nothing from outside the repo's work tree)")
        return None
    dest = f"{COMMITTED_STORE}/{exp_id}/models/{mid}"
    out: list[FileOut] = []
    manifest: list[dict[str, Any]] = []
    for rel, full in _walk_files(base, ex, "its model's artifact folder"):
        try:
            size = os.path.getsize(full)
        except OSError:
            continue
        entry["size"] += size
        entry["files"] += 1
        path = f"{dest}/artifacts/{rel}"
        if size <= limit:
            out.append(FileOut(path, src=full, size=size, mode=_file_mode(full)))
            continue
        if not lfs:
            entry["reason"] = (f"{rel} ({size / 1e6:.1f} MB) is over the {limit / 1e6:.0f} MB "
                               "limit and git-lfs is not installed (install git-lfs, or raise "
                               "--max-artifact-mb)")
            return None
        manifest.append({"path": rel, "size": size, "sha256": sha256_file(full),
                         "stored": "git-lfs"})
        out.append(FileOut(path, src=full, size=size, lfs=True))
    if not entry["files"]:
        entry["reason"] = f"its artifact folder {base} holds no files"
        return None
    ex.origins.append((base, f"{dest}/artifacts"))
    if manifest:
        entry["route"] = "git-lfs"
        entry["lfs_files"] = [m["path"] for m in manifest]
        doc = {"threshold_bytes": limit, "artifacts": manifest}
        out.append(FileOut(f"{dest}/{ARTIFACT_MANIFEST}",
                           (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()))
    meta = {k: model.meta.get(k) for k in META_FIELDS}
    meta.update(artifact_location=f"{dest}/artifacts", experiment_id=exp_id, model_id=mid)
    out.append(FileOut(f"{dest}/meta.yaml", yaml_dump(meta)))
    if model.folder is not None:  # a file store: byte for byte
        for sub in ("params", "tags", "metrics"):
            for rel, full in _walk_files(os.path.join(model.folder, sub), ex,
                                         f"its model's {sub} folder"):
                if safe_key(rel):
                    out.append(FileOut(f"{dest}/{sub}/{rel}", src=full,
                                       size=os.path.getsize(full)))
    else:
        for sub, items in (("params", model.params), ("tags", model.tags)):
            for key, value in sorted(items.items()):
                if safe_key(key):
                    out.append(FileOut(f"{dest}/{sub}/{key}", value.encode("utf-8")))
        for key, lines in sorted(model.metric_lines.items()):
            if safe_key(key):
                out.append(FileOut(f"{dest}/metrics/{key}",
                                   "".join(line + "\n" for line in lines).encode("utf-8")))
    link = {"destination_id": mid, "destination_type": "MODEL_OUTPUT", "source_id": mid,
            "source_type": "RUN_OUTPUT", "step": 0, "tags": {}}
    out.append(FileOut(f"{run_folder}/outputs/{mid}/meta.yaml", yaml_dump(link)))
    return out
