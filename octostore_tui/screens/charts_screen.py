"""ChartsScreen: what run detail and compare share about their metric charts.

Both hold a :class:`~octostore_tui.widgets.charts_panel.ChartsPanel` in a tab:
the same keys (x axis, smoothing, log scale, which switch to the charts tab
first), the same palette entries, and the same fetch of
``octostore/metric_history`` when the panel asks for histories.  A subclass
names its tabs and panel and says which runs are charted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import on, work
from textual.binding import Binding
from textual.widgets import TabbedContent

from ..daemon_link import LinkError
from ..widgets.charts_panel import ChartsPanel
from .base import LinkedScreen

CHART_BINDINGS = [
    Binding("x", "chart('cycle_x')", "X axis"),
    Binding("s", "chart('cycle_smoothing')", "Smooth"),
    Binding("l", "chart('toggle_log')", "Log y"),
]
"""Spliced into a subclass's ``BINDINGS`` where its footer wants them."""


def chart_points(width: int) -> int:
    """Points to ask for: two per braille column is all a terminal can show."""
    return max(100, min(2000, width * 2))


class ChartsScreen(LinkedScreen):
    TABS_ID = ""
    """Id of the screen's TabbedContent."""
    CHARTS_ID = ""
    """Id of its ChartsPanel."""
    CHARTS_TAB = "charts"

    @property
    def charts(self) -> ChartsPanel:
        return self.query_one(f"#{self.CHARTS_ID}", ChartsPanel)

    def charted_runs(self) -> list[str]:
        """The run ids whose histories the charts show, in colour order."""
        raise NotImplementedError

    @on(ChartsPanel.HistoryWanted)
    def _history_wanted(self, event: ChartsPanel.HistoryWanted) -> None:
        self.load_history(event.keys, event.x_mode)

    @work(exclusive=True, group="history", exit_on_error=False)
    async def load_history(self, keys: list[str], x_mode: str) -> None:
        width = self.charts.query_one("#chart-stack").size.width or 120
        try:
            reply = await self.link.call(
                "octostore/metric_history",
                run_ids=self.charted_runs(),
                keys=keys,
                x=x_mode,
                max_points=chart_points(width),
            )
        except LinkError as err:
            self.report(err)
            return
        self.charts.set_history(x_mode, reply.get("series") or [])

    def action_chart(self, what: str) -> None:
        tabs = self.query_one(f"#{self.TABS_ID}", TabbedContent)
        if tabs.active != self.CHARTS_TAB:
            tabs.active = self.CHARTS_TAB
        getattr(self.charts, f"action_{what}")()

    def chart_commands(self, prefix: str) -> list[tuple[str, str, Callable[[], Any]]]:
        """The palette's chart entries, titled ``"<prefix>: ..."``."""
        return [
            (
                f"{prefix}: switch the x axis",
                "step, wall time, time since start",
                lambda: self.action_chart("cycle_x"),
            ),
            (
                f"{prefix}: cycle smoothing",
                "off, 0.6, 0.8, 0.95",
                lambda: self.action_chart("cycle_smoothing"),
            ),
            (f"{prefix}: toggle log scale", "y axis", lambda: self.action_chart("toggle_log")),
        ]
