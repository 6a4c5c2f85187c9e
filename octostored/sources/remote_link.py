"""The link to one MLflow worker process (:mod:`.remote_worker`): started on the first call,
spoken to in line-delimited JSON, restarted when it dies, killed when a call stays silent
past its timeout.  Standard library only (MLflow lives in the worker)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import Any

from .remote_state import RemoteError
from .remote_uri import Scrubber

log = logging.getLogger("octostored.sources.remote")


START_TIMEOUT = 120.0
"""Seconds for a worker to import MLflow and say hello (a busy 2-core box: ~10 s)."""


_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Pending:
    __slots__ = ("future", "on_part", "active")

    def __init__(self, future: asyncio.Future[Any], on_part: Callable[[Any], None] | None):
        self.future = future
        self.on_part = on_part
        self.active = False


class _Worker:
    """One ``remote_worker`` process and the routing of its replies."""

    def __init__(self, python: str, env: dict[str, str], cwd: str, label: str,
                 scrub: Scrubber) -> None:
        self.python, self.env, self.cwd, self.label, self.scrub = python, env, cwd, label, scrub
        self.proc: asyncio.subprocess.Process | None = None
        self.pending: dict[int, _Pending] = {}
        self.next_id = 1
        self.hello: dict[str, Any] = {}
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self._tasks: list[asyncio.Task[None]] = []
        self._hello: asyncio.Future[dict[str, Any]] | None = None
        self.exit_reason = ""
        self.eof = False
        """The worker's stdout closed: it is exiting, whatever ``returncode`` says yet."""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and not self.eof

    async def start(self, init: dict[str, Any], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self._hello = loop.create_future()
        os.makedirs(self.cwd, mode=0o700, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            self.python, "-m", "octostored.sources.remote_worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=self.cwd, env=self.env,
            limit=1 << 28, start_new_session=True)
        self._tasks = [asyncio.create_task(self._read_stdout()),
                       asyncio.create_task(self._read_stderr())]
        try:
            self.hello = await asyncio.wait_for(asyncio.shield(self._hello), timeout)
        except TimeoutError:
            await self.kill()
            raise RemoteError("worker", f"the MLflow worker for {self.label} did not start within"
                              f" {timeout:g} s") from None
        try:
            await self.call("init", init, timeout)
        except TimeoutError:
            await self.kill()
            raise RemoteError("worker", f"the MLflow worker for {self.label} did not start within"
                              f" {timeout:g} s") from None

    async def call(self, op: str, args: dict[str, Any], idle_timeout: float,
                   on_part: Callable[[Any], None] | None = None) -> Any:
        """Send one request; wait while replies keep coming, at most ``idle_timeout`` between."""
        if not self.alive or self.proc is None or self.proc.stdin is None:
            raise RemoteError("worker", f"the MLflow worker for {self.label} is not running")
        rid = self.next_id
        self.next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pending = self.pending[rid] = _Pending(fut, on_part)
        try:
            self.proc.stdin.write((json.dumps({"id": rid, "op": op, **args}) + "\n").encode())
            await self.proc.stdin.drain()
            while True:
                done, _ = await asyncio.wait({fut}, timeout=idle_timeout)
                if done:
                    return fut.result()
                if not pending.active:
                    raise TimeoutError
                pending.active = False
        except (BrokenPipeError, ConnectionResetError):
            raise RemoteError("worker", f"the MLflow worker for {self.label} exited unexpectedly"
                              ) from None
        finally:
            self.pending.pop(rid, None)

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        reader = self.proc.stdout
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    msg = (await asyncio.to_thread(json.loads, line)) if len(line) > 1 << 18 \
                        else json.loads(line)
                except ValueError:
                    log.warning("remote %s: unreadable worker line (%d bytes)", self.label,
                                len(line))
                    continue
                self._route(msg)
        except (asyncio.LimitOverrunError, ValueError) as exc:
            self.exit_reason = f"a reply was too large ({exc})"
            await self.kill()
        finally:
            self.eof = True
            if self.proc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.proc.wait(), 5)
            code = self.proc.returncode if self.proc is not None else None
            reason = self.exit_reason or f"exited (code {code})"
            tail = "; ".join(list(self.stderr_tail)[-3:])
            err = RemoteError("worker", f"the MLflow worker for {self.label} {reason}"
                              + (f": {tail[:400]}" if tail and not self.exit_reason else ""))
            if self._hello is not None and not self._hello.done():
                self._hello.set_exception(err)
            for p in list(self.pending.values()):
                if not p.future.done():
                    p.future.set_exception(err)

    def _route(self, msg: dict[str, Any]) -> None:
        if "hello" in msg or "fatal" in msg:
            if self._hello is not None and not self._hello.done():
                if "hello" in msg:
                    self._hello.set_result(msg["hello"])
                else:
                    self.exit_reason = "could not start"
                    self._hello.set_exception(RemoteError("worker", self.scrub(str(msg["fatal"]))))
            return
        p = self.pending.get(msg.get("id"))  # type: ignore[arg-type]
        if p is None:
            return  # a reply to a call that timed out
        if "part" in msg:
            p.active = True
            if p.on_part is not None:
                try:
                    p.on_part(msg["part"])
                except Exception as exc:  # noqa: BLE001 - a bad part fails its call only
                    if not p.future.done():
                        p.future.set_exception(RemoteError("error", f"bad reply: {exc}"))
            return
        if p.future.done():
            return
        if msg.get("ok"):
            p.future.set_result(msg.get("result"))
        else:
            err = msg.get("error") or {}
            p.future.set_exception(RemoteError(str(err.get("kind", "error")),
                                               self.scrub(str(err.get("message", "failed")))))

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while True:
            try:
                line = await self.proc.stderr.readline()
            except (ValueError, asyncio.LimitOverrunError):
                continue
            if not line:
                return
            text = self.scrub(line.decode("utf-8", "replace").rstrip())
            if text:
                self.stderr_tail.append(text[:500])
                log.info("remote %s worker: %s", self.label, text[:2000])

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.proc.wait(), 5)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            if self.proc.stdin is not None:
                with contextlib.suppress(Exception):
                    self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 3)
            except TimeoutError:
                await self.kill()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
