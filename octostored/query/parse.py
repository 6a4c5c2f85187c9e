"""Filter strings to validated clauses, with MLflow's rules and friendlier errors.

This module owns *what a filter means*: which key types exist and their
aliases, which comparators and values each type takes, and how quoted
values and ``IN`` lists are read.  Every rule mirrors
``SearchUtils.parse_search_filter`` plus the comparator checks MLflow makes
when it evaluates a clause (``is_metric``/``is_param``/...), so a string is
rejected here exactly when MLflow's SQLite store would reject it (the file
store only validates comparators once it has a run to test).

Deliberate differences (all documented in ``octostored/query/__init__.py``):
``IS NOT NULL`` may contain any whitespace; a list value with ``=``/``!=``/
``LIKE`` (which MLflow accepts and then never matches, or crashes on) is
rejected; two conditions written side by side without ``AND`` are rejected
(MLflow's grouping reads some such strings as two conditions and others as
one condition on a nonsense key).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from .errors import FilterError, FilterTooLarge
from .lexer import (
    CMP, DQ, FLOAT, INT, KW, LPAREN, NAME, RPAREN, SQ, WORD,
    Token, read_identifier, snippet, split_identifier, strip_quotes, tokenize,
)

METRIC, PARAM, TAG, ATTR, DATASET = "metric", "parameter", "tag", "attribute", "dataset"

ENTITY_ALIASES = {
    "metric": METRIC, "metrics": METRIC,
    "parameter": PARAM, "parameters": PARAM, "param": PARAM, "params": PARAM,
    "tag": TAG, "tags": TAG,
    "attribute": ATTR, "attributes": ATTR, "attr": ATTR, "run": ATTR,
    "dataset": DATASET, "datasets": DATASET,
}
NUMERIC_ATTRS = {"start_time", "end_time", "created", "Created"}
STRING_ATTRS = {"run_id", "run_name", "user_id", "status", "artifact_uri"}
SEARCH_ATTRS = NUMERIC_ATTRS | STRING_ATTRS | {"run name", "Run name", "Run Name"}
ORDER_ATTRS = NUMERIC_ATTRS | STRING_ATTRS  # MLflow has no "Run name" alias for order_by
DATASET_KEYS = {"name", "digest", "context"}

_NUM_CMP = {">", ">=", "!=", "=", "<", "<="}
_STR_CMP = {"!=", "=", "LIKE", "ILIKE"}
COMPARATORS = {
    METRIC: _NUM_CMP,
    PARAM: _STR_CMP | {"IS NULL", "IS NOT NULL"},
    TAG: _STR_CMP | {"IS NULL", "IS NOT NULL"},
    "string attribute": _STR_CMP | {"IN", "NOT IN"},
    "numeric attribute": _NUM_CMP,
    DATASET: _STR_CMP | {"IN", "NOT IN"},
}
_EXAMPLES = {
    METRIC: "metrics.rmse < 0.7",
    PARAM: "params.model = 'rf'",
    TAG: "tags.`my key` LIKE 'a%'",
    "string attribute": "attributes.status = 'FINISHED'",
    "numeric attribute": "attributes.start_time > 1700000000000",
    DATASET: "datasets.name IN ('train', 'eval')",
}


def translate_key_alias(key: str) -> str:
    # MLflow applies this to every key type (so `metrics.created` reads the
    # metric "start_time"); both stores do, so we do too.
    if key in ("created", "Created"):
        return "start_time"
    if key in ("run name", "Run name", "Run Name"):
        return "run_name"
    return key


@dataclass(frozen=True, slots=True)
class Clause:
    """One ``key comparator value`` condition, ready to compile."""

    kind: str  # METRIC, PARAM, TAG, ATTR or DATASET
    key: str  # after alias translation: the dict key or Run attribute
    comparator: str  # upper case: '=', '!=', 'LIKE', 'IN', 'IS NULL', ...
    value: Any  # float (metric), int/float (time), str, tuple[str, ...] or None
    text: str  # the clause as written, for messages

    @property
    def group(self) -> str:
        """The comparator family: METRIC, PARAM, TAG, DATASET or '<type> attribute'."""
        if self.kind != ATTR:
            return self.kind
        return "numeric attribute" if self.key == "start_time" or self.key == "end_time" \
            else "string attribute"


def resolve_key(raw: str, text: str, where: int, for_order: bool = False) -> tuple[str, str]:
    """(kind, key) for an identifier's raw text, or FilterError as MLflow would raise."""
    entity, key = split_identifier(raw)
    what = "order_by" if for_order else "filter"
    if not entity:
        kind = ATTR
    elif entity in ENTITY_ALIASES:
        kind = ENTITY_ALIASES[entity]
    else:
        hint = " (remove the space before '.')" if entity.rstrip() in ENTITY_ALIASES else ""
        raise FilterError(
            f"bad {what} at {snippet(text, where)!r}: unknown key type {entity!r}{hint}; "
            "use metrics., params., tags., attributes. or datasets., e.g. metrics.rmse"
        )
    valid = ORDER_ATTRS if for_order else SEARCH_ATTRS
    if kind == ATTR and key not in valid:
        raise FilterError(
            f"bad {what} at {snippet(text, where)!r}: {key!r} is not a run attribute; "
            f"use one of {', '.join(sorted(valid - {'Created', 'Run name', 'Run Name'}))}"
        )
    if kind == DATASET and key not in DATASET_KEYS:
        raise FilterError(
            f"bad {what} at {snippet(text, where)!r}: datasets have no {key!r}; "
            "use datasets.name, datasets.digest or datasets.context"
        )
    return kind, translate_key_alias(key)


