"""The capture plugin's wheel, ``octostore-capture``, built on the spot with :mod:`zipfile`.

Top-level package :data:`PACKAGE`, made of the files of ``octostored/capture/`` and the
modules they import relatively (``..atomicfile``, ``..settings``, ``..console``; found by
reading their ``import`` statements, transitively, and the helpers ``console.helper_argv``
starts by name), at the same paths below it, so every relative import works under either
name; the entry point ``octostore = octostore_capture.capture.provider:OctostoreRunContext``
in ``mlflow.run_context_provider``; version = octostore's; no dependencies.
:func:`module_files` refuses any absolute import that is not the standard library: the plugin
runs in environments that have nothing else.  Same sources, same bytes (fixed timestamps,
sorted entries).  Installing it: :mod:`.capture_dist`.

Standard library only.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import sys
import zipfile

from . import __version__

DIST = "octostore-capture"
PACKAGE = "octostore_capture"
GROUP = "mlflow.run_context_provider"
ENTRY_NAME = "octostore"
ENTRY_VALUE = f"{PACKAGE}.capture.provider:OctostoreRunContext"
MIN_PYTHON = (3, 9)
"""The oldest Python the plugin's code runs on (tested with a real 3.9)."""
SRC = os.path.dirname(os.path.abspath(__file__))
"""``octostored/``: the wheel's files are read from here."""
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class CaptureDistError(Exception):
    """One sentence: what went wrong and what to do."""


def version() -> str:
    return __version__


# -- the wheel --------------------------------------------------------------------------------
def module_files() -> list[str]:
    """Paths (relative to ``octostored/``, ``/``-separated) of every module the plugin needs:
    ``capture/*.py`` and what they import relatively, transitively, with the ``__init__.py``
    of each package on the way (but not ``octostored/__init__.py``: the wheel has its own).

    Raises:
        CaptureDistError: a module imports something that is neither the standard library nor
            a module of octostored (the plugin would not run where octostore is not installed).
    """
    todo = sorted(f"capture/{n}" for n in os.listdir(os.path.join(SRC, "capture"))
                  if n.endswith(".py"))
    seen: set[str] = set()
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        parts = rel.split("/")
        for i in range(1, len(parts)):  # the package __init__ files above it
            init = "/".join(parts[:i]) + "/__init__.py"
            if init not in seen:
                todo.append(init)
        for dep in _imports(rel):
            if dep not in seen:
                todo.append(dep)
    return sorted(seen)


def _exists(rel: str) -> bool:
    return os.path.isfile(os.path.join(SRC, *rel.split("/")))


def _resolve(base: list[str], dotted: list[str]) -> str | None:
    """The module file of ``base + dotted`` (a package's ``__init__.py``, or ``x.py``)."""
    parts = base + dotted
    if not parts:
        return None
    for rel in ("/".join(parts) + "/__init__.py", "/".join(parts) + ".py"):
        if _exists(rel):
            return rel
    return None


def _imports(rel: str) -> list[str]:
    """The octostored modules ``rel`` imports (relative imports); checks the rest is stdlib."""
    with open(os.path.join(SRC, *rel.split("/")), encoding="utf-8") as f:
        tree = ast.parse(f.read(), rel)
    package = rel.split("/")[:-1]  # a module's package (an __init__'s too: its own folder)
    out: list[str] = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "helper_argv"
                and node.args and isinstance(node.args[0], ast.Constant)):
            # console.helper_argv("tee_proc", ...) starts a module by name, not by import
            helper = _resolve(["console"], [str(node.args[0].value)])
            if helper is None:
                raise CaptureDistError(f"{rel}: cannot find console/{node.args[0].value}.py")
            out.append(helper)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                _check_stdlib(alias.name, rel)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                _check_stdlib(node.module or "", rel)
                continue
            up = node.level - 1
            if up > len(package):
                raise CaptureDistError(f"{rel} imports from outside octostored")
            base = package[: len(package) - up]
            dotted = (node.module or "").split(".") if node.module else []
            target = _resolve(base, dotted)  # None for octostored itself (``from .. import``)
            if target is None and (base or dotted):
                raise CaptureDistError(f"{rel}: cannot find the module {'.' * node.level}"
                                       f"{node.module or ''}")
            if target is not None:
                out.append(target)
            for alias in node.names:  # ``from . import files``: a submodule
                sub = _resolve(base + dotted, [alias.name])
                if sub is not None:
                    out.append(sub)
    return out


def _check_stdlib(name: str, rel: str) -> None:
    top = name.split(".")[0]
    if top and top != "__future__" and top not in sys.stdlib_module_names:
        raise CaptureDistError(f"{rel} imports {name}, which is not in the standard library: "
                               "the capture plugin must run where nothing else is installed")


def wheel_name() -> str:
    return f"{PACKAGE}-{version()}-py3-none-any.whl"


def _init_source() -> str:
    return ('"""octostore\'s capture plugin (an MLflow run context provider), installed on its\n'
            'own by ``octostore capture install``: see ``octostored.capture_dist``."""\n\n'
            f"__version__ = {version()!r}\n")


def wheel_files() -> dict[str, bytes]:
    """Every file of the wheel but ``RECORD``: archive path -> bytes."""
    files: dict[str, bytes] = {f"{PACKAGE}/__init__.py": _init_source().encode()}
    for rel in module_files():
        with open(os.path.join(SRC, *rel.split("/")), "rb") as f:
            files[f"{PACKAGE}/{rel}"] = f.read()
    info = f"{PACKAGE}-{version()}.dist-info"
    files[f"{info}/METADATA"] = (
        "Metadata-Version: 2.1\n"
        f"Name: {DIST}\n"
        f"Version: {version()}\n"
        "Summary: octostore's MLflow capture plugin on its own: tags every run with its "
        "environment lock, command line and git state (standard library only)\n"
        f"Requires-Python: >={MIN_PYTHON[0]}.{MIN_PYTHON[1]}\n").encode()
    files[f"{info}/WHEEL"] = ("Wheel-Version: 1.0\n"
                              f"Generator: octostore ({version()})\n"
                              "Root-Is-Purelib: true\n"
                              "Tag: py3-none-any\n").encode()
    files[f"{info}/entry_points.txt"] = f"[{GROUP}]\n{ENTRY_NAME} = {ENTRY_VALUE}\n".encode()
    files[f"{info}/top_level.txt"] = f"{PACKAGE}\n".encode()
    return files


def record_hash(data: bytes) -> str:
    """``sha256=<urlsafe base64, no padding>``, as RECORD files spell a hash."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def expected_record() -> dict[str, str]:
    """Archive path -> RECORD hash of every file the wheel installs (RECORD itself aside)."""
    return {path: record_hash(data) for path, data in wheel_files().items()}


def wheel_digest() -> str:
    """sha256 of what the wheel installs (its files and their RECORD hashes)."""
    return hashlib.sha256(json.dumps(expected_record(), sort_keys=True).encode()).hexdigest()


def build_wheel(folder: str) -> str:
    """Write the wheel into ``folder``; its path.  Same sources, same bytes."""
    files = wheel_files()
    info = f"{PACKAGE}-{version()}.dist-info"
    record = "".join(f"{p},{record_hash(d)},{len(d)}\n" for p, d in sorted(files.items()))
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, wheel_name())
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        # dist-info last, as the wheel spec recommends
        for name in sorted(files, key=lambda p: (p.startswith(info), p)):
            zi = zipfile.ZipInfo(name, ZIP_TIME)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, files[name])
    os.replace(tmp, path)
    return path
