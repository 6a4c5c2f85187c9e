"""A cloned repo is untrusted input: the commands its runs recorded never run unasked.

The attacker's repo: a committed run whose ``octostore.argv`` tag is
``bash -c 'id > FILE; python train.py'`` (a data file nobody reviews as code), and an
MLproject entry point, through which ``--set`` (and the CI workflow's ``overrides``
input) used to reach a shell with its key unquoted.  A real daemon, real git, real
MLflow runs, the real CLI and the workflow's own shell step.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from octostored.client import RequestError
from octostored.reproduce import ci

from .conftest import REPO, DaemonProc, git
from .test_commit_support import file_client
from .test_reproduce_support import (  # noqa: F401 - shared_cache is a fixture
    follow,
    make_project,
    shared_cache,
    train_env,
    uv_bin,
)

pytestmark = pytest.mark.e2e

CONFIRMATION_REQUIRED = 1032
MLPROJECT = """\
name: tiny
entry_points:
  main:
    parameters:
      lr: {type: float, default: 0.1}
      epochs: {type: int, default: 3}
    command: "python train.py --lr {lr} --epochs {epochs}"
"""


class Attack:
    def __init__(self, base: Path, cache: Path) -> None:
        self.base = base
        self.python = train_env()
        self.repo = make_project(base / "repo")
        (self.repo / "MLproject").write_text(MLPROJECT)
        git(self.repo, "add", "MLproject")
        git(self.repo, "commit", "-q", "-m", "MLproject")
        head = git(self.repo, "rev-parse", "HEAD").strip()
        self.marker = base / "owned-by-bash"
        self.pwned = base / "PWNED"
        client = file_client(self.repo)
        exp = client.create_experiment("tiny")
        self.bash_run = self._run(client, exp, {
            "mlflow.source.git.commit": head, "mlflow.source.name": "train.py",
            "octostore.cwd": ".",
            "octostore.argv": json.dumps(["bash", "-c", f"id > {self.marker}; python train.py"]),
        })
        self.mlproject_run = self._run(client, exp, {
            "mlflow.source.git.commit": head, "mlflow.source.name": "train.py",
            "mlflow.project.entryPoint": "main"})
        self.daemon = DaemonProc(base / "d")
        (base / "d").mkdir()
        self.daemon.cache = str(cache)
        self.daemon.start()

    @staticmethod
    def _run(client: Any, exp: str, tags: dict[str, str]) -> str:
        rid = client.create_run(exp, tags=tags).info.run_id
        for k, v in {"lr": "0.1", "epochs": "5", "seed": "0", "fail_at": "-1"}.items():
            client.log_param(rid, k, v)
        client.set_terminated(rid)
        return str(rid)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(self.daemon.env())
        env.pop("MLFLOW_TRACKING_URI", None)
        return subprocess.run([sys.executable, "-m", "octostored.cli", "reproduce", *args,
                               "--root", str(self.repo), "--env", "current", "--python",
                               str(self.python)], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=300)

    def trust_file(self) -> Path:
        return self.daemon.base / "state" / "octostore" / "trusted-commands.json"


@pytest.fixture(scope="module")
def attack(shared_cache: Path) -> Iterator[Attack]:  # noqa: F811 - the fixture imported above
    base = Path(tempfile.mkdtemp(prefix="oct-u-", dir="/tmp"))
    old = {k: os.environ.get(k) for k in ("OCTOSTORE_UV", "OCTOSTORE_CAPTURE_CACHE")}
    os.environ["OCTOSTORE_UV"] = uv_bin()
    os.environ["OCTOSTORE_CAPTURE_CACHE"] = str(base / "capture-cache")
    a: Attack | None = None
    try:
        a = Attack(base, shared_cache)
        yield a
    finally:
        if a is not None:
            a.daemon.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(base, ignore_errors=True)


def _repo_files(repo: Path) -> dict[str, bytes]:
    """Every file of the repo but git's own, the stores and the console logs (a reproduction
    adds a run and its log there, as any run does)."""
    out: dict[str, bytes] = {}
    for p in sorted(repo.rglob("*")):
        rel = p.relative_to(repo).as_posix()
        if p.is_file() and not rel.startswith((".git/", "mlruns/", ".octostore/logs/")):
            out[rel] = p.read_bytes()
    return out


def test_a_recorded_bash_command_is_refused_without_a_terminal_and_shown(attack: Attack) -> None:
    """No --yes, no terminal: nothing runs; the command is shown, marked unusual, with how to
    accept it; exit 5, no traceback, no job."""
    proc = attack.cli(attack.bash_run)
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"bash -c 'id > {attack.marker}; python train.py'" in proc.stderr
    assert "UNUSUAL:" in proc.stderr and "it runs bash" in proc.stderr
    assert "tag octostore.argv" in proc.stderr and "MLFLOW_TRACKING_URI=" in proc.stderr
    assert f"octostore reproduce {attack.bash_run} --yes" in proc.stderr
    assert not attack.marker.exists()
    with attack.daemon.client() as c:
        assert c.call("octostore/jobs", root=str(attack.repo))["jobs"] == []
    assert not attack.trust_file().exists()


def test_the_protocol_asks_then_runs_once_confirmed_and_remembers_outside_the_repo(
        attack: Attack) -> None:
    """1032 with the command in data; confirmed: it runs (as shown) and is remembered in the
    user's state folder (0600), not in the repo; the next time nothing is asked."""
    params = {"root": str(attack.repo), "run_id": attack.bash_run, "env": "current",
              "python": str(attack.python)}
    before = _repo_files(attack.repo)
    with attack.daemon.client(timeout=120) as c:
        with pytest.raises(RequestError) as info:
            c.call("octostore/reproduce", params)
        err = info.value
        assert err.code == CONFIRMATION_REQUIRED
        cmd = err.data["command"]
        assert cmd["argv"] == ["bash", "-c", f"id > {attack.marker}; python train.py"]
        assert cmd["interpreter"] == "bash" and cmd["cwd"] == "."
        assert cmd["unusual"] is True and any("it runs bash" in r for r in cmd["reasons"])
        assert cmd["source"].startswith("tag octostore.argv")
        assert cmd["env"]["MLFLOW_EXPERIMENT_NAME"] == "tiny"
        assert "unusual" in err.message and "confirmed" in err.message
        assert not attack.marker.exists()
        assert c.call("octostore/jobs", root=str(attack.repo))["jobs"] == []
        # The plan shows it too, and starts nothing.
        dry = c.call("octostore/reproduce", {**params, "dry_run": True})
        assert dry["accepted"] is False and dry["command"]["hash"] == cmd["hash"]
        assert not attack.marker.exists()

        res = follow(c, c.call("octostore/reproduce", {**params, "confirmed": True})["job"])
        assert res["state"] == "done", res
        assert res["result"]["new_run_id"] and res["result"]["command"]["hash"] == cmd["hash"]
        assert attack.marker.read_text().startswith("uid=")  # what was shown is what ran
        attack.marker.unlink()

        again = follow(c, c.call("octostore/reproduce", params)["job"])  # no question now
        assert again["state"] == "done", again
        assert attack.marker.exists()
    trust = attack.trust_file()
    assert stat.S_IMODE(trust.stat().st_mode) == 0o600
    assert stat.S_IMODE(trust.parent.stat().st_mode) == 0o700
    accepted = json.loads(trust.read_text())["repos"][os.path.realpath(attack.repo)]
    assert list(accepted) == [cmd["hash"]]
    assert _repo_files(attack.repo) == before  # nothing of the acceptance is in the repo
    assert not list(attack.repo.rglob("trusted-commands*"))


