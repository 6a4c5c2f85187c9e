"""A run's console logs: which files, which part of them, and reading that part.

Two kinds of log (the format is :mod:`octostored.console.logformat`):

* ``console``: the log the run's ``octostore.console_log`` tag names (a path relative to
  the root, ``.log`` or, once committed compressed, ``.log.gz``).  A log may hold several
  runs (one command that started them one after another); a run's *part* is cut with the
  ``.idx`` time marks (see :func:`_cut`).  When another run of the same log overlaps it in
  time, or the marks are missing, the part is the whole log (``part: "whole"``).
* ``artifact``: the artifact ``octostore/console.log`` (a reproduction's console), read
  whole.

A log is *live* while its writer writes it: no final ``exit`` mark, the run is RUNNING and
the writer's pid (from the header) is alive when the header says it ran on this host (or
says no host).  Every read opens, reads and closes: no handle outlives a request.  A tag
that leaves the root (absolute, ``..``, a symlink out) is refused with a warning on the run.
"""

from __future__ import annotations

import gzip
import os
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from .. import procs
from .logformat import LOG_SUFFIX, MARK_INTERVAL_MS, TAG, index_path
from ..model import Run
from ..sources.artifacts import local_artifact_dir

ARTIFACT_LOG = "octostore/console.log"
"""The artifact a reproduction stores its console in."""
CONSOLE = "console"
DEFAULT_MAX_BYTES = 256 * 1024
MAX_READ = 1024 * 1024
DEFAULT_MAX_LINES = 1000
MAX_LINES = 100_000
MAX_MATCH_CHARS = 4000
"""A matching line longer than this is cut (a progress bar without newlines can be MBs)."""
CHUNK = 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024
"""Grep searches a line longer than this in pieces of this size."""
IDX_CACHE_SIZE = 128


@dataclass(slots=True)
class LogRef:
    """One log of one run, resolved to a file and a byte range of its (decompressed) bytes."""

    name: str
    kind: str
    """"console" or "artifact"."""
    path: str
    """Relative to the root (absolute when an artifact folder lies outside it)."""
    full: str
    gz: bool
    start: int
    end: int | None
    """End of the run's part; None: to the end of the file, as it grows."""
    part: str
    """"run" or "whole"."""
    live: bool
    file_size: int
    """Bytes of the (decompressed) file when resolved."""

    @property
    def size(self) -> int:
        end = self.file_size if self.end is None else min(self.end, self.file_size)
        return max(0, end - self.start)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "path": self.path, "size": self.size,
                "live": self.live, "part": self.part}


@dataclass(slots=True)
class Resolved:
    logs: list[LogRef] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    missing: str | None = None
    """A sentence when the tag names a log that is not here (or is refused)."""
    refused: bool = False


