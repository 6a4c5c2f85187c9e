"""Pure parts of the TUI: formatting, order_by for columns, message coalescing, error mapping."""

from __future__ import annotations

import math

from octostore_tui import format as fmt
from octostore_tui.daemon_link import LinkError, link_error
from octostore_tui.messages import RunsChanged
from octostore_tui.widgets.bar_chart import _int_ticks
from octostore_tui.widgets.metric_chart import _step_ticks
from octostored.client import DaemonUnavailable, RequestError, Timeout


def test_numbers() -> None:
    assert fmt.num(0.123456) == "0.1235"
    assert fmt.num(12.3456) == "12.35"
    assert fmt.num(3.0) == "3"
    assert fmt.num("NaN") == "NaN"
    assert fmt.num("Infinity") == "∞"
    assert fmt.num("-Infinity") == "-∞"
    assert fmt.num(None) == "—"
    assert fmt.num(1.5e-7) == "1.5e-07"
    assert fmt.num(1234567.0) == "1234567"
    assert fmt.num(1234567.5) == "1.235e+06"
    assert fmt.metric_value({"value": "NaN"}) is not None and math.isnan(fmt.metric_value("NaN"))


def test_durations() -> None:
    assert fmt.duration(0.25) == "250ms"
    assert fmt.duration(4.2) == "4.2s"
    assert fmt.duration(65) == "1m 05s"
    assert fmt.duration(2 * 3600 + 7 * 60) == "2h 07m"
    assert fmt.run_duration({"start_time": 1000, "end_time": 61000}) == "1m 00s"
    assert (
        fmt.run_duration({"start_time": 1000, "end_time": None, "status": "RUNNING"}, now_ms=31000)
        == "30s"
    )
    assert fmt.run_duration({"start_time": 1000, "end_time": None, "status": "FAILED"}) == "—"


def test_order_by_for_columns() -> None:
    assert fmt.column_order_by("metrics.rmse", True) == "metrics.rmse ASC"
    assert fmt.column_order_by("params.max depth", False) == "params.`max depth` DESC"
    assert fmt.column_order_by("start_time", False) == "attributes.start_time DESC"
    assert fmt.column_order_by("run_name", True) == "attributes.run_name ASC"
    assert fmt.column_order_by("duration", True) is None


def test_ema_is_debiased() -> None:
    assert fmt.ema([1.0, 1.0, 1.0], 0.9) == [1.0, 1.0, 1.0]
    assert fmt.ema([1.0, 2.0], 0.0) == [1.0, 2.0]
    out = fmt.ema([0.0, 10.0], 0.5)
    assert out[0] == 0.0 and 6.6 < out[1] < 6.7


def test_runs_changed_coalesces_without_losing_runs() -> None:
    old = RunsChanged("/r", "c:1", {"a"}, {"x"}, set())
    new = RunsChanged("/r", "c:2", {"b"}, set(), {"e"}, environment=True)
    assert old.can_replace(new)
    assert new.runs == {"a", "b"} and new.removed == {"x"} and new.experiments == {"e"}
    assert new.clock == "c:2" and new.environment
    other_root = RunsChanged("/other", "c:3", set(), set(), set())
    assert not new.can_replace(other_root)


def test_errors_become_sentences() -> None:
    bad = link_error(RequestError(1002, "bad filter at 'metrics.rmse <': expected a value"))
    assert isinstance(bad, LinkError) and bad.title == "Bad filter" and bad.code == 1002
    assert bad.message.endswith(".") and bad.message[0].isupper()
    down = link_error(
        DaemonUnavailable("no daemon at /x.sock; start one with `octostored --detach`")
    )
    assert down.title == "Daemon unreachable" and "octostored --detach" in down.message
    assert link_error(Timeout("slow")).title == "Daemon did not answer"
    assert link_error(ValueError("boom")).title == "Unexpected error"


def test_ticks() -> None:
    assert _int_ticks(6, 4) == [0, 2, 4, 6]
    assert _int_ticks(5, 2) == [0, 5]
    assert _int_ticks(1, 5) == [0, 1]
    assert _step_ticks(0, 9, 6) == [0, 2, 4, 6, 8]
    assert _step_ticks(10, 150, 6) == [50, 100, 150]


