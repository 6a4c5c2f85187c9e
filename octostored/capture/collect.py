"""Computing the capture tags (see :mod:`octostored.capture` for what each one means).

Each part (command, environment, git) is computed on its own: a part that
fails costs its own tags and adds a line to ``octostore.capture_error``; the
other parts are still recorded.  Nothing here raises.
"""

from __future__ import annotations

import json
import os
import sys

from . import envlock, files, gitstate, inputs, notebook

TAG_LIMIT = 5000
"""Longest tag value written (MLflow refuses values over 8000 characters)."""
ARGV_ENV = "OCTOSTORE_RUN_ARGV"
"""Set by ``octostore run``: the command it ran, so the plugin in the child records that."""

PREFIX = "octostore."
ENV_TAG = PREFIX + "env"
PYTHON_TAG = PREFIX + "python"
ARGV_TAG = PREFIX + "argv"
CWD_TAG = PREFIX + "cwd"
DIRTY_TAG = PREFIX + "git.dirty"
PATCH_TAG = PREFIX + "git.patch"
UNTRACKED_TAG = PREFIX + "git.untracked"
COMMIT_TAG = PREFIX + "git.commit"
BIG_TAG = PREFIX + "git.big"
ERROR_TAG = PREFIX + "capture_error"


def portable_argv(argv: list[str]) -> list[str]:
    """The command with its interpreter spelled ``python`` (the lock says which one)."""
    if argv:
        base = os.path.basename(argv[0])
        if base.startswith("python") or base in ("py", "pypy3", "pypy"):
            return ["python", *argv[1:]]
    return list(argv)


def json_list(items: list[str], limit: int = TAG_LIMIT) -> str:
    """``items`` as a JSON list of at most ``limit`` characters (the tail summarised)."""
    text = json.dumps(items, ensure_ascii=False)
    if len(text) <= limit:
        return text
    kept: list[str] = []
    for i, item in enumerate(items):
        trial = json.dumps([*kept, item, f"... and {len(items) - i - 1} more"], ensure_ascii=False)
        if len(trial) > limit:
            return json.dumps([*kept, f"... and {len(items) - i} more"], ensure_ascii=False)
        kept.append(item)
    return json.dumps(kept, ensure_ascii=False)


def default_argv() -> list[str]:
    outer = os.environ.get(ARGV_ENV)
    if outer:
        try:
            value = json.loads(outer)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
        except ValueError:
            pass
    return portable_argv(list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]))


def collect(
    cwd: str | None = None,
    argv: list[str] | None = None,
    lock_text: str | None = None,
    python: str | None = None,
    watch_reads: bool = True,
) -> dict[str, str]:
    """The capture tags for a run started now in ``cwd`` (default: the current folder).

    ``lock_text`` and ``python`` describe another interpreter's environment
    (``octostore run``); by default the running interpreter is locked.  ``watch_reads``
    is False where the training runs in another process (its reads are not seen here).
    """
    tags: dict[str, str] = {}
    errors: list[str] = []
    cwd = os.path.abspath(cwd or os.getcwd())
    repo = gitstate.find_repo(cwd)

    try:
        tags[PYTHON_TAG] = python or envlock.python_version()
        tags[ARGV_TAG] = json_list(argv if argv is not None else default_argv())
        tags[CWD_TAG] = os.path.relpath(cwd, repo).replace(os.sep, "/") if repo else cwd
    except Exception as exc:  # noqa: BLE001 - a run must never fail because of us
        errors.append(f"command: {_describe(exc)}")

    try:
        digest, text = _lock(repo, lock_text)
        tags[ENV_TAG] = digest
        if repo:
            _store_lock(repo, digest, text)
    except Exception as exc:  # noqa: BLE001
        errors.append(f"environment: {_describe(exc)}")

    big_changes: list[dict[str, object]] = []
    if repo:
        try:
            state = gitstate.git_state(repo)
            big_changes = state.big_changes
            if state.head:
                tags[COMMIT_TAG] = state.head
            tags[DIRTY_TAG] = "true" if state.patch or state.untracked or big_changes else "false"
            if state.patch:
                digest = files.sha256_hex(state.patch)
                files.store_once(files.patch_path(repo, digest), state.patch)
                tags[PATCH_TAG] = digest
            if state.untracked:
                tags[UNTRACKED_TAG] = json_list(state.untracked)
            if big_changes:
                tags[BIG_TAG] = json_list([str(c["path"]) for c in big_changes])
        except Exception as exc:  # noqa: BLE001
            errors.append(f"git: {_describe(exc)}")
        try:
            tags.update(notebook.tags(repo, cwd))
        except Exception as exc:  # noqa: BLE001
            errors.append(f"notebook: {_describe(exc)}")
        try:
            tags.update(inputs.tags(repo, big_changes, watch_reads))
        except Exception as exc:  # noqa: BLE001
            errors.append(f"inputs: {_describe(exc)}")

    if errors:
        tags[ERROR_TAG] = "; ".join(errors)[:TAG_LIMIT]
    return tags


def _lock(repo: str | None, text: str | None) -> tuple[str, str | None]:
    if text is not None:
        return files.sha256_hex(text.encode("utf-8")), text
    return envlock.cached_lock(repo)


def _store_lock(repo: str, digest: str, text: str | None) -> None:
    path = files.lock_path(repo, digest)
    if os.path.exists(path):
        return
    if text is None:
        text = envlock.cached_text(digest)
    data = text.encode("utf-8") if text is not None else b""
    if text is None or files.sha256_hex(data) != digest:
        # The cache lost the text (or it was edited): rebuild; the hash must still match.
        data = envlock.lock_text(envlock.build_lock(repo)).encode("utf-8")
        if files.sha256_hex(data) != digest:
            raise RuntimeError("the environment changed while the run started; lock not written")
    files.store_once(path, data)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, gitstate.GitStateError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return f"{type(exc).__name__}: {exc}"
