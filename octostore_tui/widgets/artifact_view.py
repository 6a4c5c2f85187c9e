"""ArtifactView: a run's console log or a text artifact, read through the daemon, followed live.

What it shows is a :class:`Source`: a console log (``octostore/log``, of this run or
of a related one: the original of a reproduction) or an artifact file
(``octostore/artifact``).  Both are played like a terminal
(:class:`~octostore_tui.widgets.console_view.ConsoleView`): progress bars collapse
to their last state, colours show.

A console log opens at its tail (the last ``TAIL_BYTES``); ``[`` loads the
part before (or, when the view holds its most lines already, shows that part
instead; ``]`` comes back to the end).  While the log is live the screen calls
:meth:`poll` every half second and the view appends what was written since; it
scrolls along only when the user is at the bottom.  An artifact opens at its
start (the first ``TAIL_BYTES``) and is followed while its run runs.

``/`` searches: a console log with the daemon's ``grep`` (the whole log, not just
what is loaded), an artifact in the loaded lines; the matches are listed under
the log, ``enter`` on one (or ``n``/``N``) jumps to it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.containers import Vertical
from textual.markup import escape
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from .. import format as fmt
from ..daemon_link import LinkError
from ..terminal import TerminalText, plain_line
from .console_view import ConsoleView

if TYPE_CHECKING:
    from ..daemon_link import DaemonLink

TAIL_BYTES = 256 * 1024
MAX_MATCHES = 500
NO_LOG_HINT = (
    "No console log for this run: run it with `octostore run -- python train.py` "
    "to keep its console."
)


@dataclass(frozen=True)
class Source:
    """What the view reads: ``kind`` "log" (``name`` is the log's name) or "artifact"
    (``name`` is the artifact path), of run ``run_id``; ``label`` titles it."""

    kind: str
    run_id: str
    name: str
    label: str
    path: str = ""


class ArtifactView(Vertical):
    DEFAULT_CSS = """
    ArtifactView { width: 2fr; height: 1fr; }
    ArtifactView #artifact-title { height: 1; padding: 0 1; background: $panel; }
    ArtifactView #log-search { display: none; height: 3; }
    ArtifactView #log-search.-shown { display: block; }
    ArtifactView #log-search.-invalid { border: tall $error; }
    ArtifactView ConsoleView { height: 1fr; }
    ArtifactView #log-matches {
        display: none; height: auto; max-height: 10; border: none;
        border-top: hkey $panel-lighten-2;
    }
    ArtifactView #log-matches.-shown { display: block; }
    ArtifactView #log-note { height: auto; max-height: 2; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.source: Source | None = None
        self.path: str | None = None
        """The artifact path, or the console log's root-relative path."""
        self.read_offset = 0
        """Byte offset to read next (the end of what is shown)."""
        self.file_size = 0
        self.live = False
        """The source still grows (a live log, an artifact of a running run)."""
        self.following = False
        """Polling appends (live, and the view holds the end of the source)."""
        self.binary = False
        self.window = False
        """True while an earlier part is shown alone (``[`` past the line cap)."""
        self.matches: list[tuple[int, str]] = []
        self.match_index = -1
        self.pattern = ""
        self.hint = ""
        """A standing note (the no-console-log hint)."""
        self.message = ""
        """What the last search found (or why it failed)."""

    def compose(self):
        yield Static("choose a file on the left", id="artifact-title")
        yield Input(placeholder="search the log (Python regex), enter finds", id="log-search")
        yield ConsoleView(id="artifact-log")
        yield OptionList(id="log-matches")
        yield Static("", id="log-note")

    @property
    def console(self) -> ConsoleView:
        return self.query_one(ConsoleView)

    @property
    def link(self) -> DaemonLink:
        return self.app.link  # type: ignore[attr-defined]

    @property
    def text(self) -> str:
        return "\n".join(self.console.lines)

    @property
    def start(self) -> int:
        """Byte offset (in the log or file) where the first line shown begins."""
        return self.console.term.starts[0]

    @property
    def is_log(self) -> bool:
        return self.source is not None and self.source.kind == "log"

    def report(self, err: LinkError) -> None:
        self.notify(fmt.shown(err.message), title=fmt.shown(err.title), severity="error",
                    timeout=8, markup=False)

    # -- opening and reading ----------------------------------------------------------------
    def open(self, source: Source, live: bool = False) -> None:
        """Show ``source`` (``live``: an artifact of a running run, to follow)."""
        self.source = source
        self.path = source.path or source.name
        self.live = live
        self.following = False
        self.window = False
        self._clear_search()
        self._read_first()
        self.screen.refresh_bindings()  # the log keys depend on what is shown

    def show_empty(self, message: str) -> None:
        self.source = None
        self.path = None
        self.following = False
        self.console.reset()
        self.query_one("#artifact-title", Static).update(f"[dim]{escape(message)}[/dim]")
        self._note()

    def set_hint(self, hint: str) -> None:
        self.hint = hint
        self._note()

    async def _read(self, offset: int = 0, tail: int | None = None, max_bytes: int = TAIL_BYTES
                    ) -> dict[str, Any] | None:
        source = self.source
        if source is None:
            return None
        if source.kind == "log":
            params: dict[str, Any] = {"offset": offset, "max_bytes": max_bytes}
            if tail is not None:
                params["tail"] = tail
            reply = await self.link.call(
                "octostore/log", run_id=source.run_id, name=source.name, **params
            )
            reply["text"] = reply.get("data", "")
            return reply
        return await self.link.call(
            "octostore/artifact",
            run_id=source.run_id,
            path=source.name,
            offset=offset,
            max_bytes=max_bytes,
        )

    @work(exclusive=True, group="view-read", exit_on_error=False)
    async def _read_first(self) -> None:
        source = self.source
        try:
            reply = await self._read(0, TAIL_BYTES if self.is_log else None)
        except LinkError as err:
            if self.source == source:
                self.show_empty(f"{err.title}: {err.message}")
            return
        if reply is None or self.source != source:
            return
        binary = bool(reply.get("binary"))
        term = TerminalText(self.console.max_lines, base=reply.get("offset", 0))
        if binary:
            term.feed(f"binary file ({fmt.human_bytes(reply.get('size'))}); not shown\n")
        else:
            # A fresh buffer nobody draws yet: played in a thread, the screen stays responsive.
            await asyncio.to_thread(term.feed, reply.get("text", ""))
            if self.source != source:
                return
        self.binary = binary
        self.file_size = reply.get("size", 0)
        self.read_offset = self.file_size if binary else reply.get("next_offset", 0)
        if self.is_log:
            self.live = bool(reply.get("live"))
        self.console.reset(term)
        if self.is_log:
            self.console.to_end()
        self.following = self.live and not self.binary
        self._title()
        self.screen.refresh_bindings()

    def poll(self) -> None:
        """Read what was written since the last read (the screen calls this while live)."""
        if self.source is None or not self.following or self.window:
            return
        self._poll()

    @work(exclusive=True, group="view-poll", exit_on_error=False)
    async def _poll(self) -> None:
        source, offset = self.source, self.read_offset
        try:
            reply = await self._read(offset)
        except LinkError:
            return  # mid-rewrite, or the daemon restarting: the next tick tries again
        if reply is None or self.source != source or self.read_offset != offset:
            return
        size = reply.get("size", 0)
        if size < offset:  # rewritten shorter: start over
            self._read_first()
            return
        if reply.get("binary"):
            return
        self.file_size = size
        self.read_offset = reply.get("next_offset", offset)
        self.console.feed(reply.get("text", ""))
        if self.is_log and not reply.get("live"):
            self.live = self.following = self.read_offset < size
        self._title()

    def set_live(self, live: bool) -> None:
        """The run stopped (or started) running: an artifact's following follows it."""
        if self.source is not None and not self.is_log:
            self.live = live
            self.following = live and not self.binary
            self._title()

    # -- earlier part and back to the end -------------------------------------------------------
    def earlier(self) -> None:
        if not self.is_log:
            return
        if self.start <= 0:
            self.notify("This is the start of the log.", title="Console log", timeout=3)
            return
        self._earlier()

    @work(exclusive=True, group="view-read", exit_on_error=False)
    async def _earlier(self) -> None:
        source, end = self.source, self.start
        begin = max(0, end - TAIL_BYTES)
        try:
            reply = await self._read(begin, max_bytes=end - begin)
        except LinkError as err:
            self.report(err)
            return
        if reply is None or self.source != source:
            return
        term = TerminalText(self.console.max_lines, base=reply.get("offset", begin))
        await asyncio.to_thread(term.feed, reply.get("text", ""))
        if self.source != source:
            return
        console = self.console
        room = console.term.line_count + term.line_count <= console.max_lines
        if room and self.start == end:
            console.prepend(term)
        else:  # the view is full (or a live log moved on meanwhile): show that part alone
            self.window = True
            self.following = False
            self.read_offset = reply.get("next_offset", end)
            console.reset(term)
            console.to_end()
        self._title()
        self.screen.refresh_bindings()

    def to_end(self) -> None:
        if self.source is None:
            return
        if self.window:
            self.window = False
            self._read_first()
        else:
            self.console.to_end()

    # -- search ----------------------------------------------------------------------------------
    def start_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.add_class("-shown")
        box.focus()

    def _clear_search(self) -> None:
        self.matches, self.match_index, self.pattern, self.message = [], -1, "", ""
        self.query_one("#log-search", Input).remove_class("-shown", "-invalid")
        self.query_one("#log-matches", OptionList).remove_class("-shown")
        self.console.mark(None)
        self._note()

    @property
    def search_shown(self) -> bool:
        return self.query_one("#log-search", Input).has_class("-shown")

    def close_search(self) -> None:
        self._clear_search()
        self.console.focus()

    @on(Input.Submitted, "#log-search")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.search(event.value)

    @work(exclusive=True, group="view-search", exit_on_error=False)
    async def search(self, pattern: str) -> None:
        source = self.source
        if source is None:
            return
        box = self.query_one("#log-search", Input)
        truncated = False
        if source.kind == "log":
            try:
                reply = await self.link.call(
                    "octostore/log",
                    run_id=source.run_id,
                    name=source.name,
                    grep=pattern,
                    max_lines=MAX_MATCHES,
                )
            except LinkError as err:
                box.add_class("-invalid")
                self._note(f"[$error]{fmt.marked(err.title)}:[/] {fmt.marked(err.message)}")
                return
            matches = [(int(m[0]), str(m[1])) for m in reply.get("matches") or []]
            truncated = bool(reply.get("truncated"))
        else:
            import re

            try:
                rx = re.compile(pattern)
            except re.error as exc:
                box.add_class("-invalid")
                self._note(
                    f"[$error]Bad pattern:[/] {escape(str(exc))}; fix the regular expression."
                )
                return
            matches = [
                (i + 1, line) for i, line in enumerate(self.console.lines) if rx.search(line)
            ][:MAX_MATCHES]
        if self.source != source:
            return
        box.remove_class("-invalid")
        self.pattern = pattern
        self.matches = matches
        listing = self.query_one("#log-matches", OptionList)
        listing.clear_options()
        width = len(str(matches[-1][0])) if matches else 1
        listing.add_options(
            [
                # Text, not markup: a log line is shown as it is, brackets and all.
                Option(Text.assemble((f"{n:>{width}}  ", "dim"), fmt.shorten(plain_line(t), 300)),
                       id=str(i))
                for i, (n, t) in enumerate(matches)
            ]
        )
        listing.set_class(bool(matches), "-shown")
        n = len(matches)
        more = "+ (narrow the pattern)" if truncated else ""
        self._note(
            f"{n}{more} {'lines match' if n != 1 else 'line matches'} [b]{escape(pattern)}[/b]"
            "  [dim]enter jumps · n/N next/previous · esc closes[/dim]"
            if matches
            else f"no line matches [b]{escape(pattern)}[/b]"
        )
        if matches:
            listing.highlighted = 0
            listing.focus()
            self.jump(0)

    @on(OptionList.OptionSelected, "#log-matches")
    def _match_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.jump(int(event.option.id or 0))

    def next_match(self, step: int) -> None:
        if self.matches:
            self.jump((self.match_index + step) % len(self.matches))

    def jump(self, index: int) -> None:
        """Scroll to match ``index`` and highlight it."""
        self.match_index = index
        line_no, text = self.matches[index]
        row = self.locate(line_no, text, index)
        listing = self.query_one("#log-matches", OptionList)
        if listing.highlighted != index:
            listing.highlighted = index
        if row is None:
            self.console.mark(None)
            self._note(
                f"line {line_no} is before the part shown; [b]\\[[/b] loads earlier output"
            )
            return
        self.console.mark(row)

    def locate(self, line_no: int, text: str, index: int) -> int | None:
        """The view's row for log line ``line_no`` (1-based) whose raw text is ``text``."""
        term = self.console.term
        if not self.is_log or self.start == 0:
            # An artifact is read from its start; a log shown from its first byte.
            row = line_no - 1 - (term.dropped if not self.is_log else 0)
            return row if 0 <= row < term.line_count else None
        # The view starts mid-log, at an unknown line number: find the line by its text,
        # the k-th from the end among the matches with that text.
        want = plain_line(text)
        later = sum(1 for n, t in self.matches[index + 1 :] if plain_line(t) == want)
        seen = 0
        for row in range(term.line_count - 1, -1, -1):
            if term.lines[row].plain == want:
                if seen == later:
                    return row
                seen += 1
        return None

    # -- title and note ------------------------------------------------------------------------
    def _title(self) -> None:
        source = self.source
        if source is None:
            return
        note = f"  [dim]{fmt.human_bytes(self.file_size)}[/dim]"
        if self.is_log:
            shown = self.read_offset - self.start
            if self.window:
                part = fmt.human_bytes(shown)
                note += f"  [$warning]an earlier part ({part}) · ] back to the end[/]"
            elif self.start > 0:
                note += f"  [dim]last {fmt.human_bytes(shown)} · [b]\\[[/b] loads earlier[/dim]"
        elif self.read_offset < self.file_size and not self.following:
            note += f"  [$warning]first {fmt.human_bytes(self.read_offset)} shown[/]"
        if self.following and not self.console.at_end:
            note += "  [$accent]● live[/] [dim](scrolled up: ] follows again)[/dim]"
        elif self.following:
            note += "  [$accent]● live, following[/]"
        self.query_one("#artifact-title", Static).update(f"[b]{escape(source.label)}[/b]{note}")
        self._note()

    def _note(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        parts = []
        if self.message:
            parts.append(self.message)
        dropped = self.console.term.dropped
        if dropped:
            parts.append(
                f"[$warning]showing the last {self.console.max_lines:,} lines "
                f"({dropped:,} earlier ones let go); / searches the whole log[/]"
            )
        if self.hint:
            parts.append(f"[dim]{escape(self.hint)}[/dim]")
        note = self.query_one("#log-note", Static)
        note.update("\n".join(parts[:2]))
        note.display = bool(parts)
