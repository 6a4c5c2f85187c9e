"""Compare: two or more runs side by side (``octostore/compare``) and overlaid charts.

Parameters that differ are highlighted (``o`` hides the equal ones), metrics
sit side by side with the best value of each marked, the charts overlay every
run in its own colour, and the last tab says whether environment and code
differ.  Live changes of any compared run reload the comparison.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from .. import format as fmt
from ..daemon_link import LinkError
from ..messages import OpenRun, RunsChanged
from ..widgets.charts_panel import ChartsPanel
from ..widgets.notice import Notice
from ..widgets.palette import hex_color
from .charts_screen import CHART_BINDINGS, ChartsScreen


class CompareScreen(ChartsScreen):
    HELP = (
        "Runs side by side. Differing parameters are highlighted (o shows only those); the "
        "best value of each metric is marked. Charts overlay every run: x, s and l switch the "
        "x axis, smoothing and log scale. Click a run's column header to open it; escape "
        "goes back."
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("o", "only_differences", "Only differences"),
        *CHART_BINDINGS,
        *[
            Binding(str(i + 1), f"tab('{t}')", t, show=False)
            for i, t in enumerate(("table", "charts", "code"))
        ],
    ]
    TABS_ID = "compare-tabs"
    CHARTS_ID = "cmp-charts"

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__(name="compare")
        self.run_ids = list(run_ids)
        self.data: dict[str, Any] | None = None
        self.only_differences = False
        self.curves: list[str] | None = None
        """Metrics with more than one point in some run: the charts' default choice."""

    def compose(self):
        yield Header()
        yield Static("comparing…", id="compare-summary")
        yield Notice(id="compare-notice")
        with TabbedContent(id="compare-tabs", initial="table"):
            with TabPane("Params & metrics", id="table"):
                with VerticalScroll(id="cmp-table"):
                    yield Static("", id="cmp-params-title", classes="section-title")
                    yield DataTable(id="cmp-params", cursor_type="row", classes="auto-table")
                    yield Static(
                        "[b]Metrics[/b]  [dim]★ best (↓ lower is better, ↑ higher)[/dim]",
                        classes="section-title",
                    )
                    yield DataTable(id="cmp-metrics", cursor_type="row", classes="auto-table")
            with TabPane("Charts", id="charts"):
                yield ChartsPanel(id="cmp-charts")
            with TabPane("Environment & code", id="code"):
                yield Static("", id="cmp-code")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#compare-notice", Notice).display = False
        self.sub_title = f"compare {len(self.run_ids)} runs"
        self.load()

    @work(exclusive=True, group="compare", exit_on_error=False)
    async def load(self) -> None:
        try:
            data = await self.link.call("octostore/compare", run_ids=self.run_ids)
            keys = [m["key"] for m in data.get("metrics") or []]
            if keys and self.curves is None:
                # Which metrics have a history worth a line? (two points each are enough to know)
                probe = await self.link.call(
                    "octostore/metric_history",
                    run_ids=self.run_ids,
                    keys=keys,
                    x="step",
                    max_points=2,
                )
                self.curves = sorted(
                    {s["key"] for s in probe.get("series") or [] if s.get("points", 0) > 1},
                    key=lambda k: (not fmt.lower_is_better(k), k),
                )
        except LinkError as err:
            if self.data is None:
                self.query_one("#compare-notice", Notice).show(err.title, err.message, error=True)
                self.query_one("#compare-tabs").display = False
            else:
                self.report(err)
            return
        first = self.data is None
        self.data = data
        self.show(data, first)

    def _labels(self) -> list[str]:
        assert self.data is not None
        return [fmt.shorten(fmt.run_label(r), 20) for r in self.data.get("runs") or []]

    def show(self, data: dict[str, Any], first: bool) -> None:
        runs = data.get("runs") or []
        self.run_ids = [r["run_id"] for r in runs]
        legend = Text()
        for i, r in enumerate(runs):
            if i:
                legend.append("   ")
            legend.append("━━ ", style=hex_color(i))
            legend.append(fmt.run_label(r), style="bold")
            legend.append(f" {(r.get('status') or '').lower()}", style="dim")
        self.query_one("#compare-summary", Static).update(legend)
        self._show_params(data)
        self._show_metrics(data)
        self._show_code(data)
        panel = self.charts
        panel.set_runs([(r["run_id"], fmt.run_label(r)) for r in runs])
        keys = [m["key"] for m in data.get("metrics") or []]
        if first or keys != panel.keys:
            panel.set_keys(keys, self.curves or [k for k in keys if fmt.lower_is_better(k)] or keys)
        else:
            panel.want()

    def _show_params(self, data: dict[str, Any]) -> None:
        table = self.query_one("#cmp-params", DataTable)
        table.clear(columns=True)
        table.add_column("Parameter")
        for i, label in enumerate(self._labels()):
            table.add_column(Text(label, style=f"bold {hex_color(i)}"))
        differing = 0
        for p in data.get("params") or []:
            differs = p.get("differs")
            differing += bool(differs)
            if self.only_differences and not differs:
                continue
            style = "bold $warning" if differs else ""
            key = Text(("≠ " if differs else "  ") + fmt.shown(p["key"]), style=self._style(style))
            cells = [
                Text("—" if v is None else fmt.shown(v), style=self._style(style))
                for v in p.get("values") or []
            ]
            table.add_row(key, *cells)
        if table.row_count == 0:
            table.add_row(
                Text(
                    "no parameters differ" if self.only_differences else "no parameters",
                    style="dim",
                ),
                *[""] * len(self._labels()),
            )
        total = len(data.get("params") or [])
        only = (
            "  [dim](only those shown: o shows all)[/dim]"
            if self.only_differences
            else ("  [dim](o shows only those)[/dim]")
        )
        self.query_one("#cmp-params-title", Static).update(
            f"[b]Parameters[/b]  {differing} of {total} differ{only}"
        )

    def _show_metrics(self, data: dict[str, Any]) -> None:
        table = self.query_one("#cmp-metrics", DataTable)
        table.clear(columns=True)
        table.add_column("Metric")
        for i, label in enumerate(self._labels()):
            table.add_column(Text(label, style=f"bold {hex_color(i)}"))
        for m in data.get("metrics") or []:
            best = m.get("best")
            arrow = "↓" if m.get("lower_is_better") else "↑"
            cells = []
            for i, v in enumerate(m.get("values") or []):
                text = fmt.num(v) if v is not None else "—"
                if i == best:
                    cells.append(Text(f"★ {text}", style=self._style("bold $success"),
                                      justify="right"))
                else:
                    cells.append(Text(text, justify="right"))
            table.add_row(Text(f"{fmt.shown(m['key'])} {arrow}"), *cells)
        if table.row_count == 0:
            table.add_row(Text("no metrics", style="dim"), *[""] * len(self._labels()))

    def _show_code(self, data: dict[str, Any]) -> None:
        env = data.get("environment") or {}
        code = data.get("code") or {}
        labels = [fmt.marked(fmt.run_label(r)) for r in data.get("runs") or []]
        width = max((len(lbl) for lbl in labels), default=8) + 2
        lines = [
            "[b]Environment[/b]  "
            + ("[$warning]differs[/]" if env.get("differs") else "[$success]same for all runs[/]")
        ]
        for lbl, v in zip(labels, env.get("values") or []):
            lines.append(f"  {lbl:<{width}} {fmt.marked(v[:16]) if v else '[dim]not captured[/dim]'}")
        lines += [
            "",
            "[b]Code[/b]  "
            + (
                "[$warning]different commits[/]"
                if code.get("differs")
                else "[$success]same commit[/]"
            ),
        ]
        for lbl, c, d in zip(labels, code.get("commits") or [], code.get("dirty") or []):
            state = ""
            if d is not None:
                state = (
                    "  [$warning]uncommitted changes[/]"
                    if str(d).lower() in ("true", "1")
                    else "  clean"
                )
            lines.append(
                f"  {lbl:<{width}} {fmt.marked(c[:12]) if c else '[dim]no commit recorded[/dim]'}{state}"
            )
        self.query_one("#cmp-code", Static).update("\n".join(lines))

    def _style(self, style: str) -> str:
        """Resolve ``$variables`` in a style (rich Text does not know Textual's theme)."""
        if "$" not in style:
            return style
        out = []
        for word in style.split():
            out.append(self.app.theme_variables.get(word[1:], "") if word.startswith("$") else word)
        return " ".join(w for w in out if w)

    def charted_runs(self) -> list[str]:
        return self.run_ids

    def on_runs_changed(self, message: RunsChanged) -> None:
        if message.fresh or message.runs & set(self.run_ids):
            self.load()

    @on(DataTable.HeaderSelected)
    def _header(self, event: DataTable.HeaderSelected) -> None:
        i = event.column_index - 1
        if 0 <= i < len(self.run_ids):
            self.post_message(
                OpenRun(self.run_ids[i], overlay=[r for r in self.run_ids if r != self.run_ids[i]])
            )

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_only_differences(self) -> None:
        self.only_differences = not self.only_differences
        if self.data is not None:
            self._show_params(self.data)
        self.query_one("#compare-tabs", TabbedContent).active = "table"

    def action_tab(self, tab: str) -> None:
        self.query_one("#compare-tabs", TabbedContent).active = tab

    def palette_commands(self):
        return [
            ("Compare: only differing parameters", "Toggle", self.action_only_differences),
            *self.chart_commands("Compare"),
            ("Compare: back", "Return to the previous screen", self.action_back),
        ]
