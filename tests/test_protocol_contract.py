"""The protocol has one contract (octostored/rpc/protocol.py + protocol_types.py), and it holds.

- every ``octostore/*`` handler a real server registers is in the contract, and vice versa;
- every error code has its exception class in rpc/errors.py (still importable where it was);
- the contract is import-free, and clients read their constants from it;
- editors/vscode/src/protocol.ts is what docs/gen_protocol_ts.py makes of it (not stale);
- the replies recorded in docs/protocol.md and the extension's fixtures fit the reply types.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

from octostored.rpc import errors, protocol, protocol_types

from .conftest import REPO


def _gen_ts() -> Any:
    spec = importlib.util.spec_from_file_location("gen_protocol_ts", REPO / "docs" / "gen_protocol_ts.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_protocol_ts_is_generated_from_the_contract() -> None:
    gen = _gen_ts()
    assert gen.OUT.read_text() == gen.render(), (
        "editors/vscode/src/protocol.ts is stale: run .venv/bin/python docs/gen_protocol_ts.py")


async def test_the_handlers_of_a_real_server_are_the_contracts_methods(tmp_path: Path) -> None:
    from octostored.hub import Hub
    from octostored.rpc.handlers import make_server

    hub = Hub(str(tmp_path / "cache"))
    ls = make_server(hub)
    registered = {m for m in ls.protocol.fm.features if m.startswith("octostore/")}
    assert registered == set(protocol.METHODS)
    assert len(protocol.METHODS) == len(set(protocol.METHODS))
    await hub.close()


def test_a_method_outside_the_contract_cannot_register() -> None:
    from octostored.rpc.register import method, rooted

    with pytest.raises(ValueError, match="not in the protocol's contract"):
        method(object(), "octostore/no_such_method")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="takes no root"):
        rooted(object(), object(), "octostore/jobs")  # type: ignore[arg-type]


def test_every_spec_names_real_types_and_says_whether_it_takes_root() -> None:
    for m in protocol.METHOD_SPECS:
        assert m.name.startswith("octostore/") and m.summary and m.doc, m
        params = protocol_types.resolve(m.params)
        protocol_types.resolve(m.reply)
        assert typing.is_typeddict(params), m
        assert ("root" in params.__required_keys__) == m.rooted, m
        assert m.deadline is None or m.deadline == protocol.DEFAULT_DEADLINE or m.deadline > 0
    for n in protocol.NOTIFICATIONS:
        protocol_types.resolve(n.payload)
    assert {n.name for n in protocol.NOTIFICATIONS} == {protocol.NOTIFICATION_CHANGED,
                                                         protocol.NOTIFICATION_JOB}


def test_every_error_code_has_its_class_and_constant() -> None:
    codes = [e.code for e in protocol.ERRORS]
    assert len(codes) == len(set(codes))
    named = {e.exception: e.code for e in protocol.ERRORS if e.exception}
    classes = {name: cls for name, cls in vars(errors).items()
               if isinstance(cls, type) and issubclass(cls, errors.OctostoreError)}
    assert set(named) == set(classes)
    for name, code in named.items():
        assert classes[name].CODE == code, name
    constants = {k: v for k, v in vars(protocol).items()
                 if k.isupper() and isinstance(v, int) and k != "PROTOCOL_VERSION"}
    by_name = {e.name: e.code for e in protocol.ERRORS}
    for k, v in constants.items():
        assert by_name[k] == v, k
    # Every code of the daemon's own (1000s) has its constant.
    assert {e.code for e in protocol.ERRORS if e.code > 0} <= set(constants.values())


def test_error_classes_stay_importable_where_they_were() -> None:
    from octostored.rpc.handlers import commit, logs, reproduce

    assert commit.CommitRefused is errors.CommitRefused
    assert commit.GitFailed is errors.GitFailed
    assert reproduce.JobNotFound is errors.JobNotFound
    assert reproduce.CannotReproduce is errors.CannotReproduce
    assert logs.LogNotFound is errors.LogNotFound


def test_the_contract_is_import_free() -> None:
    for name in ("protocol.py", "protocol_types.py"):
        tree = ast.parse((REPO / "octostored" / "rpc" / name).read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add("." * node.level + (node.module or ""))
        assert imported <= {"typing"}, (name, imported)
    out = subprocess.run(
        [sys.executable, "-c", "import sys, octostored.rpc.protocol, octostore_tui.daemon_link;"
         "print(sorted(m for m in sys.modules if m.startswith('octostored')))"],
        capture_output=True, text=True, check=True, cwd=REPO).stdout
    loaded = set(json.loads(out.replace("'", '"')))
    assert loaded <= {"octostored", "octostored.rpc", "octostored.rpc.protocol", "octostored.client",
                      "octostored.paths"}, loaded


def test_clients_read_their_constants_from_the_contract() -> None:
    from octostore_tui import daemon_link

    from octostored import client

    assert client.PROTOCOL_VERSION == protocol.PROTOCOL_VERSION
    assert daemon_link.ROOT_NOT_FOUND == protocol.ROOT_NOT_FOUND
    assert daemon_link.BAD_FILTER == protocol.BAD_FILTER
    assert daemon_link._TITLES is protocol.ERROR_TITLES
    assert set(protocol.ERROR_TITLES) == {-32602, *range(1001, 1009)}


# -- recorded replies fit the reply types -------------------------------------------------------
def _fits(value: Any, t: Any, path: str) -> list[str]:
    """Where ``value`` (a reply as recorded, maybe cut by docs/gen_protocol.py) breaks type ``t``."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Annotated:
        return _fits(value, args[0], path)
    if origin in (typing.Union, __import__("types").UnionType):
        fails = [_fits(value, a, path) for a in args]
        if any(not f for f in fails):
            return []
        # Say why the value broke the one of its kind (an object: the TypedDict's reasons).
        kind = [f for a, f in zip(args, fails) if isinstance(value, dict) == (
            isinstance(a, type) and typing.is_typeddict(a))]
        return min(kind or fails, key=len)
    if t is Any or isinstance(value, str) and value.startswith("... "):
        return []
    if isinstance(t, type) and typing.is_typeddict(t):
        if not isinstance(value, dict):
            return [f"{path} is not an object"]
        hints = t.__annotations__
        cut = "..." in value
        out = [f"{path}.{k} is not in {t.__name__}" for k in value if k not in hints and k != "..."]
        if not cut:
            out += [f"{path}.{k} ({t.__name__}) is missing" for k in t.__required_keys__
                    if k not in value]
        for k, v in value.items():
            if k in hints:
                out += _fits(v, hints[k], f"{path}.{k}")
        return out
    if origin in (typing.NotRequired, typing.Required):
        return _fits(value, args[0], path)
    if origin is list:
        return [] if isinstance(value, list) and not value else (
            [f"{path} is not a list"] if not isinstance(value, list)
            else [e for v in value for e in _fits(v, args[0], f"{path}[]")][:5])
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path} is not an object"]
        return [e for v in value.values() for e in _fits(v, args[1], f"{path}{{}}")][:5]
    if origin is tuple:
        return [] if isinstance(value, list) else [f"{path} is not a list"]
    if origin is typing.Literal:
        return [] if value in args else [f"{path} = {value!r} is not one of {args}"]
    want = {str: str, int: (int, float), float: (int, float), bool: bool, type(None): type(None),
            None: type(None)}.get(t)
    if want is None:
        return [f"{path}: cannot check {t!r}"]
    if isinstance(value, bool) and t in (int, float):
        return [f"{path} is a boolean"]
    return [] if isinstance(value, want) else [f"{path} = {str(value)[:40]!r} is not {t.__name__}"]


