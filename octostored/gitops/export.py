"""Runs in MLflow's file-store layout, ready to commit under ``.octostore/runs``.

An export is a list of :class:`FileOut` (repo-relative path, bytes or a file
to copy, git mode), planned without writing anything so that ``--dry-run``
shows exactly what a commit would hold, then written to a staging folder.

Layout, as MLflow 3.17 and 3.18's ``FileStore`` write and read it::

    .octostore/runs/<exp>/meta.yaml                   experiment (written once)
    .octostore/runs/<exp>/tags/<key>                  experiment tags (written once)
    .octostore/runs/<exp>/datasets/<md5>/meta.yaml    datasets (id = md5(name + digest))
    .octostore/runs/<exp>/<run>/meta.yaml
    .octostore/runs/<exp>/<run>/params/<key>          raw value, no newline
    .octostore/runs/<exp>/<run>/metrics/<key>         "<ts> <value> <step>" per point
    .octostore/runs/<exp>/<run>/tags/<key>
    .octostore/runs/<exp>/<run>/inputs/<md5>/meta.yaml
    .octostore/runs/<exp>/<run>/artifacts/...
    .octostore/runs/<exp>/<run>/octostore-artifacts.json   large artifacts (LFS, left out)
    .octostore/runs/<exp>/models/<model_id>/...       the run's logged models (:mod:`.models`)

Why it is shaped so:

* **Folders git would drop.** MLflow's ``get_run`` refuses a run folder
  without ``metrics/``, ``params/`` and ``artifacts/`` (MANIFEST.md), and git
  keeps no empty folder.  A placeholder *file* does not work everywhere: MLflow
  reads every file under ``params/`` as a param (a ``.keep`` becomes a param
  ``.keep``) and every file under ``metrics/`` as a metric (an empty one makes
  ``get_run`` raise "Metric '.keep' is malformed").  So an empty ``params/`` or
  ``metrics/`` holds ``.keep``, a *symlink to its own folder*: git stores it,
  and MLflow's ``os.walk`` lists it as a folder it does not follow, so no
  param or metric appears.  An empty ``artifacts/`` holds a regular, empty
  ``.keep`` file (a self-link there would send MLflow's recursive artifact
  download into a loop).
* **Merge-friendly experiments.** One folder per run, so two people's runs
  never touch the same file.  An experiment folder is keyed by name: a name
  the committed store already has keeps its folder; otherwise the source's id
  is used when free, else a fresh 18-digit id.  Its ``meta.yaml`` holds only
  id, name, stage and a repo-relative ``artifact_location`` (no times, no
  machine paths), so two people who commit the same experiment first write
  identical files and git merges them.
* **Portable artifact URIs.** A run's ``artifact_uri`` is rewritten to
  ``.octostore/runs/<exp>/<run>/artifacts``, relative to the repo's top: any
  clone serves its artifacts with ``mlflow ui --backend-store-uri
  .octostore/runs`` started there, and octostore reads them from the run
  folder wherever the clone lives.
* **File-store runs are copied byte for byte** (params, tags, metric files,
  inputs, datasets); only ``meta.yaml`` is rewritten.  SQLite runs are
  written from the index record and the full metric histories, as MLflow's
  ``FileStore`` would have written them.
* **Server runs** (``kind`` "remote") are written like SQLite runs, from histories
  and artifacts the caller fetched through the server's worker beforehand
  (:attr:`RunSource.histories`, :attr:`RunSource.artifact_dir`): the export itself
  never talks to a server, so it stays a pure plan over local files.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..digest import sha256_file
from ..sources.artifacts import local_artifact_dir as source_artifact_dir

if TYPE_CHECKING:
    from ..model import Experiment, Run

COMMITTED_STORE = ".octostore/runs"
"""Repo-relative home of committed runs (``sources.discover.COMMITTED_STORE``, posix)."""
ARTIFACT_MANIFEST = "octostore-artifacts.json"
KEEP = ".keep"
STATUS_CODES = {"RUNNING": 1, "SCHEDULED": 2, "FINISHED": 3, "FAILED": 4, "KILLED": 5}
DEFAULT_MAX_ARTIFACT_BYTES = 10 * 1024 * 1024
"""Artifacts above this go through Git LFS, or are left out when it is not installed."""
MODE_FILE = "100644"
MODE_EXEC = "100755"
MODE_LINK = "120000"


@dataclass(slots=True)
class FileOut:
    """One file of the commit."""

    rel: str
    """Path relative to the repo's top, ``/``-separated."""
    data: bytes | None = None
    """Content, for generated files."""
    src: str | None = None
    """Or a file to copy (artifacts, file-store data) or to take in place (locks, env files)."""
    mode: str = MODE_FILE
    size: int = 0
    lfs: bool = False
    in_place: bool = False
    """True when ``src`` already sits at ``rel`` in the work tree (nothing to move)."""


