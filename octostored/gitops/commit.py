"""One git commit that holds exactly the chosen runs, and nothing of the user's.

The commit is built beside the user's index, never through it:

1. **Prepare** (invisible): export the runs to a staging folder in
   ``<git-dir>/octostore/``; hash every file into the object store
   (``hash-object --stdin-paths``; large artifacts through ``git lfs clean``);
   build the tree in a *temporary* index read from HEAD (``GIT_INDEX_FILE``,
   ``read-tree``, ``update-index --index-info``, ``write-tree``) and the
   commit object (``commit-tree``).  Nothing the user can see has changed.
2. **Journal**: write ``<git-dir>/octostore/journal.json`` (atomically) naming
   the old and new commit, the staging folder and the index lines.
3. **Place**: move the staged run folders into ``.octostore/runs`` (one rename
   per run) and add exactly our paths to the user's index (``update-index
   --index-info``: her other staged and unstaged changes are untouched).
4. **Commit point**: ``update-ref <branch> <new> <old>``, which fails if the
   branch moved meanwhile (then the commit is rebuilt on the new tip).
5. **Clean up** the journal and staging folder; push only when asked.

A ``kill -9`` before step 2 leaves the repo as it was (the staging folder is
removed next time).  After it, the journal lets the next ``octostore commit``
finish the job (:func:`.journal.recover`): files placed, index entries added, branch
moved; if the branch moved elsewhere meanwhile the same tree is committed on
top of it, and if someone already committed those files nothing more is done.
Steps 3-4 take milliseconds, and the half-way state they can leave (our files
in the work tree and staged, the branch not yet moved) loses nothing: a plain
``git commit`` by the user would commit them too.  History is never
rewritten: the branch only moves forward to a child of its old tip.

The repo's pre-commit and commit-msg hooks run on the temporary index just
before ``commit-tree`` (:mod:`.hooks`; ``no_verify`` skips them); a journal is
signed with the user's key and only such journals are replayed
(:mod:`.journalkey`); a run exported again keeps the user's files in its folder
and refuses to overwrite one she edited (:mod:`.userfiles`); no folder the runs
land in may be a link out of the repo (:func:`.sourcepaths.check_destinations`).

A second commit with nothing new finds every file identical to HEAD's and
commits nothing.  What goes in besides the runs is :mod:`.contents`; the
journal, the roll-forward and the test hook that stops a commit at a phase are
:mod:`.journal`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import git
from .contents import gitignore, plan_files
from .data import DataRefused, not_committed, plan_data
from .export import COMMITTED_STORE, MODE_LINK, FileOut, RunExport, RunSource
from .journal import (
    STATE,
    build_commit,
    checkpoint,
    clear,
    finish,
    journal_status,
    recover,
    write_journal,
)
from .hooks import run_hooks as _run_hooks
from .plan import message as build_message
from .sourcepaths import UnsafeDestination, check_destinations, copy_regular
from .userfiles import UserEdits
from .userfiles import user_files as _user_files

Progress = Callable[[str, str], None]


@dataclass(slots=True)
class CommitRequest:
    root: str
    sources: list[RunSource]
    skipped: list[dict[str, str]] = field(default_factory=list)
    already_committed: int = 0
    message: str | None = None
    dry_run: bool = False
    push: bool = False
    max_artifact_bytes: int = 10 * 1024 * 1024
    gitignore_db: bool = False
    sqlite_stores: list[str] = field(default_factory=list)
    """Absolute paths of the root's SQLite stores (checked against ``.gitignore``)."""
    no_verify: bool = False
    """Skip the repo's pre-commit and commit-msg hooks."""
    trusted_dirs: list[str] = field(default_factory=list)
    """Folders outside the repo octostore made for this commit (server runs' downloads)."""
    other_branches: list[dict[str, str]] = field(default_factory=list)
    """Runs made on other branches, left out (:func:`.branches.split_other_branches`)."""
    data: list[str] = field(default_factory=list)
    """Data files or folders the user named (``--data``): added to the commit (:mod:`.data`)."""


class Busy(git.GitError):
    pass


__all__ = ["Busy", "CommitRequest", "DataRefused", "UnsafeDestination", "UserEdits", "commit"]



