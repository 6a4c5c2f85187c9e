"""Runs made on other branches: listed apart, left out unless asked.

A run records the commit its code stood at (``octostore.git.commit``, our capture's tag,
else MLflow's ``mlflow.source.git.commit``).  When that commit is not an ancestor of HEAD,
the run was made on another branch (or on a commit this repo does not have): committing it
here would put a run whose code is not in this branch's history onto it without a word.
Such runs are left out of the commit unless the user asks (``include_other_branches``, or
names them by id), and the plan lists each with its commit and why.

Batched: each distinct commit is asked once (``git cat-file --batch-check`` for all of them
in one call, then one ``git merge-base --is-ancestor`` per commit that exists), however many
runs share it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import git

if TYPE_CHECKING:
    from ..model import Run

COMMIT_TAGS = ("octostore.git.commit", "mlflow.source.git.commit")
HEX = frozenset("0123456789abcdef")


def run_commit(run: Run) -> str | None:
    """The commit a run was made at, from its tags (None: it does not say)."""
    for tag in COMMIT_TAGS:
        value = (run.tags.get(tag) or "").strip().lower()
        if 4 <= len(value) <= 64 and set(value) <= HEX:
            return value
    return None


def not_in_history(top: str, commits: set[str]) -> dict[str, str]:
    """{commit: why it is not HEAD's history} for the commits that are not ancestors of HEAD
    (empty when HEAD has no commit yet or git cannot say)."""
    if not commits:
        return {}
    try:
        head = git.run(top, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
        if head.returncode != 0:
            return {}
        ordered = sorted(commits)
        proc = git.run(top, "cat-file", "--batch-check=%(objectname) %(objecttype)",
                       input=("".join(c + "\n" for c in ordered)).encode("ascii"))
        lines = proc.stdout.decode("ascii", "replace").splitlines()
    except git.GitError:
        return {}
    out: dict[str, str] = {}
    for commit, line in zip(ordered, lines):
        parts = line.split()
        if len(parts) != 2 or parts[1] != "commit":
            out[commit] = "its commit is not in this repo"
            continue
        try:
            rc = git.run(top, "merge-base", "--is-ancestor", parts[0], "HEAD",
                         check=False).returncode
        except git.GitError:
            continue
        if rc == 1:
            out[commit] = "made on another branch (its commit is not in HEAD's history)"
    return out


def split_other_branches(top: str, runs: list[Run],
                         include: bool = False) -> tuple[list[Run], list[dict[str, Any]]]:
    """(runs to commit, runs of other branches ``{run_id, run_name, commit, reason,
    included}``).  With ``include`` the latter are committed too (and still listed)."""
    commits = {c for r in runs if (c := run_commit(r)) is not None}
    away = not_in_history(top, commits)
    kept: list[Run] = []
    other: list[dict[str, Any]] = []
    for run in runs:
        commit = run_commit(run)
        reason = away.get(commit) if commit is not None else None
        if reason is None:
            kept.append(run)
            continue
        other.append({"run_id": run.run_id, "run_name": run.run_name, "commit": commit,
                      "reason": reason, "included": include})
        if include:
            kept.append(run)
    return kept, other
