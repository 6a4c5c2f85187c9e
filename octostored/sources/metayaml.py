"""Fast reader for MLflow's ``meta.yaml`` files.

MLflow writes ``meta.yaml`` with ``yaml.safe_dump``: one ``key: value`` per line,
plain or single-quoted scalars, ``null``, ints and ``[]``/``{}``.  Parsing that
subset by hand is ~20x faster than PyYAML's pure-Python loader and ~5x faster
than its C loader, and a cold index reads one such file per run and per
experiment.  Anything outside the subset (folded long values, nested maps,
double quotes) falls back to PyYAML, so the fast path never guesses.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

MAX_META_BYTES = 1 << 20
"""MLflow's meta.yaml files are under a kilobyte; anything over a megabyte is not one."""


_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_YAML_WORDS = {"yes", "no", "true", "false", "on", "off", "null", "y", "n", "~"}
"""Plain words YAML 1.1 does not read as text (in any case): PyYAML decides those."""
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]*(?:[eE][-+][0-9]+)?\Z")


class MetaError(ValueError):
    """A meta.yaml that cannot be read as a mapping."""


def _scalar(raw: str) -> Any:
    if raw == "" or raw == "null" or raw == "~":
        return None
    c = raw[0]
    if c == "'":
        if len(raw) < 2 or raw[-1] != "'":
            raise _Fallback
        return raw[1:-1].replace("''", "'")
    if c in '"{[]}&*!|>%@`':
        if raw == "[]":
            return []
        if raw == "{}":
            return {}
        raise _Fallback
    if c == "-" or c.isdigit() or c == ".":
        if _INT.match(raw):
            return int(raw)
        if _FLOAT.match(raw):
            return float(raw)
        if (c.isdigit() and not raw.startswith(("0x", "0X", "0b", "0B", "0o", "0O"))
                and ": " not in raw and " #" not in raw
                and any(ch.isalpha() and ch not in "eEtTzZ" for ch in raw)):
            # No YAML int, float or timestamp holds such a letter: text, like most run ids
            # (hex uuids starting with a digit, which would otherwise all go to PyYAML).
            return raw
        raise _Fallback  # octal, sexagesimal, '1e5' (a str in YAML 1.1): let PyYAML decide
    if raw in ("true", "True"):
        return True
    if raw in ("false", "False"):
        return False
    if ": " in raw or " #" in raw or c in "+?=~:#," or raw.lower() in _YAML_WORDS:
        raise _Fallback
    return raw


_ODD_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
"""Characters where Python's and YAML's idea of a line break or of blank differ."""
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""What YAML refuses to read (PyYAML's reader check): PyYAML must say so, not us guess."""


class _Fallback(Exception):
    pass


def parse_meta(data: bytes) -> dict[str, Any]:
    """Parse a meta.yaml body; raise :class:`MetaError` when it is not a mapping."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MetaError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        out: dict[str, Any] = {}
        if any(c in text for c in _ODD_BREAKS) or _NON_PRINTABLE.search(text):
            raise _Fallback
        for line in text.split("\n"):
            if not line:
                continue
            if line[0] in " \t-#":
                raise _Fallback
            key, sep, rest = line.partition(":")
            if not sep or (rest and rest[0] != " ") or not _KEY.match(key) or (
                    key.lower() in _YAML_WORDS):
                raise _Fallback
            out[key] = _scalar(rest.strip(" \t"))
        if not out:
            raise MetaError("empty file")
        return out
    except _Fallback:
        return _parse_with_pyyaml(text)


def _parse_with_pyyaml(text: str) -> dict[str, Any]:
    # Deferred: PyYAML costs ~15 ms to import and most stores never need it.
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        value = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise MetaError(f"invalid YAML{where}") from None
    except RecursionError:  # the pure-Python loader on absurd nesting
        raise MetaError("invalid YAML: too deeply nested") from None
    except Exception as exc:  # noqa: BLE001 - whatever a hostile file provokes is its problem
        raise MetaError(f"invalid YAML ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        kind = "empty" if value is None else f"a {type(value).__name__}, not a mapping"
        raise MetaError(f"YAML is {kind}")
    return value


class NotRegular(OSError):
    """The path exists but is not a regular file (a folder, a pipe, a device)."""


def read_regular(path: str, limit: int = -1, offset: int = 0) -> bytes:
    """The bytes of the regular file at ``path`` from ``offset``, at most ``limit`` + 1.

    A plain ``open`` of a named pipe blocks until a writer comes and a device such as
    ``/dev/zero`` never ends; stores are other people's folders, so only regular files are
    read.  Raises :class:`NotRegular` for anything else, ``OSError`` when it cannot be read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise NotRegular(0, kind)
        if offset:
            os.lseek(fd, offset, os.SEEK_SET)
        return read_fd(fd, max(st.st_size - offset, 0), limit + 1 if limit >= 0 else -1)
    finally:
        os.close(fd)


def read_fd(fd: int, expected: int, cap: int = -1) -> bytes:
    """Read ``fd`` to its end (at most ``cap`` bytes when ``cap`` >= 0).

    Sized by what ``fstat`` said is there (plus one byte, to see growth), never by the cap:
    ``read(4 MiB)`` on a buffered file allocates 4 MiB, per file, even for a 3-byte param.
    """
    parts: list[bytes] = []
    got = 0
    while cap < 0 or got < cap:
        want = max(expected - got + 1, 1 << 16)
        if cap >= 0:
            want = min(want, cap - got)
        data = os.read(fd, want)
        if not data:
            break
        parts.append(data)
        got += len(data)
        if len(data) < want:  # a regular file reads short only at its end
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


def describe_oserror(exc: OSError) -> str:
    """What went wrong reading a file, as a warning says it."""
    if isinstance(exc, NotRegular):
        return "is a folder" if exc.strerror == "a folder" else "not a regular file"
    if isinstance(exc, FileNotFoundError):
        return "missing"
    if isinstance(exc, IsADirectoryError):
        return "is a folder"
    return f"cannot read ({exc.strerror or exc})"


def read_meta_file(path: str) -> tuple[dict[str, Any] | None, str]:
    """Read and parse a meta.yaml; (mapping, "") or (None, what is wrong)."""
    try:
        data = read_regular(path, MAX_META_BYTES)
    except OSError as exc:
        return None, describe_oserror(exc)
    return parse_meta_bytes(data)


def parse_meta_bytes(data: bytes) -> tuple[dict[str, Any] | None, str]:
    """A meta.yaml's bytes (read with ``MAX_META_BYTES + 1`` as the limit) parsed:
    (mapping, "") or (None, what is wrong)."""
    if len(data) > MAX_META_BYTES:
        return None, f"larger than {MAX_META_BYTES} bytes, not an MLflow meta.yaml"
    try:
        return parse_meta(data), ""
    except MetaError as exc:
        return None, str(exc)
