"""This user's key for commit journals: journals are signed with it, and only signed ones
are replayed.

A ``.git/octostore/journal.json`` can be put there by someone else (a shared machine, a
tarball of a repo, a tool), and replaying it moves files and the branch.  The key is 32
random bytes in ``octostored.paths.state_dir()/journal.key`` (0600, in a 0700 folder,
created on first use); a journal carries an HMAC-SHA256 of its contents and of the git
folder it belongs to.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat

KEY_FILE = "journal.key"


def _key() -> bytes:
    """This user's key, made on first use.

    Raises:
        git.GitError: the key's folder or file is not private to this user.
    """
    from ..paths import UnsafeRuntimeDir, ensure_private_dir, state_dir
    from .git import GitError

    folder = state_dir()
    try:
        ensure_private_dir(folder)
    except UnsafeRuntimeDir as exc:
        raise GitError(str(exc), "") from None
    path = os.path.join(folder, KEY_FILE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
            f.flush()
            os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise GitError(f"{path} is not a private file of yours",
                           "remove it and try again (octostore makes a new one)")
        key = f.read()
    if len(key) < 32:
        raise GitError(f"{path} is damaged", "remove it and try again (octostore makes a new one)")
    return key


def sign(data: bytes) -> str:
    return hmac.new(_key(), data, hashlib.sha256).hexdigest()


def verify(data: bytes, mac: str) -> bool:
    try:
        return hmac.compare_digest(sign(data), mac)
    except Exception:  # noqa: BLE001 - no key, no trust
        return False
