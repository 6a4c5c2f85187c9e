"""Faults around the daemon: kill -9, stores changing under it, a full disk, stalled clients.

Each test states the fault, then checks the promise: nothing lost or duplicated
(the index equals what is on disk after ``octostore/sync``), the daemon keeps
serving, and what went wrong is a warning a person can read.  Kills happen at
moments the test observes (a root in state ``indexing``, a snapshot temp file
on disk), never after a sleep.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from octostored.client import Client
from octostored.index.snapshot import load_snapshot
from octostored.index.state import RootIndex

from . import broken_stores as bs
from .conftest import DaemonProc, git, make_repo, wait_for


FAST_FS = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else "/tmp"
"""Big generated stores live in memory when they can: creating and removing thousands of
small files on a busy disk costs more than the tests themselves."""


@pytest.fixture
def tmp() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="oct-fa-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def shared() -> Iterator[DaemonProc]:
    """One daemon for the tests that do not kill it (each uses its own root)."""
    base = Path(tempfile.mkdtemp(prefix="oct-fs-", dir="/tmp"))
    d = DaemonProc(base)
    # What a kill -9 in the middle of a snapshot write leaves behind (see the test below).
    os.makedirs(d.cache)
    (Path(d.cache) / ".snap-leftover").write_bytes(b"\x00" * 4096)
    d.start()
    yield d
    d.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def fast() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="oct-fa-", dir=FAST_FS))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write_many(exp_dir: Path, exp_id: str, n: int, params: int = 3, blob: int = 0) -> list[str]:
    """``n`` small runs in MLflow's layout, fast (no MLflow): their ids.  ``blob`` adds a
    param of that many bytes (to make replies and snapshots big cheaply)."""
    ids = []
    for i in range(n):
        rid = uuid.uuid4().hex
        rd = exp_dir / rid
        for sub in ("params", "metrics", "tags"):
            (rd / sub).mkdir(parents=True)
        (rd / "meta.yaml").write_text(bs.meta_text(bs.run_meta(
            rid, exp_id, exp_dir, name=f"r{i}", status="FINISHED", start=bs.T0 + i,
            end=bs.T0 + i + 1)))
        for p in range(params):
            (rd / "params" / f"p{p}").write_text(f"value-{i}-{p}")
        if blob:
            (rd / "params" / "blob").write_text("x" * blob)
        (rd / "metrics" / "loss").write_text(f"{bs.T0} {1 / (i + 1)!r} 0\n")
        ids.append(rid)
    return ids


def big_store(root: Path, n: int, blob: int = 0) -> set[str]:
    store = root / "mlruns"
    bs.write_experiment(store, "0", "Default")
    exp = bs.write_experiment(store, "1", "big")
    return set(write_many(exp, "1", n, blob=blob))


def on_disk(root: Path) -> set[str]:
    """Run ids as the store holds them now (folders with a meta.yaml)."""
    return {p.parent.name for p in (root / "mlruns").glob("*/*/meta.yaml")}


def indexed(c: Client, root: Path) -> list[str]:
    c.call("octostore/sync", root=str(root))
    return [r["run_id"] for r in c.call("octostore/runs", root=str(root), view="all",
                                        limit=10_000)["runs"]]


def root_state(c: Client, root: Path) -> str | None:
    for r in c.call("octostore/status")["roots"]:
        if r["root"] == str(root):
            return str(r["state"])
    return None


def open_without_waiting(d: DaemonProc, root: Path) -> socket.socket:
    """Ask the daemon to open ``root`` and return at once (the reply is never read)."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.socket)
    body = b'{"jsonrpc":"2.0","id":1,"method":"octostore/open","params":{"root":"%s"}}' % (
        str(root).encode())
    s.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return s


# -- kill -9 ---------------------------------------------------------------------------------

def test_kill_9_while_indexing_loses_and_duplicates_nothing(tmp: Path, fast: Path) -> None:
    root = fast / "repo"
    want = big_store(root, 1500)
    d = DaemonProc(tmp / "d")
    (tmp / "d").mkdir()
    d.start()
    s = open_without_waiting(d, root)
    with d.client() as c:
        wait_for(lambda: root_state(c, root) == "indexing", timeout=20, interval=0.002,
                 what="the root to be indexing")
    d.kill9()
    s.close()
    assert os.path.exists(d.socket) and os.path.exists(d.socket + ".lock")  # left by the dead
    d.start()  # replaces the stale socket, takes over the lock
    try:
        with d.client() as c:
            ids = indexed(c, root)
            assert len(ids) == len(set(ids)) and set(ids) == want
            assert c.call("octostore/open", root=str(root))["state"] == "ready"
    finally:
        d.stop()


