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

import gc
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from ..model import ACTIVE, DELETED, RUN_STATUSES, Experiment, Run
from .metayaml import (MAX_META_BYTES, describe_oserror, parse_meta_bytes, read_meta_file,
                       read_regular)
from .metricfile import INT64_MAX, INT64_MIN, Point, parse_points, scan_latest
from .runfiles import (O_DIR, O_FILE, S_IFDIR, S_IFMT, S_IFREG, SHORT_VALUE, Sig, link_stat,
                       read_open, shared, stat_walk)

TRASH = ".trash"
RESERVED_EXPERIMENT_FOLDERS = {"tags", "datasets", "traces", "models"}
"""Folders inside an experiment that are not runs (MLflow's list, plus ``models``)."""
RUN_SUBFOLDERS = ("metrics", "params", "tags")
MAX_VALUE_BYTES = 4 << 20
"""Largest param or tag value read (MLflow caps values at 8,000 characters or so)."""
METRIC_CHUNK = 8 << 20
"""Metric files are scanned in chunks of this size, so a huge one costs no more memory."""
MAX_METRIC_LINE = 1 << 20
"""A metric line is under a hundred bytes; a "line" over this is skipped, not held."""
MAX_DEPTH = 16
"""Deepest key nesting followed under ``params/``, ``metrics/``, ``tags/``."""
SIGNED_SUBFOLDERS = ("params", "tags", "metrics", "inputs")
"""The folders whose files make a run's signature (after meta.yaml), in this order."""
O_RUNDIR = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC
"""A run folder is only a base for ``openat``/``stat``: O_PATH needs no read permission."""


@dataclass(slots=True)
class MetricState:
    size: int
    mtime_ns: int
    consumed: int
    latest: tuple[float, int, int] | None
    warnings: list[str] = field(default_factory=list)
    """Bad lines met so far (kept so an incremental read does not forget them)."""
    lines: int = 0
    """Complete lines consumed (numbers the lines of an incremental read); 0 if unknown."""
    check: bytes = b""
    """The last bytes consumed; an append-only read first checks they are still there."""


NO_STATES: Mapping[str, MetricState] = MappingProxyType({})


@dataclass(slots=True)
class RunState:
    """What we remember about a run folder to re-read only what changed."""

    signature: bytes = b""
    """:func:`run_signature`'s digest of the run's files at the read."""
    metrics: Mapping[str, MetricState] = field(default_factory=lambda: NO_STATES)
    """Read offsets of its large metric files (see :data:`METRIC_STATE_MIN`), by key."""
    error: str = ""
    """Why the folder could not be read as a run (only set when it could not)."""


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
    enabled = gc.isenabled()
    gc.disable()  # a scan allocates millions of small objects: ~20% faster without GC passes
    try:
        return _scan(store, source_id, previous or {}, reuse or {})
    finally:
        if enabled:
            gc.enable()


def _scan(store: str, source_id: str, previous: dict[str, RunState],
          reuse: dict[str, Run]) -> FileScan:
    scan = FileScan()
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
                scan.warnings.extend(state_warnings(run_dir, store, state.error))
                continue
            scan.runs.append(run)
            scan.states[run.run_id] = state
    return scan


