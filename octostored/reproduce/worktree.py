"""The run's code, checked out beside the user's: a ``git worktree`` in octostore's cache.

``git worktree add --detach <cache>/reproduce/worktrees/<job> <commit>``
gives the run's commit a work tree of its own (private: 0700, like the folders
above it): the user's work tree, index and branches are never touched (git only
records the extra work tree under ``.git/worktrees/``, and :func:`remove` takes
that record away again).  The run's patch (its uncommitted changes) is applied
there with ``git apply``.

Git runs as plain subprocesses (no GitPython in the daemon: EXEMPLARS.md
section 4) with ``LC_ALL=C`` and without inherited ``GIT_DIR``-style
variables, through :mod:`.proc` so that a cancel stops them.
"""

from __future__ import annotations

import os
import shutil

from .. import paths
from ..gitops.git import clean_env
from ..jobs import JobContext, JobError
from . import proc

GIT_TIMEOUT = 600.0


async def git(repo: str, *args: str, timeout: float = GIT_TIMEOUT) -> tuple[int, str, str]:
    try:
        return await proc.output(["git", "-C", repo, *args], env=clean_env(), timeout=timeout)
    except FileNotFoundError:
        raise JobError("resolve", "git is not installed", "install git and try again") from None


def first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else "no message"


async def repo_top(root: str) -> str:
    code, out, err = await git(root, "rev-parse", "--show-toplevel")
    if code != 0:
        raise JobError("resolve", f"{root} is not a git repository ({first_line(err)})",
                       "reproduce runs from the git repository they were logged in")
    return out.strip()


async def full_commit(repo: str, commit: str) -> str | None:
    """The full id of ``commit`` when the repository has it, else None."""
    code, out, _ = await git(repo, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    return out.strip() if code == 0 and out.strip() else None


async def add(repo: str, path: str, commit: str, ctx: JobContext | None = None) -> None:
    """Check ``commit`` out at ``path`` as a detached work tree of ``repo``.

    Raises:
        JobError: git refused (phase ``checkout``).
    """
    paths.private_folder(os.path.dirname(path), levels=2)  # worktrees/ and reproduce/
    if ctx is not None:
        ctx.record(worktree=path, repo=repo)
    res = await proc.run(["git", "-C", repo, "worktree", "add", "--detach", "--force", path,
                          commit], env=clean_env(), ctx=ctx, timeout=GIT_TIMEOUT)
    if res.code != 0:
        why = first_line("\n".join(res.lines))
        raise JobError("checkout", f"git worktree add failed: {why}",
                       "check that the repository is healthy (`git worktree prune`), then "
                       "try again", log_tail=res.lines[-20:])
    os.chmod(path, 0o700)  # a private checkout (git made it with the umask's mode)


async def apply_patch(path: str, patch: str, ctx: JobContext | None = None) -> None:
    """Apply a run's patch (``git diff HEAD --binary``) in the work tree at ``path``.

    Raises:
        JobError: the patch does not apply (phase ``checkout``).
    """
    res = await proc.run(["git", "-C", path, "apply", "--binary", "--whitespace=nowarn", patch],
                         env=clean_env(), ctx=ctx, timeout=GIT_TIMEOUT)
    if res.code != 0:
        raise JobError("checkout", "the run's patch (its uncommitted changes) does not apply "
                       f"to its commit: {first_line(chr(10).join(res.lines))}",
                       "the patch file may be damaged; check it with `git apply --check`",
                       log_tail=res.lines[-20:])


async def remove(repo: str, path: str) -> None:
    """Remove the work tree at ``path`` and git's record of it (never fails)."""
    try:
        await git(repo, "worktree", "remove", "--force", "--force", path, timeout=120)
    except Exception:  # noqa: BLE001 - the folder goes below whatever git said
        pass
    if os.path.lexists(path):
        shutil.rmtree(path, ignore_errors=True)
    try:
        await git(repo, "worktree", "prune", timeout=120)
    except Exception:  # noqa: BLE001
        pass



