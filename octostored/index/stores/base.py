"""What a root asks of one of its stores, whatever its kind.

A store object wraps one of the pure readers of :mod:`octostored.sources` and keeps that
store's read state (a file store's per-run signatures, a SQLite store's change cursor, a
server's runs as of its last applied scan and its source).  The root's updater asks it to
read all of it (:meth:`Store.full_scan`), to read what changed under some paths
(:meth:`Store.route`, then :meth:`Store.read_changed`), what to watch, a metric's history,
and its part of the snapshot; a store that reads itself (a tracking server) pushes its reads
to the updater's queue between :meth:`Store.start` and :meth:`Store.stop`.

Reads run in a worker thread and return fresh records stamped with the store (``sources``,
``committed``); only the updater applies them to the index, on the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ...model import Experiment, Run

if TYPE_CHECKING:
    import asyncio

    from ...sources.discover import StoreRef
    from ..history import HistoryCache
    from ..state import RootIndex


class _Rescan:
    def __repr__(self) -> str:
        return "RESCAN"


RESCAN: Any = _Rescan()
"""What :meth:`Store.route` says of a path that changes the store's shape (an experiment, the
database itself gone): re-discover and re-read everything."""
TAKEN = ""
"""What :meth:`Store.route` says of a path of the store that needs no read."""


@dataclass(slots=True)
class Delta:
    """What one read of a store's changes found."""

    runs: list[Run] = field(default_factory=list)
    experiments: list[Experiment] = field(default_factory=list)
    full: bool = False
    """``runs`` are all of the store's runs: the store's other runs leave the index."""
    removed: list[str] = field(default_factory=list)
    """Ids of runs that left the store (when only the changes were read)."""
    warnings: list[str] | None = None
    """The store's new warnings; None when the read says nothing new about them."""
    expected: list[str] = field(default_factory=list)
    """Ids of runs that were asked for: one missing from every store's ``runs`` vanished, and
    the root re-lists its stores."""
    cursor: Any = None
    """The read state to keep once the changes are applied (see :meth:`Store.applied`)."""


class Store:
    """One store of a root.  Subclasses set :attr:`kind` and override what differs."""

    kind: ClassVar[str] = ""
    """The :attr:`StoreRef.kind <octostored.sources.discover.StoreRef.kind>` it reads."""
    watched: ClassVar[bool] = True
    """Whether the root's watcher reports its changes (a server is polled by its source)."""
    note: str | None = None
    """A standing problem of the store (a server that cannot be reached), shown on the root."""

    def __init__(self, ref: StoreRef) -> None:
        self.ref = ref
        self.warnings: list[str] = []
        """The warnings of the last read that learned something."""
        self.last_read: float | None = None
        """Wall clock of the last read of the store (a server: of the last applied scan)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.ref.id!r})"

    @property
    def note_key(self) -> str:
        """The key of the store's standing problem in ``RootIndex.notes``."""
        return f"{self.kind} {self.ref.id}"

    def stamp(self, runs: list[Run]) -> None:
        """Mark ``runs`` as read from this store (and only from it: the merge adds others)."""
        sid, committed = self.ref.id, self.ref.committed
        for run in runs:
            run.sources = [sid]
            run.committed = committed

    # -- reading (in a worker thread) ---------------------------------------------------------
    def full_scan(self, index: RootIndex) -> tuple[list[Run], list[Experiment], list[str]]:
        """Every run and experiment of the store, and its warnings (reading only what changed
        when the read state allows it).  ``index`` is read, never written."""
        raise NotImplementedError

    def route(self, path: str) -> Any:
        """What a changed ``path`` means to this store: None when it is not the store's,
        :data:`RESCAN`, :data:`TAKEN`, or an item for :meth:`read_changed` (a run folder)."""
        return None

    def read_changed(self, items: set[str], index: RootIndex) -> Delta:
        """What changed in the store under ``items`` (what :meth:`route` gave)."""
        return Delta()

    def lingers(self) -> bool:
        """Whether the store stays when discovery no longer finds it (its runs then are its
        last known state)."""
        return False

    # -- watching ------------------------------------------------------------------------------
    def watch_paths(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(folders to watch recursively, folders to watch without their subfolders)."""
        return (), ()

    # -- metric histories (in a worker thread) ------------------------------------------------
    def metric_history(self, run: Run, key: str,
                       cache: HistoryCache) -> tuple[list[Any], list[str]]:
        """The full history of ``key`` in ``run`` (timestamp, value, step), and warnings."""
        return [], []

    # -- snapshot ------------------------------------------------------------------------------
    def dump_state(self) -> dict[str, Any]:
        """The store's read state for the snapshot row (plain msgpack types).  Every row keeps
        ``runs`` and ``cursor`` (the layout of snapshot format 5)."""
        return {"runs": {}, "cursor": None}

    def load_state(self, row: dict[str, Any]) -> None:
        """Take back what :meth:`dump_state` wrote (``row`` is decoded with tuples)."""

    def restored(self, index: RootIndex) -> None:
        """The snapshot's index is loaded: take from it what the store keeps of its own."""

    # -- a store that reads itself (a tracking server) -----------------------------------------
    async def start(self, root: str, folder: str,
                    deliver: Callable[[Store, Any], None]) -> None:
        """Start reading; each read goes to ``deliver(self, payload)`` (the updater's queue),
        which hands it back to :meth:`take`.  ``folder`` is the store's own cache folder,
        ``root`` the root's path."""

    async def stop(self) -> None:
        """Stop reading (the store may be started again)."""

    def request_sync(self) -> asyncio.Future[Any] | None:
        """Ask for a read now; a future done once it is delivered (None: nothing to ask)."""
        return None

    def take(self, payload: Any, index: RootIndex) -> Delta | None:
        """A delivered read as the changes to apply; None when it is out of date (its source
        was remade).  A failed read sets :attr:`note` (and gives nothing to apply); a good
        one clears it."""
        return None

    def applied(self, delta: Delta) -> None:
        """The updater applied what :meth:`take` returned (the index holds its runs now)."""

    def status(self, out: dict[str, Any]) -> None:
        """Add the store's own state to its ``octostore/status`` entry."""
