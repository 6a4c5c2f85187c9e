"""Plain ``git`` subprocesses for commit and init, with errors a person can act on.

GitPython is not used here: every operation is one or a few plumbing
commands (``hash-object``, ``update-index``, ``write-tree``, ``commit-tree``,
``update-ref``), a subprocess per call is what GitPython would run anyway, and
no long-lived ``Repo`` (and its ``cat-file`` children) can leak into the
daemon (EXEMPLARS.md section 4).  Every call runs with ``LC_ALL=C`` (messages
we can match), ``GIT_TERMINAL_PROMPT=0`` (a push never waits for a password
nobody will type) and without inherited ``GIT_DIR``/``GIT_INDEX_FILE``
unless the caller passes them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

ZERO_OID = "0" * 40
TIMEOUT = 600.0
"""Seconds for one git call (hashing big artifacts, a push over a slow link)."""


class GitError(Exception):
    """A git operation failed; ``str()`` says what happened, ``remedy`` what to do."""

    def __init__(self, message: str, remedy: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy


class NotARepo(GitError):
    pass


class RepoBusy(GitError):
    """A merge, rebase or another git process is in progress."""


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The daemon's environment for a git command: no inherited ``GIT_DIR``/``GIT_INDEX_FILE``
    and friends (they would point git at another repository), C messages we can match, and
    no password prompt nobody would answer; then ``extra``."""
    env = dict(os.environ)
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                "GIT_NAMESPACE", "GIT_PREFIX"):
        env.pop(var, None)
    env["LC_ALL"] = "C"
    env["GIT_TERMINAL_PROMPT"] = "0"
    if extra:
        env.update(extra)
    return env


def run(repo: str, *args: str, input: bytes | None = None, env: dict[str, str] | None = None,
        check: bool = True, timeout: float = TIMEOUT,
        stdin: Any = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``git -C repo args...``; raise :class:`GitError` on failure when ``check``.

    ``input`` is fed to git's stdin; ``stdin`` may instead be an open file (big artifacts
    are streamed, never read into memory).
    """
    cmd = ["git", "-C", repo, *args]
    if input is None and stdin is None:
        stdin = subprocess.DEVNULL
    try:
        proc = subprocess.run(cmd, input=input, capture_output=True, env=clean_env(env),
                              timeout=timeout, stdin=stdin if input is None else None)
    except FileNotFoundError:
        raise GitError("git is not installed", "install git and try again") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {timeout:.0f} s",
                       "try again; if it keeps happening, run the git command by hand") from None
    if check and proc.returncode != 0:
        raise GitError(f"git {args[0]} failed: {first_line(proc.stderr)}",
                       "see the message above; your repo was not changed")
    return proc


def out(repo: str, *args: str, **kw: object) -> str:
    return run(repo, *args, **kw).stdout.decode("utf-8", "replace").strip()  # type: ignore[arg-type]


def first_line(err: bytes) -> str:
    text = err.decode("utf-8", "replace").strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("fatal:", "error:")):
            return ln.split(":", 1)[1].strip()
    return lines[0] if lines else "no message"


@dataclass(frozen=True, slots=True)
class RepoInfo:
    top: str
    """The work tree's top folder."""
    git_dir: str
    """This work tree's git folder (``.git``, or ``.git/worktrees/<name>``)."""
    common_dir: str
    """The folder with objects and refs (differs from ``git_dir`` in a linked worktree)."""
    index: str
    """The path of this work tree's index file."""


def repo_info(path: str) -> RepoInfo:
    """Locate the repo containing ``path``.

    Raises:
        NotARepo: ``path`` is not inside a git work tree.
    """
    proc = run(path, "rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir",
               "--git-path", "index", check=False)
    if proc.returncode != 0:
        raise NotARepo(f"{path} is not in a git repository",
                       "run `git init` there (or `octostore init`) and commit your code first")
    lines = proc.stdout.decode().splitlines()
    top, git_dir, common, index = lines[:4]
    here = os.path.abspath(path)  # relative answers are relative to the folder git ran in
    common = os.path.normpath(os.path.join(here, common))
    index = os.path.normpath(os.path.join(here, index))
    return RepoInfo(top, git_dir, common, index)


IN_PROGRESS = (
    ("MERGE_HEAD", "a merge", "finish it with `git commit` or abort it with `git merge --abort`"),
    ("rebase-merge", "a rebase", "finish it with `git rebase --continue` or `git rebase --abort`"),
    ("rebase-apply", "a rebase or `git am`",
     "finish it with `git rebase --continue` or abort it with `git rebase --abort`"),
    ("CHERRY_PICK_HEAD", "a cherry-pick",
     "finish it with `git cherry-pick --continue` or `git cherry-pick --abort`"),
    ("REVERT_HEAD", "a revert", "finish it with `git revert --continue` or `git revert --abort`"),
    ("BISECT_LOG", "a bisect", "end it with `git bisect reset`"),
)
"""Markers in the git folder of an operation that owns the index and HEAD until it ends."""


def check_idle(info: RepoInfo) -> None:
    """Refuse to commit while git is in the middle of something.

    Raises:
        RepoBusy: a merge, rebase, cherry-pick, revert or bisect is in progress, or another
            git process holds the index lock.
    """
    for marker, what, remedy in IN_PROGRESS:
        if os.path.exists(os.path.join(info.git_dir, marker)):
            raise RepoBusy(f"{info.top} is in the middle of {what}",
                           f"{remedy}, then commit the runs")
    if os.path.exists(info.index + ".lock"):
        raise RepoBusy(f"another git process is using {info.top} ({info.index}.lock exists)",
                       "wait for it to finish (or remove the stale lock file if none runs), "
                       "then try again")


