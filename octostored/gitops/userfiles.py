"""The user's own files in a committed run folder that a commit exports again.

A run committed once can be committed again (it changed, or HEAD lost it).  Its folder
under ``.octostore/runs`` may by then hold files the user put there, or files she
edited.  Nothing of hers is deleted or reverted without a word:

* a file the export does not write is **kept** (in the work tree, and in the tree when
  HEAD has it), with a warning that names it; only octostore's own markers (``.keep``,
  ``octostore-artifacts.json``) that are unchanged since HEAD are dropped when the run
  no longer needs them;
* a file the export writes, whose content is neither what the export writes nor what
  HEAD holds (she edited it), **refuses** the commit with a sentence that names it.
"""

from __future__ import annotations

import os
from typing import Any

from . import git
from .export import ARTIFACT_MANIFEST, KEEP, MODE_LINK, FileOut, RunExport

MARKERS = (f"params/{KEEP}", f"metrics/{KEEP}", f"artifacts/{KEEP}", ARTIFACT_MANIFEST)
SHOWN = 5


class UserEdits(git.GitError):
    """The user changed a file in a committed run folder that the commit would overwrite."""


def user_files(top: str, files: list[FileOut], exports: list[RunExport],
               head: dict[str, tuple[str, str]], shas: dict[str, str],
               result: dict[str, Any]) -> tuple[set[str], list[str]]:
    """(paths kept as the user's, paths of stale markers to remove).

    Raises:
        UserEdits: the user edited a file the commit would overwrite.
    """
    new = {f.rel: f for f in files}
    new_dirs = {os.path.dirname(rel) for rel in new}
    for rel in list(new_dirs):
        while "/" in rel:
            rel = os.path.dirname(rel)
            new_dirs.add(rel)
    kept: set[str] = set()
    remove: list[str] = []
    to_hash: list[tuple[str, str, str]] = []  # (rel, full, run id)
    edited: list[tuple[str, str]] = []
    for ex in exports:
        base = os.path.join(top, ex.folder)
        if os.path.islink(base) or not os.path.isdir(base):
            continue
        for rel, full, link in _walk(top, base):
            ours = new.get(rel)
            marker = rel[len(ex.folder) + 1:] in MARKERS
            if link and rel in new_dirs:  # a link where the run needs a folder
                edited.append((rel, ex.run_id))
                continue
            if link:
                if ours is not None and ours.mode == MODE_LINK and (
                        os.readlink(full).encode() == (ours.data or b".")):
                    continue
                if head.get(rel, ("", ""))[0] == MODE_LINK and (ours is not None or marker):
                    if ours is None:
                        remove.append(rel)
                    continue
                if ours is None:
                    kept.add(rel)
                else:
                    edited.append((rel, ex.run_id))
                continue
            if ours is None and not marker:
                kept.add(rel)
                continue
            to_hash.append((rel, full, ex.run_id))
    for (rel, _full, rid), sha in zip(to_hash, _hash(top, [t[1] for t in to_hash])):
        ours = new.get(rel)
        in_head = head.get(rel, ("", ""))[1]
        if ours is None:  # a marker the export no longer writes
            if sha and sha == in_head:
                remove.append(rel)
            else:
                kept.add(rel)
            continue
        if sha and (sha == shas.get(rel) or sha == in_head) or ours.lfs:
            continue
        edited.append((rel, rid))
    if edited:
        rel, rid = edited[0]
        more = f" (and {len(edited) - 1} more file(s))" if len(edited) > 1 else ""
        raise UserEdits(
            f"you changed {rel}{more} in the committed folder of run {rid}, and committing "
            "the run again would overwrite it",
            f"commit or undo your change first (see `git diff -- {rel}`), then commit the "
            "run again")
    for i, rel in enumerate(sorted(kept)):
        if i == SHOWN:
            result["warnings"].append(f"kept {len(kept) - SHOWN} more file(s) of yours in "
                                      "committed run folders")
            break
        result["warnings"].append(f"kept {rel}: it is not part of the run's export (a file "
                                  "of yours?), so it stays as it is")
    result["kept"] = sorted(kept)
    return kept, remove


def _walk(top: str, base: str) -> list[tuple[str, str, bool]]:
    """(repo-relative posix path, full path, is a link) of every file and link under
    ``base`` (links not followed; FIFOs and other special files are the user's: kept)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(base):
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = sorted(d for d in dirnames if d not in links)
        for name in sorted(filenames + links):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, top).replace(os.sep, "/")
            out.append((rel, full, os.path.islink(full)))
    return out


def _hash(top: str, paths: list[str]) -> list[str]:
    """Git blob ids of work-tree files (nothing written to the object store); "" for a
    special file or one that cannot be read."""
    import stat

    out = [""] * len(paths)
    batch = []
    for i, p in enumerate(paths):
        try:
            regular = stat.S_ISREG(os.lstat(p).st_mode)
        except OSError:
            regular = False
        if regular and "\n" not in p:
            batch.append(i)
        elif regular:
            with open(p, "rb") as f:
                out[i] = git.out(top, "hash-object", "--no-filters", "--stdin", input=f.read())
    if batch:
        got = git.out(top, "hash-object", "--no-filters", "--stdin-paths",
                      input=("\n".join(paths[i] for i in batch) + "\n").encode()).split()
        for i, sha in zip(batch, got):
            out[i] = sha
    return out
