"""What ``octostore run --`` costs a command that prints a lot.

A script printing 1,000,000 lines (``print``, ~50 MB) runs plain and under
``octostore run --``, alternately, a few times each:

* ``pipes``: the command's streams are not a terminal (here ``/dev/null``), so
  octostore gives the child pipes and copies them to ``/dev/null`` and the log;
* ``pty``: the streams are a pseudo-terminal (a reader thread here drains its
  master, as a terminal emulator would), so octostore gives the child a pty of
  its own and copies it to the outer one and the log;
* ``unbuffered``: pipes again, with ``PYTHONUNBUFFERED=1`` (common in containers):
  two ``write`` calls per line, the worst case for a tee.

CPU is the children's user + system time (the script, and octostore with its
threads when it runs); wall is the elapsed time.  Medians are printed with the
ratio run / plain; the goal is an overhead under 5%.  A ``start`` row runs
``python -c pass`` both ways: octostore's fixed cost per command (its start,
the capture tags), which the big runs include.  The machine's load is printed:
other jobs move these numbers.

Run: ``python -m bench.console_overhead [--lines 1000000] [--repeat 5] [--json FILE]``.
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
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
PRINTER = """
import sys
for i in range(int(sys.argv[1])):
    print(f"line {i:7d}: loss 0.123456 acc 0.987654 lr 0.001 epoch 3/10")
"""


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _drain(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 1 << 16):
                return
        except OSError:
            return


def measure(argv: list[str], mode: str, cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall s, cpu s) of one run of ``argv`` with its streams as ``mode`` says."""
    cpu0, t0 = _cpu(), time.perf_counter()
    if mode == "pipes":
        subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    else:
        master, slave = os.openpty()
        reader = threading.Thread(target=_drain, args=(master,), daemon=True)
        reader.start()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=slave, stderr=slave)
        os.close(slave)
        code = proc.wait()
        reader.join()
        os.close(master)
        if code:
            raise subprocess.CalledProcessError(code, argv)
    return time.perf_counter() - t0, _cpu() - cpu0


