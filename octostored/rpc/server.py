"""The socket server: accept loop, one pygls server per connection, broadcast.

pygls has no Unix-socket transport and its ``start_tcp`` serves one client
(STACK.md §1), so the daemon runs its own ``asyncio.start_unix_server`` and
builds a fresh ``LanguageServer`` per connection; all of them share one
:class:`~octostored.hub.Hub` (the daemon's state; this module only adds and removes
connections).  The read loop is our own rather than
``pygls.io_.run_async``: it accepts any header case, caps the body size,
answers a body that is not JSON with a parse error instead of hanging, and
keeps ``octostore/*`` params as plain dicts (pygls would turn them into
namedtuples, renaming keys such as ``params.model``).  Replies are encoded with
orjson in a hand-built envelope (10x faster for big tables than json + cattrs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import time
from typing import Any

import orjson
from pygls.protocol.json_rpc import JsonRPCNotification, JsonRPCRequestMessage

from ..hub import CONNECTION, Hub
from . import protocol
from .connection import (  # noqa: F401
    MAX_PENDING,
    MAX_PENDING_BYTES,
    MAX_REPLY,
    MAX_WRITE_BUFFER,
    ConnProtocol,
    _send_error,
)

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024 * 1024
"""Largest request body accepted; a bigger one closes the connection.  Requests are small
(params, or one source file for LSP): this bounds what one connection can make us hold."""
MAX_HEADER_LINES = 32
BIG_BODY = 1024 * 1024
"""A body above this size counts against :data:`MAX_RECEIVING` while it arrives."""
MAX_RECEIVING = 64 * 1024 * 1024
"""Bytes of big bodies all connections together may be receiving at once; a connection whose
body would pass it is answered 1009 and closed (200 stalled 15 MB frames once held 2.85 GB)."""
BODY_STALL_SECONDS = float(os.environ.get("OCTOSTORE_BODY_STALL", "10"))
"""A body must keep arriving: no byte for this long closes the connection (and frees what
arrived); the whole body must arrive within this plus one second per MiB."""


_receiving = 0
"""Bytes of big bodies being received now, over all connections (see MAX_RECEIVING)."""


async def serve_connection(hub: Hub, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
    """Serve one client: its own pygls server over ``hub``'s shared state, until it goes."""
    sock = writer.get_extra_info("socket")
    if sock is not None and not _peer_is_us(sock):
        log.warning("refused a connection from another user")
        writer.close()
        return
    from .handlers import make_server

    ls = make_server(hub)
    ls.protocol.set_writer(writer)  # type: ignore[arg-type]
    ls.protocol.pending = {}  # type: ignore[attr-defined]
    ls.protocol.drained = asyncio.Event()  # type: ignore[attr-defined]
    CONNECTION.set(ls.protocol)
    hub.connect(ls)
    try:
        await read_loop(reader, ls.protocol)  # type: ignore[arg-type]
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
        pass
    finally:
        hub.disconnect(ls)
        for fut in list(ls.protocol._request_futures.values()):
            fut.cancel()
        try:
            writer.close()
        except Exception:
            pass


def _peer_is_us(sock: socket.socket) -> bool:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return True  # platforms without SO_PEERCRED rely on the 0700 folder
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


async def read_loop(reader: asyncio.StreamReader, proto: ConnProtocol) -> None:
    """Read LSP-framed JSON-RPC messages until EOF or broken framing.

    Broken framing (no or a bad ``Content-Length``, a header line over the reader's limit,
    too many header lines, a body over :data:`MAX_BODY`) gets one error reply, when there is
    a way to say it, and the connection is closed: after it the byte stream cannot be
    trusted to find the next message.
    """
    while True:
        length: int | None = None
        problem = ""
        for _ in range(MAX_HEADER_LINES):
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):  # a line over the reader's limit
                _send_error(proto, None, -32600, "a header line is too long; frame each "
                            "message as 'Content-Length: N\\r\\n\\r\\n' + N bytes of JSON")
                return
            if not line:
                return
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    problem = f"Content-Length {value.strip()[:40]!r} is not a number"
                if length is not None and length < 0:
                    problem = f"Content-Length {length} is negative"
        else:
            problem = f"more than {MAX_HEADER_LINES} header lines"
        if not problem and length is None:
            problem = "a message without a Content-Length header"
        if problem:
            _send_error(proto, None, -32600, f"broken framing: {problem}; frame each message as "
                        "'Content-Length: N\\r\\n\\r\\n' + N bytes of JSON. Closing the connection")
            return
        assert length is not None
        if length > MAX_BODY:
            _send_error(proto, None, protocol.REQUEST_TOO_LARGE, f"request body of {length} "
                        f"bytes is over the {MAX_BODY} byte limit; send smaller requests. "
                        "Closing the connection")
            return
        body = await _read_body(reader, proto, length)
        if body is None:
            return
        await _wait_for_room(proto)
        handle_body(proto, body)


