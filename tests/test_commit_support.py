"""Helpers shared by the commit, capture and init tests (no tests here).

* A template SQLite store made by MLflow once and cached on disk across
  sessions (MLflow's schema migrations take 7-25 s on a busy machine; a copy
  of the migrated file is what MLflow itself would open).
* Git isolation: a private global git config per test (``GIT_CONFIG_GLOBAL``),
  with Git LFS set up in it or hidden from ``PATH`` entirely.
* Snapshots of a repo's state (HEAD, index, status, diffs) to compare before
  and after a commit, and of what MLflow returns for a store.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

CACHE = Path(tempfile.gettempdir()) / "octostore-test-cache"


def sqlite_template() -> Path:
    """An empty MLflow 3.17 SQLite store, created once per machine."""
    import mlflow

    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"mlflow-{mlflow.__version__}.db"
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            tmp = CACHE / f"build-{os.getpid()}.db"
            from mlflow import MlflowClient

            MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments()
            os.replace(tmp, path)
    return path


def sqlite_client(repo: Path) -> Any:
    from mlflow import MlflowClient

    shutil.copy(sqlite_template(), repo / "mlflow.db")
    return MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")


def file_client(repo: Path, folder: str = "mlruns") -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=(repo / folder).as_uri())


def log_run(client: Any, exp: str, name: str, alpha: float, steps: int = 3,
            artifacts: dict[str, bytes] | None = None, tmp: Path | None = None,
            status: str = "FINISHED") -> str:
    rid = client.create_run(exp, run_name=name, tags={"team": "a"}).info.run_id
    client.log_param(rid, "alpha", str(alpha))
    client.log_param(rid, "model", "rf")
    for step in range(steps):
        client.log_metric(rid, "val_rmse", 1.0 - alpha - step / 100, step=step)
    client.log_metric(rid, "val_r2", alpha)
    for rel, data in (artifacts or {}).items():
        assert tmp is not None
        src = tmp / "art" / rid / rel
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(data)
        client.log_artifact(rid, str(src), os.path.dirname(rel) or None)
    if status != "RUNNING":
        client.set_terminated(rid, status)
    return rid


def isolate_git(monkeypatch: pytest.MonkeyPatch, base: Path, lfs: bool) -> None:
    """A private global git config; Git LFS installed in it, or hidden from PATH."""
    cfg = base / "gitconfig"
    cfg.write_text("[user]\n\tname = octostore tests\n\temail = tests@octostore.invalid\n"
                   "[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    if lfs:
        assert shutil.which("git-lfs") is not None, (
            "git-lfs is missing: scripts/test installs it (apt-get install git-lfs)")
        subprocess.run(["git", "lfs", "install", "--skip-repo"], check=True, capture_output=True)
    else:
        hide_git_lfs(monkeypatch, base)


def hide_git_lfs(monkeypatch: pytest.MonkeyPatch, base: Path) -> None:
    """PATH without git-lfs: one folder of links to every other program of its folders."""
    bin_dir = base / "bin-nolfs"
    bin_dir.mkdir(exist_ok=True)
    keep: list[str] = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not os.path.isdir(folder):
            continue
        if not os.path.exists(os.path.join(folder, "git-lfs")):
            keep.append(folder)
            continue
        for name in os.listdir(folder):
            link = bin_dir / name
            if name != "git-lfs" and not link.exists():
                os.symlink(os.path.join(folder, name), link)
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), *keep]))
    assert shutil.which("git-lfs") is None


def git(cwd: Path | str, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def repo_state(repo: Path) -> dict[str, str]:
    """Everything a commit must not change about the user's work."""
    return {
        "head": git(repo, "rev-parse", "-q", "--verify", "HEAD", check=False).strip(),
        "index": git(repo, "ls-files", "-s"),
        "status": git(repo, "status", "--porcelain=v1", "-uall"),
        "diff": git(repo, "diff"),
        "cached": git(repo, "diff", "--cached"),
    }


def user_state(repo: Path) -> dict[str, str]:
    """The user's own changes: everything outside octostore's folder and MLflow's stores."""
    ex = (":(exclude).octostore", ":(exclude)mlruns", ":(exclude)mlruns-sql",
          ":(exclude)mlflow.db")
    return {
        "status": git(repo, "status", "--porcelain=v1", "-uall", "--", ".", *ex),
        "diff": git(repo, "diff", "--", ".", *ex),
        "cached": git(repo, "diff", "--cached", "--", ".", *ex),
        "untracked": git(repo, "ls-files", "--others", "--exclude-standard", "--", ".", *ex),
    }


def mlflow_view(client: Any, run_ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """What MLflow returns for every run of a store: info, data and metric histories."""
    from mlflow.entities import ViewType

    exps = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    out: dict[str, dict[str, Any]] = {}
    for r in client.search_runs(exps, run_view_type=ViewType.ALL):
        if run_ids is not None and r.info.run_id not in run_ids:
            continue
        run = client.get_run(r.info.run_id)  # get_run must work too (MANIFEST.md, point 2)
        out[r.info.run_id] = {
            "name": run.info.run_name, "status": run.info.status,
            "start": run.info.start_time, "end": run.info.end_time,
            "stage": run.info.lifecycle_stage, "user": run.info.user_id,
            "params": run.data.params, "metrics": run.data.metrics, "tags": run.data.tags,
            "histories": {k: sorted((m.timestamp, m.value, m.step) for m in
                                    client.get_metric_history(run.info.run_id, k))
                          for k in run.data.metrics},
            "datasets": sorted((d.dataset.name, d.dataset.digest, tuple(sorted(
                (t.key, t.value) for t in d.tags))) for d in run.inputs.dataset_inputs),
        }
    return out