def tee_own_cpu(cmd: list[str], mode: str, work: str, env: dict[str, str]) -> tuple[float, float]:
    """(the tee's own cpu s, the command's cpu s): the runner in this process, so its
    threads' time is told apart from the command's (a steadier figure on a busy machine
    than the difference of two totals)."""
    from octostored.console import logwriter, runner

    sink = os.open(os.devnull, os.O_WRONLY) if mode == "pipes" else None
    master = reader = None
    if sink is None:
        master, sink = os.openpty()
        reader = threading.Thread(target=_drain, args=(master,), daemon=True)
        reader.start()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    cwd = os.getcwd()
    try:
        os.chdir(work)
        for fd in (1, 2):
            os.dup2(sink, fd)
        own0, kids0 = resource.getrusage(resource.RUSAGE_SELF), _cpu()
        writer = logwriter.LogWriter(logwriter.new_log_file(work), cmd)
        runner.run(cmd, cmd[0], env, writer)
        own1, kids1 = resource.getrusage(resource.RUSAGE_SELF), _cpu()
    finally:
        for fd, orig in saved.items():
            os.dup2(orig, fd)
            os.close(orig)
        os.close(sink)
        os.chdir(cwd)
    if reader is not None and master is not None:
        reader.join()
        os.close(master)
    own = (own1.ru_utime + own1.ru_stime) - (own0.ru_utime + own0.ru_stime)
    return own, kids1 - kids0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="octostore-console-bench-")
    try:
        script = os.path.join(work, "printer.py")
        with open(script, "w") as f:
            f.write(PRINTER)
        env = dict(os.environ, PYTHONPATH=REPO, OCTOSTORE_CAPTURE="0",
                   OCTOSTORE_CAPTURE_CACHE=os.path.join(work, "capture-cache"))
        env.pop("OCTOSTORE_CONSOLE_LOG", None)
        env.pop("PYTHONUNBUFFERED", None)
        unbuffered = dict(env, PYTHONUNBUFFERED="1")
        py = sys.executable
        teed = [py, "-m", "octostored.cli", "run", "--"]
        logs = os.path.join(work, ".octostore", "logs")
        lines = [py, script, str(args.lines)]
        cases = [("start", "pipes", [py, "-c", "pass"], env),
                 (f"{args.lines:,} lines", "pipes", lines, env),
                 (f"{args.lines:,} lines", "pty", lines, env),
                 (f"{args.lines:,} unbuffered", "pipes", lines, unbuffered)]
        rows = []
        print(f"console overhead: {args.repeat} repeats, load {os.getloadavg()[0]:.2f}, "
              f"{os.cpu_count()} cpus, Python {sys.version.split()[0]}")
        print(f"{'':24} {'mode':6} {'wall plain':>11} {'wall run':>9} {'ratio':>6} "
              f"{'cpu plain':>10} {'cpu run':>8} {'ratio':>6}  log MB")
        for name, mode, cmd, case_env in cases:
            plain: list[tuple[float, float]] = []
            run: list[tuple[float, float]] = []
            size = 0
            for _ in range(args.repeat):
                plain.append(measure(cmd, mode, work, case_env))
                run.append(measure(teed + cmd, mode, work, case_env))
                size = sum(e.stat().st_size for e in os.scandir(logs) if e.name.endswith(".log"))
                shutil.rmtree(logs)
            wp, wr = (statistics.median(w for w, _ in xs) for xs in (plain, run))
            cp, cr = (statistics.median(c for _, c in xs) for xs in (plain, run))
            rows.append({"case": name, "mode": mode, "wall_plain": wp, "wall_run": wr,
                         "cpu_plain": cp, "cpu_run": cr, "log_bytes": size,
                         "samples": {"plain": plain, "run": run}})
            print(f"{name:24} {mode:6} {wp:10.3f}s {wr:8.3f}s {wr / wp:6.3f} "
                  f"{cp:9.3f}s {cr:7.3f}s {cr / cp:6.3f}  {size / 1e6:6.1f}")
        start = rows[0]
        fixed_wall = start["wall_run"] - start["wall_plain"]
        fixed_cpu = start["cpu_run"] - start["cpu_plain"]
        print(f"without the fixed start cost ({fixed_wall:.3f}s wall, {fixed_cpu:.3f}s cpu: "
              "octostore's start and the capture tags, as before the tee):")
        for r in rows[1:]:
            r["tee_wall_ratio"] = (r["wall_run"] - fixed_wall) / r["wall_plain"]
            r["tee_cpu_ratio"] = (r["cpu_run"] - fixed_cpu) / r["cpu_plain"]
            print(f"{r['case']:24} {r['mode']:6} wall {r['tee_wall_ratio']:6.3f}  "
                  f"cpu {r['tee_cpu_ratio']:6.3f}")
        print("the tee's own cpu (pump and disk threads), against the command's:")
        for r in rows[1:]:
            case = next(c for c in cases if c[0] == r["case"] and c[1] == r["mode"])
            own, kids = [], []
            for _ in range(args.repeat):
                o, k = tee_own_cpu(case[2], case[1], work, case[3])
                own.append(o)
                kids.append(k)
                shutil.rmtree(logs)
            r["tee_own_cpu"], r["command_cpu"] = statistics.median(own), statistics.median(kids)
            print(f"{r['case']:24} {r['mode']:6} tee {r['tee_own_cpu']:6.3f}s  command "
                  f"{r['command_cpu']:6.3f}s  ratio {r['tee_own_cpu'] / r['command_cpu']:6.3f}")
        print(f"load after: {os.getloadavg()[0]:.2f}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"repeat": args.repeat, "lines": args.lines, "rows": rows}, f,
                          indent=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