@dataclass(slots=True)
class RunSource:
    """A run as the index knows it, plus what the exporter needs about its store."""

    run: Run
    kind: str
    """"file", "sqlite" or "remote"."""
    experiment: Experiment | None
    histories: dict[str, list[tuple[int, float, int]]] | None = None
    """Server runs: every metric's full history, fetched through the server."""
    artifact_dir: str | None = None
    """Server runs: the local folder their artifacts were downloaded to (None: none)."""


@dataclass(slots=True)
class RunExport:
    run_id: str
    exp_id: str
    exp_name: str
    folder: str
    """Repo-relative run folder."""
    files: list[FileOut] = field(default_factory=list)
    lfs: list[dict[str, Any]] = field(default_factory=list)
    left_out: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    guard: Any = None
    """A :class:`.sourcepaths.Guard`: folders outside the repo are refused (None: no check)."""
    origins: list[tuple[str, str]] = field(default_factory=list)
    """(where on this machine, repo-relative destination) of what the export copies."""
    models: list[dict[str, Any]] = field(default_factory=list)
    """The run's logged models, each with its size and route (:mod:`.models`)."""


class ExperimentFolders:
    """Which folder of the committed store each experiment goes to (keyed by name)."""

    def __init__(self, store: str) -> None:
        self.by_name: dict[str, str] = {}
        self.names: dict[str, str] = {}
        self.new: dict[str, tuple[str, Experiment | None]] = {}
        """Folders this export creates: id -> (name, source experiment)."""
        try:
            entries = sorted(os.listdir(store))
        except OSError:
            entries = []
        from ..sources.metayaml import read_meta_file

        for name in entries:
            meta, _ = read_meta_file(os.path.join(store, name, "meta.yaml"))
            if meta is None:
                continue
            exp_name = str(meta.get("name", name))
            self.names[name] = exp_name
            self.by_name.setdefault(exp_name, name)

    def folder(self, source_id: str, name: str, exp: Experiment | None) -> str:
        if name in self.by_name:
            return self.by_name[name]
        ident = source_id if source_id and source_id not in self.names and safe_segment(
            source_id) else _fresh_id(self.names)
        self.names[ident] = name
        self.by_name[name] = ident
        self.new[ident] = (name, exp)
        return ident


def _fresh_id(taken: dict[str, str]) -> str:
    rng = random.SystemRandom()
    while True:
        ident = str(rng.randrange(10**17, 10**18))  # MLflow's file store uses 18 digits
        if ident not in taken:
            return ident


def safe_segment(name: str) -> bool:
    """A name usable as one folder of the committed store (no separators, not hidden)."""
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..") \
        and not name.startswith(".") and "\0" not in name


def safe_key(key: str) -> bool:
    """A param/metric/tag key that stays inside its folder (MLflow's ``path_not_unique`` rule)."""
    if not key or "\0" in key or "\\" in key:
        return False
    norm = posixpath.normpath(key)
    return norm == key and norm != "." and not norm.startswith("..") and not norm.startswith("/")


def yaml_dump(data: dict[str, Any]) -> bytes:
    import yaml  # PyYAML: a daemon dependency, loaded only when runs are committed

    return yaml.safe_dump(data, default_flow_style=False, allow_unicode=True).encode("utf-8")


def experiment_files(ident: str, name: str, exp: Experiment | None) -> list[FileOut]:
    base = f"{COMMITTED_STORE}/{ident}"
    meta = {"artifact_location": base, "experiment_id": ident, "lifecycle_stage": "active",
            "name": name}
    out = [FileOut(f"{base}/meta.yaml", yaml_dump(meta))]
    for key, value in sorted((exp.tags if exp else {}).items()):
        if safe_key(key):
            out.append(FileOut(f"{base}/tags/{key}", value.encode("utf-8")))
    return out


def run_meta(run: Run, exp_id: str, folder: str) -> bytes:
    meta: dict[str, Any] = {
        "artifact_uri": f"{folder}/artifacts",
        "end_time": run.end_time,
        "entry_point_name": "",
        "experiment_id": exp_id,
        "lifecycle_stage": run.lifecycle_stage,
        "run_id": run.run_id,
        "run_name": run.run_name or "",
        "source_name": "",
        "source_type": 4,
        "source_version": "",
        "start_time": run.start_time,
        "status": STATUS_CODES.get(run.status, 3),
        "tags": [],
        "user_id": run.user_id,
        "deleted_time": run.deleted_time,
    }
    return yaml_dump(meta)


