"""The daemon as a language server: MLflow calls found in source, runs attributed to files,
code lenses / hovers / inlay hints over the real socket (a raw LSP client, as an editor is).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from octostored.lsp.calls import find_calls

from .conftest import DaemonProc, make_repo, wait_for

# -- the parser ------------------------------------------------------------------------------------

TRAIN = '''\
import mlflow
from mlflow import log_param as lp
from mlflow.tracking import MlflowClient


def main(alpha):
    mlflow.sklearn.autolog()
    with mlflow.start_run():
        lp("alpha", alpha)
        mlflow.log_params({"l1_ratio": 0.5, "model": "enet"})
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        metrics = {"rmse": 0.7, "r2": 0.3}
        metrics["mae"] = 0.5
        mlflow.log_metrics(metrics)
        mlflow.log_metric(f"val_{'x'}", 1.0)
        client = MlflowClient()
        client.log_metric("run-id", "acc", 0.9)
'''


def test_finds_every_kind_of_call() -> None:
    fc = find_calls(TRAIN)
    assert fc.error is None
    got = [(c.kind, c.func, [k.name for k in c.keys], c.dynamic) for c in fc.calls]
    assert got == [
        ("autolog", "sklearn.autolog", [], True),
        ("param", "log_param", ["alpha"], False),
        ("param", "log_params", ["l1_ratio", "model"], False),
        ("metric", "log_metric", ["loss"], False),
        ("metric", "log_metrics", ["rmse", "r2", "mae"], False),
        ("metric", "log_metric", [None], False),
        ("metric", "log_metric", ["acc"], False),
    ]
    # final values before curves, then source order
    assert fc.metric_keys() == ["rmse", "r2", "mae", "acc", "loss"]
    loss = fc.calls[3]
    assert loss.stepped and (loss.span.line, loss.span.col) == (11, 12)
    assert (loss.keys[0].span.line, loss.keys[0].span.col, loss.keys[0].span.end_col) == (11, 30, 36)
    pattern = fc.calls[5].keys[0]
    assert pattern.matches("val_rmse") and not pattern.matches("rmse")


def test_ignores_other_libraries_and_bad_source() -> None:
    other = "from tracker import log_metric\nlog_metric('rmse', 1)\nimport wandb\nwandb.log_metric('x', 1)\n"
    assert find_calls(other).calls == []
    assert find_calls("x = 1\n").calls == []
    broken = find_calls("import mlflow\nmlflow.log_metric('rmse', \n")
    assert broken.calls == [] and broken.error is not None


def test_aliases_and_utf16_columns() -> None:
    src = "import mlflow as mf\nσ = 1; mf.log_metric('rmse', σ)\nfrom mlflow import sklearn as sk\nsk.autolog()\n"
    fc = find_calls(src)
    assert [(c.func, c.span.col) for c in fc.calls] == [("log_metric", 7), ("sklearn.autolog", 0)]
    assert fc.calls[0].keys[0].span.col == 21  # UTF-16 units, not UTF-8 bytes


# -- a raw LSP client ---------------------------------------------------------------------------------

class LspClient:
    """Just enough of an editor: framed JSON-RPC over the Unix socket, server requests answered."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(30)
        self.buf = b""
        self.next_id = 0
        self.server_requests: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []

    def send(self, msg: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **msg}).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def _read(self) -> dict[str, Any]:
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            self.buf += chunk
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            rest += chunk
        self.buf = rest[length:]
        return json.loads(rest[:length])

    def pump(self, until_id: int | None = None, timeout: float = 30.0) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                msg = self._read()
            except TimeoutError:
                return None
            if "method" in msg and "id" in msg:
                self.server_requests.append(msg)
                self.send({"id": msg["id"], "result": None})
            elif "method" in msg:
                self.notifications.append(msg)
            elif until_id is not None and msg.get("id") == until_id:
                return msg
        return None

    def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        msg = self.pump(self.next_id)
        assert msg is not None, f"no reply to {method}"
        assert "error" not in msg, msg["error"]
        return msg["result"]

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def initialize(self, folders: list[Path], **init_options: Any) -> dict[str, Any]:
        res = self.request("initialize", {
            "processId": os.getpid(),
            "rootUri": folders[0].as_uri() if folders else None,
            "workspaceFolders": [{"uri": f.as_uri(), "name": f.name} for f in folders],
            "initializationOptions": init_options,
            "capabilities": {"workspace": {"codeLens": {"refreshSupport": True},
                                           "inlayHint": {"refreshSupport": True}},
                             "textDocument": {"hover": {"contentFormat": ["markdown"]}}},
        })
        self.notify("initialized", {})
        return res

    def open(self, path: Path, text: str | None = None) -> str:
        uri = path.as_uri()
        self.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1,
            "text": path.read_text() if text is None else text}})
        return uri

    def lenses(self, uri: str) -> list[dict[str, Any]]:
        return self.request("textDocument/codeLens", {"textDocument": {"uri": uri}}) or []

    def hover(self, uri: str, line: int, character: int) -> dict[str, Any] | None:
        return self.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                   "position": {"line": line, "character": character}})

    def close(self) -> None:
        try:
            self.request("shutdown", None)
            self.notify("exit", None)
        finally:
            self.sock.close()


