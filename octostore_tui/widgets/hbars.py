"""HBars: labelled horizontal bars in plain text (run status counts, parameter influence).

Cheaper and crisper than a chart for a handful of categories: one line per
item, ``label ███████ value  note``, coloured from the theme.  Items are
``(label, value, text, style)``; the bar length is relative to the largest value.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from .. import format as fmt

Item = tuple[str, float, str, str]
"""(label, value, shown text, style name of the bar)."""


class HBars(Widget):
    DEFAULT_CSS = """
    HBars {
        height: auto;
        width: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.items: list[Item] = []
        self.empty_text = "nothing to show"

    def set_items(self, items: list[Item], empty_text: str | None = None) -> None:
        self.items = list(items)
        if empty_text is not None:
            self.empty_text = empty_text
        self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[override]
        return max(1, len(self.items))

    def render(self) -> RenderResult:
        if not self.items:
            return Text(self.empty_text, style="dim")
        width = self.size.width or 40
        text_w = min(max(cell_len(i[2]) for i in self.items), max(6, width // 2))
        label_w = min(max(cell_len(i[0]) for i in self.items), max(6, width - text_w - 8))
        bar_w = max(4, width - label_w - text_w - 2)
        top = max((abs(i[1]) for i in self.items), default=0) or 1
        out = Text(no_wrap=True, overflow="ellipsis")
        for n, (label, value, shown, style) in enumerate(self.items):
            if n:
                out.append("\n")
            out.append(fmt.shorten(label, label_w).ljust(label_w) + " ", style="bold")
            cells = abs(value) / top * bar_w
            full = int(cells)
            bar = "█" * full + (_PARTS[int((cells - full) * 8)] if full < bar_w else "")
            out.append(bar.ljust(bar_w), style=self._resolve(style))
            out.append(" " + fmt.shorten(shown, text_w), style="")
        return out

    def _resolve(self, style: str) -> str:
        variables = self.app.theme_variables
        if style.startswith("$"):
            return variables.get(style[1:], "") or ""
        return style


_PARTS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")
