"""``octostore commit`` of N runs with a logged model each (issue 15).

In a throwaway git repo:

1. one real run logs a real scikit-learn model through MLflow
   (``mlflow.sklearn.log_model(model, name="model")``) into the file store ``mlruns/``,
   with the octostore capture plugin on, as a user's run would be;
2. that run and its model folder are cloned until the store holds N runs, each with its
   own logged model: fresh run ids (``uuid4().hex``) and model ids (``m-`` + hex), rewritten
   wherever MLflow wrote them (the run's meta.yaml and ``outputs/<model_id>/meta.yaml``
   link, the model's meta.yaml, metrics and MLmodel), and a run name of their own;
   MLflow itself then checks the result (``search_logged_models`` finds all N, three
   sampled models load by ``models:/<id>`` and predict as the original does);
3. a private ``octostored`` (socket, cache, state and config in the temp folder, as
   tests/conftest.py's DaemonProc) answers ``python -m octostored.cli commit --dry-run``
   and then the real ``commit``, each timed from the outside (wall seconds, the CLI's
   process included); their ``--json`` answers say how many runs and models they took.

Run: ``python bench/commit_models.py [--runs 1000] [--keep]``.  The first command is the
daemon's first look at the repo (it reads the store); the machine's load is printed
because other jobs move wall times a lot.  The clones' model files are identical, so git
stores each once: the ``.git`` column understates N distinct models (the commit's files and
bytes do not).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.daemon import Daemon  # noqa: E402

LOG_ONE = """
import json, sys
import mlflow
import numpy as np
from sklearn.linear_model import LogisticRegression

mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("bench-models")
rng = np.random.default_rng(0)
X = rng.random((200, 4))
y = (X[:, 0] + X[:, 1] > 1.0).astype(int)
with mlflow.start_run(run_name="bench-000000") as run:
    model = LogisticRegression(C=0.5).fit(X, y)
    mlflow.log_param("C", 0.5)
    mlflow.log_metric("accuracy", float(model.score(X, y)))
    info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
print(json.dumps([run.info.experiment_id, run.info.run_id, info.model_id,
                  model.predict(X[:8]).tolist()]))
"""
"""A fresh interpreter with stock MLflow (the harness never imports it)."""

CHECK = """
import json, sys
import mlflow
import numpy as np
from mlflow import MlflowClient

mlflow.set_tracking_uri(sys.argv[1])
exp, sample = sys.argv[2], json.loads(sys.argv[3])
found = MlflowClient().search_logged_models(experiment_ids=[exp], max_results=100000)
ids = {m.model_id: m.source_run_id for m in found}
X = np.random.default_rng(0).random((200, 4))[:8]
preds = {}
for rid, mid in sample:
    assert ids.get(mid) == rid, (mid, ids.get(mid), rid)
    preds[mid] = mlflow.sklearn.load_model(f"models:/{mid}").predict(X).tolist()
