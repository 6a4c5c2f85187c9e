"""What syncing a tracking server keeps and gives: the :class:`RemoteCursor` (the caller's
state, plain types for the snapshot), a :class:`RemoteScan` (one sync's result), the
:class:`SyncPolicy` (intervals, backoff, margins) and :class:`RemoteError`.  Standard
library only."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..model import Experiment, Run


@dataclass(slots=True)
class RemoteCursor:
    """Where the syncs of one server left off.  Plain types only (see :meth:`to_row`)."""

    where: str
    """The server (scrubbed URI); a cursor for another server is ignored."""
    watermark: int = 0
    """ms: ``min(wall clock at the last sync's start, max_seen)``; the next incremental sync
    reads runs started or ended at or after ``watermark - margin``."""
    max_seen: int = 0
    """ms: the newest start or end time seen in any run."""
    unfinished: list[str] = field(default_factory=list)
    """Runs RUNNING or SCHEDULED at the last sync (re-read by id until they finish)."""
    experiments: dict[str, str] = field(default_factory=dict)
    """Experiment id -> lifecycle stage."""
    digests: dict[str, str] = field(default_factory=dict)
    """Run id -> digest of the record last returned."""
    experiment_of: dict[str, str] = field(default_factory=dict)
    """Run id -> experiment id."""
    last_listing: float = 0.0
    """Wall clock of the last full or listing sync."""
    listing_seconds: float = 0.0
    """How long that listing took."""
    syncs: int = 0

    def to_row(self) -> dict[str, Any]:
        slots = self.__slots__  # type: ignore[attr-defined]
        return {"remote": 1, **{f: getattr(self, f) for f in slots}}

    @classmethod
    def from_row(cls, row: Any) -> RemoteCursor | None:
        if not isinstance(row, dict) or row.get("remote") != 1:
            return None
        try:
            return cls(**{f: row[f] for f in cls.__slots__})  # type: ignore[attr-defined]
        except (KeyError, TypeError):
            return None


@dataclass(slots=True)
class RemoteScan:
    """What one sync of a server found."""

    experiments: list[Experiment]
    """Every experiment of the server (empty when the sync failed)."""
    runs: list[Run]
    """Every run when ``full``; otherwise only the runs that changed."""
    removed: list[str]
    """Ids of runs gone from the server (hard-deleted, or their experiment was)."""
    warnings: list[str]
    """Source-level problems, credentials removed.  With ``ok`` False: keep what you have."""
    full: bool
    """True when ``runs`` holds every run: replace this source's runs instead of merging."""
    ok: bool
    """False when the sync failed (server unreachable, slow, erroring, credentials rejected)."""
    mode: str = ""
    """"full", "list", "incremental", or "" when the sync failed."""
    error: str = ""
    """Kind of failure: "unreachable", "timeout", "auth", "server", "worker", "error"."""
    cursor: RemoteCursor | None = None
    """The state after this sync (the source keeps it too, as ``source.cursor``)."""
    stats: dict[str, Any] = field(default_factory=dict)
    """Seconds, requests, runs listed and sent."""
    next_sync_in: float | None = None
    """Set by the poll loop: seconds until the next sync."""

    def apply_to(self, runs: dict[str, Run]) -> None:
        """Bring ``runs`` (this source's runs by id, as of the previous scan) up to this one.

        Nothing changes when the sync failed; a full scan replaces everything.
        """
        if not self.ok:
            return
        if self.full:
            runs.clear()
        for rid in self.removed:
            runs.pop(rid, None)
        for run in self.runs:
            runs[run.run_id] = run


class RemoteError(Exception):
    """A call to the server failed; ``str()`` is a scrubbed, actionable message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class SyncPolicy:
    """When to sync: an interval, stretched when the server is slow, backed off when it fails."""

    interval: float = 10.0
    """Seconds between syncs of a healthy server."""
    max_delay: float = 300.0
    """Longest wait, also after many failures."""
    load_factor: float = 4.0
    """Wait at least this many times the last sync's duration (a slow server gets <= 20%)."""
    listing_interval: float = 600.0
    """Seconds between listings (the sync that catches what incremental ones can miss)."""
    listing_load: float = 20.0
    """And at least this many times the last listing's duration."""
    margin_ms: int = 300_000
    """Safety margin under the watermark: covers clock skew and commit delays."""
    jitter: float = 0.1
    """+- this fraction of randomness on each delay (many daemons, one server)."""
    failures: int = 0

    def next_delay(self, ok: bool, elapsed: float) -> float:
        """Seconds to wait before the next sync, after one that took ``elapsed`` seconds."""
        if ok:
            self.failures = 0
            base = max(self.interval, self.load_factor * elapsed)
        else:
            self.failures += 1
            base = max(self.interval * 2 ** min(self.failures, 16), self.load_factor * elapsed)
        base = min(base, self.max_delay)
        if self.jitter:
            base *= random.uniform(1 - self.jitter, 1 + self.jitter)
        return base

    def listing_due(self, cursor: RemoteCursor, now: float) -> bool:
        wait = max(self.listing_interval, self.listing_load * cursor.listing_seconds)
        return now - cursor.last_listing >= wait


def env_seconds(name: str, default: float, env: Mapping[str, str] | None = None) -> float:
    """A positive number of seconds from the environment (``default`` when unset or bad)."""
    raw = (os.environ if env is None else env).get(name, "")
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if value > 0 and value == value else default


def policy_from_env(env: Mapping[str, str] | None = None) -> SyncPolicy:
    """The daemon's :class:`SyncPolicy`: the defaults, or ``OCTOSTORE_REMOTE_INTERVAL``,
    ``OCTOSTORE_REMOTE_MAX_DELAY`` and ``OCTOSTORE_REMOTE_LISTING_INTERVAL`` (seconds; for
    tests and for servers that want to be asked less often)."""
    p = SyncPolicy()
    p.interval = env_seconds("OCTOSTORE_REMOTE_INTERVAL", p.interval, env)
    p.max_delay = max(p.interval, env_seconds("OCTOSTORE_REMOTE_MAX_DELAY", p.max_delay, env))
    p.listing_interval = env_seconds("OCTOSTORE_REMOTE_LISTING_INTERVAL", p.listing_interval,
                                     env)
    return p
