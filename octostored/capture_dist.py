"""The capture plugin as a distribution of its own, ``octostore-capture``, in any environment.

``octostore capture install`` (:mod:`.cli.capture`) puts the plugin into a researcher's own
training environment without octostore's dependencies (textual, pygls, uv, ...): one small
wheel (:mod:`.capture_wheel`, built on the spot, offline), installed by the target
interpreter's own installer with ``--no-deps``: ``PY -m pip install --no-deps --no-index
--force-reinstall WHEEL`` when ``PY`` has pip, else (a venv made by ``uv venv`` has none) the
uv octostore came with: ``uv pip install --python PY --no-deps --offline --reinstall-package
octostore-capture``.  An interpreter the system's package manager owns (PEP 668) is refused.

Each step probes ``PY`` before and after (:func:`probe`, a small stdlib script run by it), so
the caller can say exactly which environment it changed and check that no other
distribution's version moved.

Standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Any

from .capture_wheel import (
    DIST,
    GROUP,
    MIN_PYTHON,
    CaptureDistError,
    build_wheel,
    expected_record,
    version,
)

__all__ = ["DIST", "CaptureDistError", "Outcome", "Target", "build_wheel", "find_python",
           "install", "probe", "uninstall", "version"]
TIMEOUT = 300
"""Seconds an installer may take."""


# -- the target interpreter ---------------------------------------------------------------------
PROBE = r"""
import sys, os, json
sys.path[:] = [p for p in sys.path if p and p != os.getcwd()]
out = {"version": list(sys.version_info[:3]), "executable": sys.executable,
       "prefix": sys.prefix, "base_prefix": getattr(sys, "base_prefix", sys.prefix)}
if sys.version_info >= (3, 8):
    import importlib.util
    from importlib import metadata
    out["pip"] = importlib.util.find_spec("pip") is not None
    out["conda"] = os.path.isdir(os.path.join(sys.prefix, "conda-meta"))
    out["externally_managed"] = False
    try:
        import sysconfig
        stdlib = sysconfig.get_paths()["stdlib"]
        out["externally_managed"] = (sys.prefix == getattr(sys, "base_prefix", sys.prefix)
                                     and os.path.isfile(os.path.join(stdlib, "EXTERNALLY-MANAGED")))
    except Exception:
        pass
    dists = {}
    full = False
    for d in metadata.distributions():
        name = (d.metadata["Name"] or "").lower().replace("_", "-").replace(".", "-")
        if not name or name in dists:
            continue
        dists[name] = d.version
        try:
            for ep in d.entry_points:
                if ep.group == GROUP and ep.value.startswith("octostored."):
                    full = True
        except Exception:
            pass
        if name == DIST:
            rec = {}
            for line in (d.read_text("RECORD") or "").splitlines():
                parts = line.rsplit(",", 2)
                if len(parts) == 3 and parts[1]:
                    rec[parts[0]] = parts[1]
            files = d.files or []
            loc = str(d.locate_file("")) if files else None
            out["installed"] = {"version": d.version, "record": rec, "location": loc,
                                "installer": (d.read_text("INSTALLER") or "").strip(),
                                "direct_url": d.read_text("direct_url.json")}
    out["distributions"] = dists
    out["full_octostore"] = full