def state_warnings(run_dir: str, store: str, error: str = "missing") -> list[str]:
    """The warning for a run folder that could not be read: it names the file and the problem.

    A folder without ``meta.yaml`` and without run subfolders is not a run (MLflow skips
    it too) and costs no warning.
    """
    rel = os.path.relpath(run_dir, store).replace(os.sep, "/")
    if error == "missing" and not any(
        os.path.isdir(os.path.join(run_dir, s)) for s in RUN_SUBFOLDERS
    ):
        return []
    return [f"{rel}/meta.yaml: {error or 'unreadable'}; run skipped"]


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
    label = f"{dir_label}/meta.yaml"
    exp_id = _text(meta, "experiment_id", warnings, label)
    if exp_id is None:
        exp_id = name_on_disk
        warnings.append(f"{label}: no experiment_id; used the folder name")
    in_trash = dir_label.startswith(TRASH)
    stage = meta.get("lifecycle_stage")
    if stage not in (ACTIVE, DELETED):
        if stage is not None:
            warnings.append(f"{label}: lifecycle_stage {_show(stage)} is not active or deleted")
        stage = DELETED if in_trash else ACTIVE
        warnings.append(
            f"{dir_label}/meta.yaml: no lifecycle_stage (MLflow 0.x layout); assumed {stage}"
        )
    elif in_trash and stage == ACTIVE:
        warnings.append(
            f"{dir_label}: experiment is in .trash but its meta.yaml says active "
            "(deleted by MLflow 1.x); MLflow's active view leaves it out"
        )
    name = _text(meta, "name", warnings, label)
    return Experiment(
        experiment_id=exp_id,
        name=name if name is not None else exp_id,
        lifecycle_stage=stage,
        artifact_location=_text(meta, "artifact_location", warnings, label) or "",
        creation_time=_time(meta, "creation_time", warnings, label),
        last_update_time=_time(meta, "last_update_time", warnings, label),
        tags=_read_kv_folder(os.path.join(exp_dir, "tags"), warnings, f"{dir_label}/tags"),
        source=source_id,
        dir=dir_label,
        warnings=warnings,
    )


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        out = value
    elif isinstance(value, float) and value.is_integer():
        out = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        out = int(value)
    else:
        return None
    return out if INT64_MIN <= out <= INT64_MAX else None


