"""Data in a commit: the files the user names with ``--data``, and the inputs left out.

A run's inputs (:mod:`octostored.capture.inputs`) are recorded by path, size and sha256;
the data itself goes in a commit only when the user asks (``octostore commit --data PATH``):

* each named file, or each regular file under a named folder (links, FIFOs and devices are
  skipped), inside the repo's work tree only (a path outside is refused in one sentence);
* through Git LFS when it is over the size limit (or the repo's ``.gitattributes`` already
  sends it there), plain git when small; Git LFS lines go to the repo's ``.gitattributes``
  (as ``git lfs track`` would), refused when that file has changes not committed;
* a git-ignored file is added with force, because the user named it (the plan says so).

Without ``--data`` the plan still lists the runs' inputs that git does not hold (ignored or
untracked) with their size, as ``not_committed``: a clone cannot reproduce those runs
without them.
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
from typing import Any

from . import git
from .contents import _attr_pattern  # one quoting of a path in .gitattributes
from .export import FileOut

GITATTRIBUTES = ".gitattributes"
LFS_ATTRS = "filter=lfs diff=lfs merge=lfs -text"
MAX_DATA_FILES = 10_000
NOT_COMMITTED = ("not committed: a clone cannot reproduce these runs without them; add them "
                 "with --data PATH or keep them where your colleagues can get them")
LFS_INSTALL = ("install it (`apt-get install git-lfs`, `brew install git-lfs` or "
               "https://git-lfs.com) and commit again")


class DataRefused(git.GitError):
    """A ``--data`` path cannot be committed (outside the repo, missing, LFS not installed)."""


def _walk(full: str, shown: str) -> list[str]:
    """The regular files a named path stands for (a folder: recursively, links not followed)."""
    try:
        st = os.lstat(full)
    except OSError:
        raise DataRefused(f"--data {shown} does not exist",
                          "check the path (relative to the current folder) and commit again"
                          ) from None
    if stat.S_ISREG(st.st_mode):
        return [full]
    if not stat.S_ISDIR(st.st_mode):
        raise DataRefused(f"--data {shown} is not a regular file or a folder (a link, a FIFO "
                          "or a device)", "name the data file itself and commit again")
    out: list[str] = []
    for folder, dirs, names in os.walk(full):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(names):
            path = os.path.join(folder, name)
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    out.append(path)
            except OSError:
                continue
            if len(out) > MAX_DATA_FILES:
                raise DataRefused(f"--data {shown} holds more than {MAX_DATA_FILES} files",
                                  "name fewer folders, or pack the data into an archive")
    return out


def plan_data(top: str, paths: list[str], limit: int, lfs: bool,
              result: dict[str, Any]) -> list[FileOut]:
    """The files ``--data`` names, each listed in ``result["data"]`` with size and route.

    Raises:
        DataRefused: a path is outside the repo, missing, not a file or folder, or over the
            limit while git-lfs is not installed; the sentence names it.
    """
    if not paths:
        return []
    top_real = os.path.realpath(top)
    found: dict[str, tuple[str, int]] = {}
    for given in paths:
        if not given or "\0" in given:
            raise DataRefused("a --data path is empty or holds a NUL character",
                              "name the data file or folder by its path and commit again")
        full = given if os.path.isabs(given) else os.path.join(top, given)
        full = os.path.abspath(full)
        real = os.path.realpath(full)
        if not (real == top_real or real.startswith(top_real + os.sep)):
            raise DataRefused(
                f"--data {given} is outside the repo ({real}), and octostore commits "
                "nothing from outside the repo's work tree",
                "copy or move the data into the repo first, or keep it where your colleagues "
                "can get it (reproduce checks it by its recorded hash)")
        rel0 = os.path.relpath(real, top_real).replace(os.sep, "/")
        if rel0 == ".git" or rel0.startswith(".git/"):
            raise DataRefused(f"--data {given} is inside .git", "name a data file of the repo")
        for f in _walk(real, given):
            rel = os.path.relpath(f, top_real).replace(os.sep, "/")
            if rel.startswith(".git/"):
                continue
            found[rel] = (f, os.lstat(f).st_size)
    rels = sorted(found)
    if not rels:
        return []
    ignored = _ignored(top, rels)
    lfs_attr = _lfs_attr(top, rels)
    out: list[FileOut] = []
    lfs_rels: list[str] = []
    for rel in rels:
        full, size = found[rel]
        route = "git-lfs" if size > limit or rel in lfs_attr else "git"
        if route == "git-lfs" and not lfs:
            raise DataRefused(
                f"--data {rel} is {size / 1e6:.1f} MB, over the {limit / 1e6:.0f} MB limit, so "
                "it goes through Git LFS, and git-lfs is not installed", LFS_INSTALL)
        if route == "git-lfs" and rel not in lfs_attr:
            lfs_rels.append(rel)
        entry: dict[str, Any] = {"path": rel, "size": size, "route": route,
                                 "ignored": rel in ignored}
        if rel in ignored:
            entry["note"] = "git-ignored: added with force because you named it"
        result["data"].append(entry)
        out.append(FileOut(rel, src=full, size=size, lfs=route == "git-lfs", in_place=True,
                           mode="100755" if os.access(full, os.X_OK) else "100644"))
    if lfs_rels:
        out.append(_gitattributes(top, lfs_rels))
        result["data_gitattributes"] = True
    return out


def _ignored(top: str, rels: list[str]) -> set[str]:
    proc = git.run(top, "check-ignore", "-z", "--stdin", check=False,
                   input=("\0".join(rels) + "\0").encode("utf-8"))
    return {p for p in proc.stdout.decode("utf-8", "replace").split("\0") if p}


def _lfs_attr(top: str, rels: list[str]) -> set[str]:
    """The paths the repo's attributes already send through Git LFS."""
    proc = git.run(top, "check-attr", "-z", "--stdin", "filter", check=False,
                   input=("\0".join(rels) + "\0").encode("utf-8"))
    parts = proc.stdout.decode("utf-8", "replace").split("\0")
    return {parts[i] for i in range(0, len(parts) - 2, 3) if parts[i + 2] == "lfs"}