rid, mid = sample[0]
preds["runs:/" + rid] = mlflow.sklearn.load_model(f"runs:/{rid}/model").predict(X).tolist()
print(json.dumps({"found": len(ids), "preds": preds}))
"""


def _git(repo: str, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True,
                          text=True, env=env).stdout


def _mlflow_env(base: str) -> dict[str, str]:
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true", PYTHONPATH=ROOT,
               OCTOSTORE_CAPTURE_CACHE=os.path.join(base, "capture-cache"))
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _python(code: str, args: list[str], cwd: str, env: dict[str, str]) -> object:
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"python -c failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_repo(base: str) -> str:
    """A git repo with one commit and a private global git config (user, no hooks)."""
    cfg = os.path.join(base, "gitconfig")
    with open(cfg, "w") as f:
        f.write("[user]\n\tname = octostore bench\n\temail = bench@octostore.invalid\n"
                "[init]\n\tdefaultBranch = main\n")
    os.environ["GIT_CONFIG_GLOBAL"] = cfg
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    repo = os.path.join(base, "repo")
    os.makedirs(os.path.join(repo, "src"))
    _git(repo, "init", "-q")
    with open(os.path.join(repo, "src", "train.py"), "w") as f:
        f.write("# trains the bench model\n")
    with open(os.path.join(repo, ".gitignore"), "w") as f:
        f.write("/mlflow.db\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "init")
    return repo


def _files(top: str) -> list[tuple[str, bytes]]:
    out = []
    for d, _, names in os.walk(top):
        for n in names:
            full = os.path.join(d, n)
            with open(full, "rb") as f:
                out.append((os.path.relpath(full, top), f.read()))
    return out


def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def clone_runs(exp_dir: str, run_id: str, model_id: str, total: int,
               seed: int = 0) -> list[tuple[str, str]]:
    """Copy run ``run_id`` and its model ``model_id`` until ``exp_dir`` holds ``total``
    runs, each with a model; return every (run id, model id), the original first."""
    rng = random.Random(seed)
    run_files = _files(os.path.join(exp_dir, run_id))
    model_files = _files(os.path.join(exp_dir, "models", model_id))
    old_r, old_m = run_id.encode(), model_id.encode()
    old_name = next(d for p, d in run_files if p == os.path.join("tags", "mlflow.runName"))
    pairs = [(run_id, model_id)]
    for i in range(1, total):
        rid = uuid.UUID(int=rng.getrandbits(128), version=4).hex
        mid = "m-" + uuid.UUID(int=rng.getrandbits(128), version=4).hex
        new_r, new_m = rid.encode(), mid.encode()
        name = f"bench-{i:06d}".encode()
        for rel, data in run_files:
            data = data.replace(old_r, new_r).replace(old_m, new_m)
            if rel in ("meta.yaml", os.path.join("tags", "mlflow.runName")):
                data = data.replace(old_name, name)
            _write(os.path.join(exp_dir, rid, rel.replace(model_id, mid)), data)
        for rel, data in model_files:
            if not rel.endswith((".skops", ".pkl")):  # the model's bytes hold no ids
                data = data.replace(old_r, new_r).replace(old_m, new_m)
            _write(os.path.join(exp_dir, "models", mid, rel), data)
        pairs.append((rid, mid))
    return pairs


def store_size(top: str) -> tuple[int, int]:
    n = size = 0
    for d, _, names in os.walk(top):
        for name in names:
            n += 1
            size += os.path.getsize(os.path.join(d, name))
    return n, size


class BenchDaemon(Daemon):
    """bench/daemon.py's process, with the config home in the temp folder too."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env["XDG_CONFIG_HOME"] = os.path.join(self.base, "config")
        return env


def octostore_commit(d: BenchDaemon, repo: str, dry_run: bool) -> tuple[float, float, dict]:
    """(wall s, daemon CPU s, the CLI's --json answer) of one ``octostore commit``."""
    argv = [sys.executable, "-m", "octostored.cli", "commit", "--root", repo, "--json"]
    if dry_run:
        argv.append("--dry-run")
    cpu0 = d.cpu_s()
    t = time.perf_counter()
    proc = subprocess.run(argv, env=d.env(), capture_output=True, text=True, timeout=3600,
                          cwd=repo)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"octostore commit failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, d.cpu_s() - cpu0, json.loads(proc.stdout)


