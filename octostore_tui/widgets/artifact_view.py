"""ArtifactView: a text artifact or log, with a title line; appends as a log grows.

The screen reads the file through ``octostore/artifact`` and calls
:meth:`show` with the first chunk, then :meth:`append` with each new tail
while the run is running (the viewer *follows* the log: it stays scrolled to
the end unless the user scrolled up).  Binary files get one line saying so.
"""

from __future__ import annotations

from textual.containers import Vertical
from textual.widgets import Log, Static

from .. import format as fmt


class ArtifactView(Vertical):
    DEFAULT_CSS = """
    ArtifactView { width: 2fr; height: 1fr; }
    ArtifactView #artifact-title { height: 1; padding: 0 1; background: $panel; }
    ArtifactView Log { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.path: str | None = None
        self.read_offset = 0
        self.file_size = 0
        self.following = False

    def compose(self):
        yield Static("choose a file on the left", id="artifact-title")
        yield Log(id="artifact-log", highlight=False, auto_scroll=True)

    def show(
        self, path: str, text: str, size: int, next_offset: int, binary: bool, truncated: bool
    ) -> None:
        self.path = path
        self.read_offset = next_offset
        self.file_size = size
        log = self.query_one(Log)
        log.clear()
        if binary:
            log.write_line(f"binary file ({fmt.human_bytes(size)}); not shown")
            self.read_offset = size
        else:
            log.write(text)
        self._title(truncated)

    def append(self, text: str, size: int, next_offset: int) -> None:
        self.file_size = size
        self.read_offset = next_offset
        if text:
            self.query_one(Log).write(text)
        self._title(next_offset < size)

    def set_following(self, following: bool) -> None:
        self.following = following
        self._title(self.read_offset < self.file_size)

    def _title(self, truncated: bool) -> None:
        if self.path is None:
            return
        note = f"  [dim]{fmt.human_bytes(self.file_size)}[/dim]"
        if truncated:
            note += f"  [$warning]first {fmt.human_bytes(self.read_offset)} shown[/]"
        if self.following:
            note += "  [$accent]● following[/]"
        self.query_one("#artifact-title", Static).update(f"[b]{self.path}[/b]{note}")

    @property
    def text(self) -> str:
        return "\n".join(str(line) for line in self.query_one(Log).lines)
