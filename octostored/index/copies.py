"""Copying a dict of the index from a worker thread while the event loop writes it."""

from __future__ import annotations

from typing import Any


def snapshot(d: dict[Any, Any], items: bool = False) -> list[Any]:
    """``list(d.values())`` (or ``items()``) taken whole even while the loop writes ``d``: the
    copy is one C call, but a garbage collection inside it can let the other thread run, so a
    torn copy ('changed size during iteration') is simply taken again."""
    while True:
        try:
            return list(d.items()) if items else list(d.values())
        except RuntimeError:
            continue