def test_kill_9_during_a_snapshot_write_leaves_a_whole_snapshot(tmp: Path, fast: Path) -> None:
    root = fast / "repo"  # the store in memory, the cache (and its fsync) on disk
    want = big_store(root, 1000, blob=8000)  # an 8 MB snapshot: a wide window to kill in
    d = DaemonProc(tmp / "d")
    (tmp / "d").mkdir()
    cache = Path(d.cache)
    d.start()
    with d.client() as c:
        assert set(indexed(c, root)) == want
    d.stop()  # a complete snapshot on disk
    [snap] = cache.glob("root-*.msgpack")
    killed_mid_write = False
    for attempt in range(3):
        # Change the store while no daemon runs: the next start writes a new snapshot.
        run = next(iter(want))
        with open(root / "mlruns" / "1" / run / "metrics" / "loss", "a") as f:
            f.write(f"{bs.T0 + 1} 0.{attempt + 1} {attempt + 1}\n")
        before = snap.stat().st_mtime_ns
        d.start()
        s = open_without_waiting(d, root)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # kill the moment a temp snapshot exists
            if any(p.name.startswith(".snap-") for p in os.scandir(cache)):
                break
            if snap.stat().st_mtime_ns != before:
                break  # written already: too late this time
        d.kill9()
        s.close()
        killed_mid_write = any(p.name.startswith(".snap-") for p in os.scandir(cache))
        # Whatever the moment, the snapshot on disk is a whole one: the old or the new.
        index = RootIndex(str(root), "check")
        assert load_snapshot(str(snap), index, {}, _StoreState), "the snapshot was torn"
        assert set(index.runs) == want
        if killed_mid_write:
            break
    assert killed_mid_write, "never caught the daemon writing its snapshot"
    d.start()
    try:
        with d.client() as c:
            ids = indexed(c, root)
            assert len(ids) == len(set(ids)) and set(ids) == want
            run = c.call("octostore/run", root=str(root), run_id=next(iter(want)))
            assert run["metrics"]["loss"]["step"] == attempt + 1
    finally:
        d.stop()


class FileSizeLimitedDaemon(DaemonProc):
    """A daemon that cannot write a file past 64 KiB: a write that fails half way, the way
    a full disk fails it (Python ignores SIGXFSZ, so the write gets EFBIG)."""

    def start(self) -> FileSizeLimitedDaemon:
        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "octostored.daemon", "--socket", self.socket],
                env=self.env(), stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                preexec_fn=limit)
        wait_for(self._answers, timeout=30, what="the daemon to answer")
        return self


def test_a_snapshot_write_that_fails_half_way_keeps_the_previous_one_whole(
        tmp: Path, fast: Path) -> None:
    """A kill -9 cannot tear a write that reached the page cache; a write that fails half
    way can.  The previous snapshot must survive it whole (temp file, then rename)."""
    root = fast / "repo"
    want = big_store(root, 200, blob=1000)  # a snapshot of about 300 KB
    d = DaemonProc(tmp / "d")
    (tmp / "d").mkdir()
    d.start()
    with d.client() as c:
        assert set(indexed(c, root)) == want
    d.stop()
    [snap] = Path(d.cache).glob("root-*.msgpack")
    before = snap.read_bytes()
    new = write_many(root / "mlruns" / "1", "1", 2)  # so the next daemon writes again
    limited = FileSizeLimitedDaemon(tmp / "d")
    limited.start()
    try:
        with limited.client() as c:
            assert_snapshot_warning(c, root, "File too large")
            assert set(indexed(c, root)) == want | set(new)
    finally:
        limited.stop()
    assert snap.read_bytes() == before, "the previous snapshot was overwritten in place"
    assert not [p for p in os.listdir(d.cache) if p.startswith(".snap-")]


class _StoreState:
    def __init__(self, ref: Any) -> None:
        self.ref = ref
        self.runs: dict[str, Any] = {}
        self.cursor = None


def test_leftover_temp_snapshots_are_removed(shared: DaemonProc, fast: Path) -> None:
    """A kill -9 mid-write leaves a ``.snap-*`` file as big as the index; a later daemon
    must clean it up, or every crash leaks that much disk in the cache folder."""
    root = fast / "repo"
    big_store(root, 5)
    with shared.client() as c:
        indexed(c, root)
        assert c.call("octostore/open", root=str(root))["state"] == "ready"
    assert not (Path(shared.cache) / ".snap-leftover").exists()


