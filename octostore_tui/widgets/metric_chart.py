"""MetricChart: one metric's history for one or more runs, as a braille line chart.

Built on textual-plotext (``PlotextPlot``), whose "auto" theme takes the plot's
background and text colours from the app's theme, so a chart reads in dark and
light themes; the series colours come from :mod:`.palette` for the same reason.
It draws at render time, when its size is known, from the series it was given:
x by step, wall-clock time or time since the run started; optional debiased EMA
smoothing (TensorBoard's); optional log y axis.  Non-finite points (NaN and
infinities arrive as strings) are dropped, and so are non-positive ones on a
log axis, with a note in the title.

One chart per metric: plotext's subplots do not survive textual-plotext's
figure wrapper, and a stack of charts gives each metric its own y axis anyway.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from .. import format as fmt
from .palette import series_color

X_MODES = ("step", "time", "relative")
X_LABELS = {"step": "step", "time": "wall time", "relative": "time since start"}


@dataclass
class Series:
    label: str
    xs: list[float]
    ys: list[float | str | None]
    color_index: int = 0
    points: int = 0
    """How many points the daemon had before downsampling."""
    extra: dict[str, object] = field(default_factory=dict)


class MetricChart(PlotextPlot):
    """A line chart of one metric across runs."""

    DEFAULT_CSS = """
    MetricChart {
        height: 1fr;
        min-height: 8;
        width: 1fr;
    }
    """

    def __init__(self, key: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.key = key
        self.series: list[Series] = []
        self.x_mode = "step"
        self.smoothing = 0.0
        self.log_y = False
        self.pending = False

    def set_series(
        self,
        series: list[Series],
        *,
        x_mode: str | None = None,
        smoothing: float | None = None,
        log_y: bool | None = None,
    ) -> None:
        self.series = series
        if x_mode is not None:
            self.x_mode = x_mode
        if smoothing is not None:
            self.smoothing = smoothing
        if log_y is not None:
            self.log_y = log_y
        self.refresh()

    def set_options(
        self,
        *,
        x_mode: str | None = None,
        smoothing: float | None = None,
        log_y: bool | None = None,
    ) -> None:
        self.set_series(self.series, x_mode=x_mode, smoothing=smoothing, log_y=log_y)

    def _clean(self, s: Series) -> tuple[list[float], list[float], int]:
        xs: list[float] = []
        ys: list[float] = []
        dropped = 0
        for x, y in zip(s.xs, s.ys):
            v = fmt.metric_value(y)
            if v is None or not math.isfinite(v) or (self.log_y and v <= 0):
                dropped += 1
                continue
            xs.append(float(x))
            ys.append(v)
        if self.smoothing > 0:
            ys = fmt.ema(ys, self.smoothing)
        return xs, ys, dropped

    def render(self) -> RenderResult:
        cleaned = [(s, *self._clean(s)) for s in self.series]
        if not any(xs for _, xs, _, _ in cleaned):
            what = "loading…" if self.pending else "no points to draw"
            return Text(f"{fmt.shown(self.key)}: {what}", style="dim", justify="center")
        plt = self.plt
        plt.clear_figure()
        if all(len(xs) <= 1 for _, xs, _, _ in cleaned):
            return self._render_bars(cleaned)
        origin = 0.0
        if self.x_mode == "time":
            origin = min(xs[0] for _, xs, _, _ in cleaned if xs)
        dropped = 0
        single = len(cleaned) == 1
        lo = hi = None
        for s, xs, ys, n_drop in cleaned:
            dropped += n_drop
            if not xs:
                continue
            if self.x_mode == "time":
                xs = [(x - origin) / 1000.0 for x in xs]
            # No in-plot legend: it hides the curves' start; the panel's legend names the colours.
            kwargs: dict[str, object] = {"marker": "braille", "color": series_color(s.color_index)}
            if len(xs) == 1:
                plt.scatter(xs, ys, **kwargs)
            else:
                plt.plot(xs, ys, **kwargs)
            lo = min(xs[0], lo) if lo is not None else xs[0]
            hi = max(xs[-1], hi) if hi is not None else xs[-1]
        title = fmt.shown(self.key)
        if single:
            s, xs, ys, _ = cleaned[0]
            if ys:
                raw_last = fmt.metric_value(s.ys[-1]) if s.ys else None
                title += f"  last {fmt.num(raw_last if raw_last is not None else ys[-1])}"
        notes = []
        if self.smoothing > 0:
            notes.append(f"smoothed {self.smoothing:g}")
        if self.log_y:
            notes.append("log")
        if dropped:
            notes.append(f"{dropped} point{'s' if dropped != 1 else ''} not drawn")
        if notes:
            title += "  (" + ", ".join(notes) + ")"
        plt.title(title)
        if self.log_y:
            plt.yscale("log")
        if self.x_mode == "step" and lo is not None and hi is not None:
            ticks = _step_ticks(lo, hi, max(2, min(10, self.size.width // 8)))
            plt.xticks(ticks, [str(t) for t in ticks])
        elif self.x_mode in ("time", "relative") and lo is not None and hi is not None:
            ticks = _ticks(lo, hi, max(2, min(6, self.size.width // 16)))
            if self.x_mode == "time":
                labels = [_clock(origin / 1000 + t, hi - lo) for t in ticks]
            else:
                labels = [_short_duration(t) for t in ticks]
            plt.xticks(ticks, labels)
        if self.size.height >= 14:
            plt.xlabel(X_LABELS.get(self.x_mode, self.x_mode))
        return super().render()

    def _render_bars(
        self, cleaned: list[tuple[Series, list[float], list[float], int]]
    ) -> RenderResult:
        """Every run logged the metric once: one bar per run says more than lone dots."""
        plt = self.plt
        positions, labels = [], []
        for i, (s, _xs, ys, _) in enumerate(cleaned):
            if not ys:
                continue
            positions.append(i + 1)
            labels.append(fmt.shorten(s.label, max(6, self.size.width // max(1, len(cleaned)) - 4)))
            plt.bar([i + 1], [ys[-1]], color=series_color(s.color_index), width=0.5)
        n = len(cleaned)
        extra = max(0.0, (6 - n) / 2)
        plt.xlim(0.5 - extra, n + 0.5 + extra)
        plt.xticks(positions, labels)
        if len(cleaned) == 1 and cleaned[0][2]:
            plt.title(f"{fmt.shown(self.key)}  {fmt.num(cleaned[0][2][-1])}  (logged once)")
        else:
            plt.title(f"{fmt.shown(self.key)}  (logged once per run)")
        return PlotextPlot.render(self)


def _ticks(lo: float, hi: float, n: int) -> list[float]:
    if hi <= lo:
        return [lo]
    step = (hi - lo) / (n - 1)
    return [lo + i * step for i in range(n)]


def _step_ticks(lo: float, hi: float, most: int) -> list[int]:
    """Whole-number step ticks (1-2-5 spacing) between ``lo`` and ``hi``."""
    span = max(1.0, hi - lo)
    step = 1
    for mult in (
        1,
        2,
        5,
        10,
        20,
        25,
        50,
        100,
        200,
        250,
        500,
        1000,
        2000,
        5000,
        10_000,
        20_000,
        50_000,
        100_000,
        250_000,
        500_000,
        1_000_000,
    ):
        step = mult
        if span / mult <= most - 1:
            break
    first = int(math.ceil(lo / step) * step)
    return list(range(first, int(hi) + 1, step)) or [int(lo)]


def _clock(epoch_seconds: float, span: float) -> str:
    """A wall-clock tick label precise enough to tell the ticks of ``span`` seconds apart."""
    t = time.localtime(epoch_seconds)
    if span > 2 * 86400:
        return time.strftime("%m-%d %H:%M", t)
    if span < 10:
        return time.strftime("%H:%M:%S", t) + f".{int(epoch_seconds * 10) % 10}"
    return time.strftime("%H:%M:%S", t)


def _short_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 or seconds == int(seconds) else f"{seconds:.1f}s"
    if seconds < 3600:
        m, s = divmod(int(seconds), 60)
        return f"{m}m{s:02d}s"
    h, m = divmod(int(seconds) // 60, 60)
    return f"{h}h{m:02d}m"