def _show(value: object) -> str:
    """A short description of a hostile value (never ``str()`` of a container: YAML aliases
    can make a nine-line file a billion elements long)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return f"a {type(value).__name__}"


def _text(meta: dict[str, object], key: str, warnings: list[str], label: str) -> str | None:
    """A meta.yaml field that must be a string (numbers are accepted and spelled out)."""
    value = meta.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    warnings.append(f"{label}: {key} is {_show(value)}, not text; ignored")
    return None


def _time(meta: dict[str, object], key: str, warnings: list[str], label: str) -> int | None:
    """A meta.yaml epoch-milliseconds field; anything else is left empty with a warning."""
    value = meta.get(key)
    if value is None:
        return None
    out = _int_or_none(value)
    if out is None:
        if isinstance(value, int) and not isinstance(value, bool):
            warnings.append(f"{label}: {key} {_show(value)} is out of range (64-bit); ignored")
        else:
            warnings.append(f"{label}: {key} is {_show(value)}, not a time; ignored")
    return out


def _status_name(raw: object, warnings: list[str]) -> str:
    if raw is None:
        return "RUNNING"
    if isinstance(raw, int) and raw in RUN_STATUSES:
        return RUN_STATUSES[raw]
    if isinstance(raw, str) and raw.upper() in RUN_STATUSES.values():
        return raw.upper()
    warnings.append(f"meta.yaml: unknown status {_show(raw)}; shown as RUNNING")
    return "RUNNING"


def read_run(
    run_dir: str, exp: Experiment, source_id: str, previous: RunState | None = None
) -> tuple[Run | None, RunState]:
    """Read one run folder; ``None`` when it has no usable meta.yaml."""
    state = RunState()
    try:
        rfd = os.open(run_dir, O_RUNDIR)
    except OSError as exc:
        state.error = describe_oserror(exc)
        return None, state
    try:
        return _read_run_at(rfd, run_dir, exp, source_id, previous, state)
    finally:
        os.close(rfd)


def _read_run_at(rfd: int, run_dir: str, exp: Experiment, source_id: str,
                 previous: RunState | None, state: RunState) -> tuple[Run | None, RunState]:
    sig = Sig()
    meta, err = _read_meta_at(rfd, sig)
    if meta is None:
        state.error = err
        return None, state
    folder = os.path.basename(run_dir)
    warnings: list[str] = []
    label = "meta.yaml"
    run_id = _text(meta, "run_id", warnings, label) or _text(meta, "run_uuid", warnings, label)
    if not run_id:
        state.error = "no run_id" + (f" ({warnings[-1].partition(': ')[2]})" if warnings else "")
        return None, state
    if run_id != folder:
        warnings.append(f"meta.yaml says run_id {run_id} but the folder is {folder}")
    meta_exp = _text(meta, "experiment_id", warnings, label)
    if meta_exp is not None and meta_exp != exp.experiment_id:
        warnings.append(
            f"meta.yaml says experiment {_show(meta_exp)} but the run sits in experiment "
            f"{exp.experiment_id}; listed under the folder's experiment"
        )
    stage = meta.get("lifecycle_stage") or ACTIVE
    if stage not in (ACTIVE, DELETED):
        warnings.append(f"meta.yaml: unknown lifecycle_stage {_show(stage)}; treated as active")
        stage = ACTIVE
    # Signature order (see runfiles.Sig): meta.yaml, params, tags, metrics, inputs.
    params = _read_values(rfd, "params", warnings, "params", sig)
    tags = _read_values(rfd, "tags", warnings, "tags", sig)
    metrics: dict[str, tuple[float, int, int]] = {}
    states: dict[str, MetricState] = {}
    prev = previous.metrics if previous is not None else NO_STATES
    _read_metrics_at(rfd, "metrics", run_dir, prev, metrics, states, warnings, sig)
    state.metrics = states or NO_STATES
    inputs: list[dict[str, object]] = []
    try:
        os.close(os.open("inputs", O_DIR, dir_fd=rfd))
    except FileNotFoundError:
        pass  # most runs have no dataset inputs
    except OSError:
        inputs = _read_inputs(run_dir, warnings)  # says what is wrong with it
    else:
        stat_walk(rfd, "inputs", sig, MAX_DEPTH)
        inputs = _read_inputs(run_dir, warnings)
    run_name = _text(meta, "run_name", warnings, label)
    if not run_name:
        run_name = tags.get("mlflow.runName")  # MLflow's fallback; None when neither is set
    run = Run(
        run_id=run_id,
        experiment_id=exp.experiment_id,
        run_name=run_name,
        status=_status_name(meta.get("status"), warnings),
        lifecycle_stage=stage,
        start_time=_time(meta, "start_time", warnings, label),
        end_time=_time(meta, "end_time", warnings, label),
        user_id=shared(_text(meta, "user_id", warnings, label) or ""),
        artifact_uri=_text(meta, "artifact_uri", warnings, label) or "",
        params=params,
        metrics=metrics,
        tags=tags,
        inputs=inputs,
        deleted_time=_time(meta, "deleted_time", warnings, label),
        source=source_id,
        location=run_dir,
        warnings=warnings,
    )
    state.signature = sig.digest()
    return run, state


def _read_meta_at(rfd: int, sig: Sig) -> tuple[dict[str, object] | None, str]:
    """A run's meta.yaml, as :func:`metayaml.read_meta_file` reads it, by descriptor."""
    try:
        fd = os.open("meta.yaml", O_FILE, dir_fd=rfd)
    except OSError as exc:
        return None, describe_oserror(exc)
    try:
        st = os.fstat(fd)
        if st.st_mode & S_IFMT != S_IFREG:
            kind = "is a folder" if st.st_mode & S_IFMT == S_IFDIR else "not a regular file"
            return None, kind
        data = read_open(fd, st.st_size, MAX_META_BYTES + 1)
    except OSError as exc:
        return None, describe_oserror(exc)
    finally:
        os.close(fd)
    sig.add("meta.yaml", st)
    return parse_meta_bytes(data)


def run_signature(run_dir: str) -> bytes:
    """8 bytes that change when any file MLflow writes for the run's data changes.

    Built from (name, size, mtime_ns) of meta.yaml and every file under ``params/``,
    ``tags/``, ``metrics/`` and ``inputs/`` with ``stat`` alone; :func:`read_run` builds the
    same digest from the ``fstat`` of the files it reads (artifacts are not part of the index).
    """
    sig = Sig()
    try:
        rfd = os.open(run_dir, O_RUNDIR)
    except OSError:
        return sig.digest()
    try:
        try:
            sig.add("meta.yaml", os.stat("meta.yaml", dir_fd=rfd))
        except OSError:
            pass
        for sub in SIGNED_SUBFOLDERS:
            stat_walk(rfd, sub, sig, MAX_DEPTH)
    finally:
        os.close(rfd)
    return sig.digest()


