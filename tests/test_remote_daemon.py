"""A shared MLflow tracking server as a source of a root, through a real daemon.

One module-scoped ``mlflow server`` (:class:`tests.test_remote_source.MlflowServer`) holds the
~40 reference runs of the query agreement tests; one module-scoped daemon (a real
``octostored`` process, syncing every second: ``OCTOSTORE_REMOTE_INTERVAL``) opens a git
repo that names the server in ``pyproject.toml`` and again, with credentials, in ``.env``,
beside a local file store.  The tests: discovery and ``octostore remote`` (no server
needed, they run while it starts); the daemon's runs agree with ``search_runs``; a new run
and a new metric value show up; ``octostore commit`` of a server run lands in
``.octostore/runs`` and MLflow reads it back from a clone; a restarted daemon resumes with
an incremental sync; and last, a stopped server is a warning while local runs keep serving,
and a restarted one recovers.  Credentials never show in answers, status or the daemon log.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, ViewType

from octostored import servertrust
from octostored.cli import remote as cli_remote
from octostored.sources.discover import discover

from .conftest import DaemonProc, git, make_repo, wait_for
from .test_query_mlflow_agreement import BASE, _log_store
from .test_remote_source import MlflowServer

pytestmark = pytest.mark.e2e

USER, PASSWORD, TOKEN = "alice", "s3cr3t-pw-7781", "tok-9f8e7d6c5b"
SECRETS = (PASSWORD, TOKEN, f"{USER}:")


class Env:
    def __init__(self, server: MlflowServer, base: Path) -> None:
        self.server = server
        self.base = base
        self.repo = make_repo(base / "repo")
        self.daemon = RemoteDaemon(base / "d")
        self.client: MlflowClient | None = None
        self.exps: list[str] = []
        self.ids: list[str] = []
        self.local_run = ""

    @property
    def sid(self) -> str:
        return self.server.uri

    def call(self, method: str, **params: Any) -> Any:
        with self.daemon.client(timeout=120) as c:
            return c.call(method, {"root": str(self.repo), **params}, timeout=120)

    def source(self) -> dict[str, Any]:
        st = self.call("octostore/open")
        return next(s for s in st["sources"] if s["id"] == self.sid)


class RemoteDaemon(DaemonProc):
    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        super().__init__(base)

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(OCTOSTORE_REMOTE_INTERVAL="1", OCTOSTORE_REMOTE_MAX_DELAY="2",
                   OCTOSTORE_REMOTE_TIMEOUT="20",
                   XDG_CONFIG_HOME=os.environ["XDG_CONFIG_HOME"])  # the tests' CLI calls' own
        for k in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
                  "MLFLOW_TRACKING_PASSWORD"):
            env.pop(k, None)
        return env


@pytest.fixture(scope="module", autouse=True)
def env() -> Iterator[Env]:
    """Starts the server without waiting: the first tests need none and run meanwhile."""
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    base = Path(tempfile.mkdtemp(prefix="oct-rd-", dir="/tmp"))
    server = MlflowServer(tempfile.mkdtemp(prefix="octostore-remote-", dir=shm)).start()
    # The user's config (trusted servers), shared by this process's CLI calls and the daemon.
    old_config = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(base / "config")
    e = Env(server, base)
    try:
        yield e
    finally:
        if old_config is None:
            os.environ.pop("XDG_CONFIG_HOME", None)
        else:
            os.environ["XDG_CONFIG_HOME"] = old_config
        e.daemon.stop()
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def ready(env: Env) -> Env:
    """The server with its runs, the repo naming it, a local run, the daemon on it."""
    env.server.up()
    env.client, env.exps, env.ids = _log_store(env.server.uri)
    repo = env.repo
    (repo / "pyproject.toml").write_text(
        f'[project]\nname = "x"\n\n[tool.octostore]\nstores = ["{env.sid}/"]\n')
    secret_uri = env.sid.replace("://", f"://{USER}:{PASSWORD}@")
    (repo / ".env").write_text(f"MLFLOW_TRACKING_URI={secret_uri}\n"
                               f"MLFLOW_TRACKING_TOKEN={TOKEN}\n")
    local = MlflowClient((repo / "mlruns").as_uri())
    rid = local.create_run("0", run_name="local-run").info.run_id
    local.log_metric(rid, "rmse", 0.25)
    local.set_terminated(rid)
    env.local_run = rid
    servertrust.trust(env.sid)  # the user trusts her team's server (`octostore remote trust`)
    env.daemon.start()
    env.call("octostore/sync")
    return env


def no_secrets(text: str) -> None:
    for s in SECRETS:
        assert s not in text, f"{s!r} leaked: ...{text[max(0, text.find(s) - 200):][:400]}"


# -- no server needed ---------------------------------------------------------------------------

def test_discovery_finds_each_server_once_without_credentials(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.octostore]\nstores = ["https://mlflow.example.com/", "mlruns"]\n')
    (tmp_path / ".env").write_text(
        "export MLFLOW_TRACKING_URI='https://bob:pw-123@MLflow.example.com?x=1'\n"
        "MLFLOW_TRACKING_TOKEN=tok-abc  # the team token\nOTHER=1\n")
    (tmp_path / ".octostore").mkdir()
    (tmp_path / ".octostore" / "remotes.toml").write_text(
        'remotes = ["https://mlflow.example.com#frag", "http://other:5000/mlflow/"]\n')
    refs, warnings = discover(str(tmp_path))
    remote = [r for r in refs if r.kind == "remote"]
    assert [r.id for r in remote] == ["http://other:5000/mlflow", "https://mlflow.example.com"]
    assert all(r.path == r.id for r in remote)
    chosen = remote[1]
    assert chosen.uri.startswith("https://bob:pw-123@")  # the URI that authenticates wins
    assert dict(chosen.env) == {"MLFLOW_TRACKING_TOKEN": "tok-abc"}
    assert "pw-123" not in repr(refs) and "tok-abc" not in repr(refs)
    assert "configured store" in " ".join(warnings)  # mlruns does not exist; no server warning
    assert refs[-1].kind == "remote"  # servers after the repo's own stores


def _remote_cli(*argv: str) -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="command", required=True)
    cli_remote.add_parsers(sub)
    args = ap.parse_args(["remote", *argv])
    return cli_remote.LOCAL[args.command](args)


def test_remote_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCTOSTORE_SOCKET", str(tmp_path / "no-daemon.sock"))
    root = str(tmp_path)
    assert _remote_cli("add", "https://mlflow.example.com/", "--root", root) == 0
    assert _remote_cli("add", "https://MLFLOW.example.com", "--root", root) == 0  # same server
    assert "already a remote" in capsys.readouterr().out
    assert _remote_cli("add", "https://ann:pw@mlflow.internal", "--root", root) == 2
    err = capsys.readouterr().err
    assert "MLFLOW_TRACKING_USERNAME" in err and "MLFLOW_TRACKING_TOKEN" in err
    assert err.count("\n") == 1 and "pw" not in err.replace("PASSWORD", "")
    assert _remote_cli("add", "sqlite:///mlflow.db", "--root", root) == 2
    text = (tmp_path / ".octostore" / "remotes.toml").read_text()
    assert text.count("https://") == 1 and "ann" not in text
    assert [r.id for r in discover(root)[0]] == ["https://mlflow.example.com"]
    assert _remote_cli("list", "--root", root, "--json") == 0
    listed = json.loads(capsys.readouterr().out)["remotes"]
    assert [(r["uri"], r["named_in"]) for r in listed] == [
        ("https://mlflow.example.com", ["remotes.toml"])]
    assert _remote_cli("remove", "https://mlflow.example.com", "--root", root) == 0
    assert _remote_cli("remove", "https://mlflow.example.com", "--root", root) == 2
    assert discover(root)[0] == []
    assert not [n for n in os.listdir(tmp_path / ".octostore") if n.startswith(".tmp")]


@pytest.mark.parametrize("uri, says", [
    ("databricks://profile", "Databricks tracking URIs are not read by octostore; give the"),
    ("ftp://mlflow.example.com", "give one like https://mlflow.example.com"),
    ("http://[::1", "the URI is not valid (Invalid IPv6 URL); give one like"),
    ("http://mlflow.example.com:port", "the URI is not valid (Port"),
])
def test_remote_add_refuses_a_bad_uri_in_one_sentence(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        uri: str, says: str) -> None:
    monkeypatch.setenv("OCTOSTORE_SOCKET", str(tmp_path / "no-daemon.sock"))
    assert _remote_cli("add", uri, "--root", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("octostore: ") and says in err and err.count("\n") == 1
    assert "octostore: octostore" not in err and "<unparsable URI>" not in err
    assert not (tmp_path / ".octostore" / "remotes.toml").exists()


def test_remote_remove_says_where_a_server_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCTOSTORE_SOCKET", str(tmp_path / "no-daemon.sock"))
    (tmp_path / ".env").write_text("MLFLOW_TRACKING_URI=http://mlflow.internal:5000\n")
    assert _remote_cli("remove", "http://mlflow.internal:5000", "--root", str(tmp_path)) == 2
    assert capsys.readouterr().err == (
        f"octostore: http://mlflow.internal:5000 is not in {tmp_path}/.octostore/remotes.toml "
        "but in .env; remove it there\n")
    (tmp_path / ".octostore").mkdir()
    (tmp_path / ".octostore" / "remotes.toml").write_text('remotes = "http://a"\n')
    assert _remote_cli("add", "http://b.example.com", "--root", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "'remotes' must be a list of URIs; fix the file or delete it" in err
    assert (tmp_path / ".octostore" / "remotes.toml").read_text() == 'remotes = "http://a"\n'


# -- the daemon on a server ------------------------------------------------------------------------

def test_daemon_lists_server_runs_as_mlflow_does(ready: Env) -> None:
    env = ready
    assert env.client is not None
    src = env.source()
    assert src["kind"] == "remote" and src["state"] in ("ok", "syncing") and src["warning"] is None
    assert src["last_sync"] and src["runs"] >= 40
    ids = set(env.ids)
    runs = env.call("octostore/runs", view="all", limit=10_000)["runs"]
    server = [r for r in runs if r["run_id"] in ids]
    assert len(server) == 40 and all(r["source"] == env.sid for r in server)
    assert any(r["run_id"] == env.local_run and r["source"] != env.sid for r in runs)
    names = {e["name"]: e for e in env.call("octostore/experiments")["experiments"]}
    assert names["exp-a"]["source"] == env.sid and names["exp-a"]["runs"] > 0
    cases: list[tuple[str | None, list[str] | None]] = [
        (None, None), ("metrics.rmse < 0.5", None), ("params.model = 'rf'", ["metrics.acc DESC"]),
        ("tags.team LIKE '%ore'", ["params.lr"]), ("attributes.status != 'FINISHED'", None),
        (None, ["attributes.start_time ASC", "metrics.rmse DESC"]),
        (f"attributes.start_time > {BASE + 10_000}", ["attributes.run_name"]),
    ]
    keys = [names["exp-a"]["key"], names["exp-b"]["key"]]
    for flt, order in cases:
        want = [r.info.run_id for r in env.client.search_runs(
            env.exps, flt or "", run_view_type=ViewType.ACTIVE_ONLY, order_by=order,
            max_results=1000)]
        params: dict[str, Any] = {"experiment_ids": keys, "limit": 1000}
        if flt:
            params["filter"] = flt
        if order:
            params["order_by"] = order
        got = [r["run_id"] for r in env.call("octostore/runs", **params)["runs"]]
        assert got == want, (flt, order)
    # metric histories come through the server, as MLflow has them
    rid = env.ids[3]
    want_h = [(m.step, m.value) for m in env.client.get_metric_history(rid, "acc")]
    series = env.call("octostore/metric_history", run_ids=[rid], keys=["acc"])["series"][0]
    assert series["warnings"] == [] and list(zip(series["x"], series["y"])) == sorted(want_h)


def test_new_runs_and_metric_values_appear(ready: Env) -> None:
    """Within a sync interval (1 s here) and no octostore/sync: the poll loop delivers."""
    env = ready
    c = env.client
    assert c is not None
    rid = c.create_run(env.exps[0], run_name="live").info.run_id
    c.log_metric(rid, "loss", 1.0, step=0)

    def value() -> Any:
        runs = env.call("octostore/runs", filter="attributes.run_name = 'live'")["runs"]
        return runs[0]["metrics"].get("loss") if runs else None

    assert wait_for(lambda: value() == 1.0, timeout=60, interval=0.2, what="the new run")
    c.log_metric(rid, "loss", 0.5, step=1)
    assert wait_for(lambda: value() == 0.5, timeout=60, interval=0.2, what="the new value")
    hist = env.call("octostore/metric_history", run_ids=[rid], keys=["loss"])["series"][0]
    assert list(zip(hist["x"], hist["y"])) == [(0, 1.0), (1, 0.5)]
    c.set_terminated(rid)
    wait_for(lambda: env.call("octostore/run", run_id=rid)["status"] == "FINISHED", timeout=60,
             interval=0.2, what="the run to finish")


def test_commit_a_server_run_and_read_it_back_from_a_clone(
        ready: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env = ready
    c = env.client
    assert c is not None
    rid = c.create_run(env.exps[1], run_name="to commit").info.run_id
    t = 1_750_000_000_000
    c.log_batch(rid, metrics=[Metric("loss", 1.0 / (s + 1), t + s, s) for s in range(5)]
                + [Metric("odd", math.nan, t, 0)])
    c.log_param(rid, "lr", "0.01")
    c.set_tag(rid, "team", "core")
    art = env.base / "weights.txt"
    art.write_text("w = 42\n")
    c.log_artifact(rid, str(art), "model")
    c.set_terminated(rid)
    env.call("octostore/sync")
    # by default only the repo's own runs are committed: the server's are left out
    dry = env.call("octostore/commit", dry_run=True)
    assert rid not in {r["run_id"] for r in dry["runs"]} and dry["remote_not_selected"] >= 40
    res = env.call("octostore/commit", run_ids=[rid], message="keep the server run")
    assert res["committed"] and [r["run_id"] for r in res["runs"]] == [rid], res
    assert res["skipped"] == [] and res["warnings"] == []
    folder = env.repo / res["runs"][0]["folder"]
    assert (folder / "artifacts" / "model" / "weights.txt").read_text() == "w = 42\n"
    run = env.call("octostore/run", run_id=rid)
    assert run["committed"] and run["source"] == env.sid
    assert sorted(run["sources"]) == sorted([env.sid, ".octostore/runs"])
    assert sum(1 for r in env.call("octostore/runs", view="all", limit=10_000)["runs"]
               if r["run_id"] == rid) == 1
    assert not os.listdir(os.path.join(env.daemon.cache, "remote-artifacts"))
    clone = env.base / "clone"
    git(env.base, "clone", "-q", str(env.repo), str(clone))
    theirs = MlflowClient(str(clone / ".octostore" / "runs"))
    got = theirs.get_run(rid)
    want = c.get_run(rid)
    assert got.data.params == want.data.params and got.data.tags["team"] == "core"
    assert {k: v for k, v in got.data.metrics.items() if k != "odd"} == {
        k: v for k, v in want.data.metrics.items() if k != "odd"}
    assert math.isnan(got.data.metrics["odd"])
    assert [(m.step, m.value) for m in theirs.get_metric_history(rid, "loss")] == [
        (m.step, m.value) for m in c.get_metric_history(rid, "loss")]
    monkeypatch.chdir(clone)  # committed artifact URIs are relative to the repo's top
    dl = theirs.download_artifacts(rid, "model", str(env.base / "dl"))
    assert open(os.path.join(dl, "weights.txt")).read() == "w = 42\n"


def test_remote_add_reads_a_server_at_once_and_remove_drops_it(
        ready: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``octostore remote add`` with a daemon running: the daemon reads the new server before
    the command returns (here one that is down: a warning, the rest keeps serving); ``remove``
    is seen by the daemon's watcher."""
    env = ready
    monkeypatch.setenv("OCTOSTORE_SOCKET", env.daemon.socket)
    dead = "http://127.0.0.1:9"
    assert _remote_cli("add", dead, "--root", str(env.repo)) == 0
    out = capsys.readouterr()
    assert f"added {dead}" in out.out
    assert f"warning: cannot reach the MLflow server {dead}" in out.err
    assert _remote_cli("list", "--root", str(env.repo), "--json") == 0
    listed = {r["uri"]: r for r in json.loads(capsys.readouterr().out)["remotes"]}
    assert listed[env.sid]["named_in"] == ["pyproject.toml/octostore.toml", ".env"]
    assert listed[env.sid]["state"] in ("ok", "syncing") and listed[env.sid]["warning"] is None
    assert listed[dead]["named_in"] == ["remotes.toml"] and listed[dead]["warning"]
    assert env.source()["warning"] is None and env.source()["runs"] >= 40
    assert _remote_cli("remove", dead, "--root", str(env.repo)) == 0
    wait_for(lambda: all(s["id"] != dead for s in env.call("octostore/open")["sources"]),
             timeout=60, interval=0.1, what="the watcher to drop the removed server")
    with env.daemon.client() as c:
        root = next(r for r in c.call("octostore/status")["roots"] if r["root"] == str(env.repo))
    assert not any(dead in w for w in root["warnings"])