# -- a repo with runs of two scripts --------------------------------------------------------------------

SCRIPT = '''\
import mlflow

with mlflow.start_run():
    mlflow.log_params({"alpha": 0.1, "l1_ratio": 0.5})
    mlflow.log_metric("rmse", 0.7)
    mlflow.log_metrics({"mae": 0.5, "r2": 0.3})
    mlflow.autolog()
'''


def _line_of(text: str, needle: str) -> tuple[int, int]:
    for i, line in enumerate(text.splitlines()):
        if needle in line:
            return i, line.index(needle)
    raise AssertionError(needle)


@pytest.fixture
def repo(short_tmp: Path) -> Path:
    from mlflow import MlflowClient

    repo = make_repo(short_tmp / "repo")
    (repo / "train.py").write_text(SCRIPT)
    (repo / "src").mkdir()
    (repo / "src" / "other.py").write_text(SCRIPT)
    (repo / "unrelated.py").write_text(SCRIPT)
    client = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = client.create_experiment("wine")
    t0 = int(time.time() * 1000) - 3_600_000
    for i, (alpha, rmse) in enumerate([(0.1, 0.71), (0.3, 0.64), (0.1, 0.69), (0.5, 0.66)]):
        # i=3 ran on a colleague's machine: an absolute path from elsewhere, mapped by its tail
        source = "train.py" if i < 3 else "/home/bob/work/repo/train.py"
        run = client.create_run(exp, run_name=f"run-{i}", start_time=t0 + i * 60_000,
                                tags={"mlflow.source.name": source, "mlflow.source.type": "LOCAL"})
        rid = run.info.run_id
        client.log_param(rid, "alpha", str(alpha))
        client.log_metric(rid, "rmse", rmse)
        client.log_metric(rid, "mae", rmse - 0.2)
        if i == 3:
            client.log_text(rid, "epoch 1\n", "logs/train.log")
        client.set_terminated(rid, "FINISHED")
    # a run of src/other.py, started from the repo's top folder
    run = client.create_run(exp, run_name="other-run", start_time=t0,
                            tags={"mlflow.source.name": "src/other.py"})
    client.log_metric(run.info.run_id, "rmse", 0.9)
    client.set_terminated(run.info.run_id, "FINISHED")
    return repo


def _titles(lenses: list[dict[str, Any]]) -> list[str]:
    return [lens["command"]["title"] for lens in lenses]


def test_lenses_hover_and_hints_over_the_socket(daemon: DaemonProc, repo: Path) -> None:
    c = LspClient(daemon.socket)
    try:
        init = c.initialize([repo], keyMetric="rmse")
        caps = init["capabilities"]
        assert caps["codeLensProvider"] is not None and caps["hoverProvider"]
        assert caps["inlayHintProvider"] is not None
        uri = c.open(repo / "train.py")
        lenses = wait_for(lambda: c.lenses(uri), timeout=20, what="code lenses on train.py")
        titles = _titles(lenses)
        rmse_line, _ = _line_of(SCRIPT, 'log_metric("rmse"')
        at_rmse = [lens for lens in lenses if lens["range"]["start"]["line"] == rmse_line]
        assert [lens["command"]["title"] for lens in at_rmse] == [
            "rmse 0.66 · latest (run-3)", "best 0.64 (run-1) of 4 runs"]
        assert at_rmse[0]["command"]["command"] == "octostore.showRun"
        arg = at_rmse[0]["command"]["arguments"][0]
        assert arg["root"] == os.path.realpath(repo) and len(arg["run_id"]) == 32
        # r2 was never logged: log_metrics({"mae", "r2"}) shows mae alone
        assert "mae 0.46 · latest (run-3)" in titles and "best 0.44 (run-1) of 4 runs" in titles
        assert any(t.startswith("autolog: 4 runs from this file") for t in titles)

        # hover on a param key: the values the runs used and what they scored
        line, col = _line_of(SCRIPT, '"alpha"')
        h = c.hover(uri, line, col + 2)
        md = h["contents"]["value"]
        assert "**alpha**: 4 runs of `train.py`" in md
        assert "| `0.3` | 1 | 0.64 | 0.64 |" in md and "| `0.1` | 2 | 0.69 | 0.7 |" in md
        assert "Lower rmse is better." in md
        # hover on a metric key
        line, col = _line_of(SCRIPT, '"rmse"')
        assert "latest **0.66** (run-3" in c.hover(uri, line, col + 1)["contents"]["value"]
        # nothing to hover on a plain line
        assert c.hover(uri, 0, 0) is None

        hints = c.request("textDocument/inlayHint", {"textDocument": {"uri": uri}, "range": {
            "start": {"line": 0, "character": 0}, "end": {"line": 99, "character": 0}}})
        assert {h["label"] for h in hints} == {"= 0.66", "= 0.46"}

        # a file whose runs are its own; a file no run came from stays quiet
        other = c.open(repo / "src" / "other.py")
        other_titles = _titles(wait_for(lambda: c.lenses(other), timeout=10, what="other.py lenses"))
        assert "rmse 0.9 · latest (other-run)" in other_titles
        quiet = c.open(repo / "unrelated.py")
        assert c.lenses(quiet) == []
        assert c.hover(quiet, *_line_of(SCRIPT, '"alpha"')) is None

        # unsaved edits count: the lens follows the call to its new line
        edited = "\n\n" + SCRIPT
        c.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                            "contentChanges": [{"text": edited}]})
        moved = [lens for lens in c.lenses(uri) if lens["command"]["title"].startswith("rmse ")]
        assert moved[0]["range"]["start"]["line"] == rmse_line + 2
    finally:
        c.close()


