"""What a commit holds besides the runs: locks, patches, env files, LFS attributes.

:func:`plan_files` turns the chosen runs into the full list of files of the
commit (:class:`~octostored.gitops.export.FileOut`), nothing written yet:

* the runs in file-store layout (:mod:`.export`) and the folders of experiments
  the committed store does not have yet;
* the environment locks, code patches, input records and notebook copies their
  ``octostore.env`` / ``octostore.git.patch`` / ``octostore.inputs`` /
  ``octostore.notebook.copy`` tags name, from ``.octostore/`` or (locks) from the
  user's capture cache when the repo copy is missing;
* the runs' logged models (:mod:`.models`), each listed in ``result["models"]`` with its
  size and route (git, Git LFS, or left out and why);
* the repo's environment files that git does not track yet (tracked ones are
  in history already; modified ones stay the user's: a warning says so);
* the console logs the runs' ``octostore.console_log`` tags name (``.log`` and
  its ``.idx``) at their own paths under ``.octostore/logs/``, so the tag resolves in
  a clone; a log over the artifact limit is committed gzip-compressed as ``.log.gz``
  (through Git LFS when still over it), a log still being written as it is now;
  ``.octostore/logs/.gitignore`` (``*``) keeps uncommitted logs out of ``git status``;
* ``.octostore/.gitattributes``, one Git LFS line per large artifact: a file
  of octostore's own, so the user's ``.gitattributes`` is never edited.

Everything is copied from inside the repo's work tree only (:class:`.sourcepaths.Guard`):
a run whose store is outside is skipped, an artifact folder, a store sub-folder, a lock,
a patch, an environment file or a log that resolves outside is left out, each with a
warning that names it, and a dry run's ``origins`` lists what comes from where (the
refused places first).

:func:`gitignore` checks the SQLite stores against ``.gitignore`` (they are
never committed) and, when asked, adds them.
"""

from __future__ import annotations

import gzip
import os
from typing import TYPE_CHECKING, Any

from . import git
from .export import (
    COMMITTED_STORE,
    ExperimentFolders,
    FileOut,
    RunExport,
    experiment_files,
    export_run,
    safe_segment,
)
from .sourcepaths import Guard

if TYPE_CHECKING:
    from .commit import CommitRequest

GITATTRIBUTES = ".octostore/.gitattributes"
LOGS_GITIGNORE = ".octostore/logs/.gitignore"
LOGS_GITIGNORE_TEXT = b"# Console logs: octostore commits those of committed runs.\n*\n"
LFS_ATTRS = "filter=lfs diff=lfs merge=lfs -text"
HEX = set("0123456789abcdef")


