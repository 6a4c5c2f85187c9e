"""Run detail: one run (plus overlaid runs on its charts) in six tabs.

Charts (pick metrics; x by step, wall time or relative time; smoothing; log
scale; other runs overlaid), Parameters, Metrics (latest, min, max), Tags,
Outputs & logs (the run's console logs first, then its artifacts, in a tree;
a viewer that plays a log like a terminal, follows it while it grows and
searches it) and Environment (the run's captured environment and code state,
and the repo's environment files).

Live: when the daemon says this run (or an overlaid one) changed, the screen
re-reads the run and the charted histories, which the daemon extends by
reading only the appended lines; an open live console log (or an artifact of
a running run) is read from its last offset twice a second.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from .. import format as fmt
from ..daemon_link import LinkError
from ..messages import DaemonReady, RunsChanged
from ..widgets.artifact_tree import ArtifactTree
from ..widgets.artifact_view import NO_LOG_HINT, ArtifactView, Source
from ..widgets.charts_panel import ChartsPanel
from ..widgets.notice import Notice
from .charts_screen import CHART_BINDINGS, ChartsScreen
from .run_picker import RunPicker

FOLLOW_SECONDS = 0.5
TABS = ("charts", "params", "metrics", "tags", "outputs", "environment")
LOG_ACTIONS = {"log_search", "log_earlier", "log_end", "log_match", "other_log"}
"""Keys of the Outputs & logs tab (shown in the footer only there)."""
MAX_RELATED = 3
"""Reproductions whose console logs the tree offers."""


class RunDetailScreen(ChartsScreen):
    HELP = (
        "One run in tabs (1-6 switch). Charts: space picks metrics, x switches the x axis "
        "(step, wall time, time since start), s cycles smoothing, l toggles a log y axis, "
        "a overlays other runs. Outputs & logs: the console log comes first; a live one is "
        "followed as it grows (scroll up to stop, ] returns to the end), [ loads earlier "
        "output, / searches the whole log (n and N step through the matches), o opens the "
        "original run's log of a reproduction (or a reproduction's log). Escape goes back."
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        *CHART_BINDINGS,
        Binding("a", "overlay", "Overlay runs"),
        Binding("r", "refresh", "Refresh", show=False),
        *[Binding(str(i + 1), f"tab('{t}')", t.title(), show=False) for i, t in enumerate(TABS)],
        Binding("slash", "log_search", "Search log"),
        Binding("left_square_bracket", "log_earlier", "Earlier", key_display="["),
        Binding("right_square_bracket", "log_end", "End", key_display="]", show=False),
        Binding("n", "log_match(1)", "Next match", show=False),
        Binding("N", "log_match(-1)", "Previous match", show=False),
        Binding("o", "other_log", "Other run's log"),
    ]
    TABS_ID = "run-tabs"
    CHARTS_ID = "charts-panel"

    def __init__(self, run_id: str, overlay: list[str] | None = None) -> None:
        super().__init__(name="run-detail")
        self.run_id = run_id
        self.overlay = [r for r in (overlay or []) if r != run_id]
        self.run: dict[str, Any] | None = None
        self.labels: dict[str, str] = {}
        self._metric_stats_loaded = False
        self._artifacts_loaded = False
        self.related: list[tuple[str, str, dict[str, Any]]] = []
        """Console logs of related runs: (run_id, label, log) for the original of a
        reproduction and for this run's reproductions."""

    def compose(self):
        yield Header()
        yield Static("loading run…", id="run-summary")
        yield Notice(id="run-notice")
        with TabbedContent(id="run-tabs", initial="charts"):
            with TabPane("Charts", id="charts"):
                yield ChartsPanel(id="charts-panel")
            with TabPane("Parameters", id="params"):
                yield DataTable(id="params-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Metrics", id="metrics"):
                yield DataTable(id="metrics-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Tags", id="tags"):
                yield DataTable(id="tags-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Outputs & logs", id="outputs"), Horizontal(id="outputs-body"):
                yield ArtifactTree(id="artifact-tree")
                yield ArtifactView(id="artifact-view")
            with TabPane("Environment", id="environment"):
                with VerticalScroll(id="env-body"):
                    yield Static("", id="env-run")
                    yield Static("", id="env-files")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#run-notice", Notice).display = False
        self.query_one("#params-table", DataTable).add_columns("Parameter", "Value")
        self.query_one("#metrics-table", DataTable).add_columns(
            "Metric", "Latest", "Step", "Min", "Max", "Points"
        )
        self.query_one("#tags-table", DataTable).add_columns("Tag", "Value")
        self.set_interval(FOLLOW_SECONDS, self._follow_tick)
        self.load()

    def charted_runs(self) -> list[str]:
        return [self.run_id, *self.overlay]

    @property
    def view(self) -> ArtifactView:
        return self.query_one("#artifact-view", ArtifactView)

    # -- loading --------------------------------------------------------------------------
    @work(exclusive=True, group="run", exit_on_error=False)
    async def load(self) -> None:
        try:
            run = await self.link.call("octostore/run", run_id=self.run_id)
            others = []
            if self.overlay:
                ids = ", ".join(f"'{r}'" for r in self.overlay)
                reply = await self.link.call(
                    "octostore/runs",
                    filter=f"attributes.run_id IN ({ids})",
                    view="all",
                    columns=[],
                    limit=len(self.overlay),
                )
                found = {r["run_id"]: r for r in reply.get("runs") or []}
                others = [found[r] for r in self.overlay if r in found]
        except LinkError as err:
            if self.run is None:
                self.query_one("#run-notice", Notice).show(err.title, err.message, error=True)
                self.query_one("#run-tabs").display = False
            else:
                self.report(err)
            return
        first = self.run is None
        self.run = run
        self.run_id = run["run_id"]
        self.labels = {run["run_id"]: fmt.run_label(run)}
        for o in others:
            self.labels[o["run_id"]] = fmt.run_label(o)
        self.overlay = [o["run_id"] for o in others]
        self.show_run(run, first)

    def show_run(self, run: dict[str, Any], first: bool) -> None:
        self.sub_title = f"run {fmt.run_label(run)}"
        st = run.get("status", "")
        style = fmt.STATUS_STYLE.get(st, "")
        parts = [
            f"[b]{fmt.marked(fmt.run_label(run))}[/b]",
            f"[{style}]{fmt.STATUS_ICON.get(st, '')} {st.lower()}[/]" if style else st.lower(),
        ]
        if run.get("lifecycle_stage") == "deleted":
            parts.append("[$error]deleted[/]")
        parts += [
            f"experiment {fmt.marked(run.get('experiment_name') or run.get('experiment_id'))}",
            f"started {fmt.full_time(run.get('start_time'))}",
            fmt.run_duration(run),
            f"[dim]id {run['run_id'][:8]}[/dim]",
        ]
        if self.overlay:
            parts.append(f"[$accent]+{len(self.overlay)} overlaid[/]")
        if run.get("reproduces"):
            parts.append(f"[$accent]reproduces {run['reproduces'][:8]}[/]")
        elif run.get("reproduced_by"):
            n = len(run["reproduced_by"])
            parts.append(f"[$accent]{n} reproduction{'s' if n != 1 else ''}[/]")
        self.query_one("#run-summary", Static).update("  ·  ".join(parts))
        self._show_params(run)
        self._show_tags(run)
        self._show_metrics_latest(run)
        self._show_environment(run)
        panel = self.charts
        panel.set_runs(
            [(rid, self.labels.get(rid, rid[:8])) for rid in [self.run_id, *self.overlay]]
        )
        metrics = run.get("metrics") or {}
        keys = sorted(metrics)
        # Prefer metrics with a history (latest step > 0): they are the curves worth a chart.
        curves = sorted(
            (k for k in keys if (metrics[k] or {}).get("step", 0) > 0),
            key=lambda k: (not fmt.lower_is_better(k), k),
        )
        if first or keys != panel.keys:
            panel.set_keys(keys, curves or keys)
        else:
            panel.want()
        active = self.query_one("#run-tabs", TabbedContent).active
        if active == "metrics":
            self.load_metric_stats()
        if active == "outputs":
            self.load_artifacts()

    def _show_params(self, run: dict[str, Any]) -> None:
        table = self.query_one("#params-table", DataTable)
        table.clear()
        for k, v in sorted((run.get("params") or {}).items()):
            table.add_row(fmt.cell(k), fmt.cell(v))
        if table.row_count == 0:
            table.add_row("[dim]no parameters[/dim]", "")

    def _show_tags(self, run: dict[str, Any]) -> None:
        table = self.query_one("#tags-table", DataTable)
        table.clear()
        tags = run.get("tags") or {}
        for k in sorted(tags, key=lambda k: (k.startswith("mlflow."), k)):
            table.add_row(fmt.cell(k), fmt.cell(fmt.shorten(tags[k].replace("\n", " ⏎ "), 200)))
        if table.row_count == 0:
            table.add_row("[dim]no tags[/dim]", "")

    def _show_metrics_latest(
        self, run: dict[str, Any], stats: dict[str, tuple] | None = None
    ) -> None:
        table = self.query_one("#metrics-table", DataTable)
        table.clear()
        metrics = run.get("metrics") or {}
        for k in sorted(metrics):
            m = metrics[k] or {}
            lo, hi, n = (stats or {}).get(k, (None, None, None))
            table.add_row(
                fmt.cell(k),
                fmt.num(m.get("value")),
                str(m.get("step", "")),
                fmt.num(lo) if lo is not None else "…",
                fmt.num(hi) if hi is not None else "…",
                str(n) if n is not None else "…",
            )
        if not metrics:
            table.add_row("[dim]no metrics[/dim]", "", "", "", "", "")

    @work(exclusive=True, group="metric-stats", exit_on_error=False)
    async def load_metric_stats(self) -> None:
        run = self.run
        if run is None or not run.get("metrics"):
            return
        keys = sorted(run["metrics"])
        try:
            # The daemon's downsampling keeps each bucket's extremes, so min and max of a
            # small sample are the series' own.
            reply = await self.link.call(
                "octostore/metric_history",
                run_ids=[self.run_id],
                keys=keys,
                x="step",
                max_points=16,
            )
        except LinkError as err:
            self.report(err)
            return
        stats: dict[str, tuple] = {}
        for s in reply.get("series") or []:
            ys = [
                v
                for v in (fmt.metric_value(y) for y in s.get("y") or [])
                if v is not None and not math.isnan(v)
            ]
            stats[s["key"]] = (min(ys) if ys else None, max(ys) if ys else None, s.get("points"))
        self._metric_stats_loaded = True
        self._show_metrics_latest(run, stats)

    # -- outputs & logs -------------------------------------------------------------------
    @on(TabbedContent.TabActivated, "#run-tabs")
    def _tab(self, event: TabbedContent.TabActivated) -> None:
        self._load_tab(event.pane.id or "")
        self.refresh_bindings()

    def _load_tab(self, tab: str) -> None:
        """Fetch what ``tab`` shows, if it is not on screen yet."""
        if tab == "outputs":
            self.load_artifacts()
        elif tab == "metrics":
            self.load_metric_stats()
        elif tab == "environment":
            self.load_environment()

    def _outputs_active(self) -> bool:
        return self.query_one("#run-tabs", TabbedContent).active == "outputs"

    @work(exclusive=True, group="artifacts", exit_on_error=False)
    async def load_artifacts(self) -> None:
        try:
            reply = await self.link.call("octostore/artifacts", run_id=self.run_id)
            self.related = await self._related_logs()
        except LinkError as err:
            self.report(err)
            return
        self._artifacts_loaded = True
        run = self.run or {}
        logs = [
            (self.run_id, "", log) for log in run.get("logs") or []
        ] + self.related
        entries = [
            e for e in reply.get("artifacts") or []
            if not any(lg.get("kind") == "artifact" and lg.get("name") == e["path"]
                       for _, _, lg in logs)
        ]
        self.query_one("#artifact-tree", ArtifactTree).set_entries(
            entries, [(rid, label, lg) for rid, label, lg in logs], run.get("models") or []
        )
        view = self.view
        view.set_hint("" if run.get("logs") else NO_LOG_HINT)
        if view.source is not None:
            return
        own = run.get("logs") or []
        if own:
            self.open_log(self.run_id, "", own[0])
        elif entries:
            texts = [e["path"] for e in entries if e["path"].endswith((".log", ".txt"))]
            self.open_file(texts[0] if texts else entries[0]["path"])
        else:
            warnings = reply.get("warnings") or []
            view.show_empty(warnings[0] if warnings else "this run has no artifacts")

    async def _related_logs(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Console logs of the original (when this run reproduces one) and reproductions."""
        run = self.run or {}
        out: list[tuple[str, str, dict[str, Any]]] = []
        others: list[tuple[str, str]] = []
        if run.get("reproduces"):
            others.append((run["reproduces"], "original"))
        for r in (run.get("reproduced_by") or [])[-MAX_RELATED:]:
            others.append((r["run_id"], "reproduction"))
        for rid, role in others:
            try:
                other = await self.link.call("octostore/run", run_id=rid)
            except LinkError:
                continue  # the original may live in another repo: nothing to offer
            label = f"{role} {fmt.run_label(other)}"
            out += [(rid, label, log) for log in other.get("logs") or []]
        return out

    @on(ArtifactTree.FileChosen)
    def _file_chosen(self, event: ArtifactTree.FileChosen) -> None:
        self.open_file(event.path)

    @on(ArtifactTree.LogChosen)
    def _log_chosen(self, event: ArtifactTree.LogChosen) -> None:
        self.open_log(event.run_id, event.label, event.log)

    def open_file(self, path: str) -> None:
        self.view.open(Source("artifact", self.run_id, path, path), live=self._run_is_live())

    def open_log(self, run_id: str, label: str, log: dict[str, Any]) -> None:
        name = log.get("name") or "console"
        title = "console" if name == "console" else name
        self.view.open(
            Source("log", run_id, name, f"{label}  {title}".strip(), log.get("path", ""))
        )

    def _run_is_live(self) -> bool:
        return bool(self.run and self.run.get("status") == "RUNNING")

    def _follow_tick(self) -> None:
        view = self.view
        if view.source is None:
            return
        if view.source.kind == "artifact" and view.source.run_id == self.run_id:
            live = self._run_is_live()
            if live != view.live:
                view.set_live(live)
        if self._outputs_active():
            view.poll()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in LOG_ACTIONS:
            if not self.is_mounted or not self._outputs_active():
                return False
            if action == "other_log":
                return bool(self.related)
            if action == "log_earlier":
                return self.view.is_log and self.view.start > 0
        return True

    def action_log_search(self) -> None:
        self.view.start_search()

    def action_log_earlier(self) -> None:
        self.view.earlier()

    def action_log_end(self) -> None:
        self.view.to_end()

    def action_log_match(self, step: int) -> None:
        self.view.next_match(step)

    def action_other_log(self) -> None:
        """A reproduction: open the original's log; an original: its latest reproduction's.
        Pressed again, back to this run's log."""
        source = self.view.source
        if source is not None and source.kind == "log" and source.run_id != self.run_id:
            own = (self.run or {}).get("logs") or []
            if own:
                self.open_log(self.run_id, "", own[0])
                return
        if not self.related:
            self.notify(
                "This run is not a reproduction and has none; `octostore reproduce RUN` "
                "makes one.",
                title="No other run's log",
                timeout=5,
            )
            return
        rid, label, log = self.related[0] if (self.run or {}).get("reproduces") else \
            self.related[-1]
        self.open_log(rid, label, log)

    # -- environment ----------------------------------------------------------------------
    def _show_environment(self, run: dict[str, Any]) -> None:
        env = run.get("environment") or {}
        git = run.get("git") or {}
        tags = run.get("tags") or {}
        lines = ["[b]This run[/b]", f"  run id       {run['run_id']}"]
        commit = git.get("commit")
        lines.append(f"  git commit   {fmt.marked(commit[:12]) if commit else '[dim]not recorded[/dim]'}")
        dirty = git.get("dirty")
        if dirty is None:
            lines.append(
                "  code state   [dim]not recorded (run without the octostore plugin)[/dim]"
            )
        elif str(dirty).lower() in ("true", "1", "yes"):
            patch = git.get("patch")
            lines.append(
                "  code state   [$warning]uncommitted changes[/]"
                + (f" (patch {fmt.marked(patch[:12])})" if patch else "")
            )
        else:
            lines.append("  code state   [$success]clean[/]")
        for label, key in (
            ("branch", "mlflow.source.git.branch"),
            ("repository", "mlflow.source.git.repoURL"),
            ("entry point", "mlflow.source.name"),
        ):
            if tags.get(key):
                lines.append(f"  {label:<12} {fmt.marked(tags[key])}")
        lock = env.get("lock")
        lines.append(
            f"  environment  {'lock ' + fmt.marked(lock[:16]) if lock else '[dim]no captured lock[/dim]'}"
        )
        if env.get("python"):
            lines.append(f"  python       {fmt.marked(env['python'])}")
        if env.get("argv"):
            lines.append(f"  command      {fmt.marked(env['argv'])}")
        for key, value in env.items():
            if key not in ("lock", "python", "argv") and value:
                lines.append(f"  {fmt.marked(key):<12} {fmt.marked(value)}")
        self.query_one("#env-run", Static).update("\n".join(lines))

    @work(exclusive=True, group="environment", exit_on_error=False)
    async def load_environment(self) -> None:
        try:
            reply = await self.link.call("octostore/environment")
        except LinkError as err:
            self.query_one("#env-files", Static).update(
                f"[$error]{fmt.marked(err.title)}:[/] {fmt.marked(err.message)}")
            return
        files = reply.get("files") or []
        lines = ["", f"[b]The repo's environment files[/b]  [dim]({len(files)})[/dim]"]
        if not files:
            lines.append(
                "  [dim]none found (requirements.txt, pyproject.toml, uv.lock, conda.yaml, "
                "MLproject…)[/dim]"
            )
        for f in files:
            pkgs = f.get("packages") or []
            pinned = " [$success]pinned[/]" if f.get("pinned") else ""
            py = f"  python {fmt.marked(f['python'])}" if f.get("python") else ""
            lines.append(
                f"  [b]{fmt.marked(f['path'])}[/b]  [dim]{fmt.marked(f.get('kind'))}[/dim]  "
                f"{len(pkgs)} package{'s' if len(pkgs) != 1 else ''}{py}{pinned}"
            )
            for p in pkgs[:12]:
                lines.append(f"      {fmt.marked(p.get('name', ''))} {fmt.marked(p.get('spec') or '')}")
            if len(pkgs) > 12:
                lines.append(f"      [dim]… {len(pkgs) - 12} more[/dim]")
            for w in f.get("warnings") or []:
                lines.append(f"      [$warning]{fmt.marked(w)}[/]")
        self.query_one("#env-files", Static).update("\n".join(lines))

    # -- live and actions -------------------------------------------------------------------
    def on_runs_changed(self, message: RunsChanged) -> None:
        mine = {self.run_id, *self.overlay}
        if message.fresh or message.runs & mine or message.removed & mine:
            self.load()  # which reloads the outputs tree when it has been shown
        if (
            message.environment
            and self.query_one("#run-tabs", TabbedContent).active == "environment"
        ):
            self.load_environment()

    def on_daemon_ready(self, message: DaemonReady) -> None:
        if self.run is None:
            self.load()

    def action_back(self) -> None:
        view = self.view
        if self._outputs_active() and (view.matches or view.search_shown):
            view.close_search()  # escape leaves the search before the screen
            return
        self.app.pop_screen()

    def action_tab(self, tab: str) -> None:
        tabs = self.query_one("#run-tabs", TabbedContent)
        if tabs.active == tab:
            return
        tabs.active = tab
        self._load_tab(tab)  # TabActivated does too; the workers are exclusive per tab

    def action_refresh(self) -> None:
        self.load()

    def action_overlay(self) -> None:
        if self.run is None:
            return

        def chosen(ids: list[str] | None) -> None:
            if ids is not None:
                self.overlay = [r for r in ids if r != self.run_id]
                self.load()

        self.app.push_screen(
            RunPicker(
                self.run.get("experiment_key") or self.run.get("experiment_id"),
                exclude=self.run_id,
                chosen=self.overlay,
            ),
            chosen,
        )

    def _palette_search(self) -> None:
        self.action_tab("outputs")
        self.view.start_search()

    def _palette_earlier(self) -> None:
        self.action_tab("outputs")
        self.view.earlier()

    def _palette_other(self) -> None:
        self.action_tab("outputs")
        self.action_other_log()

    def palette_commands(self):
        return [
            *self.chart_commands("Chart"),
            ("Chart: overlay other runs", "Pick runs of the same experiment", self.action_overlay),
            *[(f"Run: show {t}", "Tab", lambda t=t: self.action_tab(t)) for t in TABS],
            ("Log: search", "In the whole console log", self._palette_search),
            ("Log: load earlier output", "Before the part shown", self._palette_earlier),
            (
                "Log: other run's log",
                "The original of a reproduction, or a reproduction",
                self._palette_other,
            ),
            ("Run: back", "Return to the previous screen", self.action_back),
        ]
