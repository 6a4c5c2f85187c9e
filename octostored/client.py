"""Clients for the daemon's socket: :class:`Client` (blocking) and :class:`AsyncClient`.

Both speak JSON-RPC 2.0 with LSP framing, start the daemon when none answers
(``octostored --detach``), check the protocol version once, and turn error
replies into :class:`RequestError` carrying the daemon's one-sentence message.
Notifications that arrive while waiting for a reply are buffered, so a
request never returns a notification (pywatchman's rule).

Only the standard library, orjson and the protocol's contract
(:mod:`octostored.rpc.protocol`, import-free) are imported: a CLI call's whole
budget is its start-up.

Examples
--------
>>> with Client() as c:                                   # doctest: +SKIP
...     runs = c.call("octostore/runs", root=".", filter="metrics.rmse < 0.7")
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson

from .paths import private_socket, repo_top, socket_path
from .rpc.protocol import PROTOCOL_VERSION  # the protocol this client speaks (= the daemon's)


class OctostoreClientError(Exception):
    """Base class of every client error; ``str()`` is a sentence for a person."""


class DaemonUnavailable(OctostoreClientError):
    pass


class ProtocolMismatch(OctostoreClientError):
    pass


class RequestError(OctostoreClientError):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class Timeout(OctostoreClientError):
    pass


def _frame(obj: dict[str, Any]) -> bytes:
    body = orjson.dumps(obj)
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def start_daemon(sock: str, timeout: float = 20.0) -> None:
    """Start ``octostored --detach`` for ``sock`` and wait until it answers."""
    # `python -m` puts the current folder first on sys.path: started from inside a cloned repo
    # the launcher would import that repo's argparse.py. -P drops that entry; the package's
    # own parent goes on PYTHONPATH for a source checkout that is not installed.
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.run(
            [sys.executable, "-P", "-m", "octostored.daemon", "--socket", sock, "--detach"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
            cwd="/", env=env,
        )
    except subprocess.TimeoutExpired:
        raise DaemonUnavailable(f"the daemon did not start within {timeout:.0f} s") from None
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["it exited with an error"])[-1]
        raise DaemonUnavailable(f"could not start the daemon: {msg}")


class Client:
    """A blocking client.  ``autostart`` starts the daemon when none answers."""

    def __init__(self, path: str | None = None, *, autostart: bool = True, timeout: float = 60.0,
                 check_version: bool = True) -> None:
        self.path = private_socket(os.path.abspath(path)) if path else socket_path()
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._buf = b""
        self.notifications: collections.deque[dict[str, Any]] = collections.deque()
        try:
            self._sock = self._connect()
        except DaemonUnavailable:
            if not autostart:
                raise
            start_daemon(self.path)
            self._sock = self._connect()
        if check_version and autostart:
            self._check_version()

    def _connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            raise DaemonUnavailable(f"no daemon at {self.path}; start one with `octostored --detach`") from None
        except OSError as exc:
            s.close()
            raise DaemonUnavailable(f"cannot reach the daemon at {self.path} ({exc.strerror})") from None
        s.settimeout(self.timeout)
        return s

    def _check_version(self) -> None:
        st = self.call("octostore/status")
        if st.get("protocol_version") != PROTOCOL_VERSION:
            raise ProtocolMismatch(
                f"the daemon speaks protocol {st.get('protocol_version')} and this client "
                f"{PROTOCOL_VERSION}; restart it with `octostore daemon restart`")

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self._sock.sendall(data)

    def call(self, method: str, params: dict[str, Any] | None = None, /, *,
             timeout: float | None = None, **kw: Any) -> Any:
        """Send a request and return its result; raise :class:`RequestError` on an error reply."""
        mid = next(self._ids)
        payload = {**(params or {}), **kw}
        try:
            self._sock.sendall(_frame({"jsonrpc": "2.0", "id": mid, "method": method,
                                       "params": payload}))
        except OSError as exc:
            raise DaemonUnavailable(f"lost the daemon ({exc.strerror or exc})") from None
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            msg = self._read(deadline)
            if msg.get("id") == mid and "method" not in msg:
                if "error" in msg:
                    e = msg["error"]
                    raise RequestError(e.get("code", 0), e.get("message", "error"), e.get("data"))
                return msg.get("result")
            if "method" in msg and "id" not in msg:
                self.notifications.append(msg)

    def wait_notification(self, method: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        """Next notification (optionally of ``method``); raise :class:`Timeout` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for i, n in enumerate(self.notifications):
                if method is None or n.get("method") == method:
                    del self.notifications[i]
                    return n
            msg = self._read(deadline)
            if "method" in msg and "id" not in msg:
                self.notifications.append(msg)

    def _read(self, deadline: float) -> dict[str, Any]:
        while True:
            head, sep, rest = self._buf.partition(b"\r\n\r\n")
            if sep:
                length = None
                for line in head.split(b"\r\n"):
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                if length is not None and len(rest) >= length:
                    self._buf = rest[length:]
                    return orjson.loads(rest[:length])
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("the daemon did not answer in time")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(1 << 20)
            except socket.timeout:
                raise Timeout("the daemon did not answer in time") from None
            except OSError as exc:
                raise DaemonUnavailable(f"lost the daemon ({exc.strerror or exc})") from None
            if not chunk:
                raise DaemonUnavailable("the daemon closed the connection")
            self._buf += chunk

    def iter_notifications(self, method: str | None = None) -> Iterator[dict[str, Any]]:
        while True:
            yield self.wait_notification(method, timeout=365 * 86400)


