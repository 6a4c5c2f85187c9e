"""The built environments' cache: seen (``octostore cache list``), freed (``cache prune``) and
kept under a size cap (``env_cache_max_gb``), least recently used first, never one in use.

Real parts: environments built by the repo's uv from its warm package cache (one tiny
package each), the real CLI in a subprocess with ``OCTOSTORE_CACHE_DIR`` pointing at a temp
cache, real ``flock`` held the way a running reproduction holds its environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from octostored import settings
from octostored.reproduce import envbuild, envcache
from octostored.reproduce.envspec import EnvSpec

from .conftest import REPO
from .test_reproduce_support import uv_bin

A, B, C = "iniconfig==2.3.0", "six==1.16.0", "six==1.17.0"


@pytest.fixture(autouse=True)
def _uv(monkeypatch: Any) -> None:
    monkeypatch.setenv("OCTOSTORE_UV", uv_bin())


def build(cache: envbuild.EnvCache, pin: str) -> envbuild.BuiltEnv:
    spec = EnvSpec("project", f"{pin} (test)", requirements=[pin], material={"pin": pin})
    return asyncio.run(cache.ensure(spec))


@pytest.fixture(autouse=True)
def _user_config(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user-config"))


def user_config(text: str) -> Path:
    """The user's own octostore config.toml (where env_cache_max_gb lives)."""
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "octostore" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def cli(cache_dir: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OCTOSTORE_CACHE_DIR=str(cache_dir), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "octostored.cli", "cache", *args],
                          capture_output=True, text=True, env=env, cwd=cwd or cache_dir)


def used(built: envbuild.BuiltEnv) -> float:
    return json.loads(Path(built.dir, envcache.USED).read_text())["last_used"]