def test_new_runs_refresh_the_lenses(daemon: DaemonProc, repo: Path) -> None:
    from mlflow import MlflowClient

    c = LspClient(daemon.socket)
    try:
        c.initialize([repo])
        uri = c.open(repo / "train.py")
        wait_for(lambda: c.lenses(uri), timeout=20, what="first lenses")
        c.server_requests.clear()
        client = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
        exp = client.get_experiment_by_name("wine").experiment_id
        run = client.create_run(exp, run_name="fresh", tags={"mlflow.source.name": "train.py"})
        client.log_metric(run.info.run_id, "rmse", 0.5)

        def refreshed() -> bool:
            c.pump(timeout=0.3)
            return any(r["method"] == "workspace/codeLens/refresh" for r in c.server_requests)

        wait_for(refreshed, timeout=15, what="workspace/codeLens/refresh")
        assert any(r["method"] == "workspace/inlayHint/refresh" for r in c.server_requests)
        titles = _titles(c.lenses(uri))
        assert "rmse 0.5 · latest (fresh, running)" in titles
        assert "best 0.5 (fresh) of 5 runs" in titles
    finally:
        c.close()


def test_multi_root_and_the_daemon_survives_exit(daemon: DaemonProc, repo: Path, short_tmp: Path) -> None:
    from mlflow import MlflowClient

    second = make_repo(short_tmp / "second")
    (second / "fit.py").write_text(SCRIPT)
    client = MlflowClient(tracking_uri=f"sqlite:///{second / 'mlflow.db'}")
    exp = client.create_experiment("two")
    run = client.create_run(exp, run_name="sqlite-run", tags={"mlflow.source.name": "fit.py"})
    client.log_metric(run.info.run_id, "rmse", 0.42)
    client.set_terminated(run.info.run_id, "FINISHED")

    c = LspClient(daemon.socket)
    c.initialize([repo, second])
    a = c.open(repo / "train.py")
    b = c.open(second / "fit.py")
    assert "rmse 0.42 · latest (sqlite-run)" in _titles(
        wait_for(lambda: c.lenses(b), timeout=20, what="lenses in the second root"))
    assert "rmse 0.66 · latest (run-3)" in _titles(c.lenses(a))
    c.close()  # shutdown + exit close this connection only
    with daemon.client() as other:
        roots = {r["root"] for r in other.call("octostore/status")["roots"]}
        assert {os.path.realpath(repo), os.path.realpath(second)} <= roots


# -- lens titles from index records (no daemon) ----------------------------------------------------

def _run(name: str, start: int, status: str = "FINISHED", **metrics: float):
    from octostored.model import Run

    return Run(run_id=name.ljust(32, "0"), experiment_id="1", run_name=name, status=status,
               start_time=start, metrics={k: (v, start, 0) for k, v in metrics.items()})


