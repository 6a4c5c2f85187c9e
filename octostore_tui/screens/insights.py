"""Insights, the home screen: hundreds of runs at a glance.

Everything here comes from one ``octostore/insights`` call (computed in the
daemon over the index, so the screen costs the same for 10 runs or 10,000):
runs by status, runs per day, the best runs for each key metric, the
distribution of the chosen metric and the parameters that move it most.

Moving the cursor in the best-runs table chooses the metric; ``l`` flips
whether lower or higher is better for it; ``enter`` opens the run under the
cursor.  A change in the repo refreshes the screen (debounced, one request).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from textual import on, work
from textual.binding import Binding, BindingType
from textual.timer import Timer
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from .. import format as fmt
from ..daemon_link import LinkError
from ..messages import DaemonLost, DaemonReady, FirstData, OpenRun, RunsChanged
from ..widgets.bar_chart import BarChart
from ..widgets.hbars import HBars
from ..widgets.notice import Notice
from .base import LinkedScreen

STATUS_ORDER = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
STATUS_BAR = {
    "RUNNING": "$accent",
    "SCHEDULED": "$secondary",
    "FINISHED": "$success",
    "FAILED": "$error",
    "KILLED": "$warning",
}
TOP_N = 5
REFRESH_EVERY = 0.5
"""Seconds a live change waits before Insights asks the daemon again (bursts share one)."""
EXPERIMENT_BARS = 4
SOURCES_EVERY = 10.0
"""Seconds between looks at the stores' state (warnings come and go without a run change)."""
INFLUENCE_NOTE = (
    "[dim]How far the metric's mean moves across a parameter's values, in standard "
    "deviations of the metric (numeric parameters in quintiles). A screening "
    'measure, not a causal one; "best" is the value with the best mean.[/dim]'
)


