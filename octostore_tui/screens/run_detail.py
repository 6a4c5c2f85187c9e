"""Run detail: one run (plus overlaid runs on its charts) in six tabs.

Charts (pick metrics; x by step, wall time or relative time; smoothing; log
scale; other runs overlaid), Parameters, Metrics (latest, min, max), Tags,
Outputs & logs (artifact tree and a viewer that follows a growing file of a
running run) and Environment (the run's captured environment and code state,
and the repo's environment files).

Live: when the daemon says this run (or an overlaid one) changed, the screen
re-reads the run and the charted histories, which the daemon extends by
reading only the appended lines; an open artifact of a running run is tailed
from its last offset once a second.
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
from ..widgets.artifact_view import ArtifactView
from ..widgets.charts_panel import ChartsPanel
from ..widgets.notice import Notice
from .base import LinkedScreen
from .run_picker import RunPicker

FOLLOW_SECONDS = 1.0
TAIL_BYTES = 256 * 1024
TABS = ("charts", "params", "metrics", "tags", "outputs", "environment")


def chart_points(width: int) -> int:
    """Points to ask for: two per braille column is all a terminal can show."""
    return max(100, min(2000, width * 2))


class RunDetailScreen(LinkedScreen):
    HELP = (
        "One run in tabs (1-6 switch). Charts: space picks metrics, x switches the x axis "
        "(step, wall time, time since start), s cycles smoothing, l toggles a log y axis, "
        "a overlays other runs. Outputs & logs: choose a file; a running run's file is "
        "followed as it grows. Escape goes back."
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("x", "chart('cycle_x')", "X axis"),
        Binding("s", "chart('cycle_smoothing')", "Smooth"),
        Binding("l", "chart('toggle_log')", "Log y"),
        Binding("a", "overlay", "Overlay runs"),
        Binding("r", "refresh", "Refresh", show=False),
        *[Binding(str(i + 1), f"tab('{t}')", t.title(), show=False) for i, t in enumerate(TABS)],
    ]

    def __init__(self, run_id: str, overlay: list[str] | None = None) -> None:
        super().__init__(name="run-detail")
        self.run_id = run_id
        self.overlay = [r for r in (overlay or []) if r != run_id]
        self.run: dict[str, Any] | None = None
        self.labels: dict[str, str] = {}
        self._metric_stats_loaded = False
        self._artifacts_loaded = False

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

    @property
    def charts(self) -> ChartsPanel:
        return self.query_one("#charts-panel", ChartsPanel)

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
            f"[b]{fmt.run_label(run)}[/b]",
            f"[{style}]{fmt.STATUS_ICON.get(st, '')} {st.lower()}[/]" if style else st.lower(),
        ]
        if run.get("lifecycle_stage") == "deleted":
            parts.append("[$error]deleted[/]")
        parts += [
            f"experiment {run.get('experiment_name') or run.get('experiment_id')}",
            f"started {fmt.full_time(run.get('start_time'))}",
            fmt.run_duration(run),
            f"[dim]id {run['run_id'][:8]}[/dim]",
        ]
        if self.overlay:
            parts.append(f"[$accent]+{len(self.overlay)} overlaid[/]")
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
            table.add_row(k, v)
        if table.row_count == 0:
            table.add_row("[dim]no parameters[/dim]", "")

    def _show_tags(self, run: dict[str, Any]) -> None:
        table = self.query_one("#tags-table", DataTable)
        table.clear()
        tags = run.get("tags") or {}
        for k in sorted(tags, key=lambda k: (k.startswith("mlflow."), k)):
            table.add_row(k, fmt.shorten(tags[k].replace("\n", " ⏎ "), 200))
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
                k,
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

    @on(ChartsPanel.HistoryWanted)
    def _history_wanted(self, event: ChartsPanel.HistoryWanted) -> None:
        self.load_history(event.keys, event.x_mode)

    @work(exclusive=True, group="history", exit_on_error=False)
    async def load_history(self, keys: list[str], x_mode: str) -> None:
        width = self.charts.query_one("#chart-stack").size.width or 120
        try:
            reply = await self.link.call(
                "octostore/metric_history",
                run_ids=[self.run_id, *self.overlay],
                keys=keys,
                x=x_mode,
                max_points=chart_points(width),
            )
        except LinkError as err:
            self.report(err)
            return
        self.charts.set_history(x_mode, reply.get("series") or [])

    # -- outputs & logs -------------------------------------------------------------------
    @on(TabbedContent.TabActivated, "#run-tabs")
    def _tab(self, event: TabbedContent.TabActivated) -> None:
        self._load_tab(event.pane.id or "")

    def _load_tab(self, tab: str) -> None:
        """Fetch what ``tab`` shows, if it is not on screen yet."""
        if tab == "outputs":
            if not self._artifacts_loaded or self.query_one(ArtifactView).path is None:
                self.load_artifacts()
        elif tab == "metrics":
            self.load_metric_stats()
        elif tab == "environment":
            self.load_environment()

    @work(exclusive=True, group="artifacts", exit_on_error=False)
    async def load_artifacts(self) -> None:
        try:
            reply = await self.link.call("octostore/artifacts", run_id=self.run_id)
        except LinkError as err:
            self.report(err)
            return
        self._artifacts_loaded = True
        tree = self.query_one("#artifact-tree", ArtifactTree)
        entries = reply.get("artifacts") or []
        tree.set_entries(entries)
        view = self.query_one("#artifact-view", ArtifactView)
        warnings = reply.get("warnings") or []
        if not entries and view.path is None:
            why = warnings[0] if warnings else "this run has no artifacts"
            view.query_one("#artifact-title", Static).update(f"[dim]{why}[/dim]")
        elif view.path is None and entries:
            logs = [e["path"] for e in entries if e["path"].endswith((".log", ".txt"))]
            self.open_artifact(logs[0] if logs else entries[0]["path"])

    @on(ArtifactTree.FileChosen)
    def _file_chosen(self, event: ArtifactTree.FileChosen) -> None:
        self.open_artifact(event.path)

    @work(exclusive=True, group="artifact", exit_on_error=False)
    async def open_artifact(self, path: str) -> None:
        try:
            reply = await self.link.call(
                "octostore/artifact", run_id=self.run_id, path=path, offset=0, max_bytes=TAIL_BYTES
            )
        except LinkError as err:
            self.report(err)
            return
        view = self.query_one("#artifact-view", ArtifactView)
        view.show(
            path,
            reply.get("text", ""),
            reply.get("size", 0),
            reply.get("next_offset", 0),
            reply.get("binary", False),
            reply.get("truncated", False),
        )
        view.set_following(self._run_is_live())

    def _run_is_live(self) -> bool:
        return bool(self.run and self.run.get("status") == "RUNNING")

    def _follow_tick(self) -> None:
        view = self.query_one("#artifact-view", ArtifactView)
        if view.path is None or not self._run_is_live():
            if view.following:
                view.set_following(False)
            return
        if self.query_one("#run-tabs", TabbedContent).active == "outputs":
            self.tail_artifact()

    @work(exclusive=True, group="tail", exit_on_error=False)
    async def tail_artifact(self) -> None:
        view = self.query_one("#artifact-view", ArtifactView)
        path, offset = view.path, view.read_offset
        if path is None:
            return
        try:
            reply = await self.link.call(
                "octostore/artifact",
                run_id=self.run_id,
                path=path,
                offset=offset,
                max_bytes=TAIL_BYTES,
            )
        except LinkError:
            return  # the file may be mid-rewrite; the next tick tries again
        if view.path != path:
            return
        if reply.get("size", 0) < offset:  # rewritten shorter: start over
            self.open_artifact(path)
            return
        if not reply.get("binary"):
            view.append(
                reply.get("text", ""), reply.get("size", 0), reply.get("next_offset", offset)
            )

    # -- environment ----------------------------------------------------------------------
    def _show_environment(self, run: dict[str, Any]) -> None:
        env = run.get("environment") or {}
        git = run.get("git") or {}
        tags = run.get("tags") or {}
        lines = ["[b]This run[/b]", f"  run id       {run['run_id']}"]
        commit = git.get("commit")
        lines.append(f"  git commit   {commit[:12] if commit else '[dim]not recorded[/dim]'}")
        dirty = git.get("dirty")
        if dirty is None:
            lines.append(
                "  code state   [dim]not recorded (run without the octostore plugin)[/dim]"
            )
        elif str(dirty).lower() in ("true", "1", "yes"):
            patch = git.get("patch")
            lines.append(
                "  code state   [$warning]uncommitted changes[/]"
                + (f" (patch {patch[:12]})" if patch else "")
            )
        else:
            lines.append("  code state   [$success]clean[/]")
        for label, key in (
            ("branch", "mlflow.source.git.branch"),
            ("repository", "mlflow.source.git.repoURL"),
            ("entry point", "mlflow.source.name"),
        ):
            if tags.get(key):
                lines.append(f"  {label:<12} {tags[key]}")
        lock = env.get("lock")
        lines.append(
            f"  environment  {'lock ' + lock[:16] if lock else '[dim]no captured lock[/dim]'}"
        )
        if env.get("python"):
            lines.append(f"  python       {env['python']}")
        if env.get("argv"):
            lines.append(f"  command      {env['argv']}")
        for key, value in env.items():
            if key not in ("lock", "python", "argv") and value:
                lines.append(f"  {key:<12} {value}")
        self.query_one("#env-run", Static).update("\n".join(lines))

    @work(exclusive=True, group="environment", exit_on_error=False)
    async def load_environment(self) -> None:
        try:
            reply = await self.link.call("octostore/environment")
        except LinkError as err:
            self.query_one("#env-files", Static).update(f"[$error]{err.title}:[/] {err.message}")
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
            py = f"  python {f['python']}" if f.get("python") else ""
            lines.append(
                f"  [b]{f['path']}[/b]  [dim]{f.get('kind')}[/dim]  "
                f"{len(pkgs)} package{'s' if len(pkgs) != 1 else ''}{py}{pinned}"
            )
            for p in pkgs[:12]:
                lines.append(f"      {p.get('name', '')} {p.get('spec') or ''}")
            if len(pkgs) > 12:
                lines.append(f"      [dim]… {len(pkgs) - 12} more[/dim]")
            for w in f.get("warnings") or []:
                lines.append(f"      [$warning]{w}[/]")
        self.query_one("#env-files", Static).update("\n".join(lines))

    # -- live and actions -------------------------------------------------------------------
    def on_runs_changed(self, message: RunsChanged) -> None:
        mine = {self.run_id, *self.overlay}
        if message.fresh or message.runs & mine or message.removed & mine:
            self.load()
            if self._artifacts_loaded:
                self.load_artifacts()
        if (
            message.environment
            and self.query_one("#run-tabs", TabbedContent).active == "environment"
        ):
            self.load_environment()

    def on_daemon_ready(self, message: DaemonReady) -> None:
        if self.run is None:
            self.load()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_chart(self, what: str) -> None:
        tabs = self.query_one("#run-tabs", TabbedContent)
        if tabs.active != "charts":
            tabs.active = "charts"
        getattr(self.charts, f"action_{what}")()

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

    def palette_commands(self):
        return [
            (
                "Chart: switch the x axis",
                "step, wall time, time since start",
                lambda: self.action_chart("cycle_x"),
            ),
            (
                "Chart: cycle smoothing",
                "off, 0.6, 0.8, 0.95",
                lambda: self.action_chart("cycle_smoothing"),
            ),
            ("Chart: toggle log scale", "y axis", lambda: self.action_chart("toggle_log")),
            ("Chart: overlay other runs", "Pick runs of the same experiment", self.action_overlay),
            *[(f"Run: show {t}", "Tab", lambda t=t: self.action_tab(t)) for t in TABS],
            ("Run: back", "Return to the previous screen", self.action_back),
        ]
