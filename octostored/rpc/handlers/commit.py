"""commit: put runs into one git commit (or, with ``dry_run``, say what would go in).

Thin by design: check params, bring the index up to date, choose the runs
(:func:`octostored.gitops.plan.select_runs`), then run the commit as a job on a
worker thread (:func:`octostored.gitops.commit.commit`), never on the event
loop.  Progress goes to the calling connection as ``octostore/job``
notifications ``{job, kind: "commit", root, phase, message}``.  Once the
commit is made the root is synced, so the reply's ``clock`` already shows the
runs as committed.

Params: ``root``, ``run_ids`` (ids or prefixes; default: every run not yet
committed), ``experiment`` (names or ids), ``message``, ``dry_run``,
``push``, ``max_artifact_mb`` (default ``[tool.octostore.commit]`` or 10),
``gitignore_db`` (add the SQLite stores to ``.gitignore``), ``no_verify`` (skip the
repo's pre-commit and commit-msg hooks, which otherwise run on exactly what the
commit holds; a hook that fails gives HOOK_REFUSED with its output in ``data``),
``include_other_branches`` (also commit runs made on other branches: their
``octostore.git.commit`` / ``mlflow.source.git.commit`` is not an ancestor of HEAD; by
default they are left out and listed in the reply's ``other_branches``; runs named in
``run_ids`` are always taken), ``data`` (paths of data files or folders inside the repo,
absolute or relative to ``root``: added to the commit, through Git LFS over the size limit;
a git-ignored one with force; a path outside the repo, or a big file without git-lfs,
gives COMMIT_REFUSED in one sentence).

The reply lists the ``data`` files (``path, size, route`` "git" / "git-lfs", ``ignored``,
``note``) and, in ``not_committed`` (null when none), the runs' inputs git does not hold
(``files``: ``path, size, sha256, why`` "git-ignored" / "untracked"; ``message``: why it
matters and what to do).

The reply lists each run's logged models in ``models`` (``run_id, model_id, name, size,
files, route`` "git" / "git-lfs" / "left-out", ``reason``, ``lfs_files``) and the input
records and notebook copies committed with the runs in ``inputs`` and ``notebooks``.

A run counts as committed when its folder is in HEAD's tree (one ``git ls-tree`` per
plan), so after a checkout or reset that dropped the commit the runs are committed again.

Runs of a tracking server (a ``remote`` source) are committed when named, by id or
by experiment; the default "every run not committed yet" leaves them out (a shared
server holds the whole team's runs) and the reply counts them in
``remote_not_selected``.  Before the export, their metric histories are fetched and
their artifacts downloaded (into a temp folder of the daemon's cache, removed after)
through the server's worker, on the event loop; a run whose data cannot be fetched
is skipped with the server's reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import tempfile
import uuid
from typing import TYPE_CHECKING, Any

from .. import protocol
from ..errors import (CommitRefused, ExperimentNotFound, GitFailed, HookRefused, OctostoreError,
                      RunNotFound)
from ..params import Params
from ..register import rooted

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from ...gitops.export import RunSource
    from ...index.root import Root
    from ...model import Run
    from ...hub import Hub


def register(ls: LanguageServer, daemon: Hub) -> None:
    @rooted(ls, daemon, "octostore/commit")
    async def commit(ls: LanguageServer, p: Params, root: Root) -> dict[str, Any]:
        from ...gitops.export import RunSource
        from ...gitops.plan import SelectionError, select_runs

        run_ids = p.str_list("run_ids")
        experiment = p.str_list("experiment")
        user_message = p.str("message")
        dry_run = p.bool("dry_run", False)
        push = p.bool("push", False)
        gitignore_db = p.bool("gitignore_db", False)
        max_mb = p.float("max_artifact_mb")
        if max_mb is not None and max_mb < 0:
            raise OctostoreError("octostore/commit: 'max_artifact_mb' must be 0 or more",
                                 "fix the request's params")
        no_verify = p.bool("no_verify", False)
        include_other = p.bool("include_other_branches", False)
        data = [d if os.path.isabs(d) else os.path.join(root.path, d)
                for d in p.str_list("data") or []]
        await root.sync()
        idx = root.index
        candidates = list(idx.runs.values())
        # Committed means in HEAD's tree, asked of git now (not the work tree, not the index).
        head = await asyncio.to_thread(_head_run_ids, root.path)
        done = (lambda r: r.run_id in head) if head is not None else (lambda r: r.committed)
        remote_not_selected = 0
        if not run_ids and not experiment:  # a shared server's runs only when named
            local = [r for r in candidates if not _server_only(root, r)]
            remote_not_selected = sum(1 for r in candidates if not done(r)) - sum(
                1 for r in local if not done(r))
            candidates = local
        try:
            sel = select_runs(candidates, idx.experiments, run_ids, experiment, head)
        except SelectionError as exc:
            cls = ExperimentNotFound if "experiment" in exc.message else RunNotFound
            raise cls(exc.message, exc.remedy) from None
        # Runs made on other branches: listed apart, left out unless asked or named.
        chosen, other_branches = await asyncio.to_thread(
            _split_branches, root.path, sel.runs, include_other or bool(run_ids))
        sources = []
        for run in chosen:
            info = idx.sources.get(run.source)
            exp = idx.experiments.get(run.experiment_key or run.experiment_id)
            sources.append(RunSource(dataclasses.replace(run), info.kind if info else "file",
                                     dataclasses.replace(exp) if exp else None))
        downloads = os.path.join(root.cache_dir, "remote-artifacts")
        temp: list[str] = []
        try:
            return await _commit(ls, root, sources, sel, user_message, dry_run, push,
                                 gitignore_db, max_mb, remote_not_selected, downloads, temp,
                                 no_verify, other_branches, data)
        finally:
            for folder in temp:
                await asyncio.to_thread(shutil.rmtree, folder, True)


async def _commit(ls: LanguageServer, root: Root, sources: list[RunSource], sel: Any,
                  user_message: str | None, dry_run: bool, push: bool, gitignore_db: bool,
                  max_mb: float | None, remote_not_selected: int, downloads: str,
                  temp: list[str], no_verify: bool = False,
                  other_branches: list[dict[str, Any]] | None = None,
                  data: list[str] | None = None) -> dict[str, Any]:
    from ...gitops import git
    from ...gitops.commit import Busy, CommitRequest, DataRefused, UnsafeDestination, UserEdits
    from ...gitops.commit import commit as run_commit
    from ...gitops.plan import max_artifact_bytes

    idx = root.index
    job = f"commit-{uuid.uuid4().hex[:8]}"
    loop = asyncio.get_running_loop()

    def progress(phase: str, text: str) -> None:
        payload = {"job": job, "kind": "commit", "root": root.path, "phase": phase,
                   "message": text}
        loop.call_soon_threadsafe(_notify, ls, payload)

    n_remote = sum(1 for src in sources if src.kind == "remote")
    if n_remote:
        progress("fetch", f"fetching {n_remote} run(s) from their MLflow server")
        sources = await _fetch_server_runs(root, sources, sel.skipped, downloads, temp)
    req = CommitRequest(
        root=root.path, sources=sources, skipped=sel.skipped,
        already_committed=sel.already_committed, message=user_message, dry_run=dry_run,
        push=push, max_artifact_bytes=max_artifact_bytes(root.path, max_mb),
        gitignore_db=gitignore_db, no_verify=no_verify,
        trusted_dirs=list(temp), other_branches=other_branches or [], data=data or [],
        sqlite_stores=[s.path for s in idx.sources.values() if s.kind == "sqlite"])
    try:
        result = await asyncio.to_thread(run_commit, req, progress)
    except git.HookFailed as exc:
        raise HookRefused(exc.message, exc.remedy, hook=exc.hook, output=exc.output) from None
    except (git.NotARepo, git.RepoBusy, Busy, UserEdits, UnsafeDestination,
            DataRefused) as exc:
        raise CommitRefused(exc.message, exc.remedy) from None
    except git.GitError as exc:
        raise GitFailed(exc.message, exc.remedy) from None
    except OSError as exc:
        raise GitFailed(f"cannot write the commit ({exc.strerror}: {exc.filename})",
                        "fix the file's permissions or free some space; your repo was "
                        "not changed") from None
    if result["committed"] or result["recovered"] or result["gitignore"]["added"]:
        await root.sync(remote=False)
    result["job"] = job
    result["clock"] = root.index.clock
    result["remote_not_selected"] = remote_not_selected
    return result


def _head_run_ids(path: str) -> frozenset[str] | None:
    """The runs in HEAD's tree under ``.octostore/runs`` of the work tree's top (where the
    commit puts them), or None when git cannot say."""
    from ...gitops import git
    from ...paths import repo_top

    try:
        return git.head_run_ids(repo_top(path))
    except git.GitError:
        return None


def _split_branches(path: str, runs: list[Run],
                    include: bool) -> tuple[list[Run], list[dict[str, Any]]]:
    """(runs to commit, runs made on other branches) (:mod:`...gitops.branches`)."""
    from ...gitops import git
    from ...gitops.branches import split_other_branches
    from ...paths import repo_top

    try:
        return split_other_branches(repo_top(path), runs, include)
    except git.GitError:
        return runs, []


def _server_only(root: Root, run: Run) -> bool:
    """True for a run found only on tracking servers (not in any store of the repo)."""
    return all((info := root.index.sources.get(s)) is not None and info.kind == "remote"
               for s in run.sources) and bool(run.sources)


async def _fetch_server_runs(root: Root, sources: list[RunSource], skipped: list[dict[str, str]],
                             downloads: str, temp: list[str]) -> list[RunSource]:
    """Fetch what the export of each server run needs (histories, artifacts) through its
    source; a run whose server fails is skipped with the server's reason."""
    from ...sources.remote import RemoteError

    kept = []
    for src in sources:
        if src.kind != "remote":
            kept.append(src)
            continue
        run = src.run
        st = root.stores.get(run.source)
        remote = st.remote if st is not None else None
        if remote is None:
            skipped.append({"run_id": run.run_id, "reason": f"the MLflow server {run.source} "
                            "is no longer a source of this repo"})
            continue
        try:
            src.histories = {key: await remote.metric_history(run.run_id, key)
                             for key in sorted(run.metrics)}
            await asyncio.to_thread(os.makedirs, downloads, 0o700, True)
            dest = await asyncio.to_thread(tempfile.mkdtemp, "", f"{run.run_id[:12]}-",
                                           downloads)
            temp.append(dest)
            src.artifact_dir = await remote.download_artifacts(run.run_id, dest)
        except RemoteError as exc:
            skipped.append({"run_id": run.run_id,
                            "reason": f"its data could not be fetched ({exc})"})
            continue
        except OSError as exc:
            skipped.append({"run_id": run.run_id, "reason": "its artifacts could not be "
                            f"downloaded ({exc.strerror}: {exc.filename})"})
            continue
        kept.append(src)
    return kept


def _notify(ls: LanguageServer, payload: dict[str, Any]) -> None:
    """Commit progress, to the connection that asked (through the hub, like every
    notification: a closed connection does not fail the commit)."""
    ls.protocol.daemon.publish(protocol.NOTIFICATION_JOB, payload, to=(ls,))  # type: ignore[attr-defined]
