"""The dashboard driven by Pilot against a real daemon on stores written by real MLflow.

Each test states what a person does and what they must see: filter, sort,
page, open a run, switch chart options, compare, follow a live run while a
writer appends metrics, and the four failure states (no daemon, empty repo,
no MLflow data, bad filter) shown as sentences, never tracebacks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import ViewType
from rich.console import Console

from octostore_tui.app import OctostoreApp, make_app
from octostore_tui.screens.compare import CompareScreen
from octostore_tui.screens.experiments import ExperimentsScreen
from octostore_tui.screens.insights import InsightsScreen
from octostore_tui.screens.run_detail import RunDetailScreen
from octostore_tui.widgets.artifact_view import ArtifactView
from octostore_tui.widgets.charts_panel import ChartsPanel
from octostore_tui.widgets.metric_chart import MetricChart
from octostore_tui.widgets.notice import Notice
from octostore_tui.widgets.runs_grid import RunsGrid

from .test_tui_support import (  # noqa: F401 - env, no_worker_errors: fixtures
    T0, TuiEnv, env, mlflow_client, no_worker_errors, wait_until, write_wine_store)

SIZE = (160, 48)


@pytest.fixture(scope="module")
def wine(env: TuiEnv) -> dict[str, Any]:
    repo = env.repo("wine")
    store = write_wine_store(repo)
    store["repo"] = repo
    return store


def app_for(env: TuiEnv, repo: Path, **kw: Any) -> OctostoreApp:
    return make_app(str(repo), env.daemon.socket, autostart=False, timeout=15, **kw)


def notes(app: OctostoreApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def open_experiments(pilot: Any, app: OctostoreApp) -> ExperimentsScreen:
    await wait_until(pilot, lambda: app.first_data_seconds is not None, what="the first screen")
    await pilot.press("e")
    screen = await wait_until(
        pilot,
        lambda: isinstance(app.screen, ExperimentsScreen) and app.screen,
        what="the experiments screen",
    )
    await wait_until(pilot, lambda: screen.grid.total is not None, what="the first page")
    return screen


async def test_insights_is_the_home_screen(env: TuiEnv, wine: dict[str, Any]) -> None:
    """Launch: Insights shows status counts, best runs per metric, distribution, influence."""
    app = app_for(env, wine["repo"])
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.first_data_seconds is not None, what="insights data")
        screen = app.screen
        assert isinstance(screen, InsightsScreen)
        data = screen.data
        assert data is not None
        assert data["total"] == 26  # 24 + 3 baseline - 1 deleted
        assert data["by_status"] == {"FINISHED": 24, "FAILED": 1, "KILLED": 1}
        status = screen.query_one("#status-bars").items  # type: ignore[attr-defined]
        assert [i[0].split()[-1] for i in status] == ["finished", "failed", "killed"]
        # rmse is lower-is-better: the best run has the smallest rmse.
        rmse = next(k for k in data["key_metrics"] if k["key"] == "rmse")
        assert rmse["lower_is_better"] is True
        values = [b["value"] for b in rmse["best"]]
        assert values == sorted(values)
        # acc is higher-is-better; flipping the chosen metric's direction reverses its ranking.
        table = screen.query_one("#best")
        row = screen._metric_rows.index("acc")
        table.move_cursor(row=row, column=2)
        await wait_until(
            pilot,
            lambda: screen.data and screen.data.get("metric") == "acc",
            what="acc to become the chosen metric",
        )
        before = [
            b["value"]
            for b in next(k for k in screen.data["key_metrics"] if k["key"] == "acc")["best"]
        ]
        assert before == sorted(before, reverse=True)
        await pilot.press("l")
        await wait_until(
            pilot,
            lambda: (
                next(k for k in screen.data["key_metrics"] if k["key"] == "acc")["lower_is_better"]
                is True
            ),
            what="acc flipped to lower-is-better",
        )
        after = [
            b["value"]
            for b in next(k for k in screen.data["key_metrics"] if k["key"] == "acc")["best"]
        ]
        assert after == sorted(after)
        assert screen.query_one("#influence").items  # type: ignore[attr-defined]
        assert "Distribution of acc" in str(screen.query_one("#distribution").border_title)
        # Enter opens the best run under the cursor (column #1).
        best = next(k for k in screen.data["key_metrics"] if k["key"] == "acc")["best"][0]["run_id"]
        table.focus()
        table.move_cursor(row=screen._metric_rows.index("acc"), column=2)
        await pilot.press("enter")
        detail = await wait_until(
            pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen, what="run detail"
        )
        await wait_until(pilot, lambda: detail.run is not None, what="the run")
        assert detail.run_id == best


async def test_filter_sort_and_bad_filter(env: TuiEnv, wine: dict[str, Any]) -> None:
    """Experiments: choose an experiment, filter in MLflow syntax, sort by a column, bad filter."""
    app = app_for(env, wine["repo"])
    mlf = mlflow_client(wine["repo"])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_experiments(pilot, app)
        grid = screen.grid
        assert grid.total == 26 and screen.experiment is None  # two experiments: all runs
        # Choose "wine" in the experiment list.
        options = screen.query_one("#experiments")
        options.focus()
        options.highlighted = screen._exp_rows.index(wine["experiment"])
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: screen.experiment == wine["experiment"] and grid.total == 23,
            what="the wine runs",
        )
        ids = [c.id for c in grid.columns]
        assert ids[:4] == ["run_name", "status", "start_time", "duration"]
        assert {
            "params.model",
            "params.alpha",
            "params.depth",
            "metrics.rmse",
            "metrics.acc",
        } <= set(ids)
        # Filter.
        flt = "metrics.rmse < 0.6 and params.model = 'rf'"
        await pilot.click("#filter")
        screen.query_one("#filter").value = flt
        await pilot.press("enter")
        want = mlf.search_runs([wine["experiment"]], flt)
        await wait_until(pilot, lambda: grid.total == len(want) and grid.rows, what="filtered rows")
        assert [grid.rows[i]["run_id"] for i in range(grid.total)] == [r.info.run_id for r in want]
        # Sort by rmse: move the column cursor there and press s (lower is better: ascending).
        assert app.focused is grid  # enter in the filter box hands the keys back to the grid
        grid.cursor_col = ids.index("metrics.rmse")
        await pilot.press("s")
        await wait_until(
            pilot,
            lambda: (
                screen.order_by == ["metrics.rmse ASC"]
                and grid.rows
                and grid.generation
                and grid.total == len(want)
            ),
            what="sorted",
        )
        want = mlf.search_runs([wine["experiment"]], flt, order_by=["metrics.rmse ASC"])
        await wait_until(
            pilot,
            lambda: (
                [grid.rows.get(i, {}).get("run_id") for i in range(len(want))]
                == [r.info.run_id for r in want]
            ),
            what="rows in MLflow's order",
        )
        # Clicking the header sorts the other way.
        await pilot.press("s")
        want_desc = mlf.search_runs([wine["experiment"]], flt, order_by=["metrics.rmse DESC"])
        await wait_until(
            pilot,
            lambda: (
                [grid.rows.get(i, {}).get("run_id") for i in range(len(want))]
                == [r.info.run_id for r in want_desc]
            ),
            what="descending order",
        )
        # A bad filter: a sentence under the filter box and a notification; the app lives on.
        inp = screen.query_one("#filter")
        await pilot.click("#filter")
        inp.value = "metrics.rmse"
        await pilot.press("space", "<", "enter")  # typed, as a person would finish it
        status = screen.query_one("#grid-status")
        await wait_until(
            pilot, lambda: "Bad filter" in str(status.render()), what="bad filter message"
        )
        assert inp.has_class("-invalid")
        assert any(n.startswith("Bad filter:") for n in notes(app))
        # The grid says so too, instead of "loading runs…" for ever.
        await wait_until(pilot, lambda: "filter is not valid" in grid.render_line(1).text,
                         what="the grid's own word on the bad filter")
        assert "loading" not in grid.render_line(1).text
        # Clearing the filter brings the runs back.
        await pilot.press("escape")
        await pilot.press("escape")
        await wait_until(
            pilot,
            lambda: grid.total == 23 and not inp.has_class("-invalid"),
            what="the unfiltered runs",
        )


async def test_deleted_runs_and_columns(env: TuiEnv, wine: dict[str, Any]) -> None:
    """`d` shows deleted runs too; the column chooser sets the grid's columns."""
    app = app_for(env, wine["repo"])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_experiments(pilot, app)
        grid = screen.grid
        grid.focus()
        await pilot.press("d")
        await wait_until(
            pilot, lambda: screen.view == "all" and grid.total == 27, what="deleted runs"
        )
        deleted = wine["runs"][7]
        await wait_until(
            pilot,
            lambda: any(
                r["run_id"] == deleted and r["lifecycle_stage"] == "deleted"
                for r in grid.rows.values()
            ),
            what="the deleted row",
        )
        await pilot.press("d")
        await wait_until(pilot, lambda: grid.total == 26, what="deleted runs hidden")
        await pilot.press("k")
        chooser = await wait_until(
            pilot,
            lambda: app.screen.__class__.__name__ == "ColumnChooser" and app.screen,
            what="the column chooser",
        )
        # Typing narrows the list at once, though the list has the focus (as the prompt says).
        await pilot.press("r", "m", "s")
        listed = chooser.query_one("#chooser-list")
        await wait_until(
            pilot,
            lambda: chooser.query_one("#chooser-filter").value == "rms"
            and [listed.get_option_at_index(i).value for i in range(listed.option_count)]
            == ["metrics.rmse"],
            what="the chooser narrowed by typing",
        )
        chooser.dismiss(["params.model", "metrics.rmse", "tags.team"])
        await wait_until(
            pilot,
            lambda: (
                [c.id for c in grid.columns][4:] == ["params.model", "metrics.rmse", "tags.team"]
                and grid.rows
            ),
            what="new columns",
        )
        row = grid.rows[0]
        assert set(row["params"]) <= {"model"} and set(row["tags"]) <= {"team"}