def _walk_files(base: str, ex: RunExport | None = None,
                what: str = "folder") -> list[tuple[str, str]]:
    """(relative posix path, absolute path) of regular files under ``base``; symlinks skipped.
    With ``ex.guard``: a ``base`` that resolves outside the repo gives nothing and a
    warning that names it."""
    if ex is not None and ex.guard is not None and os.path.lexists(base) and (
            not ex.guard.allowed(base)):
        ex.warnings.append(ex.guard.refuse(base, what, ex.run_id))
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            out.append((os.path.relpath(full, base).replace(os.sep, "/"), full))
    return out


def _file_mode(path: str) -> str:
    try:
        return MODE_EXEC if os.stat(path).st_mode & 0o111 else MODE_FILE
    except OSError:
        return MODE_FILE


def _metric_lines(points: list[tuple[int, float, int]]) -> bytes:
    # As FileStore.log_metric writes them: "%s %s %s\n" % (timestamp, value, step).
    return "".join(f"{ts} {value} {step}\n" for ts, value, step in points).encode("ascii")


def export_run(src: RunSource, folders: ExperimentFolders, max_artifact_bytes: int,
               lfs: bool, guard: Any = None, models: Any = None) -> RunExport:
    """Plan the files of one run (nothing is written).

    Raises:
        OSError: a file of a file-store run vanished while it was read.
        sqlitestore.SqliteStoreError: a SQLite store could not be read.
    """
    run = src.run
    exp_name = src.experiment.name if src.experiment else run.experiment_id
    exp_id = folders.folder(run.experiment_id, exp_name, src.experiment)
    folder = f"{COMMITTED_STORE}/{exp_id}/{run.run_id}"
    ex = RunExport(run.run_id, exp_id, exp_name, folder, guard=guard)
    ex.origins.append((run.location or run.source, folder))
    ex.files.append(FileOut(f"{folder}/meta.yaml", run_meta(run, exp_id, folder)))
    if src.kind == "file" and os.path.isdir(run.location):
        _copy_file_store_data(run, folder, exp_id, ex)
    else:
        _write_record_data(run, folder, exp_id, ex, src.histories)
    if src.kind == "remote":
        _artifacts(run, folder, max_artifact_bytes, lfs, ex, src.artifact_dir or "")
    else:
        _artifacts(run, folder, max_artifact_bytes, lfs, ex)
    if models is not None:  # a .models.ModelCache: the run's logged models (MLflow 3)
        ex.models = models.export(src, exp_id, folder, max_artifact_bytes, lfs, ex)
    for sub in ("params", "metrics"):
        if not any(f.rel.startswith(f"{folder}/{sub}/") for f in ex.files):
            ex.files.append(FileOut(f"{folder}/{sub}/{KEEP}", b".", mode=MODE_LINK, size=1))
    if not any(f.rel.startswith(f"{folder}/artifacts/") for f in ex.files):
        ex.files.append(FileOut(f"{folder}/artifacts/{KEEP}", b""))
    for f in ex.files:
        if f.data is not None:
            f.size = len(f.data)
    return ex


def _kv_files(folder: str, sub: str, items: dict[str, str], ex: RunExport) -> None:
    for key, value in sorted(items.items()):
        if not safe_key(key):
            ex.warnings.append(f"run {ex.run_id}: {sub[:-1]} key {key!r} is not a safe file "
                               "name; left out")
            continue
        ex.files.append(FileOut(f"{folder}/{sub}/{key}", value.encode("utf-8")))


