"""A small YAML reader for the subset env files use, for when PyYAML is not importable.

conda.yaml, environment.yml, MLproject and python_env.yaml are written by hand or
by tools in plain block style: nested mappings and sequences, plain and quoted
scalars, flow collections (``{type: float, default: 0.1}``), comments and ``|``/``>``
block scalars. This reader handles exactly that, and raises :class:`YamlError` (with a
line number) on anything else (anchors, aliases, tags, multi-line plain scalars,
several documents) instead of guessing, so the caller can turn it into a warning.

Scalars resolve as PyYAML's safe loader resolves them (YAML 1.1 rules), so that both
readers give the same values: ``3.10`` is the float 3.1, ``yes`` is True, ``~`` is None.
"""

from __future__ import annotations

import re
from typing import Any


class YamlError(ValueError):
    """The text is not YAML, or uses a feature outside the supported subset."""


_NULL = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"}
_FALSE = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"}
_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$")
_INT_OTHER = re.compile(r"^[-+]?(?:0b[01_]+|0x[0-9a-fA-F_]+|0[0-7_]+)$")
_SEXAGESIMAL = re.compile(r"^[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+$")  # YAML 1.1: 1:30 is 90
_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9_]+)(?:[eE][-+][0-9]+)?$")
_BLOCK_SCALAR = re.compile(r"^[|>][-+]?[0-9]?$")


def resolve(plain: str) -> Any:
    """The value of a plain (unquoted) scalar."""
    if plain in _NULL:
        return None
    if plain in _TRUE:
        return True
    if plain in _FALSE:
        return False
    if _INT.match(plain):
        return int(plain.replace("_", ""))
    if _INT_OTHER.match(plain):
        digits = plain.replace("_", "")
        sign = -1 if digits.startswith("-") else 1
        digits = digits.lstrip("+-")
        base = {"b": 2, "x": 16}.get(digits[1:2], 8)
        return sign * int(digits[2:] if base != 8 else digits, base)
    if _SEXAGESIMAL.match(plain):
        sign = -1 if plain.startswith("-") else 1
        value = 0
        for part in plain.lstrip("+-").replace("_", "").split(":"):
            value = value * 60 + int(part)
        return sign * value
    if _FLOAT.match(plain):
        return float(plain.replace("_", ""))
    if plain in (".inf", ".Inf", ".INF", "+.inf"):
        return float("inf")
    if plain in ("-.inf", "-.Inf", "-.INF"):
        return float("-inf")
    if plain in (".nan", ".NaN", ".NAN"):
        return float("nan")
    return plain


def loads(text: str) -> Any:
    """Parse ``text`` (one YAML document in the supported subset)."""
    return _Parser(text).parse()


def _strip_comment(line: str) -> str:
    """``line`` without a trailing comment; '#' inside quotes or glued to text is kept."""
    quote = ""
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"" and (i == 0 or line[i - 1] in " \t[{,:-?"):
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
        i += 1
    return line.rstrip()


class _Line:
    __slots__ = ("indent", "number", "text")

    def __init__(self, number: int, indent: int, text: str) -> None:
        self.number = number
        self.indent = indent
        self.text = text


