"""The repo's own commit hooks, run on octostore's commit as ``git commit`` runs them.

The commit is built on a temporary index (:func:`.journal.build_commit`), so the
hooks run with ``GIT_INDEX_FILE`` naming it: a pre-commit secret scanner that reads
the staged changes (``git diff --cached``) sees exactly what the commit will hold.
Which hook runs is git's business (``git hook run``: ``.git/hooks`` or
``core.hooksPath``, both the user's own config, never a file a clone brings).
``octostore commit --no-verify`` skips them, as ``git commit --no-verify`` does.
"""

from __future__ import annotations

import os
from typing import Any

from . import git


def run_hooks(top: str, index: str, message: str, result: dict[str, Any]) -> str:
    """Run pre-commit, then commit-msg on ``message``; return the message (a commit-msg
    hook may edit it).

    Raises:
        git.HookFailed: a hook refused the commit.
    """
    git.run_hook(top, "pre-commit", index)
    path = os.path.join(os.path.dirname(index), "COMMIT_EDITMSG")
    with open(path, "w", encoding="utf-8") as f:
        f.write(message)
    git.run_hook(top, "commit-msg", index, path)
    with open(path, encoding="utf-8", errors="replace") as f:
        edited = f.read()
    return edited if edited.strip() else message