def _models(res: dict) -> tuple[int, int]:
    """(models going in, models left out) of a commit answer."""
    models = [m for m in res.get("models") or [] if m.get("model_id")]
    gone = sum(1 for m in models if m.get("route") == "left-out")
    return len(models) - gone, gone


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000, help="runs, each with a logged model")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (printed)")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be 1 or more")
    base = tempfile.mkdtemp(prefix="octo-cm-", dir="/tmp")  # short: the socket path
    d: BenchDaemon | None = None
    try:
        repo = make_repo(base)
        mlruns = os.path.join(repo, "mlruns")
        t = time.perf_counter()
        exp, run_id, model_id, expected = _python(
            LOG_ONE, ["file://" + mlruns], repo, _mlflow_env(base))  # type: ignore[misc]
        log_s = time.perf_counter() - t

        t = time.perf_counter()
        pairs = clone_runs(os.path.join(mlruns, exp), run_id, model_id, args.runs)
        clone_s = time.perf_counter() - t
        files, size = store_size(mlruns)

        sample = [pairs[0]] + random.Random(1).sample(pairs[1:], min(2, len(pairs) - 1))
        t = time.perf_counter()
        got = _python(CHECK, ["file://" + mlruns, exp, json.dumps(sample)], repo,
                      _mlflow_env(base))
        check_s = time.perf_counter() - t
        assert isinstance(got, dict)
        if got["found"] != args.runs:
            raise RuntimeError(f"MLflow finds {got['found']} logged models, not {args.runs}")
        bad = [k for k, v in got["preds"].items() if v != expected]
        if bad:
            raise RuntimeError(f"these models predict differently from the original: {bad}")

        d = BenchDaemon(os.path.join(base, "d"))
        start_s = d.start()
        dry_wall, dry_cpu, dry = octostore_commit(d, repo, dry_run=True)
        real_wall, real_cpu, real = octostore_commit(d, repo, dry_run=False)
        objects = _git(repo, "count-objects", "-vH")
        counts = dict(line.split(": ", 1) for line in objects.splitlines() if ": " in line)
        committed = _git(repo, "show", "--stat", "--format=", "HEAD").strip().splitlines()
        rss = d.memory_mb().get("VmHWM", float("nan"))

        dry_in, dry_out = _models(dry)
        real_in, real_out = _models(real)
        runs_done = len(real["runs"])
        done = f"{real['files']} f, {real['bytes'] / 1e6:.1f} MB"
        print(f"octostore commit of runs with a logged model each: load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
        print(f"  setup: 1 MLflow run + sklearn model logged in {log_s:.1f} s; cloned to "
              f"{args.runs} runs in {clone_s:.1f} s; MLflow check ({got['found']} models "
              f"found, {len(sample)} loaded by models:/ + 1 by runs:/) {check_s:.1f} s; "
              f"daemon up in {start_s:.2f} s")
        head = (f"{'N runs':>7} {'store':>16} {'dry-run s':>10} {'commit s':>9} "
                f"{'ms/run':>7} {'daemon cpu s':>13} {'runs':>5} {'models':>7} "
                f"{'left out':>9} {'committed':>18} {'.git':>10}")
        print(head)
        git_size = f"{counts.get('size-pack', '?')} pack+{counts.get('size', '?')}"
        print(f"{args.runs:>7} {f'{files} f, {size / 1e6:.1f} MB':>16} {dry_wall:>10.2f} "
              f"{real_wall:>9.2f} {real_wall * 1000 / max(1, runs_done):>7.1f} "
              f"{f'{dry_cpu:.1f} + {real_cpu:.1f}':>13} {runs_done:>5} {real_in:>7} "
              f"{real_out:>9} {done:>18} "
              f"{git_size:>10}")
        print(f"  dry run planned {len(dry['runs'])} runs, {dry_in} models ({dry_out} left "
              f"out), {dry['files']} files; commit {real['commit'][:10]}: "
              f"{committed[-1].strip() if committed else '?'}")
        print(f"  daemon peak RSS {rss:.0f} MB; git count-objects -vH: "
              + ", ".join(f"{k} {v}" for k, v in counts.items()))
        warnings = real.get("warnings") or []
        if warnings or real.get("skipped"):
            print(f"  {len(warnings)} warning(s), {len(real.get('skipped') or [])} skipped; "
                  f"first: {(warnings or [''])[0][:200]}")
        if args.keep:
            print(f"  kept: {base} (repo {repo}; daemon log {d.log})")
    finally:
        if d is not None:
            d.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
