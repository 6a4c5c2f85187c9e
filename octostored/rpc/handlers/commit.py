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
``gitignore_db`` (add the SQLite stores to ``.gitignore``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import TYPE_CHECKING, Any

from .. import protocol
from ..errors import ExperimentNotFound, OctostoreError, RunNotFound
from ..params import Params

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from ..server import Daemon

class CommitRefused(OctostoreError):
    """The repo cannot take a commit now (not a repo, a merge in progress, another commit)."""

    CODE = protocol.COMMIT_REFUSED


class GitFailed(OctostoreError):
    """A git command failed; the repo was left as it was."""

    CODE = protocol.GIT_FAILED


def register(ls: LanguageServer, daemon: Daemon) -> None:
    @ls.feature("octostore/commit")
    async def commit(ls: LanguageServer, params: Any) -> dict[str, Any]:
        from ...gitops import git
        from ...gitops.commit import Busy, CommitRequest
        from ...gitops.commit import commit as run_commit
        from ...gitops.export import RunSource
        from ...gitops.plan import SelectionError, max_artifact_bytes, select_runs

        p = Params("octostore/commit", params)
        root = await daemon.root(p.str("root", required=True))
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
        await root.sync()
        idx = root.index
        try:
            sel = select_runs(list(idx.runs.values()), idx.experiments, run_ids, experiment)
        except SelectionError as exc:
            cls = ExperimentNotFound if "experiment" in exc.message else RunNotFound
            raise cls(exc.message, exc.remedy) from None
        sources = []
        for run in sel.runs:
            info = idx.sources.get(run.source)
            exp = idx.experiments.get(run.experiment_key or run.experiment_id)
            sources.append(RunSource(dataclasses.replace(run), info.kind if info else "file",
                                     dataclasses.replace(exp) if exp else None))
        req = CommitRequest(
            root=root.path, sources=sources, skipped=sel.skipped,
            already_committed=sel.already_committed, message=user_message, dry_run=dry_run,
            push=push, max_artifact_bytes=max_artifact_bytes(root.path, max_mb),
            gitignore_db=gitignore_db,
            sqlite_stores=[s.path for s in idx.sources.values() if s.kind == "sqlite"])
        job = f"commit-{uuid.uuid4().hex[:8]}"
        loop = asyncio.get_running_loop()

        def progress(phase: str, text: str) -> None:
            payload = {"job": job, "kind": "commit", "root": root.path, "phase": phase,
                       "message": text}
            loop.call_soon_threadsafe(_notify, ls, payload)

        try:
            result = await asyncio.to_thread(run_commit, req, progress)
        except (git.NotARepo, git.RepoBusy, Busy) as exc:
            raise CommitRefused(exc.message, exc.remedy) from None
        except git.GitError as exc:
            raise GitFailed(exc.message, exc.remedy) from None
        except OSError as exc:
            raise GitFailed(f"cannot write the commit ({exc.strerror}: {exc.filename})",
                            "fix the file's permissions or free some space; your repo was "
                            "not changed") from None
        if result["committed"] or result["recovered"] or result["gitignore"]["added"]:
            await root.sync()
        result["job"] = job
        result["clock"] = root.index.clock
        return result


def _notify(ls: LanguageServer, payload: dict[str, Any]) -> None:
    try:
        ls.protocol.notify(protocol.NOTIFICATION_JOB, payload)
    except Exception:  # noqa: BLE001 - a closed connection must not fail the commit
        pass
