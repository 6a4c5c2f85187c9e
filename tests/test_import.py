"""``octostore import``: committed runs (and any mlruns folder, mlflow.db) into a database
that stock MLflow reads from any folder, keeping run ids; importing again adds nothing.

Real parts only: a real MLflow process logs runs (metrics over several steps, params, tags,
an artifact, a scikit-learn logged model) to ``mlflow.db`` in a real git repo and to a
separate ``mlruns`` folder; ``octostore commit`` (real CLI, real daemon) commits them; the
repo is cloned with git; ``octostore import`` runs through the real CLI; and what MLflow
reads from the imported database (from another folder, or from the clone's top with no
settings at all) is compared with what MLflow itself reads from the source.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, DaemonProc, git, make_repo
from .test_commit_support import sqlite_template
from .test_remote_source import MlflowServer

TRAIN = """
import json, sys
import mlflow
import numpy as np
from sklearn.linear_model import LinearRegression

X = np.arange(20, dtype=float).reshape(-1, 1)
out = []
for uri, slope in ((sys.argv[1], 2.0), (sys.argv[1], 3.0), (sys.argv[2], 5.0)):
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("wine")
    with mlflow.start_run() as run:
        mlflow.log_params({"slope": slope, "alpha": 0.1})
        mlflow.set_tags({"team": "a", "note": f"slope {slope}"})
        for step in range(6):
            mlflow.log_metric("loss", slope / (step + 1), step=step)
        mlflow.log_metric("acc", float("nan"), step=0)
        mlflow.log_metric("acc", 0.5 + slope / 10, step=1)
        mlflow.log_text(f"slope={slope}\\n", "notes/readme.txt")
        info = mlflow.sklearn.log_model(LinearRegression().fit(X, slope * X[:, 0] + 1.0),
                                        name="model", serialization_format="cloudpickle",
                                        pip_requirements=["scikit-learn"])  # no inference run
    out.append([run.info.run_id, info.model_id, slope])
print(json.dumps(out))
"""
"""Two runs into ``mlflow.db`` (to be committed), one into a separate file store."""

READ = """
import json, math, os, sys
import mlflow
from mlflow import MlflowClient
from mlflow.entities import ViewType

def v(x):
    return "nan" if math.isnan(x) else x

def read():
    c = MlflowClient()
    exps = {e.experiment_id: e.name for e in c.search_experiments(view_type=ViewType.ALL)}
    df = mlflow.search_runs(search_all_experiments=True)
    out = {"tracking_uri": mlflow.get_tracking_uri(), "runs": {}}

    def arts(rid, path=None):
        got = []
        for a in c.list_artifacts(rid, path):
            got += arts(rid, a.path) if a.is_dir else [a.path]
        return got

    for rid in df["run_id"]:
        r = c.get_run(rid)
        out["runs"][rid] = {
            "experiment": exps[r.info.experiment_id], "name": r.info.run_name,
            "status": r.info.status, "start": r.info.start_time, "end": r.info.end_time,
            "params": r.data.params, "tags": r.data.tags,
            "metrics": {k: v(x) for k, x in r.data.metrics.items()},
            "history": {k: sorted({(m.timestamp, m.step, v(m.value)) for m in
                                   c.get_metric_history(rid, k)}, key=str)
                        for k in r.data.metrics},
            "artifacts": sorted(arts(rid)),
            "readme": mlflow.artifacts.load_text(r.info.artifact_uri + "/notes/readme.txt"),
            "outputs": sorted(o.model_id for o in r.outputs.model_outputs),
            "predict": mlflow.pyfunc.load_model(f"runs:/{rid}/model").predict([[3.0]]).tolist(),
        }
    models = mlflow.search_logged_models(experiment_ids=list(exps), output_format="list")
    out["models"] = sorted(
        [m.model_id, m.name, m.source_run_id, m.params,
         mlflow.pyfunc.load_model(f"models:/{m.model_id}").predict([[4.0]]).tolist()]
        for m in models)
    return out

got = []
for cwd, uri in zip(sys.argv[1::2], sys.argv[2::2]):
    os.chdir(cwd)
    os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
    if uri.startswith("files:"):  # a file store: MLflow >= 3.13 opens one only when allowed
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        uri = uri[len("files:"):]
    if uri != "-":
        mlflow.set_tracking_uri(uri)
    got.append(read())
