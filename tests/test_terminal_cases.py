"""The shared cases of the two terminal renderers (tests/terminal_cases.json).

``octostore_tui/terminal.py`` and ``editors/vscode/src/core/terminal.ts`` play a console log
like a terminal; this test and ``editors/vscode/src/test/unit/terminalCases.test.ts`` run the
same cases through each. The expected values are written by hand from what xterm shows for the
bytes (never produced by running a renderer), with these conventions:

- the screen is as tall and as wide as the log needs (nothing scrolls off, nothing wraps), the
  first line at the top; ``\\n`` is a line end (the tty's onlcr: to the next line's start);
- ``lines``: the text of each line shown, spaces written or padded included; a last line that
  nothing was written on (the cursor waits there) is not shown;
- ``chunks`` (optional): feed plans, each a list of offsets (in code points) where the input is
  cut into chunks, or ``"every"``: every single cut; every plan must give the same result;
- ``max_lines`` / ``dropped``: the cap and how many lines were let go from the top;
- ``styles`` (optional, one list per line): the styled runs ``[start, end, attrs]`` (code
  points, end exclusive, runs of equal attrs merged, unstyled text left out); attrs has ``fg``,
  ``bg`` (``red``, ``bright_red`` ... for the 16 theme colours, ``#rrggbb`` else: xterm's
  palette for 16-255) and ``bold``, ``dim``, ``italic``, ``underline``, ``inverse``, ``strike``;
- ``skip`` (optional): ``{"py"|"ts": reason}`` for a documented limit of one renderer; the case
  must still fail there (a renderer that learns it must drop the skip).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.color import ColorType
from rich.style import Style
from rich.text import Text

from octostore_tui.terminal import TerminalText

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "terminal_cases.json").read_text(encoding="utf-8")
)
NAMES16 = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"]
NAMES16 += [f"bright_{n}" for n in NAMES16]
CUBE = [0, 95, 135, 175, 215, 255]


def colour(c: Any) -> str | None:
    if c is None or c.is_default:
        return None
    if c.type == ColorType.TRUECOLOR:
        return "#{:02x}{:02x}{:02x}".format(*c.triplet)
    n = c.number
    if n < 16:
        return NAMES16[n]
    if n < 232:
        i = n - 16
        rgb = (CUBE[i // 36], CUBE[i // 6 % 6], CUBE[i % 6])
    else:
        rgb = (8 + 10 * (n - 232),) * 3
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def attrs(style: Style) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (("fg", colour(style.color)), ("bg", colour(style.bgcolor))):
        if value:
            out[key] = value
    for key, flag in (("bold", style.bold), ("dim", style.dim), ("italic", style.italic),
                      ("underline", style.underline or style.underline2),
                      ("inverse", style.reverse), ("strike", style.strike)):
        if flag:
            out[key] = True
    return out


def runs(line: Text) -> list[list[Any]]:
    """A rich Text as the neutral styled runs."""
    def style(s: str | Style) -> Style:
        return Style.parse(s) if isinstance(s, str) else s

    chars = [style(line.style)] * len(line.plain)
    for span in line.spans:
        for i in range(span.start, min(span.end, len(chars))):
            chars[i] = chars[i] + style(span.style)
    out: list[list[Any]] = []
    for i, style in enumerate(chars):
        a = attrs(style)
        if out and out[-1][1] == i and out[-1][2] == a:
            out[-1][1] = i + 1
        elif a:
            out.append([i, i + 1, a])
    return out


def plans(case: dict[str, Any]) -> list[list[int]]:
    n = len(case["input"])
    out: list[list[int]] = [[]]
    for plan in case.get("chunks", []):
        out += [[i] for i in range(1, n)] if plan == "every" else [plan]
    return out


def play(case: dict[str, Any], cuts: list[int]) -> dict[str, Any]:
    term = TerminalText(max_lines=case.get("max_lines", 10_000))
    text, last = case["input"], 0
    for cut in [*cuts, len(text)]:
        term.feed(text[last:cut])
        last = cut
    got: dict[str, Any] = {"lines": term.plain}
    if "dropped" in case:
        got["dropped"] = term.dropped
    if "styles" in case:
        got["styles"] = [runs(line) for line in term.lines[: term.line_count]]
    return got


def check(case: dict[str, Any]) -> None:
    want = {k: case[k] for k in ("lines", "dropped", "styles") if k in case}
    for cuts in plans(case):
        assert play(case, cuts) == want, f"chunks cut at {cuts}"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_terminal_case(case: dict[str, Any]) -> None:
    reason = case.get("skip", {}).get("py")
    if reason is None:
        check(case)
        return
    # A documented limit of this renderer (``reason``): the case must still come out unlike
    # xterm. The day it matches, this fails ('DID NOT RAISE'): drop the case's "skip".
    with pytest.raises(AssertionError):
        check(case)


def test_the_cases_are_many_and_well_formed() -> None:
    assert len(CASES) >= 30
    assert len({c["name"] for c in CASES}) == len(CASES)
    for c in CASES:
        assert set(c) <= {"name", "input", "note", "chunks", "max_lines", "lines", "dropped",
                          "styles", "skip"}, c["name"]
        assert len(c.get("styles", c["lines"])) == len(c["lines"]), c["name"]
