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

SNAP_PREFIX = ".snap-"
"""Temp files of snapshot writes: a killed daemon's leftovers are removed at start."""

FORMAT = 5
"""Bump when the layout of rows changes (5: one 8-byte signature digest per run).  A store's
row may gain keys without a bump (a server's ``remote_cursor``): older rows lack them."""

_LIST_FIELDS = tuple(i for i, f in enumerate(_RUN_FIELDS) if f in ("inputs", "warnings", "sources"))
"""Run fields that are lists (the snapshot is decoded with arrays as tuples: metric values
come out as the tuples runs hold, and only these few fields need a list back)."""


def save_snapshot(path: str, index: Any, stores: dict[str, Any]) -> None:
    """Write ``index`` and each store's read state (:meth:`Store.dump_state
    <octostored.index.stores.base.Store.dump_state>`) to ``path``, atomically."""
    # The stores' read states first: one taken before the index is packed is never newer
    # than it (a server's cursor, say, is set after its scan is applied).
    states = {sid: {"kind": st.ref.kind, "path": st.ref.path, **st.dump_state()}
              for sid, st in list(stores.items())}
    data = {
        "format": FORMAT,
        "root": index.root,
        "runs": [r.to_row() for r in list(index.runs.values())],
        "experiments": [e.to_row() for e in list(index.experiments.values())],
        "stores": states,
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
    """Fill ``index`` and ``stores`` from the snapshot; False when there is none usable.

    ``store_state(ref)`` makes a store object (:func:`~octostored.index.stores.make_store`),
    which takes its read state back from its row (``load_state``)."""
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
            load = getattr(state, "load_state", None)  # a bare holder takes the index only
            if load is not None:
                load(st)
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
