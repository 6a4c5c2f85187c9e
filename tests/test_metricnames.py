"""The one rule for what a metric's name says (Insights, editor, commit message, TUI)."""

from __future__ import annotations

import pytest

from octostored.metricnames import direction, key_metric_order, lower_is_better


@pytest.mark.parametrize("key, lower", [
    ("rmse", True), ("val_loss", True), ("error_rate", True), ("latency_ms", True),
    ("trainloss", True),  # no word break: the substring rule
    ("nll", True), ("eval/distance", True),
    ("acc", False), ("r2", False), ("f1", False), ("test-accuracy", False),
    ("terrain_acc", False),  # "err" inside a word does not outvote the word "acc"
    ("epoch", False),
])
def test_which_way_is_better(key: str, lower: bool) -> None:
    assert lower_is_better(key) is lower


def test_direction_is_none_when_no_word_says() -> None:
    assert direction("epoch") is None
    assert direction("val_rmse") == "min"
    assert direction("auc") == "max"


def test_key_metric_prefers_what_most_runs_logged_then_held_out_then_telling_words() -> None:
    # The demo's metrics, all logged by every run: the validation metric leads.
    assert key_metric_order({"mae": 6, "r2": 6, "rmse": 6, "val_rmse": 6}) == [
        "val_rmse", "rmse", "mae", "r2"]
    # A metric more runs logged wins over a more telling one.
    assert key_metric_order({"accuracy": 10, "val_loss": 4})[0] == "accuracy"
    # Names that say nothing come after those that do, whatever the alphabet says.
    assert key_metric_order({"aaa_steps": 3, "loss": 3}) == ["loss", "aaa_steps"]
