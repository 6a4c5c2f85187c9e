"""A real ``octostored`` process on a private socket, cache and log (as tests/conftest.py).

Besides start and stop it reads the process's CPU time and memory from
``/proc`` so the harness can report CPU seconds (less disturbed than wall time
on a shared machine) and peak RSS (``VmHWM``).
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

from octostored.client import Client, DaemonUnavailable

_TICK = os.sysconf("SC_CLK_TCK")


class Daemon:
    def __init__(self, base: str, cache: str | None = None) -> None:
        os.makedirs(base, exist_ok=True)
        self.base = base
        self.socket = os.path.join(base, "d.sock")
        self.cache = cache or os.path.join(base, "cache")
        self.log = os.path.join(base, "daemon.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def env(self) -> dict[str, str]:
        return dict(os.environ, OCTOSTORE_SOCKET=self.socket, OCTOSTORE_CACHE_DIR=self.cache,
                    XDG_STATE_HOME=os.path.join(self.base, "state"),
                    OCTOSTORE_LOG_LEVEL="WARNING")

    def start(self, timeout: float = 60.0) -> float:
        """Start the process; return seconds from ``Popen`` to the first answer (status)."""
        self.started_at = time.perf_counter()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "octostored.daemon", "--socket", self.socket],
                env=self.env(), stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        deadline = self.started_at + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"octostored exited with {self.proc.returncode}; see {self.log}")
            try:
                with Client(self.socket, autostart=False, timeout=timeout) as c:
                    c.call("octostore/status")
                return time.perf_counter() - self.started_at
            except DaemonUnavailable:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"octostored did not answer in {timeout} s; see {self.log}")
                time.sleep(0.002)

    def client(self, timeout: float = 600.0) -> Client:
        return Client(self.socket, autostart=False, timeout=timeout, check_version=False)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_s(self) -> float:
        """User + system CPU seconds so far of the daemon and its children (its watcher
        processes): those running now, and those it has reaped."""
        return _tree_cpu(self.pid) / _TICK

    def children_rss_mb(self) -> float:
        """Resident memory of the daemon's running children (its watcher processes)."""
        total = 0.0
        for pid in _children(self.pid):
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1]) / 1024
            except OSError:
                continue
        return total

    def memory_mb(self) -> dict[str, float]:
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS"):
                    out[k] = int(v.split()[0]) / 1024
        return out

    def snapshot_files(self) -> list[str]:
        return glob.glob(os.path.join(self.cache, "root-*.msgpack"))

    def wait_idle(self, window: float = 0.5, busy: float = 0.05, timeout: float = 300.0) -> float:
        """Wait until the daemon spends under ``busy`` of a CPU over ``window`` seconds (its
        snapshot write and watch setup after the first answers are done), so a latency
        measurement times the request, not background work; return the seconds waited."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            c0 = self.cpu_s()
            time.sleep(window)
            if self.cpu_s() - c0 <= busy * window:
                break
        return time.perf_counter() - t0

    def wait_snapshot(self, timeout: float = 300.0) -> bool:
        """Wait until a snapshot exists and stopped changing (its write is asynchronous)."""
        deadline = time.perf_counter() + timeout
        last = None
        while time.perf_counter() < deadline:
            files = self.snapshot_files()
            tmp = glob.glob(os.path.join(self.cache, ".snap-*"))
            if files and not tmp:
                sig = [(f, os.stat(f).st_mtime_ns) for f in files]
                if sig == last:
                    return True
                last = sig
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def _tree_cpu(pid: int) -> int:
    """Clock ticks of ``pid`` (user, system, and its reaped children's) plus its live
    descendants'."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0
    ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks + sum(_tree_cpu(c) for c in _children(pid))