def _write_record_data(run: Run, folder: str, exp_id: str, ex: RunExport,
                       histories: dict[str, list[tuple[int, float, int]]] | None = None) -> None:
    from ..sources import sqlitestore

    _kv_files(folder, "params", run.params, ex)
    _kv_files(folder, "tags", run.tags, ex)
    for key in sorted(run.metrics):
        if not safe_key(key):
            ex.warnings.append(f"run {run.run_id}: metric key {key!r} is not a safe file name; "
                               "left out")
            continue
        if histories is not None:
            points = histories.get(key, [])
        else:
            points = sqlitestore.metric_history(run.location, run.run_id, key)
        ex.files.append(FileOut(f"{folder}/metrics/{key}", _metric_lines(points)))
    for item in run.inputs:
        name, digest = str(item.get("name", "")), str(item.get("digest", ""))
        ds_id = hashlib.md5((name + digest).encode("utf-8"), usedforsecurity=False).hexdigest()
        input_id = hashlib.md5((ds_id + run.run_id).encode("utf-8"),
                               usedforsecurity=False).hexdigest()
        ds = {k: item.get(k) for k in ("name", "digest", "source_type", "source", "schema",
                                       "profile")}
        ex.files.append(FileOut(f"{COMMITTED_STORE}/{exp_id}/datasets/{ds_id}/meta.yaml",
                                yaml_dump(ds)))
        link = {"source_type": "DATASET", "source_id": ds_id, "destination_type": "RUN",
                "destination_id": ds_id, "tags": dict(item.get("tags") or {})}
        ex.files.append(FileOut(f"{folder}/inputs/{input_id}/meta.yaml", yaml_dump(link)))


def _copy_file_store_data(run: Run, folder: str, exp_id: str, ex: RunExport) -> None:
    from ..sources.metayaml import read_meta_file

    for sub in ("params", "metrics", "tags"):
        for rel, full in _walk_files(os.path.join(run.location, sub), ex, f"its {sub} folder"):
            if not safe_key(rel):
                continue
            ex.files.append(FileOut(f"{folder}/{sub}/{rel}", src=full,
                                    size=os.path.getsize(full)))
    inputs = os.path.join(run.location, "inputs")
    datasets = os.path.join(os.path.dirname(run.location), "datasets")
    for rel, full in _walk_files(inputs, ex, "its inputs folder"):
        meta, _ = read_meta_file(full) if rel.endswith("/meta.yaml") else (None, None)
        if meta is not None and meta.get("source_type") != "DATASET":
            continue  # model inputs point at logged models, which are not committed
        ex.files.append(FileOut(f"{folder}/inputs/{rel}", src=full, size=os.path.getsize(full)))
        ds_id = str(meta.get("source_id", "")) if meta else ""
        if ds_id and safe_segment(ds_id):
            for drel, dfull in _walk_files(os.path.join(datasets, ds_id), ex,
                                           "its dataset folder"):
                ex.files.append(FileOut(f"{COMMITTED_STORE}/{exp_id}/datasets/{ds_id}/{drel}",
                                        src=dfull, size=os.path.getsize(dfull)))


def _artifacts(run: Run, folder: str, limit: int, lfs: bool, ex: RunExport,
               downloaded: str | None = None) -> None:
    """``downloaded``: where a server run's artifacts were fetched ("" when it has none)."""
    base = source_artifact_dir(run) if downloaded is None else (
        downloaded if downloaded and os.path.isdir(downloaded) else None)
    if downloaded is not None and base is None:
        return
    if base is None:
        uri = run.artifact_uri
        if uri and not uri.startswith(("file:", "/")):
            ex.warnings.append(f"run {run.run_id}: its artifacts are at {uri}, not on this "
                               "machine; committed without them")
        return
    manifest: list[dict[str, Any]] = []
    if ex.guard is not None and downloaded is None and not ex.guard.allowed(base):
        ex.warnings.append(ex.guard.refuse(run.artifact_uri or base, "its artifact folder",
                                           run.run_id))
        return
    ex.origins.append((base, f"{folder}/artifacts"))
    for rel, full in _walk_files(base, ex, "its artifact folder"):
        try:
            size = os.path.getsize(full)
        except OSError:
            continue
        out = f"{folder}/artifacts/{rel}"
        if size <= limit:
            ex.files.append(FileOut(out, src=full, size=size, mode=_file_mode(full)))
            continue
        entry = {"path": rel, "size": size, "sha256": sha256_file(full)}
        if lfs:
            entry["stored"] = "git-lfs"
            ex.files.append(FileOut(out, src=full, size=size, lfs=True))
            ex.lfs.append(entry)
        else:
            entry["stored"] = "left-out"
            ex.left_out.append(entry)
            ex.warnings.append(
                f"run {run.run_id}: artifact {rel} ({size / 1e6:.1f} MB) is over the "
                f"{limit / 1e6:.0f} MB limit and git-lfs is not installed; left out (its size "
                f"and sha256 are in {ARTIFACT_MANIFEST})")
        manifest.append(entry)
    if manifest:
        doc = {"threshold_bytes": limit, "artifacts": manifest}
        ex.files.append(FileOut(f"{folder}/{ARTIFACT_MANIFEST}",
                                (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()))
