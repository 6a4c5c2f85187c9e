"""MLflow's ``order_by`` for runs: parsing, and one fast sort key.

This module owns run ordering.  MLflow's file store sorts by
``(-start_time, run_id)`` and then re-sorts stably once per ``order_by``
clause from last to first (``SearchUtils.sort``); its SQLite store emits
``ORDER BY`` with a presence/NaN rank per clause.  Both give the same order:

* each clause sorts present values ascending or descending; a NaN metric
  comes after every number and a missing key (or ``None`` attribute) after
  that, in either direction;
* ties fall to the next clause, then to ``start_time`` descending (runs
  without a start time last), then ``run_id`` ascending.

Instead of k+1 sorts we build one composite key per run so a single
``sorted`` (or ``heapq.nsmallest`` for a small page) does the job.  A
descending *string* clause cannot be negated, so its values are replaced by
their negated rank among the values present in the runs being sorted.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..model import Run
from .errors import FilterError, FilterTooLarge
from .lexer import KW, read_identifier, snippet, tokenize
from .parse import ATTR, DATASET, METRIC, NUMERIC_ATTRS, PARAM, TAG, resolve_key

_DICT = {METRIC: "metrics", PARAM: "params", TAG: "tags"}


@dataclass(frozen=True, slots=True)
class OrderClause:
    kind: str  # METRIC, PARAM, TAG or ATTR
    key: str  # alias-translated key or Run attribute name
    ascending: bool

    @property
    def ranked(self) -> bool:
        """True when descending values are strings (sorted by negated rank)."""
        numeric = self.kind == METRIC or (self.kind == ATTR and self.key in NUMERIC_ATTRS)
        return not self.ascending and not numeric


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """A parsed ``order_by`` list; build with :func:`parse_order_by`."""

    clauses: tuple[OrderClause, ...] = ()
    _factory: Callable[..., Callable[[Run], tuple[Any, ...]]] = field(
        default=None, repr=False, compare=False  # type: ignore[assignment]
    )

    @property
    def attributes_only(self) -> bool:
        """True when the order reads only run attributes (the default order does)."""
        return all(c.kind == ATTR for c in self.clauses)

    def __post_init__(self) -> None:
        if self._factory is None:  # compile the key function once per spec
            object.__setattr__(self, "_factory", _compile_key_factory(self.clauses))

    def key_function(self, runs: list[Run]) -> Callable[[Run], tuple[Any, ...]]:
        """The sort key for these runs (ranks depend on the values present)."""
        ranks = []
        for cl in self.clauses:
            if cl.ranked:
                values = sorted({v for r in runs if (v := _value(r, cl)) is not None})
                ranks.append({v: i for i, v in enumerate(values)})
        return self._factory(*ranks)


def _value(run: Run, cl: OrderClause) -> Any:
    if cl.kind == ATTR:
        return getattr(run, cl.key)
    got = getattr(run, _DICT[cl.kind]).get(cl.key)
    return got[0] if cl.kind == METRIC and got is not None else got


def _parse_one(text: str) -> OrderClause:
    toks = tokenize(text)
    ident = read_identifier(text, toks, 0) if toks else None
    if ident is None:
        raise FilterError(
            f"bad order_by {text!r}: expected a key and an optional ASC or DESC; "
            "example: metrics.rmse DESC"
        )
    raw, j = ident
    ascending = True
    if j < len(toks) and toks[j].kind == KW and toks[j].upper in ("ASC", "DESC"):
        ascending = toks[j].upper == "ASC"
        j += 1
    if j < len(toks):
        raise FilterError(
            f"bad order_by {text!r}: unexpected {snippet(text, toks[j].start)!r}; write one key "
            "per list item with an optional ASC or DESC, e.g. ['metrics.rmse DESC', 'params.lr']"
        )
    kind, key = resolve_key(raw, text, 0, for_order=True)
    if kind == DATASET:
        raise FilterError(
            f"bad order_by {text!r}: runs cannot be ordered by datasets; order by a metric, "
            "param, tag or attribute, e.g. attributes.start_time DESC"
        )
    return OrderClause(kind, key, ascending)


def _clause_code(i: int, cl: OrderClause) -> list[str]:
    """Statements setting ``a{i}`` (0 present, 1 NaN, 2 missing) and ``b{i}``."""
    if cl.kind == ATTR:
        get = f"v = r.{cl.key}"
    elif cl.kind == METRIC:
        get = "v = r.metrics.get(%r)\n    if v is not None: v = v[0]" % cl.key
    else:
        get = f"v = r.{_DICT[cl.kind]}.get({cl.key!r})"
    if cl.ranked:
        present = f"-rank{i}[v]"
    elif cl.ascending:
        present = "v"
    else:
        present = "-v"
    # Only floats can be NaN; v != v is the cheap NaN test.
    nan = f"\n    elif v != v: a{i} = 1; b{i} = 0" if cl.kind in (METRIC, ATTR) else ""
    return [
        get,
        f"if v is None: a{i} = 2; b{i} = 0{nan}\n    else: a{i} = 0; b{i} = {present}",
    ]


KeyFunction = Callable[[Run], tuple[Any, ...]]


def _compile_key_factory(clauses: tuple[OrderClause, ...]) -> Callable[..., KeyFunction]:
    lines: list[str] = []
    parts: list[str] = []
    for i, cl in enumerate(clauses):
        lines += _clause_code(i, cl)
        parts += [f"a{i}", f"b{i}"]
    # Default tie-break: start_time DESC with missing last, then run_id ASC.
    lines.append("s = r.start_time")
    parts += ["s is None", "-(s or 0)", "r.run_id"]
    ranks = ", ".join(f"rank{i}" for i, cl in enumerate(clauses) if cl.ranked)
    body = "\n    ".join(lines)
    source = (
        f"def _make({ranks}):\n"
        f"  def key(r):\n"
        f"    {body}\n"
        f"    return ({', '.join(parts)},)\n"
        f"  return key\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "<octostore order_by>", "exec"), namespace)  # noqa: S102 - own source
    return namespace["_make"]  # type: ignore[no-any-return]


@lru_cache(maxsize=256)
def _parse_cached(order_by: tuple[str, ...]) -> OrderSpec:
    clauses = tuple(_parse_one(s.strip()) for s in order_by)
    # MLflow's SQL store rejects a key given twice; its file store accepts it
    # (the first occurrence wins).  We follow the file store.
    return OrderSpec(clauses)


MAX_ORDER_BY = 4 * 1024
"""Characters all items of an order_by may have together."""
MAX_ORDER_ITEMS = 100


def parse_order_by(order_by: list[str] | None) -> OrderSpec:
    """Parse MLflow ``order_by`` strings ('metrics.rmse DESC', 'params.lr', ...)."""
    if isinstance(order_by, str):
        raise FilterError(
            f"bad order_by {order_by!r}: order_by is a list of strings; "
            f"example: [{order_by!r}]"
        )
    if order_by and (len(order_by) > MAX_ORDER_ITEMS or sum(map(len, order_by)) > MAX_ORDER_BY):
        raise FilterTooLarge(f"order_by has more than {MAX_ORDER_ITEMS} items or "
                             f"{MAX_ORDER_BY} characters; sort by fewer keys")
    return _parse_cached(tuple(order_by or ()))


def sort_runs(
    runs: Iterable[Run], order: OrderSpec, limit: int | None = None, offset: int = 0
) -> list[Run]:
    """Runs in MLflow order, then ``[offset : offset + limit]``."""
    runs = runs if isinstance(runs, list) else list(runs)
    offset = max(offset, 0)
    if limit is None:
        key = order.key_function(runs)
        return sorted(runs, key=key)[offset:] if offset else sorted(runs, key=key)
    want = offset + max(limit, 0)
    if want == 0:
        return []
    if want * 4 < len(runs):
        runs = _first_clause_cut(runs, order, want)
    if want * 8 < len(runs):
        # A small page: a bounded heap is O(n log k) against O(n log n), and
        # nsmallest is stable, so ties keep the same order as sorted().
        return heapq.nsmallest(want, runs, key=order.key_function(runs))[offset:]
    return sorted(runs, key=order.key_function(runs))[offset:want]


_START_DESC = OrderClause(ATTR, "start_time", False)
"""The default order's first key (runs without a start time last)."""


def _first_clause_cut(runs: list[Run], order: OrderSpec, want: int) -> list[Run]:
    """The runs that can be among the first ``want``: those whose first sort value is at
    least as good as the ``want``-th best present value (ties kept), or all of ``runs``
    when fewer than ``want`` have a value.  Only this short list gets the full key."""
    cl = order.clauses[0] if order.clauses else _START_DESC
    if cl.kind == ATTR:
        vals = [getattr(r, cl.key) for r in runs]
    elif cl.kind == METRIC:
        key = cl.key
        vals = [m[0] if (m := r.metrics.get(key)) is not None else None for r in runs]
    else:
        key = cl.key
        d = _DICT[cl.kind]
        vals = [getattr(r, d).get(key) for r in runs]
    present = [v for v in vals if v is not None and v == v]  # neither missing nor NaN
    if len(present) < want:
        return runs
    present.sort(reverse=not cl.ascending)
    t = present[want - 1]
    if cl.ascending:
        return [r for r, v in zip(runs, vals) if v is not None and v <= t]
    return [r for r, v in zip(runs, vals) if v is not None and v >= t]
