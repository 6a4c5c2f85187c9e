"""Snapshot tests: the look of every screen, pinned as SVG (pytest-textual-snapshot).

Plain ``def`` tests (``snap_compare`` runs its own event loop, STACK.md §8).
The store is the deterministic wine store of ``test_tui_support`` (fixed ids,
times and values), served by a real daemon; HOME points at the temp folder
and TZ is UTC so that paths and times print the same everywhere.  Update with
``pytest tests/test_tui_snapshots.py --snapshot-update`` after checking the
new look by eye.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_textual_snapshot  # noqa: F401 - the snap_compare fixture's plugin; a test dependency

from octostore_tui.app import OctostoreApp, make_app
from octostore_tui.screens.compare import CompareScreen
from octostore_tui.screens.experiments import ExperimentsScreen
from octostore_tui.screens.run_detail import RunDetailScreen
from octostore_tui.widgets.artifact_view import ArtifactView
from octostore_tui.widgets.metric_chart import MetricChart
from octostore_tui.widgets.notice import Notice

from .test_tui_support import (
    HOUR,
    T0,
    ConsoleLog,
    TuiEnv,
    env,  # noqa: F401 - a fixture
    deterministic_ids,
    mlflow_client,
    wait_until,
    write_wine_store,
)

SEED = 11
SMALL = (80, 24)
LARGE = (160, 48)


@pytest.fixture(scope="module")
def wine(env: TuiEnv) -> dict[str, Any]:
    repo = env.repo("wine")
    # Its own seed: MLflow caches artifact repositories by run id within a process, so two
    # stores with the same run ids would write each other's artifacts.
    store = write_wine_store(repo, seed=SEED)
    store["repo"] = repo
    env.sync(repo)
    return store


@pytest.fixture(autouse=True)
def stable_paths_and_times(env: TuiEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HOME", str(env.base))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def app_for(env: TuiEnv, repo: Any, **kw: Any) -> OctostoreApp:
    return make_app(str(repo), env.daemon.socket, autostart=False, timeout=15, **kw)


async def settle(pilot: Any) -> None:
    """Wait until no data worker is running (the daemon link's worker always is)."""
    app = pilot.app
    await wait_until(
        pilot,
        lambda: not [w for w in app.workers if w.group != "daemon" and not w.is_finished],
        what="workers to finish",
    )
    await pilot.pause(0.1)


async def home(pilot: Any) -> None:
    await wait_until(pilot, lambda: pilot.app.first_data_seconds is not None, what="insights")
    await settle(pilot)


async def experiments(pilot: Any) -> ExperimentsScreen:
    await home(pilot)
    await pilot.press("e")
    screen = await wait_until(
        pilot,
        lambda: isinstance(pilot.app.screen, ExperimentsScreen) and pilot.app.screen,
        what="experiments",
    )
    await wait_until(pilot, lambda: screen.grid.total is not None and screen.grid.rows, what="rows")
    await settle(pilot)
    return screen


async def run_detail(pilot: Any, run_id: str, overlay: list[str] | None = None) -> RunDetailScreen:
    await home(pilot)
    pilot.app.push_screen(RunDetailScreen(run_id, overlay))
    screen = await wait_until(
        pilot,
        lambda: isinstance(pilot.app.screen, RunDetailScreen) and pilot.app.screen,
        what="run detail",
    )
    await wait_until(
        pilot,
        lambda: (
            screen.run is not None
            and all(c.series for c in screen.query(MetricChart))
            and list(screen.query(MetricChart))
        ),
        what="charts with data",
    )
    await settle(pilot)
    return screen


def test_insights_small(snap_compare: Any, env: TuiEnv, wine: dict[str, Any]) -> None:
    assert snap_compare(app_for(env, wine["repo"]), terminal_size=SMALL, run_before=home)


def test_insights_large(snap_compare: Any, env: TuiEnv, wine: dict[str, Any]) -> None:
    assert snap_compare(app_for(env, wine["repo"]), terminal_size=LARGE, run_before=home)


def test_insights_light_theme(snap_compare: Any, env: TuiEnv, wine: dict[str, Any]) -> None:
    app = app_for(env, wine["repo"], theme="textual-light")
    assert snap_compare(app, terminal_size=(120, 36), run_before=home)


def test_experiments_small(snap_compare: Any, env: TuiEnv, wine: dict[str, Any]) -> None:
    assert snap_compare(app_for(env, wine["repo"]), terminal_size=SMALL, run_before=experiments)


def test_experiments_large_sorted_and_marked(
    snap_compare: Any, env: TuiEnv, wine: dict[str, Any]
) -> None:
    async def before(pilot: Any) -> None:
        screen = await experiments(pilot)
        screen.grid.focus()
        screen.grid.cursor_col = [c.id for c in screen.grid.columns].index("metrics.rmse")
        await pilot.press("s")
        await wait_until(pilot, lambda: screen.order_by == ["metrics.rmse ASC"], what="sorted")
        await settle(pilot)
        await pilot.press("space", "space")
        await settle(pilot)

    assert snap_compare(app_for(env, wine["repo"]), terminal_size=LARGE, run_before=before)


def test_bad_filter(snap_compare: Any, env: TuiEnv, wine: dict[str, Any]) -> None:
    async def before(pilot: Any) -> None:
        screen = await experiments(pilot)
        screen.query_one("#filter").cursor_blink = False
        await pilot.click("#filter")
        await pilot.press(*"metrics.rmse <<", "enter")
        await wait_until(
            pilot,
            lambda: "Bad filter" in str(screen.query_one("#grid-status").render()),
            what="the bad filter message",
        )
        await settle(pilot)

    assert snap_compare(app_for(env, wine["repo"]), terminal_size=(120, 30), run_before=before)


def test_run_detail_charts(snap_compare: Any, env: TuiEnv, wine: dict[str, Any]) -> None:
    async def before(pilot: Any) -> None:
        await run_detail(pilot, wine["runs"][0], overlay=wine["runs"][1:3])

    assert snap_compare(app_for(env, wine["repo"]), terminal_size=(120, 36), run_before=before)


def test_run_detail_charts_small(snap_compare: Any, env: TuiEnv, wine: dict[str, Any]) -> None:
    async def before(pilot: Any) -> None:
        await run_detail(pilot, wine["runs"][0])

    assert snap_compare(app_for(env, wine["repo"]), terminal_size=SMALL, run_before=before)


def test_run_detail_outputs(snap_compare: Any, env: TuiEnv, wine: dict[str, Any]) -> None:
    async def before(pilot: Any) -> None:
        screen = await run_detail(pilot, wine["runs"][0])
        await pilot.press("5")
        view = screen.query_one(ArtifactView)
        await wait_until(pilot, lambda: "epoch 11" in view.text, what="the log")
        await settle(pilot)

    assert snap_compare(app_for(env, wine["repo"]), terminal_size=(120, 30), run_before=before)


@pytest.fixture(scope="module")
def console_run(env: TuiEnv) -> dict[str, Any]:
    """A finished run whose console log has colours, a progress bar and a warning."""
    from octostored.console.logformat import TAG

    repo = env.repo("console")
    log = ConsoleLog(repo, "20240311T090000Z-4242", T0 - 1000, pid=4242)
    bar = "".join(f"\repoch {{e}} {i:3d}%|{'█' * (i // 10):<10}|" for i in range(0, 101, 10))
    out = "\x1b[1;34m==>\x1b[0m loading data\n"
    out += "\x1b[33mwarning:\x1b[0m 3 rows with missing values dropped\n"
    for e in range(1, 6):
        out += bar.format(e=e) + f"\n\x1b[32mepoch {e} done\x1b[0m  "
        out += f"loss \x1b[1m{1 / e:.4f}\x1b[0m\n"
    out += "\x1b[1;31mERROR\x1b[0m could not reach the GPU; trained on the CPU\n"
    with deterministic_ids(SEED + 1):
        mlf = mlflow_client(repo)
        exp = mlf.create_experiment("console")
        run = mlf.create_run(exp, run_name="console-demo", start_time=T0, tags={TAG: log.rel})
        for e in range(1, 6):
            mlf.log_metric(run.info.run_id, "loss", 1 / e, timestamp=T0 + e * 60_000, step=e)
        log.write(out, T0 + 1000)
        log.exit(T0 + HOUR - 1000)
        mlf.set_terminated(run.info.run_id, "FINISHED", end_time=T0 + HOUR)
    env.sync(repo)
    return {"repo": repo, "run": run.info.run_id}


def test_run_detail_console_log(
    snap_compare: Any, env: TuiEnv, console_run: dict[str, Any]
) -> None:
    """The console log played like a terminal (bars collapsed, colours), searched for "loss"."""

    async def before(pilot: Any) -> None:
        screen = await run_detail(pilot, console_run["run"])
        await pilot.press("5")
        view = screen.query_one(ArtifactView)
        await wait_until(pilot, lambda: "ERROR" in view.text, what="the console log")
        view.query_one("#log-search").cursor_blink = False
        await pilot.press("slash", *"done", "enter")
        await wait_until(pilot, lambda: len(view.matches) == 5, what="the matches")
        await pilot.press("N")
        await settle(pilot)

    assert snap_compare(
        app_for(env, console_run["repo"]), terminal_size=(120, 36), run_before=before
    )


def test_run_detail_metrics(snap_compare: Any, env: TuiEnv, wine: dict[str, Any]) -> None:
    async def before(pilot: Any) -> None:
        screen = await run_detail(pilot, wine["runs"][0])
        await pilot.press("3")
        table = screen.query_one("#metrics-table")
        await wait_until(pilot, lambda: str(table.get_row_at(0)[3]) != "…", what="min and max")
        await settle(pilot)

    assert snap_compare(app_for(env, wine["repo"]), terminal_size=(100, 24), run_before=before)


def test_compare(snap_compare: Any, env: TuiEnv, wine: dict[str, Any]) -> None:
    async def before(pilot: Any) -> None:
        await home(pilot)
        pilot.app.push_screen(CompareScreen(wine["runs"][:3]))
        screen = await wait_until(
            pilot,
            lambda: isinstance(pilot.app.screen, CompareScreen) and pilot.app.screen,
            what="compare",
        )
        await wait_until(pilot, lambda: screen.data is not None, what="the comparison")
        await settle(pilot)

    assert snap_compare(app_for(env, wine["repo"]), terminal_size=(120, 30), run_before=before)


def test_compare_charts(snap_compare: Any, env: TuiEnv, wine: dict[str, Any]) -> None:
    async def before(pilot: Any) -> None:
        await home(pilot)
        pilot.app.push_screen(CompareScreen(wine["runs"][:3]))
        screen = await wait_until(
            pilot,
            lambda: isinstance(pilot.app.screen, CompareScreen) and pilot.app.screen,
            what="compare",
        )
        await wait_until(pilot, lambda: screen.data is not None, what="the comparison")
        await pilot.press("2")
        await wait_until(
            pilot,
            lambda: (
                list(screen.query(MetricChart))
                and all(len(c.series) == 3 for c in screen.query(MetricChart))
            ),
            what="overlaid charts",
        )
        await settle(pilot)

    assert snap_compare(app_for(env, wine["repo"]), terminal_size=(120, 36), run_before=before)


def test_help(snap_compare: Any, env: TuiEnv, wine: dict[str, Any]) -> None:
    async def before(pilot: Any) -> None:
        await experiments(pilot)
        await pilot.press("question_mark")
        await wait_until(
            pilot, lambda: pilot.app.screen.__class__.__name__ == "HelpScreen", what="help"
        )
        await settle(pilot)

    assert snap_compare(app_for(env, wine["repo"]), terminal_size=(100, 30), run_before=before)


def test_no_mlflow_data(snap_compare: Any, env: TuiEnv) -> None:
    repo = env.repo("plain")

    async def before(pilot: Any) -> None:
        await home(pilot)

    assert snap_compare(app_for(env, repo), terminal_size=SMALL, run_before=before)


def test_daemon_unreachable(snap_compare: Any, env: TuiEnv) -> None:
    # A fixed path: the message names the socket, and the snapshot must not change per run.
    app = make_app(
        str(env.base / "wine"),
        "/tmp/octostore-tui-snapshot-nobody/d.sock",  # no such folder: the path stays as given
        autostart=False,
        timeout=5,
    )

    async def before(pilot: Any) -> None:
        notice = pilot.app.screen.query_one("#notice", Notice)
        await wait_until(
            pilot,
            lambda: notice.display and notice.title == "Daemon unreachable",
            what="the message",
        )
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SMALL, run_before=before)