def _doc_replies() -> list[tuple[str, Any]]:
    doc = (REPO / "docs" / "protocol.md").read_text()
    out = []
    for section in doc.split("\n### `")[1:]:
        method = section.split("`", 1)[0]
        for block in re.findall(r"Reply:\n\n```json\n(.*?)\n```", section, re.S):
            reply = json.loads(block)
            if "result" in reply:
                out.append((method, reply["result"]))
    return out


@pytest.mark.parametrize("method,result", _doc_replies(), ids=lambda v: v if isinstance(v, str) else "")
def test_the_replies_in_protocol_md_fit_their_types(method: str, result: Any) -> None:
    t = protocol_types.resolve(protocol.SPECS[method].reply)
    assert not _fits(result, t, method)


def test_the_extensions_recorded_replies_fit_their_types() -> None:
    fixtures = json.loads((REPO / "editors" / "vscode" / "src" / "test" / "unit" / "fixtures"
                           / "replies.json").read_text())
    for name, reply in fixtures.items():
        t = protocol_types.resolve(protocol.SPECS[f"octostore/{name}"].reply)
        assert not _fits(reply, t, name)


def test_a_real_daemons_full_replies_and_notifications_fit_their_types(daemon: Any,
                                                                        short_tmp: Path) -> None:
    """Whole replies (docs/protocol.md cuts them): every read method, a commit's plan and the
    commit itself with its progress, and the change notifications that follow."""
    from mlflow import MlflowClient

    from .conftest import make_repo

    repo = make_repo(short_tmp / "repo")
    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = mlf.create_experiment("wine")
    ids = []
    for i in range(2):
        rid = mlf.create_run(exp, run_name=f"rf-{i}").info.run_id
        mlf.log_param(rid, "alpha", str(0.1 * (i + 1)))
        for step in range(3):
            mlf.log_metric(rid, "rmse", 0.8 - i * 0.1 - step / 100, step=step)
        mlf.log_text(rid, "epoch 1\n", "train.log")
        mlf.set_terminated(rid)
        ids.append(rid)
    (repo / "requirements.txt").write_text("scikit-learn==1.5.2\n")
    r = str(repo)
    calls = [
        ("octostore/open", {"root": r}), ("octostore/sync", {"root": r}), ("octostore/status", {}),
        ("octostore/subscribe", {"root": r}), ("octostore/experiments", {"root": r}),
        ("octostore/runs", {"root": r}), ("octostore/runs", {"root": r, "columns": ["metrics.rmse"]}),
        ("octostore/run", {"root": r, "run_id": ids[0]}),
        ("octostore/metric_history", {"root": r, "run_ids": ids, "keys": ["rmse"], "x": "relative"}),
        ("octostore/artifacts", {"root": r, "run_id": ids[0]}),
        ("octostore/artifact", {"root": r, "run_id": ids[0], "path": "train.log"}),
        ("octostore/insights", {"root": r, "metric": "rmse"}),
        ("octostore/compare", {"root": r, "run_ids": ids}),
        ("octostore/environment", {"root": r}),
        ("octostore/commit", {"root": r, "dry_run": True}),
        ("octostore/commit", {"root": r, "message": "two runs"}),
        ("octostore/sync", {"root": r}),
        ("octostore/jobs", {"root": r}),
        ("octostore/unsubscribe", {"root": r}),
    ]
    with daemon.client() as c:
        for method, params in calls:
            t = protocol_types.resolve(protocol.SPECS[method].reply)
            result = c.call(method, params)
            assert not _fits(result, t, method), result
        notes = list(c.notifications)
    kinds = {n["method"] for n in notes}
    assert kinds == {protocol.NOTIFICATION_CHANGED, protocol.NOTIFICATION_JOB}, kinds
    for n in notes:
        spec = next(x for x in protocol.NOTIFICATIONS if x.name == n["method"])
        assert not _fits(n["params"], protocol_types.resolve(spec.payload), n["method"])


