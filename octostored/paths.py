"""Where the daemon keeps its socket, lock, log and cache.

The socket path comes from the environment only (never a config file): it is
a credential.  ``$OCTOSTORE_SOCKET``, else
``$XDG_RUNTIME_DIR/octostore/octostored.sock``, else
``/tmp/octostore-$UID/octostored.sock``.  A socket named directly in a shared
folder (writable by everyone, with the sticky bit, like ``/tmp``) moves into a
private subfolder ``octostore-$UID`` there (:func:`private_socket`: the daemon and
its clients compute the same path).

Folders octostore creates, or that carry its own names, are made private (0700).
A folder the user named keeps its mode, and is refused when it is a symlink, not
hers, or writable by others without the sticky bit (:func:`ensure_socket_dir`).
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
        return private_socket(os.path.abspath(env))
    return default_socket_path()


def default_socket_path() -> str:
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return os.path.join(xdg, "octostore", "octostored.sock")
    return os.path.join("/tmp", f"octostore-{os.getuid()}", "octostored.sock")


def is_shared(mode: int) -> bool:
    """A folder everyone may write to, with the sticky bit (``/tmp``, ``/var/tmp``)."""
    return bool(mode & stat.S_IWOTH) and bool(mode & stat.S_ISVTX)


def private_socket(sock: str) -> str:
    """``sock``, or for a socket directly in a shared folder the same name in a private
    subfolder ``octostore-$UID`` of it (another user could take the name, or the folder's
    mode would have to change)."""
    folder = os.path.dirname(sock)
    try:
        st = os.stat(folder)
    except OSError:
        return sock
    if stat.S_ISDIR(st.st_mode) and is_shared(st.st_mode):
        return os.path.join(folder, f"octostore-{os.getuid()}", os.path.basename(sock))
    return sock


def _octostores_own(folder: str) -> bool:
    """True for the socket folders octostore names itself (the default ones, and the private
    subfolder of a shared folder): their mode is octostore's to set."""
    if folder == os.path.dirname(default_socket_path()):
        return True
    if os.path.basename(folder) != f"octostore-{os.getuid()}":
        return False
    try:
        return is_shared(os.stat(os.path.dirname(folder)).st_mode)
    except OSError:
        return False


def ensure_socket_dir(sock: str) -> None:
    """Make ready the folder of the socket ``sock`` (see :func:`ensure_private_dir`)."""
    folder = os.path.dirname(sock)
    ensure_private_dir(folder, ours=_octostores_own(folder))


def ensure_private_dir(path: str, *, ours: bool = True, setting: str = "OCTOSTORE_SOCKET"
                       ) -> None:
    """Create ``path`` as 0700, or check an existing one.

    An existing folder must be a plain folder (not a symlink) of this user.  With ``ours``
    (octostore's own folder) its mode is then made 0700; otherwise (a folder the user named)
    its mode is left alone, and it is refused when others may write to it without the
    sticky bit.  ``setting`` is the variable a refusal tells the user to change.

    Raises:
        UnsafeRuntimeDir: one sentence saying what is wrong and what to do.
    """
    created = False
    try:
        os.mkdir(path, 0o700)
        created = True
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(path, 0o700, exist_ok=True)
        created = True
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafeRuntimeDir(f"{path} is not a plain folder; remove it and start again")
    if st.st_uid != os.getuid():
        raise UnsafeRuntimeDir(f"{path} belongs to another user; set {setting} to a path in "
                               "a folder of yours")
    mode = stat.S_IMODE(st.st_mode)
    if created or ours:
        if mode & 0o077:
            os.chmod(path, 0o700)
        return
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
        raise UnsafeRuntimeDir(f"{path} can be written by other users (mode {mode:o}), so "
                               "they could replace what octostore keeps there; make it private "
                               f"(chmod 700) or set {setting} to a path in a private folder")


def ensure_cache_dir(path: str) -> None:
    """The cache folder (snapshots, server cursors, reproduce worktrees and environments):
    made private (0700) when octostore creates it or it is the default one; a folder the user
    named with ``OCTOSTORE_CACHE_DIR`` keeps its mode (what octostore puts in it is private
    anyway)."""
    ensure_private_dir(path, ours=not os.environ.get("OCTOSTORE_CACHE_DIR"),
                       setting="OCTOSTORE_CACHE_DIR")


def private_folder(path: str, levels: int = 1) -> None:
    """Create ``path`` (and any missing parent) as 0700, and make ``path`` and its
    ``levels - 1`` nearest parents 0700 (octostore's own folders in its cache: checkouts and
    environments of a user's code are hers alone on a shared machine)."""
    missing = []
    p = path
    while not os.path.isdir(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for m in reversed(missing):
        try:
            os.mkdir(m, 0o700)
        except FileExistsError:
            pass
    p = path
    for _ in range(levels):
        st = os.lstat(p)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(p, 0o700)
        p = os.path.dirname(p)


def runtime_dir(sock: str) -> str:
    return os.path.dirname(sock)


def lock_path(sock: str) -> str:
    return sock + ".lock"


def log_path(sock: str) -> str:
    return os.path.join(state_dir(), "octostored.log") if not os.environ.get(
        "OCTOSTORE_SOCKET") else sock + ".log"


def ensure_log_dir(logfile: str) -> None:
    """The log's folder: private when octostore creates it or it is its own state folder."""
    folder = os.path.dirname(logfile)
    if folder == state_dir():
        ensure_private_dir(folder)
    else:
        ensure_socket_dir(logfile)  # the log beside $OCTOSTORE_SOCKET


def state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "octostore")


def config_dir() -> str:
    """The user's own octostore configuration (trusted servers, user settings): never a repo's."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "octostore")


def cache_dir() -> str:
    env = os.environ.get("OCTOSTORE_CACHE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "octostore")


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
