"""A run started inside a Jupyter kernel: which notebook, and a copy of it as it stood.

MLflow records no source for a notebook run, and the process's command line is the kernel's
(``ipykernel_launcher -f …/kernel-1.json``), which says nothing about the notebook.  The
notebook is found, in order, from:

* VS Code's notebooks: ``__vsc_ipynb_file__`` in the kernel's user namespace;
* Jupyter Server 2+ (JupyterLab, Notebook 7): ``JPY_SESSION_NAME`` in the kernel's
  environment;
* ``jupyter nbconvert --execute``, nbclient and papermill: the parent process's command line
  (the first ``.ipynb`` argument, relative to the parent's working folder), on Linux.

The copy is content-addressed like the patch (``.octostore/notebooks/<sha256>.ipynb``): a
notebook changes under its runs, and reproduce runs the copy that matches the run.  Jupyter
keeps unsaved edits in the browser, so the copy is the file as saved when the run started.
Standard library only.
"""

from __future__ import annotations

import os
import stat
import sys

from . import files

PATH_TAG = "octostore.notebook"
COPY_TAG = "octostore.notebook.copy"
NOTEBOOKS_DIR = "notebooks"
MAX_NOTEBOOK = 64 * 1024 * 1024
"""A notebook bigger than this (outputs with images) is named but not copied."""


def in_kernel() -> bool:
    ip = _ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def _ipython():  # noqa: ANN202
    mod = sys.modules.get("IPython")
    if mod is None:
        return None
    try:
        return mod.get_ipython()
    except Exception:  # noqa: BLE001
        return None


def _regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _from_parent() -> str | None:
    ppid = os.getppid()
    try:
        with open(f"/proc/{ppid}/cmdline", "rb") as f:
            args = [a.decode("utf-8", "surrogateescape") for a in f.read().split(b"\0") if a]
        cwd = os.readlink(f"/proc/{ppid}/cwd")
    except OSError:
        return None
    for arg in args[1:]:
        if arg.endswith(".ipynb") and not arg.startswith("-"):
            path = os.path.join(cwd, arg)
            return path if _regular(path) else None
    return None


def notebook_path(cwd: str) -> str | None:
    """The absolute path of the notebook this kernel runs, when it can be known."""
    ip = _ipython()
    if ip is not None:
        vsc = (getattr(ip, "user_ns", None) or {}).get("__vsc_ipynb_file__")
        if isinstance(vsc, str) and vsc.endswith(".ipynb") and _regular(vsc):
            return os.path.abspath(vsc)
    session = os.environ.get("JPY_SESSION_NAME", "")
    if session.endswith(".ipynb"):
        path = session if os.path.isabs(session) else os.path.join(cwd, session)
        if _regular(path):
            return os.path.abspath(path)
        base = os.path.join(cwd, os.path.basename(session))
        if _regular(base):
            return base
    return _from_parent()


def tags(repo: str, cwd: str) -> dict[str, str]:
    """The notebook tags of a run starting now in a kernel (empty outside a kernel)."""
    if not in_kernel():
        return {}
    path = notebook_path(cwd)
    if path is None:
        return {PATH_TAG: ""}  # a kernel, but which notebook cannot be known
    real = os.path.realpath(path)
    top = os.path.join(os.path.realpath(repo), "")
    if not real.startswith(top):
        return {PATH_TAG: real}
    out = {PATH_TAG: os.path.relpath(real, top).replace(os.sep, "/")}
    if os.path.getsize(real) <= MAX_NOTEBOOK:
        with open(real, "rb") as f:
            data = f.read(MAX_NOTEBOOK + 1)
        digest = files.sha256_hex(data)
        files.store_once(copy_path(repo, digest), data)
        out[COPY_TAG] = digest
    return out


def copy_path(repo: str, digest: str) -> str:
    return os.path.join(repo, files.OCTOSTORE_DIR, NOTEBOOKS_DIR, digest + ".ipynb")
