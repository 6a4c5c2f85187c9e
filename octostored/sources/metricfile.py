"""Parsing of MLflow file-store metric files (``metrics/<key>``).

A metric file holds one line per logged point: ``<timestamp ms> <value> <step>``
(pre-1.0 stores: two fields, step 0; dataset-aware stores: five fields).
Parsing, not reading, dominates a cold index (STACK.md §10: 0.57 M points a
second in a Python loop), so the common case (every line three fields) is
parsed column-wise with ``bytes.split`` and ``map``, which run in C; any other
shape falls back to a line-by-line parser that reports each bad line.

Only complete lines are consumed: a writer may be appending right now, and
the bytes after the last newline are left for the next read (the returned
``consumed`` offset says where to resume).  An unterminated tail that is a
well-formed three-field line still counts, since old files may lack the
final newline; it is not consumed, so it is read again next time.
"""

from __future__ import annotations

import re
from itertools import repeat

Point = tuple[int, float, int]
"""(timestamp ms, value, step), the order MLflow's history returns."""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""Timestamps and steps are 64-bit in MLflow's schema and in JSON clients; a line whose
integers do not fit is damage (and would make the reply unencodable), not data."""


def _parse_line(line: bytes) -> Point:
    parts = line.strip().split(b" ")
    n = len(parts)
    if n not in (2, 3, 5):
        raise ValueError(f"{n} fields, expected 3")
    ts = int(parts[0])
    value = float(parts[1])
    step = int(parts[2]) if n >= 3 else 0
    if not (INT64_MIN <= ts <= INT64_MAX and INT64_MIN <= step <= INT64_MAX):
        raise ValueError("timestamp or step out of range (64-bit)")
    return ts, value, step


def _in_range(*columns: list[int]) -> bool:
    return all(not col or (min(col) >= INT64_MIN and max(col) <= INT64_MAX) for col in columns)


_OTHER_SPACE = (b"\t", b"\r", b"\x0b", b"\x0c")


def _tokens(body: bytes) -> list[bytes] | None:
    """The tokens of ``body`` (complete lines) when every line is exactly three fields.

    Matching token and line counts is not enough: "1 2" then "3 4 5 6" also makes six
    tokens on two lines, and reading them by column would invent the points (1, 2, 3)
    and (4, 5, 6).  Every line holding exactly two spaces, with no other whitespace,
    settles it; each check runs in C.
    """
    nlines = body.count(b"\n")
    toks = body.split()
    if len(toks) != 3 * nlines or any(w in body for w in _OTHER_SPACE):
        return None
    if set(map(bytes.count, body[:-1].split(b"\n"), repeat(b" "))) != {2}:
        return None
    return toks


def _parse_slow(body: bytes, first_line_no: int, warnings: list[str]) -> list[Point]:
    points: list[Point] = []
    for i, line in enumerate(body.split(b"\n")):
        if not line.strip():
            continue
        try:
            points.append(_parse_line(line))
        except ValueError as exc:
            shown = line[:60].decode("utf-8", "replace")
            warnings.append(f"line {first_line_no + i}: {exc} ({shown!r}); line skipped")
    return points


def parse_points(data: bytes, first_line_no: int = 1) -> tuple[list[Point], int, list[str]]:
    """Parse metric lines; return (points, bytes consumed, warnings)."""
    warnings: list[str] = []
    end = data.rfind(b"\n") + 1
    body = data[:end]
    points: list[Point] = []
    if body:
        toks = _tokens(body)
        if toks is not None:
            try:
                ts, steps = list(map(int, toks[0::3])), list(map(int, toks[2::3]))
                if not _in_range(ts, steps):
                    raise ValueError("out of range")
                points = list(zip(ts, map(float, toks[1::3]), steps))
            except ValueError:
                points = _parse_slow(body, first_line_no, warnings)
        else:
            points = _parse_slow(body, first_line_no, warnings)
    tail = data[end:]
    if tail.strip():
        try:
            point = _parse_line(tail)
            if tail.strip().count(b" ") == 2:
                points.append(point)
        except ValueError:
            pass  # most likely a line being written right now; read it next time
    return points, end, warnings


def latest_of(points: list[Point]) -> tuple[float, int, int] | None:
    """MLflow's latest value: the point with the largest (step, timestamp, value).

    Returns (value, timestamp, step) as :class:`octostored.model.Run` stores it.
    Python's tuple ``max`` is used exactly as MLflow's FileStore uses it, so NaN
    values compare the same way.
    """
    if not points:
        return None
    step, ts, value = max((p[2], p[0], p[1]) for p in points)
    return value, ts, step


_PLAIN_LINES = re.compile(
    rb"(?:[0-9]{1,18}+ -?+(?:[0-9]++\.?+[0-9]*+(?:e[-+]?+[0-9]++)?+|nan|inf) [0-9]{1,18}+\n)*+")
"""Lines exactly as MLflow writes them (``<ts> <repr(value)> <step>``, ts and step under 19
digits, so within 64 bits): each such line is valid, so the only numbers worth converting are
the steps, to find the latest.  Anything else takes the exact path."""


def scan_latest(
    data: bytes, first_line_no: int = 1
) -> tuple[tuple[float, int, int] | None, int, list[str]]:
    """The latest point of a metric file without building its history.

    Returns ((value, timestamp, step) or None, bytes consumed, warnings).  This is the
    cold-index path: one regex pass in C checks every line, then only the steps column is
    converted; the latest point's timestamp and value are read from its own line.
    """
    if data and _PLAIN_LINES.fullmatch(data) is not None:
        toks = data.split()
        steps = list(map(int, toks[2::3]))
        top = max(steps)
        if steps.count(top) == 1:
            i = 3 * steps.index(top)
            return (float(toks[i + 1]), int(toks[i]), top), len(data), []
        step, t, value = max(zip(steps, map(int, toks[0::3]), map(float, toks[1::3])))
        return (value, t, step), len(data), []
    points, consumed, warnings = parse_points(data, first_line_no)
    return latest_of(points), consumed, warnings