def test_an_mlproject_set_key_is_no_shell_injection(attack: Attack) -> None:
    """``--set 'x;touch PWNED=1'`` on an MLproject entry point: refused, naming the entry
    point's parameters; PWNED never exists, even with --yes."""
    key = f"x;touch {attack.pwned}"
    proc = attack.cli(attack.mlproject_run, "--set", f"{key}=1", "--yes")
    assert not attack.pwned.exists()
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "is not a parameter of the MLproject entry point 'main'" in proc.stdout
    assert "(its parameters: epochs, lr)" in proc.stdout
    # A declared key with a value full of shell: quoted, a plain value; what runs is usual.
    with attack.daemon.client(timeout=120) as c:
        dry = c.call("octostore/reproduce", {
            "root": str(attack.repo), "run_id": attack.mlproject_run, "env": "current",
            "python": str(attack.python), "set": {"lr": f"0.2; touch {attack.pwned}"},
            "dry_run": True})
    cmd = dry["command"]
    assert cmd["argv"][:2] == ["bash", "-c"]
    assert cmd["script"] == "train.py" and cmd["unusual"] is False
    assert cmd["args"] == ["--lr", f"0.2; touch {attack.pwned}", "--epochs", "5"]
    assert not attack.pwned.exists()


def test_the_ci_workflow_overrides_input_cannot_inject(attack: Attack) -> None:
    """The workflow's own reproduce step with a hostile ``overrides`` input: neither the step's
    shell nor the MLproject command runs it."""
    pwned = attack.base / "PWNED-BY-CI"
    doc = yaml.safe_load(ci.render("octostore @ git+https://example.invalid/octostore"))
    step = next(s for s in doc["jobs"]["reproduce"]["steps"] if s.get("id") == "reproduce")
    assert "${{" not in step["run"] and "--yes" in step["run"]
    work = attack.base / "ci-ws"
    git(attack.base, "clone", "-q", str(attack.repo), str(work))
    shutil.copytree(attack.repo / "mlruns", work / "mlruns")
    script = attack.base / "step.sh"
    script.write_text(step["run"])
    out = attack.base / "github_output"
    out.write_text("")
    env = dict(attack.daemon.env(), RUN_ID=attack.mlproject_run, TOLERANCE="",
               GITHUB_OUTPUT=str(out),
               PATH=str(REPO / ".venv" / "bin") + os.pathsep + os.environ["PATH"],
               OVERRIDES=f"$(touch${{IFS}}{pwned}) x;touch${{IFS}}{pwned}=1")
    env.pop("MLFLOW_TRACKING_URI", None)
    res = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                         cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert not pwned.exists(), res.stdout + res.stderr
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert outputs["exit-code"] == "2", res.stdout + res.stderr  # '$(touch..)' is not KEY=VALUE
    env["OVERRIDES"] = f"x;touch${{IFS}}{pwned}=1"
    res = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                         cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert not pwned.exists(), res.stdout + res.stderr
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert outputs["exit-code"] == "4", res.stdout + res.stderr
    result = json.loads((work / "octostore-reproduce.json").read_text())
    assert "is not a parameter of the MLproject entry point" in result["failed"]["message"]


