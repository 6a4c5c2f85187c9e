"""The environment lock: interpreter, platform and every installed distribution.

The lock is canonical JSON (sorted keys, two-space indent, trailing newline);
its sha256 is the ``octostore.env`` tag and its file name under
``.octostore/envs/``.  Two runs in the same environment share one lock.

Speed matters (a run context provider runs at every ``mlflow.start_run``), so:

* distributions are listed from ``*.dist-info`` / ``*.egg-info`` folder names
  on ``sys.path`` (``name-version.dist-info``), not through
  ``importlib.metadata``, which parses every METADATA file (~30 ms for 200
  distributions against ~2 ms);
* the lock's hash is cached per interpreter in the user's cache folder,
  keyed by ``sys.executable``, ``sys.prefix``, ``sys.path`` and the repo, and
  stamped with the mtime of every ``sys.path`` folder: installing, upgrading or
  removing a distribution adds or removes a folder there, which changes the
  mtime.  A warm start is a handful of ``stat`` calls and one small read.

This module is self-contained (standard library, no relative imports) so that
``octostore run`` can execute it with *another* interpreter (the one the
command will use) to lock that environment: ``python -c <this source> REPO``
prints the lock on stdout.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile

LOCK_FORMAT = "octostore-lock/1"
"""Bump when the lock's fields change meaning (a new hash for the same environment)."""

_NORMALIZE = re.compile(r"[-_.]+")
_EGG_PY = re.compile(r"-py\d+(\.\d+)*$")
_MEMO: dict[str, tuple[list[object], str, str]] = {}
"""Per process: cache key -> (stamp, digest, text); a notebook starting many runs pays once."""


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return _NORMALIZE.sub("-", name).lower()


def python_version() -> str:
    v = sys.version_info
    s = f"{v.major}.{v.minor}.{v.micro}"
    return s if v.releaselevel == "final" else f"{s}{v.releaselevel[0]}{v.serial}"


