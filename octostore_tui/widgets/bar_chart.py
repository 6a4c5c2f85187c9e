"""BarChart: labelled vertical bars (runs per day, a metric's distribution).

A textual-plotext plot like :class:`~.metric_chart.MetricChart`, so it follows
the app's dark or light theme.  Labels are thinned when there are more bars
than the width can name, so a year of daily bars stays readable at 80 columns.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from .palette import series_color

MIN_SLOTS = 10
"""Fewer bars than this are drawn at this many bars' width, centred."""


def _int_ticks(top: float, most: int) -> list[int]:
    """Whole-number ticks from 0 up to ``top``, at most ``most`` of them (1-2-5 steps)."""
    top = max(1, int(-(-top // 1)))
    most = max(2, most)
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if top // step + 1 <= most:
            break
    else:
        step = -(-top // (most - 1))
    return list(range(0, top + 1, step))


class BarChart(PlotextPlot):
    DEFAULT_CSS = """
    BarChart {
        height: 1fr;
        min-height: 6;
        width: 1fr;
    }
    """

    def __init__(
        self,
        title: str = "",
        *,
        color_index: int = 0,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.labels: list[str] = []
        self.values: list[float] = []
        self.color_index = color_index
        self.x_label = ""
        self.empty_text = "no data"
        self.bar_width = 0.6
        """Fraction of a slot a bar fills (histograms use wider, touching bars)."""

    def set_bars(
        self,
        labels: list[str],
        values: list[float],
        *,
        title: str | None = None,
        x_label: str | None = None,
    ) -> None:
        self.labels = list(labels)
        self.values = list(values)
        if title is not None:
            self.title = title
        if x_label is not None:
            self.x_label = x_label
        self.refresh()

    def render(self) -> RenderResult:
        if not self.values:
            return Text(self.empty_text, style="dim", justify="center")
        plt = self.plt
        plt.clear_figure()
        positions = list(range(1, len(self.values) + 1))
        n = len(self.values)
        plt.bar(
            positions,
            self.values,
            color=series_color(self.color_index),
            width=self.bar_width if n < 40 else 1.0,
        )
        # A handful of bars would each be a wall: keep room for at least MIN_SLOTS.
        extra = max(0.0, (MIN_SLOTS - n) / 2)
        plt.xlim(0.5 - extra, n + 0.5 + extra)
        if all(float(v).is_integer() for v in self.values):
            top = max(self.values) or 1
            ticks = _int_ticks(top, max(2, (self.size.height - 3) // 2))
            plt.yticks(ticks, [str(t) for t in ticks])
            plt.ylim(0, top)
        room = max(1, (self.size.width - 8) // max(6, max(len(lbl) for lbl in self.labels) + 2))
        every = max(1, -(-len(self.labels) // room))
        shown = [
            (p, lbl) for i, (p, lbl) in enumerate(zip(positions, self.labels)) if i % every == 0
        ]
        plt.xticks([p for p, _ in shown], [lbl for _, lbl in shown])
        if self.title:
            plt.title(self.title)
        if self.x_label and self.size.height >= 12:
            plt.xlabel(self.x_label)
        return super().render()