# -- the store changes while it is read ------------------------------------------------------

def test_writes_during_the_first_scan_are_indexed_without_a_sync(shared: DaemonProc,
                                                                   fast: Path) -> None:
    """The first scan of a root runs before its watch is armed; what is written meanwhile
    must still reach the index by the time the root says ``ready``, with no sync asked."""
    root = fast / "repo"
    want = big_store(root, 1500)
    d = shared
    s = open_without_waiting(d, root)
    with d.client() as c:
        wait_for(lambda: root_state(c, root) == "indexing", timeout=20, interval=0.002,
                 what="the root to be indexing")
        for rid in want:  # while the daemon reads them: a new latest point on every run
            with open(root / "mlruns" / "1" / rid / "metrics" / "loss", "a") as fh:
                fh.write(f"{bs.T0 + 5} 7.5 1\n")
        (late,) = write_many(root / "mlruns" / "1", "1", 1)
        assert root_state(c, root) != "ready", "the scan ended before the writes: make it bigger"
        wait_for(lambda: root_state(c, root) == "ready", timeout=60, what="the root to be ready")
        runs = c.call("octostore/runs", root=str(root), view="all", limit=10_000)["runs"]
        assert {r["run_id"] for r in runs} == want | {late}
        stale = [r["run_id"] for r in runs if r["run_id"] != late and r["metrics"]["loss"] != 7.5]
        assert not stale, f"{len(stale)} runs kept the point from before the write"
    s.close()


def test_runs_deleted_during_the_first_scan(shared: DaemonProc, fast: Path) -> None:
    root = fast / "repo"
    want = big_store(root, 1200)
    victims = sorted(want)[::3]
    d = shared
    s = open_without_waiting(d, root)
    with d.client() as c:
        wait_for(lambda: root_state(c, root) == "indexing", timeout=20, interval=0.002,
                 what="the root to be indexing")
        for rid in victims:  # while the daemon reads them
            shutil.rmtree(root / "mlruns" / "1" / rid)
        ids = indexed(c, root)
        assert len(ids) == len(set(ids)) and set(ids) == on_disk(root) == want - set(victims)
        info = c.call("octostore/open", root=str(root))
        assert info["state"] == "ready" and not any("failed" in w for w in info["warnings"])
    s.close()


def test_mlflow_gc_under_the_daemon(shared: DaemonProc, tmp: Path) -> None:
    from click.testing import CliRunner
    from mlflow import MlflowClient
    from mlflow.cli import gc

    root = make_repo(tmp / "repo")
    uri = (root / "mlruns").as_uri()
    mlf = MlflowClient(tracking_uri=uri)
    exp = mlf.create_experiment("gc")
    ids = [mlf.create_run(exp, run_name=f"r{i}").info.run_id for i in range(6)]
    d = shared
    with d.client() as c:
        clock = c.call("octostore/open", root=str(root))["clock"]
        for rid in ids[:3]:
            mlf.delete_run(rid)
        assert sorted(indexed(c, root)) == sorted(ids)
        from mlflow.tracking._tracking_service import utils

        saved = utils._tracking_uri
        try:
            out = CliRunner().invoke(gc, ["--backend-store-uri", uri, "--tracking-uri", uri],
                                     catch_exceptions=False)
        finally:
            utils._tracking_uri = saved
        assert out.exit_code == 0, out.output
        assert sorted(indexed(c, root)) == sorted(ids[3:])
        since = c.call("octostore/runs", root=str(root), view="all", since_clock=clock)
        assert set(since["removed"]) == set(ids[:3])


def _git_store(tmp: Path) -> tuple[Path, dict[str, Any]]:
    """A repo whose committed ./mlruns differs between branches a and b."""
    root = make_repo(tmp / "repo")
    store = root / "mlruns"
    bs.write_experiment(store, "0", "Default")
    exp = bs.write_experiment(store, "1", "branches")
    _, shared = bs.write_run(exp, "1", name="shared", params={"lr": "0.1"},
                             metrics={"loss": [(bs.T0, 0.5, 100)]})
    _, only_a = bs.write_run(exp, "1", name="only-a")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "runs on a")
    git(root, "branch", "a")
    git(root, "checkout", "-qb", "b")
    git(root, "rm", "-rq", f"mlruns/1/{only_a.run_id}")
    _, only_b = bs.write_run(exp, "1", name="only-b")
    # The same metric file, rewritten: longer, other values, lower steps.
    b_points = [(bs.T0 + s, 0.9 - s / 100, s) for s in range(8)]
    (exp / shared.run_id / "metrics" / "loss").write_text(
        "".join(f"{t} {v!r} {s}\n" for t, v, s in b_points))
    (exp / shared.run_id / "params" / "lr").write_text("0.2")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "runs on b")
    git(root, "checkout", "-q", "a")
    return root, {"shared": shared.run_id, "a": only_a.run_id, "b": only_b.run_id,
                  "b_points": b_points}


