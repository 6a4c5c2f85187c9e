"""Regenerate docs/protocol.md from real requests to a real daemon.

    .venv/bin/python docs/gen_protocol.py

It writes a small MLflow store with real MLflow into a temp repo, starts a
daemon on a private socket, sends one example request per method and records
the reply (long lists are cut to their first items).  The prose for each
method and error code is the contract's (``octostored/rpc/protocol.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

from octostored.client import Client, DaemonUnavailable, RequestError  # noqa: E402
from octostored.rpc import protocol  # noqa: E402

DOC = Path(__file__).resolve().parent / "protocol.md"

INTRO = """# The octostored socket protocol

JSON-RPC 2.0 with LSP base framing (`Content-Length: N\\r\\n\\r\\n` then N bytes of UTF-8 JSON)
on a Unix socket: `$OCTOSTORE_SOCKET`, else `$XDG_RUNTIME_DIR/octostore/octostored.sock`, else
`/tmp/octostore-$UID/octostored.sock` (folder 0700, socket 0600, peer uid checked). Many clients
at once; a client that is not an editor calls `octostore/*` methods without `initialize`. The
same socket speaks LSP (initialize, code lens, hover) to the editor.

Every method that reads a repo takes `root` (a folder; the git work tree containing it is used).
The first request naming a root opens it: its stores are discovered, its snapshot loaded, and
watching starts. Replies that read the index carry the root's `clock`, an opaque string naming
the daemon instance and a tick; pass it back as `since_clock` to get only what changed. A clock
from another daemon instance (a restart) gets `is_fresh_instance: true` and the full set.

Metric values that are not finite travel as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
Non-fatal trouble (a damaged file, a store that could not be read) is a `warnings` list on the
answer, on the run, the experiment or the source it concerns.

Check `protocol_version` from `octostore/status` (now {version}) and refuse a mismatch.

## Errors

Errors are JSON-RPC errors `{{code, message, data}}`. `message` is one sentence that says what
is wrong and what to do; `data.remedy` repeats the advice.

| code | meaning |
|---|---|
{errors}
## Notifications

