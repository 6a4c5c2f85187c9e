"""The in-process console capture (``capture_console = true``) and the reproduction's log.

The scripts are real training processes: MLflow with a file store under tmp, the
capture plugin loaded through MLflow's real entry-point loading (a throwaway
``dist-info``, as in test_capture), the tee a real separate process.  The
terminal (a real pty, or pipes) must show what it shows without the opt-in, byte
for byte; the log must hold what the script printed from its first run on, also
when the script is ``SIGKILL``-ed; anything that goes wrong turns the capture off
with a tag and never fails the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from octostored.capture import consolelog
from octostored.console import logformat

from .conftest import REPO, DaemonProc, git, make_repo
from .test_capture import _plugin_site
from .test_console_run import (
    PY,
    base_env,
    in_terminal,
    logs,
    split_streams,
    the_log,
    under_run,
)

OPT_IN = "[tool.octostore]\ncapture_console = true\n"

TRAIN = r"""
import os, shutil, signal, sys
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
tty = sys.stdout.isatty()
print("before any run", shutil.get_terminal_size((0, 0)), tty)
ids = []
for r in range(2):
    with mlflow.start_run() as run:
        for i in range(200):
            print(f"\x1b[1mrun {r} step {i}\x1b[0m" if tty else f"run {r} step {i}")
            sys.stderr.write("\r" + "P" * (i % 5 + 1))
        sys.stderr.write("\r")
        print(shutil.get_terminal_size((0, 0)), sys.stdout.isatty(), sys.stderr.isatty())
        ids.append(run.info.run_id)
        if len(sys.argv) > 2 and sys.argv[2] == "kill":
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
print("ids", *ids)
"""


def project(tmp: Path, opt_in: str | None = OPT_IN, name: str = "pyproject.toml") -> Path:
    repo = make_repo(tmp / "repo")
    if opt_in is not None:
        (repo / name).write_text(opt_in)
    (repo / "train.py").write_text(TRAIN)
    return repo


def env_with_plugin(tmp: Path) -> dict[str, str]:
    env = base_env(tmp)
    env["PYTHONPATH"] = os.pathsep.join([str(_plugin_site(tmp)), str(REPO)])
    return env


def tags_of(store: str, run_id: str) -> dict[str, str]:
    from mlflow import MlflowClient

    return MlflowClient(store).get_run(run_id).data.tags


def test_opted_in_through_pipes_the_streams_are_unchanged_and_the_log_kept(
        tmp_path: Path) -> None:
    plain, opted = project(tmp_path / "a", None), project(tmp_path / "b")
    env = env_with_plugin(tmp_path)
    store = (tmp_path / "store").as_uri()
    alone = subprocess.run([PY, "train.py", store], cwd=plain, env=env, capture_output=True,
                           timeout=120)
    teed = subprocess.run([PY, "train.py", store], cwd=opted, env=env, capture_output=True,
                          timeout=120)
    assert alone.returncode == teed.returncode == 0, teed.stderr[-2000:]
    assert teed.stdout.split(b"ids")[0] == alone.stdout.split(b"ids")[0]
    assert teed.stderr == alone.stderr
    assert logs(plain) == []
    log, idx = the_log(opted)
    (path,) = logs(opted)
    # From the first run on, everything of both streams (the run ids differ, of course).
    out, err = split_streams(log)
    assert out == teed.stdout[teed.stdout.index(b"run 0 step 0"):]
    assert err == bytes(c for c in teed.stderr if c in b"\rP")
    assert b"before any run" not in log
    assert idx[-1]["exit"] is None and idx[-1]["o"] == len(log)
    for run_id in teed.stdout.split(b"ids")[1].split():
        tags = tags_of(store, run_id.decode())
        assert tags[logformat.TAG] == logformat.rel_path(str(opted), str(path))
        assert logformat.STATE_TAG not in tags and "octostore.capture_error" not in tags


def test_opted_in_through_a_terminal_the_screen_is_byte_for_byte_the_same(
        tmp_path: Path) -> None:
    plain, opted = project(tmp_path / "a", None), project(tmp_path / "b")
    env = env_with_plugin(tmp_path)
    store = (tmp_path / "store").as_uri()
    alone, code = in_terminal([PY, "train.py", store], plain, env)
    assert code == 0 and b"size(columns=100, lines=30) True True" in alone
    teed, code = in_terminal([PY, "train.py", store], opted, env)
    assert code == 0
    assert teed.split(b"ids")[0] == alone.split(b"ids")[0]
    log, _ = the_log(opted)
    assert b"\x1b[1mrun 1 step 199\x1b[0m\n" in log
    assert log.replace(b"\n", b"\r\n") in teed


def test_a_sigkilled_script_keeps_everything_it_printed(tmp_path: Path) -> None:
    repo = project(tmp_path)
    store = (tmp_path / "store").as_uri()
    proc = subprocess.run([PY, "train.py", store, "kill"], cwd=repo,
                          env=env_with_plugin(tmp_path), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=120)
    assert proc.returncode == -9
    log, idx = the_log(repo)
    text = log.decode()
    assert all(f"run 0 step {i}\n" in text for i in range(200))
    assert "size(columns=0, lines=0) False False\n" in text and "run 1" not in text
    assert proc.stdout.endswith(log)  # the terminal got it all too
    assert idx[-1]["exit"] is None and idx[-1]["o"] == len(log)


def test_under_octostore_run_the_process_does_not_tee_twice(tmp_path: Path) -> None:
    repo = project(tmp_path)
    store = (tmp_path / "store").as_uri()
    proc = subprocess.run(under_run(PY, "train.py", store), cwd=repo,
                          env=env_with_plugin(tmp_path), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = logs(repo)
    log = path.read_bytes()
    assert log.count(b"run 1 step 7\n") == 1 and b"before any run" in log
    for run_id in proc.stdout.split(b"ids")[1].split():
        assert tags_of(store, run_id.decode())[logformat.TAG] == logformat.rel_path(
            str(repo), str(path))


def test_a_capture_that_cannot_start_turns_off_with_a_tag_and_the_run_goes_on(
        tmp_path: Path) -> None:
    repo = project(tmp_path)
    (repo / ".octostore").mkdir()
    (repo / ".octostore" / "logs").write_text("a file where the folder should be")
    store = (tmp_path / "store").as_uri()
    proc = subprocess.run([PY, "train.py", store], cwd=repo, env=env_with_plugin(tmp_path),
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert b"run 1 step 199\n" in proc.stdout
    for run_id in proc.stdout.split(b"ids")[1].split():
        tags = tags_of(store, run_id.decode())
        assert tags[logformat.STATE_TAG].startswith("off: cannot create ")
        assert logformat.TAG not in tags
    assert b"Traceback" not in proc.stderr


@pytest.mark.parametrize("name, text, wanted", [
    ("pyproject.toml", OPT_IN, True),
    ("pyproject.toml", "[tool.octostore]\ncapture_console = false\n", False),
    ("pyproject.toml", "[tool.octostore]\ncapture_console = \"yes\"\n", False),
    ("pyproject.toml", "[tool.octostore\nbroken", False),
    ("octostore.toml", "capture_console = true\n", True),
    ("octostore.toml", "[tool.octostore]\ncapture_console = true\n", False),
])
def test_the_setting(tmp_path: Path, name: str, text: str, wanted: bool) -> None:
    (tmp_path / name).write_text(text)
    assert consolelog._read_setting(str(tmp_path)) is wanted


def test_a_reproduction_keeps_its_console_next_to_the_originals(tmp_path: Path,
                                                                short_tmp: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "train.py").write_text(
        "import mlflow\nmlflow.set_experiment('tiny')\nwith mlflow.start_run():\n"
        "    mlflow.log_metric('loss', 0.5)\n    print('training output', flush=True)\n")
    (repo / ".gitignore").write_text("mlruns/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "train")
    env = base_env(tmp_path)
    env["MLFLOW_TRACKING_URI"] = (repo / "mlruns").as_uri()
    first = subprocess.run(under_run(PY, "train.py"), cwd=repo, env=env, capture_output=True,
                           timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    (original,) = logs(repo)
    daemon = DaemonProc(short_tmp).start()
    try:
        with daemon.client(timeout=120) as c:
            (run,) = c.call("octostore/runs", root=str(repo))["runs"]
            assert run["tags"][logformat.TAG] == logformat.rel_path(str(repo), str(original))
            started = c.call("octostore/reproduce", root=str(repo), run_id=run["run_id"],
                             env="current", python=PY, confirmed=True)
            from .test_reproduce_support import follow

            res = follow(c, started["job"], 300)
            assert res["state"] == "done", res
            new_id = res["result"]["new_run_id"]
            new = c.call("octostore/run", root=str(repo), run_id=new_id)
            rel = new["tags"][logformat.TAG]
            assert rel == res["result"]["console_log"] and rel.startswith(".octostore/logs/")
            assert (repo / rel).read_bytes() == b"training output\n"
            idx = logformat.read_index(logformat.index_path(str(repo / rel)))
            assert idx[-1]["exit"] == 0
            assert sorted(logs(repo)) == sorted([original, repo / rel])
            arts = c.call("octostore/artifacts", root=str(repo), run_id=new_id)
            assert any(a["path"] == "octostore/console.log" for a in arts["artifacts"])
    finally:
        daemon.stop()