# -- the index (.idx) --------------------------------------------------------------------------
class _IdxCache:
    """Parsed ``.idx`` files, extended incrementally as a live writer appends marks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[int, int, int, list[dict[str, Any]], int]] = \
            OrderedDict()
        """path -> (inode, mtime_ns, size, entries, bytes parsed)"""

    def get(self, path: str) -> list[dict[str, Any]]:
        try:
            st = os.stat(path)
        except OSError:
            return []
        with self._lock:
            hit = self._items.get(path)
        if hit is not None and hit[0] == st.st_ino and hit[1] == st.st_mtime_ns and \
                hit[2] == st.st_size:
            return hit[3]
        entries: list[dict[str, Any]] = []
        start = 0
        if hit is not None and hit[0] == st.st_ino and st.st_size >= hit[2]:
            entries, start = list(hit[3]), hit[4]
        try:
            with open(path, "rb") as f:
                f.seek(start)
                raw = f.read()
        except OSError:
            return []
        cut = raw.rfind(b"\n") + 1  # a line without its newline is still being written
        for line in raw[:cut].splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("o"), int) and \
                    isinstance(entry.get("t"), int):
                entries.append(entry)
        with self._lock:
            self._items[path] = (st.st_ino, st.st_mtime_ns, st.st_size, entries, start + cut)
            self._items.move_to_end(path)
            while len(self._items) > IDX_CACHE_SIZE:
                self._items.popitem(last=False)
        return entries


_IDX = _IdxCache()


def read_marks(idx_file: str) -> list[dict[str, Any]]:
    """The ``.idx`` entries (cached; a torn or garbled line is skipped)."""
    return _IDX.get(idx_file)


# -- resolving -----------------------------------------------------------------------------------
def _inside(root_real: str, path: str) -> bool:
    return path == root_real or path.startswith(root_real + os.sep)


def tag_file(root: str, value: str) -> tuple[str | None, str | None]:
    """(the existing log file the tag value names, or None; a refusal sentence, or None)."""
    v = value.strip()
    if not v or "\x00" in v or "\\" in v or os.path.isabs(v) or v.startswith("~"):
        return None, f"its console log tag {value[:200]!r} is not a path inside the repo; not read"
    if not (v.endswith(LOG_SUFFIX) or v.endswith(LOG_SUFFIX + ".gz")):
        return None, f"its console log tag {value[:200]!r} does not name a .log file; not read"
    root_real = os.path.realpath(root)
    lexical = os.path.normpath(os.path.join(root_real, v))
    if not _inside(root_real, lexical):
        return None, f"its console log tag {value[:200]!r} points outside the repo; not read"
    names = [v, v[:-3]] if v.endswith(".gz") else [v, v + ".gz"]
    for name in names:
        full = os.path.join(root_real, name)
        real = os.path.realpath(full)
        if not os.path.isfile(real):
            continue
        if not _inside(root_real, real):
            return None, (f"its console log {v} is a link that leaves the repo; not read")
        return real, None
    return None, None


def _gz_size(full: str) -> int:
    """Uncompressed size of a gzip file: its ISIZE trailer (the size mod 2**32, exact when
    the file is too small to inflate past 4 GiB: deflate expands at most 1032 times), else
    by reading it through."""
    try:
        with open(full, "rb") as f:
            f.seek(-4, os.SEEK_END)
            isize = int.from_bytes(f.read(4), "little")
        if os.path.getsize(full) * 1032 < 2**32:
            return isize
    except OSError:
        return 0
    n = 0
    try:
        with gzip.open(full, "rb") as g:
            while chunk := g.read(CHUNK):
                n += len(chunk)
    except (OSError, EOFError):  # a damaged file: what could be read
        pass
    return n


def _writer_alive(marks: list[dict[str, Any]]) -> bool:
    header = marks[0] if marks and "v" in marks[0] else None
    if header is None:
        return True
    host = header.get("host")
    if isinstance(host, str) and host and host != socket.gethostname():
        return True  # written elsewhere (a shared disk): cannot tell, trust the run's status
    pid = header.get("pid")
    return procs.running(pid) if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else True


def log_is_live(full: str) -> bool:
    """True while the log's writer still writes it (no exit mark, the writer alive)."""
    marks = read_marks(index_path(full))
    return not any("exit" in m for m in marks) and _writer_alive(marks)


def _overlaps(run: Run, others: Iterable[Run], now: int) -> bool:
    s1 = run.start_time or 0
    e1 = run.end_time if run.end_time is not None else now
    for o in others:
        if o.run_id == run.run_id or o.start_time is None:
            continue
        e2 = o.end_time if o.end_time is not None else now
        if o.start_time < e1 and s1 < e2:
            return True
    return False


