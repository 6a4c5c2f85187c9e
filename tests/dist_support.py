"""octostore as a user gets it: ``uv build`` of this checkout, installed into fresh venvs.

:func:`built` runs ``uv build`` once per test session (into a temporary folder, never
``dist/`` of the checkout); :func:`fresh_venv` makes a venv of this interpreter's Python
(``uv venv``) and installs into it with ``uv pip install``.  Both use uv's cache (warm after
``scripts/bootstrap``): each first tries ``--offline`` (so no network is needed when the cache
is warm), then, only if that fails (a cold cache), the same command online.
Commands run from the venv never see the checkout: no ``PYTHONPATH``, a ``PATH`` that
starts with the venv's ``bin/``, and a working folder outside the checkout.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def uv() -> str:
    for cand in (REPO / ".tools" / "bin" / "uv", Path(sys.executable).parent / "uv"):
        if os.access(cand, os.X_OK):
            return str(cand)
    found = shutil.which("uv")
    assert found, "uv is missing: run scripts/bootstrap"
    return found


def _scratch(prefix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    atexit.register(shutil.rmtree, d, True)
    return d


def clean_env(**extra: str) -> dict[str, str]:
    """The environment with nothing pointing into the checkout or at another venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT")
           and not k.startswith(("OCTOSTORE_", "PYTEST"))}
    env.update(extra)
    return env


PACKAGES = ("octostored", "octostore_tui")


def package_files() -> set[str]:
    """Every file of the two packages in the checkout (what the wheel must hold)."""
    out = set()
    for pkg in PACKAGES:
        for dirpath, dirnames, filenames in os.walk(REPO / pkg):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            rel = Path(dirpath).relative_to(REPO)
            out.update(str(rel / f) for f in filenames if not f.endswith((".pyc", ".pyo")))
    return out


def uv_run(args: list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    """``uv *args`` from the cache alone, else (a cold cache) with the network."""
    proc = subprocess.run([uv(), *args, "--offline"], capture_output=True, text=True,
                          timeout=timeout, **kw)
    if proc.returncode != 0:
        proc = subprocess.run([uv(), *args], capture_output=True, text=True, timeout=timeout,
                              **kw)
    return proc


@cache
def built() -> dict[str, Any]:
    """The wheel and the sdist of this checkout, built once per session (``files``: the
    packages' files when the build started)."""
    files = package_files()
    out = _scratch("oct-dist-")
    proc = uv_run(["build", "-q", "--out-dir", str(out), str(REPO)], 300, env=clean_env(),
                  cwd=out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return {"dir": out, "wheel": wheels[0], "sdist": sdists[0], "files": files}


def fresh_venv(where: Path, *install: str) -> Path:
    """A new venv at ``where`` with ``uv pip install *install`` done; its ``bin/``."""
    base = getattr(sys, "_base_executable", sys.executable)
    env = clean_env(UV_PYTHON_DOWNLOADS="never")
    subprocess.run([uv(), "venv", "-q", "--python", base, str(where)], check=True, env=env,
                   capture_output=True, timeout=120)
    proc = uv_run(["pip", "install", "-q", "--python", str(where / "bin" / "python"), *install],
                  600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return where / "bin"


@cache
def installed(kind: str) -> Path:
    """The ``bin/`` of a venv with octostore installed from the built ``wheel`` or ``sdist``."""
    return fresh_venv(_scratch(f"oct-venv-{kind}-"), str(built()[kind]))


def venv_env(bin_dir: Path, base: Path, **extra: str) -> dict[str, str]:
    """Run from ``bin_dir``'s venv with a private daemon socket, cache and state under ``base``."""
    return clean_env(PATH=str(bin_dir) + os.pathsep + os.environ.get("PATH", ""),
                     OCTOSTORE_SOCKET=str(base / "d.sock"), OCTOSTORE_CACHE_DIR=str(base / "cache"),
                     OCTOSTORE_CAPTURE_CACHE=str(base / "capture-cache"),
                     XDG_STATE_HOME=str(base / "state"), XDG_CONFIG_HOME=str(base / "config"),
                     **extra)