# -- entry point ------------------------------------------------------------------------------
def commit(req: CommitRequest, progress: Progress | None = None) -> dict[str, Any]:
    """Commit (or with ``dry_run`` plan) the runs of ``req``; return what was done.

    Raises:
        git.NotARepo: the root is not in a git repository.
        git.RepoBusy: a merge/rebase/... is in progress or git holds the index lock.
        Busy: another octostore commit is running in this repo.
        git.GitError: a git command failed (the repo is left as it was).
    """
    say = progress or (lambda phase, text: None)
    info = git.repo_info(req.root)
    top = info.top
    state = os.path.join(info.git_dir, STATE)
    os.makedirs(state, exist_ok=True)
    with _commit_lock(state):
        result = _empty_result(top, req)
        if req.dry_run:
            pending = journal_status(info)
            if pending:
                result["warnings"].append(pending)
        else:
            git.check_idle(info)  # never finish an old commit in the middle of a merge
            say("recover", "checking for an interrupted commit")
            result["recovered"] = recover(info, result["warnings"])
        git.check_idle(info)
        old, branch = git.head(top)
        result["branch"] = branch[len("refs/heads/"):] if branch and branch.startswith(
            "refs/heads/") else branch
        say("export", f"exporting {len(req.sources)} run(s)")
        lfs = git.lfs_available(top)
        staging = os.path.join(state, f"staging-{uuid.uuid4().hex[:12]}")
        try:
            # Compressed console logs are written straight into the staging folder.
            files, exports = plan_files(top, req, lfs, result,
                                        None if req.dry_run else staging)
            files = _add_data(top, req, lfs, result, files)
            gitignore(top, req, result)
            # Only the folders a run lands in (a few per commit), never one per file.
            run_folders = {e.folder for e in exports}
            check_destinations(top, [e.folder + "/x" for e in exports] + [
                f.rel for f in files if not f.in_place and _run_folder(f.rel) not in run_folders])
            msg = build_message([s.run for s in req.sources],
                                [e.exp_name for e in exports], req.message)
            if not req.sources and result["data"]:
                msg = data_message(result["data"], req.message)
            result["message"] = msg
            if not req.sources and not result["data"]:
                result["nothing_to_commit"] = True
                return result
            if req.dry_run:
                return result
            checkpoint(state, "exported")
            outcome = _commit_files(info, state, staging, files, exports, old, branch, msg,
                                    lfs, say, result, req.no_verify)
        finally:
            if os.path.isdir(staging) and not os.path.exists(os.path.join(state, "journal.json")):
                shutil.rmtree(staging, ignore_errors=True)
        if outcome is None:
            result["nothing_to_commit"] = True
            return result
        result["commit"] = outcome
        result["committed"] = True
    if req.push:
        say("push", "pushing")
        _push(top, branch, result)
    return result


def _empty_result(top: str, req: CommitRequest) -> dict[str, Any]:
    return {
        "root": top, "dry_run": req.dry_run, "committed": False, "commit": None,
        "branch": None, "nothing_to_commit": False, "message": "", "runs": [],
        "skipped": req.skipped, "already_committed": req.already_committed, "files": 0,
        "bytes": 0, "artifacts": {"lfs": [], "left_out": []}, "locks": [], "patches": [],
        "inputs": [], "notebooks": [], "models": [], "other_branches": req.other_branches,
        "env_files": [], "lfs_setup": False, "gitignore": {"suggest": [], "added": []},
        "pushed": None, "recovered": None, "warnings": [], "logs": [],
        "origins": [], "refused": [], "kept": [], "data": [], "not_committed": None,
    }


def _add_data(top: str, req: CommitRequest, lfs: bool, result: dict[str, Any],
              files: list[FileOut]) -> list[FileOut]:
    """The ``--data`` files joined to the commit's; the runs' inputs left out listed."""
    extra = plan_data(top, req.data, req.max_artifact_bytes, lfs, result)
    not_committed(top, result["inputs"], {d["path"] for d in result["data"]}, result)
    if not extra:
        return files
    by_rel = {f.rel: f for f in files}
    for f in extra:
        by_rel[f.rel] = f
    out = sorted(by_rel.values(), key=lambda f: f.rel)
    result["files"] = len(out)
    result["bytes"] = sum(f.size for f in out)
    return out


