"""ChartsPanel: pick metrics, choose the x axis, smoothing and log scale; one chart per metric.

The panel holds no data source.  When the metrics or the x axis change it
posts :class:`ChartsPanel.HistoryWanted`; the screen fetches
``octostore/metric_history`` in a worker and hands the series back with
:meth:`set_history`.  Smoothing and log scale only redraw.  Every run keeps
its colour (its position in ``runs``) across all charts and the legend.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import SelectionList, Static
from textual.widgets.selection_list import Selection

from .. import format as fmt
from .metric_chart import X_LABELS, X_MODES, MetricChart, Series
from .palette import hex_color

SMOOTHING = (0.0, 0.6, 0.8, 0.95)
MAX_CHARTS = 6


class ChartsPanel(Horizontal):
    DEFAULT_CSS = """
    ChartsPanel { height: 1fr; }
    ChartsPanel #chart-side { width: 30; height: 1fr; }
    ChartsPanel #metric-pick { height: 1fr; min-height: 4; border: none; }
    ChartsPanel #chart-legend { height: auto; padding: 0 1; }
    ChartsPanel #chart-stack { width: 1fr; height: 1fr; }
    ChartsPanel MetricChart { min-height: 10; }
    """

    class HistoryWanted(Message):
        def __init__(self, panel: ChartsPanel, keys: list[str], x_mode: str) -> None:
            super().__init__()
            self.panel = panel
            self.keys = keys
            self.x_mode = x_mode

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.keys: list[str] = []
        self.selected: list[str] = []
        self.runs: list[tuple[str, str]] = []
        """(run_id, label) in colour order."""
        self.x_mode = "step"
        self.smoothing = 0.0
        self.log_y = False
        self.history: dict[str, list[Series]] = {}

    def compose(self):
        with Vertical(id="chart-side"):
            yield Static("[b]Metrics[/b] [dim](space picks)[/dim]", classes="panel-title")
            yield SelectionList[str](id="metric-pick")
            yield Static("", id="chart-legend")
        yield VerticalScroll(id="chart-stack")

    # -- inputs from the screen ------------------------------------------------------------
    def set_runs(self, runs: list[tuple[str, str]]) -> None:
        self.runs = runs
        self._legend()

    def set_keys(self, keys: list[str], preferred: list[str]) -> None:
        """Offer ``keys``; keep the current choice if still offered, else ``preferred``."""
        self.keys = keys
        keep = [k for k in self.selected if k in keys]
        self.selected = keep or [k for k in preferred if k in keys][:2] or keys[:1]
        pick = self.query_one("#metric-pick", SelectionList)
        with self.prevent(SelectionList.SelectedChanged):
            pick.clear_options()
            pick.add_options([Selection(fmt.cell(k), k, k in self.selected) for k in keys])
        self._rebuild_charts()
        self.want()

    def want(self) -> None:
        if self.selected:
            self.post_message(self.HistoryWanted(self, list(self.selected), self.x_mode))

    def set_history(self, x_mode: str, series: list[dict[str, Any]]) -> None:
        if x_mode != self.x_mode:
            return
        colour = {rid: i for i, (rid, _) in enumerate(self.runs)}
        label = dict(self.runs)
        by_key: dict[str, list[Series]] = {}
        for s in series:
            rid = s.get("run_id", "")
            by_key.setdefault(s.get("key", ""), []).append(
                Series(
                    label=label.get(rid, rid[:8]),
                    xs=s.get("x") or [],
                    ys=s.get("y") or [],
                    color_index=colour.get(rid, 0),
                    points=s.get("points", 0),
                )
            )
        self.history.update(by_key)
        for chart in self.query(MetricChart):
            if chart.key in by_key:
                chart.pending = False
                chart.set_series(
                    by_key[chart.key],
                    x_mode=self.x_mode,
                    smoothing=self.smoothing,
                    log_y=self.log_y,
                )
        self._legend()

    # -- charts -----------------------------------------------------------------------------
    def _rebuild_charts(self) -> None:
        stack = self.query_one("#chart-stack", VerticalScroll)
        wanted = self.selected[:MAX_CHARTS]
        have = {c.key: c for c in stack.query(MetricChart)}
        for key, chart in have.items():
            if key not in wanted:
                chart.remove()
        for key in wanted:
            if key not in have:
                chart = MetricChart(key)
                chart.pending = True
                if key in self.history:
                    chart.set_series(
                        self.history[key],
                        x_mode=self.x_mode,
                        smoothing=self.smoothing,
                        log_y=self.log_y,
                    )
                stack.mount(chart)
        stack.set_class(len(wanted) > 2, "-many")
        if not wanted:
            stack.remove_children()

    @on(SelectionList.SelectedChanged, "#metric-pick")
    def _picked(self, event: SelectionList.SelectedChanged) -> None:
        order = {k: i for i, k in enumerate(self.keys)}
        self.selected = sorted(event.selection_list.selected, key=lambda k: order.get(k, 0))
        self._rebuild_charts()
        self.want()

    def _legend(self) -> None:
        text = Text()
        if len(self.runs) > 1:
            for i, (_rid, label) in enumerate(self.runs):
                text.append("━━ ", style=hex_color(i))
                text.append(fmt.shorten(label, 24) + "\n")
        text.append(f"x: {X_LABELS[self.x_mode]}", style="bold")
        text.append("  (x)\n", style="dim")
        text.append(
            f"smoothing: {self.smoothing:g}" if self.smoothing else "smoothing: off", style="bold"
        )
        text.append("  (s)\n", style="dim")
        text.append(f"y: {'log' if self.log_y else 'linear'}", style="bold")
        text.append("  (l)", style="dim")
        self.query_one("#chart-legend", Static).update(text)

    # -- actions ----------------------------------------------------------------------------
    def action_cycle_x(self) -> None:
        self.set_x_mode(X_MODES[(X_MODES.index(self.x_mode) + 1) % len(X_MODES)])

    def set_x_mode(self, mode: str) -> None:
        self.x_mode = mode
        self.history.clear()
        for chart in self.query(MetricChart):
            chart.pending = True
        self._legend()
        self.want()

    def action_cycle_smoothing(self) -> None:
        i = SMOOTHING.index(self.smoothing) if self.smoothing in SMOOTHING else 0
        self.set_smoothing(SMOOTHING[(i + 1) % len(SMOOTHING)])

    def set_smoothing(self, value: float) -> None:
        self.smoothing = value
        for chart in self.query(MetricChart):
            chart.set_options(smoothing=value)
        self._legend()

    def action_toggle_log(self) -> None:
        self.log_y = not self.log_y
        for chart in self.query(MetricChart):
            chart.set_options(log_y=self.log_y)
        self._legend()
