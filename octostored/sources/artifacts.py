"""Where a run's artifacts are on this machine (shared by the artifact reader and commit)."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlparse

from ..model import Run


def local_artifact_dir(run: Run) -> str | None:
    """The run's local artifact folder: its ``artifact_uri``, else ``artifacts/`` beside it.

    A store cloned from another machine keeps absolute (often Windows) artifact URIs; then
    the run folder's own ``artifacts/`` is where MLflow put them relative to the store.
    """
    uri = run.artifact_uri
    candidates = []
    if uri.startswith("file:"):
        candidates.append(unquote(urlparse(uri).path))
    elif uri.startswith("/"):
        candidates.append(uri)
    if run.location and os.path.isdir(run.location):
        candidates.append(os.path.join(run.location, "artifacts"))
    for c in candidates:
        if os.path.isdir(c):
            return os.path.realpath(c)
    return None
