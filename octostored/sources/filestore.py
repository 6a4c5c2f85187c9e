"""Reader for MLflow file stores (``mlruns/`` folders), every layout from 0.x to 3.x.

Pure functions from folders to :mod:`octostored.model` records.  A damaged
file costs its run a warning naming the file and the problem; it never stops
the scan.  Where MLflow itself fails on data that is there (see
``shared/corpus/mlruns-real/MANIFEST.md``), this reader reads what is there
and says what it assumed:

* 0.x experiment meta without ``lifecycle_stage``: assumed active (deleted
  when it sits in ``.trash``), with a warning.  MLflow cannot open such stores.
* Run folders whose empty ``params/``/``metrics/``/``artifacts/`` git dropped:
  read normally (MLflow's ``get_run`` refuses them, ``search_runs`` does not).
* Experiments in ``.trash`` whose meta still says ``active`` (MLflow 1.x):
  ``lifecycle_stage`` is reported as the meta says, as MLflow reports it, and
  a warning notes that the folder is in ``.trash``; ``dir`` tells them apart.

Each run carries a :class:`RunState` (file signature and per-metric read
offsets) so a changed run is re-read cheaply and an appended metric line is
read without re-reading the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from ..model import ACTIVE, DELETED, RUN_STATUSES, Experiment, Run
from .metayaml import read_meta_file
from .metricfile import Point, parse_points, scan_latest

TRASH = ".trash"
RESERVED_EXPERIMENT_FOLDERS = {"tags", "datasets", "traces", "models"}
"""Folders inside an experiment that are not runs (MLflow's list, plus ``models``)."""
RUN_SUBFOLDERS = ("metrics", "params", "tags")


@dataclass(slots=True)
class MetricState:
    size: int
    mtime_ns: int
    consumed: int
    latest: tuple[float, int, int] | None


@dataclass(slots=True)
class RunState:
    """What we remember about a run folder to re-read only what changed."""

    signature: tuple[tuple[str, int, int], ...] = ()
    metrics: dict[str, MetricState] = field(default_factory=dict)


@dataclass(slots=True)
class FileScan:
    experiments: list[Experiment] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    states: dict[str, RunState] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def is_file_store(path: str) -> bool:
    """True when ``path`` holds MLflow experiments (``<id>/meta.yaml``), as MLflow decides.

    Since MLflow 3.7 a plain ``./mlruns`` often holds only the artifacts of
    ``mlflow.db``; such a folder has experiment folders without ``meta.yaml``.
    """
    for base in (path, os.path.join(path, TRASH)):
        try:
            with os.scandir(base) as it:
                for entry in it:
                    if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                        continue
                    if os.path.isfile(os.path.join(entry.path, "meta.yaml")):
                        return True
        except OSError:
            continue
    return False


def scan_store(
    store: str,
    source_id: str,
    previous: dict[str, RunState] | None = None,
    reuse: dict[str, Run] | None = None,
) -> FileScan:
    """Read every experiment and run of the file store at ``store``.

    With ``previous`` states and ``reuse`` records (a warm start or a verify),
    a run whose file signature did not change is not read again.
    """
    scan = FileScan()
    previous = previous or {}
    reuse = reuse or {}
    for exp_dir, dir_label in experiment_dirs(store):
        exp = read_experiment(exp_dir, dir_label, source_id)
        if exp is None:
            continue
        scan.experiments.append(exp)
        for run_dir in run_dirs(exp_dir):
            folder = os.path.basename(run_dir)
            prev = previous.get(folder)
            old = reuse.get(folder)
            if prev is not None and old is not None and old.experiment_id == exp.experiment_id:
                sig = run_signature(run_dir)
                if sig == prev.signature:
                    scan.runs.append(replace(old))
                    scan.states[folder] = prev
                    continue
            run, state = read_run(run_dir, exp, source_id, prev)
            if run is None:
                scan.warnings.extend(state_warnings(run_dir, store))
                continue
            scan.runs.append(run)
            scan.states[run.run_id] = state
    return scan


def state_warnings(run_dir: str, store: str) -> list[str]:
    rel = os.path.relpath(run_dir, store)
    if any(os.path.isdir(os.path.join(run_dir, s)) for s in RUN_SUBFOLDERS):
        return [f"{rel}: run folder without a readable meta.yaml; run skipped"]
    return []


def experiment_dirs(store: str) -> list[tuple[str, str]]:
    """(path, dir label) of each experiment folder, active ones first, then ``.trash``."""
    out: list[tuple[str, str]] = []
    for base, prefix in ((store, ""), (os.path.join(store, TRASH), TRASH + "/")):
        try:
            entries = sorted(os.scandir(base), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".") or (not prefix and entry.name == "models"):
                continue
            try:
                if entry.is_dir() and os.path.isfile(os.path.join(entry.path, "meta.yaml")):
                    out.append((entry.path, prefix + entry.name))
            except OSError:
                continue
    return out


def run_dirs(exp_dir: str) -> list[str]:
    try:
        entries = list(os.scandir(exp_dir))
    except OSError:
        return []
    out = []
    for entry in entries:
        if entry.name in RESERVED_EXPERIMENT_FOLDERS or entry.name.startswith("."):
            continue
        try:
            if entry.is_dir():
                out.append(entry.path)
        except OSError:
            continue
    return out


def read_experiment(exp_dir: str, dir_label: str, source_id: str) -> Experiment | None:
    meta, err = read_meta_file(os.path.join(exp_dir, "meta.yaml"))
    name_on_disk = os.path.basename(exp_dir)
    if meta is None:
        return Experiment(
            experiment_id=name_on_disk,
            name=name_on_disk,
            source=source_id,
            dir=dir_label,
            warnings=[f"{dir_label}/meta.yaml: {err}; experiment name unknown"],
        )
    warnings: list[str] = []
    exp_id = meta.get("experiment_id")
    if exp_id is None:
        exp_id = name_on_disk
        warnings.append(f"{dir_label}/meta.yaml: no experiment_id; used the folder name")
    exp_id = str(exp_id)
    in_trash = dir_label.startswith(TRASH)
    stage = meta.get("lifecycle_stage")
    if stage not in (ACTIVE, DELETED):
        stage = DELETED if in_trash else ACTIVE
        warnings.append(
            f"{dir_label}/meta.yaml: no lifecycle_stage (MLflow 0.x layout); assumed {stage}"
        )
    elif in_trash and stage == ACTIVE:
        warnings.append(
            f"{dir_label}: experiment is in .trash but its meta.yaml says active "
            "(deleted by MLflow 1.x); MLflow's active view leaves it out"
        )
    name = meta.get("name")
    return Experiment(
        experiment_id=exp_id,
        name=str(name) if name is not None else exp_id,
        lifecycle_stage=stage,
        artifact_location=str(meta.get("artifact_location") or ""),
        creation_time=_int_or_none(meta.get("creation_time")),
        last_update_time=_int_or_none(meta.get("last_update_time")),
        tags=_read_kv_folder(os.path.join(exp_dir, "tags"), warnings, f"{dir_label}/tags"),
        source=source_id,
        dir=dir_label,
        warnings=warnings,
    )


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _status_name(raw: object, warnings: list[str]) -> str:
    if raw is None:
        return "RUNNING"
    if isinstance(raw, int) and raw in RUN_STATUSES:
        return RUN_STATUSES[raw]
    if isinstance(raw, str) and raw.upper() in RUN_STATUSES.values():
        return raw.upper()
    warnings.append(f"meta.yaml: unknown status {raw!r}; shown as RUNNING")
    return "RUNNING"


def read_run(
    run_dir: str, exp: Experiment, source_id: str, previous: RunState | None = None
) -> tuple[Run | None, RunState]:
    """Read one run folder; ``None`` when it has no usable meta.yaml."""
    meta, err = read_meta_file(os.path.join(run_dir, "meta.yaml"))
    state = RunState()
    if meta is None:
        return None, state
    folder = os.path.basename(run_dir)
    run_id = meta.get("run_id") or meta.get("run_uuid")
    if not run_id:
        return None, state
    warnings: list[str] = []
    run_id = str(run_id)
    if run_id != folder:
        warnings.append(f"meta.yaml says run_id {run_id} but the folder is {folder}")
    meta_exp = meta.get("experiment_id")
    if meta_exp is not None and str(meta_exp) != exp.experiment_id:
        warnings.append(
            f"meta.yaml says experiment {meta_exp} but the run sits in experiment "
            f"{exp.experiment_id}; listed under the folder's experiment"
        )
    stage = meta.get("lifecycle_stage") or ACTIVE
    if stage not in (ACTIVE, DELETED):
        warnings.append(f"meta.yaml: unknown lifecycle_stage {stage!r}; treated as active")
        stage = ACTIVE
    params = _read_kv_folder(os.path.join(run_dir, "params"), warnings, "params")
    tags = _read_kv_folder(os.path.join(run_dir, "tags"), warnings, "tags")
    metrics, state.metrics = _read_metrics(os.path.join(run_dir, "metrics"), previous, warnings)
    run_name = meta.get("run_name")
    if not run_name:
        run_name = tags.get("mlflow.runName")  # MLflow's fallback; None when neither is set
    run = Run(
        run_id=run_id,
        experiment_id=exp.experiment_id,
        run_name=str(run_name) if run_name is not None else None,
        status=_status_name(meta.get("status"), warnings),
        lifecycle_stage=stage,
        start_time=_int_or_none(meta.get("start_time")),
        end_time=_int_or_none(meta.get("end_time")),
        user_id=str(meta.get("user_id") or ""),
        artifact_uri=str(meta.get("artifact_uri") or ""),
        params=params,
        metrics=metrics,
        tags=tags,
        inputs=_read_inputs(run_dir, warnings),
        deleted_time=_int_or_none(meta.get("deleted_time")),
        source=source_id,
        location=run_dir,
        warnings=warnings,
    )
    state.signature = run_signature(run_dir)
    return run, state


def run_signature(run_dir: str) -> tuple[tuple[str, int, int], ...]:
    """(relative path, size, mtime_ns) of every file MLflow writes for a run's data.

    Two equal signatures mean the run's meta, params, tags and metrics did not
    change (artifacts are not part of the index).
    """
    out: list[tuple[str, int, int]] = []
    _stat_into(os.path.join(run_dir, "meta.yaml"), "meta.yaml", out)
    for sub in (*RUN_SUBFOLDERS, "inputs"):
        _walk_stats(os.path.join(run_dir, sub), sub, out)
    out.sort()
    return tuple(out)


def _stat_into(path: str, rel: str, out: list[tuple[str, int, int]]) -> None:
    try:
        st = os.stat(path)
    except OSError:
        return
    out.append((rel, st.st_size, st.st_mtime_ns))


def _walk_stats(folder: str, rel: str, out: list[tuple[str, int, int]], depth: int = 0) -> None:
    if depth > 16:
        return
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for e in entries:
        try:
            if e.is_dir():
                _walk_stats(e.path, f"{rel}/{e.name}", out, depth + 1)
            else:
                st = e.stat()
                out.append((f"{rel}/{e.name}", st.st_size, st.st_mtime_ns))
        except OSError:
            continue


def _files_under(folder: str, depth: int = 0, prefix: str = "") -> list[tuple[str, str]]:
    """(key, path) of every file below ``folder``; keys with ``/`` are subfolders."""
    if depth > 16:  # symlink loops and absurd nesting end here
        return []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    out = []
    for e in entries:
        try:
            if e.is_dir():
                out.extend(_files_under(e.path, depth + 1, f"{prefix}{e.name}/"))
            else:
                out.append((prefix + e.name, e.path))
        except OSError:
            continue
    return out


def _read_kv_folder(folder: str, warnings: list[str], label: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, path in _files_under(folder):
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            warnings.append(f"{label}/{key}: cannot read ({exc.strerror})")
            continue
        try:
            out[key] = raw.decode("utf-8")
        except UnicodeDecodeError:
            out[key] = raw.decode("utf-8", "replace")
            warnings.append(f"{label}/{key}: not UTF-8; undecodable bytes shown as U+FFFD")
    return out


def _read_metrics(
    folder: str, previous: RunState | None, warnings: list[str]
) -> tuple[dict[str, tuple[float, int, int]], dict[str, MetricState]]:
    metrics: dict[str, tuple[float, int, int]] = {}
    states: dict[str, MetricState] = {}
    prev = previous.metrics if previous is not None else {}
    for key, path in _files_under(folder):
        try:
            st = os.stat(path)
        except OSError as exc:
            warnings.append(f"metrics/{key}: cannot read ({exc.strerror})")
            continue
        old = prev.get(key)
        if old is not None and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
            state = old
        else:
            state = _read_metric_file(path, key, st, old, warnings)
            if state is None:
                continue
        states[key] = state
        if state.latest is not None:
            metrics[key] = state.latest
        else:
            warnings.append(f"metrics/{key}: no complete line; metric left out")
    return metrics, states


def _read_metric_file(
    path: str, key: str, st: os.stat_result, old: MetricState | None, warnings: list[str]
) -> MetricState | None:
    start = 0
    if old is not None and st.st_size >= old.consumed and old.consumed > 0:
        start = old.consumed  # appended: read only the new bytes
    try:
        with open(path, "rb") as f:
            if start:
                f.seek(start)
            data = f.read()
    except OSError as exc:
        warnings.append(f"metrics/{key}: cannot read ({exc.strerror})")
        return None
    latest, consumed, bad = scan_latest(data)
    warnings.extend(f"metrics/{key} {w}" for w in bad)
    if start and old is not None and old.latest is not None:
        latest = old.latest if latest is None else _later(old.latest, latest)
    return MetricState(st.st_size, st.st_mtime_ns, start + consumed, latest)


def _later(a: tuple[float, int, int], b: tuple[float, int, int]) -> tuple[float, int, int]:
    # Same ordering as MLflow: by (step, timestamp, value); ties keep the first.
    return b if (b[2], b[1], b[0]) > (a[2], a[1], a[0]) else a


def _read_inputs(run_dir: str, warnings: list[str]) -> list[dict[str, object]]:
    inputs_dir = os.path.join(run_dir, "inputs")
    if not os.path.isdir(inputs_dir):
        return []
    datasets_dir = os.path.join(os.path.dirname(run_dir), "datasets")
    out: list[dict[str, object]] = []
    for name in sorted(os.listdir(inputs_dir)):
        link, err = read_meta_file(os.path.join(inputs_dir, name, "meta.yaml"))
        if link is None:
            warnings.append(f"inputs/{name}/meta.yaml: {err}")
            continue
        if link.get("source_type") != "DATASET":
            continue
        ds, err = read_meta_file(os.path.join(datasets_dir, str(link.get("source_id")), "meta.yaml"))
        if ds is None:
            warnings.append(f"inputs/{name}: dataset {link.get('source_id')} not found ({err})")
            continue
        tags = link.get("tags") or {}
        out.append(
            {
                "name": str(ds.get("name", "")),
                "digest": str(ds.get("digest", "")),
                "source_type": str(ds.get("source_type", "")),
                "tags": {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
            }
        )
    return out


def read_metric_history(run_dir: str, key: str) -> tuple[list[Point], int, list[str]]:
    """Every point of one metric, in file order, plus bytes consumed and warnings."""
    path = os.path.join(run_dir, "metrics", key)
    if not _inside(os.path.join(run_dir, "metrics"), path):
        return [], 0, [f"metric key {key!r} leaves the run folder"]
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], 0, []
    except OSError as exc:
        return [], 0, [f"metrics/{key}: cannot read ({exc.strerror})"]
    return parse_points(data)


def read_metric_tail(run_dir: str, key: str, offset: int) -> tuple[list[Point], int, list[str]]:
    """Points appended after byte ``offset``; (points, new offset, warnings)."""
    path = os.path.join(run_dir, "metrics", key)
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError as exc:
        return [], offset, [f"metrics/{key}: cannot read ({exc.strerror})"]
    points, consumed, warnings = parse_points(data)
    return points, offset + consumed, warnings


def _inside(folder: str, path: str) -> bool:
    folder = os.path.realpath(folder)
    return os.path.commonpath([folder, os.path.realpath(path)]) == folder
