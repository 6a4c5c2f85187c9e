"""The journal that makes a commit all-or-nothing across a crash, and finishing it.

After the commit object is built (invisible to the user), ``journal.json`` in
``<git-dir>/octostore/`` records the old and new commit, the branch, the index
lines and the staged files to move.  :func:`finish` then places the files,
adds the index entries and moves the branch; every step is idempotent, so
:func:`recover` (run before each commit) simply calls it again after a crash.
A crash before the journal left nothing visible: its staging folder is removed.

``OCTOSTORE_COMMIT_PAUSE=<phase>`` stops a commit at one of :data:`PHASES`
(and writes ``<git-dir>/octostore/paused``) so tests can kill it there.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

from . import git

STATE = "octostore"
"""Folder in the git dir for the staging area, the journal and the commit lock."""
PHASES = ("exported", "prepared", "journaled", "placed", "indexed", "committed")
PAUSE_ENV = "OCTOSTORE_COMMIT_PAUSE"


def checkpoint(state: str, phase: str) -> None:
    """Test hook: stop here (until killed) when ``OCTOSTORE_COMMIT_PAUSE`` names ``phase``."""
    if os.environ.get(PAUSE_ENV) != phase:
        return
    with open(os.path.join(state, "paused"), "w") as f:
        f.write(phase)
    while True:
        time.sleep(3600)


def build_commit(top: str, staging: str, parent: str | None, lines: list[str], msg: str) -> str:
    os.makedirs(staging, exist_ok=True)
    env = {"GIT_INDEX_FILE": os.path.join(staging, "index")}
    if parent:
        git.run(top, "read-tree", parent, env=env)
    else:
        git.run(top, "read-tree", "--empty", env=env)
    git.run(top, "update-index", "-z", "--index-info",
            input="".join(ln + "\0" for ln in lines).encode("utf-8"), env=env)
    tree = git.out(top, "write-tree", env=env)
    if parent and tree == git.out(top, "rev-parse", f"{parent}^{{tree}}"):
        return parent
    args = ["commit-tree", tree] + (["-p", parent] if parent else []) + ["-F", "-"]
    return git.out(top, *args, input=msg.encode("utf-8"))


def write_journal(state: str, journal: dict[str, Any]) -> None:
    from ..atomicfile import atomic_write

    atomic_write(os.path.join(state, "journal.json"), json.dumps(journal).encode("utf-8"))


def read_journal(state: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(state, "journal.json"), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _place(units: list[list[str]], trash: str) -> None:
    """Move staged files into the work tree; idempotent (a unit already moved is skipped)."""
    for i, (staged, dest) in enumerate(units):
        if not os.path.lexists(staged):
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.lexists(dest):
            if os.path.isdir(dest) and not os.path.islink(dest):
                os.makedirs(trash, exist_ok=True)
                os.replace(dest, os.path.join(trash, str(i)))
            else:
                os.unlink(dest)
        os.replace(staged, dest)


def _index_lines(top: str, lines: list[str]) -> None:
    """Add our entries to the user's own index, waiting briefly for a git that holds it."""
    data = "".join(ln + "\0" for ln in lines).encode("utf-8")
    for attempt in range(20):
        proc = git.run(top, "update-index", "-z", "--index-info", input=data, check=False)
        if proc.returncode == 0:
            return
        if b"index.lock" not in proc.stderr:
            raise git.GitError(f"git update-index failed: {git.first_line(proc.stderr)}",
                               "run `octostore commit` again to finish")
        time.sleep(0.1 * (attempt + 1))
    raise git.RepoBusy("another git process kept the index locked",
                       "wait for it to finish, then run `octostore commit` again to finish")


def finish(info: git.RepoInfo, state: str, journal: dict[str, Any]) -> None:
    """Place, index and move the branch (the roll-forward of an interrupted commit too)."""
    top = info.top
    trash = os.path.join(journal["staging"], ".trash")
    _place(journal["units"], trash)
    checkpoint(state, "placed")
    _index_lines(top, journal["lines"])
    checkpoint(state, "indexed")
    ref, old, new = journal["ref"], journal["old"], journal["new"]
    for _attempt in range(5):
        cur = _rev(top, ref)
        if cur == new or (cur and new and _is_ancestor(top, new, cur)):
            return
        if cur != old:
            # The branch moved since the commit was built: build it again on the new tip.
            rebuilt = build_commit(top, os.path.join(journal["staging"], "rebuild"),
                                    cur, journal["lines"], journal["message"]) if cur else None
            if rebuilt is None or rebuilt == cur:
                return  # someone already committed exactly these files
            journal["old"], journal["new"] = cur, rebuilt
            write_journal(state, journal)
            old, new = cur, rebuilt
        args = ["update-ref", "-m", "octostore: commit runs"]
        if ref == "HEAD":
            args.append("--no-deref")
        proc = git.run(top, *args, ref, new, old or git.ZERO_OID, check=False)
        if proc.returncode == 0:
            return
    raise git.GitError(f"could not move {ref}: it keeps changing",
                       "run `octostore commit` again to finish")


def _rev(top: str, ref: str) -> str | None:
    proc = git.run(top, "rev-parse", "-q", "--verify", f"{ref}^{{commit}}", check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def _is_ancestor(top: str, a: str, b: str) -> bool:
    return git.run(top, "merge-base", "--is-ancestor", a, b, check=False).returncode == 0


def clear(state: str, journal: dict[str, Any]) -> None:
    try:
        os.unlink(os.path.join(state, "journal.json"))
    except FileNotFoundError:
        pass
    shutil.rmtree(journal["staging"], ignore_errors=True)


def recover(info: git.RepoInfo) -> str | None:
    """Finish a commit a crash interrupted, or clear a staging folder left before its journal.

    Returns a sentence saying what was done, or None when there was nothing to do.
    """
    state = os.path.join(info.git_dir, STATE)
    journal = read_journal(state)
    if journal is None:
        for name in os.listdir(state) if os.path.isdir(state) else []:
            if name.startswith("staging-"):
                shutil.rmtree(os.path.join(state, name), ignore_errors=True)
        try:
            os.unlink(os.path.join(state, "journal.json"))  # unreadable: nothing to finish
        except FileNotFoundError:
            pass
        return None
    os.makedirs(journal["staging"], exist_ok=True)
    finish(info, state, journal)
    clear(state, journal)
    n = len(journal.get("runs", []))
    return f"finished an interrupted commit of {n} run{'s' if n != 1 else ''}"
