"""What the capture plugin adds to ``mlflow.start_run()``.

Measures, in a throwaway git repo (a realistic one: a few hundred tracked
files, some edited, some untracked):

* ``tags()`` cold: the first run of a fresh interpreter with an empty capture
  cache (lists every distribution, writes the lock);
* ``tags()`` warm, clean tree and dirty tree: every later run;
* its parts: the environment lock from the cache, and the two git processes;
* optionally (``--mlflow``) ``mlflow.start_run()`` + ``end_run()`` on a file
  store with and without the provider registered, which is what a user feels.

Run: ``python bench/capture_overhead.py [--repeat 30] [--files 300] [--mlflow]``.
Timings are medians (and p90) in milliseconds; the machine's load is printed
because other jobs move these numbers a lot (STACK.md reads them as +-30%).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from octostored.capture import envlock, gitstate  # noqa: E402
from octostored.capture.provider import OctostoreRunContext  # noqa: E402


def _git(repo: str, *args: str) -> None:
    subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True)


def make_repo(base: str, files: int) -> str:
    repo = os.path.join(base, "repo")
    os.makedirs(os.path.join(repo, "src"))
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "bench@octostore.invalid")
    _git(repo, "config", "user.name", "bench")
    for i in range(files):
        with open(os.path.join(repo, "src", f"mod_{i}.py"), "w") as f:
            f.write(f"VALUE_{i} = {i}\n" * 20)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "init")
    return repo


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(median wall ms, p90 wall ms, mean CPU ms of this process and its git children).

    CPU time barely moves with the machine's load, wall time does: read both.
    """
    times = []
    cpu0 = _cpu()
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    cpu = (_cpu() - cpu0) * 1000 / repeat
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.9))], cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--files", type=int, default=300, help="tracked files in the repo")
    ap.add_argument("--mlflow", action="store_true", help="also time mlflow.start_run()")
    ap.add_argument("--big-mb", type=int, default=0,
                    help="also time a dirty tree holding a modified tracked data file this big")
    args = ap.parse_args(argv)
    base = tempfile.mkdtemp(prefix="octo-capture-bench-")
    os.environ["OCTOSTORE_CAPTURE_CACHE"] = os.path.join(base, "cache")
    try:
        repo = make_repo(base, args.files)
        os.chdir(repo)
        provider = OctostoreRunContext()
        rows: list[tuple[str, float, float, float]] = []

        t, c = time.perf_counter(), _cpu()
        provider.tags()
        rows.append(("tags() cold (empty cache, lock written)", (time.perf_counter() - t) * 1000,
                     float("nan"), (_cpu() - c) * 1000))
        rows.append(("tags() warm, clean tree", *measure(provider.tags, args.repeat)))
        with open(os.path.join(repo, "src", "mod_1.py"), "a") as f:
            f.write("EDITED = True\n")
        with open(os.path.join(repo, "src", "new_model.py"), "w") as f:
            f.write("NEW = 1\n")
        rows.append(("tags() warm, dirty tree", *measure(provider.tags, args.repeat)))
        if args.big_mb:
            rows.append((f"tags() warm, + {args.big_mb} MB modified tracked file",
                         *measure(_with_big_file(repo, args.big_mb, provider), args.repeat)))

        def lock_from_disk_cache() -> None:
            envlock._MEMO.clear()
            envlock.cached_lock(repo)

        rows.append(("  environment lock, disk cache", *measure(lock_from_disk_cache, args.repeat)))
        rows.append(("  environment lock, rebuilt", *measure(
            lambda: envlock.build_lock(repo), args.repeat)))
        rows.append(("  git diff + ls-files (concurrent)", *measure(
            lambda: gitstate.git_state(repo), args.repeat)))
        rows.append(("  one `git rev-parse` (process floor)", *measure(
            lambda: subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True),
            args.repeat)))

        if args.mlflow:
            rows += _mlflow_rows(base, args.repeat)

        print(f"capture overhead: {args.files} tracked files, {args.repeat} repeats, "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
        print(f"{'':44} {'median ms':>10} {'p90 ms':>8} {'cpu ms':>8}")
        for name, med, p90, cpu in rows:
            p90s = "" if p90 != p90 else f"{p90:8.2f}"
            print(f"{name:44} {med:10.2f} {p90s:>8} {cpu:8.2f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


def _with_big_file(repo: str, mb: int, provider: OctostoreRunContext) -> Callable[[], object]:
    """A tracked ``data/big.bin`` of ``mb`` MB, committed then appended to (left modified):
    before the patch left big files out, every ``start_run`` diffed it (20 s at 200 MB)."""
    os.makedirs(os.path.join(repo, "data"), exist_ok=True)
    path = os.path.join(repo, "data", "big.bin")
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(mb):
            f.write(block)
    _git(repo, "add", "data/big.bin")
    _git(repo, "commit", "-qm", "big data")
    with open(path, "ab") as f:
        f.write(b"new rows\n" * 1000)
    return provider.tags


def _mlflow_rows(base: str, repeat: int) -> list[tuple[str, float, float, float]]:
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    import mlflow  # heavy: only with --mlflow
    from mlflow.tracking.context import registry

    mlflow.set_tracking_uri("file://" + os.path.join(base, "store"))
    mlflow.set_experiment("bench")

    def one_run() -> None:
        with mlflow.start_run():
            pass

    one_run()
    rows = [("mlflow.start_run()+end_run(), no plugin", *measure(one_run, repeat))]
    registry._run_context_provider_registry.register(OctostoreRunContext)
    one_run()
    rows.append(("mlflow.start_run()+end_run(), with plugin", *measure(one_run, repeat)))
    return rows


if __name__ == "__main__":
    sys.exit(main())
