"""The SHA-256 of a file, read in 1 MiB blocks (an artifact may be gigabytes)."""

from __future__ import annotations

import hashlib


def sha256_file(path: str) -> str:
    """The hex SHA-256 of the file at ``path``.

    Raises:
        OSError: it cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
