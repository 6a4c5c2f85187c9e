"""Console logs in the dashboard (issue 10), driven by Pilot against a real daemon.

The logs are written here in the agreed on-disk format (a ``.log`` of raw bytes
and an ``.idx`` of time marks under ``.octostore/logs``, named by the run's
``octostore.console_log`` tag) for runs written by real MLflow.  A person opens
a running run's Outputs & logs tab and watches the console follow the writer;
progress bars show as their last state and colours as colours; ``/`` searches
the whole log through the daemon; ``[`` loads earlier output; a run without a
log says how to keep one; a reproduction opens its original's log with ``o``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from octostore_tui.app import OctostoreApp, make_app
from octostore_tui.screens.run_detail import RunDetailScreen
from octostore_tui.widgets.artifact_tree import ArtifactTree
from octostore_tui.widgets.artifact_view import NO_LOG_HINT, ArtifactView
from octostored.console.logformat import TAG

from .test_tui_support import (  # noqa: F401 - env, no_worker_errors: fixtures
    ConsoleLog, TuiEnv, env, mlflow_client, no_worker_errors, wait_until, write_wine_store)

SIZE = (140, 40)


def app_for(env: TuiEnv, repo: Path) -> OctostoreApp:
    return make_app(str(repo), env.daemon.socket, autostart=False, timeout=15)


async def open_outputs(pilot: Any, run_id: str) -> tuple[RunDetailScreen, ArtifactView]:
    app = pilot.app
    await wait_until(pilot, lambda: app.first_data_seconds is not None, what="the first screen")
    app.push_screen(RunDetailScreen(run_id))
    detail = await wait_until(
        pilot,
        lambda: isinstance(app.screen, RunDetailScreen) and app.screen.run and app.screen,
        what="run detail",
    )
    await pilot.press("5")
    view = detail.query_one(ArtifactView)
    await wait_until(pilot, lambda: view.source is not None, what="something opened")
    return detail, view


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_a_running_runs_console_is_followed_live(env: TuiEnv) -> None:
    repo = env.repo("live")
    mlf = mlflow_client(repo)
    exp = mlf.create_experiment("live")
    log = ConsoleLog(repo, "20240311T090000Z-1", now_ms() - 5000)
    run = mlf.create_run(exp, run_name="training", tags={TAG: log.rel})
    rid = run.info.run_id
    log.write("loading data\n", now_ms())
    mlf.log_metric(rid, "loss", 1.0, step=0)
    bar = "".join(f"\repoch 1 {i:3d}%|{'#' * (i // 10):<10}|" for i in range(0, 101, 5))
    log.write(f"\x1b[1;32mready\x1b[0m\n{bar}\n", now_ms())
    env.sync(repo)
    app = app_for(env, repo)
    async with app.run_test(size=SIZE) as pilot:
        detail, view = await open_outputs(pilot, rid)
        tree = detail.query_one(ArtifactTree)
        # The console comes first in the tree, with its size and a live marker.
        first = tree.root.children[0]
        assert first.data["log"]["name"] == "console"
        assert str(first.label).startswith("● console")  # ● marks a live log
        assert view.source.kind == "log" and view.source.run_id == rid
        await wait_until(pilot, lambda: view.following, what="the live log, followed")
        # The progress bar is one line in its last state; colours are styles, not codes.
        assert view.console.lines == ["loading data", "ready", "epoch 1 100%|##########|"]
        ready = view.console.term.lines[1]
        assert ready.spans and ready.spans[0].style.bold
        assert "●" in str(view.query_one("#artifact-title").render())
        # The writer goes on: no key is pressed from here on.
        bar2 = "".join(f"\repoch 2 {i:3d}%" for i in range(0, 101, 10))
        log.write(f"epoch 1 loss 0.5\n{bar2}", now_ms())
        await wait_until(pilot, lambda: view.console.lines[-1] == "epoch 2 100%", what="epoch 2")
        assert view.console.lines[-2] == "epoch 1 loss 0.5"
        # A bar still being drawn (no newline yet) is redrawn in place as it moves on.
        log.write("\x1b[K\repoch 2 done\n")
        await wait_until(
            pilot, lambda: view.console.lines[-1] == "epoch 2 done", what="the bar redrawn"
        )
        assert len(view.console.lines) == 5
        # Many lines: the view stays at the bottom while the user is there...
        log.write("".join(f"step {i}\n" for i in range(200)), now_ms())
        console = view.console
        await wait_until(pilot, lambda: console.lines[-1] == "step 199", what="200 more lines")
        await wait_until(pilot, lambda: console.max_scroll_y > 0 and console.at_end, what="end")
        # ...and does not move when she scrolled up to read.
        console.scroll_home(animate=False, immediate=True)
        await pilot.pause(0.05)
        log.write("step 200\n", now_ms())
        await wait_until(pilot, lambda: console.lines[-1] == "step 200", what="one more line")
        assert console.scroll_y == 0
        # The run ends: the writer's exit mark, MLflow's status; following stops.
        log.exit(now_ms())
        mlf.set_terminated(rid, "FINISHED")
        await wait_until(pilot, lambda: not view.following, what="following to stop")
        await wait_until(
            pilot,
            lambda: str(tree.root.children[0].label).startswith("▶ console"),
            what="the live marker to go",
        )


async def test_search_earlier_output_and_the_line_cap(
    env: TuiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`/` greps the whole log in the daemon; `[` loads earlier; a huge log keeps its tail."""
    from octostore_tui.widgets import artifact_view

    monkeypatch.setattr(artifact_view, "TAIL_BYTES", 16 * 1024)
    repo = env.repo("search")
    mlf = mlflow_client(repo)
    exp = mlf.create_experiment("search")
    t0 = now_ms() - 60_000
    log = ConsoleLog(repo, "20240311T090000Z-2", t0)
    lines = [f"step {i:05d} loss {1 / (i + 1):.4f}" for i in range(3000)]
    lines[10] = "\x1b[31mERROR\x1b[0m disk nearly full"
    lines[2990] = "ERROR nan loss"
    log.write("".join(line + "\n" for line in lines), t0 + 1000)
    log.exit(t0 + 50_000)
    run = mlf.create_run(exp, run_name="long", start_time=t0 + 500, tags={TAG: log.rel})
    rid = run.info.run_id
    mlf.set_terminated(rid, "FINISHED", end_time=t0 + 40_000)
    env.sync(repo)
    app = app_for(env, repo)
    async with app.run_test(size=SIZE) as pilot:
        detail, view = await open_outputs(pilot, rid)
        await wait_until(pilot, lambda: view.console.lines, what="the log's tail")
        assert view.console.lines[-1] == "step 02999 loss 0.0003"
        assert view.start > 0 and not view.following  # the tail only; the run is over
        assert "loads earlier" in str(view.query_one("#artifact-title").render())
        # Search: both ERROR lines, though only the tail is loaded.
        await pilot.press("slash")
        box = view.query_one("#log-search")
        assert box.has_focus
        await pilot.press(*"ERROR", "enter")
        await wait_until(pilot, lambda: len(view.matches) == 2, what="two matches")
        assert [n for n, _ in view.matches] == [11, 2991]
        matches = view.query_one("#log-matches")
        assert matches.option_count == 2 and "disk nearly full" in str(
            matches.get_option_at_index(0).prompt
        )
        # The first is before the loaded part: the note says how to get there.
        assert view.console.marked is None
        assert "before the part shown" in str(view.query_one("#log-note").render())
        # n jumps to the next, which is loaded: its line is marked.
        await pilot.press("n")
        row = view.console.marked
        assert row is not None and view.console.lines[row] == "ERROR nan loss"
        # [ loads earlier output in front, keeping what was loaded.
        before = len(view.console.lines)
        start = view.start
        view.console.focus()
        await pilot.press("left_square_bracket")
        await wait_until(pilot, lambda: view.start < start, what="earlier output")
        assert len(view.console.lines) > before
        assert view.console.lines[view.console.marked] == "ERROR nan loss"
        while view.start > 0:
            start = view.start
            await pilot.press("left_square_bracket")
            await wait_until(pilot, lambda: view.start < start, what="earlier output")
        assert view.console.lines[:2] == ["step 00000 loss 1.0000", "step 00001 loss 0.5000"]
        # From the start, line numbers are exact: the first match is found now.
        await pilot.press("N")
        row = view.console.marked
        assert row == 10 and view.console.lines[row] == "ERROR disk nearly full"
        # A bad pattern is a sentence, not a traceback.
        await pilot.press("slash")
        box.value = ""
        await pilot.press(*"(oops", "enter")
        await wait_until(pilot, lambda: box.has_class("-invalid"), what="the bad pattern")
        assert "regular expression" in str(view.query_one("#log-note").render())
        await pilot.press("escape")
        assert not view.search_shown and isinstance(app.screen, RunDetailScreen)

    # A log longer than the line cap keeps its last lines and says so.
    monkeypatch.setattr(artifact_view, "TAIL_BYTES", 256 * 1024)
    app = app_for(env, repo)
    async with app.run_test(size=SIZE) as pilot:
        detail, view = await open_outputs(pilot, rid)
        view.console.max_lines = 1000
        view.open(view.source)
        await wait_until(pilot, lambda: view.console.term.dropped, what="the cap")
        assert len(view.console.lines) == 1000
        assert view.console.lines[-1] == "step 02999 loss 0.0003"
        assert "showing the last 1,000 lines" in str(view.query_one("#log-note").render())
        # The view is full: [ shows the part before on its own; ] comes back to the end.
        start = view.start
        view.console.focus()
        await pilot.press("left_square_bracket")
        await wait_until(pilot, lambda: view.window and view.start < start, what="the earlier part")
        assert view.console.lines[-1] != "step 02999 loss 0.0003"
        assert "an earlier part" in str(view.query_one("#artifact-title").render())
        await pilot.press("right_square_bracket")
        await wait_until(
            pilot,
            lambda: not view.window and view.console.lines[-1] == "step 02999 loss 0.0003",
            what="back at the end",
        )


