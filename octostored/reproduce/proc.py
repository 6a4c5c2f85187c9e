"""Subprocesses for jobs: their own process group, output streamed line by line, killed on cancel.

Every process a reproduction starts goes through :func:`run`: it gets a new
session (so its whole tree, uv's workers or the training script's
``multiprocessing`` children, is one process group that :func:`kill_group`
stops), the job's marker in its environment (``OCTOSTORE_JOB``, so that a
daemon that starts after a crash can find leftovers), and its stdout and
stderr merged and read line by line as they come, never all at once: a
training script can print for hours.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from ..jobs import JobContext
from ..procs import JOB_ENV, KILL_GRACE_SECONDS

MAX_LINE = 64 * 1024
"""A longer line (a progress bar without newlines) is cut into pieces of this size."""


@dataclass
class Result:
    code: int
    lines: list[str] = field(default_factory=list)
    """Every line when ``keep`` was asked, else the last ``tail`` lines."""


async def run(cmd: list[str], *, cwd: str | None = None, env: dict[str, str] | None = None,
              ctx: JobContext | None = None, on_line: Callable[[str], None] | None = None,
              keep: bool = False, tail: int = 200, stdin_data: bytes | None = None,
              timeout: float | None = None) -> Result:
    """Run ``cmd`` to completion; on cancel (or ``timeout``) stop its whole process group.

    Raises:
        FileNotFoundError: the program does not exist.
        asyncio.CancelledError: the job was cancelled (the process group is gone by then).
        TimeoutError: ``timeout`` seconds passed (the process group is gone by then).
    """
    full_env = dict(os.environ if env is None else env)
    if ctx is not None:
        full_env[JOB_ENV] = ctx.job.id
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, env=full_env, start_new_session=True,
        stdin=asyncio.subprocess.PIPE if stdin_data is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, limit=MAX_LINE)
    if ctx is not None:
        ctx.track(proc.pid)
    lines: list[str] = []

    async def pump() -> None:
        assert proc.stdout is not None
        if stdin_data is not None and proc.stdin is not None:
            try:
                proc.stdin.write(stdin_data)
                await proc.stdin.drain()
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass
        while True:
            try:
                raw = await proc.stdout.readline()
            except ValueError:  # a line over the limit: take what is buffered
                raw = await proc.stdout.read(MAX_LINE)
            if not raw:
                break
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(text)
            if not keep and len(lines) > 2 * tail:
                del lines[:-tail]
            if on_line is not None:
                on_line(text)
        await proc.wait()

    try:
        if timeout is None:
            await pump()
        else:
            await asyncio.wait_for(pump(), timeout)
    except BaseException:
        await asyncio.shield(kill_group(proc))
        raise
    finally:
        if ctx is not None:
            ctx.untrack(proc.pid)
    return Result(proc.returncode if proc.returncode is not None else -1,
                  lines if keep else lines[-tail:])


async def kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the process's group, SIGKILL it after a grace period, reap the process."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            await asyncio.wait_for(proc.wait(), KILL_GRACE_SECONDS)
            if sig == signal.SIGTERM:
                # The leader is gone; its children may linger in the group.
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            return
        except TimeoutError:
            continue


async def output(cmd: list[str], *, cwd: str | None = None, env: dict[str, str] | None = None,
                 timeout: float = 120.0) -> tuple[int, str, str]:
    """A short command's exit code, stdout and stderr (git plumbing, version probes)."""
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, env=env, start_new_session=True, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        await asyncio.shield(kill_group(proc))
        raise
    return (proc.returncode if proc.returncode is not None else -1,
            out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
