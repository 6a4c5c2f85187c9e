"""Regenerate docs/protocol.md from real requests to a real daemon.

    .venv/bin/python docs/gen_protocol.py

It writes a small MLflow store with real MLflow into a temp repo, starts a
daemon on a private socket, sends one example request per method and records
the reply (long lists are cut to their first items).  The prose for each
method lives here, next to the examples it explains.
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
| -32700 | the body is not JSON |
| -32600 | not a JSON-RPC 2.0 request object (batches are not supported) |
| -32601 | unknown method |
| -32602 | a parameter has the wrong type or value (an explicit `null` means not given) |
| -32603 | a bug in the daemon (please report it, with `octostore daemon logs`) |
| {ROOT_NOT_FOUND} | `root` is missing, does not exist or is a file |
| {BAD_FILTER} | the filter or order_by is not valid MLflow search syntax |
| {RUN_NOT_FOUND} | no such run (ids and unique prefixes of 6+ characters are accepted) |
| {EXPERIMENT_NOT_FOUND} | no such experiment (by key, id or name) |
| {ARTIFACT_NOT_FOUND} | no such artifact, or the run's artifacts are not on this machine |
| {PATH_OUTSIDE} | an artifact path leaves the run's artifact folder |
| {NOT_SUPPORTED} | the request is valid but cannot be done here (the message says why) |
| {LOG_NOT_FOUND} | the run has no console log (or it is not on this machine, or no log has that name) |
| {REQUEST_TOO_LARGE} | a filter, pattern, list or body is over its cap (the message gives it): filter 16 KiB or 200 conditions, order_by 100 items or 4 KiB, a list param 10,000 items, compare 100 runs, a grep pattern 4,000 characters, a body 16 MiB, 64 MiB of large bodies arriving at once |
| {REPLY_TOO_LARGE} | the reply would be over 32 MiB (or metric_history over 1,000,000 points): page with `limit` and `offset`, or ask for fewer series |
| {TOO_MANY_ROOTS} | this connection already named 32 distinct roots |
| {DEADLINE_EXCEEDED} | the request ran past its deadline (120 s by default, `OCTOSTORE_REQUEST_DEADLINE`; sync 300 s; a log search 30 s) and was stopped |
| {COMMIT_REFUSED} | the repo cannot take a commit now (not a repo, a merge in progress, another commit) |
| {GIT_FAILED} | a git command failed; the repo was left as it was |
| {HOOK_REFUSED} | the repo's pre-commit hook refused the commit (`no_verify` skips it) |
| {JOB_NOT_FOUND} | no job with that id |
| {CANNOT_REPRODUCE} | the run cannot be reproduced as asked (the message says why) |
| {CONFIRMATION_REQUIRED} | the run's recorded command must be shown to the user and confirmed: `data.command` holds it; resend with `confirmed: true` |

## Notifications

`octostore/changed` (after `octostore/subscribe`): one per applied batch of changes,
`{{root, clock, runs: [changed run ids], removed: [run ids], experiments: [keys],
environment: bool, git: bool, subscription}}`. Fetch what changed with `octostore/runs` and
`since_clock`.
"""