print("OCTOSTORE-PROBE " + json.dumps(out))
"""


@dataclass
class Target:
    """What :data:`PROBE` found out about an interpreter."""

    python: str
    """The path as the user gave it (or as it was found on PATH)."""
    executable: str
    prefix: str
    version: tuple[int, int, int]
    pip: bool
    conda: bool
    externally_managed: bool
    distributions: dict[str, str]
    full_octostore: bool
    installed: dict[str, Any] | None = None
    how_found: str = ""

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    def describe(self) -> str:
        kind = "conda environment" if self.conda else (
            "virtual environment" if _is_venv(self.prefix) else "Python installation")
        exe = self.python if self.run_python == self.python else \
            f"{self.python} -> {self.executable}"
        return f"{kind} {self.prefix} (Python {self.version_text}, {exe})"

    @property
    def run_python(self) -> str:
        """The interpreter itself (a pyenv or asdf shim resolves to it in the user's folder)."""
        return self.executable if self.executable and os.access(self.executable, os.X_OK) \
            else self.python

    def installed_version(self) -> str | None:
        return self.installed["version"] if self.installed else None

    def current(self) -> bool:
        """octostore-capture is installed at this octostore's version with exactly its files."""
        if not self.installed or self.installed.get("version") != version():
            return False
        record = self.installed.get("record") or {}
        want = expected_record()
        return all(record.get(path) == h for path, h in want.items())

    def json(self) -> dict[str, Any]:
        inst = self.installed
        return {"python": self.python, "executable": self.executable, "prefix": self.prefix,
                "python_version": self.version_text, "how_found": self.how_found,
                "has_pip": self.pip, "conda": self.conda,
                "installed": inst is not None,
                "installed_version": inst.get("version") if inst else None,
                "location": inst.get("location") if inst else None,
                "expected_version": version(), "current": self.current(),
                "full_octostore": self.full_octostore}


def _is_venv(prefix: str) -> bool:
    return os.path.isfile(os.path.join(prefix, "pyvenv.cfg"))


def find_python(given: str | None) -> tuple[str, str]:
    """(path of the interpreter, how it was chosen).  ``given`` may be a path, a command on
    PATH (``python3.10``) or an environment's folder (``.venv``).

    Raises:
        CaptureDistError: nothing runnable there.
    """
    if given is None:
        for name in ("python", "python3"):
            found = shutil.which(name)
            if found:
                return found, f"the `{name}` on PATH"
        raise CaptureDistError("no `python` on PATH: pass --python with the path of your "
                               "environment's interpreter (for example .venv/bin/python)")
    path = given
    if os.sep not in given and not os.path.exists(given):
        found = shutil.which(given)
        if found is None:
            raise CaptureDistError(f"no {given} on PATH: pass --python with the path of your "
                                   "environment's interpreter (for example .venv/bin/python)")
        return found, f"`{given}` on PATH"
    path = os.path.abspath(os.path.expanduser(given))
    if os.path.isdir(path):
        inner = os.path.join(path, "bin", "python")
        if os.access(inner, os.X_OK):
            return inner, f"the interpreter of the environment {given}"
        raise CaptureDistError(f"{given} is a folder without bin/python: pass --python with "
                               "the path of an interpreter (for example .venv/bin/python)")
    if not os.path.exists(path):
        raise CaptureDistError(f"{given} does not exist: pass --python with the path of your "
                               "environment's interpreter (for example .venv/bin/python)")
    if not os.access(path, os.X_OK):
        raise CaptureDistError(f"{given} is not executable: pass --python with the path of a "
                               "Python interpreter (for example .venv/bin/python)")
    return path, "--python"


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PIP_REQUIRE_VIRTUALENV",
                "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"):
        env.pop(var, None)
    env.update(PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1", UV_PYTHON_DOWNLOADS="never")
    return env


def probe(python: str, how_found: str = "") -> Target:
    """Ask ``python`` about itself.

    Raises:
        CaptureDistError: it does not run, is not a Python, or is older than :data:`MIN_PYTHON`.
    """
    script = PROBE.replace("GROUP", repr(GROUP)).replace("DIST", repr(DIST))
    try:
        # in the user's folder: a pyenv shim picks the interpreter by it (the probe keeps
        # that folder off sys.path)
        res = subprocess.run([python, "-c", script], capture_output=True, text=True,
                             env=_clean_env(), timeout=120)
    except OSError as exc:
        raise CaptureDistError(f"{python} does not run ({exc.strerror or exc}): pass --python "
                               "with the path of a Python interpreter") from None
    except subprocess.TimeoutExpired:
        raise CaptureDistError(f"{python} did not answer within 120 s: pass --python with "
                               "the path of a Python interpreter that runs") from None
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("OCTOSTORE-PROBE ")),
                None)
    data: dict[str, Any] | None = None
    if line is not None:
        try:
            data = json.loads(line[len("OCTOSTORE-PROBE "):])
        except ValueError:
            data = None
    if res.returncode != 0 or not isinstance(data, dict):
        if "SyntaxError" in res.stderr:
            raise CaptureDistError(f"{python} is a Python too old to run the capture plugin "
                                   f"(it needs {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer): pass "
                                   "--python with a newer interpreter")
        raise CaptureDistError(f"{python} is not a Python interpreter that runs: pass --python "
                               "with the path of your environment's Python (for example "
                               ".venv/bin/python)")
    v = tuple(int(x) for x in data["version"][:3])
    if v[:2] < MIN_PYTHON:
        raise CaptureDistError(
            f"{python} is Python {'.'.join(map(str, v))}, and the capture plugin needs "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer: pass --python with a newer interpreter")
    return Target(python=python, executable=data["executable"], prefix=data["prefix"],
                  version=v, pip=bool(data.get("pip")),  # type: ignore[arg-type]
                  conda=bool(data.get("conda")),
                  externally_managed=bool(data.get("externally_managed")),
                  distributions=dict(data.get("distributions") or {}),
                  full_octostore=bool(data.get("full_octostore")),
                  installed=data.get("installed"), how_found=how_found)


def bundled_uv() -> str | None:
    """The uv that came with octostore (the ``uv`` package), else any uv octostore would use."""
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]

        return str(find_uv_bin())
    except Exception:  # noqa: BLE001 - no uv package, or it has no binary
        from .reproduce.interpreters import find_uv

        return find_uv()


