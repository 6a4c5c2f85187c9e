"""Which runs a commit takes, and the message that says what went in.

Pure functions over index records, so the daemon's handler, the tests and a
future CLI without daemon choose runs the same way.

* By default a commit takes every run that is not committed yet (its folder is not
  in HEAD's tree under ``.octostore/runs``: after a checkout or a reset that dropped the
  commit, the runs are not committed, whatever the work tree holds), skipping deleted runs
  (and runs of deleted experiments) and runs that are still going (RUNNING,
  SCHEDULED: their files are still being written; commit them when they end).
* Named runs (ids or unique prefixes of 6+ characters) are taken even when
  deleted or already committed (a committed run that changed since is
  exported again); running ones are still skipped.
* ``--experiment`` narrows either set to experiments by name or id.
* Runs made on other branches (their commit is not an ancestor of HEAD) are set apart by
  :mod:`.branches` after this choice: left out unless asked or named.
* The message's "best" run is the best FINISHED run (a failed run's loss says nothing).
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import settings
from ..metricnames import count_keys, direction, key_metric_order
from .export import DEFAULT_MAX_ARTIFACT_BYTES

if TYPE_CHECKING:
    from ..model import Experiment, Run

LIVE_STATUSES = ("RUNNING", "SCHEDULED")
TRAILER = "Octostore-Run"
"""Git trailer naming each committed run: ``git log --format='%(trailers:key=Octostore-Run)'``."""

class SelectionError(Exception):
    def __init__(self, message: str, remedy: str) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy


@dataclass(slots=True)
class Selection:
    runs: list[Run] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    """Runs left out, each with ``run_id`` and ``reason``."""
    already_committed: int = 0


def select_runs(runs: list[Run], experiments: dict[str, Experiment],
                run_ids: list[str] | None = None,
                experiment: list[str] | None = None,
                committed_ids: frozenset[str] | None = None) -> Selection:
    """Choose the runs to commit.  ``committed_ids``: the runs in HEAD's tree
    (:func:`.git.head_run_ids`); None falls back to each run's ``committed`` flag.

    Raises:
        SelectionError: a named run or experiment does not exist, or a prefix is ambiguous.
    """
    sel = Selection()
    if experiment:
        keys = set()
        for ident in experiment:
            hits = [k for k, e in experiments.items()
                    if ident in (k, e.experiment_id, e.name)]
            if not hits:
                raise SelectionError(f"no experiment {ident!r} in this repo",
                                     "list them with `octostore experiments`")
            keys.update(hits)
        runs = [r for r in runs if (r.experiment_key or r.experiment_id) in keys]
    if run_ids:
        by_id = {r.run_id: r for r in runs}
        chosen: dict[str, Run] = {}
        for ident in run_ids:
            run = by_id.get(ident)
            if run is None and len(ident) >= 6:
                hits = [r for rid, r in by_id.items() if rid.startswith(ident)]
                if len(hits) > 1:
                    raise SelectionError(f"run id prefix {ident} matches {len(hits)} runs",
                                         "give more characters of the run id")
                run = hits[0] if hits else None
            if run is None:
                raise SelectionError(f"no run {ident} in this repo" + (
                    " (in the experiments named)" if experiment else ""),
                    "list the runs with `octostore runs` and copy an id")
            chosen[run.run_id] = run
        for run in chosen.values():
            if run.status in LIVE_STATUSES:
                sel.skipped.append({"run_id": run.run_id, "reason": f"still {run.status.lower()}"})
            else:
                sel.runs.append(run)
        return sel
    for run in sorted(runs, key=lambda r: (r.start_time or 0, r.run_id)):
        exp = experiments.get(run.experiment_key or run.experiment_id)
        if run.committed if committed_ids is None else run.run_id in committed_ids:
            sel.already_committed += 1
        elif run.lifecycle_stage != "active" or (exp is not None and (
                exp.lifecycle_stage != "active" or exp.dir.startswith(".trash"))):
            sel.skipped.append({"run_id": run.run_id, "reason": "deleted"})
        elif run.status in LIVE_STATUSES:
            sel.skipped.append({"run_id": run.run_id, "reason": f"still {run.status.lower()}"})
        else:
            sel.runs.append(run)
    return sel


def metric_direction(key: str) -> str | None:
    """"min", "max" or None when the name does not say."""
    return direction(key)


def best_metric(runs: list[Run]) -> tuple[str, float, str] | None:
    """(metric, best value, run id) for the most telling metric the runs share, or None.
    Only FINISHED runs can be the best: a run that failed or was killed half-way often
    holds the lowest loss of all."""
    runs = [r for r in runs if r.status == "FINISHED"]
    known = [k for k in key_metric_order(count_keys(r.metrics for r in runs))
             if metric_direction(k) is not None]
    if not known:
        return None
    key = known[0]
    sign = 1.0 if metric_direction(key) == "min" else -1.0
    best: tuple[float, str] | None = None
    for r in runs:
        m = r.metrics.get(key)
        if m is None or not math.isfinite(m[0]):
            continue
        if best is None or sign * m[0] < sign * best[0]:
            best = (m[0], r.run_id)
    if best is None:
        return None
    return key, best[0], best[1]


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def message(runs: list[Run], exp_names: list[str], user_message: str | None) -> str:
    """The commit message: a subject that says what went in, a run list, the trailers."""
    n = len(runs)
    what = f"{n} run{'s' if n != 1 else ''}"
    names = list(dict.fromkeys(exp_names))
    if names:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        what += f" of {shown}"
    best = best_metric(runs)
    summary = f"octostore: {what}"
    if best is not None:
        summary += f" (best {best[0]} {_fmt(best[1])} in run {best[2][:8]})"
    lines = [user_message.strip() if user_message and user_message.strip() else summary, ""]
    if user_message and user_message.strip():
        lines += [summary, ""]
    for r in runs[:20]:
        metrics = ", ".join(f"{k}={_fmt(v[0])}" for k, v in sorted(r.metrics.items())[:4])
        lines.append(f"- {r.run_id[:8]} {r.run_name or ''}".rstrip() + (f": {metrics}" if metrics
                                                                          else ""))
    if n > 20:
        lines.append(f"- ... and {n - 20} more")
    lines.append("")
    lines += [f"{TRAILER}: {r.run_id}" for r in runs]
    return "\n".join(lines) + "\n"


def max_artifact_bytes(root: str, override_mb: float | None = None) -> int:
    """The artifact size limit: the request's, else ``[tool.octostore.commit]``, else 10 MB.

    ``pyproject.toml``: ``[tool.octostore.commit] max_artifact_mb = 25``; or
    ``octostore.toml``: ``[commit] max_artifact_mb = 25``.
    """
    if override_mb is not None:
        return int(override_mb * 1024 * 1024)
    for _name, section in settings.sections(root):
        commit = section.get("commit")
        value = commit.get("max_artifact_mb") if isinstance(commit, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return int(value * 1024 * 1024)
    return DEFAULT_MAX_ARTIFACT_BYTES
