"""A real distribution: ``uv build`` makes a wheel and an sdist that install into fresh venvs,
and what they install works on its own: the CLI, the daemon, and the dashboard on the demo.

The build runs once per session (:mod:`tests.dist_support`); each venv installs from uv's
warm cache in about a second.  Everything below runs from the installed venv, in a folder
outside the checkout, with no ``PYTHONPATH``: a file the build left out fails here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from .conftest import REPO, wait_for
from .dist_support import PACKAGES, VERSION, built, clean_env, installed, venv_env

def test_the_wheel_holds_the_packages_with_their_data_files_and_nothing_else() -> None:
    names = set(zipfile.ZipFile(built()["wheel"]).namelist())
    dist_info = f"octostore-{VERSION}.dist-info"
    assert {n.split("/", 1)[0] for n in names} == {*PACKAGES, dist_info}
    want = built()["files"]
    assert "octostore_tui/octostore.tcss" in want  # the TUI's stylesheet, read at start-up
    assert want - names == set()  # every .py and every data file the code reads at runtime
    assert {n for n in names - want if not n.startswith(dist_info)} == set()
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    with zipfile.ZipFile(built()["wheel"]) as z:
        entry_points = z.read(f"{dist_info}/entry_points.txt").decode()
    for line in ("octostore = octostored.cli:main", "octostored = octostored.daemon:main",
                 "octostore-tui = octostore_tui.__main__:main",
                 "octostore = octostored.capture.provider:OctostoreRunContext"):
        assert line in entry_points


def test_the_sdist_holds_what_builds_the_wheel() -> None:
    with tarfile.open(built()["sdist"]) as t:
        names = [m.name.split("/", 1)[1] for m in t.getmembers() if "/" in m.name]
    tops = {n.split("/", 1)[0] for n in names}
    assert tops <= {*PACKAGES, "README.md", "pyproject.toml", "PKG-INFO", ".gitignore"}, tops
    assert {*PACKAGES, "README.md", "pyproject.toml"} <= tops
    assert not [n for n in names if "__pycache__" in n or "node_modules" in n]


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_installed_commands_run_from_a_fresh_venv(kind: str, tmp_path: Path) -> None:
    bin_dir = installed(kind)
    env = venv_env(bin_dir, tmp_path)
    where = subprocess.run([str(bin_dir / "python"), "-c",
                            "import octostored, octostore_tui; print(octostored.__file__); "
                            "print(octostore_tui.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    site = str(bin_dir.parent / "lib")
    assert all(line.startswith(site) for line in where.stdout.split()), where.stdout
    out = subprocess.run(["octostore", "--help"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for command in ("runs", "commit", "init", "reproduce", "ci"):
        assert command in out.stdout
    out = subprocess.run(["octostored", "--version"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"octostored {VERSION}", out


# -- the dashboard on the demo, from the installed wheel ------------------------------------------
DEMO_RUNS = [["--n-estimators", "50", "--max-depth", "4"],
             ["--n-estimators", "100", "--max-depth", "8", "--seed", "7"]]
"""Two of the demo's own settings (demo/prepare.py trains six; two keep the test short)."""

TRAIN = """
import sys
sys.path.insert(0, ".")
import train
for argv in {runs!r}:
    train.main(argv)
"""

TUI = """
import asyncio, json, sys, time
import octostore_tui
from octostore_tui.app import make_app
from octostore_tui.screens.experiments import ExperimentsScreen

async def until(pilot, cond, what):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except Exception:
            pass
        await pilot.pause(0.05)
    notes = [f"{n.title}: {n.message}" for n in pilot.app._notifications]
    raise SystemExit(f"timed out waiting for {what}; notifications: {notes}")

async def main(root, socket):
    app = make_app(root, socket, autostart=False, timeout=30)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.first_data_seconds is not None, "the first screen")
        total = app.screen.data["total"]
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ExperimentsScreen)
                    and app.screen.grid.total is not None
                    and len(app.screen.grid.rows) >= app.screen.grid.total, "the runs grid")
        grid = app.screen.grid
        print(json.dumps({"insights_total": total, "grid_total": grid.total,
                          "run_ids": sorted(r["run_id"] for r in grid.rows.values()),
                          "names": sorted(r["run_name"] for r in grid.rows.values()),
                          "package": octostore_tui.__file__}))

asyncio.run(main(*sys.argv[1:3]))
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of demo/ with two real runs trained by its own train.py (MLflow's defaults)."""
    root = tmp_path_factory.mktemp("demo") / "demo"
    shutil.copytree(REPO / "demo", root, ignore=shutil.ignore_patterns(
        "mlflow.db", "mlruns", ".octostore", "__pycache__"))
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    env = clean_env(OCTOSTORE_CAPTURE="0")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID",
                 "MLFLOW_EXPERIMENT_NAME"):
        env.pop(name, None)
    if env.get("PYTHONDONTWRITEBYTECODE"):  # as demo/prepare.py: bytecode cached outside
        env.pop("PYTHONDONTWRITEBYTECODE")
        env["PYTHONPYCACHEPREFIX"] = "/tmp/octostore-pycache"
    # Trains while the build and the venv install (the next fixture) use the other core.
    proc = subprocess.Popen([sys.executable, "-c", TRAIN.format(runs=DEMO_RUNS)], cwd=root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    installed("wheel")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return root


def test_the_installed_dashboard_shows_the_demo_runs(demo: Path, tmp_path: Path) -> None:
    bin_dir = installed("wheel")
    base = Path(tempfile.mkdtemp(prefix="oct-tui-", dir="/tmp"))  # a short socket path
    env = venv_env(bin_dir, base)
    daemon = subprocess.Popen([str(bin_dir / "octostored"), "--socket", env["OCTOSTORE_SOCKET"]],
                              cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def answers() -> bool:
            if daemon.poll() is not None:
                raise AssertionError(f"octostored exited: {daemon.stderr.read().decode()[-2000:]}")
            return subprocess.run(["octostore", "status", "--json"], cwd=tmp_path, env=env,
                                  capture_output=True).returncode == 0

        wait_for(answers, timeout=30, what="the installed daemon to answer")
        status: dict[str, Any] = json.loads(subprocess.run(
            ["octostore", "status", "--json"], cwd=tmp_path, env=env, capture_output=True,
            text=True, check=True).stdout)
        assert status["pid"] == daemon.pid and status["version"] == VERSION
        cmdline = Path(f"/proc/{daemon.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[0].decode() == str(bin_dir / "python"), cmdline  # the venv's own
        tui = subprocess.run([str(bin_dir / "python"), "-c", TUI, str(demo),
                              env["OCTOSTORE_SOCKET"]], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=180)
        assert tui.returncode == 0, tui.stderr[-3000:]
        shown = json.loads(tui.stdout.strip().splitlines()[-1])
    finally:
        daemon.terminate()
        daemon.wait(15)
        shutil.rmtree(base, ignore_errors=True)
    # What MLflow itself reads from the demo's store.
    store = MlflowClient(f"sqlite:///{demo}/mlflow.db")
    runs = [r for e in store.search_experiments() for r in store.search_runs([e.experiment_id])]
    assert len(runs) == len(DEMO_RUNS)
    assert shown["insights_total"] == shown["grid_total"] == len(DEMO_RUNS)
    assert shown["run_ids"] == sorted(r.info.run_id for r in runs)
    assert shown["names"] == sorted(r.info.run_name for r in runs)
    assert shown["package"].startswith(str(bin_dir.parent / "lib"))
