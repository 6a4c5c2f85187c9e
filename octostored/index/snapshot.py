"""The per-root msgpack snapshot: the index and each store's read state.

Written atomically (temp file, fsync, rename) by the root's updater; loaded on
open so a restarted daemon answers at once and re-reads only what changed.  A
snapshot that cannot be read, or that another format version wrote, is
discarded: it is a cache, never the truth.
"""

from __future__ import annotations

import gc
import os
from typing import Any

import msgpack

from ..atomicfile import atomic_write
from ..model import _RUN_FIELDS, Experiment, Run
from ..sources.filestore import NO_STATES, MetricState, RunState

SNAP_PREFIX = ".snap-"
"""Temp files of snapshot writes (and the remote cursors beside them): a killed daemon's
leftovers are removed at start."""

FORMAT = 5
"""Bump when the layout of rows changes (5: one 8-byte signature digest per run)."""

_LIST_FIELDS = tuple(i for i, f in enumerate(_RUN_FIELDS) if f in ("inputs", "warnings", "sources"))
"""Run fields that are lists (the snapshot is decoded with arrays as tuples: metric values
come out as the tuples runs hold, and only these few fields need a list back)."""


def save_snapshot(path: str, index: Any, stores: dict[str, Any]) -> None:
    data = {
        "format": FORMAT,
        "root": index.root,
        "runs": [r.to_row() for r in list(index.runs.values())],
        "experiments": [e.to_row() for e in list(index.experiments.values())],
        "stores": {
            sid: {
                "kind": st.ref.kind,
                "path": st.ref.path,
                "runs": {rid: _state_row(rs) for rid, rs in list(st.runs.items())},
                "cursor": _cursor_row(st.cursor),
            }
            for sid, st in list(stores.items())
        },
    }
    blob = msgpack.packb(data, use_bin_type=True)
    atomic_write(path, blob, 0o600, prefix=SNAP_PREFIX, fsync=True, folder_mode=0o700)


def remove_leftovers(folder: str) -> None:
    """Delete temp files of snapshot writes that a killed daemon left half-written."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.startswith(SNAP_PREFIX):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def load_snapshot(path: str, index: Any, stores: dict[str, Any], store_state: Any) -> bool:
    """Fill ``index`` and ``stores`` from the snapshot; False when there is none usable."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError:
        return False
    gc.disable()  # decoding is mostly allocation: 30-40% faster without GC passes
    try:
        data = msgpack.unpackb(blob, raw=False, strict_map_key=False, use_list=False)
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("root") != index.root:
            raise ValueError("other format or root")
        runs = {}
        for row in data["runs"]:
            row = list(row)
            for i in _LIST_FIELDS:
                row[i] = list(row[i])
            run = Run(*row)
            run.clock = 0
            runs[run.run_id] = run
        exps = {}
        for row in data["experiments"]:
            exp = Experiment(*row)
            exp.warnings = list(exp.warnings)
            exps[exp.key or exp.experiment_id] = exp
        from ..sources.discover import StoreRef

        loaded_stores = {}
        for sid, st in data["stores"].items():
            state = store_state(StoreRef(st["kind"], st["path"], sid))
            for rid, row in st["runs"].items():
                state.runs[rid] = _state_from_row(row)
            state.cursor = _cursor_from_row(st.get("cursor"))
            loaded_stores[sid] = state
    except Exception:  # a corrupt snapshot is discarded, not fatal
        try:
            os.unlink(path)
        except OSError:
            pass
        return False
    finally:
        gc.enable()
    index.runs = runs
    index.experiments = exps
    stores.update(loaded_stores)
    gc.freeze()  # the loaded records live long: keep them out of future collections
    return True


def _state_row(rs: RunState) -> Any:
    """A file-store run's read state: its signature digest, plus its large metric files'."""
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


def _cursor_row(cursor: Any) -> Any:
    return None if cursor is None else cursor.to_row()


def _cursor_from_row(row: Any) -> Any:
    if not row:
        return None
    from ..sources.sqlitestore import SqliteCursor

    return SqliteCursor.from_row(row)
