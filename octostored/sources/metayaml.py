"""Fast reader for MLflow's ``meta.yaml`` files.

MLflow writes ``meta.yaml`` with ``yaml.safe_dump``: one ``key: value`` per line,
plain or single-quoted scalars, ``null``, ints and ``[]``/``{}``.  Parsing that
subset by hand is ~20x faster than PyYAML's pure-Python loader and ~5x faster
than its C loader, and a cold index reads one such file per run and per
experiment.  Anything outside the subset (folded long values, nested maps,
double quotes) falls back to PyYAML, so the fast path never guesses.
"""

from __future__ import annotations

import re
from typing import Any


_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]*(?:[eE][-+][0-9]+)?\Z")


class MetaError(ValueError):
    """A meta.yaml that cannot be read as a mapping."""


def _scalar(raw: str) -> Any:
    if raw == "" or raw == "null" or raw == "~":
        return None
    c = raw[0]
    if c == "'":
        if len(raw) < 2 or raw[-1] != "'":
            raise _Fallback
        return raw[1:-1].replace("''", "'")
    if c in '"{[&*!|>%@`':
        if raw == "[]":
            return []
        if raw == "{}":
            return {}
        raise _Fallback
    if c == "-" or c.isdigit() or c == ".":
        if _INT.match(raw):
            return int(raw)
        if _FLOAT.match(raw):
            return float(raw)
        raise _Fallback  # octal, sexagesimal, '1e5' (a str in YAML 1.1): let PyYAML decide
    if raw in ("true", "True"):
        return True
    if raw in ("false", "False"):
        return False
    if ": " in raw or " #" in raw:
        raise _Fallback
    return raw


class _Fallback(Exception):
    pass


def parse_meta(data: bytes) -> dict[str, Any]:
    """Parse a meta.yaml body; raise :class:`MetaError` when it is not a mapping."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MetaError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        out: dict[str, Any] = {}
        for line in text.splitlines():
            if not line:
                continue
            if line[0] in " \t-#":
                raise _Fallback
            key, sep, rest = line.partition(":")
            if not sep or (rest and rest[0] != " "):
                raise _Fallback
            out[key] = _scalar(rest.strip())
        if not out:
            raise MetaError("empty file")
        return out
    except _Fallback:
        return _parse_with_pyyaml(text)


def _parse_with_pyyaml(text: str) -> dict[str, Any]:
    # Deferred: PyYAML costs ~15 ms to import and most stores never need it.
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        value = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise MetaError(f"invalid YAML{where}") from None
    if not isinstance(value, dict):
        kind = "empty" if value is None else f"a {type(value).__name__}, not a mapping"
        raise MetaError(f"YAML is {kind}")
    return value


def read_meta_file(path: str) -> tuple[dict[str, Any] | None, str]:
    """Read and parse a meta.yaml; (mapping, "") or (None, what is wrong)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None, "missing"
    except IsADirectoryError:
        return None, "is a folder"
    except OSError as exc:
        return None, f"cannot read ({exc.strerror})"
    try:
        return parse_meta(data), ""
    except MetaError as exc:
        return None, str(exc)
