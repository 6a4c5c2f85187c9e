"""Tokens and identifiers of MLflow's search syntax, without sqlparse.

MLflow parses ``filter_string`` and ``order_by`` with sqlparse and then reads
the grouped tokens (``mlflow/utils/search_utils.py``).  This module owns the
part of that pipeline the daemon needs: a lexer that applies the relevant
subset of sqlparse's ``SQL_REGEX`` table *in the same order and with the
same regexes*, so that the same text splits into the same tokens (which is
what decides, for instance, that ``params.in`` is not a key but
``params.select`` is, that ``-1`` is a number but ``- 1`` is not, and that
``.5`` is a float), plus the identifier and value readers shared by
``filter.py`` and ``order.py``.

Identifiers keep their *raw text* (quotes, backticks, inner spaces), because
MLflow derives entity and key from the raw text with plain string slicing
(``split('.', 1)``, strip one pair of quotes, strip one pair of backticks);
:func:`split_identifier` repeats exactly that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import FilterError

# Token kinds.
WS = "ws"
NAME = "name"  # a part of an identifier: word, `backticked`, [bracketed], #name
WORD = "word"  # bare word: a name unless it is one of KEYWORDS
DQ = "dq"  # "double quoted": sqlparse's String.Symbol, i.e. a name, not a string
SQ = "sq"  # 'single quoted': the only real string literal
INT = "int"
FLOAT = "float"
KW = "kw"  # keyword (value is upper-cased, inner whitespace kept)
CMP = "cmp"  # comparison operator: < > = != ... LIKE ILIKE NOT LIKE
DOT = "dot"
LPAREN = "("
RPAREN = ")"
STAR = "star"
BAD = "bad"  # anything MLflow's grammar has no use for (comments, operators...)

_F = re.IGNORECASE | re.UNICODE
_L = "A-ZÀ-Ü"  # sqlparse's notion of a leading letter (case-insensitive)

# (regex, kind) in sqlparse's SQL_REGEX order.  Only the kinds matter to us;
# rows for SQL we never accept map to BAD but must stay, because their
# position decides what *other* rows get to match.
_TABLE: list[tuple[str, str]] = [
    (r"(--|# )\+.*?(\r\n|\r|\n|$)", BAD),  # comment hint
    (r"(--|# ).*?(\r\n|\r|\n|$)", BAD),  # comment
    (r"/\*", BAD),  # multi-line comment
    (r"\s+", WS),
    (r":=", BAD),
    (r"::", BAD),
    (r"\*", STAR),
    (r"`(``|[^`])*`", NAME),
    (r"´(´´|[^´])*´", NAME),
    (r"\?", BAD),
    (r"%(\(\w+\))?s", BAD),
    (r"(?<!\w)[$:?]\w+", BAD),
    (r"\\\w+", BAD),
    (r"(CASE|IN|VALUES|USING|FROM|AS)\b", KW),
    (rf"(@|##|#)[{_L}]\w+", NAME),
    (rf"[{_L}]\w*(?=\s*\.(?!\d))", NAME),  # name followed by a dot
    (rf"(?<=\.)[{_L}]\w*", NAME),  # name after a dot (even a keyword)
    (rf"[{_L}]\w*(?=\()", BAD),  # function call
    (r"-?0x[\dA-F]+", BAD),  # hexadecimal: not a value MLflow accepts
    (r"-?\d+(\.\d+)?E-?\d+", FLOAT),
    (rf"(?![_{_L}])-?(\d+(\.\d*)|\.\d+)(?![_{_L}])", FLOAT),
    (rf"(?![_{_L}])-?\d+(?![_{_L}])", INT),
    (r"'(''|\\'|[^'])*'", SQ),
    (r'"(""|\\"|[^"])*"', DQ),
    (r'(""|".*?[^\\]")', DQ),
    (r"(?<![\w\])])(\[[^\]\[]+\])", NAME),
    (r"((LEFT\s+|RIGHT\s+|FULL\s+)?(INNER\s+|OUTER\s+|STRAIGHT\s+)?"
     r"|(CROSS\s+|NATURAL\s+)?)?JOIN\b", KW),
    (r"END(\s+IF|\s+LOOP|\s+WHILE|\s+FOR|\s+CASE)?\b", KW),
    (r"IF\s+(NOT\s+)?EXISTS\b", KW),
    (r"NOT\s+NULL\b", KW),
    (r"(ASC|DESC)(\s+NULLS\s+(FIRST|LAST))?\b", KW),
    (r"NULLS\s+(FIRST|LAST)\b", KW),
    (r"UNION\s+ALL\b", KW),
    (r"CREATE(\s+OR\s+REPLACE)?\b", KW),
    (r"DOUBLE\s+PRECISION\b", KW),
    (r"(GROUP|ORDER)\s+BY\b", KW),
    (r"PRIMARY\s+KEY\b", KW),
    (r"HANDLER\s+FOR\b", KW),
    (r"GO(\s\d+)\b", KW),
    (r"(LATERAL\s+VIEW\s+)(EXPLODE|INLINE|PARSE_URL_TUPLE|POSEXPLODE|STACK)\b", KW),
    (r"(AT|WITH')\s+TIME\s+ZONE\s+'[^']+'", KW),
    (r"(NOT\s+)?(LIKE|ILIKE|RLIKE)\b", CMP),
    (r"(NOT\s+)?(REGEXP)(\s+(BINARY))?\b", CMP),
    (r"\w[$#\w]*", WORD),
    (r"\.", DOT),
    (r"\(", LPAREN),
    (r"\)", RPAREN),
    (r"[;:\[\],]", BAD),
    (r"(\->>?|#>>?|@>|<@|\?\|?|\?&|\-|#\-)", BAD),
    (r"[<>=~!]+", CMP),
    (r"[+/@#%^&|^-]+", BAD),
]
# One alternation with a named group per row: re tries alternatives in order,
# which is sqlparse's first-match-wins rule, in one C-level call per token.
_MASTER = re.compile("|".join(f"(?P<t{i}>{rx})" for i, (rx, _) in enumerate(_TABLE)), _F)
_KINDS = {f"t{i}": kind for i, (_, kind) in enumerate(_TABLE)}

# Bare words sqlparse treats as keywords *that matter to this grammar*; any
# other word is a name (``status``, ``created``, ``run_id`` ... all are).
KEYWORDS = {"AND", "OR", "NOT", "IS", "NULL", "IN"}


@dataclass(slots=True)
class Token:
    kind: str
    text: str
    start: int
    end: int

    @property
    def upper(self) -> str:
        return " ".join(self.text.upper().split())


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, dropping whitespace."""
    out: list[Token] = []
    pos, n = 0, len(text)
    while pos < n:
        m = _MASTER.match(text, pos)
        if m is None:  # a character no rule accepts, e.g. '$' or '{'
            out.append(Token(BAD, text[pos], pos, pos + 1))
            pos += 1
            continue
        kind = _KINDS[m.lastgroup]  # type: ignore[index]
        if kind == WORD and m.group().upper() in KEYWORDS:
            kind = KW
        if kind != WS:
            out.append(Token(kind, m.group(), pos, m.end()))
        pos = m.end()
    return out


