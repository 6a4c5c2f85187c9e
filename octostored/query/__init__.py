"""MLflow run search (filter_string, order_by, view, paging) without MLflow.

The daemon answers ``search_runs``-style queries from its index, so this
package reimplements MLflow 3.17's run search semantics in the standard
library: ``compile_filter`` (``filter.py``, parsing in ``parse.py`` and
``lexer.py``) and ``parse_order_by``/``sort_runs`` (``order.py``).
``tests/test_query_mlflow_agreement.py`` checks the results against real
MLflow on both a file store and a SQLite store.

Where MLflow's two backends disagree we follow the file store
(``SearchUtils.filter``/``SearchUtils.sort``), which is what these tests
assert:

* ``ILIKE`` with non-ASCII letters: the file store folds case with Python's
  ``re.IGNORECASE`` ('élan' ILIKE 'ÉLAN' matches); SQLite's ``lower()`` only
  folds ASCII, so the SQLite store does not match.
* A metric logged as +/-inf: the SQLite store saves it as +/-1.797e308 and
  returns that number, the file store keeps inf.  Filters compare whatever
  value the ``Run`` holds, so they agree with each store about its own runs.
* ``order_by`` naming the same key twice: the SQLite store raises, the file
  store sorts by the first occurrence; we do the latter.
* ``attributes.run_name``: the SQLite store filters on the ``mlflow.runName``
  tag, the file store on the run's name; we use ``Run.run_name``.
* LIKE on values containing a newline: the file store's regex ('.' does not
  match a newline) against SQL's LIKE (which does); we keep the regex.

Where we knowingly differ from both (stricter or clearer, never looser about
meaning): a list value with ``=``, ``!=``, ``LIKE`` or ``ILIKE``
(``attributes.run_id = ('a', 'b')``) is a FilterError, where MLflow
matches nothing or crashes; comparators are checked even when there are no
runs (the file store only checks them per run); ``IS  NOT   NULL`` may use
any spacing; an ``order_by`` item may have surrounding spaces; two
conditions side by side without ``AND`` are a FilterError (MLflow reads
some such strings as two conditions and others as one condition on a
nonsense key such as ``y ilike a created``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..model import Run
from .errors import FilterError, FilterTooLarge
from .filter import CompiledFilter, compile_filter, compile_filter_without
from .order import MAX_ORDER_BY, OrderClause, OrderSpec, parse_order_by, sort_runs
from .parse import MAX_CLAUSES, MAX_FILTER, PARAM, TAG

__all__ = [
    "CompiledFilter",
    "FilterError",
    "FilterTooLarge",
    "MAX_CLAUSES",
    "MAX_FILTER",
    "MAX_ORDER_BY",
    "OrderClause",
    "OrderSpec",
    "compile_filter",
    "parse_order_by",
    "search",
    "sort_runs",
]

_VIEWS = {
    "active": "active",
    "active_only": "active",
    "deleted": "deleted",
    "deleted_only": "deleted",
    "all": None,
    1: "active",  # MLflow's ViewType.ACTIVE_ONLY, DELETED_ONLY, ALL
    2: "deleted",
    3: None,
}


def search(
    runs: Iterable[Run],
    filter_string: str | None = None,
    order_by: list[str] | None = None,
    view: str | int = "active",
    max_results: int | None = None,
    offset: int = 0,
) -> list[Run]:
    """MLflow's ``search_runs`` over ``runs``: view, filter, order, then page.

    ``view`` is "active", "deleted" or "all"; MLflow's ViewType names
    ("ACTIVE_ONLY", ...) and values (1, 2, 3) work too.  Raises FilterError
    for anything MLflow rejects.
    """
    try:
        stage = _VIEWS[view.lower() if isinstance(view, str) else view]
    except (KeyError, TypeError):
        raise FilterError(
            f"bad view {view!r}: use 'active', 'deleted' or 'all'"
        ) from None
    return search_page(runs, filter_string, order_by, view, max_results, offset)[1]


def search_page(
    runs: Iterable[Run] | Callable[[], Iterable[Run]],
    filter_string: str | None = None,
    order_by: list[str] | None = None,
    view: str | int = "active",
    limit: int | None = None,
    offset: int = 0,
    lookup: Callable[[str, str], dict[str, list[Run]]] | None = None,
) -> tuple[int, list[Run]]:
    """Like :func:`search`, plus the number of matching runs before paging.

    Only the page is sorted in full (a heap picks it), so a page of 100 out
    of 10,000 hits costs a heap pass, not a sort.  ``lookup(kind, key)``, when
    ``runs`` are all of an index's runs, gives them by the value of a param or
    tag (:meth:`RootIndex.runs_with`): a filter with an equality on one then
    tests only the runs that have that value, and not that equality again.  ``runs`` may
    be a function giving them, called only when no lookup answers (a copy of 10,000 runs
    costs more than the rest of a selective query).
    """
    try:
        stage = _VIEWS[view.lower() if isinstance(view, str) else view]
    except (KeyError, TypeError):
        raise FilterError(
            f"bad view {view!r}: use 'active', 'deleted' or 'all'"
        ) from None
    pred = compile_filter(filter_string)
    order = parse_order_by(order_by)
    if lookup is not None:
        eq = next((i for i, c in enumerate(pred.clauses) if c.kind in (PARAM, TAG)
                   and c.comparator == "=" and isinstance(c.value, str)), None)
        if eq is not None:
            c = pred.clauses[eq]
            runs = lookup("params" if c.kind == PARAM else "tags", c.key).get(c.value, [])
            pred = compile_filter_without(filter_string, eq)  # the lookup answered that one
    if callable(runs):
        runs = runs()
    hits = pred.select(runs) if stage is None else pred.select_stage(runs, stage)
    return len(hits), sort_runs(hits, order, limit=limit, offset=offset)