print(json.dumps(got, default=list))
"""
"""What stock MLflow reads from stores: argv is (working folder, tracking URI) pairs, the URI
'-' for none at all (MLflow's default; only first), ``files:PATH`` for a file store (read
with ``MLFLOW_ALLOW_FILE_STORE=true``, set for that store only)."""


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, OCTOSTORE_CAPTURE="0", PYTHONPATH=str(REPO), **extra)
    for k in ("MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE"):
        env.pop(k, None)
    env.update(extra)
    return env


def _python(code: str, args: list[str], cwd: Path, env: dict[str, str]) -> Any:
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def octostore(cwd: Path, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "octostored.cli", *args], cwd=cwd,
                          env=env or _env(), capture_output=True, text=True, timeout=600)


def imported(cwd: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = octostore(cwd, "import", "--json", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _same_runs(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert sorted(got["runs"]) == sorted(want["runs"])
    for rid, w in want["runs"].items():
        g = got["runs"][rid]
        for field in w:
            assert g[field] == w[field], (rid, field, g[field], w[field])
    assert got["models"] == want["models"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    """A repo whose two mlflow.db runs are committed with ``octostore commit``, its clone,
    and a separate file store with a third run (same experiment name, another id)."""
    base = Path(tempfile.mkdtemp(prefix="oct-imp-", dir="/tmp"))
    server = None
    try:
        repo = make_repo(base / "proj")
        (repo / ".gitignore").write_text("/mlflow.db\n/mlflow.db-*\n/mlruns/\n")
        git(repo, "add", ".gitignore")
        git(repo, "commit", "-qm", "ignore the store")
        shutil.copy(sqlite_template(), repo / "mlflow.db")
        cluster = base / "cluster" / "mlruns"
        runs = _python(TRAIN, [f"sqlite:///{repo}/mlflow.db", cluster.as_uri()], repo,
                       _env(MLFLOW_ALLOW_FILE_STORE="true"))
        (base / "srv").mkdir()
        shutil.copy(repo / "mlflow.db", base / "srv" / "mlflow.db")
        server = MlflowServer(str(base / "srv")).start()  # a server over the same two runs
        (base / "d").mkdir()
        d = DaemonProc(base / "d").start()
        try:
            with d.client() as c:
                c.call("octostore/sync", root=str(repo))
            out = octostore(repo, "commit", "--json", env=_env(**{
                k: v for k, v in d.env().items() if k.startswith(("OCTOSTORE_", "XDG_"))}))
            assert out.returncode == 0, out.stderr
            assert len(json.loads(out.stdout)["runs"]) == 2
        finally:
            d.stop()
        clone = base / "clone"
        git(base, "clone", "-q", str(repo), str(clone))
        assert not (clone / "mlflow.db").exists()
        yield {"base": base, "repo": repo, "clone": clone, "cluster": cluster,
               "runs": runs[:2], "cluster_run": runs[2], "server": server}
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_committed_runs_import_into_a_store_stock_mlflow_reads_from_anywhere(
        world: dict[str, Any]) -> None:
    clone, base = world["clone"], world["base"]
    db = clone / "mlflow.db"

    plan = imported(clone, "--dry-run")
    assert plan["dry_run"] and plan["counts"]["added"] == 2 and not db.exists()

    first = imported(clone)
    assert first["counts"] == {"added": 2, "updated": 0, "unchanged": 0, "skipped": 0,
                               "failed": 0}, first
    assert sorted(r["run_id"] for r in first["runs"]) == sorted(r[0] for r in world["runs"])
    assert sorted(m["model_id"] for m in first["models"] if m["action"] == "added") == sorted(
        r[1] for r in world["runs"])

    # Again: nothing added, nothing written.
    before = _digest(db)
    again = imported(clone)
    assert again["counts"]["added"] == 0 and again["counts"]["updated"] == 0
    assert again["counts"]["unchanged"] == 2
    assert all(m["action"] == "unchanged" for m in again["models"])
    assert _digest(db) == before

    # The source changes (two more steps and a new tag on one run): that run is updated.
    rid = world["runs"][0][0]
    folder = next((clone / ".octostore" / "runs").glob(f"*/{rid}"))
    last = (folder / "metrics" / "loss").read_text().splitlines()[-1].split()
    with open(folder / "metrics" / "loss", "a") as f:
        f.write(f"{int(last[0]) + 10} 0.125 6\n{int(last[0]) + 20} 0.0625 7\n")
    (folder / "tags" / "reviewed").write_text("yes")
    dry = imported(clone, "--dry-run")
    assert dry["counts"]["updated"] == 1 and _digest(db) == before
    upd = imported(clone)
    assert upd["counts"] == {"added": 0, "updated": 1, "unchanged": 1, "skipped": 0,
                             "failed": 0}, upd
    [changed] = [r for r in upd["runs"] if r["action"] == "updated"]
    assert changed["run_id"] == rid and changed["changes"]["metrics"] == {"loss": 2}
    assert changed["changes"]["tags"] == {"reviewed": "yes"}

    # What MLflow reads from the source (the committed layout, at the clone's top with the
    # file store allowed) is what it reads from the imported database in another folder.
    elsewhere = base / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    # At the clone's top with no settings at all (MLflow's default ./mlflow.db), from another
    # folder with the tracking URI at the imported database, and the source itself.
    default, got, want = _python(READ, [
        str(clone), "-", str(elsewhere), f"sqlite:///{db}",
        str(clone), f"files:{clone / '.octostore' / 'runs'}"], elsewhere, _env())
    _same_runs(got, want)
    assert len(got["runs"]) == 2 and len(got["models"]) == 2
    run = got["runs"][rid]
    assert [p[1] for p in run["history"]["loss"]] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert run["tags"]["reviewed"] == "yes" and run["artifacts"] == ["notes/readme.txt"]
    assert default["tracking_uri"].endswith(f"{clone}/mlflow.db")
    _same_runs(default, want)


def test_mlflow_db_mlruns_and_server_sources_merge_with_experiment_ids_mapped(
        world: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    base, repo, server = world["base"], world["repo"], world["server"]
    try:
        merge = base / "merge"
        merge.mkdir()
        shutil.copy(sqlite_template(), merge / "mlflow.db")
        dest = MlflowClient(tracking_uri=f"sqlite:///{merge}/mlflow.db")
        other = dest.create_experiment("other")

        res = imported(merge, f"sqlite:///{repo}/mlflow.db")
        assert res["counts"]["added"] == 2
        [wine] = [e for e in res["experiments"] if e["name"] == "wine"]
        assert wine["source_id"] == other and wine["destination_id"] != other
        assert wine["mapped"]

        res2 = imported(merge, str(world["cluster"].parent))  # a folder holding mlruns/
        assert res2["counts"]["added"] == 1
        [wine2] = [e for e in res2["experiments"] if e["name"] == "wine"]
        assert wine2["destination_id"] == wine["destination_id"]
        assert wine2["action"] == "existing" and wine2["mapped"]

        # A tracking server the user trusts (credentials go to no other).
        config = base / "config"
        (config / "octostore").mkdir(parents=True)
        (config / "octostore" / "trusted-servers.toml").write_text(
            f'servers = ["{server.up().uri}"]\n')
        from_server = base / "from-server"
        from_server.mkdir()
        res3 = imported(from_server, server.uri, env=_env(XDG_CONFIG_HOME=str(config)))
        assert res3["counts"]["added"] == 2 and len(res3["models"]) == 2
    finally:
        server.stop()

    got, via_server, from_db, from_files = _python(READ, [
        str(base), f"sqlite:///{merge}/mlflow.db", str(base),
        f"sqlite:///{from_server}/mlflow.db", str(repo), f"sqlite:///{repo}/mlflow.db",
        str(base), f"files:{world['cluster']}"], repo, _env())
    want = {"runs": {**from_db["runs"], **from_files["runs"]},
            "models": sorted(from_db["models"] + from_files["models"])}
    _same_runs(got, want)
    _same_runs(via_server, from_db)
    assert {r["experiment"] for r in got["runs"].values()} == {"wine"}
    assert dest.search_runs([other]) == []


def test_refusals_are_one_sentence(world: dict[str, Any], tmp_path: Path) -> None:
    def refused(*args: str, env: dict[str, str] | None = None, cwd: Path = tmp_path) -> str:
        proc = octostore(cwd, "import", *args, env=env)
        assert proc.returncode == 2 and not proc.stdout, (proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("octostore: "), proc.stderr
        return lines[0]

    assert "has no committed runs" in refused()
    assert "does not exist" in refused(str(tmp_path / "nope"))
    assert "holds no MLflow store" in refused(str(tmp_path))
    assert "file store" in refused(str(world["cluster"]), env=_env(
        MLFLOW_TRACKING_URI=str(tmp_path / "mlruns")))
    assert "octostore remote trust https://mlflow.example.com" in refused(
        "https://mlflow.example.com", env=_env(XDG_CONFIG_HOME=str(tmp_path / "cfg")))
    no_mlflow = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(no_mlflow)], check=True)
    msg = refused(str(world["cluster"]), env=_env(
        OCTOSTORE_MLFLOW_PYTHON=str(no_mlflow / "bin" / "python")))
    assert "MLflow cannot be imported" in msg and "OCTOSTORE_MLFLOW_PYTHON" in msg
    assert "the source is the destination" in refused(
        str(world["repo"] / "mlflow.db"), cwd=world["repo"])
    assert not (tmp_path / "mlflow.db").exists()


def test_the_doc_names_commands_and_flags_that_exist() -> None:
    """docs/import.md's commands parse with the real CLI parser, its flags are the import
    command's, and its facts are the code's (the folder, the variable).  Its main example
    (``octostore import`` in a clone, then stock MLflow with no settings at the top and with
    the tracking URI from another folder) is what the first test above runs."""
    import re
    import shlex

    from octostored.cli import build_parser
    from octostored.sources.discover import COMMITTED_STORE

    doc = (REPO / "docs" / "import.md").read_text()
    commands = [line.split("#")[0].strip() for line in doc.splitlines()
                if line.startswith("    octostore ")]
    assert len(commands) >= 2
    parser = build_parser()
    for line in commands:
        parser.parse_args(shlex.split(line)[1:])
    heading = re.search(r"`octostore import \[SOURCE\] ([^`]*)`", doc)
    assert heading is not None
    import_parser = parser._subparsers._group_actions[0].choices["import"]  # noqa: SLF001
    flags = {s for a in import_parser._actions for s in a.option_strings}  # noqa: SLF001
    assert set(re.findall(r"--[a-z-]+", heading.group(1))) <= flags
    assert COMMITTED_STORE in doc and "MLFLOW_ALLOW_FILE_STORE=true" in doc
    readme = (REPO / "README.md").read_text()
    assert "docs/import.md" in readme and "octostore import" in readme


def test_the_cli_side_never_imports_mlflow() -> None:
    """The command, its planning and the worker's module itself import no MLflow (nor
    SQLAlchemy, pandas, numpy) until the worker process runs a copy."""
    code = ("import octostored.cli.imports, octostored.importer.where, "
            "octostored.importer.spawn, octostored.importer.copier, octostored.importer.worker"
            "\nimport sys\nprint(','.join(m for m in ('mlflow', 'sqlalchemy', 'pandas', "
            "'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == ""


def test_committed_runs_cannot_point_the_import_outside_the_repo(tmp_path: Path) -> None:
    """The committed runs are a cloned repo's, so untrusted: a run whose recorded artifact
    location names a private folder of the user gets none of its files, and a run whose id
    is made up to climb out of the destination's artifact folder is skipped (MLflow's file
    store fails a whole listing on it: the others still come)."""
    from mlflow import MlflowClient

    top = tmp_path / "proj"
    store = top / ".octostore" / "runs"
    private = tmp_path / "private"
    private.mkdir()
    (private / "secret.txt").write_text("not for the store")
    src = MlflowClient(tracking_uri=str(store))
    exp = src.create_experiment("wine")
    good = src.create_run(exp).info.run_id
    src.log_metric(good, "loss", 0.5, step=1)
    meta = store / exp / good / "meta.yaml"
    text = meta.read_text()
    uri_line = next(x for x in text.splitlines() if x.startswith("artifact_uri:"))
    meta.write_text(text.replace(uri_line, f"artifact_uri: {private.as_uri()}"))
    bad = src.create_run(exp).info.run_id
    bad_meta = store / exp / bad / "meta.yaml"
    bad_meta.write_text(bad_meta.read_text().replace(bad, "..", 2))

    res = imported(top)
    by_id = {r["run_id"]: r for r in res["runs"]}
    assert by_id[good]["action"] == "added"
    assert sorted(by_id) == [good]  # MLflow cannot read the other: skipped, and said so
    assert any(bad in w and "skipped" in w for w in res["warnings"])
    dest = MlflowClient(tracking_uri=f"sqlite:///{top}/mlflow.db")
    assert dest.list_artifacts(good) == []
    assert [m.value for m in dest.get_metric_history(good, "loss")] == [0.5]
    assert not any(p.name == "secret.txt" for p in top.rglob("*"))
