"""The files a run read, checked before its reproduction runs anything.

Capture records a run's inputs (:mod:`octostored.capture.inputs`): the files under the repo
the training process read (``why: read``) and the big tracked files it had changed since
HEAD, left out of the patch (``why: changed``), each with size and sha256, in
``.octostore/inputs/<token>.json`` (tag ``octostore.inputs``).  Each input meets one case:

``in-commit``
    tracked at the run's commit and not changed by the run: the checkout has it; its hash is
    checked there after checkout (a Git LFS pointer whose content was not pulled is missing).
``provided``
    not in the checkout (git-ignored, untracked, or a big change the patch does not carry),
    but the user's clone has a file at that path (for a big change: at that path, as the
    clone holds it now) with the recorded size and hash: it is made available in the
    worktree read-only (a hard link when the user's file is itself read-only, else a
    read-only copy); the user's file is never modified.
``differs``
    present (in the clone, or in the checkout) with another hash: the reproduction runs with
    it and the verdict names it (``diverged; input data/raw/wine.csv differs``).
``missing``
    not to be had: git-ignored (or untracked) and not in this clone, a Git LFS pointer not
    pulled, a recorded path outside the repo, or a big change whose content is nowhere
    here.  The reproduction stops before it runs anything, naming each with its size and
    hash.

A record is a file of the repo (untrusted): its token and paths are checked, a path that
leaves the repo is never read, and only regular files are hashed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from typing import Any

from ..capture import files as capture_files
from ..digest import sha256_file
from ..jobs import JobError
from . import worktree

TAG = "octostore.inputs"
TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
HEX64 = re.compile(r"[0-9a-f]{64}")
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
MAX_RECORD = 8 * 1024 * 1024
MAX_SHOWN = 5
"""Missing inputs named in the refusal (the rest are counted; all are in ``data.inputs``)."""


@dataclass
class Input:
    path: str
    size: int | None
    sha256: str | None
    why: str
    """read or changed (as recorded)."""
    case: str = ""
    """in-commit, provided, differs or missing."""
    detail: str = ""
    """One sentence: what was found, and what reproduce does with it."""
    source: str | None = None
    """provided/differs (outside the checkout): the user's file to make available."""

    def label(self) -> str:
        size = "size unknown" if self.size is None else _size(self.size)
        digest = (self.sha256 or "no hash")[:12]
        return f"{self.path} ({size}, sha256 {digest})"

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256, "why": self.why,
                "case": self.case, "detail": self.detail}


@dataclass
class Inputs:
    token: str | None = None
    items: list[Input] = field(default_factory=list)
    complete: bool = True
    notes: list[str] = field(default_factory=list)

    def differing(self) -> list[str]:
        return [i.path for i in self.items if i.case == "differs"]


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def record_path(top: str, token: str) -> str:
    return os.path.join(top, capture_files.OCTOSTORE_DIR, "inputs", f"{token}.json")


def load(top: str, tags: dict[str, str]) -> Inputs:
    """The run's recorded inputs (none when it recorded none), each not yet checked."""
    token = tags.get(TAG)
    out = Inputs(token=token)
    if not token:
        return out
    if not TOKEN.fullmatch(token):
        out.notes.append(f"the run's {TAG} tag {token[:40]!r} is not a record token; its "
                         "inputs are not checked")
        return out
    path = record_path(top, token)
    rel = os.path.relpath(path, top)
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_RECORD:
            raise ValueError("not a regular file of a sane size")
        with open(path, "rb") as f:
            doc = json.loads(f.read(MAX_RECORD + 1))
        files = doc["files"]
        if not isinstance(files, list):
            raise ValueError("no list of files")
    except FileNotFoundError:
        out.notes.append(f"the run's input record {rel} is not in this clone, so the files it "
                         "read are not checked (commit the run with `octostore commit`, which "
                         "commits the record)")
        return out
    except (OSError, ValueError, KeyError, TypeError) as exc:
        out.notes.append(f"the run's input record {rel} cannot be read ({exc}); its inputs are "
                         "not checked")
        return out
    out.complete = bool(doc.get("complete", True)) and not doc.get("cut")
    if not out.complete:
        out.notes.append("the run's input record is incomplete (inputs not hashed, or more "
                         "than could be recorded); only what it lists is checked")
    for entry in files:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            continue
        size = entry.get("size") if isinstance(entry.get("size"), int) else None
        digest = entry.get("sha256") if isinstance(entry.get("sha256"), str) and \
            HEX64.fullmatch(entry["sha256"]) else None
        why = "changed" if entry.get("why") == "changed" else "read"
        out.items.append(Input(entry["path"], size, digest, why))
    return out