def _gitattributes(top: str, lfs_rels: list[str]) -> FileOut:
    """The repo's ``.gitattributes`` with one Git LFS line per big data file, as ``git lfs
    track`` would write it; refused when the file has changes not committed."""
    status = git.run(top, "--literal-pathspecs", "status", "--porcelain", "--", GITATTRIBUTES,
                     check=False)
    if status.stdout.strip():
        raise DataRefused(
            ".gitattributes has changes not committed, and --data needs to add Git LFS lines "
            "to it", "commit or stash your changes to .gitattributes and commit again")
    path = os.path.join(top, GITATTRIBUTES)
    try:
        if os.path.islink(path):
            raise OSError("a link")
        with open(path, encoding="utf-8") as f:
            current = f.read()
    except FileNotFoundError:
        current = ""
    except (OSError, UnicodeDecodeError):
        raise DataRefused(".gitattributes cannot be read as a text file, and --data needs to "
                          "add Git LFS lines to it", "fix or remove it and commit again"
                          ) from None
    lines = current.splitlines()
    have = set(lines)
    for rel in lfs_rels:
        line = f"/{_attr_pattern(rel)} {LFS_ATTRS}"
        if line not in have:
            lines.append(line)
            have.add(line)
    data = ("\n".join(lines) + "\n").encode("utf-8")
    return FileOut(GITATTRIBUTES, data=data, size=len(data))


def not_committed(top: str, tokens: list[str], data: set[str],
                  result: dict[str, Any]) -> None:
    """List the runs' inputs git does not hold (ignored or untracked) and ``--data`` does not
    add, with their size, in ``result["not_committed"]``."""
    seen: dict[str, dict[str, Any]] = {}
    for token in tokens:
        path = os.path.join(top, ".octostore", "inputs", f"{token}.json")
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            files = doc.get("files") if isinstance(doc, dict) else None
        except (OSError, ValueError):
            continue
        for item in files if isinstance(files, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("path"), str):
                continue
            rel = posixpath.normpath(item["path"])
            if (rel.startswith(("../", "/")) or rel in ("..", ".") or "\0" in rel
                    or rel in data or item.get("why") == "changed"):
                continue
            size = item.get("size")
            seen.setdefault(rel, {"path": rel, "size": size if isinstance(size, int) else None,
                                  "sha256": item.get("sha256") if isinstance(
                                      item.get("sha256"), str) else None})
    if not seen:
        return
    rels = sorted(seen)
    tracked: set[str] = set()
    for i in range(0, len(rels), 500):
        proc = git.run(top, "--literal-pathspecs", "ls-files", "-z", "--", *rels[i:i + 500],
                       check=False)
        tracked.update(proc.stdout.decode("utf-8", "replace").split("\0"))
    ignored = _ignored(top, [r for r in rels if r not in tracked])
    out = []
    for rel in rels:
        if rel in tracked:
            continue
        out.append({**seen[rel], "why": "git-ignored" if rel in ignored else "untracked"})
    if out:
        result["not_committed"] = {"files": out, "message": NOT_COMMITTED}
