"""``octostore capture install|status|uninstall``: the capture plugin alone, in real fresh venvs.

* A ``uv venv`` (no pip: uv installs) with MLflow from uv's cache: a real run started there
  gets the octostore.* tags, its lock records ``octostore-capture`` as name==version, no other
  distribution's version moved, and with the full octostore installed beside it the run is
  tagged once, alike.  Reproduce rebuilds that lock offline with the plugin from our wheel.
* A ``python -m venv`` of Python 3.9 (pip installs): the plugin runs there.
* Errors end in one sentence that says what to do.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from octostored import __version__
from octostored import capture_dist as cd
from octostored import capture_wheel

from .conftest import REPO, git, make_repo
from .test_reproduce_support import TRAIN_REQUIREMENTS, uv_bin


def _python(minor: int) -> Path:
    """A real CPython 3.<minor> on this machine (pyenv's, else one on PATH), or a missing path."""
    for found in sorted(Path("/root/.pyenv/versions").glob(f"3.{minor}.*/bin/python3.{minor}")):
        return found
    return Path(shutil.which(f"python3.{minor}") or f"/nonexistent/python3.{minor}")


PY39 = _python(9)
PY38 = _python(8)

RUN = """
import json, sys
import mlflow
from mlflow.tracking.context.registry import _run_context_provider_registry as registry
with mlflow.start_run() as run:
    mlflow.log_param("alpha", 0.5)
    print("hello from the training", flush=True)
active = [type(p).__module__ for p in registry
          if type(p).__name__ == "OctostoreRunContext" and p.in_context()]
print(json.dumps({"tags": mlflow.get_run(run.info.run_id).data.tags, "active": active}))
"""


def octostore(*args: str, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "octostored.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def clean_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never", **extra)
    for var in ("VIRTUAL_ENV", "PYTHONPATH", "MLFLOW_RUN_CONTEXT", "PYTHONDONTWRITEBYTECODE"):
        env.pop(var, None)
    return env


def freeze(python: Path) -> set[str]:
    """``name==version`` of every distribution, as uv lists them (not our probe)."""
    out = subprocess.run([uv_bin(), "pip", "freeze", "--python", str(python)], check=True,
                         capture_output=True, text=True, env=clean_env()).stdout
    return {line.strip().lower() for line in out.splitlines() if line.strip()}


def train(repo: Path, python: Path, store: Path, cache: Path) -> dict[str, Any]:
    (repo / "run.py").write_text(RUN)
    res = subprocess.run([str(python), "run.py"], cwd=repo, capture_output=True, text=True,
                         timeout=180, env=clean_env(MLFLOW_TRACKING_URI=store.as_uri(),
                                                    MLFLOW_ALLOW_FILE_STORE="true",
                                                    OCTOSTORE_CAPTURE_CACHE=str(cache)))
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_the_wheel_is_the_plugin_alone_and_the_same_bytes_each_time(tmp_path: Path) -> None:
    a = Path(capture_wheel.build_wheel(str(tmp_path / "a")))
    b = Path(capture_wheel.build_wheel(str(tmp_path / "b")))
    assert a.name == f"octostore_capture-{__version__}-py3-none-any.whl"
    assert a.read_bytes() == b.read_bytes()
    with zipfile.ZipFile(a) as z:
        names = z.namelist()
        info = f"octostore_capture-{__version__}.dist-info"
        meta = z.read(f"{info}/METADATA").decode()
        assert f"Name: octostore-capture\nVersion: {__version__}\n" in meta
        assert "Requires-Dist" not in meta  # no dependencies
        assert z.read(f"{info}/entry_points.txt").decode() == (
            "[mlflow.run_context_provider]\n"
            "octostore = octostore_capture.capture.provider:OctostoreRunContext\n")
        # every capture module, at its place under the one top-level package
        for src in (REPO / "octostored" / "capture").glob("*.py"):
            assert z.read(f"octostore_capture/capture/{src.name}") == src.read_bytes()
        assert {n.split("/")[0] for n in names} == {"octostore_capture", info}
        for name in names:  # stdlib only; every relative import lands inside the package
            if name.endswith(".py"):
                _check_imports(name, z.read(name), set(names))
        record = [line.split(",") for line in z.read(f"{info}/RECORD").decode().splitlines()]
        assert {r[0] for r in record} == set(names)
        for path, digest, size in record:
            if path.endswith("RECORD"):
                continue
            data = z.read(path)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + want.decode() and int(size) == len(data)


def _check_imports(name: str, source: bytes, names: set[str]) -> None:
    package = name.split("/")[:-1]
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            tops = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            tops = [(node.module or "").split(".")[0]]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)]
            assert base and base[0] == "octostore_capture", (name, node.level)
            if node.module:
                mod = "/".join(base + node.module.split("."))
                assert f"{mod}.py" in names or f"{mod}/__init__.py" in names, (name, mod)
            continue
        else:
            continue
        for top in tops:
            assert top == "__future__" or top in sys.stdlib_module_names, (name, top)


