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
from collections.abc import Callable
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


def build_commit(top: str, staging: str, parent: str | None, lines: list[str], msg: str,
                 hooks: Callable[[str, str], str] | None = None) -> str:
    """The commit object of ``parent`` plus ``lines``, built on a temporary index; ``hooks``
    (the repo's pre-commit and commit-msg) run on that index before the commit is made."""
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
    if hooks is not None:
        msg = hooks(env["GIT_INDEX_FILE"], msg)
    args = ["commit-tree", tree] + (["-p", parent] if parent else []) + ["-F", "-"]
    return git.out(top, *args, input=msg.encode("utf-8"))


def write_journal(state: str, journal: dict[str, Any]) -> None:
    """Write the journal atomically, signed with this user's key (:mod:`.journalkey`) and
    bound to this git folder, so that only journals her own octostore wrote are replayed."""
    from ..atomicfile import atomic_write
    from .journalkey import sign

    body = {k: v for k, v in journal.items() if k != "mac"}
    body["mac"] = sign(_canonical(state, body))
    atomic_write(os.path.join(state, "journal.json"), json.dumps(body).encode("utf-8"),
                 mode=0o600)


def _canonical(state: str, body: dict[str, Any]) -> bytes:
    return os.path.realpath(state).encode() + b"\0" + json.dumps(
        {k: v for k, v in body.items() if k != "mac"}, sort_keys=True).encode("utf-8")


def read_journal(state: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(state, "journal.json"), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def untrusted(info: git.RepoInfo, state: str, journal: dict[str, Any]) -> str | None:
    """Why the journal must not be replayed (None: it is this user's, for this repo).

    It must carry this user's signature for this git folder, and every path it moves or
    removes must stay inside the repo (staging inside ``<git-dir>/octostore``, work-tree
    paths inside the work tree, links resolved)."""
    from .journalkey import verify

    mac = journal.get("mac")
    if not isinstance(mac, str) or not verify(_canonical(state, journal), mac):
        return "it was not written by your octostore"
    state_real = os.path.realpath(state)
    top_real = os.path.realpath(info.top)
    staging = journal.get("staging")
    try:
        if not isinstance(staging, str) or not _within(state_real, staging, strict=True):
            return "its staging folder is outside the repo's git folder"
        for staged, dest in journal.get("units", []):
            if not _within(os.path.realpath(staging), staged, strict=True) or not _within(
                    top_real, dest, strict=True):
                return f"it moves a file to {dest}, outside the repo"
        for rel in journal.get("remove", []):
            if not _within(top_real, os.path.join(info.top, rel), strict=True):
                return f"it removes {rel}, outside the repo"
        ref = journal.get("ref")
        if not isinstance(ref, str) or not (ref == "HEAD" or ref.startswith("refs/heads/")):
            return "it names no branch"
    except (TypeError, ValueError):
        return "it is malformed"
    return None


def _within(base_real: str, path: str, strict: bool = False) -> bool:
    """``path`` (its folder's links resolved, the last part not followed) is inside
    ``base_real``, and with ``strict`` is not ``base_real`` itself."""
    if not isinstance(path, str) or "\0" in path:
        return False
    full = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    if full == base_real:
        return not strict
    return full.startswith(base_real.rstrip(os.sep) + os.sep)


def set_aside(state: str, why: str) -> str:
    """Rename an untrusted journal to ``journal.json.rejected-<time>``; the warning."""
    name = f"journal.json.rejected-{time.strftime('%Y%m%dT%H%M%S')}"
    try:
        os.replace(os.path.join(state, "journal.json"), os.path.join(state, name))
    except OSError:
        pass
    return (f"set aside {os.path.join(state, 'journal.json')} ({why}): nothing of it was "
            f"replayed; it is kept as {name} for you to inspect or delete")


def journal_status(info: git.RepoInfo) -> str | None:
    """For a dry run: a sentence about a pending journal, or None."""
    state = os.path.join(info.git_dir, STATE)
    if not os.path.lexists(os.path.join(state, "journal.json")):
        return None
    journal = read_journal(state)
    why = untrusted(info, state, journal) if journal is not None else "it cannot be read"
    if why:
        return (f"{os.path.join(state, 'journal.json')} is not a journal to replay ({why}); the "
                "next `octostore commit` sets it aside")
    return "an interrupted commit is pending; the next `octostore commit` finishes it first"


def _place(units: list[list[str]], trash: str, top: str, remove: list[str]) -> None:
    """Move staged files into the work tree; idempotent (a unit already moved is skipped).

    A staged run folder is merged into an existing one file by file, so files of the
    user's there stay (:mod:`.userfiles`); octostore's own stale markers in ``remove`` go.
    """
    top_real = os.path.realpath(top)
    for i, (staged, dest) in enumerate(units):
        if not os.path.lexists(staged):
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if not _within(top_real, dest, strict=True):
            raise git.GitError(f"{dest} leads outside the repo through a link",
                               "remove that link, then run `octostore commit` again")
        if _is_dir(staged) and _is_dir(dest):
            _merge(staged, dest, os.path.join(trash, str(i)))
            shutil.rmtree(staged, ignore_errors=True)
            continue
        _replace(staged, dest, os.path.join(trash, str(i)))
    for rel in remove:
        path = os.path.join(top, rel)
        if _within(top_real, path, strict=True) and os.path.lexists(path) and not _is_dir(path):
            os.unlink(path)


def _is_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _replace(staged: str, dest: str, trash: str) -> None:
    if _is_dir(dest):
        os.makedirs(os.path.dirname(trash), exist_ok=True)
        os.replace(dest, trash)
    os.replace(staged, dest)


def _merge(staged: str, dest: str, trash: str) -> None:
    for name in sorted(os.listdir(staged)):
        s, d = os.path.join(staged, name), os.path.join(dest, name)
        if _is_dir(s) and _is_dir(d):
            _merge(s, d, os.path.join(trash, name))
        else:
            _replace(s, d, os.path.join(trash, name))


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
    _place(journal["units"], trash, top, journal.get("remove", []))
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


def recover(info: git.RepoInfo, warnings: list[str] | None = None) -> str | None:
    """Finish a commit a crash interrupted, or clear a staging folder left before its journal.

    Only a journal this user's octostore wrote for this repo is replayed
    (:func:`untrusted`); any other is set aside with a warning in ``warnings``.
    Returns a sentence saying what was done, or None when there was nothing to do.
    """
    state = os.path.join(info.git_dir, STATE)
    journal = read_journal(state)
    why = untrusted(info, state, journal) if journal is not None else (
        "it cannot be read" if os.path.lexists(os.path.join(state, "journal.json")) else None)
    if why is not None:
        (warnings if warnings is not None else []).append(set_aside(state, why))
        journal = None
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
