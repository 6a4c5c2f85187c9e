"""RunPicker: a modal to pick runs of an experiment (to overlay on a run's charts).

Lists the experiment's most recent runs (at most ``LIMIT``, newest first) with
their status; dismisses with the chosen run ids, or ``None`` when cancelled.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, SelectionList, Static
from textual.widgets.selection_list import Selection

from .. import format as fmt
from ..daemon_link import LinkError

LIMIT = 500


class RunPicker(ModalScreen[list[str] | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "apply", "Apply"),
    ]

    def __init__(self, experiment: str | None, exclude: str, chosen: list[str]) -> None:
        super().__init__()
        self.experiment = experiment
        self.exclude = exclude
        self.chosen = list(chosen)

    def compose(self):
        with Vertical(id="picker", classes="modal-box"):
            yield Static(
                "[b]Overlay runs[/b]  space toggles · ctrl+s applies · esc cancels",
                classes="modal-title",
            )
            yield SelectionList[str](id="picker-list")
            with Horizontal(classes="modal-buttons"):
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#picker-list").focus()
        self.load()

    @work(exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        link = self.app.link  # type: ignore[attr-defined]
        params: dict[str, Any] = {"limit": LIMIT, "columns": []}
        if self.experiment:
            params["experiment_ids"] = [self.experiment]
        try:
            reply = await link.call("octostore/runs", **params)
        except LinkError as err:
            self.notify(fmt.shown(err.message), title=fmt.shown(err.title), severity="error",
                        markup=False)
            return
        pick = self.query_one("#picker-list", SelectionList)
        for r in reply.get("runs") or []:
            if r["run_id"] == self.exclude:
                continue
            label = (
                f"{fmt.shorten(fmt.run_label(r), 28):<28}  {fmt.when(r.get('start_time')):>14}"
                f"  {(r.get('status') or '').lower()}"
            )
            pick.add_option(Selection(label, r["run_id"], r["run_id"] in self.chosen))

    @on(Button.Pressed, "#apply")
    def action_apply(self) -> None:
        self.dismiss(list(self.query_one("#picker-list", SelectionList).selected))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