DESCRIPTIONS = {
    "octostore/status": "Protocol version and capabilities (`cmd-<method>`), daemon version, pid, uptime, clients, and each open root with its run counts, clock, indexing state and sources. A source's `state` may be `untrusted` (a tracking server the repo names that the user has not trusted: no request is sent to it, no runs; its `warning` says how to trust it with `octostore remote trust URI`), and its `watching` is `polling`, with a warning, when more than 16 roots are watched by processes.",
    "octostore/sync": "Answers once every change on disk made before the call is in the index. Tests and scripts wait on this, never on sleeps.",
    "octostore/open": "Opens a root (or returns it if open): its sources with their kind, run counts and warnings, counts, clock and state. It answers once every run is in the index: `state` is `verifying` while the watch is being set up and the store re-checked for changes made during the first read (or since the snapshot), `ready` after that, `failed` if the first read failed; `octostore/sync` waits for `ready`. `warnings` may name a root file that was skipped (e.g. `.env` is not a regular file (a FIFO); octostore skipped it). `search` says how deep stores were looked for: `{depth, git, limited}`; `limited` is true for a root that is not a git work tree and has no MLflow store at its top (say `/tmp`), searched only `search_depth_outside_git` folders deep (the user's `config.toml`, default 1) so other people's folders stay unread. One connection may name 32 distinct roots (1011). Answers 1012 past its deadline (120 s, `OCTOSTORE_REQUEST_DEADLINE`).",
    "octostore/subscribe": "Sends `octostore/changed` notifications for this root on this connection until it closes. `since` (a clock) tells whether that clock is still valid (`is_fresh_instance`).",
    "octostore/unsubscribe": "Stops this connection's notifications for a root.",
    "octostore/experiments": "Experiments with run counts and last activity. `view`: active (default), deleted, all. `key` is unique in the root (`<id>@<store>` when two stores reuse an id).",
    "octostore/runs": "Search runs with MLflow's semantics: `filter` (MLflow search syntax), `order_by` (list), `experiment_ids` (keys, ids or names), `view` (active|deleted|all), `columns` (e.g. `[\"params.alpha\", \"metrics.rmse\"]` to trim params/metrics/tags), `offset`, `limit` (default 1000, max 10000), `since_clock`. Metrics are the latest values. A filter over 16 KiB or 200 conditions, or an `order_by` over 100 items or 4 KiB, is 1009 before anything parses it; a page also ends after 24 MiB of rows (follow `next_offset`). A run of a SQLite store that can no longer be read carries the warning 'the store <id> could not be read (<reason>); these runs are its last known state' until the store reads again.",
    "octostore/run": "One run in full: metrics with step and timestamp, params, tags, datasets, sources, committed flag, git and environment tags, reproductions both ways, and `logs`: the run's console logs (`name`, `kind` console|artifact, root-relative `path`, `size` of the run's part in bytes, `live` while the writer still writes, `part` run|whole). `committed` is true when the run's folder is in HEAD's tree. `git.commit` falls back to the capture's `octostore.git.commit` (MLflow records none for notebook runs); `environment` also holds `notebook`, `inputs` and `big_changes` when the capture recorded them.",
    "octostore/metric_history": "Series for `run_ids` x `keys`; `x`: step (default), time (epoch ms) or relative (seconds since the run started); downsampled to `max_points` keeping each bucket's extremes and the last point. `points` is the full count. A reply over 1,000,000 points (after downsampling) is 1010.",
    "octostore/artifacts": "A run's artifact files (path relative to the run's artifact folder, size). `path` lists a subfolder.",
    "octostore/artifact": "Reads one text artifact: `path`, `offset`, `max_bytes` (default 256 KiB, max 1 MiB). Follow a growing log by passing `next_offset` back. Never leaves the artifact folder.",
    "octostore/log": "Reads a run's console log: `name` (default: the first of the run's `logs`), `offset` and `max_bytes` (default 256 KiB, max 1 MiB) in bytes of the run's part, or `tail` (the last N bytes; overrides offset). `data` never splits a UTF-8 character (`offset` may move forward to the next one; `next_offset` counts the bytes consumed); ANSI colours and carriage returns are kept as written. While `live` is true, poll from `next_offset` every 0.5-1 s. With `grep` (a regular expression in RE2 syntax) and `max_lines` (default 1000) the reply is instead the matching lines `[line number in the part, text]` and `truncated`. A bad regex is -32602; no log is 1008; a log tag that leaves the repo is 1006. `grep` takes RE2 syntax (Python's without backreferences and lookaround; linear whatever the pattern); a pattern over 4,000 characters is 1009; matches stop at 4 MiB of text (`truncated`); a search over 30 s is 1012.",
    "octostore/insights": "Highlights of the active runs: counts by status and day, the best runs of each key metric (lower is better for loss/error/rmse-like names; `lower_is_better` overrides it for `metric`), the distribution of `metric`, and the params that move it most.",
    "octostore/compare": "Two or more `run_ids` side by side: params (with `differs`), metrics (with the best run), environment hashes and git commits. `run_ids` are deduplicated; more than 100 is 1009.",
    "octostore/environment": "The root's environment files (requirements, pyproject, uv.lock, conda, MLproject...), parsed. A file's `warnings` say when it was skipped (not a regular file, or over the 4 MiB cap). Pipfile records also carry `indexes` and `options`.",
    "octostore/commit": "Commits runs to git in one commit that holds exactly them (MLflow's file-store layout under `.octostore/runs/`, with their environment locks and patches), never touching the user's other changes. `run_ids` (default: every run not committed yet), `experiment`, `message`, `dry_run` (answer the plan only), `push`. Copies nothing from outside the repo's work tree (real paths, links resolved): each refused place is in `refused` and a warning; the dry run lists `origins` (`{source, dest, run_id, refused}`, refused first). The repo's pre-commit and commit-msg hooks run on exactly what the commit holds (`no_verify: true` skips them; a failure is 1022 with `data.hook` and `data.output`). A user's own files in a re-exported run folder are kept (`kept`); one she edited refuses the commit (1020). A run is committed when its folder is in HEAD's tree. `data` (paths of data files or folders inside the repo) adds them to the commit, through Git LFS above the size limit (a git-ignored one with force); the reply's `data` lists each with its route, and `not_committed` the runs' recorded inputs git does not track. `include_other_branches: true` also takes runs made on other branches (listed apart in `other_branches` otherwise); `models` lists each run's logged models with size and route.",
    "octostore/reproduce": "Starts a reproduction job for `run_id` (with `set` overrides, `env`, `tolerance`); `octostore/job` notifications carry its phase, progress and log lines, and its result the verdict. A command the repo recorded runs only once the user accepted it: without `confirmed: true`, a command not yet accepted for this repo answers 1032 with `data.command` (`argv`, `display`, `interpreter`, `script`, `args`, `env`, `cwd`, `commit`, `source`, `kind`, `unusual`, `reasons`, `hash`); `confirmed: true` records the acceptance in the user's state folder and starts the job. `dry_run: true` answers `{plan, command, accepted}` and starts nothing. `env: \"model\"` uses the environment the run's model recorded (a model folder in its artifacts, or its MLflow 3 logged model, live or committed: the one named `model` or the only one). A run's recorded inputs are checked before anything runs: `result.inputs` lists each `{path, size, sha256, why, case, detail}` with `case` in-commit, provided, differs or missing; a missing one fails the job in resolve; one that differs makes the verdict `diverged`. The result's `environment.why` says which environment file was used and why; `environment.cache_evicted` lists environments the cache cap removed.",
    "octostore/jobs": "Lists the daemon's jobs (running and finished) with phase, progress and result.",
    "octostore/cancel": "Cancels a job by `job` (its id): stops its process tree and cleans its worktree.",
    "octostore/shutdown": "Stops the daemon (LSP `shutdown`/`exit` from an editor only close that editor's connection).",
}


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

    text = INTRO.format(version=protocol.PROTOCOL_VERSION, **{
        k: v for k, v in vars(protocol).items() if k.isupper() and isinstance(v, int)})
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