def _paren(text: str, toks: list[Token], i: int) -> tuple[str, int]:
    """Raw text of the balanced parenthesis at ``toks[i]`` and the index after it."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].kind == LPAREN:
            depth += 1
        elif toks[j].kind == RPAREN:
            depth -= 1
            if depth == 0:
                return text[toks[i].start : toks[j].end], j + 1
    raise FilterError(
        f"bad filter at {snippet(text, toks[i].start)!r}: '(' is never closed; "
        "example: attributes.run_id IN ('a1b2', 'c3d4')"
    )


def _read_list(raw: str, where: str) -> tuple[str, ...]:
    # MLflow reads the list with ast.literal_eval, so Python string rules
    # apply inside it ('a' 'b' is 'ab'; "x" and '\'' work).
    try:
        parsed = ast.literal_eval(raw)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        parsed = None
    parsed = parsed if isinstance(parsed, tuple) else (parsed,)
    if not parsed or not all(isinstance(x, str) for x in parsed):
        raise FilterError(
            f"bad filter at {where!r}: a list must hold one or more quoted strings; "
            "example: attributes.run_id IN ('a1b2', 'c3d4')"
        )
    return parsed


def _value(kind: str, key: str, group: str, vtok: Token, vraw: str, clause: str) -> Any:
    """The clause's value as MLflow's ``_get_value`` reads it."""
    example = _EXAMPLES[group]
    if group in (METRIC, "numeric attribute"):
        if vtok.kind not in (INT, FLOAT):
            noun = "metrics" if kind == METRIC else key
            raise FilterError(
                f"bad filter at {clause!r}: {noun} compare with a plain number, not {vraw}; "
                f"example: {example}"
            )
        if kind == METRIC:
            return float(vraw)
        return int(vraw) if vtok.kind == INT else float(vraw)
    if vtok.kind == LPAREN:
        if (kind == ATTR and key != "run_id") or kind in (PARAM, TAG):
            raise FilterError(
                f"bad filter at {clause!r}: only attributes.run_id and datasets.name/digest/"
                "context take a list; compare one value at a time, "
                f"e.g. {example}"
            )
        return _read_list(vraw, clause)
    if vtok.kind in (SQ, DQ, NAME, WORD):
        stripped = strip_quotes(vraw)
        if stripped is not None:
            return stripped
    raise FilterError(
        f"bad filter at {clause!r}: {vraw} must be a quoted string; example: {example}"
    )


MAX_FILTER = 16 * 1024
"""Characters a filter may have (a 2 MB filter once took 2.7 GB to parse)."""
MAX_CLAUSES = 200
"""Conditions a filter may have."""


def parse_filter(text: str | None) -> list[Clause]:
    """Validated clauses of an MLflow filter string ([] for None or blank)."""
    if not text or not text.strip():
        return []
    if len(text) > MAX_FILTER:
        raise FilterTooLarge(f"the filter has {len(text)} characters, more than {MAX_FILTER}; "
                             "write a shorter filter")
    toks = tokenize(text)
    for t in toks:  # OR anywhere is the likeliest mistake: say so first
        if t.kind == KW and t.upper == "OR":
            raise FilterError(
                f"bad filter at {snippet(text, t.start)!r}: MLflow filters cannot use OR, "
                "only AND; run one search per alternative, or use IN for run ids "
                "and datasets"
            )
    clauses: list[Clause] = []
    i, n = 0, len(toks)
    while i < n:
        t = toks[i]
        if t.kind == KW and t.upper == "AND":
            i += 1  # MLflow ignores stray ANDs ('and x = 1 and'), so do we
            continue
        if t.kind == LPAREN:
            raise FilterError(
                f"bad filter at {snippet(text, t.start)!r}: conditions cannot be grouped "
                "in parentheses; write them joined by AND, "
                "e.g. metrics.rmse < 0.7 and params.model = 'rf'"
            )
        ident = read_identifier(text, toks, i)
        if ident is None:
            raise FilterError(
                f"bad filter at {snippet(text, t.start)!r}: expected a key such as "
                "metrics.rmse, params.model or attributes.status; "
                "quote keys with spaces or symbols in backticks, e.g. tags.`my key` = 'x'"
            )
        raw, j = ident
        kind, key = resolve_key(raw, text, t.start)
        clause, i = _parse_rest(text, toks, i, j, kind, key, raw)
        clauses.append(clause)
        if len(clauses) > MAX_CLAUSES:
            raise FilterTooLarge(f"the filter has more than {MAX_CLAUSES} conditions; "
                                 "write fewer")
        if i < n and not (toks[i].kind == KW and toks[i].upper == "AND"):
            # MLflow's sqlparse grouping sometimes reads two side-by-side
            # conditions as two, sometimes as one nonsense key; require AND.
            raise FilterError(
                f"bad filter at {snippet(text, toks[i].start)!r}: expected AND between "
                f"conditions after {clause.text!r}; "
                "example: metrics.rmse < 0.7 and params.model = 'rf'"
            )
    return clauses


def _parse_rest(
    text: str, toks: list[Token], start: int, j: int, kind: str, key: str, raw: str
) -> tuple[Clause, int]:
    """Comparator and value after the key ``raw`` (which ends before ``toks[j]``)."""
    n = len(toks)
    here = snippet(text, toks[start].start)
    op = toks[j] if j < n else None
    nxt = toks[j + 1] if j + 1 < n else None
    group = Clause(kind, key, "", None, "").group
    vtok: Token | None
    if op is not None and op.kind == KW and op.upper == "IS":
        if nxt is not None and nxt.kind == KW and nxt.upper in ("NULL", "NOT NULL"):
            if kind not in (PARAM, TAG):
                raise FilterError(
                    f"bad filter at {here!r}: IS NULL and IS NOT NULL only work on params "
                    "and tags; example: tags.`my key` IS NULL"
                )
            written = text[toks[start].start : nxt.end]
            return Clause(kind, key, f"IS {nxt.upper}", None, written), j + 2
        raise FilterError(
            f"bad filter at {here!r}: expected NULL or NOT NULL after IS; "
            "example: params.lr IS NOT NULL"
        )
    if op is not None and op.kind == KW and op.upper == "IN":
        comparator, vi = "IN", j + 1
    elif op is not None and op.kind == KW and op.upper == "NOT" and nxt is not None \
            and nxt.kind == KW and nxt.upper == "IN":
        comparator, vi = "NOT IN", j + 2
    elif op is not None and op.kind == CMP:
        comparator, vi = op.upper, j + 1
    else:
        raise FilterError(
            f"bad filter at {here!r}: expected a comparison such as =, !=, <, LIKE or IN "
            f"after {raw!r}; example: {_EXAMPLES[group]}"
        )
    vtok = toks[vi] if vi < n else None
    if vtok is not None and vtok.kind == LPAREN:
        vraw, end = _paren(text, toks, vi)
    elif vtok is not None and vtok.kind in (SQ, INT, FLOAT):
        vraw, end = vtok.text, vi + 1
    elif vtok is not None and (ident := read_identifier(text, toks, vi)) is not None:
        vraw, end = ident
    else:
        shown = "nothing" if vtok is None else repr(vtok.text)
        raise FilterError(
            f"bad filter at {here!r}: expected a value after {comparator!r}, found {shown}; "
            f"example: {_EXAMPLES[group]}"
        )
    if comparator in ("IN", "NOT IN") and vtok.kind != LPAREN:
        raise FilterError(
            f"bad filter at {here!r}: {comparator} needs a parenthesised list; "
            "example: attributes.run_id IN ('a1b2', 'c3d4')"
        )
    clause_text = text[toks[start].start : toks[end - 1].end]
    # MLflow reads the value first and checks the comparator later; both must
    # pass, and naming a wrong comparator first gives the more useful message.
    if comparator not in COMPARATORS[group]:
        ok = ", ".join(sorted(COMPARATORS[group]))
        raise FilterError(
            f"bad filter at {clause_text!r}: {group}s cannot use {comparator}; "
            f"use one of {ok}, e.g. {_EXAMPLES[group]}"
        )
    value = _value(kind, key, group, vtok, vraw, clause_text)
    if isinstance(value, tuple) and comparator not in ("IN", "NOT IN"):
        raise FilterError(
            f"bad filter at {clause_text!r}: a list needs IN or NOT IN, not {comparator}; "
            "example: attributes.run_id IN ('a1b2', 'c3d4')"
        )
    return Clause(kind, key, comparator, value, clause_text), end


def like_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """MLflow's ``_convert_like_pattern_to_regex``, byte for byte.

    Kept identical on purpose, quirks included: '.' does not match a newline
    and '$' also matches before a final newline (the file store's behaviour).
    """
    regex = re.escape(pattern).replace("%", ".*").replace("_", ".")
    if not pattern.startswith("%"):
        regex = "^" + regex
    if not pattern.endswith("%"):
        regex = regex + "$"
    return re.compile(regex, re.IGNORECASE if ignore_case else 0)