def test_git_checkout_of_another_branch_under_the_daemon(shared: DaemonProc, tmp: Path) -> None:
    root, ids = _git_store(tmp)
    d = shared
    with d.client() as c:
        assert set(indexed(c, root)) == {ids["shared"], ids["a"]}
        for branch in ("b", "a", "b"):
            git(root, "checkout", "-q", branch)
            assert set(indexed(c, root)) == on_disk(root)
        run = c.call("octostore/run", root=str(root), run_id=ids["shared"])
        assert run["params"] == {"lr": "0.2"}
        t, v, s = ids["b_points"][-1]
        assert run["metrics"]["loss"] == {"value": v, "step": s, "timestamp": t}


def test_git_checkout_rewrites_metric_histories_too(shared: DaemonProc, tmp: Path) -> None:
    root, ids = _git_store(tmp)
    d = shared
    with d.client() as c:
        indexed(c, root)
        first = c.call("octostore/metric_history", root=str(root), run_ids=[ids["shared"]],
                       keys=["loss"])["series"][0]
        assert first["y"] == [0.5]
        git(root, "checkout", "-q", "b")
        indexed(c, root)
        hist = c.call("octostore/metric_history", root=str(root), run_ids=[ids["shared"]],
                      keys=["loss"])["series"][0]
        assert hist["x"] == [s for _, _, s in ids["b_points"]]
        assert hist["y"] == [v for _, v, _ in ids["b_points"]]


# -- a full disk, an unwritable cache ---------------------------------------------------------

class FullDiskDaemon(DaemonProc):
    """A daemon whose cache folder is a 64 KiB tmpfs in its own mount namespace (root), or
    whose file size limit is 64 KiB (anyone): either way, writing the snapshot fails."""

    def start(self) -> FullDiskDaemon:
        os.makedirs(self.cache, exist_ok=True)
        cmd = [sys.executable, "-m", "octostored.daemon", "--socket", self.socket]
        preexec = None
        if os.geteuid() == 0 and shutil.which("unshare"):
            cmd = ["unshare", "-m", "sh", "-c",
                   f'mount -t tmpfs -o size=64k tmpfs "{self.cache}" && exec "$@"', "sh", *cmd]
        else:
            def preexec() -> None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, env=self.env(), stdout=out, stderr=out,
                                         stdin=subprocess.DEVNULL, preexec_fn=preexec)
        wait_for(self._answers, timeout=30, what="the daemon to answer")
        return self


def test_a_full_disk_costs_the_snapshot_not_the_service(tmp: Path, fast: Path) -> None:
    root = fast / "repo"
    want = big_store(root, 100, blob=1000)
    d = FullDiskDaemon(tmp / "d")
    (tmp / "d").mkdir()
    d.start()
    try:
        with d.client() as c:
            assert_snapshot_warning(c, root, "No space left|File too large")
            # Still serving, still live, and still saying why there is no snapshot.
            new = write_many(root / "mlruns" / "1", "1", 3)
            assert set(indexed(c, root)) == want | set(new)
            assert_snapshot_warning(c, root, "No space left|File too large")
    finally:
        d.stop()
    assert d.proc is not None and d.proc.returncode == 0
    assert not [p for p in os.listdir(d.cache) if p.startswith(".snap-")]


def assert_snapshot_warning(c: Client, root: Path, problem: str) -> None:
    def warned() -> bool:
        ws = c.call("octostore/open", root=str(root))["warnings"]
        return any("cannot write the index snapshot" in w and re.search(problem, w) for w in ws)
    wait_for(warned, timeout=10, what=f"a warning that the snapshot cannot be written ({problem})")