def data_message(data: list[dict[str, Any]], user_message: str | None) -> str:
    """A commit of data only: the user's subject, or one that names the files."""
    names = [d["path"] for d in data]
    summary = "octostore: data " + ", ".join(names[:3]) + (
        f" and {len(names) - 3} more" if len(names) > 3 else "")
    if user_message and user_message.strip():
        return f"{user_message.strip()}\n\n{summary}\n"
    return summary + "\n"


# -- committing ----------------------------------------------------------------------------
def _commit_files(info: git.RepoInfo, state: str, staging: str, files: list[FileOut],
                  exports: list[RunExport], old: str | None, branch: str | None, msg: str,
                  lfs: bool, say: Progress, result: dict[str, Any],
                  no_verify: bool = False) -> str | None:
    top = info.top
    say("stage", f"writing {len(files)} files")
    os.makedirs(staging, exist_ok=True)
    _write_staging(staging, files)
    say("hash", "hashing files into git")
    if any(f.lfs for f in files):
        result["lfs_setup"] = _ensure_lfs(top)
    shas = _hash_files(top, staging, files)
    head_entries = _ls_tree(top, old, [COMMITTED_STORE] + [f.rel for f in files
                                                            if not f.rel.startswith(".octostore/")]
                            + [".octostore"])
    lines: list[str] = []
    new_paths = {f.rel for f in files}
    for f in files:
        if head_entries.get(f.rel) != (f.mode, shas[f.rel]):
            lines.append(f"{f.mode} {shas[f.rel]}\t{f.rel}")
    # A run exported again: the user's files in its folder stay (and stay in the tree),
    # a file she edited refuses the commit; only octostore's own stale markers go.
    kept, remove = _user_files(top, files, exports, head_entries, shas, result)
    by_folder: dict[str, list[str]] = {}
    for path in head_entries:
        by_folder.setdefault(_run_folder(path), []).append(path)
    for ex in exports:
        for path in by_folder.get(ex.folder, []):
            if path not in new_paths and path not in kept:
                lines.append(f"0 {git.ZERO_OID}\t{path}")
    if not lines:
        return None
    hooks = None if no_verify else (lambda index, message: _run_hooks(top, index, message,
                                                                      result))
    new = build_commit(top, staging, old, lines, msg, hooks)
    checkpoint(state, "prepared")
    units = _units(top, staging, files, exports)
    journal = {"old": old, "new": new, "ref": branch or "HEAD", "staging": staging,
               "lines": lines, "units": units, "message": msg, "remove": remove,
               "runs": [ex.run_id for ex in exports]}
    write_journal(state, journal)
    checkpoint(state, "journaled")
    say("place", "placing the runs in .octostore/runs")
    finish(info, state, journal)
    checkpoint(state, "committed")
    clear(state, journal)
    return str(journal["new"])


def _write_staging(staging: str, files: list[FileOut]) -> None:
    for f in files:
        if f.in_place:
            continue
        dest = os.path.join(staging, f.rel)
        if f.src == dest:
            continue  # made in place (a compressed console log)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if f.mode == MODE_LINK:
            os.symlink((f.data or b".").decode(), dest)
        elif f.data is not None:
            with open(dest, "wb") as out:
                out.write(f.data)
        else:
            assert f.src is not None
            copy_regular(f.src, dest)  # never a link, a FIFO or a device
            if f.mode == "100755":
                os.chmod(dest, 0o755)


def _ensure_lfs(top: str) -> bool:
    """Set up Git LFS in this repo when its filter is not configured; True when it was."""
    have = git.run(top, "config", "--get", "filter.lfs.clean", check=False).stdout.strip()
    if have:
        return False
    git.run(top, "lfs", "install", "--local")
    return True


