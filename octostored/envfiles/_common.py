"""Pieces every env-file parser shares: the result record, safe reading, and pin checks.

Kept apart from ``__init__`` so that the per-format modules can import it without
a cycle. Nothing here raises on bad input: problems become warnings in the result.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..safefile import ENV_CAP, Refused, read_bytes

MAX_BYTES = ENV_CAP
"""Files larger than this are not parsed: no real env file is that big, and a
multi-megabyte lock file would stall the daemon's reply for nothing."""


def new_result(relpath: str, kind: str) -> dict[str, Any]:
    """The record every parser fills; extra, kind-specific keys are added next to these."""
    return {"path": relpath, "kind": kind, "python": None, "packages": [], "warnings": []}


def read_text(path: str, result: dict[str, Any]) -> str | None:
    """The file's text, or None with a warning in ``result`` if it cannot be read.

    Decoded as UTF-8 (a BOM is dropped, as editors on Windows write one); bytes that
    are not UTF-8 are replaced, with a warning, rather than losing the whole file.
    """
    try:
        # Never blocks (a FIFO named requirements.txt is refused, not waited on) and never
        # reads more than the cap: a cloned repo's files are a stranger's.
        data = read_bytes(path, MAX_BYTES, "an environment file",
                          label=result.get("path") or os.path.basename(path))
    except Refused as exc:
        result["warnings"].append(str(exc))
        return None
    except OSError as exc:
        result["warnings"].append(f"cannot read: {exc.strerror or exc}")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        result["warnings"].append(f"not valid UTF-8 (byte {exc.start}); undecodable bytes replaced")
        return data.decode("utf-8-sig", errors="replace")


def plain(value: Any) -> Any:
    """``value`` if JSON has it (str, int, float, bool, None), else its ``str``.

    TOML and YAML can hold dates and other types; records go out as JSON.
    """
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def within(root: str, path: str) -> bool:
    """Whether ``path`` lies inside ``root`` (both absolute; symlinks not resolved)."""
    root = os.path.normpath(root)
    path = os.path.normpath(path)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def relative(root: str, path: str) -> str:
    """``path`` relative to ``root``, with ``/`` separators as the API promises."""
    return os.path.relpath(path, root).replace(os.sep, "/")


_EXACT_PIP = re.compile(r"^===?\s*[^\s,;*<>!=~|^]+$")
# conda's "=1.24" means 1.24.*, so a single "=" only pins with a full x.y.z version or a
# build string ("=1.24.3=py311h64a7726_0", as `conda env export` writes).
_EXACT_CONDA = re.compile(
    r"^(?:==[^\s,*<>!|^=]+|=?[0-9][^\s,*<>!|^=]*[= ]\S+|=?[0-9]+\.[0-9]+\.[0-9][^\s,*<>!|^=]*)$"
)


def is_exact(package: dict[str, Any]) -> bool:
    """Whether a package record names exactly one version (``==1.2.3``, conda ``=1.2.3=build``).

    A local editable install (``-e .``) counts as exact: it is the project's own code,
    which git, not the env file, pins.
    """
    if package.get("editable"):
        return True
    spec = package.get("spec") or ""
    if package.get("manager") == "conda":
        return bool(_EXACT_CONDA.match(spec))
    return bool(_EXACT_PIP.match(spec))


def mark_pinned(result: dict[str, Any]) -> None:
    """Set ``pinned``: the file lists packages and every one has an exact version."""
    # conda lists the interpreter as a package; it is reported as "python" instead.
    packages = [p for p in result["packages"]
                if not (p.get("manager") == "conda" and p["name"].lower() == "python")]
    result["pinned"] = bool(packages) and all(is_exact(p) for p in packages)