@pytest.fixture(scope="module")
def uv_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh ``uv venv`` (no pip) with MLflow from uv's cache, as in test_reproduce."""
    folder = tmp_path_factory.mktemp("uvvenv") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([uv_bin(), "venv", "-q", "--python", base, str(folder)], check=True,
                   env=clean_env())
    req = folder.parent / "requirements.txt"
    req.write_text(TRAIN_REQUIREMENTS)
    subprocess.run([uv_bin(), "pip", "install", "-q", "--python", str(folder / "bin" / "python"),
                    "-r", str(req)], check=True, env=clean_env())
    return folder / "bin" / "python"


def test_install_into_a_uv_venv_tags_runs_once_and_changes_nothing_else(
        uv_venv: Path, tmp_path: Path) -> None:
    python = uv_venv
    assert not list(python.parent.parent.glob("lib/python*/site-packages/pip"))  # uv's venv
    before = freeze(python)
    st = octostore("capture", "status", "--python", str(python), "--json")
    assert st.returncode == 1 and json.loads(st.stdout)["installed"] is False

    res = octostore("capture", "install", "--python", str(python), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["installer"] == "uv" and any("no pip" in n for n in out["notes"])
    assert out["installed_version"] == __version__ and out["current"] is True
    after = freeze(python)
    added = after - before
    assert before <= after and len(added) == 1  # exactly one distribution, nothing moved
    assert next(iter(added)).startswith("octostore-capture")

    st = octostore("capture", "status", "--python", str(python))
    assert st.returncode == 0 and "is installed" in st.stdout and "current" in st.stdout

    # a real run started in that environment gets the tags, from the lone plugin
    repo = make_repo(tmp_path / "repo")
    head = git(repo, "rev-parse", "HEAD").strip()
    (repo / "octostore.toml").write_text("capture_console = true\n")  # the tee ships too
    got = train(repo, python, tmp_path / "mlruns", tmp_path / "capture-cache")
    assert got["active"] == ["octostore_capture.capture.provider"]
    tags = got["tags"]
    assert tags["octostore.git.commit"] == head and tags["octostore.cwd"] == "."
    assert json.loads(tags["octostore.argv"]) == ["python", "run.py"]
    assert "octostore.console_capture" not in tags, tags
    log = (repo / tags["octostore.console_log"]).read_bytes()
    assert b"hello from the training" in log
    lock = json.loads((repo / ".octostore" / "envs" / f"{tags['octostore.env']}.json")
                      .read_text())
    assert {"name": "octostore-capture", "version": __version__} in lock["packages"]
    assert not any(p.get("editable") or p.get("path") for p in lock["packages"])
    pins = {f"{p['name']}=={p['version']}" for p in lock["packages"]}
    assert pins == {line.replace("_", "-") for line in after
                    if not line.startswith("octostore-capture")} | {
        f"octostore-capture=={__version__}"}

    # reproduce rebuilds that lock offline, the plugin from our wheel (no index has it)
    _rebuild(lock, tmp_path / "envs")

    # the full octostore beside it (as in the demo's own venv): tagged once, alike
    subprocess.run([uv_bin(), "pip", "install", "-q", "--python", str(python), "--no-deps",
                    "--offline", "-e", str(REPO)], check=True, env=clean_env())
    both = train(repo, python, tmp_path / "mlruns", tmp_path / "capture-cache")
    assert both["active"] == ["octostored.capture.provider"]
    assert {k for k in both["tags"] if k.startswith("octostore.")} == {
        k for k in tags if k.startswith("octostore.")}
    for key in ("octostore.git.commit", "octostore.argv", "octostore.cwd", "octostore.python"):
        assert both["tags"][key] == tags[key]
    st = octostore("capture", "status", "--python", str(python), "--json")
    assert json.loads(st.stdout)["full_octostore"] is True
    subprocess.run([uv_bin(), "pip", "uninstall", "-q", "--python", str(python), "octostore"],
                   check=True, env=clean_env())

    res = octostore("capture", "uninstall", "--python", str(python), "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["removed"] is True
    assert freeze(python) == before
    res = octostore("capture", "uninstall", "--python", str(python))
    assert res.returncode == 0 and "nothing to remove" in res.stdout


def _rebuild(lock: dict[str, Any], cache: Path) -> None:
    import asyncio

    from octostored.reproduce.envbuild import EnvCache
    from octostored.reproduce.envspec import from_lock

    spec = from_lock(lock, "0" * 64, "test")
    assert spec.capture_plugin and not any("octostore-capture" in r for r in spec.requirements)
    built = asyncio.run(EnvCache(str(cache)).ensure(spec))
    assert {"name": "octostore-capture", "version": __version__} in built.lock["packages"]
    assert {(p["name"], p["version"]) for p in built.lock["packages"]} == {
        (p["name"], p["version"]) for p in lock["packages"]}
    probe = cd.probe(built.python)
    assert probe.current() and probe.installed["installer"] == "uv"


@pytest.mark.skipif(not PY39.exists(), reason=f"no Python 3.9 at {PY39}")
def test_install_with_pip_into_a_python39_venv_and_the_plugin_runs_there(
        tmp_path: Path) -> None:
    subprocess.run([str(PY39), "-m", "venv", str(tmp_path / ".venv")], check=True,
                   env=clean_env())
    python = tmp_path / ".venv" / "bin" / "python"
    pip_freeze = [str(python), "-m", "pip", "freeze", "--all"]
    before = subprocess.run(pip_freeze, capture_output=True, text=True, check=True).stdout
    # without --python: the `python` on PATH, and it says which
    on_path = dict(os.environ, PATH=f"{python.parent}{os.pathsep}{os.environ['PATH']}")
    st = octostore("capture", "status", env=on_path)
    assert st.returncode == 1 and f"virtual environment {tmp_path / '.venv'} " in st.stdout
    assert "picked as the `python` on PATH" in st.stdout and "not installed" in st.stdout
    # the step `octostore init` prints
    res = octostore("capture", "install", "--python", ".venv/bin/python", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"installed octostore-capture {__version__} into virtual environment" in res.stdout
    assert "Python 3.9" in res.stdout
    after = subprocess.run(pip_freeze, capture_output=True, text=True, check=True).stdout
    added = set(after.splitlines()) - set(before.splitlines())
    assert set(before.splitlines()) <= set(after.splitlines()) and len(added) == 1
    assert next(iter(added)).startswith("octostore-capture")
    inst = (tmp_path / ".venv" / "lib" / "python3.9" / "site-packages" /
            f"octostore_capture-{__version__}.dist-info" / "INSTALLER").read_text().strip()
    assert inst == "pip"

    repo = make_repo(tmp_path / "repo")
    (repo / "new.txt").write_text("uncommitted\n")
    check = ("import json; from importlib.metadata import entry_points\n"
             "[ep] = [e for e in entry_points()['mlflow.run_context_provider']]\n"
             "p = ep.load()()\n"
             "print(json.dumps([p.in_context(), p.tags()]))\n")
    got = subprocess.run([str(python), "-c", check], cwd=repo, capture_output=True, text=True,
                         env=clean_env(OCTOSTORE_CAPTURE_CACHE=str(tmp_path / "cc")),
                         timeout=60)
    assert got.returncode == 0, got.stderr
    on, tags = json.loads(got.stdout)
    assert on is True and "octostore.capture_error" not in tags, tags
    assert tags["octostore.python"].startswith("3.9.")
    assert tags["octostore.git.commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert "octostore.console_capture" not in tags

    st = octostore("capture", "status", "--python", ".venv", cwd=tmp_path)  # the env's folder
    assert st.returncode == 0 and "current" in st.stdout
    res = octostore("capture", "uninstall", "--python", ".venv/bin/python", cwd=tmp_path)
    assert res.returncode == 0 and "removed octostore-capture" in res.stdout
    assert subprocess.run(pip_freeze, capture_output=True, text=True).stdout == before


def test_errors_say_what_to_do_in_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "env").mkdir()
    cases = [("/nonexistent/bin/python", "does not exist"),
             (shutil.which("true") or "/bin/true", "is not a Python interpreter"),
             (str(tmp_path / "env"), "without bin/python"),
             ("no-such-python-here", "on PATH")]
    if PY38.exists():
        cases.append((str(PY38), "is Python 3.8"))
    system = Path("/usr/bin/python3")
    if system.exists() and list(Path("/usr/lib").glob("python3*/EXTERNALLY-MANAGED")):
        # Debian's Python: refused before any installer runs (status still answers)
        res = octostore("capture", "install", "--python", str(system))
        assert res.returncode == 2 and "externally managed" in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1 and "--python .venv/bin/python" in res.stderr
    for n, (given, what) in enumerate(cases):
        for action in ("install", "status", "uninstall") if n == 0 else ("install",):
            res = octostore("capture", action, "--python", given)
            assert res.returncode == 2, (given, res.stdout, res.stderr)
            lines = res.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("octostore: "), res.stderr
            assert what in lines[0] and "--python" in lines[0], lines[0]
