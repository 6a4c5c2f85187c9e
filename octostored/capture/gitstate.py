"""The code state at run start: HEAD's commit, the uncommitted diff, the untracked source files.

Three ``git`` processes are started together (each costs a couple of milliseconds, mostly
process start): ``git rev-parse HEAD``, ``git ls-files --others --exclude-standard`` and
``git ls-files --debug`` (the index's size and mtime of every tracked file, read without
hashing anything), then ``git diff HEAD`` of tracked files.  A tracked file bigger than
:data:`BIG_FILE` is left out of the diff by a literal pathspec: diffing a 200 MB data file
took 20 s at every ``start_run`` and its text would have gone into the patch.  Such files,
when their size or mtime differ from the index or the index differs from HEAD
(``git diff-index --cached``, which compares object ids and reads no file), are returned
as *big changes*: the capture records them by size and content hash as inputs, and the
run's code state says they are not in the patch.  The diff is made to
apply anywhere whatever the user's git configuration says (``--binary``,
explicit ``a/``/``b/`` prefixes, no external diff or textconv, no colour,
never relative), and leaves out octostore's own folder and MLflow's stores,
which change under every run.  They are left out in Python, not with exclude
pathspecs: a ``:(exclude,glob)**/mlruns/**`` pathspec makes ``git diff`` about
twice as slow.  ``GIT_OPTIONAL_LOCKS=0`` keeps git from taking
the index lock to refresh it, so a run never collides with the user's git.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
"""git's empty tree (sha1 repos): the base of the diff in a repo without commits."""

def excluded(path: str) -> bool:
    """Paths whose changes are MLflow's or ours, not the user's code."""
    parts = path.split("/")
    name = parts[-1]
    return (parts[0] == ".octostore" or "mlruns" in parts[:-1]
            or name in ("mlflow.db", "mlruns.db") or name.startswith("mlflow.db-"))

SOURCE_SUFFIXES = frozenset({
    ".py", ".pyi", ".pyx", ".pxd", ".ipynb", ".r", ".jl", ".sh", ".bash", ".sql", ".scala",
    ".java", ".kt", ".c", ".cc", ".cpp", ".cxx", ".h", ".hpp", ".cu", ".rs", ".go", ".js",
    ".ts", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".json", ".jsonnet", ".mk", ".lock",
})
"""Untracked files that count as code or configuration (data, models, logs and ``.txt``
outputs do not; ``requirements*`` files do, by name)."""
SOURCE_NAMES = frozenset({"Makefile", "Dockerfile", "MLproject", "Pipfile", "Snakefile",
                          "Justfile", "justfile"})

BIG_FILE = 4 * 1024 * 1024
"""A tracked file above this many bytes is left out of the patch (recorded by hash instead)."""
TIMEOUT = 20.0
"""Seconds before a git call is given up (a huge diff); the run goes on with an error tag."""


class GitStateError(Exception):
    pass


def find_repo(start: str) -> str | None:
    """The top of the git work tree containing ``start``, or None."""
    cur = os.path.abspath(start)
    while True:
        if os.path.exists(os.path.join(cur, ".git")):
            return cur
        parent = os.path.dirname(cur)
        if parent == cur:
            return None
        cur = parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env["LC_ALL"] = "C"
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(var, None)  # a run started from inside a git hook must still see its own repo
    return env


def _diff_cmd(repo: str, base: str) -> list[str]:
    return ["git", "-C", repo, "-c", "core.quotepath=off", "diff", base, "--binary",
            "--no-color", "--no-ext-diff", "--no-textconv", "--no-relative", "--no-renames",
            "--src-prefix=a/", "--dst-prefix=b/", "--ignore-submodules=none"]


def _untracked_cmd(repo: str) -> list[str]:
    return ["git", "-C", repo, "ls-files", "--others", "--exclude-standard", "-z"]


def _tracked_cmd(repo: str) -> list[str]:
    return ["git", "-C", repo, "-c", "core.quotepath=off", "ls-files", "--debug", "-z"]


def _head_cmd(repo: str) -> list[str]:
    return ["git", "-C", repo, "rev-parse", "--verify", "-q", "HEAD^{commit}"]


def parse_ls_debug(out: bytes) -> dict[str, tuple[int, int]]:
    """``git ls-files --debug -z``: {path: (index size, index mtime in seconds)}.

    Each entry is ``PATH\\0`` then five indented lines (ctime, mtime, dev/ino, uid/gid,
    size/flags), each ending in a newline; the next path follows the last one."""
    entries: dict[str, tuple[int, int]] = {}
    pos, n = 0, len(out)
    while pos < n:
        end = out.find(b"\0", pos)
        if end < 0:
            break
        stop = end
        for _ in range(5):
            stop = out.find(b"\n", stop + 1)
            if stop < 0:
                return entries
        fields: dict[bytes, bytes] = {}
        for line in out[end + 1:stop].split(b"\n"):
            for part in line.split(b"\t"):
                key, _, value = part.strip().partition(b": ")
                fields[key] = value
        try:
            size = int(fields.get(b"size", b"0"))
            mtime = int(fields.get(b"mtime", b"0").split(b":")[0])
        except ValueError:
            size = mtime = 0
        entries[out[pos:end].decode("utf-8", "surrogateescape")] = (size, mtime)
        pos = stop + 1
    return entries