def head(repo: str) -> tuple[str | None, str | None]:
    """(commit id of HEAD or None when unborn, the branch ref HEAD names or None if detached)."""
    ref = run(repo, "symbolic-ref", "-q", "HEAD", check=False)
    branch = ref.stdout.decode().strip() if ref.returncode == 0 else None
    rev = run(repo, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False)
    commit = rev.stdout.decode().strip() if rev.returncode == 0 else None
    return commit, branch


def lfs_available(repo: str) -> bool:
    """True when ``git lfs`` runs here (git finds ``git-lfs`` on PATH or in its exec path)."""
    if shutil.which("git-lfs") is None:
        exec_path = run(repo, "--exec-path", check=False).stdout.decode().strip()
        if not exec_path or not os.path.exists(os.path.join(exec_path, "git-lfs")):
            return False
    return run(repo, "lfs", "version", check=False, timeout=30).returncode == 0


COMMITTED_RUNS = ".octostore/runs"
_head_cache: dict[str, tuple[Any, str, frozenset[str]]] = {}
"""path + store -> (stamp of HEAD and its ref, the store's tree id in HEAD, run ids)."""


def head_run_ids(path: str, store: str = COMMITTED_RUNS) -> frozenset[str] | None:
    """Ids of the runs committed in HEAD's tree under ``store`` (relative to ``path``): a run
    is committed when its ``<exp>/<run>/meta.yaml`` is in HEAD, whatever the work tree holds.

    Cheap enough for every rescan: nothing but a few ``stat`` calls while HEAD and the
    branch it names are unchanged, else one ``rev-parse``, and one ``ls-tree -r`` only when
    the store's tree in HEAD changed.  None when ``path`` is not in a git work tree.
    """
    dotgit = _find_dotgit(path)
    if dotgit is None:
        return None
    key = os.path.realpath(path) + "\0" + store
    stamp = _head_stamp(dotgit)
    hit = _head_cache.get(key)
    if hit is not None and stamp is not None and hit[0] == stamp:
        return hit[2]
    proc = run(path, "rev-parse", "-q", "--verify", f"HEAD:./{store}", check=False, timeout=60)
    oid = proc.stdout.decode().strip() if proc.returncode == 0 else ""
    if not oid:
        inside = run(path, "rev-parse", "--is-inside-work-tree", check=False, timeout=60)
        if inside.returncode != 0 or inside.stdout.strip() != b"true":
            return None
        got: frozenset[str] = frozenset()  # an unborn HEAD, or no committed runs in it
    elif hit is not None and hit[1] == oid:
        got = hit[2]
    else:
        lst = run(path, "ls-tree", "-r", "-z", "--full-tree", "--name-only", oid, check=False,
                  timeout=120)
        ids = set()
        for rel in lst.stdout.decode("utf-8", "replace").split("\0"):
            parts = rel.split("/")
            if len(parts) == 3 and parts[2] == "meta.yaml":
                ids.add(parts[1])
        got = frozenset(ids)
    _head_cache[key] = (stamp, oid, got)
    return got


def _find_dotgit(path: str) -> str | None:
    cur = os.path.abspath(path)
    while True:
        dotgit = os.path.join(cur, ".git")
        if os.path.lexists(dotgit):
            return dotgit
        parent = os.path.dirname(cur)
        if parent == cur:
            return None
        cur = parent


def _head_stamp(dotgit: str) -> Any:
    """Stat stamps of HEAD, the ref it names and ``packed-refs``; None when they cannot
    stand for HEAD's commit (a linked worktree's ``.git`` file: ask git every time)."""
    if not os.path.isdir(dotgit):
        return None

    def st(p: str) -> tuple[int, int, int] | None:
        try:
            s = os.stat(p)
        except OSError:
            return None
        return (s.st_mtime_ns, s.st_size, s.st_ino)

    try:
        with open(os.path.join(dotgit, "HEAD"), "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    ref = head[5:].strip().decode("utf-8", "replace") if head.startswith(b"ref: ") else ""
    if ".." in ref or ref.startswith("/"):
        return None
    return (head, st(os.path.join(dotgit, ref)) if ref else None,
            st(os.path.join(dotgit, "packed-refs")))


class HookFailed(GitError):
    """A hook of the repo refused the commit; ``output`` is what it printed."""

    def __init__(self, message: str, remedy: str, hook: str, output: str) -> None:
        super().__init__(message, remedy)
        self.hook = hook
        self.output = output


def run_hook(top: str, hook: str, index: str, *args: str) -> None:
    """Run the repo's ``hook`` as ``git commit`` would (``git hook run``: ``.git/hooks`` or
    ``core.hooksPath``, nothing else), seeing the commit's own index (``GIT_INDEX_FILE``).

    Raises:
        HookFailed: the hook exited non-zero (or did not end in time).
    """
    try:
        proc = run(top, "hook", "run", "--ignore-missing", hook, *(["--", *args] if args else []),
                   env={"GIT_INDEX_FILE": index}, check=False)
    except GitError as exc:  # a hook that hangs
        raise HookFailed(f"the repo's {hook} hook did not finish ({exc.message})",
                         "fix the hook, or skip hooks with `octostore commit --no-verify`",
                         hook, "") from None
    if proc.returncode != 0:
        text = (proc.stdout + proc.stderr).decode("utf-8", "replace")[-20000:]
        raise HookFailed(f"the repo's {hook} hook refused the commit (exit {proc.returncode})",
                         "fix what it reports (its output is in the error's data), or skip "
                         "hooks with `octostore commit --no-verify`", hook, text)