async def test_pages_through_the_daemon(
    env: TuiEnv, wine: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grid holds only the pages it has shown: jumping to the end skips the middle."""
    monkeypatch.setattr(RunsGrid, "page_size", 5)
    app = app_for(env, wine["repo"])
    async with app.run_test(size=(120, 12)) as pilot:
        screen = await open_experiments(pilot, app)
        grid = screen.grid
        assert grid.total == 26
        assert len(grid.rows) == 5
        grid.focus()
        await pilot.press("end")
        await wait_until(pilot, lambda: 25 in grid.rows, what="the last page")
        assert grid.cursor_row == 25
        assert len(grid.rows) < 26, "pages the user never scrolled past must not be fetched"
        assert 7 not in grid.rows
        await pilot.press("home")
        await wait_until(
            pilot, lambda: grid.cursor_row == 0 and 0 in grid.rows, what="back to the top"
        )


async def test_run_detail_tabs_and_chart_options(env: TuiEnv, wine: dict[str, Any]) -> None:
    """Open a run: charts (x modes, smoothing, log scale, metrics, overlays), then every tab."""
    app = app_for(env, wine["repo"])
    first = wine["runs"][0]
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_experiments(pilot, app)
        grid = screen.grid
        index = next(i for i, r in grid.rows.items() if r["run_id"] == first)
        grid.focus()
        grid.cursor_row = index
        await pilot.press("enter")
        detail = await wait_until(
            pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen, what="run detail"
        )
        await wait_until(pilot, lambda: detail.run is not None, what="the run")
        panel = detail.query_one(ChartsPanel)
        # Histories with steps come first: loss and rmse, lower is better.
        assert panel.selected == ["loss", "rmse"]

        def chart(key: str) -> MetricChart:
            return next(c for c in detail.query(MetricChart) if c.key == key)

        await wait_until(
            pilot,
            lambda: chart("rmse").series and len(chart("rmse").series[0].xs) == 10,
            what="the rmse history",
        )
        assert chart("rmse").series[0].xs == list(range(10))
        await pilot.press("x")
        await wait_until(
            pilot,
            lambda: (
                panel.x_mode == "time"
                and chart("rmse").series
                and chart("rmse").series[0].xs[0] == T0
            ),
            what="wall-time x",
        )
        await pilot.press("x")
        await wait_until(
            pilot,
            lambda: (
                panel.x_mode == "relative"
                and chart("rmse").series
                and chart("rmse").series[0].xs[1] == 60.0
            ),
            what="relative x",
        )
        await pilot.press("s")
        assert chart("rmse").smoothing == 0.6
        await pilot.press("l")
        assert chart("rmse").log_y is True
        assert "log" in chart("rmse").render().__str__() or chart("rmse").log_y
        # Pick acc too (space in the metric list).
        pick = detail.query_one("#metric-pick")
        pick.focus()
        pick.select("acc")
        await wait_until(
            pilot,
            lambda: any(c.key == "acc" for c in detail.query(MetricChart)),
            what="an acc chart",
        )
        # Overlay two more runs.
        await pilot.press("a")
        picker = await wait_until(
            pilot,
            lambda: app.screen.__class__.__name__ == "RunPicker" and app.screen,
            what="the run picker",
        )
        picker.dismiss(wine["runs"][1:3])
        await wait_until(
            pilot,
            lambda: detail.overlay == wine["runs"][1:3] and len(chart("rmse").series) == 3,
            what="three runs overlaid",
        )
        assert [s.label for s in chart("rmse").series] == [
            wine["names"][r] for r in wine["runs"][:3]
        ]
        # Other tabs.
        await pilot.press("2")
        params = detail.query_one("#params-table")
        assert {str(params.get_row_at(i)[0]) for i in range(params.row_count)} == {
            "alpha",
            "depth",
            "model",
        }
        await pilot.press("3")
        metrics = detail.query_one("#metrics-table")
        await wait_until(pilot, lambda: str(metrics.get_row_at(2)[3]) != "…", what="min/max")
        row = [str(c) for c in metrics.get_row_at(2)]  # rmse
        assert row[0] == "rmse" and float(row[3]) < float(row[4]) and row[5] == "10"
        await pilot.press("4")
        tags = detail.query_one("#tags-table")
        assert "team" in {str(tags.get_row_at(i)[0]) for i in range(tags.row_count)}
        await pilot.press("5")
        view = detail.query_one(ArtifactView)
        await wait_until(
            pilot,
            lambda: view.path == "logs/train.log" and "epoch 11" in view.text,
            what="the log artifact",
        )
        await pilot.press("6")
        await wait_until(
            pilot,
            lambda: "environment files" in str(detail.query_one("#env-files").render()),
            what="the environment tab",
        )
        await pilot.press("escape")
        assert isinstance(app.screen, ExperimentsScreen)


async def test_compare_marked_runs(env: TuiEnv, wine: dict[str, Any]) -> None:
    """Mark runs with space, press c: differing params highlighted, best metric marked, charts."""
    app = app_for(env, wine["repo"])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_experiments(pilot, app)
        grid = screen.grid
        grid.focus()
        await pilot.press("c")
        assert isinstance(app.screen, ExperimentsScreen)  # one run is not a comparison
        assert any("Mark two or more" in n for n in notes(app))
        await pilot.press("space", "space", "space")
        assert len(grid.selected) == 3
        await pilot.press("c")
        cmp = await wait_until(
            pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen, what="compare"
        )
        await wait_until(pilot, lambda: cmp.data is not None, what="the comparison")
        assert cmp.run_ids == grid.selected
        params = {p["key"]: p for p in cmp.data["params"]}
        assert params["model"]["differs"] is True
        table = cmp.query_one("#cmp-params")
        first_cells = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert any(c.startswith("≠ model") for c in first_cells)
        metrics = {m["key"]: m for m in cmp.data["metrics"]}
        rmse = [v for v in metrics["rmse"]["values"]]
        assert metrics["rmse"]["best"] == rmse.index(min(rmse))
        await pilot.press("2")
        panel = cmp.query_one(ChartsPanel)
        await wait_until(
            pilot,
            lambda: any(len(c.series) == 3 for c in cmp.query(MetricChart)),
            what="overlaid charts",
        )
        assert [r for r, _ in panel.runs] == cmp.run_ids
        await pilot.press("o")
        await wait_until(
            pilot,
            lambda: (
                cmp.query_one("#cmp-params").row_count
                == sum(1 for p in cmp.data["params"] if p["differs"])
            ),
            what="only differences",
        )


async def test_live_run_and_new_run_appear_without_a_key(env: TuiEnv) -> None:
    """A writer appends metrics to a running run and starts a new one; the screens follow."""
    repo = env.repo("live")
    mlf = mlflow_client(repo)
    exp = mlf.create_experiment("live")
    run = mlf.create_run(exp, run_name="training")
    rid = run.info.run_id
    for step in range(3):
        mlf.log_metric(rid, "loss", 1.0 / (step + 1), step=step)
    log_dir = Path(run.info.artifact_uri.removeprefix("file://")) / "logs"
    log_dir.mkdir(parents=True)
    (log_dir / "console.log").write_text("step 0\n")
    env.sync(repo)
    app = app_for(env, repo)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_experiments(pilot, app)
        grid = screen.grid
        assert grid.total == 1 and grid.rows[0]["status"] == "RUNNING"
        grid.focus()
        await pilot.press("enter")
        detail = await wait_until(
            pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen, what="run detail"
        )

        def loss() -> list[float]:
            charts = [c for c in detail.query(MetricChart) if c.key == "loss"]
            return [float(y) for y in charts[0].series[0].ys] if charts and charts[0].series else []

        await wait_until(pilot, lambda: len(loss()) == 3, what="three points")
        await pilot.press("5")
        view = detail.query_one(ArtifactView)
        await wait_until(
            pilot,
            lambda: view.path == "logs/console.log" and view.following,
            what="the console log, followed",
        )
        # The writer appends: no key is pressed from here on.
        for step in range(3, 6):
            mlf.log_metric(rid, "loss", 1.0 / (step + 1), step=step)
        with open(log_dir / "console.log", "a") as f:
            f.write("step 1\nstep 2\n")
        await wait_until(pilot, lambda: len(loss()) == 6, what="the appended points on the chart")
        assert math.isclose(loss()[-1], 1 / 6)
        await wait_until(pilot, lambda: "step 2" in view.text, what="the log to grow")
        assert detail.run["metrics"]["loss"]["step"] == 5
        # A new run appears in the grid (back on the experiments screen).
        await pilot.press("escape")
        new = mlf.create_run(exp, run_name="second")
        await wait_until(
            pilot,
            lambda: (
                grid.total == 2 and any(r["run_id"] == new.info.run_id for r in grid.rows.values())
            ),
            what="the new run in the grid",
        )
        # The run finishes: its status cell changes in place.
        mlf.set_terminated(rid, "FINISHED")
        await wait_until(
            pilot,
            lambda: any(
                r["run_id"] == rid and r["status"] == "FINISHED" for r in grid.rows.values()
            ),
            what="the finished status",
        )
        # Insights follows too.
        await pilot.press("i")
        ins = app.screen
        await wait_until(pilot, lambda: ins.data and ins.data["total"] == 2, what="insights update")


async def test_unreachable_daemon(env: TuiEnv) -> None:
    """No daemon and no autostart: a sentence in the app, not a traceback."""
    app = make_app(str(env.base), str(env.base / "nobody.sock"), autostart=False, timeout=5)
    async with app.run_test(size=SIZE) as pilot:
        notice = app.screen.query_one("#notice", Notice)
        await wait_until(
            pilot,
            lambda: notice.display and notice.title == "Daemon unreachable",
            what="the unreachable message",
        )
        assert "octostored --detach" in notice.message
        await pilot.press("e")
        status = app.screen.query_one("#grid-status")
        await wait_until(
            pilot,
            lambda: "Daemon unreachable" in str(status.render()),
            what="the message on the experiments screen",
        )
    assert app.return_code in (0, None)


async def test_repo_without_mlflow_data(env: TuiEnv) -> None:
    repo = env.repo("plain")
    app = app_for(env, repo)
    async with app.run_test(size=SIZE) as pilot:
        notice = app.screen.query_one("#notice", Notice)
        await wait_until(
            pilot,
            lambda: notice.display and notice.title == "No MLflow data here",
            what="the no-data message",
        )
        assert "octostore-tui DIR" in notice.message


async def test_store_without_runs(env: TuiEnv) -> None:
    repo = env.repo("empty")
    mlflow_client(repo).create_experiment("nothing-yet")
    env.sync(repo)
    app = app_for(env, repo)
    async with app.run_test(size=SIZE) as pilot:
        notice = app.screen.query_one("#notice", Notice)
        await wait_until(
            pilot,
            lambda: notice.display and notice.title == "No runs yet",
            what="the no-runs message",
        )
        await pilot.press("e")
        screen = app.screen
        await wait_until(
            pilot,
            lambda: isinstance(screen, ExperimentsScreen) and screen.grid.total == 0,
            what="an empty grid",
        )


async def test_store_warnings_show_on_insights(env: TuiEnv) -> None:
    """A store's standing warning (here a run MLflow cannot read) is on the home screen."""
    repo = env.repo("warned")
    mlf = mlflow_client(repo)
    exp = mlf.create_experiment("warned")
    good = mlf.create_run(exp, run_name="good")
    mlf.log_metric(good.info.run_id, "loss", 0.5)
    mlf.set_terminated(good.info.run_id, "FINISHED")
    bad = mlf.create_run(exp, run_name="bad")
    meta = repo / "mlruns" / exp / bad.info.run_id / "meta.yaml"
    meta.write_text("{{{ not yaml")
    env.sync(repo)
    app = app_for(env, repo)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.first_data_seconds is not None, what="insights")
        screen = app.screen
        assert isinstance(screen, InsightsScreen)
        summary = str(screen.query_one("#summary").render())
        assert "⚠" in summary and "invalid YAML" in summary and "run skipped" in summary
        assert screen.warnings and screen.warnings[0].startswith("mlruns: ")
        await pilot.press("w")
        assert any("invalid YAML" in n for n in notes(app))

