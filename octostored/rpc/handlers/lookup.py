"""Finding what a request names: a run by id or unique prefix (every handler that takes a
``run_id`` resolves it here, one rule for all)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import RunNotFound

if TYPE_CHECKING:
    from ...index.root import Root
    from ...model import Run


def find_run(root: Root, run_id: str) -> Run:
    """A run by id or unique id prefix (at least 6 characters)."""
    run = root.index.runs.get(run_id)
    if run is not None:
        return run
    if len(run_id) >= 6:
        hits = [r for rid, r in root.index.runs.items() if rid.startswith(run_id)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise RunNotFound(f"run id prefix {run_id} matches {len(hits)} runs",
                              "give more characters of the run id")
    raise RunNotFound(f"no run {run_id} in {root.path}",
                      "list the runs with `octostore runs` and copy an id")
