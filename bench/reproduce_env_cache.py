"""The reproduction's environment cache, measured: the second reproduction of a lock builds nothing.

    .venv/bin/python -m bench.reproduce_env_cache                 # the tiny project (48 packages)
    .venv/bin/python -m bench.reproduce_env_cache --project demo  # demo/ (scikit-learn, pandas,
                                                                  # full MLflow: ~90 packages)

What it does, with a real daemon on a private socket and an empty cache:

1. makes a git repo with the project, builds the project's environment the way a user
   would (a venv from its requirements, with uv) and trains two runs with their capture
   tags (as ``octostore run -- python train.py`` records them);
2. reproduces run A (the environment is built from the lock: the *first build*);
3. reproduces run A again, then run B (another run, the same lock): both find the
   environment built (the *cached build*).

For each reproduction it reports the job's per-phase wall time (``octostore/job``
timings), the environment's own build time and whether it came from the cache, and the
verdict.  The uv package cache is warm in every case (the training venv was just built
from it): what the first build pays is linking and compiling bytecode
(``UV_COMPILE_BYTECODE=1``), which the cache saves.  Results go to
``bench/results/reproduce-env-cache-<project>.json`` and a table to stdout.

The harness never imports MLflow: training runs in the project's venv.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from octostored.capture import collect, envlock

from .daemon import Daemon

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

TINY_REQUIREMENTS = "mlflow-skinny==3.18.0\nsqlalchemy==2.1.9\nalembic==1.20.1\n"
TINY_TRAIN = '''\
import argparse, random
import mlflow
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
random.seed(a.seed)
mlflow.set_experiment("bench")
with mlflow.start_run():
    mlflow.log_params(vars(a))
    loss = 1.0
    for epoch in range(20):
        loss = loss * (1 - a.lr) + random.random() * 0.01
        mlflow.log_metric("loss", loss, step=epoch)
'''


def uv_bin() -> str:
    local = REPO / ".tools" / "bin" / "uv"
    return str(local) if local.exists() else (shutil.which("uv") or "uv")


def git(cwd: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@invalid",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@invalid")
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=env).stdout


def make_project(kind: str, base: Path) -> tuple[Path, str, list[list[str]]]:
    """(repo, folder of the training script relative to it, argv of the runs to train)."""
    repo = base / "repo"
    if kind == "demo":
        shutil.copytree(REPO / "demo", repo, ignore=shutil.ignore_patterns(
            "mlruns", "mlflow.db", "__pycache__"))
        runs = [["--n-estimators", "30", "--seed", "1"], ["--n-estimators", "30", "--seed", "2"]]
    else:
        repo.mkdir(parents=True)
        (repo / "train.py").write_text(TINY_TRAIN)
        (repo / "requirements.txt").write_text(TINY_REQUIREMENTS)
        runs = [["--lr", "0.2", "--seed", "1"], ["--lr", "0.3", "--seed", "2"]]
    (repo / ".gitignore").write_text("mlruns/\nmlflow.db\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "project")
    return repo, ".", runs


def user_env(repo: Path, base: Path) -> tuple[Path, float]:
    """The user's own environment for the project (a venv from its requirements)."""
    env = dict(os.environ, UV_COMPILE_BYTECODE="1", UV_PYTHON_DOWNLOADS="never")
    env.pop("VIRTUAL_ENV", None)
    folder = base / "user-venv"
    t0 = time.perf_counter()
    base_py = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([uv_bin(), "venv", "-q", "--python", base_py, str(folder)], check=True,
                   env=env)
    subprocess.run([uv_bin(), "pip", "install", "-q", "--python", str(folder / "bin" / "python"),
                    "-r", str(repo / "requirements.txt")], check=True, env=env)
    return folder / "bin" / "python", time.perf_counter() - t0


