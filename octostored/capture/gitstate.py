"""The code state at run start: the uncommitted diff and the untracked source files.

Two ``git`` processes, started together and awaited together (each costs a
couple of milliseconds, mostly process start): ``git diff HEAD`` of tracked
files and ``git ls-files --others --exclude-standard``.  The diff is made to
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


def git_state(repo: str) -> tuple[bytes, list[str]]:
    """(``git diff HEAD`` bytes, untracked source files) of the work tree at ``repo``.

    Raises:
        GitStateError: git is missing, failed or took longer than :data:`TIMEOUT`.
    """
    env = _env()
    try:
        diff = subprocess.Popen(_diff_cmd(repo, "HEAD"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
        others = subprocess.Popen(_untracked_cmd(repo), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    except OSError as exc:
        raise GitStateError(f"cannot run git ({exc.strerror})") from None
    try:
        patch, err = diff.communicate(timeout=TIMEOUT)
        listing, err2 = others.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        diff.kill()
        others.kill()
        diff.communicate()
        others.communicate()
        raise GitStateError(f"git took longer than {TIMEOUT:.0f} s") from None
    if diff.returncode != 0:
        if b"HEAD" in err and (b"unknown revision" in err or b"bad revision" in err
                               or b"ambiguous argument" in err):
            # A repo without commits: everything tracked is new, diff it against nothing.
            proc = subprocess.run(_diff_cmd(repo, EMPTY_TREE), capture_output=True, env=env,
                                  stdin=subprocess.DEVNULL, timeout=TIMEOUT)
            if proc.returncode != 0:
                raise GitStateError(_first_line(proc.stderr))
            patch = proc.stdout
        else:
            raise GitStateError(_first_line(err))
    if others.returncode != 0:
        raise GitStateError(_first_line(err2))
    untracked = [p for p in listing.decode("utf-8", "replace").split("\0")
                 if p and is_source(p) and not excluded(p)]
    return drop_excluded(patch), sorted(untracked)


def _first_line(err: bytes) -> str:
    text = err.decode("utf-8", "replace").strip()
    return "git failed: " + (text.splitlines()[0] if text else "no message")