def plan_files(top: str, req: CommitRequest, lfs: bool, result: dict[str, Any],
               staging: str | None = None) -> tuple[list[FileOut], list[RunExport]]:
    """The commit's files.  ``staging``: where files made here (compressed logs) are written;
    None (a dry run) measures them without writing anything."""
    from ..sources.sqlitestore import SqliteStoreError

    from .models import ModelCache

    guard = Guard(top, req.trusted_dirs)
    folders = ExperimentFolders(os.path.join(top, COMMITTED_STORE))
    models = ModelCache(top)
    exports: list[RunExport] = []
    kept = []
    for src in req.sources:
        rid = src.run.run_id
        if not safe_segment(rid):
            req.skipped.append({"run_id": rid, "reason": "its id is not a plain folder name"})
            continue
        if src.kind != "remote" and src.run.location and not guard.allowed(src.run.location):
            result["warnings"].append(guard.refuse(src.run.location, "its store", rid))
            req.skipped.append({"run_id": rid, "reason": "its store is outside the repo"})
            continue
        try:
            ex = export_run(src, folders, req.max_artifact_bytes, lfs, guard, models)
        except (OSError, SqliteStoreError) as exc:
            req.skipped.append({"run_id": rid, "reason": f"its store could not be read ({exc})"})
            continue
        kept.append(src)
        exports.append(ex)
        result["runs"].append({
            "run_id": src.run.run_id, "run_name": src.run.run_name,
            "experiment": ex.exp_name, "folder": ex.folder, "status": src.run.status,
            "source": src.run.source})
        result["warnings"].extend(ex.warnings)
        result["origins"].extend({"source": a, "dest": b, "run_id": rid} for a, b in ex.origins)
        result["artifacts"]["lfs"].extend({"run_id": ex.run_id, **e} for e in ex.lfs)
        result["artifacts"]["left_out"].extend({"run_id": ex.run_id, **e} for e in ex.left_out)
        result["models"].extend({"run_id": ex.run_id, **m} for m in ex.models)
    req.sources = kept
    files: dict[str, FileOut] = {}
    for ident, (name, exp) in folders.new.items():
        for f in experiment_files(ident, name, exp):
            files[f.rel] = f
    for ex in exports:
        for f in ex.files:
            files[f.rel] = f
    for f in _referenced(top, req, result, guard):
        files[f.rel] = f
    for f in _env_files(top, result, guard):
        files.setdefault(f.rel, f)
    for f in _console_logs(top, req, lfs, result, staging, guard):
        files[f.rel] = f
    lfs_paths = [f.rel for f in files.values() if f.lfs]
    if lfs_paths:
        files[GITATTRIBUTES] = _gitattributes(top, lfs_paths, guard)
    out = sorted(files.values(), key=lambda f: f.rel)
    result["refused"] = guard.refused
    # Outside (refused) places first, then what each run's files come from (a dry run's
    # listing: a real commit's reply stays small).
    result["origins"] = [{"source": r["path"], "dest": None, "run_id": r["run_id"],
                          "refused": True, "what": r["what"]} for r in guard.refused] + [
        {**o, "refused": False} for o in result["origins"]] + [
        {"source": f.src, "dest": f.rel, "run_id": None, "refused": False}
        for f in out if f.in_place and f.src] if req.dry_run else []
    result["files"] = len(out)
    result["bytes"] = sum(f.size for f in out)
    return out, exports


def _valid_digest(value: str | None) -> bool:
    return bool(value) and len(value) == 64 and set(value) <= HEX  # type: ignore[arg-type]


def _valid_token(value: str | None) -> bool:
    """An ``octostore.inputs`` record name (``<date>-<time>-<pid>-<hex>``): one plain file
    name, nothing that could climb out of ``.octostore/inputs``."""
    if not value or len(value) > 128 or value[0] in ".-":
        return False
    return set(value) <= TOKEN_CHARS


REFERENCED = (("octostore.env", "envs", ".json", "locks"),
              ("octostore.git.patch", "patches", ".patch", "patches"),
              ("octostore.inputs", "inputs", ".json", "inputs"),
              ("octostore.notebook.copy", "notebooks", ".ipynb", "notebooks"))
"""(tag, folder under .octostore, suffix, result key) of the files a run's capture tags name."""
TOKEN_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_")


def _referenced(top: str, req: CommitRequest, result: dict[str, Any],
                guard: Guard) -> list[FileOut]:
    """The environment locks, patches, input records and notebook copies the runs' capture
    tags name."""
    from ..capture import envlock

    out: list[FileOut] = []
    seen: set[str] = set()
    for src in req.sources:
        tags = src.run.tags
        for tag, folder, suffix, key in REFERENCED:
            digest = tags.get(tag)
            if digest is None:
                continue
            valid = _valid_token(digest) if key == "inputs" else _valid_digest(digest)
            if not valid:
                what = "a record name" if key == "inputs" else "a sha256"
                result["warnings"].append(f"run {src.run.run_id}: tag {tag} is not {what}; "
                                          "ignored")
                continue
            rel = f".octostore/{folder}/{digest}{suffix}"
            if rel in seen:
                continue
            seen.add(rel)
            full = os.path.join(top, rel)
            if os.path.lexists(full) and not guard.regular_inside(full):
                if not guard.allowed(full):
                    result["warnings"].append(guard.refuse(full, f"its {folder[:-1]} file",
                                                           src.run.run_id))
                else:
                    result["warnings"].append(f"run {src.run.run_id}: {rel} is not a regular "
                                              "file; not committed")
                continue
            if os.path.isfile(full):
                out.append(FileOut(rel, src=full, size=os.path.getsize(full), in_place=True))
                result[key].append(digest)
                continue
            text = envlock.cached_text(digest) if key == "locks" else None
            if text is not None:
                out.append(FileOut(rel, data=text.encode("utf-8")))
                result[key].append(digest)
                continue
            what = {"locks": "environment lock", "patches": "code patch",
                    "inputs": "record of inputs", "notebooks": "notebook copy"}[key]
            result["warnings"].append(f"run {src.run.run_id}: its {what} {digest[:12]} is not on "
                                      "this machine; the run is committed without it")
    return out