def _list_folder(parent_fd: int, folder: str, warnings: list[str], label: str, depth: int,
                 prefix: str) -> tuple[int, list[str]] | None:
    """(descriptor, sorted names) of a key folder; None (with a warning) when unreadable.

    Like MLflow (``os.walk``), symlinks to folders are not followed: a symlink loop would
    otherwise turn into thousands of bogus keys.  A missing folder is normal (git drops
    empty ones); any other problem listing it is a warning.
    """
    if depth > MAX_DEPTH:
        warnings.append(f"{label}/{prefix.rstrip('/')}: nested over {MAX_DEPTH} levels; "
                        "deeper keys left out")
        return None
    fd = -1
    try:
        fd = os.open(folder, O_DIR, dir_fd=parent_fd)
        return fd, sorted(os.listdir(fd))
    except FileNotFoundError:
        pass
    except OSError as exc:
        where = f"{label}/{prefix.rstrip('/')}" if prefix else label
        warnings.append(f"{where}: cannot list ({exc.strerror or exc})")
    if fd >= 0:
        os.close(fd)
    return None


def _unopened(fd: int, name: str, key: str, exc: OSError, warnings: list[str], label: str,
              sig: Sig, rel: str) -> bool:
    """An entry that could not be opened: warn; True when it is a folder to walk into."""
    try:
        st = os.stat(name, dir_fd=fd)
    except OSError:
        st = None
    link = link_stat(name, fd)
    if st is not None and st.st_mode & S_IFMT == S_IFDIR:
        if link is None:
            return True
        sig.add(rel + name, link)
        warnings.append(f"{label}/{key}: symlink to a folder; not followed")
        return False
    if st is not None or link is not None:
        sig.add(rel + name, st if st is not None else link)  # type: ignore[arg-type]
    if isinstance(exc, FileNotFoundError):
        what = "dangling symlink" if link is not None else "vanished while read"
        warnings.append(f"{label}/{key}: {what}; left out")
    else:
        warnings.append(f"{label}/{key}: {describe_oserror(exc)}")
    return False


def _read_values(parent_fd: int, folder: str, warnings: list[str], label: str, sig: Sig,
                 out: dict[str, str] | None = None, depth: int = 0, prefix: str = "",
                 ) -> dict[str, str]:
    """The params or tags under ``folder`` (keys with ``/`` are subfolders)."""
    if out is None:
        out = {}
    listed = _list_folder(parent_fd, folder, warnings, label, depth, prefix)
    if listed is None:
        return out
    fd, names = listed
    rel = f"{label}/{prefix}"  # for a run's params and tags, the signature's names
    try:
        for name in names:
            key = prefix + name
            try:
                f = os.open(name, O_FILE, dir_fd=fd)
            except OSError as exc:
                if _unopened(fd, name, key, exc, warnings, label, sig, rel):
                    _read_values(fd, name, warnings, label, sig, out, depth + 1, key + "/")
                continue
            try:
                st = os.fstat(f)
                mode = st.st_mode & S_IFMT
                if mode == S_IFREG:
                    raw = read_open(f, st.st_size, MAX_VALUE_BYTES + 1)
                    sig.add(rel + name, st)
                elif mode == S_IFDIR:
                    raw = None
                else:
                    sig.add(rel + name, st)
                    warnings.append(f"{label}/{key}: not a regular file")
                    continue
            except OSError as exc:
                warnings.append(f"{label}/{key}: {describe_oserror(exc)}")
                continue
            finally:
                os.close(f)
            if raw is None:
                link = link_stat(name, fd)
                if link is not None:
                    sig.add(rel + name, link)
                    warnings.append(f"{label}/{key}: symlink to a folder; not followed")
                else:
                    _read_values(fd, name, warnings, label, sig, out, depth + 1, key + "/")
                continue
            if len(raw) > MAX_VALUE_BYTES:
                raw = raw[:MAX_VALUE_BYTES]
                warnings.append(f"{label}/{key}: longer than {MAX_VALUE_BYTES} bytes; cut there")
            try:
                value = raw.decode("utf-8")
            except UnicodeDecodeError:
                value = raw.decode("utf-8", "replace")
                warnings.append(f"{label}/{key}: not UTF-8; undecodable bytes shown as U+FFFD")
            out[shared(key)] = shared(value) if len(value) <= SHORT_VALUE else value
    finally:
        os.close(fd)
    return out