def train(repo: Path, python: Path, args: list[str]) -> None:
    lock = subprocess.run([str(python), "-c", Path(envlock.__file__).read_text(), str(repo)],
                          capture_output=True, text=True, check=True).stdout
    argv = ["python", "train.py", *args]
    tags = collect.collect(cwd=str(repo), argv=argv, lock_text=lock,
                           python=json.loads(lock)["python"]["version"])
    env = dict(os.environ, MLFLOW_RUN_CONTEXT=json.dumps(tags))
    env.pop("MLFLOW_TRACKING_URI", None)
    subprocess.run([str(python), "train.py", *args], cwd=repo, env=env, check=True,
                   capture_output=True, text=True)


def reproduce(c: Any, repo: Path, run_id: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    job = c.call("octostore/reproduce", root=str(repo), run_id=run_id, confirmed=True)["job"]
    while True:
        p = c.wait_notification("octostore/job", timeout=3600)["params"]
        if p["job"] == job and p["event"] == "finished":
            break
    wall = time.perf_counter() - t0
    r = p.get("result") or {}
    env = r.get("environment") or {}
    return {"run_id": run_id, "state": p["state"], "verdict": r.get("verdict"),
            "wall_seconds": round(wall, 2), "phases": p.get("timings") or {},
            "env_cached": env.get("cached"), "env_build_seconds": env.get("build_seconds"),
            "packages": env.get("packages"), "error": p.get("error"),
            "diverged": {m["key"]: m["rel_diff"] for m in r.get("metrics") or []
                         if m["status"] != "equal"}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", choices=["tiny", "demo"], default="tiny")
    ap.add_argument("--out", help="results JSON (default: bench/results/reproduce-env-cache-"
                    "<project>.json)")
    args = ap.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="oct-bench-r-", dir="/tmp"))
    daemon: Daemon | None = None
    try:
        os.environ["OCTOSTORE_CAPTURE_CACHE"] = str(base / "capture")
        os.environ["OCTOSTORE_UV"] = uv_bin()
        repo, _, runs = make_project(args.project, base)
        python, user_seconds = user_env(repo, base)
        for run_args in runs:
            train(repo, python, run_args)
        daemon = Daemon(str(base / "daemon"))
        daemon.start()
        with daemon.client(timeout=3600) as c:  # type: ignore[attr-defined]
            listed = c.call("octostore/runs", root=str(repo),
                            order_by=["attributes.start_time ASC"])["runs"]
            a, b = listed[0]["run_id"], listed[1]["run_id"]
            rows = [("first build (run A, empty cache)", reproduce(c, repo, a)),
                    ("cached (run A again)", reproduce(c, repo, a)),
                    ("cached (run B, same lock)", reproduce(c, repo, b))]
        result = {"project": args.project, "machine": platform.node(), "python":
                  platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M"),
                  "uv": subprocess.run([uv_bin(), "--version"], capture_output=True,
                                       text=True).stdout.strip(),
                  "user_venv_seconds": round(user_seconds, 2),
                  "reproductions": [{"case": name, **row} for name, row in rows]}
        out = Path(args.out) if args.out else HERE / "results" / (
            f"reproduce-env-cache-{args.project}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"project {args.project}: {rows[0][1]['packages']} packages; the user's own venv "
              f"took {user_seconds:.1f} s to build ({result['uv']})")
        print(f"{'case':36} {'verdict':11} {'environment':>12} {'build':>8} {'total':>8}")
        for name, row in rows:
            env_phase = row["phases"].get("environment", 0.0)
            build = row["env_build_seconds"] or 0.0
            print(f"{name:36} {str(row['verdict']):11} {env_phase:11.2f}s {build:7.2f}s "
                  f"{row['wall_seconds']:7.2f}s")
        for name, row in rows:
            if row["diverged"]:
                moved = ", ".join(f"{k} ({v:+.2g} relative)" if isinstance(v, float) else k
                                  for k, v in row["diverged"].items())
                print(f"{name}: moved: {moved}")
        print(f"results: {out}")
        # The measure is the cache; a verdict is the project's business (demo/ predicts with
        # n_jobs=2, whose summation order varies in the last bit).
        ok = all(r["state"] == "done" for _, r in rows) and rows[1][1]["env_cached"] \
            and rows[2][1]["env_cached"]
        return 0 if ok else 1
    finally:
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