def _console_logs(top: str, req: CommitRequest, lfs: bool, result: dict[str, Any],
                  staging: str | None, guard: Guard) -> list[FileOut]:
    """The console logs of the runs (each once, however many runs share it)."""
    from ..console.logformat import TAG, index_path
    from ..console.reader import log_is_live, tag_file

    top_real = os.path.realpath(top)
    by_file: dict[str, list[str]] = {}
    for src in req.sources:
        value = src.run.tags.get(TAG)
        if value is None:
            continue
        full, refusal = tag_file(top, value)
        if refusal:
            result["warnings"].append(f"run {src.run.run_id}: {refusal.removeprefix('its ')}")
            continue
        if full is None:
            result["warnings"].append(f"run {src.run.run_id}: its console log {value} is not on "
                                      "this machine; the run is committed without it")
            continue
        by_file.setdefault(full, []).append(src.run.run_id)
    out: list[FileOut] = []
    for full, run_ids in by_file.items():
        rel = os.path.relpath(full, top_real).replace(os.sep, "/")
        try:
            size = os.path.getsize(full)
        except OSError:
            continue
        entry: dict[str, Any] = {"path": rel, "size": size, "runs": run_ids, "live": False}
        if not guard.regular_inside(full):
            result["warnings"].append(f"console log {rel} is not a regular file inside the "
                                      "repo; not committed")
            continue
        idx = index_path(full)
        if guard.regular_inside(idx):
            out.append(FileOut(os.path.relpath(idx, top_real).replace(os.sep, "/"), src=idx,
                               size=os.path.getsize(idx), in_place=True))
        if not full.endswith(".gz") and log_is_live(full):
            entry["live"] = True
            result["warnings"].append(
                f"console log {rel} is still being written; committed as it is now (commit "
                "again after the command ends for the rest)")
        if size <= req.max_artifact_bytes or full.endswith(".gz"):
            out.append(FileOut(rel, src=full, size=size, in_place=True))
            entry["stored"] = "plain"
        else:
            rel = rel + ".gz"
            dest = os.path.join(staging, rel) if staging else None
            packed = _gzip(full, dest)
            entry.update(path=rel, stored="gzip", committed_size=packed)
            if packed > req.max_artifact_bytes and not lfs:
                entry["stored"] = "left-out"
                result["warnings"].append(
                    f"console log {rel} ({packed / 1e6:.1f} MB compressed) is over the "
                    f"{req.max_artifact_bytes / 1e6:.0f} MB limit and git-lfs is not installed; "
                    "left out")
                if dest:
                    os.unlink(dest)
                result["logs"].append(entry)
                continue
            if packed > req.max_artifact_bytes:
                entry["stored"] = "gzip+git-lfs"
            out.append(FileOut(rel, src=dest, size=packed,
                               lfs=packed > req.max_artifact_bytes))
        result["logs"].append(entry)
    if out:
        here = os.path.join(top, LOGS_GITIGNORE)
        if guard.regular_inside(here):
            out.append(FileOut(LOGS_GITIGNORE, src=here, size=os.path.getsize(here),
                               in_place=True))
        else:
            out.append(FileOut(LOGS_GITIGNORE, data=LOGS_GITIGNORE_TEXT,
                               size=len(LOGS_GITIGNORE_TEXT)))
    return out


class _Count:
    """A file-like sink that only counts (a dry run measures the compressed size)."""

    def __init__(self) -> None:
        self.n = 0

    def write(self, data: bytes) -> int:
        self.n += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def _gzip(src: str, dest: str | None) -> int:
    """Compress ``src`` to ``dest`` (or nowhere); the compressed size.  Same bytes in, same
    bytes out (no name, time 0), so an unchanged log is an unchanged blob."""
    sink: Any
    if dest is None:
        sink = _Count()
    else:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        sink = open(dest, "wb")
    try:
        with open(src, "rb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=sink,
                                                 mtime=0, compresslevel=6) as z:
            while chunk := f.read(1 << 20):
                z.write(chunk)
    finally:
        if dest is not None:
            sink.close()
    return sink.n if dest is None else os.path.getsize(dest)


