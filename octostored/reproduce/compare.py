"""Original against reproduction: metric by metric, params, and the verdict.

The final value of a metric is MLflow's "latest" value (the maximum by step,
timestamp, value; ``model.Run.metrics``), on both sides.  Two values agree
when they are equal or, with a relative tolerance ``tol``, when
``|a - b| <= tol * max(|a|, |b|)``; NaN agrees with NaN and an infinity with
the same infinity.  The default tolerance is 0 (exact): a seeded run
reproduces bit for bit, and anything else is worth seeing.  A project whose
runs are not deterministic sets ``tolerance`` (and ``ignore_metrics`` for
timings) in ``[tool.octostore.reproduce]`` or passes ``--tolerance``.

Verdicts: ``reproduced`` (every compared metric agrees), ``diverged`` (some
metric moved, or is missing from the reproduction, or an input the run read
differs from the recorded one), ``failed`` (a phase
failed; decided by the job, not here).
"""

from __future__ import annotations

import math
from typing import Any

from ..model import json_float


def agree(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    if a == b:
        return True
    return abs(a - b) <= tol * max(abs(a), abs(b))


def compare_metrics(original: dict[str, float], reproduced: dict[str, float], tol: float,
                    ignore: set[str] | None = None) -> list[dict[str, Any]]:
    """One row per metric: ``{key, original, reproduced, abs_diff, rel_diff, status}``.

    ``status`` is ``equal``, ``diverged``, ``missing`` (not logged by the
    reproduction), ``new`` (only in the reproduction) or ``ignored``.
    """
    ignore = ignore or set()
    rows = []
    for key in sorted(set(original) | set(reproduced)):
        a, b = original.get(key), reproduced.get(key)
        row: dict[str, Any] = {"key": key, "original": None if a is None else json_float(a),
                               "reproduced": None if b is None else json_float(b),
                               "abs_diff": None, "rel_diff": None}
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
            row["abs_diff"] = b - a
            row["rel_diff"] = (b - a) / abs(a) if a else (0.0 if b == a else None)
        if key in ignore:
            row["status"] = "ignored"
        elif a is None:
            row["status"] = "new"
        elif b is None:
            row["status"] = "missing"
        else:
            row["status"] = "equal" if agree(a, b, tol) else "diverged"
        rows.append(row)
    return rows


def verdict(rows: list[dict[str, Any]], differing_inputs: list[str] | tuple[str, ...] = ()
            ) -> str:
    """``diverged`` when a metric moved or went missing, or when an input the run read
    differs from the recorded one (then equal metrics prove nothing about the run)."""
    if differing_inputs or any(r["status"] in ("diverged", "missing") for r in rows):
        return "diverged"
    return "reproduced"


def compare_params(original: dict[str, str], reproduced: dict[str, str],
                   overrides: dict[str, str]) -> list[dict[str, Any]]:
    """Params whose values differ: ``{key, original, reproduced, expected}``.

    ``expected`` is true for a param changed on purpose with ``--set``.
    """
    wanted = {k.replace("-", "_") for k in overrides}
    out = []
    for key in sorted(set(original) | set(reproduced)):
        a, b = original.get(key), reproduced.get(key)
        if a != b:
            out.append({"key": key, "original": a, "reproduced": b,
                        "expected": key.replace("-", "_") in wanted})
    return out


def summary(rows: list[dict[str, Any]], differing_inputs: list[str] | tuple[str, ...] = (),
            limit: int = 5) -> str:
    """A one-line account of what moved, for the ``octostore.verdict.detail`` tag."""
    moved = [r for r in rows if r["status"] in ("diverged", "missing")]
    inputs = "; ".join(f"input {p} differs" for p in differing_inputs[:limit])
    if len(differing_inputs) > limit:
        inputs += f" and {len(differing_inputs) - limit} more inputs"
    if not moved:
        n = sum(1 for r in rows if r["status"] == "equal")
        return f"{inputs}; {n} metric(s) equal" if inputs else f"{n} metric(s) equal"
    parts = []
    for r in moved[:limit]:
        if r["status"] == "missing":
            parts.append(f"{r['key']} missing")
        elif r["rel_diff"] is not None:
            parts.append(f"{r['key']} {r['original']} -> {r['reproduced']} "
                         f"({r['rel_diff'] * 100:+.3g}%)")
        else:
            parts.append(f"{r['key']} {r['original']} -> {r['reproduced']}")
    more = f" and {len(moved) - limit} more" if len(moved) > limit else ""
    return (f"{inputs}; " if inputs else "") + "; ".join(parts) + more