def test_lens_titles_for_several_keys() -> None:
    from octostored.lsp.features import code_lenses, fmt, inlay_hints

    src = ("import mlflow\nmlflow.log_metrics({'rmse': 1, 'r2': 2, 'acc': 3, 'f1': 4, 'auc': 5})\n"
           "mlflow.log_metric(f'val_{k}', 1)\n")
    fc = find_calls(src)
    newest_first = [
        _run("new", 3, status="RUNNING", rmse=0.7, r2=0.2, acc=0.9, f1=0.5, auc=0.8, val_loss=1.5),
        _run("mid", 2, rmse=0.5, r2=0.6, acc=0.95, f1=0.7, auc=0.85, val_loss=1.1),
        _run("old", 1, rmse=0.6, r2=0.1, acc=0.8, f1=0.8, auc=0.9),
    ]
    titles = [lens.command.title for lens in code_lenses("/r", fc, newest_first)]
    assert titles == [
        "latest (new, running): rmse 0.7 · r2 0.2 · acc 0.9 · f1 0.5 · +1 more",
        "best of 3 runs: rmse 0.5 (mid) · r2 0.6 (mid) · acc 0.95 (mid) · f1 0.8 (old)",
        "val_loss 1.5 · latest (new, running)",  # the f-string key matched val_loss
        "best 1.1 (mid) of 2 runs",
    ]
    one_best = [_run("a", 2, rmse=0.5, r2=0.9), _run("b", 1, rmse=0.6, r2=0.8)]
    fc2 = find_calls("import mlflow\nmlflow.log_metrics({'rmse': 1, 'r2': 2})\n")
    assert code_lenses("/r", fc2, one_best)[1].command.title == "best of 2 runs: a (rmse 0.5 · r2 0.9)"
    assert code_lenses("/r", fc2, []) == []
    assert [h.label for h in inlay_hints(fc2, one_best)] == ["= 0.5", "= 0.9"]
    assert [fmt(v) for v in (float("nan"), float("inf"), 3.0, 0.000123, 123456.7, 123456.0)] == [
        "NaN", "∞", "3", "1.230e-04", "1.235e+05", "123456"]


# -- the extension's view of the protocol stays true ------------------------------------------------

FIXTURES = Path(__file__).resolve().parent.parent / "editors" / "vscode" / "src" / "test" / "unit" / "fixtures" / "replies.json"
MAPS = {"params", "metrics", "tags", "by_status", "set", "timings"}


def _shape(value: Any, key: str = "") -> Any:
    """The structure of a reply: keys and JSON types; maps with data keys collapse to one entry."""
    if isinstance(value, dict):
        if key in MAPS:
            return {"<key>": _shape(next(iter(value.values())), "") if value else "any"}
        return {k: _shape(v, k) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(value[0], key)] if value else []
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


def _missing(want: Any, got: Any, path: str = "") -> list[str]:
    """Paths the extension relies on (in ``want``) that the daemon no longer answers with."""
    if want in ("null", "any") or got in ("null", "any"):
        return []
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path or '<reply>'} is no longer an object"]
        out = []
        for k, v in want.items():
            if k == "<key>":
                sub = next(iter(got.values()), "any")
                out += _missing(v, sub, f"{path}.<key>")
            elif k not in got:
                out.append(f"{path}.{k} is gone")
            else:
                out += _missing(v, got[k], f"{path}.{k}")
        return out
    if isinstance(want, list):
        if not isinstance(got, list):
            return [f"{path} is no longer a list"]
        return _missing(want[0], got[0], f"{path}[]") if want and got else []
    return [] if want == got else [f"{path} was {want}, now {got}"]


def test_the_extensions_recorded_replies_are_fresh(daemon: DaemonProc, repo: Path) -> None:
    """editors/vscode/src/test/unit/fixtures/replies.json is what the extension's protocol.ts is
    type-checked against; a daemon reply that lost a field the extension reads fails here.
    Re-record with OCTOSTORE_RECORD_FIXTURES=1 (then `npm test` in editors/vscode re-checks)."""
    with daemon.client() as c:
        root = str(repo)
        run_id = c.call("octostore/runs", root=root, order_by=["attributes.start_time DESC"])["runs"][0]["run_id"]
        replies = {
            "status": c.call("octostore/status"),
            "open": c.call("octostore/open", root=root),
            "experiments": c.call("octostore/experiments", root=root),
            "runs": c.call("octostore/runs", root=root, limit=2),
            "run": c.call("octostore/run", root=root, run_id=run_id),
            "metric_history": c.call("octostore/metric_history", root=root, run_ids=[run_id], keys=["rmse"]),
            "artifacts": c.call("octostore/artifacts", root=root, run_id=run_id),
            "insights": c.call("octostore/insights", root=root),
        }
    if os.environ.get("OCTOSTORE_RECORD_FIXTURES"):
        FIXTURES.parent.mkdir(parents=True, exist_ok=True)
        FIXTURES.write_text(json.dumps(replies, indent=1, sort_keys=True) + "\n")
    recorded = json.loads(FIXTURES.read_text())
    gone = [p for name in recorded for p in _missing(_shape(recorded[name]), _shape(replies[name]), name)]
    assert not gone, ("the daemon's replies changed under the VS Code extension: " + "; ".join(gone)
                      + ". Update the contract (octostored/rpc/protocol_types.py), regenerate "
                      "editors/vscode/src/protocol.ts (docs/gen_protocol_ts.py), then re-record with "
                      "OCTOSTORE_RECORD_FIXTURES=1 pytest tests/test_lsp.py -k fresh")
