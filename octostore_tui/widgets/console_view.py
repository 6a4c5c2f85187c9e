"""ConsoleView: the lines of a :class:`~octostore_tui.terminal.TerminalText`, scrollable.

A line-API widget (like Textual's ``Log``) whose lines are rich ``Text`` with the
log's own colours, and whose last lines may be redrawn in place (a progress
bar).  :meth:`feed` plays more output; the view scrolls along only when the
user is at the bottom already, so reading earlier lines is never yanked away.
:meth:`mark` highlights one line (a search match) and scrolls it into view.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..terminal import MAX_LINES, TerminalText


class ConsoleView(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    ConsoleView {
        background: $surface;
        color: $text;
        overflow: auto;
        &:focus { background-tint: $foreground 5%; }
    }
    """

    def __init__(
        self, *, max_lines: int = MAX_LINES, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.max_lines = max_lines
        self.term = TerminalText(max_lines)
        self.marked: int | None = None
        """Index (into the kept lines) of the highlighted line."""
        self._width = 0
        self._cache: LRUCache[int, Strip] = LRUCache(1024)

    # -- content --------------------------------------------------------------------------
    def reset(self, term: TerminalText | None = None) -> None:
        """Show ``term`` (or nothing) from the top."""
        self.term = term if term is not None else TerminalText(self.max_lines)
        self.term.take_changes()
        self.marked = None
        self._cache.clear()
        self._width = max((cell_len(t.plain) for t in self.term.lines), default=0)
        self.virtual_size = Size(self._width, self.term.line_count)
        self.scroll_to(0, 0, animate=False, immediate=True)
        self.refresh()

    def feed(self, data: str) -> None:
        """Play more output; follow it if the view was at the bottom."""
        if not data:
            return
        at_end = self.at_end
        dropped = self.term.dropped
        self.term.feed(data)
        self._sync(self.term.dropped - dropped)
        if at_end:
            self.to_end()

    def prepend(self, earlier: TerminalText) -> int:
        """Put earlier output in front, keeping the lines on screen where they are."""
        added = self.term.prepend(earlier)
        if self.marked is not None:
            self.marked += added
        self._cache.clear()
        self._sync(0)
        self.scroll_to(y=self.scroll_y + added, animate=False, immediate=True, force=True)
        return added

    def _sync(self, dropped: int) -> None:
        first = self.term.take_changes()
        if dropped:
            self._cache.clear()
            if self.marked is not None:
                self.marked = self.marked - dropped if self.marked >= dropped else None
        elif first is not None:
            for y in list(self._cache.keys()):
                if y >= first:
                    self._cache.discard(y)
        if first is not None:
            lines = self.term.lines
            for line in lines[first:]:
                self._width = max(self._width, cell_len(line.plain))
        self.virtual_size = Size(self._width, self.term.line_count)
        self.refresh()

    def to_end(self) -> None:
        # Forced: the scrollbars learn of the new size only at the next layout.
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    @property
    def at_end(self) -> bool:
        return self.scroll_y >= self.max_scroll_y - 1 or self.max_scroll_y <= 0

    @property
    def lines(self) -> list[str]:
        return self.term.plain

    def mark(self, row: int | None) -> None:
        """Highlight line ``row`` and scroll it to the middle of the view."""
        old, self.marked = self.marked, row
        for y in (old, row):
            if y is not None:
                self._cache.discard(y)
        if row is not None:
            self.scroll_to(
                y=max(0, row - self.size.height // 2), animate=False, immediate=True, force=True
            )
        self.refresh()

    # -- drawing --------------------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        row = scroll_y + y
        style = self.rich_style
        if row >= self.term.line_count:
            return Strip.blank(width, style)
        strip = self._cache.get(row)
        if strip is None:
            text = self.term.lines[row].copy()
            text.no_wrap = True
            text.end = ""
            if row == self.marked:
                text.stylize(Style(reverse=True))
            segments = [
                Segment(s.text, style + s.style if s.style else style, s.control)
                for s in text.render(self.app.console)
            ]
            strip = Strip(segments, cell_len(text.plain))
            self._cache[row] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, style).apply_offsets(scroll_x, row)