class _Parser:
    def __init__(self, text: str) -> None:
        self.raw = text.splitlines()
        self.lines: list[_Line] = []
        # Index into self.raw of each content line, for block scalars, which need
        # the blank lines and '#' characters that content lines drop.
        self.raw_index: list[int] = []
        seen_content = False
        for i, raw in enumerate(self.raw):
            stripped = raw.strip()
            if stripped in ("---", "...") or stripped.startswith(("--- ", "%")):
                if seen_content and stripped.startswith("---"):
                    raise YamlError(f"line {i + 1}: several documents in one file")
                if stripped.startswith("--- ") and _strip_comment(stripped[4:]).strip():
                    raise YamlError(f"line {i + 1}: content after '---' is not supported")
                continue
            content = _strip_comment(raw)
            if not content.strip():
                continue
            body = content.lstrip(" ")
            if body.startswith("\t"):
                raise YamlError(f"line {i + 1}: tabs cannot indent YAML")
            seen_content = True
            self.lines.append(_Line(i + 1, len(content) - len(body), body))
            self.raw_index.append(i)
        self.i = 0

    # -- structure ---------------------------------------------------------

    def parse(self) -> Any:
        if not self.lines:
            return None
        value = self.node(self.lines[0].indent)
        if self.i < len(self.lines):
            line = self.lines[self.i]
            raise YamlError(f"line {line.number}: unexpected indentation or content")
        return value

    def node(self, indent: int) -> Any:
        line = self.lines[self.i]
        if _is_seq_item(line.text):
            return self.sequence(line.indent)
        if _split_key(line.text, line.number) is not None:
            return self.mapping(line.indent)
        self.i += 1
        return self.inline(line.text, line)

    def mapping(self, indent: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.indent < indent:
                break
            if line.indent > indent:
                raise YamlError(f"line {line.number}: unexpected indentation")
            split = _split_key(line.text, line.number)
            if split is None:
                if _is_seq_item(line.text):
                    raise YamlError(f"line {line.number}: a list item where a key was expected")
                raise YamlError(f"line {line.number}: expected 'key: value'")
            key, rest = split
            self.i += 1
            out[key] = self.value_after(rest, indent, line, same_indent_seq=True)
        return out

    def sequence(self, indent: int) -> list[Any]:
        out: list[Any] = []
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.indent < indent:
                break
            if line.indent > indent:
                raise YamlError(f"line {line.number}: unexpected indentation")
            if not _is_seq_item(line.text):
                break
            rest = line.text[1:].lstrip(" ")
            offset = len(line.text) - len(rest)
            if rest and (_is_seq_item(rest) or _split_key(rest, line.number) is not None):
                # "- key: value" / "- - x": the item is a block whose first line starts
                # after the dash; re-read this line as that block's first line.
                self.lines[self.i] = _Line(line.number, indent + offset, rest)
                out.append(self.node(indent + offset))
            else:
                self.i += 1
                out.append(self.value_after(rest, indent, line, same_indent_seq=False))
        return out

    def value_after(self, rest: str, indent: int, line: _Line, *, same_indent_seq: bool) -> Any:
        """The value that follows ``key:`` or ``-`` on ``line``."""
        if rest:
            if _BLOCK_SCALAR.match(rest):
                return self.block_scalar(rest, indent)
            return self.inline(rest, line)
        if self.i < len(self.lines):
            nxt = self.lines[self.i]
            if nxt.indent > indent:
                return self.node(nxt.indent)
            # YAML lets a mapping's list value sit at the key's own indentation.
            if same_indent_seq and nxt.indent == indent and _is_seq_item(nxt.text):
                return self.sequence(indent)
        return None

    def block_scalar(self, header: str, indent: int) -> str:
        """A ``|`` or ``>`` scalar whose header ended the line; ``indent`` is its parent's."""
        start = self.raw_index[self.i - 1] + 1
        explicit = re.search(r"[1-9]", header)
        if explicit:
            cut = indent + int(explicit.group(0))
        else:
            # The first non-blank line sets the content's indentation.
            cut = indent + 1
            for raw in self.raw[start:]:
                width = len(raw) - len(raw.lstrip(" "))
                if raw.strip():
                    cut = max(width, cut) if width > indent else cut
                    break
                cut = max(cut, width)  # leading blank lines count, as in PyYAML
        end = start
        while end < len(self.raw):
            raw = self.raw[end]
            if raw.strip() and len(raw) - len(raw.lstrip(" ")) < cut:
                break
            end += 1
        while self.i < len(self.lines) and self.raw_index[self.i] < end:
            self.i += 1
        # None marks a blank line: it is a line break, not content.
        lines = [None if not b.strip() and len(b) <= cut else b[cut:] for b in self.raw[start:end]]
        chomp = "-" if "-" in header else "+" if "+" in header else ""
        return _fold(lines, folded=header[0] == ">", chomp=chomp)

    # -- scalars and flow collections --------------------------------------

    def inline(self, text: str, line: _Line) -> Any:
        if text[0] in "[{":
            # A flow collection may run over several lines: join until it closes.
            while not _balanced(text):
                if self.i >= len(self.lines):
                    raise YamlError(f"line {line.number}: unclosed {text[0]}")
                text += " " + self.lines[self.i].text
                self.i += 1
            value, pos = _flow(text, 0, line.number)
            if text[pos:].strip():
                raise YamlError(f"line {line.number}: unexpected text after {text[0]}...")
            return value
        if text[0] in "'\"":
            value, pos = _quoted(text, 0, line.number)
            if text[pos:].strip():
                raise YamlError(f"line {line.number}: unexpected text after a quoted string")
            return value
        if text[0] in "&*!|>@`%":
            raise YamlError(f"line {line.number}: unsupported YAML syntax {text[0]!r}")
        if re.search(r":(?:\s|$)", text):
            # YAML itself rejects this ("mapping values are not allowed here").
            raise YamlError(f"line {line.number}: ': ' inside a plain value; quote the value")
        # A plain scalar continued on a more indented line is not supported.
        if self.i < len(self.lines) and self.lines[self.i].indent > line.indent and not (
            _is_seq_item(self.lines[self.i].text) or _split_key(self.lines[self.i].text, 0)
        ):
            raise YamlError(
                f"line {self.lines[self.i].number}: multi-line plain scalars are not supported"
            )
        return resolve(text.strip())


def _fold(lines: list[str | None], *, folded: bool, chomp: str) -> str:
    """Join block-scalar lines as YAML does (PyYAML's scan_block_scalar, line by line).

    Folding turns a single line break between two lines that do not start with a
    space into a space; blank lines and more-indented lines keep their breaks.
    Chomping: ``-`` drops the final break, default keeps one, ``+`` keeps them all.
    """
    chunks: list[str] = []
    breaks: list[str] = []
    line_break = ""
    i = 0
    while i < len(lines) and lines[i] is None:
        breaks.append("\n")
        i += 1
    while i < len(lines):
        chunks += breaks
        breaks = []
        line = lines[i] or ""
        leading_non_space = not line.startswith((" ", "\t"))
        chunks.append(line)
        line_break = "\n"
        i += 1
        while i < len(lines) and lines[i] is None:
            breaks.append("\n")
            i += 1
        if i >= len(lines):
            break
        nxt = lines[i] or ""
        if folded and leading_non_space and not nxt.startswith((" ", "\t")):
            if not breaks:
                chunks.append(" ")
        else:
            chunks.append(line_break)
    if chomp != "-":
        chunks.append(line_break)
    if chomp == "+":
        chunks += breaks
    return "".join(chunks)


def _is_seq_item(text: str) -> bool:
    return text == "-" or text.startswith("- ")


def _split_key(text: str, number: int) -> tuple[Any, str] | None:
    """``(key, rest)`` if ``text`` is a ``key: value`` line, else None."""
    if text[0] in "'\"":
        try:
            key, pos = _quoted(text, 0, number)
        except YamlError:
            return None
        rest = text[pos:].lstrip(" ")
        if rest == ":" or rest.startswith(": "):
            return key, rest[1:].strip()
        return None
    if text[0] in "[{-#&*!|>%@`" and not (text[0] == "-" and len(text) > 1 and text[1] != " "):
        return None
    m = re.search(r":(?:\s|$)", text)
    if m is None:
        return None
    key = text[: m.start()].rstrip()
    if not key:
        return None
    return resolve_key(key), text[m.end():].strip()


def resolve_key(key: str) -> Any:
    value = resolve(key)
    return value if not isinstance(value, float) else key


def _balanced(text: str) -> bool:
    """Whether every ``[``/``{`` in ``text`` is closed (quoted text ignored)."""
    depth = 0
    quote = ""
    prev = " "
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if quote == '"' and c == "\\":
                i += 1
            elif c == quote:
                if quote == "'" and text[i + 1 : i + 2] == "'":  # '' is an escaped quote
                    i += 1
                else:
                    quote = ""
        elif c in "'\"" and prev in " \t[{,:":  # a quote inside a plain scalar is text
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        prev = c
        i += 1
    return depth <= 0


def _quoted(text: str, pos: int, number: int) -> tuple[str, int]:
    q = text[pos]
    out: list[str] = []
    i = pos + 1
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "/": "/", "0": "\0", " ": " "}
    while i < len(text):
        c = text[i]
        if q == "'" and c == "'":
            if text[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        if q == '"' and c == "\\" and i + 1 < len(text):
            out.append(escapes.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
            continue
        if q == '"' and c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise YamlError(f"line {number}: unterminated quoted string")


def _flow(text: str, pos: int, number: int) -> tuple[Any, int]:
    """Parse a flow value starting at ``pos``; returns (value, position after it)."""
    pos = _skip(text, pos)
    if pos >= len(text):
        raise YamlError(f"line {number}: missing value")
    c = text[pos]
    if c == "[":
        items: list[Any] = []
        pos = _skip(text, pos + 1)
        while True:
            if pos < len(text) and text[pos] == "]":
                return items, pos + 1
            value, pos = _flow(text, pos, number)
            items.append(value)
            pos = _skip(text, pos)
            if pos < len(text) and text[pos] == ",":
                pos = _skip(text, pos + 1)
            elif pos >= len(text) or text[pos] != "]":
                raise YamlError(f"line {number}: expected ',' or ']'")
    if c == "{":
        mapping: dict[Any, Any] = {}
        pos = _skip(text, pos + 1)
        while True:
            if pos >= len(text):
                raise YamlError(f"line {number}: unterminated {{...}}")
            if text[pos] == "}":
                return mapping, pos + 1
            if text[pos] in "'\"":
                key, pos = _quoted(text, pos, number)
            else:
                m = re.compile(r"[^:,}]*?(?=:(?:\s|[,}])|[,}])").match(text, pos)
                if m is None:
                    raise YamlError(f"line {number}: bad key in {{...}}")
                key, pos = resolve_key(m.group(0).strip()), m.end()
            pos = _skip(text, pos)
            value: Any = None
            if pos < len(text) and text[pos] == ":":
                pos = _skip(text, pos + 1)
                if pos < len(text) and text[pos] not in ",}":
                    value, pos = _flow(text, pos, number)
            mapping[key] = value
            pos = _skip(text, pos)
            if pos < len(text) and text[pos] == ",":
                pos = _skip(text, pos + 1)
            elif pos >= len(text) or text[pos] != "}":
                raise YamlError(f"line {number}: expected ',' or '}}'")
    if c in "'\"":
        return _quoted(text, pos, number)
    m = re.compile(r"[^,\]}]*").match(text, pos)
    assert m is not None  # the pattern matches the empty string
    return resolve(m.group(0).strip()), m.end()


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos
