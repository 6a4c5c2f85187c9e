"""TerminalText: console output turned into the lines a terminal would show.

A console log holds what a program wrote to its terminal, byte for byte: ANSI
colours, ``\\r`` progress updates (tqdm rewrites its bar hundreds of times on one
line), erase-line and cursor-up codes.  Shown as plain text that is thousands
of lines of half-drawn bars; :class:`TerminalText` plays the bytes like a
terminal instead: ``\\r`` returns to the line's start and the next text
overwrites it, ``ESC[K`` erases to the end of the line, ``ESC[nA``/``ESC[nB``
move between lines (multi-bar tqdm), SGR codes become rich styles (parsed by
:class:`rich.ansi.AnsiDecoder`; the style carries across lines and chunks, as on
a terminal), other control codes are dropped.  Feeding is incremental: chunks may split an escape
sequence anywhere, and :attr:`changed_from` tells a view which lines to redraw.

Only the last ``max_lines`` lines are kept (a log of millions of lines stays
responsive), never the cursor's line; :attr:`dropped` counts the ones let go from the top.

A column is a character (a code point), not a terminal cell: a wide character takes one
column and a combining mark one more, so text written over part of such a line lands where
a terminal would not put it. Screen clears (``ESC[J``) are ignored: a log keeps its history.
The shared cases of this renderer and the extension's ``core/terminal.ts`` are in
``tests/terminal_cases.json``.
"""

from __future__ import annotations

import re

from rich.ansi import AnsiDecoder
from rich.style import Style
from rich.text import Span, Text

MAX_LINES = 10_000

_TOKEN = re.compile(
    r"(?P<cr>\r)|(?P<nl>\n)|(?P<bs>\x08)|(?P<tab>\t)|(?P<vt>[\x0b\x0c])"
    r"|(?P<csi>\x1b\[(?P<args>[0-9;?:<=>]*)[ -/]*(?P<final>[@-~]))"
    r"|(?P<osc>\x1b\][^\x07\x1b]*(?:\x07|\x1b\\))"
    r"|(?P<esc>\x1b[ -/]*[0-~])"
    r"|(?P<ctl>[\x00-\x07\x0e-\x1f\x7f])"
)
"""Everything that is not text: what is between two matches is plain characters."""
_INCOMPLETE = re.compile(r"\x1b(?:\[[0-9;?:<=>]*[ -/]*|\][^\x07\x1b]*\x1b?|[ -/]*)?$")
"""An escape sequence cut off at the end of a chunk (kept for the next one); an OSC may be
cut between the ESC and the backslash of its ST."""
_HOLD = 4096
"""How far back a cut escape is looked for: an OSC 8 link's URL may be long; a stray ``ESC ]``
that never ends is shown as text once this much followed it."""


def _sgr_args(args: str) -> str:
    """SGR parameters in the semicolon form rich reads: "38:5:208" -> "38;5;208",
    "38:2::r:g:b" (with a colour space id, maybe empty) -> "38;2;r;g;b", "4:3" -> "4"."""
    out = []
    for group in args.split(";"):
        parts = group.split(":")
        if len(parts) > 1 and parts[0] in ("38", "48"):
            if parts[1] == "2" and len(parts) >= 6:
                parts = parts[:2] + parts[-3:]
            out.append(";".join(p or "0" for p in parts))
        else:
            out.append(parts[0])
    return ";".join(out)


def _count(args: str) -> int:
    first = args.split(";", 1)[0]
    return int(first) if first.isdigit() and int(first) > 0 else 1


