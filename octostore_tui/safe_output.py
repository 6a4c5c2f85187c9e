"""The last guard between a store's strings and the terminal.

Each screen shows a stranger's strings escaped (``format.shown``/``marked``/``cell``), so a
person sees that a name holds ``\\x1b]0;…``.  A widget that forgets to is caught here: every
segment of text Textual writes passes through ``Strip.render``, and this wrapper drops any
control, C1 or bidi character from a segment's text before the segment is turned into
terminal output (dropping keeps the layout: those characters take no cell).  Textual's own
escapes (styles, cursor moves) are made from styles, never from segment text, so nothing it
writes is changed.
"""

from __future__ import annotations

import re

from rich.segment import Segment
from textual.strip import Strip

from octostored.inert import _BIDI_AND_INVISIBLE

_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_AND_INVISIBLE}]")
_original = Strip.render


def _safe_render(self: Strip, console):  # type: ignore[no-untyped-def]
    cached = getattr(self, "_render_cache", None)
    if cached is not None:
        return cached
    segments = list(self)
    if any(_UNSAFE.search(seg.text) for seg in segments):
        clean = Strip([Segment(_UNSAFE.sub("", t), s, c) for t, s, c in segments],
                      self.cell_length)
        self._render_cache = _original(clean, console)
        return self._render_cache
    return _original(self, console)


def install() -> None:
    """Wrap ``Strip.render`` once (the app calls this when it is created)."""
    if getattr(Strip.render, "_octostore_safe", False):
        return
    _safe_render._octostore_safe = True  # type: ignore[attr-defined]
    Strip.render = _safe_render  # type: ignore[method-assign]
