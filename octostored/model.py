"""The records every reader produces and the index holds.

Readers (``sources/``) turn files and rows into these records; the index
(``index/``) stores them and the query engine (``query/``) reads them.  They
are plain slotted dataclasses so that attribute access on the query hot path
is cheap and a snapshot can be packed as tuples (see ``to_row``/``from_row``).

Values follow MLflow's entities: ``status`` is the name (``"FINISHED"``),
times are epoch milliseconds or ``None``, params and tags are strings, and a
metric's latest value is ``(value, timestamp, step)``, chosen as MLflow
chooses it: the maximum by ``(step, timestamp, value)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

RUN_STATUSES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
"""MLflow's integer run status codes, as the file store writes them."""

ACTIVE = "active"
DELETED = "deleted"

LatestMetric = tuple[float, int, int]
"""(value, timestamp ms, step) of a metric's latest point."""


@dataclass(slots=True)
class Run:
    """One MLflow run as the index knows it."""

    run_id: str
    experiment_id: str
    run_name: str | None = None
    """None when neither meta.yaml nor the ``mlflow.runName`` tag names the run (as MLflow)."""
    status: str = "FINISHED"
    lifecycle_stage: str = ACTIVE
    start_time: int | None = None
    end_time: int | None = None
    user_id: str = ""
    artifact_uri: str = ""
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, LatestMetric] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    deleted_time: int | None = None
    source: str = ""
    """Id of the store the run was read from (see ``sources.StoreId``)."""
    location: str = ""
    """Where the run lives in that store: a run folder, or the database path."""
    warnings: list[str] = field(default_factory=list)
    experiment_key: str = ""
    """The experiment's key in its root (unique even when two stores reuse an id)."""
    committed: bool = False
    """True when the run is present in a store tracked by git (committed)."""
    sources: list[str] = field(default_factory=list)
    """Every store the run was found in (one run may be in two stores)."""
    clock: int = 0
    """The root's tick at which this run last changed."""

    def to_row(self) -> list[Any]:
        return [getattr(self, f) for f in _RUN_FIELDS]

    @classmethod
    def from_row(cls, row: list[Any]) -> Run:
        run = cls(*row)
        run.metrics = {k: tuple(v) for k, v in run.metrics.items()}  # type: ignore[misc]
        return run


@dataclass(slots=True)
class Experiment:
    """One MLflow experiment."""

    experiment_id: str
    name: str
    lifecycle_stage: str = ACTIVE
    artifact_location: str = ""
    creation_time: int | None = None
    last_update_time: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    source: str = ""
    dir: str = ""
    """Where the experiment sits in a file store: ``"<id>"`` or ``".trash/<id>"``."""
    warnings: list[str] = field(default_factory=list)
    key: str = ""

    def to_row(self) -> list[Any]:
        return [getattr(self, f) for f in _EXP_FIELDS]

    @classmethod
    def from_row(cls, row: list[Any]) -> Experiment:
        return cls(*row)


_RUN_FIELDS = tuple(f.name for f in fields(Run))
_EXP_FIELDS = tuple(f.name for f in fields(Experiment))


def json_float(value: float) -> float | str:
    """A metric value as JSON can carry it: non-finite values become strings.

    JSON has no NaN or infinity, and a bare ``NaN`` kills VS Code's JSON-RPC
    connection, so they travel as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
    """
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def from_json_float(value: float | str | None) -> float | None:
    """Inverse of :func:`json_float` (clients use it)."""
    if isinstance(value, str):
        return float(value.replace("Infinity", "inf"))
    return value