def _cut(marks: list[dict[str, Any]], start_ms: int, end_ms: int | None,
         size: int) -> tuple[int, int | None]:
    """The run's byte range from the marks.

    A writer marks ``(o, t)`` when output arrives at least ``MARK_INTERVAL_MS`` after its last
    mark, so the bytes from one mark's ``o`` to the next arrived within ``MARK_INTERVAL_MS``
    after its ``t``.  The part starts at the first segment that may hold bytes written after
    the run started and ends at the first mark an interval after the run ended (a last line
    printed just before ``end_run`` can reach the pipe a moment later): a line near a border
    may show in both neighbours, never in neither.
    """
    start: int | None = None
    end: int | None = None
    for m in marks:
        if start is None and m["t"] + MARK_INTERVAL_MS > start_ms:
            start = m["o"]
        if end_ms is not None and m["t"] >= end_ms + MARK_INTERVAL_MS:
            if start is None or m["o"] >= start:
                end = m["o"]
                break
    if start is None:  # every mark is from before the run: its output comes after them
        start = size
    return start, end


def console_log(root: str, run: Run, sharing: Iterable[Run]) -> Resolved:
    """The run's tee'd console log (``sharing``: the other runs with the same tag value)."""
    out = Resolved()
    value = run.tags.get(TAG)
    if value is None:
        return out
    full, refusal = tag_file(root, value)
    if refusal:
        out.warnings.append(refusal)
        out.missing = f"run {run.run_id} {refusal.removeprefix('its ')}"
        out.refused = True
        return out
    if full is None:
        out.missing = (f"the console log of run {run.run_id} ({value}) is not in this repo; "
                       "commit the run with `octostore commit` where it ran to keep its log")
        out.warnings.append(f"its console log {value} is not in this repo")
        return out
    gz = full.endswith(".gz")
    marks = read_marks(index_path(full))
    exited = next((m for m in reversed(marks) if "exit" in m), None)
    try:
        size = (exited["o"] if exited is not None and gz else
                _gz_size(full) if gz else os.path.getsize(full))
    except OSError:
        size = 0
    live = exited is None and run.status == "RUNNING" and not gz and _writer_alive(marks)
    now = int(time.time() * 1000)
    if not marks or run.start_time is None or _overlaps(run, sharing, now):
        start, end, part = 0, None, "whole"
    else:
        start, end = _cut(marks, run.start_time, run.end_time, size)
        part = "run"
    start = min(start, size)
    rel = os.path.relpath(full, os.path.realpath(root)).replace(os.sep, "/")
    out.logs.append(LogRef(CONSOLE, "console", rel, full, gz, start, end, part, live, size))
    return out


def artifact_log(root: str, run: Run) -> LogRef | None:
    base = local_artifact_dir(run)
    if base is None:
        return None
    full = os.path.realpath(os.path.join(base, ARTIFACT_LOG))
    if not (full.startswith(base + os.sep) and os.path.isfile(full)):
        return None
    root_real = os.path.realpath(root)
    rel = os.path.relpath(full, root_real).replace(os.sep, "/") if _inside(root_real, full) \
        else full
    try:
        size = os.path.getsize(full)
    except OSError:
        return None
    return LogRef(ARTIFACT_LOG, "artifact", rel, full, False, 0, None, "whole", False, size)


def run_logs(root: str, run: Run, sharing: Iterable[Run]) -> Resolved:
    """Every log of ``run``: its console log (if tagged and here), then its console artifact.
    ``sharing``: the runs whose tag names the same log (see :class:`TagGroups`)."""
    out = console_log(root, run, sharing)
    art = artifact_log(root, run)
    if art is not None:
        out.logs.append(art)
    return out


class TagGroups:
    """Runs grouped by their console-log tag value, rebuilt when the index's clock moves."""

    def __init__(self) -> None:
        self._clock: object = None
        self._groups: dict[str, list[Run]] = {}
        self._lock = threading.Lock()

    def get(self, clock: object, runs: Iterable[Run], value: str | None) -> list[Run]:
        if value is None:
            return []
        with self._lock:
            if clock != self._clock:
                groups: dict[str, list[Run]] = {}
                for r in runs:
                    v = r.tags.get(TAG)
                    if v is not None:
                        groups.setdefault(v, []).append(r)
                self._groups, self._clock = groups, clock
            return self._groups.get(value, [])


# -- reading -----------------------------------------------------------------------------------
def _open(ref: LogRef) -> Any:
    return gzip.open(ref.full, "rb") if ref.gz else open(ref.full, "rb")