def _read_kv_folder(folder: str, warnings: list[str], label: str) -> dict[str, str]:
    """The values under ``folder`` by path (experiment tags)."""
    head, name = os.path.split(folder)
    try:
        pfd = os.open(head, O_RUNDIR)
    except OSError:
        return {}
    try:
        return _read_values(pfd, name, warnings, label, Sig())
    finally:
        os.close(pfd)


METRIC_STATE_MIN = 64 << 10
"""Metric files from this size on keep a :class:`MetricState` (read offset, witness bytes), so
an appended line is read without re-reading the file.  Smaller files are simply read again
when their run changes (a few microseconds), which keeps 80,000 states out of memory at 10k
runs."""


def _read_metrics_at(
    parent_fd: int, folder: str, run_dir: str, prev: Mapping[str, MetricState],
    metrics: dict[str, tuple[float, int, int]], states: dict[str, MetricState],
    warnings: list[str], sig: Sig, depth: int = 0, prefix: str = "",
) -> None:
    listed = _list_folder(parent_fd, folder, warnings, "metrics", depth, prefix)
    if listed is None:
        return
    fd, names = listed
    rel = "metrics/" + prefix
    small = min(METRIC_CHUNK, MAX_METRIC_LINE, METRIC_STATE_MIN)
    try:
        for name in names:
            key = prefix + name
            try:
                f = os.open(name, O_FILE, dir_fd=fd)
            except OSError as exc:
                if _unopened(fd, name, key, exc, warnings, "metrics", sig, rel):
                    _read_metrics_at(fd, name, run_dir, prev, metrics, states, warnings, sig,
                                     depth + 1, key + "/")
                continue
            data = None
            try:
                st = os.fstat(f)
                mode = st.st_mode & S_IFMT
                if mode == S_IFDIR:
                    pass
                elif mode != S_IFREG:
                    sig.add(rel + name, st)
                    warnings.append(f"metrics/{key}: not a regular file")
                    continue
                else:
                    sig.add(rel + name, st)
                    if st.st_size < small and key not in prev:
                        data = os.read(f, st.st_size + 1)
            except OSError as exc:
                warnings.append(f"metrics/{key}: {describe_oserror(exc)}")
                continue
            finally:
                os.close(f)
            if mode == S_IFDIR:
                link = link_stat(name, fd)
                if link is not None:
                    sig.add(rel + name, link)
                    warnings.append(f"metrics/{key}: symlink to a folder; not followed")
                else:
                    _read_metrics_at(fd, name, run_dir, prev, metrics, states, warnings, sig,
                                     depth + 1, key + "/")
                continue
            key = shared(key)
            if data is not None and len(data) <= st.st_size:
                latest, _used, bad = scan_latest(data)
                if bad:
                    warnings.extend(f"metrics/{key} {w}" for w in bad)
            else:
                state = _metric_state(os.path.join(run_dir, "metrics", key), key, st,
                                      prev.get(key), warnings)
                if state is None:
                    continue
                warnings.extend(state.warnings)
                latest = state.latest
                if st.st_size >= METRIC_STATE_MIN:
                    states[key] = state
            if latest is not None:
                metrics[key] = latest
            else:
                warnings.append(f"metrics/{key}: no complete line; metric left out")
    finally:
        os.close(fd)


