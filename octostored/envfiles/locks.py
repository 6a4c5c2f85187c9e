"""Lock files: uv.lock, poetry.lock and Pipfile.lock.

A lock file is what makes a run reproducible: every package at one exact version.
So each package is reported with an exact ``==version`` spec, and ``python`` is the
interpreter range the lock was resolved for. Packages that come from a URL, git or a
local path carry that source in ``url`` (their version alone does not identify them).
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

from ._common import plain, read_text
from .projects import load_toml


def parse_uv_lock(root: str, relpath: str, result: dict[str, Any]) -> None:
    data = _load_lock(root, relpath, result)
    if data is None:
        return
    result["lock_version"] = plain(data.get("version"))
    requires_python = data.get("requires-python")
    if isinstance(requires_python, str):
        result["python"] = requires_python
    _toml_packages(data, result, _uv_source)


def _uv_source(entry: dict[str, Any], package: dict[str, Any]) -> None:
    source = entry.get("source")
    if isinstance(source, dict):
        kind, where = next(iter(source.items()), (None, None))
        if kind in ("editable", "virtual"):
            # The project itself (or a workspace member): its code is in git.
            package["editable"] = True
            package["url"] = plain(where)
        elif kind in ("git", "url", "path", "directory"):
            package["url"] = plain(where)


def parse_poetry_lock(root: str, relpath: str, result: dict[str, Any]) -> None:
    data = _load_lock(root, relpath, result)
    if data is None:
        return
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    result["lock_version"] = plain(metadata.get("lock-version"))
    if isinstance(metadata.get("python-versions"), str):
        result["python"] = metadata["python-versions"]
    _toml_packages(data, result, _poetry_source)


def _poetry_source(entry: dict[str, Any], package: dict[str, Any]) -> None:
    source = entry.get("source")
    if isinstance(source, dict) and source.get("type") in ("git", "url", "file", "directory"):
        package["url"] = plain(source.get("url"))
        if source.get("type") == "directory" and entry.get("develop"):
            package["editable"] = True


def _load_lock(root: str, relpath: str, result: dict[str, Any]) -> dict[str, Any] | None:
    result["lock_version"] = None
    return load_toml(root, relpath, result)


def _toml_packages(data: dict[str, Any], result: dict[str, Any],
                   source: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
    """The ``[[package]]`` entries of a TOML lock, each pinned ``==version``; ``source``
    adds where a package came from, in that lock's own terms."""
    packages = data.get("package", [])
    if not isinstance(packages, list):
        result["warnings"].append("[[package]] entries are malformed")
        return
    for entry in packages:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            result["warnings"].append("skipped a [[package]] entry without a name")
            continue
        version = entry.get("version")
        package: dict[str, Any] = {"name": entry["name"],
                                   "spec": f"=={version}" if isinstance(version, str) else ""}
        source(entry, package)
        result["packages"].append(package)


def parse_pipfile_lock(root: str, relpath: str, result: dict[str, Any]) -> None:
    result["groups"] = {}
    text = read_text(os.path.join(root, relpath), result)
    if text is None:
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        result["warnings"].append(f"invalid JSON: {exc}")
        return
    if not isinstance(data, dict):
        result["warnings"].append("expected a JSON object at the top")
        return
    meta = data.get("_meta") if isinstance(data.get("_meta"), dict) else {}
    requires = meta.get("requires") if isinstance(meta.get("requires"), dict) else {}
    python = requires.get("python_full_version") or requires.get("python_version")
    if python is not None:
        result["python"] = str(python)
    result["packages"] = _pipfile_lock_section(data.get("default"), "default", result)
    if data.get("develop"):
        result["groups"]["develop"] = _pipfile_lock_section(data["develop"], "develop", result)


def _pipfile_lock_section(section: Any, what: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    if section is None:
        return []
    if not isinstance(section, dict):
        result["warnings"].append(f"{what} should be an object")
        return []
    out = []
    for name, entry in section.items():
        if not isinstance(entry, dict):
            result["warnings"].append(f"{what}.{name}: unexpected value")
            continue
        package: dict[str, Any] = {"name": name, "spec": str(entry.get("version") or "")}
        for source in ("git", "file", "path"):
            if isinstance(entry.get(source), str):
                package["url"] = entry[source]
        if isinstance(entry.get("markers"), str):
            package["marker"] = entry["markers"]
        if isinstance(entry.get("extras"), list):
            package["extras"] = [str(e) for e in entry["extras"]]
        if entry.get("editable"):
            package["editable"] = True
        out.append(package)
    return out
