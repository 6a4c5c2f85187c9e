"""Metric histories: read on demand, cached with a memory bound, extended by appends.

A history is read the first time a client asks for it, by the run's store object
(a SQLite store queries it, a server's source fetches it).  For a file store the
cache remembers how many bytes of the metric file it consumed; when the file
grew, only the new bytes are read (a live training run appends a line at a
time).  The cache holds at most ``MAX_POINTS`` points, least recently used
histories are dropped first.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..model import Run
from ..safefile import open_regular
from ..sources import filestore
from ..sources.metricfile import Point

if TYPE_CHECKING:
    from .stores.base import Store

MAX_POINTS = 2_000_000
"""About 150 MB of cached points at most."""
WITNESS = 64
"""Bytes before the read offset that must be unchanged for an append-only read."""


class HistoryCache:
    def __init__(self, max_points: int = MAX_POINTS,
                 store_of: Callable[[Run, str], Store] | None = None) -> None:
        self.max_points = max_points
        self._store_of = store_of
        """The store object that reads a run's histories (given the run and its store's
        kind); without it, every history is read as a file store's."""
        self._entries: OrderedDict[tuple[str, str], tuple[list[Point], int, int, int, bytes]] = (
            OrderedDict())
        self._points = 0
        self._lock = threading.Lock()

    def get(self, run: Run, key: str, store_kind: str) -> tuple[list[Point], list[str]]:
        """The full history of ``key`` in ``run`` (timestamp, value, step), as the run's
        store reads it (:meth:`Store.metric_history
        <octostored.index.stores.base.Store.metric_history>`), and warnings."""
        if self._store_of is None:
            return self.file_history(run, key)
        return self._store_of(run, store_kind).metric_history(run, key, self)

    def file_history(self, run: Run, key: str) -> tuple[list[Point], list[str]]:
        """The history of ``key`` in the file-store run ``run``, file order.

        A file that only grew is extended from where the last read stopped, after
        checking that the bytes before that point are still the ones read (a ``git
        checkout`` or a copy can rewrite a metric file with a longer one).
        """
        path = os.path.join(run.location, "metrics", key)
        try:
            st = os.stat(path)
        except OSError:
            return [], []
        ck = (run.run_id, key)
        with self._lock:
            cached = self._entries.get(ck)
            if cached is not None:
                self._entries.move_to_end(ck)
        if cached is not None:
            points, consumed, size, mtime, witness = cached
            if size == st.st_size and mtime == st.st_mtime_ns:
                return points, []
            if st.st_size > consumed and self._unchanged_before(path, consumed, witness):
                new, consumed, warnings = filestore.read_metric_tail(run.location, key, consumed)
                points = points + new
                self._put(ck, points, consumed, st, path)
                return points, warnings
        points, consumed, warnings = filestore.read_metric_history(run.location, key)
        self._put(ck, points, consumed, st, path)
        return points, warnings

    @staticmethod
    def _unchanged_before(path: str, offset: int, witness: bytes) -> bool:
        return _bytes_at(path, offset - len(witness), len(witness)) == witness

    def _put(self, ck: tuple[str, str], points: list[Point], consumed: int,
             st: os.stat_result, path: str) -> None:
        witness = b""
        if consumed:
            witness = _bytes_at(path, max(0, consumed - WITNESS), min(consumed, WITNESS)) or b""
        with self._lock:
            old = self._entries.pop(ck, None)
            if old is not None:
                self._points -= len(old[0])
            self._entries[ck] = (points, consumed, st.st_size, st.st_mtime_ns, witness)
            self._points += len(points)
            while self._points > self.max_points and len(self._entries) > 1:
                dropped = self._entries.popitem(last=False)[1][0]
                self._points -= len(dropped)

    def invalidate_run(self, run_id: str) -> None:
        """Nothing to do for appends (sizes tell); kept for stores rewritten in place."""


def downsample(points: list[tuple[float, float]], max_points: int) -> list[tuple[float, float]]:
    """At most ``max_points`` (x, y) points that keep each bucket's extremes.

    Points are split into ``max_points // 2`` buckets along the list; each
    bucket contributes its minimum and maximum in x order, and the first and
    last points are always kept, so spikes and the end value survive.
    """
    n = len(points)
    if max_points <= 0 or n <= max_points:
        return points
    buckets = max(1, (max_points - 2) // 2)
    out = [points[0]]
    size = (n - 2) / buckets
    for b in range(buckets):
        lo = 1 + int(b * size)
        hi = 1 + int((b + 1) * size)
        chunk = points[lo:hi]
        if not chunk:
            continue
        finite = [p for p in chunk if p[1] == p[1]]
        if not finite:
            out.append(chunk[0])
            continue
        mn = min(finite, key=lambda p: p[1])
        mx = max(finite, key=lambda p: p[1])
        out.extend(sorted({mn, mx}, key=lambda p: p[0]) if mn != mx else [mn])
    out.append(points[-1])
    return out


def _bytes_at(path: str, offset: int, n: int) -> bytes | None:
    """``n`` bytes of the regular file ``path`` at ``offset``; None when it cannot be read
    (a metric file swapped for a FIFO is refused without blocking)."""
    try:
        fd, _st = open_regular(path)
    except OSError:
        return None
    try:
        return os.pread(fd, n, offset)
    except OSError:
        return None
    finally:
        os.close(fd)