def _metric_state(path: str, key: str, st: os.stat_result, old: MetricState | None,
                  warnings: list[str]) -> MetricState | None:
    # A state without its witness bytes came from a snapshot, which keeps neither them
    # nor the file's bad-line warnings: such a file is read once more, not trusted.
    if (old is not None and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns
            and (old.check or not old.consumed)):
        return old
    return _read_metric_file(path, key, st, old, warnings)


CHECK_BYTES = 64
"""Bytes before a metric file's read offset that must still be there for an append-only
read: a file rewritten in place (a ``git checkout`` of another branch, a copy over it) does
not pass, and is read again from the start."""


def _read_metric_file(
    path: str, key: str, st: os.stat_result, old: MetricState | None, warnings: list[str]
) -> MetricState | None:
    start = 0
    if (old is not None and old.consumed > 0 and st.st_size >= old.consumed
            and old.check and len(old.check) <= old.consumed):
        start = old.consumed  # maybe appended: read only the new bytes, if the old ones stayed
    try:
        fd = _open_regular(path)
    except OSError as exc:
        warnings.append(f"metrics/{key}: {describe_oserror(exc)}")
        return None
    try:
        if start:
            os.lseek(fd, start - len(old.check), os.SEEK_SET)  # type: ignore[union-attr]
            if os.read(fd, len(old.check)) != old.check:  # type: ignore[union-attr]
                start = 0
                os.lseek(fd, 0, os.SEEK_SET)
        latest, consumed, bad, lines, check = _scan_chunks(
            fd, st.st_size - start, key, old.lines + 1 if start and old and old.lines else 1)
    except OSError as exc:
        warnings.append(f"metrics/{key}: {describe_oserror(exc)}")
        return None
    finally:
        os.close(fd)
    bad_lines = list(old.warnings) if start and old is not None else []
    bad_lines.extend(bad)
    if start and old is not None and old.latest is not None:
        latest = old.latest if latest is None else _later(old.latest, latest)
    if start and old is not None:
        if consumed == 0:
            check = old.check
        lines = old.lines + lines if old.lines else 0
    return MetricState(st.st_size, st.st_mtime_ns, start + consumed, latest, bad_lines, lines,
                       check)


def _open_regular(path: str) -> int:
    """A descriptor on the regular file ``path`` (see :func:`metayaml.read_regular`)."""
    import stat as stat_mod

    from .metayaml import NotRegular

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(0, "not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _scan_chunks(
    fd: int, expected: int, key: str, first_line: int
) -> tuple[tuple[float, int, int] | None, int, list[str], int, bytes]:
    """Scan a metric file from its current position in bounded chunks (``expected``: the
    bytes ``fstat`` says are left).

    Returns (latest, bytes consumed, warnings, complete lines consumed, the last
    ``CHECK_BYTES`` consumed bytes).  A "line" longer than :data:`MAX_METRIC_LINE` is
    skipped with a warning, so no file costs more than a chunk and a line of memory.
    """
    latest: tuple[float, int, int] | None = None
    consumed = lines = 0
    warnings: list[str] = []
    carry = b""
    check = b""
    skipping = False
    while True:
        want = min(METRIC_CHUNK, max(expected + 1, 1 << 16))  # sized to the file, not the cap
        chunk = os.read(fd, want)
        expected -= len(chunk)
        last = len(chunk) < want  # a short read is the end (as one read() was)
        data = carry + chunk
        carry = b""
        if skipping:
            nl = data.find(b"\n")
            if nl < 0:
                consumed += len(data) if not last else 0
                if last:
                    return latest, consumed, warnings, lines, check
                continue
            skipping = False
            consumed += nl + 1
            lines += 1
            data = data[nl + 1:]
        if last:
            used_data, carry = data, b""
        else:
            end = data.rfind(b"\n") + 1
            if end == 0:
                if len(data) > MAX_METRIC_LINE:
                    warnings.append(f"metrics/{key} line {first_line + lines}: longer than "
                                    f"{MAX_METRIC_LINE} bytes; line skipped")
                    skipping = True
                    consumed += len(data)
                else:
                    carry = data
                continue
            used_data, carry = data[:end], data[end:]
        lt, used, bad = scan_latest(used_data, first_line + lines)
        if lt is not None:
            latest = lt if latest is None else _later(latest, lt)
        warnings.extend(f"metrics/{key} {w}" for w in bad)
        if used:
            lines += used_data.count(b"\n", 0, used)
            consumed += used
            check = (check + used_data[max(0, used - CHECK_BYTES):used])[-CHECK_BYTES:]
        if last:
            return latest, consumed, warnings, lines, check


