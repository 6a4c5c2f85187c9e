"""Which Python builds a reproduction's environment, and which uv.

Interpreters are found on ``PATH`` (``python3``, ``python3.X``), in pyenv's and uv's
install folders, in the usual system places, on GitHub's runners, in
``OCTOSTORE_PYTHONS`` (extra paths, ``:``-separated) and the daemon's own base
interpreter; each is asked its version once (``-I``: no site customisation), and a
venv's interpreter counts as its base.  The wanted version is matched as env files
write it (:func:`satisfies`): exact, then the same major.minor (a note), else nothing
(a blocking difference the job reports).  uv cannot download interpreters here
(``UV_PYTHON_DOWNLOADS=never``), so this list is what there is.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from typing import Any

from . import proc

PROBE = ("import json, platform, sys; print(json.dumps([platform.python_version(), "
         "sys.implementation.name, getattr(sys, '_base_executable', sys.executable), "
         "sys.prefix != sys.base_prefix]))")
_PY_NAME = re.compile(r"^python3(\.\d+)?$")


@dataclass
class Interpreter:
    path: str
    version: str
    implementation: str = "cpython"

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


def find_uv() -> str | None:
    """The uv binary to build with, or None (``OCTOSTORE_UV=0`` turns uv off)."""
    env = os.environ.get("OCTOSTORE_UV")
    if env is not None:
        if env.strip().lower() in ("", "0", "no", "off", "false", "none"):
            return None
        return env if os.access(env, os.X_OK) else shutil.which(env)
    found = shutil.which("uv")
    if found:
        return found
    beside = os.path.join(os.path.dirname(sys.executable), "uv")
    if os.access(beside, os.X_OK):
        return beside
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]  # a tiny module

        return str(find_uv_bin())
    except Exception:  # noqa: BLE001 - no uv package, or it has no binary
        return None


def _candidates() -> list[str]:
    seen: list[str] = []
    extra = os.environ.get("OCTOSTORE_PYTHONS", "")
    paths = [p for p in extra.split(os.pathsep) if p]
    for d in os.environ.get("PATH", "").split(os.pathsep):
        try:
            names = os.listdir(d)
        except OSError:
            continue
        paths += [os.path.join(d, n) for n in sorted(names) if _PY_NAME.match(n)]
    home = os.path.expanduser("~")
    for pattern in (f"{home}/.pyenv/versions/*/bin/python3",
                    f"{home}/.local/share/uv/python/*/bin/python3",
                    "/usr/bin/python3.*", "/usr/local/bin/python3.*",
                    "/opt/hostedtoolcache/Python/*/x64/bin/python3"):
        paths += sorted(glob.glob(pattern))
    paths.append(getattr(sys, "_base_executable", sys.executable))
    for p in paths:
        if p not in seen and os.access(p, os.X_OK) and not p.endswith("-config"):
            seen.append(p)
    return seen


_INTERPRETERS: list[Interpreter] | None = None


async def interpreters(refresh: bool = False) -> list[Interpreter]:
    """Every CPython (or other) interpreter found here, one per real executable."""
    global _INTERPRETERS
    if _INTERPRETERS is not None and not refresh:
        return _INTERPRETERS
    found: dict[str, Interpreter] = {}
    for interp in await asyncio.gather(*(_probe(p) for p in _candidates())):
        if interp is not None and interp.path not in found:
            found[interp.path] = interp
    _INTERPRETERS = sorted(found.values(), key=lambda i: _vtuple(i.version), reverse=True)
    return _INTERPRETERS


async def _probe(path: str) -> Interpreter | None:
    """The interpreter behind ``path`` (a venv's base, resolved), or None when it does not run."""
    try:
        code, out, _ = await proc.output([path, "-I", "-c", PROBE], timeout=15)
    except (TimeoutError, OSError):
        return None
    if code != 0:
        return None
    try:
        version, impl, base, _venv = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    real = os.path.realpath(base)
    return Interpreter(real, version, impl) if os.access(real, os.X_OK) else None


def _vtuple(v: str) -> tuple[int, ...]:
    out = []
    for part in re.split(r"[.]", v):
        m = re.match(r"\d+", part)
        out.append(int(m.group()) if m else 0)
    return tuple(out)


def satisfies(version: str, want: str) -> bool:
    """Whether ``version`` meets ``want``.

    ``want`` as env files write it: ``3.11.7``, ``3.11``, ``3.11.*``, ``>=3.10,<3.13``
    (PEP 440), ``^3.11`` (poetry), ``~3.11``.
    """
    want = want.strip().strip("'\"")
    if not want:
        return True
    v = _vtuple(version)
    for clause in [c.strip() for c in want.split(",") if c.strip()]:
        m = re.match(r"^(===|==|!=|~=|>=|<=|>|<|\^|~|=)?\s*([0-9][0-9.*]*)", clause)
        if not m:
            continue
        op, target = m.group(1) or "==", m.group(2).rstrip(".")
        star = target.endswith("*")
        t = _vtuple(target.rstrip(".*"))
        vv = v[: len(t)]
        if op in ("==", "===", "=") or (op is None):
            ok = vv == t if (star or len(t) < 3) else v[:3] == t[:3]
        elif op == "!=":
            ok = vv != t
        elif op == ">=":
            ok = v >= t
        elif op == "<=":
            ok = vv <= t
        elif op == ">":
            ok = v > t and vv != t
        elif op == "<":
            ok = v < t
        elif op == "~=":
            ok = v >= t and v[: len(t) - 1] == t[: len(t) - 1]
        elif op == "^":
            ok = v >= t and v[:1] == t[:1]
        else:  # "~": same major.minor
            ok = v >= t and v[:2] == t[:2]
        if not ok:
            return False
    return True


async def find_python(want: str | None) -> tuple[Interpreter | None, list[dict[str, Any]]]:
    """The interpreter for ``want`` and the differences it implies.

    An exact version is preferred, then the newest of the same major.minor
    (a non-blocking difference); otherwise nothing (a blocking difference).
    """
    exact = re.fullmatch(r"\s*(\d+)\.(\d+)\.(\d+)\S*\s*", want or "")
    if exact and _INTERPRETERS is None:
        # The common case (the run used the interpreter the daemon runs on) needs one probe.
        own = await _probe(getattr(sys, "_base_executable", sys.executable))
        if own is not None and own.version == want.strip():  # type: ignore[union-attr]
            return own, []
    found = await interpreters()
    if not found:
        return None, [{"what": "python", "blocking": True, "original": want, "reproduced": None,
                       "message": "no Python interpreter found here"}]
    if not want:
        default = default_interpreter(found)
        return default, []
    if exact:
        same = [i for i in found if i.version == want.strip()]
        if same:
            return same[0], []
        minor = f"{exact.group(1)}.{exact.group(2)}"
        close = [i for i in found if i.minor == minor]
        if close:
            return close[0], [{"what": "python", "blocking": False, "original": want,
                               "reproduced": close[0].version,
                               "message": f"Python {want} is not here; {close[0].version} "
                                          "(same minor version) is used"}]
        return None, [{"what": "python", "blocking": True, "original": want, "reproduced": None,
                       "message": f"Python {minor} is not available here (the run used {want})"}]
    ok = [i for i in found if satisfies(i.version, want)]
    if ok:
        default = default_interpreter(found)
        return (default if default in ok else ok[0]), []
    return None, [{"what": "python", "blocking": True, "original": want, "reproduced": None,
                   "message": f"no Python here satisfies {want}"}]


def default_interpreter(found: list[Interpreter]) -> Interpreter:
    """The daemon's own base interpreter when found, else the newest."""
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    for i in found:
        if i.path == base:
            return i
    return found[0]