def test_start_path_imports() -> None:
    """The app never loads MLflow, pandas, numpy or GitPython; the early daemon start not Textual."""
    import subprocess
    import sys

    code = (
        "import sys\nimport octostore_tui.prestart\nearly = 'textual' in sys.modules\n"
        "import octostore_tui.app\n"
        "heavy = [m for m in ('mlflow', 'pandas', 'numpy', 'sqlalchemy', 'git') if m in sys.modules]\n"
        "print(early, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False []"


# -- console logs: terminal rendering ------------------------------------------------------
from typing import Any  # noqa: E402

from octostore_tui.terminal import TerminalText  # noqa: E402


def play(*chunks: str, max_lines: int = 10_000) -> TerminalText:
    term = TerminalText(max_lines=max_lines)
    for c in chunks:
        term.feed(c)
    return term


def test_carriage_return_progress_collapses_to_its_last_state() -> None:
    bar = "".join(f"\rtraining {i:3d}%|{'#' * (i // 10):<10}|" for i in range(0, 101))
    term = play("epoch 1\n", bar, "\n", "done\n")
    assert term.plain == ["epoch 1", "training 100%|##########|", "done"]
    # Shorter text overwrites only the start of the line, as a terminal does.
    assert play("abcdef\rxy").plain == ["xycdef"]
    # ...unless the program erases the rest (ESC[K), as progress libraries do.
    assert play("abcdef\rxy\x1b[K").plain == ["xy"]
    # Windows line ends are plain line ends.
    assert play("a\r\nb\r\n").plain == ["a", "b"]


def test_chunks_may_split_anything() -> None:
    whole = "loss \x1b[31m0.5\x1b[0m\rloss \x1b[32m0.4\x1b[0m\nnext\n"
    once = play(whole)
    for cut in range(len(whole)):
        split = play(whole[:cut], whole[cut:])
        assert split.plain == once.plain == ["loss 0.4", "next"], cut
        assert char_styles(split.lines[0]) == char_styles(once.lines[0]), cut


def char_styles(text: Any) -> list[str]:
    out = [""] * len(text.plain)
    for span in text.spans:
        for i in range(span.start, span.end):
            out[i] += str(span.style)
    return out


def test_ansi_colours_become_styles() -> None:
    term = play("\x1b[1;31merror:\x1b[0m disk full\n")
    line = term.lines[0]
    assert line.plain == "error: disk full"
    (span,) = line.spans
    assert (span.start, span.end) == (0, 6)
    style = span.style
    assert style.bold and style.color is not None and style.color.number == 1  # red
    # A colour set on one line carries to the next, like a terminal (the decoder keeps state).
    term = play("\x1b[33mwarn\n", "still yellow\x1b[0m\n")
    assert term.lines[1].spans and term.lines[1].spans[0].style.color.number == 3


def test_cursor_up_redraws_earlier_lines() -> None:
    # Two tqdm bars: the inner one redraws the line below, then moves back up.
    out = "outer 0%" + "".join(f"\n\rinner {i}%\x1b[A" for i in range(0, 101, 50))
    out += "\router 100%\n\n"
    assert play(out).plain == ["outer 100%", "inner 100%"]


def test_control_codes_are_dropped_and_tabs_expand() -> None:
    assert play("a\x07b\x1b]0;title\x07c\x1b[2Jd\n").plain == ["abcd"]
    assert play("x\ty\n").plain == ["x       y"]
    assert play("ab\x08c\n").plain == ["ac"]


def test_keeps_only_the_last_lines() -> None:
    term = play("".join(f"line {i}\n" for i in range(250)), max_lines=100)
    assert term.line_count <= 100
    assert term.plain[-1] == "line 249" and term.dropped == 250 - len(term.lines) + 1
    assert term.plain[0] == f"line {term.dropped}"


def test_changes_tell_the_view_what_to_redraw() -> None:
    term = play("a\nb\n")
    assert term.take_changes() == 0
    assert term.take_changes() is None
    term.feed("c")
    assert term.take_changes() == 2
    term.feed("\rd")
    assert term.take_changes() == 2 and term.plain == ["a", "b", "d"]


def test_prepend_joins_a_line_cut_in_two() -> None:
    whole = "one\ntwo\nthree\n"
    later = play(whole[6:])  # "o\nthree\n": the load started mid-line
    added = later.prepend(play(whole[:6]))
    assert later.plain == ["one", "two", "three"] and added == 1
    later = play(whole[4:])  # the cut fell on a line start
    later.prepend(play(whole[:4]))
    assert later.plain == ["one", "two", "three"]


def test_plain_line_is_what_a_grep_match_shows_as() -> None:
    from octostore_tui.terminal import plain_line

    assert plain_line("epoch 1  10%\repoch 1 100%\x1b[K") == "epoch 1 100%"
    assert plain_line("\x1b[31mERROR\x1b[0m disk full") == "ERROR disk full"


def test_root_warnings_name_their_store_once() -> None:
    from octostore_tui.screens.insights import root_warnings

    info = {
        "root": "/repo",
        "warnings": ["tracking server http://mlflow:5000 unreachable", "mlruns/3: bad meta.yaml"],
        "sources": [
            {"path": "/repo/mlruns", "kind": "file", "warnings": ["mlruns/3: bad meta.yaml"]},
            {
                "path": "http://mlflow:5000",
                "kind": "server",
                "warnings": [],
                "warning": "tracking server http://mlflow:5000 unreachable",
                "state": "error",
                "remote": {"error": "connection refused"},
            },
            {"path": "/repo/mlflow.db", "kind": "sqlite", "warnings": []},
        ],
    }
    assert root_warnings(info) == [
        "mlruns: mlruns/3: bad meta.yaml",
        "http://mlflow:5000: tracking server http://mlflow:5000 unreachable",
    ]
    # A server in error without a sentence of its own still says why.
    info = {"root": "/r", "sources": [
        {"path": "http://x", "kind": "server", "state": "error", "remote": {"error": "refused"}}
    ]}
    assert root_warnings(info) == ["http://x: refused"]
    assert root_warnings({"root": "/r", "sources": [{"path": "/r/mlruns", "kind": "file"}]}) == []


def test_lines_know_where_they_began_in_bytes() -> None:
    # A view that let go of its first lines asks for the bytes before the first one it kept.
    data = "".join(f"é{i}\n" for i in range(10))  # two-byte characters: bytes != characters
    term = play(data[:7], data[7:], max_lines=4)
    first = term.plain[0]
    assert first == "é6" and term.starts[0] == data.encode().index(first.encode())
    assert term.fed == len(data.encode())
    term = TerminalText(base=1000)
    term.feed("ab\ncd\n")
    assert term.starts[:2] == [1000, 1003]
    # Prepending keeps every line's offset.
    later = TerminalText(base=4)
    later.feed("two\nthree\n")
    later.prepend(play("one\n"))
    assert later.plain == ["one", "two", "three"] and later.starts[:3] == [0, 4, 8]