def _inside(path: str) -> str | None:
    """``path`` normalised when it is a relative path that stays inside the repo."""
    if "\0" in path:
        return None
    norm = os.path.normpath(path.replace("\\", "/"))
    if os.path.isabs(norm) or norm == ".." or norm.startswith(".." + os.sep) or norm == ".":
        return None
    if norm.split(os.sep)[0] == ".git":
        return None
    return norm.replace(os.sep, "/")


_HASHES: dict[tuple[str, int, int, int], str] = {}


def file_hash(path: str) -> tuple[int, str] | None:
    """(size, sha256) of a regular file (symlinks followed), None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    key = (path, st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _HASHES:
        try:
            _HASHES[key] = sha256_file(path)
        except OSError:
            return None
        if len(_HASHES) > 4096:
            _HASHES.clear()
    return st.st_size, _HASHES[key]


def is_lfs_pointer(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(len(LFS_POINTER))
        return head == LFS_POINTER and os.path.getsize(path) < 1024
    except OSError:
        return False


async def _ignored(top: str, paths: list[str]) -> set[str]:
    """Those of ``paths`` that git ignores in the user's clone (one git call per 500)."""
    out: set[str] = set()
    for i in range(0, len(paths), 500):
        code, text, _err = await worktree.git(top, "-c", "core.quotePath=false",
                                              "check-ignore", "--no-index", "--",
                                              *paths[i:i + 500])
        if code in (0, 1):
            out.update(line for line in text.split("\n") if line)
    return out


def _matches(item: Input, got: tuple[int, str] | None) -> bool:
    return got is not None and item.sha256 is not None and got[1] == item.sha256 and \
        (item.size is None or got[0] == item.size)


async def check(top: str, commit: str, tracked: set[str], found: Inputs,
                patched: set[str] | None = None) -> None:
    """Decide each input's case from the user's clone and the commit's tree (see the module's
    doc); in-commit inputs are checked again in the checkout (:func:`provide`).

    Raises:
        JobError: (phase ``resolve``) inputs are missing: each named with size, hash and why.
    """
    patched = patched or set()
    ignored = await _ignored(top, [r for i in found.items if (r := _inside(i.path)) is not None
                                   and not (r in tracked and i.why == "read")])
    for item in found.items:
        rel = _inside(item.path)
        if rel is None:
            item.case = "missing"
            item.detail = f"input {item.label()} is outside the repo, so it cannot be checked"
            continue
        item.path = rel
        mine = os.path.join(top, rel)
        in_commit = rel in tracked
        if in_commit and item.why == "read":
            item.case = "in-commit"
            if os.path.isfile(mine) and is_lfs_pointer(mine):
                item.case = "missing"
                item.detail = (f"input {item.label()} is a Git LFS file whose content was not "
                               "pulled into this clone (run `git lfs pull`)")
            else:
                item.detail = (f"input {item.label()} is in git at the run's commit"
                               + (" with the run's patch" if rel in patched else ""))
            continue
        got = await asyncio.to_thread(file_hash, mine)
        if item.sha256 is None:
            item.case = "missing"
            item.detail = (f"input {item.label()} was recorded without a hash, so it cannot "
                           "be checked")
            continue
        if _matches(item, got):
            item.case, item.source = "provided", mine
            where = ("a big change the run made to a tracked file (not in its patch)"
                     if item.why == "changed" else
                     "git-ignored" if rel in ignored else "not in git")
            item.detail = (f"input {item.label()} is {where}; your clone's file has the recorded "
                           "hash and is provided read-only to the reproduction")
            continue
        if got is not None and is_lfs_pointer(mine):
            item.case = "missing"
            item.detail = (f"input {item.label()} is a Git LFS file whose content was not "
                           "pulled into this clone (run `git lfs pull`)")
        elif item.why == "changed":
            item.case = "missing"
            item.detail = (f"input {item.label()} is a change the run made to a tracked file "
                           "that is recorded by hash only, and no file in this clone has it")
        elif got is not None:
            item.case, item.source = "differs", mine
            item.detail = (f"input {item.label()} differs in your clone (sha256 "
                           f"{got[1][:12]}, {_size(got[0])}); the reproduction runs with it")
        else:
            why = ("git-ignored and not in this clone" if rel in ignored
                   else "not in git and not in this clone")
            item.case = "missing"
            item.detail = f"input {item.label()} is {why}"
    missing = [i for i in found.items if i.case == "missing"]
    if missing:
        named = "; ".join(i.detail for i in missing[:MAX_SHOWN])
        more = f"; and {len(missing) - MAX_SHOWN} more" if len(missing) > MAX_SHOWN else ""
        raise JobError("resolve", f"{len(missing)} input(s) the run read are missing, so it "
                       f"was not run: {named}{more}",
                       "put each file at its path in this clone (its hash is checked; a "
                       "git-ignored file is then provided read-only), or `git lfs pull` for "
                       "LFS files, and reproduce again",
                       inputs=[i.describe() for i in found.items])


