"""Compile parsed filter clauses into fast Python predicates over ``Run``.

This module owns evaluation: given the clauses from ``parse.py`` it writes
the source of two functions, ``pred(run) -> bool`` and
``select(runs) -> list[Run]``, with every clause inlined as one expression,
and compiles them once.  ``select`` runs the whole scan as a single list
comprehension, so filtering costs no Python call per run; constants (keys,
values, LIKE regexes) are closure cells, never pasted into the source, so
no value can inject code.

Semantics are the file store's (``SearchUtils._does_run_match_clause``):
a missing metric/param/tag/attribute never matches (not even ``!=``);
metrics compare as floats, so a NaN metric matches only ``!=``; params,
tags and string attributes compare as strings with Python operators; LIKE
and ILIKE use MLflow's own regex translation (matched in linear time: ``like.py``); ``datasets.*`` matches when
any logged dataset input matches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, Protocol

from ..model import Run
from .like import like_test
from .parse import ATTR, DATASET, METRIC, PARAM, TAG, Clause, parse_filter

DATASET_CONTEXT_TAG = "mlflow.data.context"

_PYOP = {"=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_DICT = {PARAM: "params", TAG: "tags"}
_NAN_POINT = (float("nan"), 0, 0)


class CompiledFilter(Protocol):
    """What :func:`compile_filter` returns: a predicate with a bulk form."""

    clauses: list[Clause]
    source: str

    def __call__(self, run: Run) -> bool: ...

    def select(self, runs: Iterable[Run]) -> list[Run]:
        """The runs that match, in input order (faster than calling per run)."""
        ...

    def select_stage(self, runs: Iterable[Run], stage: str) -> list[Run]:
        """:meth:`select` of the runs whose ``lifecycle_stage`` is ``stage``, in one pass."""
        ...


def _string_test(comparator: str, value: Any) -> tuple[str, Any]:
    """(expression template over ``{x}``, constant) for a non-None string ``x``."""
    if comparator == "LIKE" and value.endswith("%") and not any(ch in value[:-1] for ch in "%_"):
        # 'abc%' is the common case; MLflow's regex '^abc.*' (no '$') is
        # exactly a prefix test, and startswith is several times faster.
        return "{x}.startswith({c})", value[:-1]
    if comparator in ("LIKE", "ILIKE"):
        return "{c}({x}) is not None", like_test(value, comparator == "ILIKE")
    if comparator == "IN":
        return "{x} in {c}", frozenset(value)
    if comparator == "NOT IN":
        return "{x} not in {c}", frozenset(value)
    return "{x} " + _PYOP[comparator] + " {c}", value


def _dataset_test(clause: Clause) -> Callable[[Run], bool]:
    """A closure for ``datasets.*`` (rare, so not worth inlining)."""
    template, const = _string_test(clause.comparator, clause.value)
    test = eval(f"lambda x, c: {template.format(x='x', c='c')}")  # noqa: S307 - fixed templates

    if clause.key == "context":
        # MLflow looks at each input's 'mlflow.data.context' tag only.
        def match(run: Run) -> bool:
            for d in run.inputs:
                tags = d.get("tags") or {}
                if isinstance(tags, dict):
                    ctx = tags.get(DATASET_CONTEXT_TAG)
                else:  # tolerate MLflow's [{"key": k, "value": v}] shape
                    ctx = next(
                        (t.get("value") for t in tags if t.get("key") == DATASET_CONTEXT_TAG), None
                    )
                if ctx is not None and test(ctx, const):
                    return True
            return False
    else:
        field = clause.key

        def match(run: Run) -> bool:
            for d in run.inputs:
                x = d.get(field)
                if x is not None and test(x, const):
                    return True
            return False

    return match


def _expr(i: int, clause: Clause, consts: dict[str, Any]) -> str:
    """One clause as a Python expression over ``r``; may add to ``consts``."""
    k, v, c, x = f"k{i}", f"v{i}", clause.comparator, f"_x{i}"
    kind = clause.kind
    if kind == METRIC:
        consts[k], consts[v] = clause.key, clause.value
        # Latest value is element 0 of (value, timestamp, step).  A missing
        # metric reads as NaN, which fails every comparison except '!=', so
        # only '!=' needs the explicit (slower) presence test.
        if c != "!=":
            consts["nan_point"] = _NAN_POINT
            return f"(r.metrics.get({k}, nan_point)[0] {_PYOP[c]} {v})"
        return f"(({x} := r.metrics.get({k})) is not None and {x}[0] != {v})"
    if kind in (PARAM, TAG):
        d = _DICT[kind]
        consts[k] = clause.key
        if c == "IS NULL":
            return f"({k} not in r.{d})"
        if c == "IS NOT NULL":
            return f"({k} in r.{d})"
        if c == "=":  # None == 'x' is False, so no None check needed
            consts[v] = clause.value
            return f"(r.{d}.get({k}) == {v})"
        template, consts[v] = _string_test(c, clause.value)
        return f"(({x} := r.{d}.get({k})) is not None and {template.format(x=x, c=v)})"
    if kind == ATTR:
        attr = clause.key
        if clause.group == "numeric attribute":
            consts[v] = clause.value
            return f"(({x} := r.{attr}) is not None and {x} {_PYOP[c]} {v})"
        template, consts[v] = _string_test(c, clause.value)
        return f"(({x} := r.{attr}) is not None and {template.format(x=x, c=v)})"
    if kind == DATASET:
        consts[v] = _dataset_test(clause)
        return f"{v}(r)"
    raise AssertionError(f"unknown clause kind {kind!r}")  # parse.py only makes the above


def _cost(clause: Clause) -> int:
    """Cheap and selective tests first: an equality on a param or tag is one ``dict.get``."""
    if clause.kind in (PARAM, TAG):
        return 0 if clause.comparator in ("=", "IS NULL", "IS NOT NULL") else 1
    return {ATTR: 2, METRIC: 3}.get(clause.kind, 4)


def _build(clauses: list[Clause]) -> CompiledFilter:
    consts: dict[str, Any] = {}
    # Every clause is a side-effect-free test and they are ANDed, so their order is free.
    ordered = sorted(enumerate(clauses), key=lambda ic: _cost(ic[1]))
    body = " and ".join(_expr(i, cl, consts) for i, cl in ordered) or "True"
    names = ", ".join(consts)
    source = (
        f"def _make({names}):\n"
        f"    def pred(r):\n"
        f"        return {body}\n"
        f"    def select(runs):\n"
        f"        return [r for r in runs if {body}]\n"
        f"    def select_stage(runs, stage):\n"
        f"        return [r for r in runs if r.lifecycle_stage == stage and {body}]\n"
        f"    return pred, select, select_stage\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "<octostore filter>", "exec"), namespace)  # noqa: S102 - our own source
    pred, select, select_stage = namespace["_make"](**consts)
    pred.clauses = clauses
    pred.source = source
    pred.select = select
    pred.select_stage = select_stage
    return pred  # type: ignore[no-any-return]


@lru_cache(maxsize=256)
def compile_filter(filter_string: str | None) -> CompiledFilter:
    """A predicate for an MLflow filter string; raises FilterError when MLflow would.

    ``None`` or a blank string matches every run.  Results are cached, so
    compiling the same string again is free.
    """
    return _build(parse_filter(filter_string))


@lru_cache(maxsize=256)
def compile_filter_without(filter_string: str | None, index: int) -> CompiledFilter:
    """:func:`compile_filter` minus clause ``index`` (one the caller's candidates already
    satisfy, such as the equality a value lookup answered)."""
    clauses = compile_filter(filter_string).clauses
    return _build(clauses[:index] + clauses[index + 1:])
