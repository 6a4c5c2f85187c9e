"""Experiments: the experiment list and the runs grid of the chosen one.

The list shows each experiment's run count and last activity.  Choosing one
fills the grid: run name, status, start, duration and the chosen params and
metrics as columns.  The grid pages through ``octostore/runs`` (200 rows a
page, fetched as they scroll into view); filter and sort are the daemon's, in
MLflow's syntax and semantics, so a bad filter comes back as the daemon's one
sentence and is shown under the filter box.

Live changes cost one small request: ``octostore/runs`` with ``since_clock``
and the grid's query returns only the runs that changed; rows already on
screen are patched in place, and only a new or vanished run (or a change to
the sort key) re-reads the visible page.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Input, OptionList, Static

from .. import format as fmt
from ..daemon_link import BAD_FILTER, LinkError
from ..messages import CompareRuns, DaemonReady, OpenRun, RunsChanged
from ..widgets.runs_grid import RunsGrid, make_columns
from .base import LinkedScreen
from .columns import ColumnChooser

DEFAULT_PARAMS = 8
DEFAULT_METRICS = 8
ALL = "__all__"
_FIRST_DIRECTION = {"run_name": True, "status": True, "start_time": False}
"""Ascending first for names and status, newest first for times; metrics by their direction."""


def _exp_prompt(name: str, runs: int, last: int | None) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(fmt.shown(name), style="bold")
    text.append(f"\n{runs} run{'s' if runs != 1 else ''}", style="dim")
    if last:
        text.append(f" · {fmt.ago(last)}", style="dim")
    return text


class ExperimentsScreen(LinkedScreen):
    HELP = (
        "Pick an experiment on the left; its runs fill the grid. Type a filter in MLflow's "
        "search syntax (metrics.rmse < 0.7 and params.max_depth = '8') and press enter. "
        "Arrows move, s sorts by the cursor's column (or click a header), space marks runs, "
        "c compares the marked runs, enter opens a run, k chooses columns, d shows deleted "
        "runs too."
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("k", "columns", "Columns"),
        Binding("d", "toggle_deleted", "Deleted"),
        Binding("c", "compare", "Compare"),
        Binding("escape", "escape", "Clear", show=False),
        Binding("r", "refresh", "Refresh", show=False),
        Binding("tab", "app.focus_next", "Focus", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(name="experiments")
        self.experiments: list[dict[str, Any]] = []
        self.experiment: str | None = None
        """Experiment key, or None for all experiments."""
        self.filter = ""
        self.order_by: list[str] = []
        self.view = "active"
        self.columns: list[str] | None = None
        """Chosen param/metric/tag column ids; None until the first page picks defaults."""
        self.keys: dict[str, list[str]] = {"params": [], "metrics": [], "tags": []}
        self.clock: str | None = None
        self.total: int | None = None
        self._exp_rows: list[str] = []
        self._select_after_load: str | None = None

    def compose(self):
        yield Header()
        with Horizontal(id="experiments-body"):
            with Vertical(id="exp-pane", classes="panel") as pane:
                pane.border_title = "Experiments"
                yield OptionList(id="experiments")
            with Vertical(id="runs-pane"):
                yield Input(
                    placeholder="filter (MLflow syntax): metrics.rmse < 0.7 and "
                    "params.max_depth = '8'",
                    id="filter",
                )
                yield Static("", id="grid-status")
                yield RunsGrid(id="grid")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#grid", RunsGrid).focus()
        self.load_experiments()

    @property
    def grid(self) -> RunsGrid:
        return self.query_one("#grid", RunsGrid)

    # -- experiments ------------------------------------------------------------------------
    @work(exclusive=True, group="experiments", exit_on_error=False)
    async def load_experiments(self) -> None:
        try:
            reply = await self.link.call("octostore/experiments")
        except LinkError as err:
            self.set_status(f"[$error]{fmt.marked(err.title)}:[/] {fmt.marked(err.message)}")
            return
        self.show_experiments(reply.get("experiments") or [])

    def show_experiments(self, exps: list[dict[str, Any]]) -> None:
        self.experiments = exps
        self.sub_title = fmt.home_path(self.link.root_path)
        options = self.query_one("#experiments", OptionList)
        current = self.experiment
        options.clear_options()
        self._exp_rows = [ALL]
        total = sum(e.get("active_runs", 0) for e in exps)
        last = max((e.get("last_activity") or 0 for e in exps), default=0)
        options.add_option(_exp_prompt("All experiments", total, last or None))
        for e in exps:
            self._exp_rows.append(e["key"])
            options.add_option(
                _exp_prompt(e["name"], e.get("active_runs", 0), e.get("last_activity"))
            )
        if self.columns is None and current is None:
            # First load: open the experiment with the most runs when there is only one with runs.
            with_runs = [e for e in exps if e.get("active_runs")]
            target = with_runs[0]["key"] if len(with_runs) == 1 else ALL
            self._move_exp_cursor(target)
            self.select_experiment(None if target == ALL else target)
        elif current is not None and current not in self._exp_rows:
            # The chosen experiment went away (deleted, or its store vanished): show all runs.
            self._move_exp_cursor(ALL)
            self.select_experiment(None)
        else:
            self._move_exp_cursor(current or ALL)

    def _move_exp_cursor(self, key: str) -> None:
        if key in self._exp_rows:
            self.query_one("#experiments", OptionList).highlighted = self._exp_rows.index(key)

    @on(OptionList.OptionSelected, "#experiments")
    def _experiment_chosen(self, event: OptionList.OptionSelected) -> None:
        idx = event.option_index
        if 0 <= idx < len(self._exp_rows):
            key = self._exp_rows[idx]
            self.select_experiment(None if key == ALL else key)
            self.grid.focus()

    def select_experiment(self, key: str | None) -> None:
        if key == self.experiment and self.columns is not None:
            return
        self.experiment = key
        self.columns = None
        self.grid.clear_selection()
        self.reload()

    def _experiment_name(self) -> str:
        if self.experiment is None:
            return "all experiments"
        for e in self.experiments:
            if e["key"] == self.experiment:
                return e["name"]
        return self.experiment

    # -- the grid ---------------------------------------------------------------------------
    def query_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"view": self.view}
        if self.experiment is not None:
            params["experiment_ids"] = [self.experiment]
        if self.filter:
            params["filter"] = self.filter
        if self.order_by:
            params["order_by"] = self.order_by
        return params

    def reload(self, keep_cursor: bool = False) -> None:
        self.fetch_first_page(keep_cursor)

    @work(exclusive=True, group="first-page", exit_on_error=False)
    async def fetch_first_page(self, keep_cursor: bool = False) -> None:
        grid = self.grid
        discover = self.columns is None
        params = self.query_params()
        if not discover:
            params["columns"] = self.columns
        gen = grid.reset(None if not discover else grid.columns, keep_cursor=keep_cursor)
        self.set_status("loading…")
        try:
            reply = await self.link.call(
                "octostore/runs", offset=0, limit=self.grid.page_size, **params
            )
        except LinkError as err:
            self.show_error(err)
            grid.show_message(gen, "no runs: the filter is not valid (see below)"
                              if err.code == BAD_FILTER else "no runs: the query failed (see below)")
            return
        self.query_one("#filter", Input).remove_class("-invalid")
        rows = reply.get("runs") or []
        if discover:
            self._discover(rows)
            gen = grid.reset(self._grid_columns(), keep_cursor=keep_cursor)
        self.clock = reply.get("clock")
        self.total = reply.get("total", 0)
        grid.set_page(gen, 0, rows, self.total or 0)
        self.show_status()

    def _discover(self, rows: list[dict[str, Any]]) -> None:
        params: dict[str, int] = {}
        metrics: dict[str, int] = {}
        tags: set[str] = set()
        for r in rows:
            for k in r.get("params") or {}:
                params[k] = params.get(k, 0) + 1
            for k in r.get("metrics") or {}:
                metrics[k] = metrics.get(k, 0) + 1
            tags.update(r.get("tags") or {})
        self.keys = {"params": sorted(params), "metrics": sorted(metrics), "tags": sorted(tags)}
        common_p = sorted(params, key=lambda k: (-params[k], k))[:DEFAULT_PARAMS]
        common_m = sorted(metrics, key=lambda k: (-metrics[k], k))[:DEFAULT_METRICS]
        self.columns = [f"params.{p}" for p in sorted(common_p)] + [
            f"metrics.{m}" for m in sorted(common_m)
        ]

    def _grid_columns(self):
        cols = self.columns or []
        return make_columns(
            [c[7:] for c in cols if c.startswith("params.")],
            [c[8:] for c in cols if c.startswith("metrics.")],
            [c[5:] for c in cols if c.startswith("tags.")],
        )

    @on(RunsGrid.PageWanted)
    def _page_wanted(self, event: RunsGrid.PageWanted) -> None:
        if event.offset == 0 and self.grid.total is None:
            return  # the first page is on its way
        self.fetch_page(event.generation, event.offset)

    @work(group="pages", exit_on_error=False)
    async def fetch_page(self, generation: int, offset: int) -> None:
        params = self.query_params()
        params["columns"] = self.columns or []
        try:
            reply = await self.link.call(
                "octostore/runs", offset=offset, limit=self.grid.page_size, **params
            )
        except LinkError as err:
            self.report(err)
            return
        if self.grid.set_page(generation, offset, reply.get("runs") or [], reply.get("total", 0)):
            self.total = reply.get("total", 0)
            self.show_status()

    def show_error(self, err: LinkError) -> None:
        if err.code == BAD_FILTER:
            self.query_one("#filter", Input).add_class("-invalid")
            self.set_status(f"[$error]Bad filter:[/] {fmt.marked(err.message)}")
            self.notify(fmt.shown(err.message), title="Bad filter", severity="error", timeout=8,
                        markup=False)
        else:
            self.set_status(f"[$error]{fmt.marked(err.title)}:[/] {fmt.marked(err.message)}")
            self.report(err)

    def set_status(self, text: str) -> None:
        self.query_one("#grid-status", Static).update(text)

    def show_status(self) -> None:
        n = self.total or 0
        parts = [f"[b]{n}[/b] run{'s' if n != 1 else ''} in {fmt.marked(self._experiment_name())}"]
        if self.filter:
            parts.append("filtered")
        if self.view != "active":
            parts.append("[$warning]deleted runs shown[/]")
        if self.order_by:
            parts.append(f"sorted by {fmt.marked(self.order_by[0])}")
        marked = len(self.grid.selected)
        if marked:
            parts.append(f"[$accent]{marked} marked[/]" + (" (c compares)" if marked > 1 else ""))
        self.set_status("  ·  ".join(parts))

    # -- live -----------------------------------------------------------------------------
    def on_runs_changed(self, message: RunsChanged) -> None:
        if message.fresh:
            self.load_experiments()
            self.reload(keep_cursor=True)
            return
        if message.experiments or message.removed or message.runs - self.grid.loaded_ids:
            self.load_experiments()
        self.apply_changes(set(message.runs), set(message.removed))

    @work(exclusive=True, group="live", exit_on_error=False)
    async def apply_changes(self, runs: set[str], removed: set[str]) -> None:
        grid = self.grid
        if self.clock is None or grid.total is None:
            return
        params = self.query_params()
        params["columns"] = self.columns or []
        try:
            reply = await self.link.call(
                "octostore/runs", since_clock=self.clock, limit=self.grid.page_size, **params
            )
        except LinkError:
            self.reload(keep_cursor=True)
            return
        if reply.get("is_fresh_instance"):
            self.reload(keep_cursor=True)
            return
        self.clock = reply.get("clock", self.clock)
        changed = reply.get("runs") or []
        loaded = grid.loaded_ids
        got = {r["run_id"] for r in changed}
        gone = set(reply.get("removed") or ()) | removed
        stale = (runs & loaded) - got  # changed runs that no longer match the query
        new = got - loaded
        sort_on_changed = any(not o.startswith("attributes.start_time") for o in self.order_by)
        if new or stale or (gone & loaded) or sort_on_changed or reply.get("next_offset"):
            grid.invalidate_pages()
        else:
            grid.patch_rows(changed)

    def on_daemon_ready(self, message: DaemonReady) -> None:
        if self.grid.total is None:
            self.load_experiments()
            if self.columns is not None:
                self.reload()

    # -- actions ----------------------------------------------------------------------------
    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.filter = event.value.strip()
        self.reload()
        self.grid.focus()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_escape(self) -> None:
        inp = self.query_one("#filter", Input)
        if inp.has_focus:
            self.grid.focus()
        elif self.grid.selected:
            self.grid.clear_selection()
        elif self.filter:
            inp.value = ""
            self.filter = ""
            inp.remove_class("-invalid")
            self.reload()

    @on(RunsGrid.SortRequested)
    def _sort(self, event: RunsGrid.SortRequested) -> None:
        self.sort_by(event.column)

    def sort_by(self, column: str, ascending: bool | None = None) -> None:
        grid = self.grid
        if ascending is None:
            if grid.sort and grid.sort[0] == column:
                ascending = not grid.sort[1]
            elif column.startswith("metrics."):
                ascending = fmt.lower_is_better(column[8:])
            else:
                ascending = _FIRST_DIRECTION.get(column, True)
        clause = fmt.column_order_by(column, ascending)
        if clause is None:
            self.notify(
                "MLflow cannot order runs by duration; sort by Started instead.",
                title="Cannot sort",
                severity="warning",
                timeout=4,
            )
            return
        grid.sort = (column, ascending)
        self.order_by = [clause]
        self.reload()

    def action_columns(self) -> None:
        if self.columns is None:
            return

        def chosen(result: list[str] | None) -> None:
            if result is not None:
                self.columns = result
                self.grid.reset(self._grid_columns())
                self.reload()

        self.app.push_screen(ColumnChooser(self.keys, self.columns), chosen)

    def action_toggle_deleted(self) -> None:
        self.view = "all" if self.view == "active" else "active"
        self.notify(
            "Showing deleted runs too" if self.view == "all" else "Hiding deleted runs", timeout=2
        )
        self.reload()

    def action_compare(self) -> None:
        ids = list(self.grid.selected)
        if len(ids) < 2:
            self.notify(
                "Mark two or more runs with space, then press c.",
                title="Compare",
                severity="warning",
                timeout=4,
            )
            return
        self.post_message(CompareRuns(ids))

    def action_refresh(self) -> None:
        if not self.link.connected:
            self.link.retry()
        self.load_experiments()
        self.reload(keep_cursor=True)

    @on(RunsGrid.RunOpened)
    def _open(self, event: RunsGrid.RunOpened) -> None:
        others = [r for r in self.grid.selected if r != event.run_id]
        self.post_message(OpenRun(event.run_id, overlay=others))

    @on(RunsGrid.SelectionChanged)
    def _selection(self, event: RunsGrid.SelectionChanged) -> None:
        self.show_status()

    def palette_commands(self):
        return [
            ("Runs: filter", "Type a filter in MLflow's search syntax", self.action_focus_filter),
            (
                "Runs: choose columns",
                "Pick the params, metrics and tags shown",
                self.action_columns,
            ),
            ("Runs: show or hide deleted runs", "Toggle deleted runs", self.action_toggle_deleted),
            ("Runs: compare marked runs", "Needs two or more marked runs", self.action_compare),
            (
                "Runs: sort by the cursor's column",
                "Toggle ascending/descending",
                self.grid.action_sort,
            ),
            ("Runs: open the run under the cursor", "Run detail", self.grid.action_open),
            ("Runs: refresh", "Ask the daemon again", self.action_refresh),
        ]