class TerminalText:
    """The screen lines of a stream of terminal output, fed chunk by chunk."""

    def __init__(self, max_lines: int = MAX_LINES, base: int = 0) -> None:
        self.max_lines = max(1, max_lines)
        self.lines: list[Text] = [Text()]
        """Every kept line; the last one may still be being written."""
        self.starts: list[int] = [base]
        """The byte offset in the stream where each kept line began (``base``: where the
        stream fed here begins), so that a view can ask for the bytes before its first line."""
        self.fed = base
        """The byte offset of the end of what was played."""
        self._here = base
        self.row = 0
        self.col = 0
        self.dropped = 0
        """Lines let go from the top to stay within ``max_lines``."""
        self.changed_from: int | None = 0
        """The first line (index into ``lines``) changed since :meth:`take_changes`."""
        self._decoder = AnsiDecoder()
        self._style: Style | None = None
        """The current SGR style (None: plain)."""
        self._sgr: dict[tuple[Style | None, str], Style | None] = {}
        """(style, SGR parameters) -> the style after: logs repeat a handful of colours."""
        self._pending = ""

    # -- reading --------------------------------------------------------------------------
    @property
    def line_count(self) -> int:
        """Lines to show: a last line that is still empty (the cursor waits there) is not one."""
        return len(self.lines) - (not self.lines[-1].plain)

    @property
    def plain(self) -> list[str]:
        return [line.plain for line in self.lines[: self.line_count]]

    def take_changes(self) -> int | None:
        """The first changed line since the last call (None: nothing changed)."""
        first, self.changed_from = self.changed_from, None
        return first

    # -- writing --------------------------------------------------------------------------
    def feed(self, data: str) -> None:
        """Play ``data`` (the next chunk of the stream)."""
        if self._pending:
            data, self._pending = self._pending + data, ""
        cut = _INCOMPLETE.search(data, max(0, len(data) - _HOLD))
        if cut is not None:
            data, self._pending = data[: cut.start()], data[cut.start() :]
        ascii_only = data.isascii()
        base = anchor_b = self.fed
        anchor_c = 0

        def at(i: int) -> int:
            nonlocal anchor_b, anchor_c
            if ascii_only:
                return base + i
            anchor_b += len(data[anchor_c:i].encode("utf-8", "replace"))
            anchor_c = i
            return anchor_b

        pos = 0
        for m in _TOKEN.finditer(data):
            if m.start() > pos:
                self._write(self._text(data[pos : m.start()]))
            pos = m.end()
            kind = m.lastgroup
            if kind == "cr":
                self.col = 0
            elif kind == "nl":
                self._here = at(m.end())
                self._down(1)
                self.col = 0
            elif kind == "bs":
                self.col = max(0, self.col - 1)
            elif kind == "tab":
                self.col += 8 - self.col % 8  # a move: what it passes over stays
            elif kind == "vt":  # VT and FF: down a line, same column (xterm)
                self._here = at(m.end())
                self._down(1)
            elif kind == "csi":
                self._here = at(m.end())
                self._csi(m.group("args"), m.group("final"))
            elif kind == "osc":
                self._decoder.style = self._style or Style.null()
                self._decoder.decode_line(m.group())  # hyperlinks (OSC 8) set the style
                self._style = self._decoder.style or None
        if pos < len(data):
            self._write(self._text(data[pos:]))
        self.fed = at(len(data))
        self._trim()

    def _text(self, piece: str) -> Text:
        # A span, not the Text's base style: a line replaced by this piece must not lend its
        # colour to what is appended to the line later.
        style = self._style
        return Text(piece, spans=[Span(0, len(piece), style)]) if style else Text(piece)

    def _csi(self, args: str, final: str) -> None:
        if final == "m":
            if any(c in args for c in "<=>?"):
                return  # not SGR: a private mode (xterm's modifyOtherKeys is CSI > 4 ; 2 m)
            key = (self._style, args)
            if key not in self._sgr:
                self._decoder.style = self._style or Style.null()
                self._decoder.decode_line(f"\x1b[{_sgr_args(args)}m")
                self._sgr[key] = self._decoder.style or None
            self._style = self._sgr[key]
        elif final == "K":
            line = self.lines[self.row]
            mode = args or "0"
            if mode == "0":
                if self.col < len(line):
                    self._set(line[: self.col])
            elif mode == "1":
                k = min(self.col + 1, len(line))  # the cursor's column too
                self._set(Text(" " * k) + line[k:])
            elif mode == "2":
                self._set(Text())
        elif final == "A":
            self.row = max(0, self.row - _count(args))
        elif final in "BE":
            self._down(_count(args))
            if final == "E":
                self.col = 0
        elif final == "F":
            self.row = max(0, self.row - _count(args))
            self.col = 0
        elif final == "G":
            self.col = _count(args) - 1
        elif final == "C":
            self.col += _count(args)
        elif final == "D":
            self.col = max(0, self.col - _count(args))
        # Anything else (screen clears, cursor save, modes) means nothing in a log.

    def _down(self, n: int) -> None:
        self.row += n
        while self.row >= len(self.lines):
            self.lines.append(Text())
            self.starts.append(self._here)
        self._mark(self.row)

    def _mark(self, row: int) -> None:
        if self.changed_from is None or row < self.changed_from:
            self.changed_from = row

    def _set(self, text: Text) -> None:
        self.lines[self.row] = text
        self._mark(self.row)

    def _write(self, piece: Text) -> None:
        if not piece.plain:
            return
        line = self.lines[self.row]
        n, col = len(piece.plain), self.col
        if col == 0 and n >= len(line):
            self._set(piece)
        elif col >= len(line):
            if col > len(line):
                line.append(" " * (col - len(line)))
            line.append_text(piece)
            self._mark(self.row)
        else:
            self._set(line[:col] + piece + line[col + n :])
        self.col = col + n

    def _trim(self) -> None:
        # Never the cursor's line (a multi-bar redraw may be above the last max_lines lines).
        extra = min(self.line_count - self.max_lines, self.row)
        if extra > 0:
            del self.lines[:extra]
            del self.starts[:extra]
            self.dropped += extra
            self.row -= extra
            self.changed_from = 0

    def prepend(self, earlier: TerminalText) -> int:
        """Put ``earlier`` (the stream just before this one) in front; return lines added.

        ``earlier``'s unfinished last line and this one's first line are the two halves
        of one line (the cut fell mid-line) and are joined.
        """
        head, starts = earlier.lines[:], earlier.starts[:]
        if len(head) > 1 and not head[-1].plain:
            head.pop()  # it ended on a newline: nothing to join
            starts.pop()
        else:
            self.lines[0] = head.pop() + self.lines[0]
            self.starts[0] = starts.pop()
        room = max(0, self.max_lines - len(self.lines))
        if len(head) > room:
            head, starts = head[len(head) - room :], starts[len(starts) - room :]
        self.lines[:0] = head
        self.starts[:0] = starts
        self.row += len(head)
        self.changed_from = 0
        return len(head)


def plain_line(text: str) -> str:
    """What one raw log line (ANSI codes, ``\\r`` updates) shows as once played."""
    term = TerminalText(max_lines=1)
    term.feed(text)
    return term.lines[-1].plain