class AsyncClient:
    """An asyncio client; ``notifications`` is a queue of pushed messages."""

    def __init__(self, path: str | None = None, *, timeout: float = 60.0) -> None:
        self.path = private_socket(os.path.abspath(path)) if path else socket_path()
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.notifications: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, autostart: bool = True) -> AsyncClient:
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(self.path, limit=2**26)
        except (FileNotFoundError, ConnectionRefusedError):
            if not autostart:
                raise DaemonUnavailable(f"no daemon at {self.path}; start one with `octostored --detach`") from None
            await asyncio.to_thread(start_daemon, self.path)
            self._reader, self._writer = await asyncio.open_unix_connection(self.path, limit=2**26)
        self._task = asyncio.create_task(self._read_loop())
        st = await self.call("octostore/status")
        if st.get("protocol_version") != PROTOCOL_VERSION:
            raise ProtocolMismatch(
                f"the daemon speaks protocol {st.get('protocol_version')} and this client "
                f"{PROTOCOL_VERSION}; restart it with `octostore daemon restart`")
        return self

    async def __aenter__(self) -> AsyncClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    @property
    def connected(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                length = None
                while True:
                    line = await self._reader.readline()
                    if not line:
                        raise ConnectionError("closed")
                    if line in (b"\r\n", b"\n"):
                        break
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                if length is None:
                    continue
                msg = orjson.loads(await self._reader.readexactly(length))
                if "method" in msg and "id" not in msg:
                    self.notifications.put_nowait(msg)
                    continue
                fut = self._pending.pop(msg.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(DaemonUnavailable("the daemon closed the connection"))
            self._pending.clear()
            self.notifications.put_nowait({"method": "octostore/disconnected", "params": {}})

    async def call(self, method: str, params: dict[str, Any] | None = None, /, *,
                   timeout: float | None = None, **kw: Any) -> Any:
        if self._writer is None or not self.connected:
            raise DaemonUnavailable("not connected to the daemon")
        mid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[mid] = fut
        self._writer.write(_frame({"jsonrpc": "2.0", "id": mid, "method": method,
                                   "params": {**(params or {}), **kw}}))
        try:
            msg = await asyncio.wait_for(fut, timeout or self.timeout)
        except asyncio.TimeoutError:
            self._pending.pop(mid, None)
            raise Timeout("the daemon did not answer in time") from None
        if "error" in msg:
            e = msg["error"]
            raise RequestError(e.get("code", 0), e.get("message", "error"), e.get("data"))
        return msg.get("result")

    async def iter_notifications(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.notifications.get()


def default_root(cwd: str | None = None) -> str:
    """The git work tree containing ``cwd``, else ``cwd``."""
    return repo_top(os.path.abspath(cwd or os.getcwd()))