def big_files(repo: str, index: dict[str, tuple[int, int]]) -> tuple[list[str], list[dict[str, object]]]:
    """(tracked files over :data:`BIG_FILE`, those whose stat says they changed since the
    index): the first are left out of the diff, the second are the run's big changes."""
    big: list[str] = []
    changed: list[dict[str, object]] = []
    for path, (size, mtime) in index.items():
        if excluded(path):
            continue
        try:
            st = os.lstat(os.path.join(repo, path))
        except OSError:
            if size > BIG_FILE:
                big.append(path)
                changed.append({"path": path, "size": 0, "deleted": True})
            continue
        if max(size, st.st_size) <= BIG_FILE:
            continue
        big.append(path)
        if st.st_size != size or int(st.st_mtime) != mtime:
            changed.append({"path": path, "size": st.st_size})
    return big, changed


def _header_path(header: bytes) -> str:
    """The path of a ``diff --git a/P b/P`` line (``--no-renames``: both sides are P)."""
    rest = header[len(b"diff --git "):].decode("utf-8", "replace")
    if rest.startswith('"'):  # C-quoted (a name with a quote, backslash or control character)
        return rest[3:].split('"', 1)[0]
    return rest[2: 2 + (len(rest) - 5) // 2]


def drop_excluded(patch: bytes) -> bytes:
    """``patch`` without the file sections of :func:`excluded` paths."""
    if not patch:
        return patch
    sections = re.split(rb"(?m)^(?=diff --git )", patch)
    keep = [s for s in sections if s and not (
        s.startswith(b"diff --git ") and excluded(_header_path(s.split(b"\n", 1)[0])))]
    return b"".join(keep)


def is_source(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    if name in SOURCE_NAMES or name.startswith("requirements"):
        return True
    return os.path.splitext(name)[1].lower() in SOURCE_SUFFIXES


class CodeState:
    """What :func:`git_state` found."""

    def __init__(self, patch: bytes, untracked: list[str], head: str | None,
                 big_changes: list[dict[str, object]]) -> None:
        self.patch = patch
        self.untracked = untracked
        self.head = head
        self.big_changes = big_changes


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)


def _wait(procs: list[subprocess.Popen[bytes]]) -> list[tuple[bytes, bytes]]:
    deadline = time.monotonic() + TIMEOUT
    out: list[tuple[bytes, bytes]] = []
    try:
        for p in procs:
            out.append(p.communicate(timeout=max(0.1, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
            p.communicate()
        raise GitStateError(f"git took longer than {TIMEOUT:.0f} s") from None
    return out


def git_state(repo: str) -> CodeState:
    """The code state of the work tree at ``repo``: the diff against HEAD (big files left
    out), the untracked source files, HEAD's commit and the big changed files.

    Raises:
        GitStateError: git is missing, failed or took longer than :data:`TIMEOUT`.
    """
    env = _env()
    try:
        others = _start(_untracked_cmd(repo), env)
        tracked = _start(_tracked_cmd(repo), env)
        head_p = _start(_head_cmd(repo), env)
    except OSError as exc:
        raise GitStateError(f"cannot run git ({exc.strerror})") from None
    (listing, err2), (ls_debug, err3), (head_out, _) = _wait([others, tracked, head_p])
    if others.returncode != 0:
        raise GitStateError(_first_line(err2))
    if tracked.returncode != 0:
        raise GitStateError(_first_line(err3))
    head = head_out.decode().strip() or None if head_p.returncode == 0 else None
    big, big_changes = big_files(repo, parse_ls_debug(ls_debug))
    excludes = [f":(exclude,literal){p}" for p in big]
    base = head or EMPTY_TREE
    cmds = [_diff_cmd(repo, base) + (["--", ".", *excludes] if excludes else [])]
    if big and head:
        cmds.append(["git", "-C", repo, "-c", "core.quotepath=off", "diff-index", "--cached",
                     "--name-only", "-z", head, "--", *[f":(literal){p}" for p in big]])
    try:
        procs = [_start(c, env) for c in cmds]
    except OSError as exc:
        raise GitStateError(f"cannot run git ({exc.strerror})") from None
    results = _wait(procs)
    patch, err = results[0]
    if procs[0].returncode != 0:
        raise GitStateError(_first_line(err))
    if len(results) > 1 and procs[1].returncode == 0:
        known = {c["path"] for c in big_changes}
        for path in results[1][0].decode("utf-8", "surrogateescape").split("\0"):
            if path and path not in known:
                try:
                    size = os.lstat(os.path.join(repo, path)).st_size
                except OSError:
                    size = 0
                big_changes.append({"path": path, "size": size})
    untracked = [p for p in listing.decode("utf-8", "replace").split("\0")
                 if p and is_source(p) and not excluded(p)]
    return CodeState(drop_excluded(patch), sorted(untracked), head,
                     sorted(big_changes, key=lambda c: str(c["path"])))


def _first_line(err: bytes) -> str:
    text = err.decode("utf-8", "replace").strip()
    return "git failed: " + (text.splitlines()[0] if text else "no message")