@dataclass
class Outcome:
    """What an install or uninstall did."""

    target: Target
    after: Target
    installer: str
    """``pip`` or ``uv``."""
    command: list[str]
    notes: list[str] = field(default_factory=list)
    changed_others: dict[str, list[str | None]] = field(default_factory=dict)
    """Other distributions whose version moved: name -> [before, after] (must stay empty)."""


def _installer(target: Target) -> tuple[str, str | None]:
    if target.externally_managed:  # PEP 668: the system's package manager owns it
        raise CaptureDistError(f"{target.python} belongs to the system's package manager "
                               "(externally managed, PEP 668): make a virtual environment "
                               "(python3 -m venv .venv) and pass --python .venv/bin/python")
    if target.pip:
        return "pip", None
    uv = bundled_uv()
    if uv is None:
        raise CaptureDistError(f"{target.python} has no pip and no uv was found to install "
                               f"with: run `{target.python} -m ensurepip`, then try again")
    return "uv", uv


def _run(cmd: list[str], what: str, target: Target) -> None:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, env=_clean_env(),
                             timeout=TIMEOUT, cwd=tempfile.gettempdir())
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CaptureDistError(f"{what} failed ({exc}): see that {target.python} runs, and "
                               "try again") from None
    if res.returncode != 0:
        lines = [ln.strip() for ln in (res.stderr + "\n" + res.stdout).splitlines()
                 if ln.strip()]
        last = next((ln for ln in reversed(lines) if not ln.lower().startswith(
            ("hint", "note", "[notice]"))), "no message")
        fix = "see the message above and try again"
        if "externally" in (res.stderr + res.stdout).lower():
            fix = ("that Python is managed by the system: make a virtual environment "
                   "(python -m venv .venv) and pass --python .venv/bin/python")
        elif "permission" in (res.stderr + res.stdout).lower():
            fix = "that environment is not yours to write: pass --python with one that is"
        raise CaptureDistError(f"{what} into {target.prefix} failed ({last[:300]}): {fix}")


def _others_changed(before: Target, after: Target) -> dict[str, list[str | None]]:
    out: dict[str, list[str | None]] = {}
    for name in sorted(set(before.distributions) | set(after.distributions)):
        if name == DIST:
            continue
        a, b = before.distributions.get(name), after.distributions.get(name)
        if a != b:
            out[name] = [a, b]
    return out


def install(target: Target) -> Outcome:
    """Build the wheel and install it into ``target`` (only it: ``--no-deps``, offline).

    Raises:
        CaptureDistError: the installer failed, or the plugin is not there afterwards.
    """
    kind, uv = _installer(target)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="octostore-capture-") as tmp:
        wheel = build_wheel(tmp)
        if kind == "pip":
            cmd = [target.run_python, "-m", "pip", "install", "--no-deps", "--no-index",
                   "--force-reinstall", "--no-input", "--disable-pip-version-check", wheel]
        else:
            assert uv is not None
            cmd = [uv, "pip", "install", "--python", target.run_python, "--no-deps", "--offline",
                   "--reinstall-package", DIST, wheel]
            notes.append(f"{target.python} has no pip (as in environments made by "
                         f"`uv venv`): installed with uv ({uv})")
        _run(cmd, f"installing {DIST}", target)
    after = probe(target.run_python, target.how_found)
    if not after.current():
        raise CaptureDistError(f"{DIST} {version()} is not in {target.prefix} after the "
                               "installer said it was installed (is --python the interpreter "
                               "your training runs with?)")
    if after.full_octostore:
        notes.append("the full octostore is installed here too: its own plugin tags the runs "
                     f"and {DIST} stands aside, so each run is tagged once")
    return Outcome(target, after, kind, cmd, notes, _others_changed(target, after))


def uninstall(target: Target) -> Outcome | None:
    """Remove ``octostore-capture`` (and nothing else) from ``target``; None when absent.

    Raises:
        CaptureDistError: the installer failed, or it is still there afterwards.
    """
    if target.installed is None:
        return None
    kind, uv = _installer(target)
    if kind == "pip":
        cmd = [target.run_python, "-m", "pip", "uninstall", "-y", "--no-input",
               "--disable-pip-version-check", DIST]
    else:
        assert uv is not None
        cmd = [uv, "pip", "uninstall", "--python", target.run_python, DIST]
    _run(cmd, f"removing {DIST}", target)
    after = probe(target.run_python, target.how_found)
    if after.installed is not None:
        raise CaptureDistError(f"{DIST} is still in {target.prefix} after the installer "
                               "removed it (installed twice, in two site folders?): remove it "
                               f"with `{target.python} -m pip uninstall {DIST}`")
    return Outcome(target, after, kind, cmd, [], _others_changed(target, after))
