"""A cloned repo names a tracking server: the user's MLflow credentials must not go there.

The attack: a repo whose ``.octostore/remotes.toml`` (or ``[tool.octostore] stores``, or the
``.env`` ``MLFLOW_TRACKING_URI``) names a server its author runs, opened by a user whose
daemon has ``MLFLOW_TRACKING_TOKEN`` (and a username and password) in its environment.  The
servers here are real HTTP servers on loopback that record every request's headers; the
daemon is a real ``octostored`` process.  Until the user runs ``octostore remote trust URI``
no server gets a single request (so no credential), no MLflow worker runs, and the source
says how to trust it; after it, the trusted server (and only it) is read, with her token.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from octostored import servertrust

from .conftest import DaemonProc, make_repo, wait_for

TOKEN, USER, PASSWORD = "tok-users-own-5e1f", "alice", "pw-users-own-77"


class Recorder(http.server.BaseHTTPRequestHandler):
    """Records each request's path and headers; answers like a server that wants a login."""

    seen: list[tuple[str, dict[str, str]]]

    def _reply(self) -> None:
        self.seen.append((self.path, dict(self.headers)))
        body = b'{"error_code": "UNAUTHENTICATED", "message": "who are you"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _reply

    def log_message(self, *args: Any) -> None:
        pass


class Server:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        handler = type("H", (Recorder,), {"seen": self.seen})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.uri = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class UserDaemon(DaemonProc):
    """The user's daemon: her credentials in its environment, her config in a temp folder."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(XDG_CONFIG_HOME=str(self.base / "config"), MLFLOW_TRACKING_TOKEN=TOKEN,
                   MLFLOW_TRACKING_USERNAME=USER, MLFLOW_TRACKING_PASSWORD=PASSWORD,
                   OCTOSTORE_REMOTE_INTERVAL="1", OCTOSTORE_REMOTE_MAX_DELAY="2",
                   OCTOSTORE_REMOTE_TIMEOUT="30")
        env.pop("MLFLOW_TRACKING_URI", None)
        return env


@pytest.fixture
def servers() -> Iterator[dict[str, Server]]:
    s = {k: Server() for k in ("remotes", "pyproject", "dotenv")}
    yield s
    for srv in s.values():
        srv.close()


@pytest.fixture
def user(short_tmp: Path) -> Iterator[UserDaemon]:
    d = UserDaemon(short_tmp).start()
    yield d
    d.stop()


def planted_repos(base: Path, servers: dict[str, Server]) -> dict[str, Path]:
    """Three repos built by a stranger, each naming his server in one of the three places."""
    repos = {k: make_repo(base / f"repo-{k}") for k in servers}
    (repos["remotes"] / ".octostore").mkdir()
    (repos["remotes"] / ".octostore" / "remotes.toml").write_text(
        f'remotes = ["{servers["remotes"].uri}"]\n')
    (repos["pyproject"] / "pyproject.toml").write_text(
        f'[project]\nname = "x"\n\n[tool.octostore]\nstores = ["{servers["pyproject"].uri}/"]\n')
    (repos["dotenv"] / ".env").write_text(f"MLFLOW_TRACKING_URI={servers['dotenv'].uri}\n")
    return repos


def octostore(d: UserDaemon, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "octostored.cli", *argv], env=d.env(),
                          capture_output=True, text=True, timeout=300, cwd="/")


def workers_of(pid: int) -> list[int]:
    """The MLflow worker processes a daemon started."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"octostored.sources.remote_worker" in cmd:
            out.append(int(name))
    return out


def source(d: UserDaemon, repo: Path, uri: str) -> dict[str, Any]:
    with d.client() as c:
        info = c.call("octostore/open", root=str(repo))
    return next(s for s in info["sources"] if s["id"] == uri)


def test_a_server_a_repo_names_gets_nothing_until_the_user_trusts_it(
        user: UserDaemon, servers: dict[str, Server], short_tmp: Path) -> None:
    repos = planted_repos(short_tmp, servers)
    for kind, repo in repos.items():
        res = octostore(user, "runs", "--root", str(repo))
        assert res.returncode == 0, res.stderr
        with user.client() as c:
            c.call("octostore/sync", root=str(repo), timeout=120)
    for kind, srv in servers.items():
        assert srv.seen == [], f"the server named in {kind} was contacted: {srv.seen}"
    assert user.proc is not None and workers_of(user.proc.pid) == []
    for kind, repo in repos.items():
        uri = servers[kind].uri
        src = source(user, repo, uri)
        want = (f"the repo names the tracking server {uri}, which you have not trusted; "
                f"run `octostore remote trust {uri}` to index it")
        assert src["warning"] == want and src["state"] == "untrusted" and src["runs"] == 0
    with user.client() as c:
        status = c.call("octostore/status")
    warned = [s["warning"] for r in status["roots"] for s in r["sources"] if s["warning"]]
    assert len(warned) == 3 and all("octostore remote trust" in w for w in warned)
    listed = octostore(user, "remote", "list", "--root", str(repos["remotes"]))
    assert "not trusted" in listed.stdout and f"remote trust {servers['remotes'].uri}" in \
        listed.stdout

    # The user trusts one of them: it is read at once, with her credentials; the others not.
    res = octostore(user, "remote", "trust", servers["remotes"].uri, "--root",
                    str(repos["remotes"]))
    assert res.returncode == 0, res.stderr
    assert "now trusted" in res.stdout
    wait_for(lambda: servers["remotes"].seen, timeout=120, what="the trusted server's request")
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    auth = {h.get("Authorization") for _, h in servers["remotes"].seen}
    assert auth & {f"Bearer {TOKEN}", basic}, f"the trusted server got no credentials: {auth}"
    src = wait_for(lambda: (s := source(user, repos["remotes"], servers["remotes"].uri))
                   ["state"] != "untrusted" and s, timeout=60, what="the source to be read")
    assert "rejected the credentials" in (src["warning"] or ""), src
    for kind in ("pyproject", "dotenv"):
        with user.client() as c:
            c.call("octostore/sync", root=str(repos[kind]), timeout=120)
        assert servers[kind].seen == []
    cfg = Path(user.env()["XDG_CONFIG_HOME"]) / "octostore"
    assert stat.S_IMODE((cfg / "trusted-servers.toml").stat().st_mode) == 0o600
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o700
    assert not (repos["remotes"] / ".octostore" / "trusted-servers.toml").exists()

    # Untrusted again: its worker goes, its source warns, and it gets nothing more.
    res = octostore(user, "remote", "untrust", servers["remotes"].uri + "/")
    assert res.returncode == 0 and "no longer trusted" in res.stdout, res.stderr
    src = source(user, repos["remotes"], servers["remotes"].uri)
    assert src["state"] == "untrusted" and "octostore remote trust" in src["warning"]
    wait_for(lambda: workers_of(user.proc.pid) == [], timeout=30, what="the worker to exit")
    n = len(servers["remotes"].seen)
    with user.client() as c:
        c.call("octostore/sync", root=str(repos["remotes"]), timeout=120)
    assert len(servers["remotes"].seen) == n


