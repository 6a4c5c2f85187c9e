"""Where the daemon keeps its socket, lock, log and cache.

The socket path comes from the environment only (never a config file): it is
a credential.  ``$OCTOSTORE_SOCKET``, else
``$XDG_RUNTIME_DIR/octostore/octostored.sock``, else
``/tmp/octostore-$UID/octostored.sock``.  Its folder is private (0700) and
must not be a symlink or another user's.
"""

from __future__ import annotations

import os
import stat

MAX_SOCKET_PATH = 104
"""macOS's sun_path limit (Linux allows 107): keep paths portable."""


class UnsafeRuntimeDir(RuntimeError):
    pass


def socket_path() -> str:
    env = os.environ.get("OCTOSTORE_SOCKET")
    if env:
        return os.path.abspath(env)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return os.path.join(xdg, "octostore", "octostored.sock")
    return os.path.join("/tmp", f"octostore-{os.getuid()}", "octostored.sock")


def runtime_dir(sock: str) -> str:
    return os.path.dirname(sock)


def lock_path(sock: str) -> str:
    return sock + ".lock"


def log_path(sock: str) -> str:
    return os.path.join(state_dir(), "octostored.log") if not os.environ.get(
        "OCTOSTORE_SOCKET") else sock + ".log"


def state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "octostore")


def cache_dir() -> str:
    env = os.environ.get("OCTOSTORE_CACHE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "octostore")


def ensure_private_dir(path: str) -> None:
    """Create ``path`` as 0700, or check that an existing one is ours, private, not a symlink."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafeRuntimeDir(f"{path} is not a plain folder; remove it and start again")
    if st.st_uid != os.getuid():
        raise UnsafeRuntimeDir(f"{path} belongs to another user; set OCTOSTORE_SOCKET to a private path")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)


def repo_top(path: str) -> str:
    """The git work tree containing ``path`` (a root is named by its top), else ``path``."""
    cur = path
    while True:
        if os.path.exists(os.path.join(cur, ".git")):
            return cur
        parent = os.path.dirname(cur)
        if parent == cur:
            return path
        cur = parent