def _read_headers(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                key, sep, value = line.partition(":")
                if sep and key in ("Name", "Version") and key not in out:
                    out[key] = value.strip()
    except OSError:
        pass
    return out


def _editable(info_dir: str, repo: str | None) -> str | None:
    """The source path of an editable install (PEP 660 ``direct_url.json``), else None."""
    path = os.path.join(info_dir, "direct_url.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not (data.get("dir_info") or {}).get("editable"):
        return None
    url = str(data.get("url", ""))
    src = url[len("file://"):] if url.startswith("file://") else url
    return _portable(src, repo)


def _portable(path: str, repo: str | None) -> str:
    """A path inside the repo becomes relative to it (the same on every clone)."""
    if repo and path:
        try:
            real, top = os.path.realpath(path), os.path.realpath(repo)
            if real == top or real.startswith(top + os.sep):
                return os.path.relpath(real, top).replace(os.sep, "/")
        except (OSError, ValueError):
            pass
    return path


def distributions(paths: list[str], repo: str | None) -> list[dict[str, object]]:
    """Installed distributions visible on ``paths``, first one of a name wins (as imports do)."""
    seen: dict[str, dict[str, object]] = {}
    for i, entry in enumerate(paths):
        if not entry or (i == 0 and not _site_like(entry)):
            continue  # sys.path[0] is the script's folder (or ''): never an install location
        try:
            names = os.listdir(entry)
        except OSError:
            continue  # zip files, missing folders
        for name in sorted(names):
            if name.endswith(".dist-info"):
                stem, kind = name[: -len(".dist-info")], "dist"
            elif name.endswith(".egg-info"):
                stem, kind = name[: -len(".egg-info")], "egg"
            elif name.endswith(".egg-link"):
                stem, kind = name[: -len(".egg-link")], "link"
            else:
                continue
            full = os.path.join(entry, name)
            dist_name, _, version = stem.partition("-")
            if kind == "egg":
                version = _EGG_PY.sub("", version)
            record: dict[str, object] = {}
            if kind == "link":  # setup.py develop: the file's first line is the source path
                try:
                    with open(full, encoding="utf-8") as f:
                        src = f.readline().strip()
                except OSError:
                    src = ""
                record["editable"] = True
                record["path"] = _portable(src, repo)
            elif not version or kind == "egg":
                meta = os.path.join(full, "PKG-INFO" if kind == "egg" else "METADATA")
                if os.path.isfile(full):
                    meta = full  # a single-file egg-info
                headers = _read_headers(meta)
                dist_name = headers.get("Name", dist_name)
                version = headers.get("Version", version)
            if kind == "dist":
                src = _editable(full, repo)
                if src is not None:
                    record["editable"] = True
                    record["path"] = src
            elif kind == "egg" and os.path.realpath(entry) != os.path.realpath(sys.prefix) and (
                    "site-packages" not in entry and "dist-packages" not in entry):
                record["editable"] = True  # an egg-info in a source tree on sys.path
                record["path"] = _portable(entry, repo)
            key = normalize(dist_name)
            if key in seen:
                continue
            seen[key] = {"name": key, "version": version or "", **record}
    return [seen[k] for k in sorted(seen)]


def _site_like(path: str) -> bool:
    return "site-packages" in path or "dist-packages" in path


def build_lock(repo: str | None) -> dict[str, object]:
    import sysconfig  # only on a cache miss

    return {
        "format": LOCK_FORMAT,
        "python": {
            "version": python_version(),
            "implementation": sys.implementation.name,
        },
        "platform": {"tag": sysconfig.get_platform(), "sys_platform": sys.platform},
        "packages": distributions(list(sys.path), repo),
    }


def lock_text(lock: dict[str, object]) -> str:
    return json.dumps(lock, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def cache_dir() -> str:
    env = os.environ.get("OCTOSTORE_CAPTURE_CACHE")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "octostore", "capture")


def _stamp() -> list[object]:
    out: list[object] = []
    for p in sys.path:
        if not p:
            continue
        try:
            out.append([p, os.stat(p).st_mtime_ns])
        except OSError:
            out.append([p, None])
    return out


def _write(path: str, data: bytes) -> None:
    # Not atomicfile.atomic_write: this module's source also runs alone (``python -c``) in
    # another interpreter to lock its environment (cli/commit.py), so it imports nothing
    # of ours.
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def cached_lock(repo: str | None) -> tuple[str, str | None]:
    """(sha256, lock text or None when it came from the cache unread) for this interpreter.

    The text is None on a warm hit; read it with :func:`cached_text` only when
    it must be written somewhere (its file in the repo is missing).
    """
    material = json.dumps([sys.executable, sys.prefix, sys.path, repo or ""])
    key = hashlib.sha256(material.encode()).hexdigest()[:32]
    stamp = _stamp()
    memo = _MEMO.get(key)
    if memo is not None and memo[0] == stamp:
        return memo[1], memo[2]
    base = cache_dir()
    entry = os.path.join(base, "keys", key + ".json")
    try:
        with open(entry, encoding="utf-8") as f:
            cached = json.load(f)
        if cached.get("stamp") == stamp and cached.get("format") == LOCK_FORMAT:
            return str(cached["digest"]), None
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    text = lock_text(build_lock(repo))
    data = text.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    _MEMO[key] = (stamp, digest, text)
    try:
        _write(os.path.join(base, "envs", digest + ".json"), data)
        _write(entry, json.dumps({"format": LOCK_FORMAT, "stamp": stamp,
                                  "digest": digest}).encode())
    except OSError:
        pass  # no cache (read-only home): every run pays the full listing, nothing breaks
    return digest, text


def cached_text(digest: str) -> str | None:
    """A lock's text from the user's capture cache, or None."""
    try:
        with open(os.path.join(cache_dir(), "envs", digest + ".json"), encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


if __name__ == "__main__":  # ``python -c <source> [REPO]``: print this interpreter's lock
    sys.stdout.write(lock_text(build_lock(sys.argv[1] if len(sys.argv) > 1 else None)))