def current_size(ref: LogRef) -> int:
    """Bytes of the file now (a live log grows between requests)."""
    if ref.gz:
        return ref.file_size
    try:
        return os.path.getsize(ref.full)
    except OSError:
        return ref.file_size


def _is_cont(b: int) -> bool:
    return 0x80 <= b < 0xC0


def _char_len(b: int) -> int:
    return 2 if b < 0xE0 else 3 if b < 0xF0 else 4 if b < 0xF8 else 1


def utf8_cut(data: bytes, limit: int, final: bool) -> int:
    """How many bytes of ``data`` to take, at most ``limit`` (more only to finish a first
    character), never ending inside a multi-byte character unless ``final`` (no more bytes
    will come: the rest is decoded with replacement)."""
    n = min(limit, len(data))
    if n == len(data) and final:
        return n
    for i in range(n - 1, max(-1, n - 4), -1):
        b = data[i]
        if _is_cont(b):
            continue
        if b < 0xC0:
            return n  # ASCII (or an invalid byte): a boundary after it
        need = _char_len(b)
        if i + need <= n:
            return n
        if i > 0:
            return i
        if need <= len(data):
            return need  # a first character wider than the limit: take it whole
        return len(data) if final else 0
    return n


def read(ref: LogRef, offset: int, max_bytes: int, tail: int | None) -> dict[str, Any]:
    """Read the run's part from ``offset`` (bytes within the part), or its last ``tail`` bytes."""
    size_now = current_size(ref)
    end = size_now if ref.end is None else min(ref.end, size_now)
    part_size = max(0, end - ref.start)
    if tail is not None:
        offset = max(0, part_size - tail)
    offset = min(offset, part_size)
    want = min(max_bytes, part_size - offset)
    data = b""
    if part_size > offset:
        with _open(ref) as f:
            f.seek(ref.start + offset)
            data = f.read(min(want + 3, part_size - offset))
    skip = 0
    while skip < min(3, len(data)) and _is_cont(data[skip]) and ref.start + offset > 0:
        skip += 1  # started inside a character: begin at the next one
    if skip:
        data = data[skip:]
        offset += skip
        want = max(0, want - skip)
    final = not ref.live or ref.end is not None
    at_end = offset + len(data) >= part_size
    take = utf8_cut(data, want, final and at_end) if data else 0
    chunk = data[:take]
    nxt = offset + take
    return {"name": ref.name, "offset": offset, "next_offset": nxt, "size": part_size,
            "data": chunk.decode("utf-8", "replace"), "eof": nxt >= part_size,
            "live": ref.live}


def _blocks(ref: LogRef) -> Iterator[tuple[bytes, bool]]:
    """The part as blocks of whole lines (``\\n``-separated, the last one's ``\\n`` left
    out), one per read chunk; ``True`` when the block's last line goes on in the next block
    (a line over MAX_LINE_BYTES comes in pieces)."""
    size_now = current_size(ref)
    end = size_now if ref.end is None else min(ref.end, size_now)
    left = max(0, end - ref.start)
    rest = b""
    with _open(ref) as f:
        f.seek(ref.start)
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            buf = rest + chunk
            nl = buf.rfind(b"\n")
            if nl >= 0:
                yield buf[:nl], False
                rest = buf[nl + 1:]
            else:
                rest = buf
            while len(rest) > MAX_LINE_BYTES:
                cut = utf8_cut(rest, MAX_LINE_BYTES, False) or MAX_LINE_BYTES
                yield rest[:cut], True
                rest = rest[cut:]
    if rest:
        yield rest, False


_ANSI = re.compile(r"\x1b(?:\[[0-9;?:<=>]*[ -/]*[@-~]|\][^\x07\x1b\n]*(?:\x07|\x1b\\)|[ -/]*[0-~])")
"""Escape sequences (colours, cursor moves): grep matches what a terminal shows, so
``epoch 3 done`` finds ``\x1b[32mepoch 3 done\x1b[0m``."""


