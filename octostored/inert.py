"""Make a string from a repo inert before it reaches a terminal or a page.

Run names, params, tags, paths and command lines come from whoever wrote the
store: a stranger's repo can hold ``ESC]0;title BEL``, ``ESC[2J``, an OSC 52
clipboard write or a right-to-left override that reorders what a person reads.
:func:`inert` shows every control character, C1 control and bidi or invisible
format character as a visible escape (``\\x1b``, ``\\u202e``), so what is shown
is what is there and the terminal never acts on it.  Console logs that octostore
captured itself are the one exception: they keep their colours (see
``console/``), names never do.  Stdlib only: the TUI, the CLI and the capture
plugin all import it.
"""

from __future__ import annotations

import re

_BIDI_AND_INVISIBLE = (
    "\u061c"  # arabic letter mark
    "\u200b-\u200f"  # zero-width space/joiners, LRM, RLM
    "\u2028\u2029"  # line and paragraph separators
    "\u202a-\u202e"  # embeddings and overrides
    "\u2060-\u2064"  # word joiner, invisible operators
    "\u2066-\u2069"  # isolates
    "\ufeff"  # zero-width no-break space
    "\ufff9-\ufffb"  # interlinear annotations
)
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_AND_INVISIBLE}]")
_UNSAFE_KEEP_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI_AND_INVISIBLE}]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _show(m: re.Match[str]) -> str:
    ch = m.group(0)
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(value: object, keep_newlines: bool = False) -> str:
    """``value`` as text with nothing a terminal would act on.

    With ``keep_newlines`` a newline and a tab stay as they are (multi-line text
    such as a recorded command's script); everything else is shown escaped.
    """
    text = value if isinstance(value, str) else str(value)
    pattern = _UNSAFE_KEEP_LINES if keep_newlines else _UNSAFE
    if pattern.search(text) is None:
        return text
    return pattern.sub(_show, text)


def is_inert(text: str) -> bool:
    """True when ``text`` has nothing :func:`inert` would change."""
    return _UNSAFE.search(text) is None


_CSI_KEPT = re.compile(r"\x1b\[[0-9;:]*[mKABCDG]")
"""Escapes a console log may keep: colours (SGR), erase-in-line and cursor moves within the
screen, which progress bars use.  Everything else (OSC titles, clipboard writes, hyperlinks,
DCS/APC strings, screen clears, mode switches) is shown escaped."""
_TEXT_UNSAFE = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI_AND_INVISIBLE}]")


def inert_text(text: str) -> str:
    """Terminal output (a console log, a text artifact) with its colours and progress bars
    kept and nothing else a terminal would act on: newlines, tabs, ``\\r`` and the escapes
    of :data:`_CSI_KEPT` pass; any other control character is shown escaped."""
    if _TEXT_UNSAFE.search(text) is None:
        return text
    out: list[str] = []
    pos = 0
    for m in _CSI_KEPT.finditer(text):
        out.append(_TEXT_UNSAFE.sub(_show, text[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(_TEXT_UNSAFE.sub(_show, text[pos:]))
    return "".join(out)