def test_each_use_is_stamped_and_list_shows_each_env_its_size_and_the_total(
        tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache = envbuild.EnvCache(envcache.envs_folder(str(cache_dir)))
    a = build(cache, A)
    a.release()
    first = used(a)
    b = build(cache, B)
    b.release()
    again = build(cache, A)  # a second reproduction with the same lock: reused, stamped
    again.release()
    assert again.cached and again.key == a.key and used(again) > first

    res = cli(cache_dir, "list", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    envs = out["environments"]
    assert [e["key"] for e in envs] == [a.key, b.key]  # most recently used first
    assert [e["source"] for e in envs] == [f"{A} (test)", f"{B} (test)"]
    assert all(e["state"] == "ready" and not e["in_use"] and e["packages"] == 1 for e in envs)
    assert envs[0]["last_used"] == used(again)
    assert all(len(e["lock_sha256"]) == 64 for e in envs)
    sizes = [envcache.size_on_disk(a.dir), envcache.size_on_disk(b.dir)]
    assert [e["size_bytes"] for e in envs] == sizes and min(sizes) > 0
    assert out["total_bytes"] == sum(sizes) and out["cap_bytes"] is None

    text = cli(cache_dir, "list").stdout
    assert f"{A} (test), 1 packages" in text and a.key in text
    assert f"total: 2 environment(s), {envcache.human(sum(sizes))}" in text


def test_prune_keep_older_than_all_and_dry_run_never_touch_an_env_in_use(
        tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    folder = envcache.envs_folder(str(cache_dir))
    cache = envbuild.EnvCache(folder)
    running = build(cache, A)  # a reproduction still running in it: never released here
    b = build(cache, B)
    b.release()
    c = build(cache, C)
    c.release()
    size_b = envcache.size_on_disk(b.dir)

    dry = json.loads(cli(cache_dir, "prune", "--keep", "1", "--dry-run", "--json").stdout)
    assert dry["dry_run"] and [e["key"] for e in dry["removed"]] == [b.key]
    assert [e["key"] for e in dry["skipped_in_use"]] == [running.key]
    assert dry["freed_bytes"] == size_b and os.path.isdir(b.dir)

    kept = json.loads(cli(cache_dir, "prune", "--keep", "1", "--json").stdout)
    assert [e["key"] for e in kept["removed"]] == [b.key] and kept["freed_bytes"] == size_b
    assert not os.path.exists(b.dir) and os.path.isdir(running.dir) and os.path.isdir(c.dir)

    text = cli(cache_dir, "prune", "--older-than", "0")
    assert text.returncode == 0, text.stderr
    assert f"removed {c.key}" in text.stdout and f"kept {running.key}: in use" in text.stdout
    assert not os.path.exists(c.dir) and os.path.isdir(running.dir)

    running.release()  # the reproduction ended
    gone = json.loads(cli(cache_dir, "prune", "--all", "--json").stdout)
    assert [e["key"] for e in gone["removed"]] == [running.key]
    assert gone["total_bytes_after"] == 0
    assert json.loads(cli(cache_dir, "list", "--json").stdout)["environments"] == []


def test_prune_without_a_choice_says_what_to_pass(tmp_path: Path) -> None:
    res = cli(tmp_path, "prune")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip() == (
        "octostore: say what to prune: --all, --older-than DAYS or --keep N (or set "
        "env_cache_max_gb in ~/.config/octostore/config.toml to prune down to that cap)")


def test_the_cap_removes_the_least_recently_used_first_and_never_one_in_use(
        tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    folder = envcache.envs_folder(str(tmp_path / "cache"))
    cache = envbuild.EnvCache(folder, root=str(root))
    envs = {pin: build(cache, pin) for pin in (A, B, C)}
    for e in envs.values():
        e.release()
    size = {pin: envcache.size_on_disk(e.dir) for pin, e in envs.items()}
    assert envcache.remove(folder, envs[C].key)
    build(cache, A).release()  # A used again: B is now the least recently used
    cap = (size[A] + size[C] + size[B] // 2) / envcache.GB
    user_config(f"env_cache_max_gb = {cap!r}\n")
    # A repo cannot set it: the cache is the user's (a cloned repo could empty it).
    (root / "pyproject.toml").write_text("[tool.octostore]\nenv_cache_max_gb = 0\n")

    c = build(cache, C)  # the new build pushes the cache over its cap: B goes
    c.release()
    assert [e["key"] for e in c.evicted] == [envs[B].key]
    assert c.evicted[0]["size_bytes"] == size[B]
    assert any(n.startswith(f"the environment cache went over its {cap:g} GB cap "
                            "(env_cache_max_gb): removed 1 least recently used environment(s), "
                            f"{envcache.human(size[B])} freed") for n in c.notes)
    assert c.describe()["cache_evicted"] == c.evicted
    assert not os.path.exists(envs[B].dir)
    assert os.path.isdir(envs[A].dir) and os.path.isdir(c.dir)

    # A is now the least recently used, but a reproduction runs in it: C goes instead.
    fd = envcache.hold_use(folder, envs[A].key)
    try:
        b = build(cache, B)
        b.release()
        assert [e["key"] for e in b.evicted] == [c.key]
        assert os.path.isdir(envs[A].dir) and os.path.isdir(b.dir)
    finally:
        os.close(fd)

    listed = json.loads(cli(tmp_path / "cache", "list", "--json").stdout)
    assert listed["cap_bytes"] == int(cap * envcache.GB)


def test_a_cap_that_is_not_a_number_is_ignored_with_a_warning(tmp_path: Path) -> None:
    path = user_config('env_cache_max_gb = "lots"\n')
    warnings: list[str] = []
    assert settings.env_cache_max_gb(str(tmp_path), warnings) is None
    assert warnings == [f"{path}: env_cache_max_gb must be a number of GB (0 or more), "
                        "not 'lots'; no cap is applied"]
    user_config("env_cache_max_gb = 2\n")
    assert settings.env_cache_max_gb(str(tmp_path)) == 2.0
    (tmp_path / "octostore.toml").write_text("env_cache_max_gb = 0\n")  # a repo's: not read
    assert settings.env_cache_max_gb(str(tmp_path)) == 2.0
