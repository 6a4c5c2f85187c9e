"""Time from launching ``octostore-tui`` to its first screen with data, on the demo repo.

Each measurement is a fresh process doing what the console script does
(``octostore_tui.__main__``: bytecode cache, ``make_app``, run) headless at
200x60, timed from just before the process is spawned until the Insights screen
shows data (the app's ``FirstData`` message).  Interpreter start-up and imports
are included: that is what a person waits for.

Scenarios, each on a private socket and cache (the user's own daemon is never
touched):

* daemon running: a daemon already serves the repo (the common case);
* daemon not running, snapshot in the cache: the TUI starts the daemon, which
  loads its index snapshot and re-checks the stores;
* daemon not running, empty cache: the TUI starts the daemon, which indexes
  the repo from scratch.

Targets (the TUI issue): under 1 s with the daemon running, under 3 s when the
TUI has to start it.  Usage::

    .venv/bin/python bench/tui_first_screen.py [DIR] [--repeat N]

DIR defaults to the bundled demo; if the demo has no runs yet, ``demo/prepare.py``
trains them first (a few minutes, once).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "demo"
TARGET_RUNNING = 1.0
TARGET_STARTING = 3.0


# -- the measured process ----------------------------------------------------------------------
def child(root: str, socket: str, t0: float, timeout: float) -> int:
    """Run the app headless until its first screen with data; print the elapsed time as JSON."""
    from octostore_tui.__main__ import _cache_bytecode

    _cache_bytecode()
    from octostore_tui.prestart import start_if_absent

    starter = start_if_absent(socket)  # before Textual is imported, as the console script does
    from octostore_tui.app import OctostoreApp, make_app
    from octostore_tui.messages import FirstData

    class BenchApp(OctostoreApp):
        def on_first_data(self, message: FirstData) -> None:
            # OctostoreApp.on_first_data runs too (Textual calls every class's handler).
            elapsed = time.time() - t0
            screen = self.screen
            data = getattr(screen, "data", None) or {}
            print(json.dumps({"seconds": elapsed, "runs": data.get("total")}), flush=True)
            self.exit()

        def on_mount(self) -> None:
            self.set_timer(
                timeout, lambda: (print(json.dumps({"error": "timeout"}), flush=True), self.exit())
            )

    app = make_app(
        root, socket, autostart=True, timeout=timeout, starter=starter, app_class=BenchApp
    )
    app.run(headless=True, size=(200, 60))
    return 0


# -- the driver -----------------------------------------------------------------------------------
CPU: list[float] = []
"""CPU seconds (user + system) of each measured TUI process, in order."""


def measure(root: str, socket: str, env: dict[str, str], timeout: float = 30.0) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "--socket",
            socket,
            "--t0",
            repr(t0),
            "--timeout",
            str(timeout),
            root,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            out = json.loads(line)
            if "seconds" in out:
                return float(out["seconds"])
            raise SystemExit(f"the app did not show data within {timeout:.0f} s")
    raise SystemExit(f"the measured process failed: {(proc.stderr or proc.stdout).strip()[-800:]}")


def client(socket: str):
    sys.path.insert(0, str(REPO))
    from octostored.client import Client

    return Client(socket, autostart=False, timeout=60)


def stop_daemon(socket: str) -> None:
    from octostored.client import DaemonUnavailable

    try:
        with client(socket) as c:
            pid = c.call("octostore/status")["pid"]
            c.call("octostore/shutdown")
    except DaemonUnavailable:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise SystemExit(f"the benchmark's daemon (pid {pid}) did not stop")


def start_daemon(socket: str, env: dict[str, str], root: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "octostored.daemon", "--socket", socket, "--detach"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    with client(socket) as c:
        c.call("octostore/sync", root=root)


def summary(name: str, values: list[float], cpu: list[float], target: float) -> str:
    med = statistics.median(values)
    verdict = "ok" if med < target else "OVER TARGET"
    spread = ", ".join(f"{v:.2f}" for v in values)
    return (
        f"{name:<40} median {med:5.2f} s wall, {statistics.median(cpu):4.2f} s CPU of the TUI  "
        f"(target < {target:.0f} s: {verdict})  [{spread}]"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", nargs="?", default=str(DEMO))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--socket", help=argparse.SUPPRESS)
    ap.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=30.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.dir, args.socket, args.t0, args.timeout)

    root = os.path.abspath(args.dir)
    if root == str(DEMO) and not any((DEMO / n).exists() for n in ("mlflow.db", "mlruns")):
        print("the demo has no runs yet: training them with demo/prepare.py (once, a few minutes)")
        subprocess.run([sys.executable, str(DEMO / "prepare.py")], check=True)

    base = Path(tempfile.mkdtemp(prefix="oct-bench-", dir="/tmp"))
    socket = str(base / "d.sock")
    env = dict(
        os.environ,
        OCTOSTORE_SOCKET=socket,
        OCTOSTORE_CACHE_DIR=str(base / "cache"),
        XDG_STATE_HOME=str(base / "state"),
    )
    results: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    try:
        start_daemon(socket, env, root)
        with client(socket) as c:
            info = c.call("octostore/open", root=root)
        print(
            f"repo {info['root']}: {info['runs']} runs in {info['experiments']} experiments; "
            f"{args.repeat} launches per scenario, headless 200x60"
        )
        first = measure(root, socket, env)  # may compile bytecode into the cache: not counted
        print(f"{'first launch (may compile bytecode; not counted)':<40} {first:5.2f} s")
        CPU.clear()
        results["daemon running"] = [measure(root, socket, env) for _ in range(args.repeat)]
        cpu["daemon running"], CPU[:] = list(CPU), []

        warm: list[float] = []
        for _ in range(max(1, args.repeat // 2 + 1)):
            stop_daemon(socket)
            warm.append(measure(root, socket, env))
        results["daemon not running, snapshot in cache"] = warm
        cpu["daemon not running, snapshot in cache"], CPU[:] = list(CPU), []

        cold: list[float] = []
        for i in range(max(1, args.repeat // 2 + 1)):
            stop_daemon(socket)
            cache = base / f"cache-cold-{i}"
            cold.append(measure(root, socket, {**env, "OCTOSTORE_CACHE_DIR": str(cache)}))
        results["daemon not running, empty cache"] = cold
        cpu["daemon not running, empty cache"], CPU[:] = list(CPU), []
    finally:
        stop_daemon(socket)
        shutil.rmtree(base, ignore_errors=True)

    load = os.getloadavg()[0]
    print(
        f"load average {load:.1f} on {os.cpu_count()} cores (wall times grow with it; "
        "CPU times do not)"
    )
    print(
        summary("daemon running", results["daemon running"], cpu["daemon running"], TARGET_RUNNING)
    )
    for name in ("daemon not running, snapshot in cache", "daemon not running, empty cache"):
        print(summary(name, results[name], cpu[name], TARGET_STARTING))
    ok = statistics.median(results["daemon running"]) < TARGET_RUNNING and all(
        statistics.median(results[n]) < TARGET_STARTING for n in results if n != "daemon running"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
