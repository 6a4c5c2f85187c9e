"""log: a run's console log, read by byte range or searched with a regex (RE2: linear time).

Clients follow a live log by polling from ``next_offset`` while ``live`` is true.
Resolving and reading are :mod:`octostored.console.reader`; this module checks the
params and words the errors.
"""

from __future__ import annotations

import asyncio
import time
import weakref
import zlib
from typing import TYPE_CHECKING, Any

from ...console import reader as logs_mod
from ..errors import DeadlineExceeded, InvalidParams, LogNotFound, PathOutside, RequestTooLarge
from ..params import Params
from ..register import rooted
from .lookup import find_run

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from ...index.root import Root
    from ...model import Run
    from ...hub import Hub


_GROUPS: weakref.WeakKeyDictionary[Root, logs_mod.TagGroups] = weakref.WeakKeyDictionary()
"""Per open root: runs grouped by console-log tag (to tell whether runs of one log overlap);
gone with the root when it is closed."""


def sharing(root: Root, run: Run) -> list[Run]:
    """The runs tagged with the same log as ``run`` (on the event loop: reads the index)."""
    groups = _GROUPS.setdefault(root, logs_mod.TagGroups())
    return groups.get(root.index.clock, root.index.runs.values(), run.tags.get(logs_mod.TAG))


async def resolve(root: Root, run: Run) -> logs_mod.Resolved:
    """The run's logs (the files are looked at in a thread)."""
    return await asyncio.to_thread(logs_mod.run_logs, root.path, run, sharing(root, run))


def _pick(run: Run, res: logs_mod.Resolved, name: str | None) -> logs_mod.LogRef:
    if name is None and res.logs:
        return res.logs[0]
    for ref in res.logs:
        if ref.name == name:
            return ref
    if res.refused and name in (None, logs_mod.CONSOLE):
        raise PathOutside(res.missing or f"the console log of run {run.run_id} is refused",
                          "fix the run's octostore.console_log tag")
    if res.missing and name in (None, logs_mod.CONSOLE):
        raise LogNotFound(res.missing)
    if name is not None and res.logs:
        names = ", ".join(r.name for r in res.logs)
        raise LogNotFound(f"run {run.run_id} has no log named {name!r} (it has {names})",
                          "pass one of those names")
    raise LogNotFound(f"run {run.run_id} has no console log",
                      "run it with `octostore run -- CMD` to keep one")


def register(ls: LanguageServer, daemon: Hub) -> None:
    @rooted(ls, daemon, "octostore/log")
    async def log(ls: LanguageServer, p: Params, root: Root) -> dict[str, Any]:
        run = find_run(root, p.str("run_id", required=True) or "")
        name = p.str("name")
        pattern = p.str("grep")
        offset = p.int("offset", 0, lo=0) or 0
        max_bytes = p.int("max_bytes", logs_mod.DEFAULT_MAX_BYTES, lo=1,
                          hi=logs_mod.MAX_READ) or 1
        tail = p.int("tail", None, lo=0)
        max_lines = p.int("max_lines", logs_mod.DEFAULT_MAX_LINES, lo=1,
                          hi=logs_mod.MAX_LINES) or 1
        rx = None
        if pattern is not None:
            try:
                rx = logs_mod.compile_pattern(pattern)
            except logs_mod.PatternError as exc:
                if exc.too_large:
                    raise RequestTooLarge(f"octostore/log: the pattern is too large ({exc})",
                                          "write a shorter pattern") from None
                raise InvalidParams(f"{pattern[:100]!r} is not a valid regular expression "
                                    f"({exc})", "fix it: the syntax is Python's without "
                                    "backreferences or lookaround (RE2)") from None

        others = sharing(root, run)

        def cannot_read(ref: logs_mod.LogRef, why: object) -> LogNotFound:
            return LogNotFound(f"the log {ref.path} of run {run.run_id} cannot be read ({why})",
                               "check the file, then try again")

        def work() -> dict[str, Any] | logs_mod.LogRef:
            ref = _pick(run, logs_mod.run_logs(root.path, run, others), name)
            try:
                if rx is None:
                    return logs_mod.read(ref, offset, max_bytes, tail)
                return logs_mod.grep(ref, rx, max_lines, deadline)
            except (OSError, EOFError, zlib.error) as exc:
                raise cannot_read(ref, exc) from None
            except logs_mod.GrepDeadline as exc:
                raise DeadlineExceeded(
                    f"octostore/log: searching took more than {logs_mod.GREP_TIMEOUT:g} s and "
                    f"was stopped after {exc.args[0]} lines", "search a smaller part of the log "
                    "(tail it, or ask for fewer matching lines)") from None

        deadline = time.monotonic() + logs_mod.GREP_TIMEOUT
        out = await asyncio.to_thread(work)
        return {"run_id": run.run_id, **out}
