"""Pure formatting helpers: numbers, times, durations, statuses, order_by keys.

Every screen shows the same values the same way (a metric with 4 significant
digits, a start time as ``11-26 10:04``, a duration as ``1m 05s``), so the rules
live here, as plain functions the tests can call without an app.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from rich.text import Text

from octostored.inert import inert
from octostored.metricnames import lower_is_better  # noqa: F401 - the one rule, re-exported
from octostored.model import from_json_float

STATUS_STYLE = {
    "RUNNING": "bold $accent",
    "SCHEDULED": "$secondary",
    "FINISHED": "$success",
    "FAILED": "bold $error",
    "KILLED": "$warning",
}
"""Textual style strings for a run status (resolved against the current theme)."""

STATUS_ICON = {"RUNNING": "▶", "SCHEDULED": "◷", "FINISHED": "✔", "FAILED": "✘", "KILLED": "■"}

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def metric_value(value: Any) -> float | None:
    """A metric from the wire as a float (``"NaN"``/``"Infinity"`` included), else None."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("value")
    try:
        got = from_json_float(value)
    except (TypeError, ValueError):
        return None
    return float(got) if isinstance(got, (int, float)) else None


def num(value: Any, digits: int = 4) -> str:
    """A number for a cell: 4 significant digits, ints as ints, NaN/inf spelled out."""
    v = metric_value(value) if not isinstance(value, (int, float)) else float(value)
    if v is None:
        return "—"
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    a = abs(v)
    if a != 0 and (a < 1e-3 or a >= 1e6):
        return f"{v:.{digits}g}"
    return f"{v:.{digits}g}" if a >= 1 else f"{v:.{digits}f}".rstrip("0").rstrip(".")


def when(ms: int | None, now: float | None = None) -> str:
    """A start time: ``HH:MM`` today, ``MM-DD HH:MM`` this year, else ``YYYY-MM-DD``."""
    if not ms:
        return "—"
    t = time.localtime(ms / 1000)
    n = time.localtime(now if now is not None else time.time())
    if t.tm_year == n.tm_year and t.tm_yday == n.tm_yday:
        return time.strftime("%H:%M:%S", t)
    if t.tm_year == n.tm_year:
        return time.strftime("%m-%d %H:%M", t)
    return time.strftime("%Y-%m-%d", t)


def full_time(ms: int | None) -> str:
    if not ms:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def duration(seconds: float | None) -> str:
    """``850ms``, ``42s``, ``3m 05s``, ``2h 07m``, ``3d 04h``."""
    if seconds is None or seconds < 0:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h {m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d {h:02d}h"


def run_duration(run: dict[str, Any], now_ms: float | None = None) -> str:
    start, end = run.get("start_time"), run.get("end_time")
    if not start:
        return "—"
    if end is None:
        if run.get("status") != "RUNNING":
            return "—"
        end = now_ms if now_ms is not None else time.time() * 1000
    return duration((end - start) / 1000)


def ago(ms: int | None, now: float | None = None) -> str:
    """``just now``, ``5m ago``, ``3h ago``, ``2d ago``."""
    if not ms:
        return "—"
    secs = (now if now is not None else time.time()) - ms / 1000
    if secs < 45:
        return "just now"
    if secs < 3600:
        return f"{round(secs / 60)}m ago"
    if secs < 86400:
        return f"{round(secs / 3600)}h ago"
    if secs < 86400 * 60:
        return f"{round(secs / 86400)}d ago"
    return time.strftime("%Y-%m-%d", time.localtime(ms / 1000))


def run_label(run: dict[str, Any]) -> str:
    """A run's name for display: inert (a name is a stranger's string)."""
    return inert(run.get("run_name") or (run.get("run_id") or "")[:8])


def shown(value: Any) -> str:
    """A string from a store as plain text for a cell: control and bidi characters escaped."""
    return inert(value)


_BACKSLASH_BEFORE_TAG = re.compile(r"\\(?=\[|$)")


def marked(value: Any) -> str:
    """A string from a store for a place that reads markup (Textual's or Rich's): inert,
    with every ``[`` escaped, so ``[/b]``, ``[2J`` or ``:memory:"]`` in a name is shown,
    never parsed.  (``rich.markup.escape`` leaves ``[2J`` alone, which Textual's parser
    then takes for a tag.)  A backslash just before a ``[`` or at the end would escape
    the next tag, and neither parser unescapes ``\\``: it is shown as ``⧵``."""
    text = _BACKSLASH_BEFORE_TAG.sub("⧵", inert(value))
    return text.replace("[", "\\[")


def cell(value: Any, style: str = "") -> Text:
    """A DataTable cell from a store: a Text (a ``str`` cell would be parsed as markup)."""
    return Text(inert(value), style=style)


def quote_key(key: str) -> str:
    """A key as MLflow's search syntax needs it (backticks when not a plain identifier)."""
    return key if _PLAIN_KEY.match(key) else f"`{key}`"


def column_order_by(column: str, ascending: bool) -> str | None:
    """The ``order_by`` clause for a grid column id, or None when MLflow cannot sort by it."""
    direction = "ASC" if ascending else "DESC"
    attrs = {
        "run_name": "attributes.run_name",
        "status": "attributes.status",
        "start_time": "attributes.start_time",
        "end_time": "attributes.end_time",
        "user_id": "attributes.user_id",
    }
    if column in attrs:
        return f"{attrs[column]} {direction}"
    kind, _, key = column.partition(".")
    if kind in ("params", "metrics", "tags") and key:
        return f"{kind}.{quote_key(key)} {direction}"
    return None


def shorten(text: str, width: int) -> str:
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def human_bytes(n: int | None) -> str:
    if n is None:
        return "—"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def ema(values: list[float], weight: float) -> list[float]:
    """TensorBoard's debiased exponential moving average (``weight`` in [0, 1))."""
    if weight <= 0 or not values:
        return list(values)
    out: list[float] = []
    last = 0.0
    n = 0
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        n += 1
        out.append(last / (1 - weight**n))
    return out


def home_path(path: str) -> str:
    import os

    home = os.path.expanduser("~")
    if home not in ("", "/") and (path == home or path.startswith(home + os.sep)):
        return "~" + path[len(home) :]
    return path