class InsightsScreen(LinkedScreen):
    HELP = (
        "Insights sums up every run of the repo. Move through the best-runs table to pick a "
        "metric: its distribution and the parameters that move it most follow. Press l to "
        "flip whether lower or higher is better, enter to open the run under the cursor."
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_best", "Open run", show=False),
        Binding("l", "flip_direction", "Lower/higher better"),
        Binding("r", "refresh", "Refresh"),
        Binding("w", "warnings", "Warnings", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(name="insights")
        self.data: dict[str, Any] | None = None
        self.metric: str | None = None
        self.lower: dict[str, bool] = {}
        """Per-metric override of lower-is-better (``l``)."""
        self._best_cells: dict[tuple[int, int], str] = {}
        self._metric_rows: list[str] = []
        self._first = True
        self._refresh_timer: Timer | None = None
        self.warnings: list[str] = []
        """The stores' standing warnings (a tracking server out of reach, a bad file)."""

    def compose(self):
        yield Header()
        yield Static("", id="summary")
        yield Notice(id="notice")
        with VerticalScroll(id="insights-body"):
            with Horizontal(id="insights-top"):
                with Vertical(id="status-panel", classes="panel") as panel:
                    panel.border_title = "Runs by status"
                    yield HBars(id="status-bars")
                    yield Static("[b]By experiment[/b]", id="by-exp-title")
                    yield HBars(id="exp-bars")
                chart = BarChart("", color_index=0, id="per-day", classes="panel")
                chart.border_title = "Runs per day (UTC)"
                yield chart
            with Vertical(id="best-panel", classes="panel") as panel:
                panel.border_title = "Best runs per metric"
                panel.border_subtitle = "enter opens the run · l flips lower/higher is better"
                yield DataTable(id="best", cursor_type="cell", zebra_stripes=True)
            with Horizontal(id="insights-bottom"):
                chart = BarChart("", color_index=2, id="distribution", classes="panel")
                chart.border_title = "Distribution"
                chart.bar_width = 0.85
                yield chart
                with Vertical(id="influence-panel", classes="panel") as panel:
                    panel.border_title = "What moves it"
                    yield HBars(id="influence")
                    yield Static(INFLUENCE_NOTE, id="influence-note")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#notice", Notice).display = False
        self.query_one("#insights-body").display = False
        self.query_one("#summary", Static).update("connecting to the daemon…")
        table = self.query_one("#best", DataTable)
        table.add_columns("Metric", "Better", *[f"#{i + 1}" for i in range(TOP_N)])
        # Keep the metric's name and direction in view when a narrow terminal scrolls the runs.
        table.fixed_columns = 2
        self.load()
        self.set_interval(SOURCES_EVERY, self.refresh_sources)

    # -- data -----------------------------------------------------------------------------
    @work(exclusive=True, group="insights", exit_on_error=False)
    async def load(self) -> None:
        try:
            params: dict[str, Any] = {}
            if self.metric:
                params["metric"] = self.metric
                if self.metric in self.lower:
                    params["lower_is_better"] = self.lower[self.metric]
            info, exps, data = await asyncio.gather(
                self.link.call("octostore/open"),
                self.link.call("octostore/experiments"),
                self.link.call("octostore/insights", **params),
            )
        except LinkError as err:
            self.show_problem(err.title, err.message + " Press r to retry.", error=True)
            return
        self.show(info, data, exps.get("experiments") or [])

    def show_problem(self, title: str, message: str, error: bool = False) -> None:
        self.query_one("#insights-body").display = False
        self.query_one("#notice", Notice).show(title, message, error=error)
        self.query_one("#summary", Static).update("")

    def show(
        self,
        info: dict[str, Any],
        data: dict[str, Any],
        experiments: list[dict[str, Any]] | None = None,
    ) -> None:
        self.data = data
        root = info.get("root", "")
        sources = info.get("sources") or []
        n_runs = data.get("total", 0)
        self.sub_title = fmt.home_path(root)
        self.show_summary(info, n_runs)
        notice = self.query_one("#notice", Notice)
        body = self.query_one("#insights-body")
        if not sources:
            notice.show(
                "No MLflow data here",
                f"No MLflow store (mlruns/ or mlflow.db) was found in {fmt.home_path(root)}; "
                "log a run with MLflow there, or open another folder with "
                "`octostore-tui DIR`.",
            )
            body.display = False
            self._first_data()
            return
        if n_runs == 0:
            notice.show(
                "No runs yet",
                f"The MLflow store in {fmt.home_path(root)} has no active runs; train "
                "something with MLflow logging and the runs appear here as they are written.",
            )
            body.display = False
            self._first_data()
            return
        notice.display = False
        body.display = True
        self.metric = data.get("metric")
        self._show_status(data)
        self._show_experiments(experiments or [])
        self._show_per_day(data)
        self._show_best(data)
        self._show_distribution(data)
        self._show_influence(data)
        self._first_data()

    def show_summary(self, info: dict[str, Any], n_runs: int | None = None) -> None:
        """Runs, experiments and stores; a store's standing warnings on a line of their own."""
        root = info.get("root", "")
        sources = info.get("sources") or []
        if n_runs is None:
            n_runs = (self.data or {}).get("total", info.get("runs", 0))
        exps = info.get("experiments", 0)
        src = ", ".join(
            f"{fmt.marked(_source_name(s, root))} ({fmt.marked(s.get('kind'))}"
            + (" [$warning]⚠[/]" if _source_warnings(s) else "")
            + ")"
            for s in sources
        )
        summary = (
            f"[b]{n_runs}[/b] run{'s' if n_runs != 1 else ''} in [b]{exps}[/b] "
            f"experiment{'s' if exps != 1 else ''}  ·  stores: {src or 'none'}"
        )
        self.warnings = root_warnings(info)
        if self.warnings:
            more = len(self.warnings) - 1
            summary += f"\n[$warning]⚠ {fmt.marked(self.warnings[0])}[/]" + (
                f"  [dim](+{more} more: w lists them)[/dim]" if more else ""
            )
        self.query_one("#summary", Static).update(summary)

    @work(exclusive=True, group="sources", exit_on_error=False)
    async def refresh_sources(self) -> None:
        """A tracking server that stops answering changes no run: ask for the stores' state."""
        if self.data is None or not self.link.connected:
            return
        try:
            info = await self.link.call("octostore/open")
        except LinkError:
            return
        self.show_summary(info)

    def action_warnings(self) -> None:
        if not self.warnings:
            self.notify("No store of this repo has a warning.", title="Warnings", timeout=4)
            return
        self.notify(
            "\n".join(f"• {fmt.shown(w)}" for w in self.warnings),
            title=f"{len(self.warnings)} warning{'s' if len(self.warnings) != 1 else ''}",
            severity="warning",
            markup=False,
            timeout=20,
        )

    def _first_data(self) -> None:
        if self._first:
            self._first = False
            self.post_message(FirstData())

    def _show_status(self, data: dict[str, Any]) -> None:
        counts = data.get("by_status") or {}
        order = [s for s in STATUS_ORDER if s in counts] + sorted(set(counts) - set(STATUS_ORDER))
        items = [
            (
                f"{fmt.STATUS_ICON.get(s, ' ')} {s.lower()}",
                counts[s],
                str(counts[s]),
                STATUS_BAR.get(s, "$primary"),
            )
            for s in order
        ]
        self.query_one("#status-bars", HBars).set_items(items, "no runs")

    def _show_experiments(self, exps: list[dict[str, Any]]) -> None:
        top = sorted(
            (e for e in exps if e.get("active_runs")), key=lambda e: (-e["active_runs"], e["name"])
        )[:EXPERIMENT_BARS]
        items = [(fmt.shown(e["name"]), e["active_runs"], str(e["active_runs"]), "$secondary")
                 for e in top]
        rest = len([e for e in exps if e.get("active_runs")]) - len(top)
        if rest > 0:
            items.append((f"{rest} more", 0, "", "$secondary"))
        self.query_one("#exp-bars", HBars).set_items(items, "no experiment has runs")

    def _show_per_day(self, data: dict[str, Any]) -> None:
        days = _fill_days(data.get("per_day") or [])
        labels = [d[5:] if len(days) > 1 else d for d, _ in days]
        self.query_one("#per-day", BarChart).set_bars(labels, [n for _, n in days])

    def _show_best(self, data: dict[str, Any]) -> None:
        table = self.query_one("#best", DataTable)
        keep = table.cursor_coordinate
        # The rebuild moves the cursor: those moves must not read as the user choosing a metric.
        with table.prevent(DataTable.CellHighlighted):
            self._fill_best(table, data, keep)
        n = len(self._metric_rows)
        table.styles.height = n + 1 if n else 2

    def _fill_best(self, table: DataTable, data: dict[str, Any], keep: Any) -> None:
        table.clear()
        self._best_cells.clear()
        self._metric_rows = []
        # Run names get what the width leaves after metric, direction and the values.
        name_w = max(12, min(32, (self.size.width - 30) // TOP_N - 10))
        for r, km in enumerate(data.get("key_metrics") or []):
            key = km["key"]
            self._metric_rows.append(key)
            low = km.get("lower_is_better")
            cells = []
            for c, best in enumerate((km.get("best") or [])[:TOP_N]):
                self._best_cells[(r, c + 2)] = best["run_id"]
                cells.append(
                    f"{fmt.num(best.get('value'))}  {fmt.shorten(fmt.run_label(best), name_w)}"
                )
            cells += [""] * (TOP_N - len(cells))
            label = fmt.cell(key, "bold") if key == self.metric else fmt.cell(key)
            table.add_row(label, "↓ lower" if low else "↑ higher", *[fmt.cell(c) for c in cells])
        if self._metric_rows:
            row = self._metric_rows.index(self.metric) if self.metric in self._metric_rows else 0
            col = max(keep.column, 2)
            table.move_cursor(row=row, column=col, animate=False)

    def _show_distribution(self, data: dict[str, Any]) -> None:
        dist = data.get("distribution") or {}
        edges, counts = dist.get("edges") or [], dist.get("counts") or []
        labels = [fmt.num(edges[i], 3) for i in range(len(counts))] if edges else []
        chart = self.query_one("#distribution", BarChart)
        chart.border_title = (f"Distribution of {fmt.marked(self.metric)}" if self.metric
                              else "Distribution")
        chart.set_bars(labels, counts, x_label=fmt.shown(self.metric or ""))

    def _show_influence(self, data: dict[str, Any]) -> None:
        infl = data.get("influence") or []
        items = [
            (
                fmt.shown(d["param"]),
                float(d.get("score") or 0),
                f"{d.get('score', 0):.2f}  best {fmt.shown(d.get('best_value'))}",
                "$primary",
            )
            for d in infl
        ]
        metric = self.metric or "the metric"
        self.query_one("#influence-panel").border_title = f"What moves {metric}"
        self.query_one("#influence", HBars).set_items(
            items, "needs 3+ runs with a metric and a parameter that varies"
        )

    # -- events -----------------------------------------------------------------------------
    @on(DataTable.CellHighlighted, "#best")
    def _metric_highlighted(self, event: DataTable.CellHighlighted) -> None:
        row = event.coordinate.row
        if 0 <= row < len(self._metric_rows):
            key = self._metric_rows[row]
            if key != self.metric:
                self.metric = key
                self.load()

    @on(DataTable.CellSelected, "#best")
    def _cell_selected(self, event: DataTable.CellSelected) -> None:
        self._open_at(event.coordinate.row, event.coordinate.column)

    def _open_at(self, row: int, column: int) -> None:
        rid = self._best_cells.get((row, max(column, 2)))
        if rid:
            self.post_message(OpenRun(rid))

    def action_open_best(self) -> None:
        c = self.query_one("#best", DataTable).cursor_coordinate
        self._open_at(c.row, c.column)

    def action_flip_direction(self) -> None:
        if not self.metric or not self.data:
            return
        current = next(
            (
                km.get("lower_is_better")
                for km in self.data.get("key_metrics") or []
                if km["key"] == self.metric
            ),
            fmt.lower_is_better(self.metric),
        )
        self.lower[self.metric] = not current
        self.notify(f"{self.metric}: {'lower' if not current else 'higher'} is better", timeout=2)
        self.load()

    def action_refresh(self) -> None:
        if not self.link.connected:
            self.link.retry()
        self.load()

    def on_runs_changed(self, message: RunsChanged) -> None:
        # A training loop logs many times a second: refresh at most twice a second, once per
        # burst (the message already coalesced the flood that arrived while we were busy).
        if self._refresh_timer is None:
            self._refresh_timer = self.set_timer(REFRESH_EVERY, self._timed_refresh)

    def _timed_refresh(self) -> None:
        self._refresh_timer = None
        self.load()

    def on_daemon_ready(self, message: DaemonReady) -> None:
        self.load()

    def on_daemon_lost(self, message: DaemonLost) -> None:
        if self.data is None:
            self.show_problem(message.title, message.message + " Press r to retry.", error=True)

    def palette_commands(self):
        return [
            (
                "Insights: flip lower/higher is better",
                "For the chosen metric",
                self.action_flip_direction,
            ),
            (
                "Insights: open the best run",
                "Of the metric under the cursor",
                self.action_open_best,
            ),
            ("Insights: refresh", "Ask the daemon again", self.action_refresh),
        ]


def _fill_days(days: list[list[Any]]) -> list[tuple[str, int]]:
    """Days with runs plus the empty days between them (when the span is at most ~4 months)."""
    import datetime as dt

    if len(days) < 2:
        return [(d, n) for d, n in days]
    try:
        first = dt.date.fromisoformat(days[0][0])
        last = dt.date.fromisoformat(days[-1][0])
    except ValueError:
        return [(d, n) for d, n in days]
    if (last - first).days > 120:
        return [(d, n) for d, n in days]
    counts = {d: n for d, n in days}
    out = []
    cur = first
    while cur <= last:
        key = cur.isoformat()
        out.append((key, counts.get(key, 0)))
        cur += dt.timedelta(days=1)
    return out


def _source_warnings(source: dict[str, Any]) -> list[str]:
    items = [str(w) for w in source.get("warnings") or []]
    first = source.get("warning")
    if first and first not in items:
        items.insert(0, str(first))
    error = (source.get("remote") or {}).get("error")
    if source.get("state") == "error" and error and not items:
        items.append(str(error))
    return items


def root_warnings(info: dict[str, Any]) -> list[str]:
    """Every standing warning of a root (``octostore/open`` or a root of ``octostore/status``):
    each store's, named by the store, then the root's own that no store already said."""
    root = info.get("root", "")
    out: list[str] = []
    said: set[str] = set()
    for s in info.get("sources") or []:
        for w in _source_warnings(s):
            said.add(w)
            line = f"{_source_name(s, root)}: {w}"
            if line not in out:
                out.append(line)
    for w in info.get("warnings") or []:
        if str(w) not in said and str(w) not in out:
            out.append(str(w))
    return out


def _source_name(source: dict[str, Any], root: str) -> str:
    path = source.get("path") or ""
    if root and path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")) + 1 :]
    return fmt.home_path(path)