def test_credentials_never_show(ready: Env) -> None:
    env = ready
    answers = [env.call("octostore/open"), env.call("octostore/experiments", view="all"),
               env.call("octostore/runs", view="all", limit=10_000),
               env.call("octostore/run", run_id=env.ids[0])]
    with env.daemon.client() as c:
        answers.append(c.call("octostore/status"))
    no_secrets(json.dumps(answers))
    no_secrets(env.daemon.log.read_text(errors="replace"))
    for dirpath, _, files in os.walk(env.daemon.cache):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                no_secrets(f.read().decode("latin-1"))


def test_restarted_daemon_resumes_with_an_incremental_sync(ready: Env) -> None:
    env = ready
    before = env.source()["runs"]
    env.daemon.stop()
    env.daemon.start()
    info = env.call("octostore/open")  # answered from the snapshot
    assert next(s for s in info["sources"] if s["id"] == env.sid)["runs"] == before
    env.call("octostore/sync")
    src = env.source()
    assert src["runs"] == before and src["warning"] is None
    syncs = src["remote"]["syncs"]
    assert syncs["full"] == 0 and syncs["incremental"] >= 1, syncs


def test_stopped_server_warns_while_local_runs_serve_then_recovers(ready: Env) -> None:
    """Last: it stops the module's server (and starts it again)."""
    env = ready
    known = env.source()["runs"]
    env.server.stop()
    try:
        src = wait_for(lambda: (s := env.source())["warning"] and s, timeout=60, interval=0.2,
                       what="a warning on the server")
        assert src["warning"].startswith(f"cannot reach the MLflow server {env.sid}")
        assert f"showing its {known} runs" in src["warning"]
        with env.daemon.client() as c:
            root = next(r for r in c.call("octostore/status")["roots"]
                        if r["root"] == str(env.repo))
        assert any(w.startswith("cannot reach the MLflow server") for w in root["warnings"])
        env.call("octostore/sync")  # does not fail, does not hang past the server's timeout
        runs = env.call("octostore/runs", view="all", limit=10_000)["runs"]
        assert any(r["run_id"] == env.local_run for r in runs)
        assert sum(1 for r in runs if r["source"] == env.sid) == known
        hist = env.call("octostore/metric_history", run_ids=[env.ids[0]], keys=["acc"])
        assert "cannot reach" in hist["series"][0]["warnings"][0]
        no_secrets(json.dumps([src, root, hist]))
    finally:
        env.server.up()
    wait_for(lambda: env.source()["warning"] is None, timeout=60, interval=0.2,
             what="the warning to clear")
    assert env.source()["runs"] == known
    no_secrets(env.daemon.log.read_text(errors="replace"))
