"""Deadlines on requests: no request waits forever, whatever a repo holds.

Repo files are opened without blocking (:mod:`octostored.safefile`), so no read should
hang; this is the second wall.  A handler awaited through :func:`within` answers
``DEADLINE_EXCEEDED`` (1012) once its time is up instead of leaving its client waiting.  The
work it awaited is cancelled; work already running in a thread cannot be stopped and
finishes on its own, but no client waits for it.

:func:`bound_features` puts the deadline on every ``octostore/*`` handler of a connection's
server at once (call it in ``make_server`` after the handlers are registered).
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from . import protocol
from .errors import DeadlineExceeded

T = TypeVar("T")

DEFAULT_SECONDS = 120.0
"""A request's deadline unless :data:`DEADLINES` says otherwise (``OCTOSTORE_REQUEST_DEADLINE``
overrides it): far above any honest request, which answers in milliseconds to seconds."""

DEADLINES: dict[str, float | None] = {
    m.name: m.deadline for m in protocol.METHOD_SPECS  # type: ignore[misc]
    if m.deadline != protocol.DEFAULT_DEADLINE
}
"""Methods with their own deadline (their spec's ``deadline``); None: no deadline.  commit
copies artifacts and may push through LFS (minutes are honest); sync waits for tracking servers
(``OCTOSTORE_REMOTE_SYNC_WAIT``); reproduce with ``wait`` answers when the job ends."""


def default_seconds() -> float:
    try:
        value = float(os.environ.get("OCTOSTORE_REQUEST_DEADLINE", ""))
    except ValueError:
        return DEFAULT_SECONDS
    return value if value > 0 else DEFAULT_SECONDS


def seconds_for(method: str) -> float | None:
    if method in DEADLINES:
        return DEADLINES[method]
    return default_seconds()


async def within(aw: Awaitable[T], seconds: float | None, what: str) -> T:
    """``await aw``, or raise :class:`DeadlineExceeded` after ``seconds`` (None: no limit)."""
    if seconds is None:
        return await aw
    try:
        async with asyncio.timeout(seconds):  # no task per request, unlike wait_for
            return await aw
    except TimeoutError:
        raise DeadlineExceeded(
            f"{what} did not finish within its {seconds:g} s deadline and was stopped",
            "the repo may hold a file that cannot be read (see `octostore daemon logs`);"
            " try again, or ask for less", seconds=seconds) from None


def bounded(method: str, handler: Callable[..., Awaitable[Any]],
            seconds: float | None) -> Callable[..., Awaitable[Any]]:
    """``handler`` (a coroutine function) answering :class:`DeadlineExceeded` after
    ``seconds``."""

    @functools.wraps(handler)
    async def run(*args: Any, **kwargs: Any) -> Any:
        return await within(handler(*args, **kwargs), seconds, method)

    return run


def bound_features(ls: Any, prefix: str = "octostore/") -> None:
    """Put :func:`seconds_for` deadlines on the coroutine handlers of ``ls`` (a pygls
    ``LanguageServer``) whose method starts with ``prefix``."""
    features = ls.protocol.fm.features
    for method, handler in list(features.items()):
        if not method.startswith(prefix) or not asyncio.iscoroutinefunction(handler):
            continue
        seconds = seconds_for(method)
        if seconds is not None:
            features[method] = bounded(method, handler, seconds)