def visible(text: str) -> str:
    return _ANSI.sub("", text) if "\x1b" in text else text


class PatternError(ValueError):
    """A grep pattern RE2 cannot take; ``too_large`` when it is over RE2's size budget."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def compile_pattern(pattern: str) -> tuple[Any, Any]:
    """The pattern, and a MULTILINE twin that finds a chunk holding no match at all in one
    search (None when the pattern anchors to the whole text, ``\\A``).

    Patterns are RE2's (Python's ``re`` syntax without backreferences and lookaround): RE2
    matches in time linear in the text whatever the pattern, so a pattern from anyone (a
    view file in a repo, a script) cannot stop the daemon, as ``(a|aa)+$``-style patterns
    stop ``re``.  Raises :class:`PatternError` with RE2's reason."""
    import re2

    if len(pattern) > MAX_PATTERN:
        raise PatternError(f"the pattern has {len(pattern)} characters, more than {MAX_PATTERN}",
                           too_large=True)
    opts = re2.Options()
    opts.log_errors = False  # RE2 would print each refused pattern on the daemon's stderr
    opts.max_mem = RE2_MAX_MEM
    try:
        rx = re2.compile(pattern, opts)
        pre = None if "\\A" in pattern else re2.compile("(?m)" + pattern, opts)
    except re2.error as exc:
        why = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(
            exc.args[0], bytes) else str(exc)
        raise PatternError(why, too_large="too large" in why or "repetition size" in why) \
            from None
    finally:
        re2.purge()  # re2 caches 128 compiled patterns of up to RE2_MAX_MEM each: keep none
    return rx, pre


def grep(ref: LogRef, pattern: tuple[Any, Any], max_lines: int,
         deadline: float | None = None) -> dict[str, Any]:
    """Matching lines (at most ``max_lines``, and :data:`MAX_MATCH_BYTES` of text); raises
    :class:`GrepDeadline` past ``deadline`` (``time.monotonic()``)."""
    rx, pre = pattern
    matches: list[list[Any]] = []
    truncated = False
    line_no = 0
    prev_piece = False
    held = 0
    for block, cont in _blocks(ref):
        if deadline is not None and time.monotonic() > deadline:
            raise GrepDeadline(line_no)
        new_first = not prev_piece
        prev_piece = cont
        if pre is not None and pre.search(visible(block.decode("utf-8", "replace"))) is None:
            line_no += block.count(b"\n") + new_first  # no line here matches: count them
            continue
        for i, raw in enumerate(block.split(b"\n")):
            if i or new_first:
                line_no += 1
            text = raw.decode("utf-8", "replace")
            if rx.search(visible(text)) is None:
                continue
            if len(matches) >= max_lines or held >= MAX_MATCH_BYTES:
                truncated = True
                break
            shown = text if len(text) <= MAX_MATCH_CHARS else text[: MAX_MATCH_CHARS - 1] + "…"
            held += len(shown) + 16
            matches.append([line_no, shown])
        if truncated:
            break
    size_now = current_size(ref)
    end = size_now if ref.end is None else min(ref.end, size_now)
    return {"name": ref.name, "size": max(0, end - ref.start), "matches": matches,
            "truncated": truncated}



GREP_TIMEOUT = float(os.environ.get("OCTOSTORE_GREP_TIMEOUT", "30"))
"""Seconds a search may take (a log of gigabytes); past it the request ends with 1012."""
MAX_PATTERN = 4000
"""Characters a pattern may have."""
RE2_MAX_MEM = 8 * 1024 * 1024
"""Memory RE2 may use for one compiled pattern (its default); a bigger pattern is refused."""
MAX_MATCH_BYTES = 4 * 1024 * 1024
"""Characters of matching lines one reply carries at most (then ``truncated``): a 64 KB
gzip log of long lines once made a reply of hundreds of MB."""


class GrepDeadline(Exception):
    """The search ran past its deadline (``args[0]``: the lines searched)."""