async def _read_body(reader: asyncio.StreamReader, proto: ConnProtocol, length: int) -> bytes | None:
    """The body's ``length`` bytes, or None (the connection is to be closed) when it would
    pass :data:`MAX_RECEIVING` or stops arriving (:data:`BODY_STALL_SECONDS`)."""
    global _receiving
    big = length > BIG_BODY
    parts: list[bytes] = []
    if big:
        if _receiving + length > MAX_RECEIVING:
            _send_error(proto, None, protocol.REQUEST_TOO_LARGE, f"the daemon is receiving "
                        f"{_receiving} bytes of other large requests and cannot take {length} "
                        "more now; send smaller requests, or try again. Closing the connection")
            return None
        _receiving += length
    try:
        deadline = time.monotonic() + BODY_STALL_SECONDS + length / (1024 * 1024)
        if not big:
            if len(getattr(reader, "_buffer", b"")) >= length:
                # Arrived whole with its header (nearly every request): no timer to arm.
                return await reader.readexactly(length)
            async with asyncio.timeout(min(BODY_STALL_SECONDS * 3, deadline - time.monotonic())):
                return await reader.readexactly(length)
        got = 0
        while got < length:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            async with asyncio.timeout(min(left, BODY_STALL_SECONDS)):
                chunk = await reader.read(min(length - got, 1024 * 1024))
            if not chunk:
                return None
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)
    except TimeoutError:
        log.info("closing a connection whose request body stopped arriving")
        _send_error(proto, None, -32600, f"the request body of {length} bytes stopped arriving; "
                    "send each message whole. Closing the connection")
        return None
    finally:
        if big:
            _receiving -= length
            parts = []  # noqa: F841 - drop what arrived before the heap is trimmed
            if not _receiving:
                _trim_heap()


def _trim_heap() -> None:
    """Give freed heap memory back to the system (glibc keeps it otherwise: the bodies of
    stalled clients would stay in the daemon's RSS after they are gone)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None


async def _wait_for_room(proto: ConnProtocol) -> None:
    """Wait while this connection has too many requests (or bytes of them) being worked on."""
    pending = getattr(proto, "pending", None)
    if pending is None:
        return
    while len(pending) >= MAX_PENDING or sum(pending.values()) >= MAX_PENDING_BYTES:
        proto.drained.clear()
        transport = getattr(proto.writer, "transport", None)
        if transport is not None and transport.is_closing():
            raise ConnectionError("the connection closed")
        try:
            await asyncio.wait_for(proto.drained.wait(), 1.0)
        except TimeoutError:
            pass


def handle_body(proto: ConnProtocol, body: bytes) -> None:
    try:
        msg = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        _send_error(proto, None, -32700, f"the request is not valid JSON ({exc}); send one "
                    "JSON-RPC 2.0 object per message")
        return
    if not isinstance(msg, dict):
        what = "a batch (a JSON array)" if isinstance(msg, list) else "not a JSON object"
        _send_error(proto, None, -32600, f"the request is {what}; send one JSON-RPC 2.0 "
                    "object per message")
        return
    mid = msg.get("id")
    method = msg.get("method")
    if "id" in msg and (not isinstance(mid, (int, str)) or isinstance(mid, bool)) and (
            mid is not None or "method" in msg):
        _send_error(proto, None, -32600, "'id' must be an integer or a string")
        return
    if "method" in msg and not isinstance(method, str):
        _send_error(proto, mid, -32600, "'method' must be a string")
        return
    if msg.get("jsonrpc") != "2.0":
        _send_error(proto, mid, -32600, "the request must have \"jsonrpc\": \"2.0\"")
        return
    if getattr(proto, "_shutdown", False) and isinstance(method, str) and method != "exit":
        # pygls drops every message after an LSP shutdown without a word: the client would
        # wait forever.  Only this connection is shutting down; say so.
        if "id" in msg:
            _send_error(proto, mid, -32600, f"cannot handle {method}: this connection received "
                        "'shutdown'; send 'exit' and open a new connection")
        return
    pending = getattr(proto, "pending", None)
    if pending is not None and "id" in msg and isinstance(method, str):
        pending[mid] = len(body)
    try:
        if isinstance(method, str) and method.startswith("octostore/"):
            if "id" in msg:
                if proto.dispatch(mid, method, msg.get("params")):
                    return
                message: Any = JsonRPCRequestMessage(id=mid, method=method, jsonrpc="2.0",
                                                     params=msg.get("params"))
            else:
                message = JsonRPCNotification(method=method, jsonrpc="2.0", params=msg.get("params"))
        else:
            message = proto.structure_message(msg)
        proto.handle_message(message)
    except Exception as exc:  # bad params for an LSP method, or a bug: answer, never hang
        log.debug("cannot handle a message", exc_info=True)
        proto._done(mid)
        if "id" in msg and isinstance(method, str):
            code = getattr(exc, "code", -32603)
            _send_error(proto, mid, code if isinstance(code, int) else -32603,
                        f"cannot handle {method}: {getattr(exc, 'message', None) or exc}")
