"""Where a commit may copy from: inside the repo's work tree, nothing else.

A repo is untrusted input: a run's ``artifact_uri``, a store named in
``pyproject.toml`` (``stores = ["../../other/mlruns"]``), a symlink committed under
``.octostore/`` or inside a store can all point at the user's private files.  A
commit copies a file only when its real path (links resolved) is inside the
repo's top, or inside a folder octostore itself made for this commit (a server
run's downloaded artifacts).  There is no user-level setting for outside stores
today, so every other outside path is refused, and each refusal is a warning that
names it.  Files are opened without following a last-component link and without
blocking, and copied only when they are regular files: a FIFO or a device is never
read.
"""

from __future__ import annotations

import os
import stat
from typing import Any


class Guard:
    """Says whether a path may be copied into the commit, and records the refusals."""

    def __init__(self, top: str, trusted: list[str] | None = None) -> None:
        self.top = os.path.realpath(top)
        self.trusted = [os.path.realpath(t) for t in trusted or []]
        self.refused: list[dict[str, Any]] = []

    def allowed(self, path: str) -> bool:
        real = os.path.realpath(path)
        return any(_inside(base, real) for base in (self.top, *self.trusted))

    def refuse(self, path: str, what: str, run_id: str | None = None) -> str:
        """Record a refused outside path; return the warning that names it."""
        real = os.path.realpath(path)
        shown = path if real == os.path.abspath(path) else f"{path} (-> {real})"
        self.refused.append({"path": path, "real": real, "what": what, "run_id": run_id})
        who = f"run {run_id}: " if run_id else ""
        return (f"{who}{what} {shown} is outside the repo; not committed (octostore copies "
                "nothing from outside the repo's work tree)")

    def regular_inside(self, path: str) -> bool:
        """A regular file (not a FIFO or a device) whose real path is allowed (a link is
        taken when it resolves to such a file inside the repo)."""
        try:
            st = os.stat(path)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and self.allowed(path)


def _inside(base: str, real: str) -> bool:
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def copy_regular(src: str, dest: str) -> None:
    """Copy ``src`` to ``dest`` only when it is a regular file, opened without following a
    link and without blocking (a FIFO swapped in after the plan is never waited on).

    Raises:
        OSError: ``src`` is a link, a special file, or cannot be read.
    """
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{src} is not a regular file; not copied")
        with open(dest, "wb") as out:
            while chunk := os.read(fd, 1 << 20):
                out.write(chunk)
    finally:
        os.close(fd)


class UnsafeDestination(Exception):
    """A folder the commit writes into is a link that leads out of the repo."""

    def __init__(self, message: str, remedy: str) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy


def check_destinations(top: str, rels: list[str]) -> None:
    """Every folder the commit places files into must resolve inside the repo: a committed
    ``.octostore/runs/<exp>`` that is a link to ``~`` would send the runs there.

    Raises:
        UnsafeDestination: one of them leads outside (the sentence names it).
    """
    top_real = os.path.realpath(top)
    seen: set[str] = set()
    for rel in rels:
        folder = os.path.dirname(rel)
        while folder and folder not in seen:
            seen.add(folder)
            full = os.path.join(top, folder)
            if os.path.lexists(full) and not _inside(top_real, os.path.realpath(full)):
                raise UnsafeDestination(
                    f"{folder} is a link that leads outside the repo "
                    f"(to {os.path.realpath(full)}), so the commit would write there",
                    f"remove the link (`rm {folder}`) and commit again")
            folder = os.path.dirname(folder)
