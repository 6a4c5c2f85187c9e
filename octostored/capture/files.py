"""Content-addressed files under a repo's ``.octostore/``, written once and atomically.

A lock or a patch is named by the sha256 of its bytes, so a file that exists
is already right: writing is skipped after one ``stat``.  A new file is
written to a temp name in the same folder and renamed into place, so a reader
(the daemon, ``octostore commit``, a second training process) never sees half
a file, and two processes writing the same content race harmlessly.
"""

from __future__ import annotations

import hashlib
import os

from ..atomicfile import atomic_write

OCTOSTORE_DIR = ".octostore"
ENVS_DIR = "envs"
PATCHES_DIR = "patches"
LOCK_SUFFIX = ".json"
PATCH_SUFFIX = ".patch"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store_once(path: str, data: bytes) -> bool:
    """Write a content-addressed file unless it exists; True when it was written."""
    if os.path.exists(path):
        return False
    atomic_write(path, data)
    return True


def lock_path(repo: str, digest: str) -> str:
    return os.path.join(repo, OCTOSTORE_DIR, ENVS_DIR, digest + LOCK_SUFFIX)


def patch_path(repo: str, digest: str) -> str:
    return os.path.join(repo, OCTOSTORE_DIR, PATCHES_DIR, digest + PATCH_SUFFIX)
