"""Where the running octostore came from (:mod:`octostored.installsource`), and ``ci init``
writing only sources another machine can install.

The records are PEP 610's own examples plus those real installers write; the installs are
real: the built wheel installed by path (a local file: refused with the fix) and through
``--find-links`` (an index install: no ``direct_url.json``, pinned to its version).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from octostored.installsource import from_direct_url, resolve

from .conftest import git
from .dist_support import VERSION, built, fresh_venv, venv_env

SHA = "7f0b1a2c3d4e5f60718293a4b5c6d7e8f9012345"


@pytest.mark.parametrize(("record", "kind", "requirement"), [
    (None, "index", "octostore==1.2.3"),
    ({"url": "https://github.com/acme/octostore.git",
      "vcs_info": {"vcs": "git", "commit_id": SHA, "requested_revision": "main"}},
     "vcs", f"octostore @ git+https://github.com/acme/octostore.git@{SHA}"),
    ({"url": "ssh://git@github.com/acme/tools.git", "subdirectory": "octostore",
      "vcs_info": {"vcs": "git", "commit_id": SHA}},
     "vcs", f"octostore @ git+ssh://git@github.com/acme/tools.git@{SHA}#subdirectory=octostore"),
    ({"url": "https://bob:s3cret@git.example.org/octostore",  # a password never goes on
      "vcs_info": {"vcs": "git", "commit_id": SHA}},
     "vcs", f"octostore @ git+https://git.example.org/octostore@{SHA}"),
    ({"url": "https://files.example.org/octostore-1.2.3-py3-none-any.whl",
      "archive_info": {"hashes": {"sha256": "ab" * 32}}},
     "url", "octostore @ https://files.example.org/octostore-1.2.3-py3-none-any.whl"
            f"#sha256={'ab' * 32}"),
    ({"url": "file:///home/me/dist/octostore-1.2.3-py3-none-any.whl", "archive_info": {}},
     "local", None),
    ({"url": "file:///home/me/octostore", "dir_info": {"editable": True}}, "local", None),
    ({"url": "file:///home/me/octostore", "dir_info": {}}, "local", None),
    ({"url": "file:///home/me/octostore.git", "vcs_info": {"vcs": "git", "commit_id": SHA}},
     "local", None),
])
def test_a_record_gives_a_requirement_or_says_why_not(record: dict | None, kind: str,
                                                      requirement: str | None) -> None:
    src = from_direct_url(record, "1.2.3")
    assert (src.kind, src.requirement) == (kind, requirement)
    if requirement is None:
        assert src.problem and "\n" not in src.problem and "--package" in src.problem
        assert "/home/me/" in src.problem and "cannot reach" in src.problem
    else:
        assert src.problem is None and "octostore" != src.requirement


def test_an_override_wins_and_this_checkout_is_local() -> None:
    assert resolve("octostore @ git+https://x.invalid/o@1").requirement == (
        "octostore @ git+https://x.invalid/o@1")
    here = resolve(None, flag="--octostore")  # the test venv: an editable install of the checkout
    assert here.kind == "local" and here.requirement is None
    assert "editable checkout" in (here.problem or "") and "--octostore" in (here.problem or "")


def test_a_local_checkout_with_an_origin_suggests_its_git_url(tmp_path: Path) -> None:
    repo = tmp_path / "octostore"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "commit", "-q", "--allow-empty", "-m", "x")
    git(repo, "remote", "add", "origin", "git@github.com:acme/octostore.git")
    head = git(repo, "rev-parse", "HEAD").strip()
    src = from_direct_url({"url": repo.as_uri(), "dir_info": {"editable": True}}, "0.1.0")
    assert src.requirement is None
    assert f"'octostore @ git+https://github.com/acme/octostore.git@{head}'" in (src.problem or "")


def _ci_init(bin_dir: Path, repo: Path, base: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "octostore"), "ci", "init", "--root", str(repo), *args],
                          cwd=base, env=venv_env(bin_dir, base), capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """octostore from the wheel file (a local path) and through --find-links (an index)."""
    wheel = built()["wheel"]
    base = tmp_path_factory.mktemp("venvs")
    return {"file": fresh_venv(base / "file", str(wheel)),
            "index": fresh_venv(base / "index", "--find-links", str(wheel.parent),
                                f"octostore=={VERSION}")}


def test_ci_init_from_a_wheel_file_refuses_and_names_the_fix(venvs: dict[str, Path],
                                                              tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    out = _ci_init(venvs["file"], repo, tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert built()["wheel"].name in out.stderr and "--package" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (repo / ".github").exists()
    spec = f"octostore @ git+https://github.com/acme/octostore@{SHA}"
    out = _ci_init(venvs["file"], repo, tmp_path, "--package", spec, "--json")
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load((repo / ".github/workflows/octostore-reproduce.yml").read_text())
    assert doc["jobs"]["reproduce"]["env"]["OCTOSTORE_PACKAGE"] == spec


def test_ci_init_from_an_index_install_pins_its_version(venvs: dict[str, Path],
                                                         tmp_path: Path) -> None:
    meta = subprocess.run([str(venvs["index"] / "python"), "-c",
                           "from importlib import metadata; d = metadata.distribution('octostore'); "
                           "print(d.read_text('direct_url.json'))"],
                          capture_output=True, text=True, check=True, cwd=tmp_path)
    assert meta.stdout.strip() == "None"  # what an index install records: nothing
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    out = _ci_init(venvs["index"], repo, tmp_path, "--json")
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load((repo / ".github/workflows/octostore-reproduce.yml").read_text())
    assert doc["jobs"]["reproduce"]["env"]["OCTOSTORE_PACKAGE"] == f"octostore=={VERSION}"