@pytest.mark.e2e
def test_a_reproductions_replies_and_notifications_fit_their_types(short_tmp: Path) -> None:
    """The job side of the protocol, whole: CONFIRMATION_REQUIRED's command, a dry run's plan,
    the job started, its notifications to the end, ``wait``, jobs and cancel."""
    from octostored.client import RequestError

    from .conftest import DaemonProc
    from .test_reproduce_support import make_project, train, train_env

    python = train_env()
    repo = make_project(short_tmp / "repo")
    train(repo, python, "--seed", "1")
    d = DaemonProc(short_tmp).start()
    try:
        with d.client(timeout=120) as c:
            r = str(repo)
            run_id = c.call("octostore/runs", root=r)["runs"][0]["run_id"]
            ask = {"root": r, "run_id": run_id, "env": "current", "python": str(python)}
            with pytest.raises(RequestError) as err:
                c.call("octostore/reproduce", ask)
            assert err.value.code == protocol.CONFIRMATION_REQUIRED
            assert not _fits(err.value.data["command"], protocol_types.CommandDisplay, "command")
            reply = protocol_types.resolve(protocol.SPECS["octostore/reproduce"].reply)
            plan = c.call("octostore/reproduce", {**ask, "dry_run": True})
            assert not _fits(plan, protocol_types.ReproducePlan, "plan")
            started = c.call("octostore/reproduce", {**ask, "confirmed": True})
            assert not _fits(started, protocol_types.ReproduceStarted, "started")
            events = []
            while not events or events[-1]["event"] != "finished":
                note = c.wait_notification(protocol.NOTIFICATION_JOB, timeout=120)["params"]
                if note["job"] == started["job"]:
                    events.append(note)
            for e in events:
                assert not _fits(e, protocol_types.JobNotification, f"job/{e['event']}"), e
            assert events[-1]["result"]["verdict"] == "reproduced", events[-1]
            waited = c.call("octostore/reproduce", {**ask, "confirmed": True, "wait": True})
            assert not _fits(waited, protocol_types.JobInfo, "waited") and not _fits(
                waited, reply, "waited")
            for method, params in (("octostore/jobs", {"root": r}),
                                   ("octostore/cancel", {"job": started["job"]})):
                t = protocol_types.resolve(protocol.SPECS[method].reply)
                result = c.call(method, params)
                assert not _fits(result, t, method), result
    finally:
        d.stop()
