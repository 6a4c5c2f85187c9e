"""Parse one big Python file in a child process: ``python -P -m octostored.lsp.parseproc``.

``ast.parse`` is C code that holds the GIL for long stretches (a few hundred milliseconds on
a 1 MB file, far more on a loaded machine), so even from a worker thread a big file would
stall every other client of the daemon.  A file above :data:`CHILD_MIN` is parsed here
instead: the source comes on stdin, the :class:`~octostored.lsp.calls.FileCalls` goes back
pickled on stdout (our own code's output, read only by the daemon that started it).  The
daemon kills the child at its deadline.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import sys

from .calls import FileCalls, find_calls

CHILD_MIN = 128 * 1024
"""Sources from this many characters on are parsed in a child process (smaller ones take
milliseconds, which a worker thread handles better than a process start)."""
CHILD_DEADLINE = 30.0
"""Seconds a child may take before it is killed and the file gets no lenses this time."""
_CHILDREN = 2
"""Parses in children at once (each one is a CPU)."""

_slots: asyncio.Semaphore | None = None


async def parse_in_child(source: str, deadline: float = CHILD_DEADLINE) -> FileCalls:
    """:func:`find_calls` of ``source`` in a child process; a failure or a timeout is a
    ``FileCalls`` whose ``error`` says so."""
    global _slots
    if _slots is None:
        _slots = asyncio.Semaphore(_CHILDREN)
    async with _slots:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-P", "-m", "octostored.lsp.parseproc",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, cwd="/", env=_env())
        try:
            out, _ = await asyncio.wait_for(
                proc.communicate(source.encode("utf-8", "surrogatepass")), deadline)
        except (TimeoutError, asyncio.CancelledError):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        if proc.returncode != 0 or not out:
            return FileCalls(error=f"the parser process failed (exit {proc.returncode})")
        result = pickle.loads(out)
        return result if isinstance(result, FileCalls) else FileCalls(error="bad parse result")


def _env() -> dict[str, str]:
    """The child finds octostored where the daemon found it (``-P``: never the current folder)."""
    env = dict(os.environ)
    parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [parent, env.get("PYTHONPATH")]))
    return env


def main() -> None:
    source = sys.stdin.buffer.read().decode("utf-8", "surrogatepass")
    sys.stdout.buffer.write(pickle.dumps(find_calls(source), protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    main()
