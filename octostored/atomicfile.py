"""Writing a file so no reader ever sees half of it: a temp file in the same folder, then a
rename.  Standard library only (the capture plugin uses it inside training processes)."""

from __future__ import annotations

import os
import tempfile


def atomic_write(path: str, data: bytes, mode: int = 0o644, *, prefix: str = ".tmp-",
                 fsync: bool = False, folder_mode: int = 0o777) -> None:
    """Write ``data`` to ``path`` through a temp file (``prefix`` + random, beside it) and a
    rename.  ``fsync`` flushes it to the disk first (a cache that must survive a crash);
    ``folder_mode`` is for a folder that has to be created.

    Raises:
        OSError: the folder cannot be created or written.
    """
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=folder_mode, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
