"""The one exception the query package raises for bad user input."""

from __future__ import annotations


class FilterError(ValueError):
    """A filter or order_by string MLflow would reject.

    The message is one sentence for a person: where the problem is, what is
    wrong and how to write it instead, e.g. ``bad filter at 'metrics.rmse <':
    expected a number after '<'; example: metrics.rmse < 0.7``.
    """


class FilterTooLarge(FilterError):
    """A filter or order_by over its size cap (:data:`octostored.query.MAX_FILTER`, clauses)."""
