"""The files a training process reads: recorded so that reproduce can check them first.

A run's code is in git and its packages in the lock; its data often is in neither (the layout
``octostore init`` writes ignores ``data/raw``).  This module records, per training process,
the regular files under the repo that the process opened for reading, outside the
environment, ``.git``, MLflow's stores and ``.octostore/``, with their size and sha256, plus
the big tracked files that changed since HEAD (left out of the patch, see
:mod:`~octostored.capture.gitstate`).  Reproduce reads the record before it runs anything:
a missing input is named with its size, hash and why it is missing; a changed one is named
in the verdict.

How it sees the reads: a stdlib audit hook (:func:`sys.addaudithook`) on the ``open`` event,
installed when MLflow loads the run context provider (at ``import mlflow``, before a script
usually reads its data).  The hook keeps paths in memory only; the record
``.octostore/inputs/<token>.json`` is written when the first run starts (the token is the
run's ``octostore.inputs`` tag) and again whenever a new input is met, atomically.  Files are
hashed by one background thread, never on the training process's critical path; what is
still unhashed when the process exits is finished by a detached ``python -m
octostored.capture.inputs finish RECORD`` process.  ``OCTOSTORE_CAPTURE_INPUTS=0`` turns the
hook off.  Standard library only.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import queue
import secrets
import stat
import subprocess
import sys
import threading
import time
from typing import Any

from ..atomicfile import atomic_write
from .files import OCTOSTORE_DIR
from .gitstate import find_repo

TAG = "octostore.inputs"
DISABLE_ENV = "OCTOSTORE_CAPTURE_INPUTS"
INPUTS_DIR = "inputs"
MAX_INPUTS = 2000
"""Distinct inputs recorded per process; past it the record says it was cut."""
SKIP_SUFFIXES = (".py", ".pyc", ".pyi", ".pth", ".so", ".pyd", ".ipynb")
"""Code is in git and in the lock, not an input (a notebook is code too: its copy is kept apart)."""
SKIP_NAMES = frozenset({"mlflow.db", "mlruns.db", "meta.yaml"})


def record_path(repo: str, token: str) -> str:
    return os.path.join(repo, OCTOSTORE_DIR, INPUTS_DIR, f"{token}.json")


def _env_prefixes() -> tuple[str, ...]:
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    return tuple(os.path.join(os.path.realpath(p), "") for p in prefixes if p)


class _Recorder:
    """One per process: the hook's paths, the record it writes, the hashing thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.local = threading.local()
        self.seen: dict[str, dict[str, Any]] = {}
        self.cut = False
        self.repo: str | None = None
        self.token: str | None = None
        self.env = _env_prefixes()
        self.work: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.dirty = False
        self.top = os.path.join(find_repo(os.getcwd()) or os.sep + "\0", "")
        """Only reads under this repo's top are kept (the run's repo, once a run started)."""

    # -- the audit hook (must be cheap: it runs for every audited event) -----------------------
    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event != "open" or getattr(self.local, "busy", False):
            return
        path = args[0]
        if isinstance(path, int):
            return
        mode = args[1] if len(args) > 1 else None
        flags = args[2] if len(args) > 2 else 0
        if mode is None:
            if isinstance(flags, int) and flags & 3 != os.O_RDONLY:
                return
        elif isinstance(mode, str) and ("w" in mode or "a" in mode or "x" in mode or "+" in mode):
            return
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str) or path.endswith(SKIP_SUFFIXES):
            return
        self.local.busy = True
        try:
            self._saw(path)
        except Exception:  # noqa: BLE001 - never disturb the training process
            pass
        finally:
            self.local.busy = False

    def _saw(self, path: str) -> None:
        full = os.path.abspath(path)
        if not full.startswith(self.top) or full in self.seen or full.startswith(self.env):
            return
        parts = full.split(os.sep)
        if ".git" in parts or OCTOSTORE_DIR in parts or "mlruns" in parts or \
                parts[-1] in SKIP_NAMES or "site-packages" in parts or "__pycache__" in parts:
            return
        with self.lock:
            if full in self.seen:
                return
            if len(self.seen) >= MAX_INPUTS:
                self.cut = True
                return
            self.seen[full] = {"why": "read"}
        self._changed()

    # -- the record --------------------------------------------------------------------------
    def start_run(self, repo: str, big_changes: list[dict[str, Any]]) -> str:
        """The token of this process's record, created on the first run in ``repo``."""
        with self.lock:
            if self.token is None or self.repo != repo:
                self.repo = repo
                self.top = os.path.join(repo, "")
                self.token = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(4)}"
            for change in big_changes:
                full = os.path.join(repo, str(change["path"]))
                self.seen.setdefault(full, {"why": "changed"})
                self.seen[full]["why"] = "changed"
            token = self.token
        self._changed(now=True)
        return token

    def _changed(self, now: bool = False) -> None:
        if self.repo is None:
            return
        self.dirty = True
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="octostore-inputs", daemon=True)
            self.thread.start()
            atexit.register(self.at_exit)
        self.work.put("write")

    def _run(self) -> None:
        self.local.busy = True
        while True:
            self.work.get()
            try:
                self._hash_pending(budget=None)
                self.write()
            except Exception:  # noqa: BLE001
                pass

    def _entries(self) -> list[tuple[str, dict[str, Any]]]:
        repo = self.repo or ""
        top = os.path.join(repo, "")
        with self.lock:
            return [(p, e) for p, e in self.seen.items() if p.startswith(top)]

    def _hash_pending(self, budget: float | None) -> bool:
        """Hash what is not hashed yet; False when ``budget`` seconds ran out first."""
        start = time.monotonic()
        for path, entry in self._entries():
            if "sha256" in entry or entry.get("missing"):
                continue
            if budget is not None and time.monotonic() - start > budget:
                return False
            digest = hash_file(path)
            if digest is None:
                entry["missing"] = True
            else:
                entry.update(digest)
            self.dirty = True
        return True

    def write(self) -> None:
        repo, token = self.repo, self.token
        if repo is None or token is None or not self.dirty:
            return
        self.dirty = False
        files = []
        for path, entry in self._entries():
            if entry.get("missing") and entry.get("why") == "read":
                continue  # opened but gone, or not a regular file: not an input
            files.append({"path": os.path.relpath(path, repo).replace(os.sep, "/"), **entry})
        doc = {"v": 1, "pid": os.getpid(), "complete": all("sha256" in f for f in files),
               "cut": self.cut, "files": sorted(files, key=lambda f: f["path"])}
        self.local.busy = True
        try:
            atomic_write(record_path(repo, token), json.dumps(doc, indent=1).encode())
        finally:
            self.local.busy = False

    def at_exit(self) -> None:
        """Hash for up to a second; leave the rest to a detached process."""
        try:
            self.local.busy = True
            done = self._hash_pending(budget=1.0)
            self.write()
            if not done and self.repo and self.token:
                subprocess.Popen(
                    [sys.executable, "-m", f"{__package__}.inputs", "finish",
                     record_path(self.repo, self.token)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        except Exception:  # noqa: BLE001
            pass


def hash_file(path: str) -> dict[str, Any] | None:
    """{size, mtime_ns, sha256} of a regular file, or None (gone, not regular, unreadable)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        h = hashlib.sha256()
        with os.fdopen(fd, "rb", closefd=False) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": h.hexdigest()}
    except OSError:
        return None
    finally:
        os.close(fd)


_recorder: _Recorder | None = None


def install() -> None:
    """Install the audit hook once per process (a no-op when turned off)."""
    global _recorder
    if _recorder is not None:
        return
    if os.environ.get(DISABLE_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return
    _recorder = _Recorder()
    sys.addaudithook(_recorder.hook)


def tags(repo: str, big_changes: list[dict[str, Any]], watch_reads: bool = True) -> dict[str, str]:
    """The ``octostore.inputs`` tag for a run starting now in ``repo``.

    With ``watch_reads`` the hook is installed if it was not (reads before this moment are
    then not seen); without (``octostore run``, whose training runs in a child process)
    only the big changed files are recorded."""
    global _recorder
    if watch_reads:
        install()
    elif _recorder is None and big_changes and \
            os.environ.get(DISABLE_ENV, "1").strip().lower() not in ("0", "false", "no", "off"):
        _recorder = _Recorder()
    if _recorder is None or (not watch_reads and not big_changes):
        return {}
    return {TAG: _recorder.start_run(repo, big_changes)}


def finish(record: str) -> int:
    """Hash every input a record still lacks (run detached after the training process)."""
    with open(record, "rb") as f:
        doc = json.load(f)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(record)))
    for entry in doc.get("files", []):
        if "sha256" not in entry:
            got = hash_file(os.path.join(repo, entry["path"]))
            if got is None:
                entry["missing"] = True
            else:
                entry.update(got)
    doc["complete"] = all("sha256" in f for f in doc.get("files", []))
    atomic_write(record, json.dumps(doc, indent=1).encode())
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "finish":
        sys.exit(finish(sys.argv[2]))
    sys.exit(2)
