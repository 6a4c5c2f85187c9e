"""The TUI's one connection to ``octostored``: connect, open the root, subscribe, relay.

:class:`DaemonLink` owns the :class:`octostored.client.AsyncClient`.  Its
connection loop runs as the app's worker ``exclusive=True, group="daemon"``
(what ``@work`` would do; the link is a plain object rather than a widget so that
it outlives every screen).  The loop starts the daemon when none answers,
opens the root, subscribes to ``octostore/changed`` and turns each notification
into a :class:`~octostore_tui.messages.RunsChanged` posted to every screen that
listens; the message coalesces floods with ``can_replace``.  When the daemon goes
away the loop says so (:class:`~octostore_tui.messages.DaemonLost`) and
reconnects with backoff; listeners then get ``RunsChanged(fresh=True)`` because
their clocks name the old daemon instance.

Screens call :meth:`DaemonLink.call` from their own workers.  Every client error
becomes a :class:`LinkError` with a title and one sentence saying what to do,
which the app shows with ``notify``; nothing reaches the user as a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from octostored.client import (
    AsyncClient,
    DaemonUnavailable,
    OctostoreClientError,
    ProtocolMismatch,
    RequestError,
    Timeout,
)
from octostored.rpc.protocol import (  # noqa: F401 - BAD_FILTER: the screens import it here
    BAD_FILTER,
    ERROR_TITLES,
    NOTIFICATION_CHANGED,
    ROOT_NOT_FOUND,
)

from .messages import DaemonLost, DaemonReady, RunsChanged

if TYPE_CHECKING:
    from textual.app import App
    from textual.message_pump import MessagePump

    from .prestart import DaemonStarter

ClientFactory = Callable[[], AsyncClient]

RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0)
"""Seconds between reconnection attempts (the last one repeats)."""

_TITLES = ERROR_TITLES
"""Error code -> the heading shown above its message (others: "Daemon error")."""


class LinkError(Exception):
    """A failure a person can act on: ``title`` and ``message`` (one sentence)."""

    def __init__(self, title: str, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.title = title
        self.message = message
        self.code = code


def link_error(exc: BaseException) -> LinkError:
    """Translate a client error into a :class:`LinkError`."""
    if isinstance(exc, LinkError):
        return exc
    if isinstance(exc, RequestError):
        return LinkError(_TITLES.get(exc.code, "Daemon error"), _sentence(exc.message), exc.code)
    if isinstance(exc, ProtocolMismatch):
        return LinkError("Daemon version mismatch", _sentence(str(exc)))
    if isinstance(exc, Timeout):
        return LinkError(
            "Daemon did not answer",
            "The daemon did not answer in time; check `octostore daemon status`.",
        )
    if isinstance(exc, DaemonUnavailable):
        return LinkError("Daemon unreachable", _sentence(str(exc)))
    if isinstance(exc, OctostoreClientError):
        return LinkError("Daemon error", _sentence(str(exc)))
    return LinkError("Unexpected error", _sentence(f"{type(exc).__name__}: {exc}"))


def _sentence(text: str) -> str:
    text = " ".join(str(text).split())
    if not text:
        return "Something went wrong."
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


class DaemonLink:
    """The connection to the daemon for one root."""

    def __init__(
        self,
        root: str,
        socket_path: str | None = None,
        *,
        client_factory: ClientFactory | None = None,
        autostart: bool = True,
        timeout: float = 30.0,
        starter: DaemonStarter | None = None,
    ) -> None:
        self.root = root
        """The folder asked for; the daemon answers with its repo top (``root_path``)."""
        self.root_path = root
        self.socket_path = socket_path
        self.autostart = autostart
        self.timeout = timeout
        self._factory = client_factory or (lambda: AsyncClient(socket_path, timeout=timeout))
        self.client: AsyncClient | None = None
        self.info: dict[str, Any] | None = None
        """The last ``octostore/open`` reply."""
        self.error: LinkError | None = None
        """Why the link is down (None while connecting or connected)."""
        self.fatal = False
        """True when retrying cannot help (the folder does not exist)."""
        self.clock: str | None = None
        self._ready: asyncio.Event | None = None
        self._listeners: list[MessagePump] = []
        self._app: App[Any] | None = None
        self._starter = starter
        """A daemon start already under way (see :mod:`octostore_tui.prestart`)."""

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, app: App[Any]) -> None:
        """Run the connection loop as the app's exclusive ``daemon`` worker."""
        self._app = app
        self._ready = asyncio.Event()
        app.run_worker(
            self._run(), name="daemon-link", group="daemon", exclusive=True, exit_on_error=False
        )

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.close()

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected

    def listen(self, node: MessagePump) -> None:
        if node not in self._listeners:
            self._listeners.append(node)

    def unlisten(self, node: MessagePump) -> None:
        if node in self._listeners:
            self._listeners.remove(node)

    def _broadcast(self, params: dict[str, Any], fresh: bool = False) -> None:
        for node in list(self._listeners):
            node.post_message(RunsChanged.from_params(params, fresh=fresh))

    def _post(self, make: Callable[[], Any]) -> None:
        """Post a fresh message from ``make`` to the app and to every listener."""
        if self._app is not None:
            self._app.post_message(make())
        for node in list(self._listeners):
            node.post_message(make())

    async def _connect(self) -> tuple[AsyncClient, dict[str, Any]]:
        starter, self._starter = self._starter, None
        if starter is not None:
            # If that start failed, connect() below starts the daemon again and says why.
            await asyncio.to_thread(starter.wait, self.timeout)
        client = self._factory()
        try:
            await client.connect(autostart=self.autostart)
            info = await client.call("octostore/open", root=self.root)
            await client.call("octostore/subscribe", root=info["root"], name="octostore-tui")
        except BaseException:
            await client.close()
            raise
        return client, info

    async def _run(self) -> None:
        assert self._ready is not None
        attempt = 0
        connected_before = False
        while True:
            try:
                client, info = await self._connect()
            except (OctostoreClientError, OSError) as exc:
                err = link_error(exc)
                if isinstance(exc, RequestError) and exc.code == ROOT_NOT_FOUND:
                    self.fatal = True
                self.error = err
                self._ready.set()  # wake waiting callers: they raise self.error
                self._post(lambda e=err: DaemonLost(e.title, e.message))
                if self.fatal:
                    return
                await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
                attempt += 1
                self._ready.clear()
                continue
            attempt = 0
            self.client, self.info, self.error = client, info, None
            self.root_path = info.get("root", self.root)
            self.clock = info.get("clock")
            self._ready.set()
            self._post(lambda i=info: DaemonReady(i))
            if connected_before:
                self._broadcast({"root": self.root_path, "clock": self.clock}, fresh=True)
            connected_before = True
            while True:
                note = await client.notifications.get()
                method = note.get("method")
                if method == "octostore/disconnected":
                    break
                if method == NOTIFICATION_CHANGED:
                    params = note.get("params") or {}
                    if params.get("root") == self.root_path:
                        self.clock = params.get("clock", self.clock)
                        self._broadcast(params)
            self.client = None
            self._ready.clear()
            await client.close()
            self.error = LinkError(
                "Lost the daemon",
                "The daemon closed the connection; reconnecting (press r to retry now).",
            )
            lost = self.error
            self._post(lambda e=lost: DaemonLost(e.title, e.message))

    def retry(self) -> None:
        """Reconnect now (after a failure)."""
        if self._app is not None and not self.connected:
            self.fatal = False
            self.start(self._app)

    # -- requests -------------------------------------------------------------------------
    async def call(self, method: str, /, **params: Any) -> Any:
        """Call ``method`` on the daemon (``root`` filled in); raise :class:`LinkError`."""
        client = self.client
        if client is None or not client.connected:
            if self.error is not None and (
                self.fatal or self._ready is None or self._ready.is_set()
            ):
                raise self.error
            if self._ready is None:
                raise LinkError("Not connected", "The daemon link has not started.")
            try:
                await asyncio.wait_for(self._ready.wait(), self.timeout)
            except TimeoutError:
                raise LinkError(
                    "Daemon unreachable",
                    "No daemon answered in time; start one with `octostored --detach`.",
                ) from None
            client = self.client
            if client is None:
                raise self.error or LinkError("Daemon unreachable", "No daemon answered.")
        if method != "octostore/status":
            params.setdefault("root", self.root_path)
        try:
            return await client.call(method, params)
        except (OctostoreClientError, OSError) as exc:
            raise link_error(exc) from None