# Parts that may start an identifier, and parts that may follow a dot
# (sqlparse's group_period: Name, String.Symbol, Wildcard, String.Single, [..]).
_FIRST = {NAME, WORD, DQ}
_NEXT = {NAME, WORD, DQ, SQ, STAR}


def read_identifier(text: str, toks: list[Token], i: int) -> tuple[str, int] | None:
    """Read ``part(.part)*`` at ``toks[i]``; return (raw text, next index) or None."""
    if i >= len(toks) or toks[i].kind not in _FIRST:
        return None
    j = i + 1
    while j + 1 < len(toks) and toks[j].kind == DOT and toks[j + 1].kind in _NEXT:
        j += 2
    if j < len(toks) and toks[j].kind == DOT:
        # 'params.' followed by a number or a keyword such as IN/FROM/AS:
        # sqlparse cannot group it, so MLflow rejects the clause.
        after = toks[j + 1].text if j + 1 < len(toks) else ""
        raise FilterError(
            f"bad filter at {snippet(text, toks[i].start)!r}: {after or 'nothing'!r} cannot "
            "follow '.' in a key; quote the key with backticks, "
            "e.g. tags.`my.key` = 'x'"
        )
    return text[toks[i].start : toks[j - 1].end], j


def _is_quoted(value: str, quote: str) -> bool:
    return len(value) >= 2 and value[0] == quote and value[-1] == quote


def strip_quotes(value: str) -> str | None:
    """MLflow's ``_strip_quotes``: one pair of ' or " removed; None if unquoted."""
    if _is_quoted(value, "'") or _is_quoted(value, '"'):
        return value[1:-1]
    return None


def split_identifier(raw: str) -> tuple[str, str]:
    """(entity, key) from an identifier's raw text, as ``SearchUtils._get_identifier``.

    The entity is '' for a bare name (which MLflow reads as an attribute).
    Backticks around the entity and one pair of quotes, then backticks,
    around the key are removed; nothing else is unescaped (MLflow does not).
    """
    if "." in raw:
        entity, key = raw.split(".", 1)
        if _is_quoted(entity, "`"):
            entity = entity[1:-1]
    else:
        entity, key = "", raw
    stripped = strip_quotes(key)
    if stripped is not None:
        key = stripped
    if _is_quoted(key, "`"):
        key = key[1:-1]
    return entity, key


def snippet(text: str, start: int, width: int = 40) -> str:
    """The filter text from ``start``, shortened for an error message."""
    s = text[start:].strip()
    return s if len(s) <= width else s[: width - 3] + "..."
