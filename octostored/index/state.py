"""The run index of one root: experiments, runs, and the clock.

Only :class:`octostored.index.root.Root`'s updater calls :meth:`RootIndex.apply`;
request handlers only read.  Every applied batch bumps ``tick`` once, stamps
the runs it changed with that tick and remembers removed runs as tombstones,
so "what changed since clock N" is a scan over runs, never a timestamp race.

A clock string names the daemon instance too (``c:<instance>:<tick>``): a clock
from another instance cannot be vouched for and gets ``is_fresh_instance``
and the full set (watchman's clock semantics).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..model import Experiment, Run
from .copies import snapshot

if TYPE_CHECKING:
    from .search import RunPage, RunQuery


def _search(index: RootIndex, q: RunQuery) -> RunPage:
    """Bound to :func:`.search.search` on first use (it imports the query engine)."""
    global _search
    from .search import search

    _search = search
    return search(index, q)

TOMBSTONE_LIMIT = 100_000
"""Removed-run records kept for ``since_clock`` answers; older ones force a fresh set."""
VIEW_CACHE = 32
"""Derived views (runs by a param's value, ...) kept until the index changes."""
ROW_CACHE = 4096
"""Shaped rows (``octostore/runs``'s encoded run rows) kept; the cache starts over when full."""


@dataclass(slots=True)
class SourceInfo:
    id: str
    kind: str
    path: str
    committed: bool = False
    runs: int = 0
    warnings: list[str] = field(default_factory=list)
    watching: str = "inotify"
    """"inotify", "polling" (watch limit reached) or "off"."""
    watch_warnings: list[str] = field(default_factory=list)
    """The watcher's own warnings (kept apart: a rescan replaces ``warnings``)."""


@dataclass(slots=True)
class Changes:
    """What one applied batch changed (the ``octostore/changed`` payload)."""

    clock: str
    runs: list[str]
    removed: list[str]
    experiments: list[str]
    environment: bool = False
    git: bool = False


class RootIndex:
    def __init__(self, root: str, instance: str) -> None:
        self.root = root
        self.instance = instance
        self.tick = 0
        self.runs: dict[str, Run] = {}
        self.experiments: dict[str, Experiment] = {}
        """By experiment key (see :func:`experiment_key`)."""
        self.removed: dict[str, int] = {}
        self.sources: dict[str, SourceInfo] = {}
        self.warnings: list[str] = []
        """Warnings of the last full scan (discovery, configuration)."""
        self.notes: dict[str, str] = {}
        """Standing warnings by topic ("snapshot", "watch", "updater"); a rescan keeps them."""
        self.state = "indexing"
        self.env_tick = 0
        self.git_tick = 0
        self.oldest_tick = 0
        """Ticks before this one have lost their tombstones: such clocks get a fresh set."""
        self.attr_tick = 0
        """Tick of the last change to which runs there are or to any run's attributes (name,
        status, times, lifecycle, experiment: not params, metrics or tags).  An ordering by
        attributes holds until it moves, while training loops log metrics many times a
        second (see :meth:`ordered_ids`)."""
        self._views: dict[tuple[str, ...], tuple[tuple[int, int, int], Any]] = {}
        self._orders: dict[Any, tuple[tuple[int, int], list[str]]] = {}
        self._rows: dict[str, tuple[Run, tuple[Any, ...], Any]] = {}
        self.head_runs: frozenset[str] | None = None
        """Ids of the runs in HEAD's tree (``gitops.git.head_run_ids``): a run is
        ``committed`` when it is there.  None (not a git repo, not asked yet): a run is
        committed when it was read from the committed store."""

    # -- clocks -----------------------------------------------------------------------
    def all_warnings(self) -> list[str]:
        return self.warnings + list(self.notes.values())

    @property
    def clock(self) -> str:
        return f"c:{self.instance}:{self.tick}"

    def parse_clock(self, clock: str | None) -> int | None:
        """The tick of a clock from this instance, or None when it cannot be vouched for."""
        if not clock or not isinstance(clock, str):
            return None
        prefix, _, tick = clock.rpartition(":")
        if prefix != f"c:{self.instance}" or not tick.isdigit():
            return None
        value = int(tick)
        if value > self.tick or value < self.oldest_tick:
            return None
        return value

    # -- mutation (updater only) --------------------------------------------------------
    def apply(
        self,
        runs: dict[str, Run],
        experiments: dict[str, Experiment],
        replace_sources: set[str] | None = None,
        *,
        removed: Mapping[str, Iterable[str]] | None = None,
        environment: bool = False,
        git: bool = False,
    ) -> Changes | None:
        """Apply a batch; return what changed, or None when nothing did.

        ``runs`` and ``experiments`` are merged (a run met in two sources is one
        run, see :func:`merge_runs`).  With ``replace_sources``, runs of those
        sources that are absent from ``runs`` are removed.  ``removed`` names runs
        that left a source (by source id) when only the changes of a source were
        read: a run leaves the index when it is in no source any more.
        """
        changed: list[str] = []
        gone: list[str] = []
        changed_exps: list[str] = []
        new_tick = self.tick + 1
        recount = False
        attrs = False
        for key, exp in experiments.items():
            old = self.experiments.get(key)
            if old != exp:
                self.experiments[key] = exp
                changed_exps.append(key)
        if replace_sources:
            for run_id, run in list(self.runs.items()):
                if run_id in runs:
                    continue
                remaining = [s for s in run.sources if s not in replace_sources]
                if len(remaining) == len(run.sources):
                    continue
                recount = True
                self._rows.pop(run_id, None)
                if not remaining:
                    del self.runs[run_id]
                    self.removed[run_id] = new_tick
                    gone.append(run_id)
                else:
                    run.sources = remaining  # still present elsewhere; next read refreshes
            for key, exp in list(self.experiments.items()):
                if exp.source in replace_sources and key not in experiments:
                    del self.experiments[key]
                    changed_exps.append(key)
        for sid, ids in (removed or {}).items():
            for run_id in ids:
                old = self.runs.get(run_id)
                if old is None or run_id in runs or sid not in old.sources:
                    continue
                recount = True
                self._rows.pop(run_id, None)
                remaining = [s for s in old.sources if s != sid]
                if not remaining:
                    del self.runs[run_id]
                    self.removed[run_id] = new_tick
                    gone.append(run_id)
                else:
                    old.sources = remaining
        for run_id, run in runs.items():
            old = self.runs.get(run_id)
            merged = merge_runs(old, run) if old is not None else run
            if self.head_runs is not None:
                merged.committed = run_id in self.head_runs
            if old is not None:
                merged.clock = old.clock
                if merged == old:
                    continue
                if merged.sources != old.sources:
                    recount = True
                if not attrs and _attributes(merged) != _attributes(old):
                    attrs = True
            else:
                recount = True
            merged.clock = new_tick
            self.runs[run_id] = merged
            self._rows.pop(run_id, None)
            self.removed.pop(run_id, None)
            changed.append(run_id)
        if not (changed or gone or changed_exps or environment or git):
            return None
        self.tick = new_tick
        if recount or attrs or gone or changed_exps:
            self.attr_tick = new_tick
        if environment:
            self.env_tick = new_tick
        if git:
            self.git_tick = new_tick
        if len(self.removed) > TOMBSTONE_LIMIT:
            cut = sorted(self.removed.values())[len(self.removed) // 2]
            self.removed = {k: t for k, t in self.removed.items() if t > cut}
            self.oldest_tick = cut + 1
        if recount:
            self._count_sources()
        return Changes(self.clock, changed, gone, changed_exps, environment, git)

    def set_head_runs(self, ids: frozenset[str] | None) -> Changes | None:
        """Make every run's ``committed`` follow HEAD's tree (after a checkout, a reset, a
        commit); the runs whose flag flips are changed at a new tick."""
        if ids is None or ids == self.head_runs:
            return None
        self.head_runs = ids
        flip = {}
        for run_id, run in self.runs.items():
            if run.committed != (run_id in ids):
                copy = dataclasses.replace(run)
                copy.committed = run_id in ids
                flip[run_id] = copy
        return self.apply(flip, {}) if flip else None

    def _count_sources(self) -> None:
        counts: dict[str, int] = {}
        for run in self.runs.values():
            for s in run.sources:
                counts[s] = counts.get(s, 0) + 1
        for sid, info in self.sources.items():
            info.runs = counts.get(sid, 0)

    # -- reads ----------------------------------------------------------------------
    def _cached(self, name: tuple[str, ...], build: Callable[[list[Run]], Any]) -> Any:
        """``build(runs)``, kept until the index changes (handlers run in threads: the runs
        are copied to a list first, and a stale entry only costs one more build)."""
        stamp = (self.tick, id(self.runs), len(self.runs))
        hit = self._views.get(name)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = build(snapshot(self.runs))
        if len(self._views) >= VIEW_CACHE:
            self._views.clear()
        self._views[name] = (stamp, value)
        return value

    def ordered_ids(self, name: Any, build: Callable[[], list[Run]]) -> list[str]:
        """Ids of ``build()`` (an ordering that reads only attributes), kept until
        :attr:`attr_tick` moves.  Ids, not runs: a run's record is replaced whenever a metric
        changes, so the caller looks the current records up."""
        stamp = (self.attr_tick, id(self.runs))
        hit = self._orders.get(name)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = [r.run_id for r in build()]
        if len(self._orders) >= VIEW_CACHE:
            self._orders.clear()
        self._orders[name] = (stamp, value)
        return value

    def runs_with(self, kind: str, key: str) -> dict[str, list[Run]]:
        """Runs by the value of one param (``kind`` "params") or tag ("tags"): an equality
        filter looks up its candidates here instead of testing every run."""
        def build(runs: list[Run]) -> dict[str, list[Run]]:
            out: dict[str, list[Run]] = {}
            for r in runs:
                v = getattr(r, kind).get(key)
                if v is not None:
                    got = out.get(v)
                    if got is None:
                        out[v] = [r]
                    else:
                        got.append(r)
            return out

        return self._cached((kind, key), build)  # type: ignore[no-any-return]

    def row(self, run: Run, make: Callable[[Run], Any]) -> Any:
        """``make(run)``, kept until the index changes that run.

        :meth:`apply` drops a changed run's entry; an entry also serves only the very
        same run object with the same clock, sources, committed flag, experiment key and
        warnings (the fields a store read may set on a run it reuses), so a run replaced
        or touched by any path is shaped again, never served stale.
        """
        ver = (run.clock, run.committed, run.experiment_key, len(run.warnings), *run.sources)
        hit = self._rows.get(run.run_id)
        if hit is not None and hit[0] is run and hit[1] == ver:
            return hit[2]
        value = make(run)
        if len(self._rows) >= ROW_CACHE:
            self._rows.clear()
        self._rows[run.run_id] = (run, ver, value)
        return value

    def reproductions(self, run_id: str) -> list[Run]:
        """Runs whose ``octostore.reproduces`` tag names ``run_id``."""
        return self.runs_with("tags", "octostore.reproduces").get(run_id, [])

    def changed_since(self, tick: int) -> tuple[list[Run], list[str]]:
        runs = [r for r in self.runs.values() if r.clock > tick]
        removed = [rid for rid, t in self.removed.items() if t > tick]
        return runs, removed

    def search(self, q: RunQuery) -> RunPage:
        """A page of runs (the main query: :mod:`.search`); safe in a worker thread."""
        return _search(self, q)

    def experiment_by_id(self, ident: str) -> list[Experiment]:
        """Experiments whose key or MLflow id is ``ident``."""
        exp = self.experiments.get(ident)
        if exp is not None:
            return [exp]
        return [e for e in snapshot(self.experiments) if e.experiment_id == ident]


def merge_runs(old: Run, new: Run) -> Run:
    """One run met in two sources: the live store wins over the committed copy.

    The result keeps every source the run was seen in and is ``committed`` when
    any of them is the committed store.
    """
    sources = list(dict.fromkeys([*old.sources, *new.sources]))
    if old.source != new.source and not new.committed and old.committed:
        primary = new
    elif old.source != new.source and new.committed and not old.committed:
        primary = old
    else:
        primary = new
    merged = Run(**{f: getattr(primary, f) for f in Run.__slots__})  # type: ignore[attr-defined]
    merged.sources = sources
    merged.committed = old.committed or new.committed
    return merged


def experiment_key(exp: Experiment, taken: dict[str, Experiment], committed: set[str]) -> str:
    """A key unique in the root for ``exp``.

    The key is MLflow's experiment id.  Two stores of one root often reuse an id
    (every store has a "Default" experiment 0); then the later store's
    experiment gets ``<id>@<store>``.  The one exception is octostore's
    committed store, which mirrors the live stores: an experiment there with
    the same id and name as a live one is the same experiment.
    """
    other = taken.get(exp.experiment_id)
    if other is None or other.source == exp.source:
        return exp.experiment_id
    if other.name == exp.name and (other.source in committed or exp.source in committed):
        return exp.experiment_id
    return f"{exp.experiment_id}@{exp.source}"


def _attributes(run: Run) -> tuple[Any, ...]:
    """What an attribute ordering or a view reads of a run (see ``RootIndex.attr_tick``)."""
    return (run.experiment_id, run.experiment_key, run.run_name, run.status,
            run.lifecycle_stage, run.start_time, run.end_time, run.user_id, run.artifact_uri,
            run.deleted_time)
