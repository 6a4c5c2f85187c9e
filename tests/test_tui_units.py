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


def test_lower_is_better_matches_the_daemon() -> None:
    from octostored.index.insights import lower_is_better

    for key in ("rmse", "val_loss", "error_rate", "acc", "r2", "f1", "latency_ms", "mae"):
        assert fmt.lower_is_better(key) == lower_is_better(key)


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