def test_remote_add_trusts_in_the_users_config_not_the_repo(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("OCTOSTORE_SOCKET", str(tmp_path / "no-daemon.sock"))
    repo = make_repo(tmp_path / "repo")
    res = subprocess.run([sys.executable, "-m", "octostored.cli", "remote", "add",
                          "https://MLflow.Example.com/team", "--root", str(repo)],
                         capture_output=True, text=True, env=dict(os.environ), cwd="/")
    assert res.returncode == 0, res.stderr
    assert servertrust.is_trusted("https://mlflow.example.com:443/other")
    assert not servertrust.is_trusted("http://mlflow.example.com")  # another scheme and port
    assert not servertrust.is_trusted("https://mlflow.example.com:8443")
    assert not servertrust.is_trusted("https://mlflow.example.com.evil.org")
    # A clone of the same repo, opened by someone else: the committed file trusts nothing.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "other-user"))
    assert not servertrust.is_trusted("https://mlflow.example.com")
    assert json.loads(subprocess.run(
        [sys.executable, "-m", "octostored.cli", "remote", "list", "--root", str(repo),
         "--json"], capture_output=True, text=True, env=dict(os.environ), cwd="/").stdout
    )["remotes"][0]["trusted"] is False


def test_server_keys_are_normalised() -> None:
    key = servertrust.server_key
    assert key("HTTPS://MLflow.Example.COM/x?y=1") == "https://mlflow.example.com:443"
    assert key("https://bob:pw@mlflow.example.com:443") == "https://mlflow.example.com:443"
    assert key("http://[::1]:5000/") == "http://[::1]:5000"
    assert key("http://h") == "http://h:80" != key("https://h")
    assert key("ftp://h") is None and key("http://h:port") is None and key("sqlite:///x") is None
    assert servertrust.origin("https://H:443/a") == "https://h"


def test_reproduce_does_not_log_to_a_server_the_repo_names_until_trusted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reproduced run logs with the user's environment (her token): to a server the repo
    names only once she trusts it."""
    from octostored.jobs import JobError
    from octostored.model import Run
    from octostored.reproduce.plan import _store

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    repo = make_repo(tmp_path / "repo")
    (repo / "pyproject.toml").write_text(
        '[tool.octostore]\nstores = ["https://collector.evil.example:8443/"]\n')
    run = Run(run_id="r1", experiment_id="0")
    with pytest.raises(JobError) as err:
        _store(str(repo), run, {}, None, ".")
    assert "https://collector.evil.example:8443" in str(err.value)
    assert "octostore remote trust https://collector.evil.example:8443" in err.value.remedy
    servertrust.trust("https://collector.evil.example:8443")
    assert _store(str(repo), run, {}, None, ".").kind == "remote"


def test_a_repo_env_cannot_weaken_tls_to_a_trusted_server(tmp_path: Path) -> None:
    """A repo's ``.env`` may add credentials for its servers, never switch off TLS checks,
    ship its own CA, point at the user's client key or pick an auth plugin: those come from
    the user's own environment, and the repo's setting is named in a warning."""
    from octostored.sources.discover import discover

    repo = make_repo(tmp_path / "repo")
    (repo / "octostore.toml").write_text('stores = ["https://mlflow.example.org"]\n')
    (repo / ".env").write_text(
        "MLFLOW_TRACKING_TOKEN=repo-token\n"
        "MLFLOW_TRACKING_INSECURE_TLS=true\n"
        "MLFLOW_TRACKING_SERVER_CERT_PATH=ca-of-the-author.pem\n"
        "export MLFLOW_TRACKING_CLIENT_CERT_PATH=/home/you/.ssh/id_ed25519\n")
    refs, warnings = discover(str(repo))
    (server,) = [r for r in refs if r.kind == "remote"]
    assert dict(server.env) == {"MLFLOW_TRACKING_TOKEN": "repo-token"}
    (warning,) = [w for w in warnings if "MLFLOW_TRACKING_INSECURE_TLS" in w]
    assert "MLFLOW_TRACKING_SERVER_CERT_PATH" in warning
    assert "MLFLOW_TRACKING_CLIENT_CERT_PATH" in warning and "ignores" in warning
