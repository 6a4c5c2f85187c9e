"""The main query of the index: a page of runs for ``octostore/runs`` (:meth:`RootIndex.search`).

The plan: a listing with no filter that orders only by attributes (the TUI's grid, the
editor's tree) is a slice of an ordering kept until an attribute changes; a filter with an
equality on a param or tag looks its candidates up (:meth:`RootIndex.runs_with`) instead of
testing every run; ``since`` gives the runs changed after a clock and the ids removed since;
anything else is :func:`octostored.query.search_page` over the runs.

It runs in a worker thread while the updater changes the index on the event loop, so it reads
the index's dicts only through C-level copies (``list(d.values())``, ``list(d.items())``:
one call under the GIL, never torn by a concurrent insert) and never iterates them in Python.
Run records are replaced, not changed, so a copied list of them is a consistent view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..query import (  # noqa: F401 - the handler takes the errors and caps from here
    MAX_FILTER,
    MAX_ORDER_BY,
    FilterError,
    FilterTooLarge,
    parse_order_by,
    search_page,
)
from .copies import snapshot

if TYPE_CHECKING:
    from ..model import Run
    from .state import RootIndex


class UnknownExperiment(LookupError):
    """An experiment id or name the index does not hold (``str(exc)`` is the ident)."""


@dataclass(slots=True)
class RunQuery:
    experiment_ids: tuple[str, ...] = ()
    view: str = "active"
    filter: str | None = None
    order_by: tuple[str, ...] = ()
    offset: int = 0
    limit: int = 1000
    since: str | None = None
    """A clock from an earlier answer: only runs changed after it, and the ids removed."""


@dataclass(slots=True)
class RunPage:
    clock: str
    fresh: bool
    """False when ``since`` was understood (the page holds only what changed)."""
    total: int
    runs: list[Run]
    removed: list[str]


def experiment_runs(index: RootIndex, ids: tuple[str, ...]) -> list[Run]:
    """The runs of the experiments ``ids`` (keys, MLflow ids or names; all when empty)."""
    runs = snapshot(index.runs)
    if not ids:
        return runs
    experiments = snapshot(index.experiments)
    keys: set[str] = set()
    for ident in ids:
        exps = index.experiment_by_id(ident) or [e for e in experiments if e.name == ident]
        if not exps:
            raise UnknownExperiment(ident)
        keys.update(e.key or e.experiment_id for e in exps)
    return [r for r in runs if (r.experiment_key or r.experiment_id) in keys]


def search(index: RootIndex, q: RunQuery) -> RunPage:
    """The page ``q`` asks for.  Raises :class:`UnknownExperiment` and the query's own
    ``FilterError``/``FilterTooLarge`` for a filter MLflow would refuse."""
    clock = index.clock
    ids = q.experiment_ids
    order_by = list(q.order_by) or None
    if q.since is not None:
        # Changes since an earlier answer; a clock of another daemon or of nothing we know
        # gives every run (fresh).
        tick = index.parse_clock(q.since)
        runs = experiment_runs(index, ids)
        removed: list[str] = []
        if tick is not None:
            runs = [r for r in runs if r.clock > tick]
            removed = [rid for rid, t in snapshot(index.removed, items=True) if t > tick]
        total, page = search_page(runs, q.filter, order_by, q.view, q.limit, q.offset)
        return RunPage(clock, tick is None, total, page, removed)
    if not q.filter and parse_order_by(order_by).attributes_only:
        # A listing page: the whole ordering is kept while only metrics, params and tags
        # change, and a page is a slice of it.
        order = index.ordered_ids(
            ("order", q.order_by, q.view, ids),
            lambda: search_page(experiment_runs(index, ids), None, order_by, q.view)[1])
        current = index.runs
        page = [r for rid in order[q.offset:q.offset + q.limit]
                if (r := current.get(rid)) is not None]
        return RunPage(clock, True, len(order), page, [])
    # All of the index's runs: an equality on a param or tag looks its candidates up, and
    # then the copy of every run is not needed.
    lookup: Any = index.runs_with if not ids else None
    runs_: Any = (lambda: experiment_runs(index, ids)) if lookup else experiment_runs(index, ids)
    total, page = search_page(runs_, q.filter, order_by, q.view, q.limit, q.offset, lookup)
    return RunPage(clock, True, total, page, [])
