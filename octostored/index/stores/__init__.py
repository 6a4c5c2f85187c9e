"""A root's stores as objects: one class per :attr:`StoreRef.kind`, one interface (:mod:`.base`).

A new store kind is one new module here with a :class:`~.base.Store` subclass, and its entry
in :data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...model import Run
from ...sources.discover import StoreRef
from .base import RESCAN, TAKEN, Delta, Store
from .file import FileStore
from .remote import RemoteStore, adopt_sidecar
from .sqlite import SqliteStore, stale_warning

KINDS: dict[str, type[Store]] = {cls.kind: cls for cls in (FileStore, SqliteStore, RemoteStore)}
"""Store classes by :attr:`StoreRef.kind`."""


def make_store(ref: StoreRef) -> Store:
    """A new store object for ``ref`` (KeyError for a kind no class reads)."""
    return KINDS[ref.kind](ref)


def store_for(stores: Mapping[str, Store], run: Run, kind: str) -> Store:
    """The store object that reads ``run``'s histories: its store's, or, when that store went
    away or changed kind meanwhile, a bare one of ``kind`` (a server's then says it is no
    longer a source; an unknown kind reads as a file store)."""
    st = stores.get(run.source)
    if st is not None and st.kind == kind:
        return st
    return KINDS.get(kind, FileStore)(StoreRef(kind, run.location, run.source))


__all__ = ["KINDS", "RESCAN", "TAKEN", "Delta", "FileStore", "RemoteStore", "SqliteStore",
           "Store", "adopt_sidecar", "make_store", "stale_warning", "store_for"]