def _env_files(top: str, result: dict[str, Any], guard: Guard) -> list[FileOut]:
    """The repo's environment files that git does not track yet (tracked ones are committed)."""
    from ..envfiles import find_env_files

    rels = find_env_files(top)
    if not rels:
        return []
    proc = git.run(top, "ls-files", "--others", "--exclude-standard", "-z", "--", *rels,
                   check=False)
    untracked = [p for p in proc.stdout.decode("utf-8", "replace").split("\0") if p]
    changed = git.run(top, "diff", "--name-only", "-z", "HEAD", "--", *rels, check=False)
    for p in changed.stdout.decode("utf-8", "replace").split("\0"):
        if p:
            result["warnings"].append(
                f"{p} has uncommitted changes; they stay yours and are not in this commit "
                "(each run's exact environment is in its lock)")
    out = []
    for rel in untracked:
        full = os.path.join(top, rel)
        if os.path.lexists(full) and not guard.regular_inside(full):
            result["warnings"].append(guard.refuse(full, "environment file") if not
                                      guard.allowed(full) else
                                      f"{rel} is not a regular file; not committed")
            continue
        if os.path.isfile(full):
            out.append(FileOut(rel, src=full, size=os.path.getsize(full), in_place=True))
            result["env_files"].append(rel)
    return out


def _attr_pattern(path: str) -> str:
    out = []
    for ch in path:
        if ch in " \t":
            out.append("[[:space:]]")
        elif ch in "*?[]\\!#\"":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _gitattributes(top: str, lfs_paths: list[str], guard: Guard) -> FileOut:
    """``.octostore/.gitattributes`` with one LFS line per large artifact (octostore's own file)."""
    path = os.path.join(top, GITATTRIBUTES)
    try:
        if not guard.regular_inside(path):
            raise OSError("not a regular file inside the repo")
        with open(path, encoding="utf-8") as f:
            current = f.read()
    except OSError:
        current = ("# Managed by `octostore commit`: large run artifacts go through Git LFS.\n")
    lines = current.splitlines()
    have = set(lines)
    for rel in lfs_paths:
        line = f"/{_attr_pattern(rel[len('.octostore/'):])} {LFS_ATTRS}"
        if line not in have:
            lines.append(line)
            have.add(line)
    data = ("\n".join(lines) + "\n").encode("utf-8")
    return FileOut(GITATTRIBUTES, data=data, size=len(data))


def gitignore(top: str, req: CommitRequest, result: dict[str, Any]) -> None:
    """Offer (or with ``gitignore_db`` make) ``.gitignore`` entries for the SQLite stores."""
    rels = []
    for db in req.sqlite_stores:
        rel = os.path.relpath(db, top).replace(os.sep, "/")
        if rel.startswith(".."):
            continue
        tracked = git.run(top, "ls-files", "--error-unmatch", "--", rel, check=False)
        if tracked.returncode == 0:
            result["warnings"].append(
                f"{rel} is tracked by git; octostore never commits it: untrack it with "
                f"`git rm --cached {rel}` and add it to .gitignore")
            continue
        if git.run(top, "check-ignore", "-q", "--", rel, check=False).returncode != 0:
            rels.append(rel)
    if not rels:
        return
    patterns = []
    for rel in rels:
        patterns += [f"/{rel}", f"/{rel}-*"]
    result["gitignore"]["suggest"] = patterns
    if req.gitignore_db and not req.dry_run:
        add = append_to_gitignore(
            top, patterns, "# MLflow's local database: runs are committed by `octostore commit`")
        result["gitignore"]["added"] = add
        result["gitignore"]["suggest"] = []


def append_to_gitignore(root: str, patterns: list[str], comment: str | None = None) -> list[str]:
    """Append the patterns ``.gitignore`` lacks (atomically); return those added."""
    from ..atomicfile import atomic_write

    path = os.path.join(root, ".gitignore")
    try:
        with open(path, "rb") as f:
            current = f.read()
    except FileNotFoundError:
        current = b""
    have = set(current.decode("utf-8", "replace").splitlines())
    add = [p for p in patterns if p not in have]
    if add:
        sep = b"" if not current or current.endswith(b"\n") else b"\n"
        block = (comment + "\n" if comment else "") + "\n".join(add) + "\n"
        atomic_write(path, current + sep + block.encode())
    return add