def _later(a: tuple[float, int, int], b: tuple[float, int, int]) -> tuple[float, int, int]:
    # Same ordering as MLflow: by (step, timestamp, value); ties keep the first.
    return b if (b[2], b[1], b[0]) > (a[2], a[1], a[0]) else a


def _read_inputs(run_dir: str, warnings: list[str]) -> list[dict[str, object]]:
    inputs_dir = os.path.join(run_dir, "inputs")
    try:
        names = sorted(os.listdir(inputs_dir))
    except FileNotFoundError:
        return []
    except OSError as exc:
        if os.path.isdir(inputs_dir):
            warnings.append(f"inputs: cannot list ({exc.strerror or exc})")
        return []
    datasets_dir = os.path.join(os.path.dirname(run_dir), "datasets")
    out: list[dict[str, object]] = []
    for name in names:
        link, err = read_meta_file(os.path.join(inputs_dir, name, "meta.yaml"))
        if link is None:
            warnings.append(f"inputs/{name}/meta.yaml: {err}")
            continue
        if link.get("source_type") != "DATASET":
            continue
        source_id = link.get("source_id")
        if not isinstance(source_id, (str, int)) or isinstance(source_id, bool):
            warnings.append(f"inputs/{name}/meta.yaml: source_id is {_show(source_id)}")
            continue
        ds, err = read_meta_file(os.path.join(datasets_dir, str(source_id), "meta.yaml"))
        if ds is None:
            warnings.append(f"inputs/{name}: dataset {_show(source_id)} not found ({err})")
            continue
        label = f"datasets/{source_id}/meta.yaml"
        tags = link.get("tags") or {}
        out.append(
            {
                "name": _text(ds, "name", warnings, label) or "",
                "digest": _text(ds, "digest", warnings, label) or "",
                "source_type": _text(ds, "source_type", warnings, label) or "",
                "tags": {str(k): v for k, v in tags.items()
                         if isinstance(k, (str, int)) and isinstance(v, str)}
                if isinstance(tags, dict) else {},
            }
        )
    return out


def read_metric_history(run_dir: str, key: str) -> tuple[list[Point], int, list[str]]:
    """Every point of one metric, in file order, plus bytes consumed and warnings."""
    path = os.path.join(run_dir, "metrics", key)
    if not _inside(os.path.join(run_dir, "metrics"), path):
        return [], 0, [f"metric key {key!r} leaves the run folder"]
    try:
        data = read_regular(path)
    except FileNotFoundError:
        return [], 0, []
    except OSError as exc:
        return [], 0, [f"metrics/{key}: {describe_oserror(exc)}"]
    return parse_points(data)


def read_metric_tail(run_dir: str, key: str, offset: int) -> tuple[list[Point], int, list[str]]:
    """Points appended after byte ``offset``; (points, new offset, warnings)."""
    path = os.path.join(run_dir, "metrics", key)
    if not _inside(os.path.join(run_dir, "metrics"), path):
        return [], offset, [f"metric key {key!r} leaves the run folder"]
    try:
        data = read_regular(path, offset=offset)
    except OSError as exc:
        return [], offset, [f"metrics/{key}: {describe_oserror(exc)}"]
    points, consumed, warnings = parse_points(data)
    return points, offset + consumed, warnings


def _inside(folder: str, path: str) -> bool:
    folder = os.path.realpath(folder)
    return os.path.commonpath([folder, os.path.realpath(path)]) == folder
