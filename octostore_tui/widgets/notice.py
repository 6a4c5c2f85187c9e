"""Notice: a centred title and one sentence, for empty and error states.

Every "nothing here" and "cannot do that" in the app reads the same way: what
happened (title) and what to do (the sentence), never a traceback.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget


class Notice(Widget):
    DEFAULT_CSS = """
    Notice {
        height: auto;
        width: 1fr;
        padding: 1 2;
        content-align: center middle;
        text-align: center;
    }
    Notice.-error { color: $error; }
    """

    def __init__(
        self,
        title: str = "",
        message: str = "",
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.message = message

    def show(self, title: str, message: str, error: bool = False) -> None:
        self.title = title
        self.message = message
        self.set_class(error, "-error")
        self.display = True
        self.refresh(layout=True)

    def render(self) -> RenderResult:
        out = Text(justify="center")
        out.append(self.title, style="bold")
        if self.message:
            out.append("\n")
            out.append(self.message)
        return out
