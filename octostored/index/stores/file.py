"""An MLflow file store (``mlruns/``, and octostore's committed mirror ``.octostore/runs``).

Its read state is one :class:`~octostored.sources.filestore.RunState` per run (the file
signature and the metric files' offsets), so a verify re-reads only runs whose files changed.
The committed mirror is a file store whose ref is ``committed``: the merge lets a live store's
record win over it (:func:`~octostored.index.state.merge_runs`).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from ...model import Experiment, Run
from ...sources import filestore
from ...sources.filestore import NO_STATES, MetricState, RunState
from .base import RESCAN, TAKEN, Delta, Store

if TYPE_CHECKING:
    from ...sources.discover import StoreRef
    from ..history import HistoryCache
    from ..state import RootIndex

_UNREAD_FOLDERS = ("datasets", "models", "traces")
"""Experiment folders whose changes need no read (MLflow 3's logged models, traces)."""


class FileStore(Store):
    kind = "file"

    def __init__(self, ref: StoreRef) -> None:
        super().__init__(ref)
        self.runs: dict[str, RunState] = {}
        """Per run folder: its signature and metric offsets."""

    def full_scan(self, index: RootIndex) -> tuple[list[Run], list[Experiment], list[str]]:
        ref = self.ref
        reuse = {rid: r for rid, r in index.runs.items() if r.source == ref.id}
        scan = filestore.scan_store(ref.path, ref.id, self.runs, reuse=reuse)
        self.runs = scan.states
        self.stamp(scan.runs)
        self.last_read = time.time()
        return scan.runs, scan.experiments, scan.warnings

    def route(self, path: str) -> Any:
        root = self.ref.path
        if not path.startswith(root + os.sep):
            return None
        parts = os.path.relpath(path, root).split(os.sep)
        if parts[0] == filestore.TRASH:
            parts = parts[1:]
            base = os.path.join(root, filestore.TRASH)
        else:
            base = root
        if len(parts) < 2 or parts[1] == "meta.yaml" or parts[1] in (
            filestore.RESERVED_EXPERIMENT_FOLDERS
        ):
            if len(parts) >= 2 and parts[1] in _UNREAD_FOLDERS:
                return TAKEN
            return RESCAN  # an experiment changed: re-list the store
        return os.path.join(base, parts[0], parts[1])

    def read_changed(self, items: set[str], index: RootIndex) -> Delta:
        """The runs of these run folders (a folder gone, or not a run, is left out)."""
        self.last_read = time.time()
        sid, root = self.ref.id, self.ref.path
        runs: list[Run] = []
        exps: list[Experiment] = []
        for run_dir in items:
            exp_dir = os.path.dirname(run_dir)
            label = os.path.relpath(exp_dir, root)
            exp = filestore.read_experiment(exp_dir, label.replace(os.sep, "/"), sid)
            if exp is None or not os.path.isdir(run_dir):
                continue
            rid = os.path.basename(run_dir)
            run, state = filestore.read_run(run_dir, exp, sid, self.runs.get(rid))
            if run is None:
                continue
            run.sources = [sid]
            run.committed = self.ref.committed
            self.runs[run.run_id] = state
            runs.append(run)
            exps.append(exp)
        return Delta(runs, exps, expected=[os.path.basename(d) for d in items])

    def watch_paths(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (self.ref.path,), ()

    def metric_history(self, run: Run, key: str,
                       cache: HistoryCache) -> tuple[list[Any], list[str]]:
        return cache.file_history(run, key)

    def dump_state(self) -> dict[str, Any]:
        return {"runs": {rid: _state_row(rs) for rid, rs in list(self.runs.items())},
                "cursor": None}

    def load_state(self, row: dict[str, Any]) -> None:
        for rid, r in row["runs"].items():
            self.runs[rid] = _state_from_row(r)


def _state_row(rs: RunState) -> Any:
    """A run's read state: its signature digest, plus its large metric files'."""
    if not rs.metrics:
        return rs.signature
    return [rs.signature, {k: [m.size, m.mtime_ns, m.consumed, m.latest]
                           for k, m in rs.metrics.items()}]


def _state_from_row(row: Any) -> RunState:
    if isinstance(row, bytes):
        return RunState(row, NO_STATES)
    sig, metrics = row
    return RunState(sig, {k: MetricState(m[0], m[1], m[2], m[3] or None)
                          for k, m in metrics.items()})