def provide(found: Inputs, wt: str) -> None:
    """Make the inputs available in the checkout at ``wt`` and check the in-commit ones.

    Raises:
        JobError: (phase ``checkout``) an in-commit input is an LFS pointer there.
    """
    for item in found.items:
        dest = os.path.join(wt, item.path)
        if item.case == "in-commit":
            got = file_hash(dest)
            if got is None:
                item.case = "missing"
                item.detail = f"input {item.label()} is not in the checkout of the run's commit"
            elif is_lfs_pointer(dest):
                item.case = "missing"
                item.detail = (f"input {item.label()} is a Git LFS file whose content was not "
                               "pulled (run `git lfs pull`)")
            elif not _matches(item, got):
                item.case = "differs"
                item.detail = (f"input {item.label()} differs at the run's commit (sha256 "
                               f"{got[1][:12]}): the run read another version")
            continue
        if item.case in ("provided", "differs") and item.source:
            if not _place(item.source, dest, wt):
                item.case = "missing"
                item.detail = (f"input {item.label()} would land outside the checkout (a "
                               "symbolic link at the run's commit), so it is not provided")
    missing = [i for i in found.items if i.case == "missing"]
    if missing:
        raise JobError("checkout", f"{len(missing)} input(s) the run read are missing, so it "
                       "was not run: " + "; ".join(i.detail for i in missing[:MAX_SHOWN]),
                       "`git lfs pull` (or put the files at their paths) and reproduce again",
                       inputs=[i.describe() for i in found.items])


def _place(src: str, dest: str, wt: str) -> bool:
    """``src`` at ``dest``, read-only, without ever writing to ``src``; False when ``dest``
    would leave the checkout ``wt`` through a symbolic link of the commit."""
    parent = os.path.dirname(dest)
    top = os.path.join(os.path.realpath(wt), "")
    probe = parent
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if not os.path.join(os.path.realpath(probe), "").startswith(top):
        return False
    os.makedirs(parent, exist_ok=True)
    if not os.path.join(os.path.realpath(parent), "").startswith(top):
        return False
    if os.path.lexists(dest):
        if os.path.isdir(dest) and not os.path.islink(dest):
            shutil.rmtree(dest)
        else:
            os.unlink(dest)
    st = os.stat(src)
    if not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        try:
            os.link(src, dest)  # read-only already: sharing it cannot change it
            return True
        except OSError:
            pass
    tmp = dest + ".octostore-tmp"
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o444)
    os.replace(tmp, dest)
    return True