async def test_a_run_without_a_log_says_how_to_keep_one(env: TuiEnv) -> None:
    repo = env.repo("nolog")
    store = write_wine_store(repo, n_runs=8, seed=23)
    env.sync(repo)
    app = app_for(env, repo)
    async with app.run_test(size=SIZE) as pilot:
        detail, view = await open_outputs(pilot, store["runs"][0])
        await wait_until(pilot, lambda: "epoch 11" in view.text, what="the artifact log")
        assert view.source.kind == "artifact" and view.path == "logs/train.log"
        note = str(view.query_one("#log-note").render())
        assert "octostore run -- python train.py" in note and NO_LOG_HINT.startswith("No console")
        # Searching an artifact looks through its lines.
        await pilot.press("slash", *"epoch 1[01]", "enter")
        await wait_until(pilot, lambda: len(view.matches) == 2, what="the matches")
        assert view.console.lines[view.console.marked] == "epoch 10: rmse 0.500"
        # No reproduction either way: the other-run key is not offered.
        await pilot.press("escape")
        assert detail.check_action("other_log", ()) is False
        assert detail.check_action("log_search", ()) is True
        await pilot.press("1")
        assert detail.check_action("log_search", ()) is False


async def test_a_reproduction_opens_its_originals_log(env: TuiEnv) -> None:
    repo = env.repo("repro")
    mlf = mlflow_client(repo)
    exp = mlf.create_experiment("repro")
    t0 = now_ms() - 60_000
    log = ConsoleLog(repo, "20240311T090000Z-3", t0)
    log.write("original: \x1b[33mseed 1\x1b[0m\nloss 0.25\n", t0 + 1000)
    log.exit(t0 + 2000)
    orig = mlf.create_run(exp, run_name="orig", start_time=t0 + 500, tags={TAG: log.rel})
    mlf.set_terminated(orig.info.run_id, "FINISHED", end_time=t0 + 1500)
    rep = mlf.create_run(
        exp,
        run_name="orig-reproduced",
        start_time=t0 + 10_000,
        tags={"octostore.reproduces": orig.info.run_id},
    )
    mlf.log_text(rep.info.run_id, "reproduction: seed 1\nloss 0.25\n", "octostore/console.log")
    mlf.set_terminated(rep.info.run_id, "FINISHED", end_time=t0 + 20_000)
    env.sync(repo)
    app = app_for(env, repo)
    async with app.run_test(size=SIZE) as pilot:
        detail, view = await open_outputs(pilot, rep.info.run_id)
        await wait_until(pilot, lambda: view.console.lines, what="the reproduction's log")
        assert view.source.run_id == rep.info.run_id
        assert view.console.lines[0] == "reproduction: seed 1"
        await wait_until(pilot, lambda: detail.related, what="the original's log offered")
        await pilot.press("o")
        await wait_until(
            pilot,
            lambda: view.source.run_id == orig.info.run_id and view.console.lines,
            what="the original's log",
        )
        assert view.console.lines == ["original: seed 1", "loss 0.25"]
        assert "original" in str(view.query_one("#artifact-title").render())
        await pilot.press("o")
        await wait_until(
            pilot, lambda: view.source.run_id == rep.info.run_id, what="back to the reproduction"
        )
