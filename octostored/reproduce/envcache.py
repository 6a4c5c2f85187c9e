"""The built environments' cache as the user sees it: what is there, how big, and freeing it.

An environment is a folder ``<cache>/reproduce/envs/<key>/`` (see :mod:`.envbuild`);
finished ones hold ``octostore-env.json`` (what it was built from) and
``octostore-used.json`` (when a reproduction last used it, rewritten atomically on each
reuse).  Beside each folder, ``<key>.lock`` is held (exclusive ``flock``) while it is
built, and ``<key>.use`` is held shared by every job running in it, so that nothing
removes an environment that a build or a run is using: removal takes both exclusively,
without waiting, and skips the folder when it cannot.  The lock files themselves stay
(removing a lock file that another process is about to lock would let two builders in).

``octostore cache list|prune`` (:mod:`octostored.cli.cache`) and the size cap
(``env_cache_max_gb``, applied after each new build by :func:`enforce_cap`) go through
here.  Standard library only.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from typing import Any

from .. import paths
from ..atomicfile import atomic_write

MARKER = "octostore-env.json"
USED = "octostore-used.json"
GB = 1_000_000_000


def envs_folder(cache_dir: str | None = None) -> str:
    """Where reproductions keep their environments (``<cache>/reproduce/envs``)."""
    return os.path.join(cache_dir or paths.cache_dir(), "reproduce", "envs")


@dataclass
class Entry:
    key: str
    dir: str
    state: str
    """``ready``; ``building`` (its build lock is held); ``unfinished`` (a build that died)."""
    source: str
    kind: str
    python_version: str
    packages: int | None
    lock_sha256: str
    size_bytes: int
    built: float | None
    last_used: float | None
    in_use: bool

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def touch_used(folder: str) -> None:
    """Record that the environment at ``folder`` is used now (atomically; best effort)."""
    try:
        atomic_write(os.path.join(folder, USED),
                     json.dumps({"last_used": time.time()}).encode(), 0o600)
    except OSError:
        pass


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def size_on_disk(path: str) -> int:
    """Bytes the files under ``path`` occupy (blocks; a hard-linked file counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            ident = (st.st_dev, st.st_ino)
            if ident in seen:
                continue
            seen.add(ident)
            total += st.st_blocks * 512
    return total


def _try_lock(path: str) -> int | None:
    """An fd holding an exclusive ``flock`` on ``path``, or None when someone holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except OSError:
        os.close(fd)
        return None


def _unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _busy(folder: str, key: str, lock: str) -> bool:
    fd = _try_lock(os.path.join(folder, f"{key}.{lock}"))
    if fd is None:
        return True
    _unlock(fd)
    return False


def hold_use(folder: str, key: str) -> int:
    """An fd holding a shared ``flock`` on ``<key>.use`` (the environment is in use)."""
    fd = os.open(os.path.join(folder, key + ".use"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def entries(folder: str) -> list[Entry]:
    """Every environment of the cache at ``folder``, most recently used first."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    out = []
    for name in names:
        path = os.path.join(folder, name)
        if name.startswith(".") or "." in name or not os.path.isdir(path) or os.path.islink(path):
            continue
        marker = _read_json(os.path.join(path, MARKER))
        used = _read_json(os.path.join(path, USED)).get("last_used")
        building = _busy(folder, name, "lock")
        state = "ready" if marker else ("building" if building else "unfinished")
        spec = marker.get("spec") if isinstance(marker.get("spec"), dict) else {}
        built = marker.get("built") if isinstance(marker.get("built"), (int, float)) else None
        last = used if isinstance(used, (int, float)) else built
        if last is None:
            try:
                last = os.stat(path).st_mtime
            except OSError:
                last = None
        out.append(Entry(
            key=name, dir=path, state=state, source=str(spec.get("source") or ""),
            kind=str(spec.get("kind") or ""), python_version=str(marker.get("python_version")
                                                                  or ""),
            packages=spec.get("packages") if isinstance(spec.get("packages"), int) else None,
            lock_sha256=str(marker.get("lock_sha256") or ""), size_bytes=size_on_disk(path),
            built=built, last_used=last,
            in_use=building or _busy(folder, name, "use")))
    out.sort(key=lambda e: -(e.last_used or 0))
    return out


def remove(folder: str, key: str) -> bool:
    """Remove the environment ``key`` unless a build or a job holds it; whether it was."""
    build = _try_lock(os.path.join(folder, key + ".lock"))
    if build is None:
        return False
    try:
        use = _try_lock(os.path.join(folder, key + ".use"))
        if use is None:
            return False
        try:
            path = os.path.join(folder, key)
            try:  # the marker first: a half-removed folder is then an unfinished build
                os.unlink(os.path.join(path, MARKER))
            except OSError:
                pass
            shutil.rmtree(path, ignore_errors=True)
            return not os.path.exists(path)
        finally:
            _unlock(use)
    finally:
        _unlock(build)


def choose(envs: list[Entry], *, everything: bool = False, older_than_days: float | None = None,
           keep: int | None = None, cap_bytes: int | None = None,
           protect: frozenset[str] = frozenset(), now: float | None = None) -> list[Entry]:
    """The environments to remove, least recently used first.

    ``everything``; those unused for ``older_than_days``; all but the ``keep`` most
    recently used; and as many of the least recently used as it takes to bring the
    total under ``cap_bytes``.  Environments in use, being built, or in ``protect`` are
    never chosen (an unfinished build always is).
    """
    now = time.time() if now is None else now
    lru = sorted(envs, key=lambda e: e.last_used or 0)
    movable = [e for e in lru if not e.in_use and e.key not in protect]
    chosen: dict[str, Entry] = {e.key: e for e in movable if e.state == "unfinished"}
    if everything:
        chosen.update((e.key, e) for e in movable)
    if older_than_days is not None:
        limit = now - older_than_days * 86400
        chosen.update((e.key, e) for e in movable if (e.last_used or 0) < limit)
    if keep is not None:
        ready = [e for e in lru if e.state == "ready"]
        newest = {e.key for e in ready[len(ready) - keep:]} if keep > 0 else set()
        chosen.update((e.key, e) for e in movable if e.key not in newest)
    if cap_bytes is not None:
        total = sum(e.size_bytes for e in envs) - sum(e.size_bytes for e in chosen.values())
        for e in movable:
            if total <= cap_bytes:
                break
            if e.key not in chosen:
                chosen[e.key] = e
                total -= e.size_bytes
    return [e for e in lru if e.key in chosen]


def prune(folder: str, victims: list[Entry], dry_run: bool = False) -> tuple[list[Entry],
                                                                          list[Entry]]:
    """Remove ``victims``: ``(removed, skipped because something started using them)``."""
    removed, skipped = [], []
    for e in victims:
        if dry_run or remove(folder, e.key):
            removed.append(e)
        else:
            skipped.append(e)
    return removed, skipped


def enforce_cap(folder: str, cap_gb: float, protect: frozenset[str]) -> tuple[list[Entry], int]:
    """Bring the cache under ``cap_gb``, least recently used first; (removed, total after)."""
    envs = entries(folder)
    cap = int(cap_gb * GB)
    victims = choose(envs, cap_bytes=cap, protect=protect)
    victims = [e for e in victims if e.state != "unfinished" or e.size_bytes]
    removed, _ = prune(folder, victims)
    return removed, sum(e.size_bytes for e in envs) - sum(e.size_bytes for e in removed)


def human(n: int) -> str:
    """``1.2 GB``, ``350 MB``, ``12 KB`` (powers of 1000, as the cap is written)."""
    for unit, size in (("GB", GB), ("MB", 1_000_000), ("KB", 1000)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