def _hash_files(top: str, staging: str, files: list[FileOut]) -> dict[str, str]:
    shas: dict[str, str] = {}
    paths: list[tuple[str, str]] = []
    pointers = os.path.join(staging, ".lfs-pointers")
    for i, f in enumerate(files):
        if f.mode == MODE_LINK:
            shas[f.rel] = _hash_bytes(top, f.data or b".")
            continue
        path = f.src if f.in_place else os.path.join(staging, f.rel)
        assert path is not None
        if f.lfs:
            with open(path, "rb") as big:
                proc = git.run(top, "lfs", "clean", "--", f.rel, stdin=big)
            os.makedirs(pointers, exist_ok=True)
            path = os.path.join(pointers, str(i))
            with open(path, "wb") as p:
                p.write(proc.stdout)
        if "\n" in path:
            with open(path, "rb") as fh:
                shas[f.rel] = _hash_bytes(top, fh.read())
            continue
        paths.append((f.rel, path))
    if paths:
        proc = git.run(top, "hash-object", "-w", "--no-filters", "--stdin-paths",
                       input=("\n".join(p for _, p in paths) + "\n").encode("utf-8"))
        got = proc.stdout.decode().split()
        if len(got) != len(paths):
            raise git.GitError("git hash-object returned fewer ids than files",
                               "try again; your repo was not changed")
        for (rel, _), sha in zip(paths, got):
            shas[rel] = sha
    return shas


def _hash_bytes(top: str, data: bytes) -> str:
    return git.out(top, "hash-object", "-w", "--no-filters", "--stdin", input=data)


def _ls_tree(top: str, commit: str | None, paths: list[str]) -> dict[str, tuple[str, str]]:
    if commit is None:
        return {}
    proc = git.run(top, "ls-tree", "-r", "-z", "--full-tree", commit, "--",
                   *dict.fromkeys(paths))
    out: dict[str, tuple[str, str]] = {}
    for rec in proc.stdout.decode("utf-8", "replace").split("\0"):
        if not rec:
            continue
        meta, _, path = rec.partition("\t")
        mode, _kind, sha = meta.split()
        out[path] = (mode, sha)
    return out



def _units(top: str, staging: str, files: list[FileOut],
           exports: list[RunExport]) -> list[list[str]]:
    """(staged path, work-tree path) pairs to move: whole run folders, then single files."""
    units: list[list[str]] = []
    folders = {ex.folder for ex in exports}
    for folder in sorted(folders):
        units.append([os.path.join(staging, folder), os.path.join(top, folder)])
    for f in files:
        if f.in_place or _run_folder(f.rel) in folders:
            continue
        units.append([os.path.join(staging, f.rel), os.path.join(top, f.rel)])
    return units


def _run_folder(rel: str) -> str:
    """``.octostore/runs/<exp>/<run>`` for a path inside a run folder (else a shorter prefix)."""
    return "/".join(rel.split("/", 4)[:4])


# -- locking, pausing, pushing ------------------------------------------------------------------
@contextmanager
def _commit_lock(state: str) -> Iterator[None]:
    fd = os.open(os.path.join(state, "commit.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise Busy("another `octostore commit` is running in this repo",
                       "wait for it to finish, then try again") from None
        yield
    finally:
        os.close(fd)



def _push(top: str, branch: str | None, result: dict[str, Any]) -> None:
    if not branch or not branch.startswith("refs/heads/"):
        result["pushed"] = False
        result["push_error"] = "HEAD is detached, so there is no branch to push"
        return
    name = branch[len("refs/heads/"):]
    remote = git.run(top, "config", "--get", f"branch.{name}.remote", check=False)
    remote_name = remote.stdout.decode().strip()
    if not remote_name:
        remotes = git.out(top, "remote").split()
        remote_name = "origin" if "origin" in remotes else (remotes[0] if remotes else "")
    if not remote_name:
        result["pushed"] = False
        result["push_error"] = ("the repo has no remote; add one with `git remote add origin URL` "
                                "and run `git push`")
        return
    proc = git.run(top, "push", remote_name, f"{branch}:{branch}", check=False)
    result["pushed"] = proc.returncode == 0
    if proc.returncode != 0:
        result["push_error"] = (f"git push to {remote_name} failed: {git.first_line(proc.stderr)}"
                                "; the commit is made, push it with `git push` once that is fixed")

