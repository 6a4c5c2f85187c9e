"""One connection's JSON-RPC protocol: orjson replies, dict params, caps on what it holds.

:class:`ConnProtocol` is pygls's ``LanguageServerProtocol`` with the daemon's rules: replies
are encoded with orjson in a hand-built envelope (10x faster for big tables than json +
cattrs), a reply over :data:`MAX_REPLY` is answered 1010, a handler's crash is one log line
and a -32603 answer, and the requests one connection has in flight are counted (the read
loop in :mod:`.server` waits while there are too many).  The socket layer builds one per
connection (:func:`.handlers.make_server`); this module imports neither of them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from lsprotocol import types as lsp
from lsprotocol.types import ResponseErrorMessage
from pygls.exceptions import JsonRpcException
from pygls.protocol import LanguageServerProtocol, default_converter, lsp_method
from pygls.protocol.json_rpc import JsonRPCNotification, JsonRPCResponseMessage

from .errors import ReplyTooLarge

if TYPE_CHECKING:
    from ..hub import Hub

log = logging.getLogger("octostored.rpc.server")


MAX_PENDING = 256
MAX_PENDING_BYTES = 32 * 1024 * 1024
"""Requests (and their bytes) of one connection being worked on at once; past either, the
connection is not read until some are answered (a client that pipelines without reading
replies waits, and is dropped once :data:`MAX_WRITE_BUFFER` of replies waits for it)."""
MAX_REPLY = int(os.environ.get("OCTOSTORE_MAX_REPLY", str(32 * 1024 * 1024)))
"""Largest reply sent; a bigger one is answered 1010 (ask for a smaller page)."""
MAX_WRITE_BUFFER = 32 * 1024 * 1024
"""A client that stops reading is dropped once this much is queued for it."""
_CONVERTER = default_converter()
"""One converter for every connection: building one per connection costs ~8 ms."""


class ConnProtocol(LanguageServerProtocol):
    """Per-connection protocol: orjson out, dict params in, ``exit`` closes only this link."""

    daemon: Hub

    @lsp_method(lsp.EXIT)
    def lsp_exit(self, *args: Any):  # type: ignore[override]
        if (h := self.fm.features.get(lsp.EXIT)) is not None:
            yield h, args, None
        if self.writer is not None:
            self.writer.close()  # type: ignore[union-attr]

    pending: dict[Any, int]
    drained: asyncio.Event

    def _send_handler_result(self, future: Any, *, msg_id: Any) -> None:  # type: ignore[override]
        """pygls logs a full traceback for a handler's crash; log one short line instead (a
        client repeating the request must not grow the log by a traceback each time)."""
        exc = None if future.cancelled() else future.exception()
        if exc is None or isinstance(exc, JsonRpcException):
            super()._send_handler_result(future, msg_id=msg_id)
            return
        self._request_futures.pop(msg_id, None)
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}" if tb else "?"
        text = f"{type(exc).__name__}: {str(exc)[:200]}"
        log.error("request %r failed: %s (at %s)", str(msg_id)[:40], text, where)
        _send_error(self, msg_id, -32603, f"the daemon failed on this request ({text}); "
                    "report this as a bug")

    def dispatch(self, mid: Any, method: str, params: Any) -> bool:
        """Run the ``octostore/*`` request ``mid`` straight on its handler; False when there
        is none (pygls then answers method-not-found).

        pygls's own path tests the message against typing Protocols, copies the context
        and wraps a sync handler's result in a thread-safe Future: a fifth of a status
        request's time.  The answer goes out the same way (:meth:`_send_handler_result`), a
        coroutine handler is a task in :attr:`_request_futures` (cancellable as before), and
        it runs in the connection's context (:data:`~octostored.hub.CONNECTION`)."""
        handler = self.fm.features.get(method)
        if handler is None:
            return False
        loop = asyncio.get_running_loop()
        if inspect.iscoroutinefunction(handler):
            task = loop.create_task(handler(params))
            self._request_futures[mid] = task
            task.add_done_callback(partial(self._send_handler_result, msg_id=mid))
            return True
        fut = loop.create_future()
        try:
            fut.set_result(handler(params))
        except Exception as exc:  # answered as pygls would: an error, never a hang
            fut.set_exception(exc)
        self._send_handler_result(fut, msg_id=mid)
        return True

    def _done(self, mid: Any) -> None:
        pending = getattr(self, "pending", None)
        if pending and pending.pop(mid, None) is not None and \
                len(pending) < MAX_PENDING and sum(pending.values()) < MAX_PENDING_BYTES:
            self.drained.set()

    def _send_data(self, data: Any) -> None:
        if not data or self.writer is None:
            return
        mid = getattr(data, "id", None) if isinstance(
            data, (JsonRPCResponseMessage, ResponseErrorMessage)) else None
        if mid is not None:
            self._done(mid)
        if isinstance(data, JsonRPCResponseMessage):
            env: Any = {"jsonrpc": "2.0", "id": data.id, "result": data.result}
        elif isinstance(data, JsonRPCNotification):
            env = {"jsonrpc": "2.0", "method": data.method, "params": data.params}
        else:
            env = self._converter.unstructure(data)
        try:
            body = orjson.dumps(env, default=self._default)
        except TypeError as exc:
            log.error("cannot encode a reply: %s", exc)
            mid = getattr(data, "id", None)
            body = orjson.dumps({"jsonrpc": "2.0", "id": mid, "error": {
                "code": -32603, "message": f"the daemon could not encode its reply ({exc}); "
                "report this as a bug"}})
        if len(body) > MAX_REPLY and mid is not None:
            size = len(body)
            del body, env
            err = ReplyTooLarge(
                f"the reply would be {size // (1024 * 1024)} MiB, over the "
                f"{MAX_REPLY // (1024 * 1024)} MiB limit",
                "ask for less: a smaller page with limit and offset, fewer runs, keys or points",
                size=size, limit=MAX_REPLY)
            body = orjson.dumps({"jsonrpc": "2.0", "id": mid, "error": {
                "code": err.code, "message": err.message, "data": err.data}})
        header = f"Content-Length: {len(body)}\r\n\r\n".encode()
        writer = self.writer
        transport = getattr(writer, "transport", None)
        if transport is not None and transport.is_closing():
            return
        if transport is not None and transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            # close() would wait to flush what the client never reads: abort drops it now.
            log.warning("dropping a client that stopped reading")
            transport.abort()
            return
        writer.write(header + body)  # type: ignore[union-attr]

    def _default(self, obj: Any) -> Any:
        if hasattr(obj, "__attrs_attrs__"):
            return self._converter.unstructure(obj)
        if isinstance(obj, (set, frozenset, tuple)):
            return list(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _send_error(proto: ConnProtocol, mid: Any, code: int, message: str) -> None:
    if proto.writer is None:
        return
    body = orjson.dumps({"jsonrpc": "2.0", "id": mid, "error": {"code": code, "message": message}})
    proto.writer.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)  # type: ignore[union-attr]
