"""What a metric's name says: which way is better, and which metric matters most.

One rule for every place that has to guess (Insights, inline metrics in the editor, the
commit message, the TUI): the name's words first (``val_loss``, ``test-accuracy``,
``eval/f1``), earlier words in the lists below being more telling; then, for names that
run words together (``trainloss``), a substring rule; anything else is higher-is-better.
Standard library only: the capture plugin and the TUI import it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

LOWER_BETTER = ("loss", "rmse", "mse", "mae", "mape", "error", "err", "perplexity", "wer",
                "cer", "logloss", "nll", "distance", "cost", "latency", "time")
HIGHER_BETTER = ("accuracy", "acc", "f1", "auc", "roc", "r2", "precision", "recall", "score",
                 "map", "ndcg", "bleu", "rouge", "iou", "dice", "kappa")

_LOWER_SUBSTRING = re.compile(
    r"(loss|err|rmse|mse|mae|mape|perplexity|cost|time|latency|wer|cer)", re.IGNORECASE)
"""For names without word breaks; the editor's fallback uses the same expression."""

HELD_OUT = ("val", "valid", "validation", "test", "eval", "holdout")


def _words(key: str) -> list[str]:
    low = key.lower()
    for sep in "-/.: ":
        low = low.replace(sep, "_")
    return [w for w in low.split("_") if w]


def _priority(key: str) -> tuple[str, int] | None:
    """("min" or "max", rank of the most telling word), or None when no word says."""
    words = _words(key)
    hits = [("min", LOWER_BETTER.index(w)) for w in words if w in LOWER_BETTER]
    hits += [("max", len(LOWER_BETTER) + HIGHER_BETTER.index(w)) for w in words
             if w in HIGHER_BETTER]
    return min(hits, key=lambda h: h[1]) if hits else None


def direction(key: str) -> str | None:
    """"min" or "max" when the name's words say, else None."""
    p = _priority(key)
    return p[0] if p else None


def lower_is_better(key: str) -> bool:
    d = direction(key)
    if d is not None:
        return d == "min"
    return bool(_LOWER_SUBSTRING.search(key))


def key_metric_order(counts: Mapping[str, int]) -> list[str]:
    """Metrics from most to least telling: logged by more runs first; then names that say
    which way is better; then held-out ones (``val_rmse`` before ``rmse``: that is the number
    a researcher tunes against); then the more telling word; then by name."""

    def rank(k: str) -> tuple[int, int, int, int, str]:
        p = _priority(k)
        held_out = 0 if any(w in HELD_OUT for w in _words(k)) else 1
        return (-counts[k], 0 if p else 1, held_out, p[1] if p else 0, k)

    return sorted(counts, key=rank)


def count_keys(metric_maps: Iterable[Mapping[str, object]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for metrics in metric_maps:
        for k in metrics:
            counts[k] = counts.get(k, 0) + 1
    return counts
