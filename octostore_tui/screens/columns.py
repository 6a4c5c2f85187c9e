"""ColumnChooser: a modal to pick which params, metrics and tags the runs grid shows.

Dismisses with the chosen column ids (``params.X``, ``metrics.X``, ``tags.X``)
in a stable order (params, then metrics, then tags; each alphabetical), or
``None`` when cancelled.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, SelectionList, Static
from textual.widgets.selection_list import Selection

from .. import format as fmt


class ColumnChooser(ModalScreen[list[str] | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "apply", "Apply"),
        Binding("ctrl+a", "all", "All"),
        Binding("ctrl+n", "none", "None"),
    ]

    def __init__(self, keys: dict[str, list[str]], chosen: list[str]) -> None:
        super().__init__()
        self.keys = keys
        self.chosen = set(chosen)
        self._all: list[Selection[str]] = []
        for kind, label in (("params", "param"), ("metrics", "metric"), ("tags", "tag")):
            for k in keys.get(kind, []):
                cid = f"{kind}.{k}"
                self._all.append(Selection(Text(f"{label:<6} {fmt.shown(k)}"), cid, cid in self.chosen))

    def compose(self):
        with Vertical(id="chooser", classes="modal-box"):
            yield Static(
                "[b]Columns[/b]  space toggles · ctrl+s applies · esc cancels",
                classes="modal-title",
            )
            yield Input(placeholder="type to narrow the list", id="chooser-filter",
                        select_on_focus=False)
            yield SelectionList[str](*self._all, id="chooser-list")
            with Horizontal(classes="modal-buttons"):
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#chooser-list").focus()

    def on_key(self, event: events.Key) -> None:
        """Typing narrows the list wherever the focus is (the prompt says so): a printable
        key on the list goes to the filter box; space still toggles, arrows still move."""
        inp = self.query_one("#chooser-filter", Input)
        ch = event.character
        if (self.focused is not inp and ch and ch.isprintable() and ch != " "
                and not event.key.startswith("ctrl+")):
            inp.focus()
            inp.insert_text_at_cursor(ch)
            event.stop()
            event.prevent_default()

    @on(Input.Changed, "#chooser-filter")
    def _narrow(self, event: Input.Changed) -> None:
        sel = self.query_one("#chooser-list", SelectionList)
        self.chosen = set(sel.selected) | (self.chosen - {s.value for s in self._visible(sel)})
        text = event.value.lower().strip()
        sel.clear_options()
        for s in self._all:
            if text in str(s.prompt).lower():
                sel.add_option(Selection(s.prompt, s.value, s.value in self.chosen))

    @staticmethod
    def _visible(sel: SelectionList[str]) -> list[Selection[str]]:
        return [sel.get_option_at_index(i) for i in range(sel.option_count)]  # type: ignore[misc]

    @on(SelectionList.SelectedChanged, "#chooser-list")
    def _changed(self, event: SelectionList.SelectedChanged) -> None:
        sel = event.selection_list
        visible = {s.value for s in self._visible(sel)}
        self.chosen = (self.chosen - visible) | set(sel.selected)

    @on(Input.Submitted, "#chooser-filter")
    def _submit_filter(self) -> None:
        self.query_one("#chooser-list").focus()

    @on(Button.Pressed, "#apply")
    def action_apply(self) -> None:
        order = [s.value for s in self._all]
        self.dismiss([c for c in order if c in self.chosen])

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_all(self) -> None:
        self.query_one("#chooser-list", SelectionList).select_all()

    def action_none(self) -> None:
        self.query_one("#chooser-list", SelectionList).deselect_all()