async def test_missing_folder_and_unknown_run(env: TuiEnv, wine: dict[str, Any]) -> None:
    """A folder that does not exist, and a run id that does not: messages, not tracebacks."""
    app = app_for(env, env.base / "nope")
    async with app.run_test(size=SIZE) as pilot:
        notice = app.screen.query_one("#notice", Notice)
        await wait_until(
            pilot,
            lambda: notice.display and notice.title == "Folder not found",
            what="folder not found",
        )
    app = app_for(env, wine["repo"])
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.first_data_seconds is not None, what="first data")
        app.push_screen(RunDetailScreen("0123456789abcdef"))
        notice = await wait_until(
            pilot, lambda: app.screen.query_one("#run-notice", Notice), what="notice"
        )
        await wait_until(
            pilot, lambda: notice.display and notice.title == "Run not found", what="run not found"
        )


async def test_help_palette_and_theme(env: TuiEnv, wine: dict[str, Any]) -> None:
    """`?` lists the screen's keys; the palette has each action; ctrl+t switches the theme."""
    app = app_for(env, wine["repo"])
    async with app.run_test(size=SIZE) as pilot:
        await open_experiments(pilot, app)
        await pilot.press("question_mark")
        help_screen = await wait_until(
            pilot, lambda: app.screen.__class__.__name__ == "HelpScreen" and app.screen, what="help"
        )
        console = Console(width=120)
        with console.capture() as cap:
            console.print(help_screen._keys())
        keys = cap.get()
        assert "Columns" in keys and "Compare" in keys and "Filter" in keys
        await pilot.press("escape")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in (
            "Go to Insights",
            "Go to Experiments",
            "Runs: filter",
            "Runs: choose columns",
            "Runs: compare marked runs",
            "Runs: show or hide deleted runs",
            "Commit runs (says how, in a terminal)",
            "Reproduce run (says how, in a terminal)",
        ):
            assert title in titles
        theme = app.theme
        await pilot.press("ctrl+t")
        assert app.theme != theme
        await pilot.press("C")
        assert any("`octostore commit`" in n for n in notes(app))


def test_mlflow_agrees_on_the_fixture(wine: dict[str, Any]) -> None:
    """The fixture store is what the assertions above assume (read back by MLflow itself)."""
    mlf = mlflow_client(wine["repo"])
    assert len(mlf.search_runs([wine["experiment"]], run_view_type=ViewType.ALL)) == 24
    assert len(mlf.search_runs([wine["experiment"]])) == 23
