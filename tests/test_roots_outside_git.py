"""A root outside git (``/tmp``, a home folder) is searched only a folder deep.

``octostore runs`` from ``/tmp`` once made the daemon index all of ``/tmp``: 321 runs from
other people's folders.  A folder that is not a git work tree and has no MLflow store at its
top is now searched ``search_depth_outside_git`` folders deep (the user's ``config.toml``,
default 1); a git work tree, or a folder with ``mlruns``/``mlflow.db`` at its top, is
searched as before.  The CLI names the root it used and what to do.  Real MLflow writes every
store; a real daemon reads them; the CLI runs as a process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import DaemonProc, make_repo


def mlflow_store(path: Path, run_name: str) -> str:
    """A real MLflow file store at ``path`` holding one run; its id."""
    code = (
        "import sys, mlflow\n"
        "mlflow.set_tracking_uri('file:' + sys.argv[1])\n"
        "with mlflow.start_run(run_name=sys.argv[2]) as r:\n"
        "    mlflow.log_metric('loss', 0.5)\n"
        "print(r.info.run_id)\n")
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true")
    out = subprocess.run([sys.executable, "-c", code, str(path), run_name], env=env,
                         check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def cli(d: DaemonProc, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "octostored.cli", *args], env=d.env(),
                          capture_output=True, text=True, timeout=120)


def names(d: DaemonProc, root: Path) -> set[str]:
    with d.client() as c:
        c.call("octostore/open", root=str(root))
        c.call("octostore/sync", root=str(root))
        return {r["run_name"] for r in c.call("octostore/runs", root=str(root))["runs"]}


def test_a_folder_outside_git_is_searched_one_folder_deep(daemon: DaemonProc,
                                                           short_tmp: Path) -> None:
    shared = short_tmp / "shared-tmp"  # like /tmp: other people's projects inside
    mlflow_store(shared / "alice" / "mlruns", "alice")  # two folders down: not ours
    mlflow_store(shared / "bob" / "deep" / "mlruns", "bob")
    mlflow_store(shared / "mlruns-copy", "copy")  # a store one folder down
    assert names(daemon, shared) == {"copy"}
    with daemon.client() as c:
        info = c.call("octostore/open", root=str(shared))
    assert info["search"] == {"depth": 1, "git": False, "limited": True}

    res = cli(daemon, "runs", "--root", str(shared))
    assert res.returncode == 0, res.stderr
    assert "copy" in res.stdout and "alice" not in res.stdout
    assert f"using {shared}, which is not a git work tree" in res.stderr
    assert "only 1 folder deep" in res.stderr and "search_depth_outside_git" in res.stderr
    assert "Traceback" not in res.stderr


def test_nothing_found_outside_git_says_why_and_what_to_do(daemon: DaemonProc,
                                                            short_tmp: Path) -> None:
    home = short_tmp / "home"
    mlflow_store(home / "work" / "proj" / "mlruns", "deep")
    res = cli(daemon, "runs", "--root", str(home))
    assert res.returncode == 2
    err = res.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith(f"octostore: no MLflow runs found: {home} is not a git work tree")
    assert "cd into your project or pass --root PATH" in err


def test_the_user_config_sets_the_depth(daemon: DaemonProc, short_tmp: Path) -> None:
    shared = short_tmp / "shared-tmp"
    mlflow_store(shared / "alice" / "mlruns", "alice")
    config = Path(daemon.env()["XDG_CONFIG_HOME"]) / "octostore"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.toml").write_text("search_depth_outside_git = 2\n")
    assert names(daemon, shared) == {"alice"}


def test_git_work_trees_and_folders_with_a_store_on_top_are_searched_deep(
        daemon: DaemonProc, short_tmp: Path) -> None:
    repo = make_repo(short_tmp / "repo")
    mlflow_store(repo / "experiments" / "vision" / "mlruns", "in-git")
    assert names(daemon, repo) == {"in-git"}

    plain = short_tmp / "plain"  # no git, but mlruns/ at its top: a project
    mlflow_store(plain / "mlruns", "top")
    mlflow_store(plain / "sub" / "part" / "mlruns", "nested")
    assert names(daemon, plain) == {"top", "nested"}
    with daemon.client() as c:
        info = c.call("octostore/open", root=str(plain))
    assert info["search"] == {"depth": 4, "git": False, "limited": False}
    res = cli(daemon, "runs", "--root", str(plain))
    assert res.returncode == 0 and "not a git work tree" not in res.stderr