def test_on_a_terminal_the_cli_asks_and_runs_only_on_yes(attack: Attack) -> None:
    """A real terminal (a pty) on stdin: "n" runs nothing; "y" accepts and runs it."""
    import pty

    def answer(text: str) -> subprocess.CompletedProcess[str]:
        master, slave = pty.openpty()
        try:
            os.write(master, text.encode())
            env = dict(attack.daemon.env())
            env.pop("MLFLOW_TRACKING_URI", None)
            return subprocess.run(
                [sys.executable, "-m", "octostored.cli", "reproduce", attack.mlproject_run,
                 "--set", "lr=0.3", "--root", str(attack.repo), "--env", "current",
                 "--python", str(attack.python), "--json"],
                env=env, stdin=slave, capture_output=True, text=True, timeout=300)
        finally:
            os.close(master)
            os.close(slave)

    no = answer("n\n")
    assert no.returncode == 5, no.stdout + no.stderr
    assert "Run it? [y/N]" in no.stderr and "octostore: not run" in no.stderr
    assert "  command:     bash -c 'python train.py --lr 0.3 --epochs 5'" in no.stderr
    assert "(a Python interpreter running a file of the repo at that commit)" in no.stderr
    yes = answer("y\n")
    assert yes.returncode == 0, yes.stdout + yes.stderr
    out = json.loads(yes.stdout)
    assert out["new_run_id"] and out["command"]["args"] == ["--lr", "0.3", "--epochs", "5"]
