"""Small statistics and formatting helpers for the results table."""

from __future__ import annotations

import statistics


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def pct(xs: list[float], q: float) -> float | None:
    """The q-quantile by nearest rank (p99 of 200 calls is the 198th)."""
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q * len(s))) - 1))]


def summary(xs: list[float]) -> dict[str, float | int | None]:
    return {"n": len(xs), "median": median(xs), "min": min(xs) if xs else None,
            "max": max(xs) if xs else None, "p99": pct(xs, 0.99)}


def fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:.0f} s"
    if x >= 10:
        return f"{x:.1f} s"
    if x >= 1:
        return f"{x:.2f} s"
    return f"{x * 1000:.0f} ms" if x >= 0.1 else fmt_ms(x)


def fmt_ms(x: float | None) -> str:
    if x is None:
        return "-"
    ms = x * 1000
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def fmt_range(s: dict | None, unit: str = "s") -> str:
    """``median (min-max)``; a single sample prints alone."""
    if not s or s.get("median") is None:
        return "-"
    f = fmt_s if unit == "s" else fmt_ms
    if s["n"] == 1:
        return f(s["median"])
    return f"{f(s['median'])} ({f(s['min'])}-{f(s['max'])})"


def fmt_lat(s: dict | None) -> str:
    """``p50 / p99`` of a latency sample."""
    if not s or s.get("median") is None:
        return "-"
    return f"{fmt_ms(s['median'])} / {fmt_ms(s['p99'])}"


def fmt_x(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.0f}x" if x >= 10 else f"{x:.1f}x" if x >= 1 else f"{x:.2f}x"
