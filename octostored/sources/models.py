"""A run's logged models (MLflow 3), read from either backend without MLflow.

MLflow 3 keeps a model as its own entity, beside the runs of its experiment:

* a **file store** writes ``<exp>/models/m-<id>/`` with ``meta.yaml`` (model_id, name,
  experiment_id, source_run_id, artifact_location, status, ...), ``params/``, ``tags/``,
  ``metrics/`` (``"<ts> <value> <step> <run_id>[ <dataset name> <digest>]"`` per line) and,
  by default, ``artifacts/`` (the MLmodel file and the model's files);
* a **SQLite store** has the ``logged_models``, ``logged_model_params``,
  ``logged_model_tags`` and ``logged_model_metrics`` tables; the artifacts are where the
  model's ``artifact_location`` says (``mlruns/<exp>/models/m-<id>/artifacts`` beside
  ``mlflow.db`` by default).

A run's models are those whose ``source_run_id`` is the run.  ``runs:/<run>/<name>`` resolves
to such a model in MLflow 3 (``RunsArtifactRepository``: same experiment, same name).

:func:`run_models` is what ``octostore/run`` shows; :func:`file_store_models` and
:func:`sqlite_models` read every model of an experiment folder or database once, grouped by
run, so a commit of many runs reads each store once.  Standard library only (the daemon must
not import MLflow); the database is opened read-only (:mod:`.sqlitestore`).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from .metayaml import parse_meta_bytes, read_meta_file, read_regular

MAX_MLMODEL_BYTES = 1 << 20
STATUS = {0: "UNSPECIFIED", 1: "PENDING", 2: "READY", 3: "FAILED"}


@dataclass(slots=True)
class LoggedModel:
    model_id: str
    name: str
    experiment_id: str
    source_run_id: str | None
    artifact_location: str
    """As the store records it (a ``file:`` URI, an absolute path, or a remote URI)."""
    artifact_dir: str | None
    """The local folder of its artifacts, None when they are not on this machine."""
    meta: dict[str, Any]
    """The store's record, as MLflow's FileStore writes it in ``meta.yaml``."""
    folder: str | None = None
    """A file store's model folder (with params/, tags/, metrics/), None for SQLite."""
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metric_lines: dict[str, list[str]] = field(default_factory=dict)
    """SQLite models: each metric's lines as the FileStore writes them."""
    flavors: list[str] = field(default_factory=list)
    signature: bool = False
    size: int = 0
    files: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What a client shows: id, name, run, flavors, signature, size, where."""
        status = self.meta.get("status")
        return {"model_id": self.model_id, "name": self.name,
                "source_run_id": self.source_run_id, "flavors": self.flavors,
                "signature": self.signature, "size": self.size, "files": self.files,
                "artifact_location": self.artifact_location,
                "status": STATUS.get(status, str(status)) if isinstance(status, int)
                else status, "local": self.artifact_dir is not None,
                "warnings": self.warnings}


def local_dir(location: str, base: str | None = None) -> str | None:
    """The folder an artifact location names on this machine (None: remote or missing).
    ``base``: where a relative location starts (a committed store's repo top)."""
    if not location:
        return None
    if location.startswith("file:"):
        path = unquote(urlparse(location).path)
    elif "://" in location or location.startswith(("dbfs:", "s3:", "gs:", "wasbs:")):
        return None
    elif os.path.isabs(location):
        path = location
    elif base is not None:
        path = os.path.join(base, location)
    else:
        return None
    return path if os.path.isdir(path) else None


def _describe(model: LoggedModel) -> None:
    """Flavors and signature from its MLmodel file, size and file count from its artifacts."""
    base = model.artifact_dir
    if base is None:
        return
    try:
        data = read_regular(os.path.join(base, "MLmodel"), MAX_MLMODEL_BYTES)
        doc, err = parse_meta_bytes(data) if len(data) <= MAX_MLMODEL_BYTES else (
            None, "too big")
    except OSError:
        doc, err = None, "missing"
    if doc is None:
        model.warnings.append(f"model {model.model_id}: its MLmodel file is {err}")
    else:
        flavors = doc.get("flavors")
        model.flavors = sorted(str(k) for k in flavors) if isinstance(flavors, dict) else []
        model.signature = isinstance(doc.get("signature"), dict)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                continue
            try:
                model.size += os.path.getsize(full)
                model.files += 1
            except OSError:
                pass


# -- file store -------------------------------------------------------------------------------
def _kv_folder(folder: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                continue
            try:
                value = read_regular(full, MAX_MLMODEL_BYTES)
            except OSError:
                continue
            key = os.path.relpath(full, folder).replace(os.sep, "/")
            out[key] = value.decode("utf-8", "replace")
    return out


def file_store_models(exp_dir: str, base: str | None = None, describe: bool = True,
                      run_id: str | None = None) -> dict[str, list[LoggedModel]]:
    """Every model of a file-store experiment folder (or only ``run_id``'s), by source run id
    (``""``: no run)."""
    out: dict[str, list[LoggedModel]] = {}
    models = os.path.join(exp_dir, "models")
    try:
        names = sorted(os.listdir(models))
    except OSError:
        return out
    for name in names:
        folder = os.path.join(models, name)
        if name.startswith(".") or os.path.islink(folder) or not os.path.isdir(folder):
            continue
        meta, _ = read_meta_file(os.path.join(folder, "meta.yaml"))
        if meta is None or str(meta.get("model_id", "")) != name:
            continue
        if meta.get("lifecycle_stage") == "deleted" or (
                run_id is not None and meta.get("source_run_id") != run_id):
            continue
        location = str(meta.get("artifact_location") or "")
        art = local_dir(location, base) or (
            os.path.join(folder, "artifacts") if os.path.isdir(os.path.join(folder, "artifacts"))
            else None)
        source_run = meta.get("source_run_id")  # not run_id: that one filters the loop
        model = LoggedModel(name, str(meta.get("name") or ""), str(meta.get("experiment_id", "")),
                            str(source_run) if source_run else None, location, art, meta, folder,
                            _kv_folder(os.path.join(folder, "params")),
                            _kv_folder(os.path.join(folder, "tags")))
        if describe:
            _describe(model)
        out.setdefault(model.source_run_id or "", []).append(model)
    return out


# -- SQLite -----------------------------------------------------------------------------------
def sqlite_models(db_path: str, describe: bool = True,
                  run_ids: list[str] | None = None) -> dict[str, list[LoggedModel]]:
    """Every live model of a database (or of ``run_ids``), by source run id.  A database
    without the tables (MLflow 2) has none.

    Raises:
        sqlitestore.SqliteStoreError: the database cannot be read.
    """
    from .sqlitestore import _in_read_transaction

    def query(conn: sqlite3.Connection) -> list[LoggedModel]:
        have = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'logged_model%'")}
        if "logged_models" not in have:
            return []
        sql = ("SELECT model_id, experiment_id, name, artifact_location, creation_timestamp_ms,"
               " last_updated_timestamp_ms, status, lifecycle_stage, model_type, source_run_id,"
               " status_message FROM logged_models WHERE lifecycle_stage IS NOT 'deleted'")
        args: list[str] = []
        if run_ids is not None:
            if not run_ids:
                return []
            sql += f" AND source_run_id IN ({','.join('?' * len(run_ids))})"
            args = list(run_ids)
        models: dict[str, LoggedModel] = {}
        for (mid, exp, name, loc, created, updated, status, stage, mtype, run,
             msg) in conn.execute(sql + " ORDER BY creation_timestamp_ms, model_id", args):
            meta = {"artifact_location": loc, "creation_timestamp": created,
                    "experiment_id": str(exp), "last_updated_timestamp": updated,
                    "model_id": mid, "model_type": mtype, "name": name,
                    "source_run_id": run, "status": status, "status_message": msg,
                    "lifecycle_stage": stage or "active"}
            models[mid] = LoggedModel(mid, name or "", str(exp), run, loc or "",
                                      local_dir(loc or ""), meta)
        if not models:
            return []
        ids = list(models)
        marks = ",".join("?" * len(ids))
        if "logged_model_params" in have:
            for mid, key, value in conn.execute(
                    f"SELECT model_id, param_key, param_value FROM logged_model_params "
                    f"WHERE model_id IN ({marks})", ids):
                models[mid].params[key] = value
        if "logged_model_tags" in have:
            for mid, key, value in conn.execute(
                    f"SELECT model_id, tag_key, tag_value FROM logged_model_tags "
                    f"WHERE model_id IN ({marks})", ids):
                models[mid].tags[key] = value
        if "logged_model_metrics" in have:
            for mid, key, ts, step, value, run, dname, ddigest in conn.execute(
                    "SELECT model_id, metric_name, metric_timestamp_ms, metric_step, "
                    f"metric_value, run_id, dataset_name, dataset_digest FROM "
                    f"logged_model_metrics WHERE model_id IN ({marks}) "
                    "ORDER BY metric_timestamp_ms, metric_step, rowid", ids):
                # As FileStore.log_metric writes a model metric: 4 fields, or 6 with a dataset.
                line = f"{ts} {float('nan') if value is None else float(value)} {step} {run}"
                if dname and ddigest:
                    line += f" {dname} {ddigest}"
                models[mid].metric_lines.setdefault(key, []).append(line)
        return list(models.values())

    out: dict[str, list[LoggedModel]] = {}
    for model in _in_read_transaction(db_path, query):
        if describe:
            _describe(model)
        out.setdefault(model.source_run_id or "", []).append(model)
    return out


# -- one run ----------------------------------------------------------------------------------
def models_of(run: Any, kind: str | None = None, base: str | None = None) -> list[LoggedModel]:
    """The logged models of one index run (``model.Run``): its store is a file-store run
    folder (``run.location``) or a database (``kind`` "sqlite").  ``base``: the repo top, for
    a committed store's repo-relative locations.  Never raises: a store that cannot be read
    gives no models."""
    location = getattr(run, "location", "") or ""
    if kind is None:
        kind = "file" if os.path.isdir(location) else "sqlite" if os.path.isfile(location) else ""
    try:
        if kind == "sqlite":
            found = sqlite_models(location, run_ids=[run.run_id])
        elif kind in ("file", "committed") and os.path.isdir(location):
            found = file_store_models(os.path.dirname(location), base, run_id=run.run_id)
        else:
            return []
    except Exception:  # noqa: BLE001 - a store that cannot be read has no models to show
        return []
    return found.get(run.run_id, [])


def may_have_models(run: Any, kind: str | None) -> bool:
    """False when one ``stat`` shows the run can have no logged model (a file-store run whose
    experiment has no ``models`` folder): the caller then skips :func:`run_models` and the
    worker thread it runs in (a thread hop was a third of a run detail request's time)."""
    location = getattr(run, "location", "") or ""
    if kind in ("file", "committed"):
        return os.path.isdir(os.path.join(os.path.dirname(location), "models"))
    return True


def run_models(run: Any, kind: str | None = None, base: str | None = None) -> list[dict[str, Any]]:
    """For ``octostore/run``: each of the run's logged models as
    ``{model_id, name, source_run_id, flavors, signature, size, files, artifact_location,
    status, local, warnings}`` (``size`` in bytes on disk, 0 when not on this machine)."""
    return [m.summary() for m in models_of(run, kind, base)]