`octostore/changed` (after `octostore/subscribe`): one per applied batch of changes,
`{{root, clock, runs: [changed run ids], removed: [run ids], experiments: [keys],
environment: bool, git: bool, subscription}}`. Fetch what changed with `octostore/runs` and
`since_clock`.
"""

DESCRIPTIONS = {m.name: m.doc for m in protocol.METHOD_SPECS}
"""Each method's prose: its spec's ``doc`` in the contract (octostored/rpc/protocol.py)."""


ALWAYS_SHOWN = ("logs",)
"""Keys an example keeps even past the first twelve."""


def _cut(value: Any, depth: int = 0) -> Any:
    if isinstance(value, list):
        items = [_cut(v, depth + 1) for v in value[:3]]
        if len(value) > 3:
            items.append(f"... {len(value) - 3} more")
        return items
    if isinstance(value, dict):
        items = list(value.items())
        shown = items[:12] + [(k, v) for k, v in items[12:] if k in ALWAYS_SHOWN]
        out = {k: _cut(v, depth + 1) for k, v in shown}
        if len(items) > len(shown):
            out["..."] = f"{len(items) - len(shown)} more keys"
        return out
    if isinstance(value, str) and len(value) > 200:
        return value[:197] + "..."
    return value


def _store(repo: Path) -> dict[str, str]:
    from mlflow import MlflowClient

    mlf = MlflowClient(tracking_uri=(repo / "mlruns").as_uri())
    exp = mlf.create_experiment("wine-quality")
    ids = []
    for i, (n, depth) in enumerate([(100, 6), (200, 8), (300, 10)]):
        rid = mlf.create_run(exp, run_name=f"rf-{n}").info.run_id
        mlf.log_param(rid, "n_estimators", str(n))
        mlf.log_param(rid, "max_depth", str(depth))
        for step in range(0, n + 1, 50):
            mlf.log_metric(rid, "rmse", 0.8 - i * 0.05 - step / 5000, step=step)
        mlf.log_metric(rid, "r2", 0.3 + i * 0.05)
        mlf.log_text(rid, "epoch 1 loss 0.9\nepoch 2 loss 0.7\n", "train.log")
        mlf.set_terminated(rid)
        ids.append(rid)
    _console_log(repo, mlf, ids[0])
    return {"exp": exp, "a": ids[0], "b": ids[1], "c": ids[2]}


def _console_log(repo: Path, mlf: Any, rid: str) -> None:
    """A console log for run ``rid`` as `octostore run -- python train.py` writes it."""
    from octostored.console.logformat import TAG, index_line

    run = mlf.get_run(rid).info
    logs = repo / ".octostore" / "logs"
    logs.mkdir(parents=True)
    lines = [b"loading wine-quality.csv (1599 rows)\n",
             b"training \x1b[1mrf-100\x1b[0m\n",
             b"  25%|##5       | 25/100\r  100%|##########| 100/100\n",
             b"rmse 0.78  r2 0.30\n"]
    data = b"".join(lines)
    (logs / "20261126T130102Z-4242.log").write_bytes(data)
    (logs / "20261126T130102Z-4242.idx").write_bytes(
        index_line(0, run.start_time, v=1, argv=["python", "train.py"], pid=4242)
        + index_line(len(data), run.end_time + 1000, exit=0))
    mlf.set_tag(rid, TAG, ".octostore/logs/20261126T130102Z-4242.log")


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="oct-doc-", dir="/tmp"))
    repo = base / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "requirements.txt").write_text("scikit-learn==1.5.2\nmlflow==3.17.2\n")
    ids = _store(repo)
    sock = str(base / "d.sock")
    env = dict(os.environ, OCTOSTORE_SOCKET=sock, OCTOSTORE_CACHE_DIR=str(base / "cache"))
    proc = subprocess.Popen([sys.executable, "-m", "octostored.daemon", "--socket", sock], env=env,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                Client(sock, autostart=False).close()
                break
            except DaemonUnavailable:
                time.sleep(0.05)
        r = str(repo)
        examples: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        calls = [
            ("octostore/open", {"root": r}),
            ("octostore/sync", {"root": r}),
            ("octostore/status", {}),
            ("octostore/subscribe", {"root": r}),
            ("octostore/unsubscribe", {"root": r}),
            ("octostore/experiments", {"root": r}),
            ("octostore/runs", {"root": r, "filter": "metrics.rmse < 0.75 and params.max_depth = '8'",
                                "order_by": ["metrics.rmse ASC"], "limit": 10}),
            ("octostore/runs", {"root": r, "filter": "metrics.rmse <"}),
            ("octostore/run", {"root": r, "run_id": ids["a"][:8]}),
            ("octostore/metric_history", {"root": r, "run_ids": [ids["a"]], "keys": ["rmse"],
                                          "x": "step", "max_points": 4}),
            ("octostore/artifacts", {"root": r, "run_id": ids["a"]}),
            ("octostore/artifact", {"root": r, "run_id": ids["a"], "path": "train.log", "offset": 0}),
            ("octostore/artifact", {"root": r, "run_id": ids["a"], "path": "../../../etc/passwd"}),
            ("octostore/log", {"root": r, "run_id": ids["a"][:8], "offset": 0,
                               "max_bytes": 65536}),
            ("octostore/log", {"root": r, "run_id": ids["a"][:8], "grep": r"rmse \d", "max_lines": 100}),
            ("octostore/log", {"root": r, "run_id": ids["b"][:8]}),
            ("octostore/insights", {"root": r, "metric": "rmse"}),
            ("octostore/compare", {"root": r, "run_ids": [ids["a"], ids["b"]]}),
            ("octostore/environment", {"root": r}),
            ("octostore/commit", {"root": r, "dry_run": True}),
            ("octostore/reproduce", {"root": r, "run_id": "0123456789abcdef", "set": ["max_depth=12"]}),
            ("octostore/jobs", {}),
            ("octostore/cancel", {"job": "no-such-job"}),
        ]
        with Client(sock, autostart=False) as c:
            for method, params in calls:
                try:
                    reply: Any = {"result": c.call(method, params)}
                except RequestError as exc:
                    reply = {"error": {"code": exc.code, "message": exc.message, "data": exc.data}}
                examples.setdefault(method, []).append((params, reply))
            examples["octostore/shutdown"] = [({}, {"result": {"stopping": True, "pid": 12345}})]
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)

    errors = "".join(f"| {e.code} | {e.meaning} |\n" for e in protocol.ERRORS)
    text = INTRO.format(version=protocol.PROTOCOL_VERSION, errors=errors)
    text = text.replace(str(base), "/home/ada")
    parts = [text, "\n## Methods\n"]
    for method in protocol.METHODS:
        parts.append(f"\n### `{method}`\n\n{DESCRIPTIONS[method]}\n")
        for params, reply in examples.get(method, []):
            req = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            rep = {"jsonrpc": "2.0", "id": 1, **_cut(reply)}
            body = (f"\nRequest:\n\n```json\n{json.dumps(req, indent=2)}\n```\n\n"
                    f"Reply:\n\n```json\n{json.dumps(rep, indent=2)}\n```\n")
            parts.append(body.replace(str(base), "/home/ada"))
    DOC.write_text("".join(parts))
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
