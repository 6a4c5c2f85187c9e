"""LIKE and ILIKE in time linear in the value, with MLflow's exact semantics.

MLflow's file store turns a LIKE pattern into a regex (:func:`parse.like_regex`: ``%`` is
``.*``, ``_`` is ``.``) and calls ``re.match``.  With two or more ``%`` before the pattern's
last character that regex backtracks: ``'%a%a%b'`` against 3,000 characters of ``a`` took
5.6 s, holding the GIL, so a filter froze the daemon for every client.

:func:`like_test` keeps that regex for patterns with at most one such ``%`` (``'abc%'``,
``'%abc'``, ``'%abc%'``, ``'a%c'``: linear already), and otherwise matches the pieces between
``%`` one after another, each at its leftmost place (the classic greedy wildcard match, which
is right because a gap may hold anything): still one ``re`` regex (:func:`leftmost_regex`,
atomic groups), so it is as fast as MLflow's on ordinary values, and every piece keeps
MLflow's characters and flags, so case folding is ``re``'s own.

MLflow's quirks are kept: ``%`` and ``_`` never match a newline (``.``), and ``$`` also
matches before one final newline.  When the pattern holds no newline, a match lies within
the value's first line, where leftmost is right; when the pattern holds a newline (rare), a
position-set walk (O(value x pieces), :class:`_Pieces`) decides.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .parse import like_regex

Matcher = Callable[[str], object]
"""value -> something not None when the pattern matches (like ``re.Pattern.match``)."""


def like_test(pattern: str, ignore_case: bool) -> Matcher:
    """A matcher with the result of ``like_regex(pattern, ignore_case).match``."""
    if pattern.rstrip("%").count("%") <= 1:
        return like_regex(pattern, ignore_case).match
    if "\n" in pattern:
        return _Pieces(pattern, ignore_case).match
    return leftmost_regex(pattern, ignore_case).match


def _piece(text: str) -> str:
    return re.escape(text).replace("_", ".")


def leftmost_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """The greedy wildcard match as one regex: each piece but the last at its leftmost place
    (``(?>.*?piece)``: lazy, then atomic, so never tried again), the last against the end."""
    parts = pattern.split("%")
    if pattern.endswith("%"):
        body = _piece(parts[0]) + "".join(f"(?>.*?{_piece(p)})" for p in parts[1:] if p)
    else:
        body = (_piece(parts[0]) + "".join(f"(?>.*?{_piece(p)})" for p in parts[1:-1] if p)
                + ".*" + _piece(parts[-1]) + "$")
    return re.compile(body, re.IGNORECASE if ignore_case else 0)


class _Pieces:
    __slots__ = ("first", "middle", "last", "anchored", "newline", "flags", "literal")

    def __init__(self, pattern: str, ignore_case: bool) -> None:
        parts = pattern.split("%")
        self.flags = re.IGNORECASE if ignore_case else 0
        self.anchored = not pattern.endswith("%")
        """The regex ends with ``$``: the last piece must end the value."""
        self.newline = "\n" in pattern
        self.first = self._piece(parts[0])
        self.last = self._piece(parts[-1])
        self.middle = [self._piece(p) for p in parts[1:-1] if p]

    def _piece(self, text: str) -> tuple[str, re.Pattern[str], int]:
        return text, re.compile(re.escape(text).replace("_", "."), self.flags), len(text)

    def match(self, value: str) -> bool | None:
        if self.newline:
            return self._walk(value)
        nl = value.find("\n")
        if nl >= 0:
            # Nothing in the pattern matches a newline: a match lies within the first line,
            # and with '$' that line must be all but one final newline.
            if self.anchored and nl != len(value) - 1:
                return None
            value = value[:nl]
        text, rx, n = self.first
        if n and rx.match(value) is None:
            return None
        pos = n
        for text, rx, n in self.middle:
            m = rx.search(value, pos)
            if m is None:
                return None
            pos = m.end()
        if not self.anchored:
            return True
        text, rx, n = self.last
        start = len(value) - n
        return True if start >= pos and (not n or rx.match(value, start)) else None

    def _walk(self, value: str) -> bool | None:
        """The general case: the set of positions a match can have reached after each piece
        (a gap may be any run of characters without a newline)."""
        end = len(value)
        text, rx, n = self.first
        if n and rx.match(value) is None:
            return None
        reach = {n}
        pieces = [*self.middle, self.last] if self.anchored else self.middle
        for text, rx, n in pieces:
            nxt: set[int] = set()
            open_ = False
            for q in range(min(reach), end + 1):
                if q in reach:
                    open_ = True
                if open_ and (not n or rx.match(value, q) is not None):
                    nxt.add(q + n)
                if q < end and value[q] == "\n":
                    open_ = False
            if not nxt:
                return None
            reach = nxt
        if not self.anchored:
            return True
        return True if any(p == end or (p == end - 1 and value[p] == "\n") for p in reach) \
            else None
