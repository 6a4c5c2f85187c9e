"""HelpScreen: what the current screen does and every key it answers to (``?``)."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

HIDDEN = {"tab", "shift+tab", "ctrl+c", "super+c", "ctrl+q"}
"""Keys every screen has that would only crowd the list."""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss_help", "Close"),
    ]

    def __init__(self, screen: Screen[object]) -> None:
        super().__init__()
        self.target = screen
        # Taken now, while ``screen`` is active: its focused widget's keys count too.
        self.key_rows = [
            (self.app.get_key_display(b.binding), b.binding.description)
            for b in screen.active_bindings.values()
            if b.binding.description and b.binding.key not in HIDDEN
        ]

    def compose(self):
        with Vertical(id="help", classes="modal-box"):
            yield Static(
                f"[b]{_title(self.target)}[/b]  [dim](esc closes)[/dim]", classes="modal-title"
            )
            with VerticalScroll(id="help-body"):
                yield Static(getattr(self.target, "HELP", ""), id="help-text")
                yield Static(self._keys(), id="help-keys")

    def _keys(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        seen: set[tuple[str, str]] = set()
        for key, description in self.key_rows:
            if (key, description) not in seen:
                seen.add((key, description))
                table.add_row(key, description)
        table.add_row("ctrl+p", "command palette: every action by name")
        table.add_row("ctrl+t", "dark/light theme")
        table.add_row(
            "mouse", "click tabs, headers (sort), rows; double-click opens; wheel scrolls"
        )
        return table

    def action_dismiss_help(self) -> None:
        self.dismiss(None)


def _title(screen: Screen[object]) -> str:
    names = {
        "insights": "Insights",
        "experiments": "Experiments",
        "run-detail": "Run detail",
        "compare": "Compare",
    }
    return f"Help: {names.get(screen.name or '', 'octostore')}"
