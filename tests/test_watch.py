"""What the watcher reports: environment files, git commits, new stores, and the polling fallback."""

from __future__ import annotations

import os
from pathlib import Path

from mlflow import MlflowClient

from .conftest import DaemonProc, git, make_repo, wait_for


def _wait_change(c, pred, timeout: float = 10.0) -> dict:  # type: ignore[no-untyped-def]
    def check() -> dict | None:
        n = c.wait_notification("octostore/changed", timeout=timeout)["params"]
        return n if pred(n) else None

    return wait_for(check, timeout=timeout * 2, what="a matching octostore/changed")  # type: ignore[return-value]


def test_env_file_and_git_commit_are_notified(daemon: DaemonProc, short_tmp: Path) -> None:
    repo = make_repo(short_tmp / "repo")
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    mlf.create_run(mlf.create_experiment("e"))
    with daemon.client() as c:
        c.call("octostore/subscribe", root=str(repo))
        (repo / "requirements.txt").write_text("scikit-learn==1.5.2\n")
        _wait_change(c, lambda n: n["environment"])
        env = c.call("octostore/environment", root=str(repo))
        assert "requirements.txt" in str(env)
        git(repo, "add", "requirements.txt")
        git(repo, "commit", "-q", "-m", "pin deps")
        _wait_change(c, lambda n: n["git"])


def test_a_new_store_is_discovered(daemon: DaemonProc, short_tmp: Path) -> None:
    repo = make_repo(short_tmp / "repo")
    with daemon.client() as c:
        assert c.call("octostore/open", root=str(repo))["sources"] == []
        mlf = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
        rid = mlf.create_run(mlf.create_experiment("late")).info.run_id
        c.call("octostore/sync", root=str(repo))
        assert [r["run_id"] for r in c.call("octostore/runs", root=str(repo))["runs"]] == [rid]


def test_watch_limit_falls_back_to_polling(short_tmp: Path) -> None:
    repo = make_repo(short_tmp / "repo")
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = mlf.create_experiment("e")
    for _ in range(3):
        mlf.create_run(exp)
    d = DaemonProc(short_tmp / "d")
    (short_tmp / "d").mkdir()
    os.environ["OCTOSTORE_INOTIFY_LIMIT"] = "5"  # the store has more folders than that
    try:
        d.start()
    finally:
        del os.environ["OCTOSTORE_INOTIFY_LIMIT"]
    try:
        with d.client() as c:
            c.call("octostore/open", root=str(repo))
            c.call("octostore/sync", root=str(repo))  # the watch is set up once the root is ready
            info = c.call("octostore/open", root=str(repo))
            assert info["state"] == "ready"
            src = info["sources"][0]
            assert src["watching"] == "polling"
            assert any("fs.inotify.max_user_watches" in w for w in src["warnings"])
            c.call("octostore/subscribe", root=str(repo))
            rid = mlf.create_run(exp).info.run_id
            _wait_change(c, lambda n: rid in n["runs"], timeout=10)
    finally:
        d.stop()