def test_an_unwritable_cache_folder_costs_the_snapshot_not_the_service(
        tmp: Path, fast: Path) -> None:
    from .test_reliability_stores import UnprivilegedDaemon

    root = fast / "repo"
    want = big_store(root, 20)
    d = UnprivilegedDaemon(tmp / "d")
    (tmp / "d").mkdir()
    os.makedirs(d.cache)
    os.chmod(d.cache, 0o500)
    d.start()
    try:
        with d.client() as c:
            assert_snapshot_warning(c, root, "Permission denied")
            assert set(indexed(c, root)) == want
            assert_snapshot_warning(c, root, "Permission denied")
    finally:
        d.stop()


# -- clients that stall --------------------------------------------------------------------------

def _latencies(c: Client, seconds: float, out: list[float], stop: threading.Event) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not stop.is_set():
        t = time.monotonic()
        c.call("octostore/status")
        out.append(time.monotonic() - t)


def test_a_client_that_never_reads_is_dropped_not_waited_for(
        shared: DaemonProc, fast: Path) -> None:
    root = fast / "repo"
    big_store(root, 300, blob=20_000)  # each reply about 6 MB
    d = shared
    with d.client() as c:
        indexed(c, root)
        base_clients = c.call("octostore/status")["clients"]
        assert d.proc is not None
        rss0 = _rss_kib(d.proc.pid)
        hog = socket.socket(socket.AF_UNIX)
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.connect(d.socket)
        body = (b'{"jsonrpc":"2.0","id":1,"method":"octostore/runs","params":{"root":"%s",'
                b'"limit":10000}}' % str(root).encode())
        req = b"Content-Length: %d\r\n\r\n" % len(body) + body
        lat: list[float] = []
        stop = threading.Event()
        for _ in range(16):  # about 100 MB of replies it will never read
            try:
                hog.sendall(req)
            except OSError:
                break  # dropped already
            _latencies(c, 0.05, lat, stop)
        wait_for(lambda: c.call("octostore/status")["clients"] == base_clients, timeout=30,
                 what="the daemon to drop the client that does not read")
        assert max(lat) < 5.0, f"the others waited {max(lat):.1f} s"
        assert _rss_kib(d.proc.pid) - rss0 < 200 * 1024
        hog.close()


def test_half_frames_and_idle_connections_block_nobody(shared: DaemonProc) -> None:
    d = shared
    stalled = []
    try:
        for i in range(30):
            s = socket.socket(socket.AF_UNIX)
            s.connect(d.socket)
            s.sendall([b"Content-Length: 100\r\n\r\n{\"jsonrpc\":",
                       b"Content-Len", b"", b"Content-Length: 5\r\n"][i % 4])
            stalled.append(s)
        with d.client() as c:
            assert c.call("octostore/status")["clients"] >= 31
            lat: list[float] = []
            _latencies(c, 1.0, lat, threading.Event())
        assert len(lat) > 20 and sorted(lat)[int(len(lat) * 0.99)] < 1.0
    finally:
        for s in stalled:
            s.close()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# -- the socket path -----------------------------------------------------------------------------

def test_a_file_at_the_socket_path_is_left_alone(tmp: Path) -> None:
    d = DaemonProc(tmp)
    Path(d.socket).write_text("someone's notes\n")
    out = subprocess.run([sys.executable, "-m", "octostored.daemon", "--socket", d.socket],
                         env=d.env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "not a socket" in out.stderr
    assert Path(d.socket).read_text() == "someone's notes\n"


def test_a_runs_warnings_survive_a_restart(tmp: Path) -> None:
    """A bad metric line is reported once the run is read; after a restart from the snapshot,
    when another file of that run changes, the warning about the unchanged metric file must
    still be there (the run is re-read, that metric file is not)."""
    root = tmp / "repo"
    store = root / "mlruns"
    bs.write_experiment(store, "0", "Default")
    exp = bs.write_experiment(store, "1", "w")
    rd, run = bs.write_run(exp, "1", name="noisy", params={"a": "1"})
    (rd / "metrics" / "loss").write_text(f"{bs.T0} 0.5 0\nnot a line\n{bs.T0} 0.25 1\n")
    d = DaemonProc(tmp / "d")
    (tmp / "d").mkdir()
    d.start()
    try:
        with d.client() as c:
            indexed(c, root)
            before = c.call("octostore/run", root=str(root), run_id=run.run_id)["warnings"]
            assert any("metrics/loss line 2" in w for w in before), before
        d.stop()
        (rd / "params" / "b").write_text("2")  # the run changed; its metric file did not
        d.start()
        with d.client() as c:
            indexed(c, root)
            got = c.call("octostore/run", root=str(root), run_id=run.run_id)
        assert got["params"] == {"a": "1", "b": "2"}
        assert got["warnings"] == before
    finally:
        d.stop()
