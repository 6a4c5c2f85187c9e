"""MLflow-side work of a reproduction, run by the *reproduced environment's* Python.

The daemon never imports MLflow (DESIGN.md).  Everything that needs MLflow's
client runs in this script, started as ``<env python> mlflow_helper.py``
with ``MLFLOW_TRACKING_URI`` set to the user's store and its working folder
where MLflow would put a new experiment's artifacts (beside a SQLite store).
It is self-contained (standard library + mlflow, no octostore imports): the
reproduced environment does not have octostore installed.

It reads one JSON command per line on stdin and answers each with one line
``@@octostore@@ <json>`` on stdout (anything else on stdout or stderr is
MLflow talking, and goes to the job's log):

``{"op": "experiment", "name": NAME}``
    make sure the experiment exists (created here, so that a new experiment's
    artifacts go beside the store, not into the job's worktree); answers
    ``experiment_id``.
``{"op": "finish", "job": ..., "experiment_id": ..., "status": ..., "artifacts": [[local
path, artifact folder], ...], "tags": {...}, "created_tags": {...}, "run_name": ...}``
    find the run the training process made (tagged ``octostore.job`` through
    ``MLFLOW_RUN_CONTEXT``; the top-level one when there are several), or
    create a run when it made none (so that a failure is on record too); log
    the console log as artifacts, set ``tags``, end the run if the script left
    it running (``status``), and answer its ``run_id``, final ``status``,
    ``metrics`` (MLflow's latest values), ``params``, whether it was
    ``created`` here and the ids of ``other_runs`` of the job.
``{"op": "tag", "run_id": ..., "tags": {...}}``
    set tags (the verdict, once the daemon has compared).
``{"op": "exit"}``
"""

from __future__ import annotations

import json
import logging
import sys
import traceback

MARK = "@@octostore@@ "


def _client():  # noqa: ANN202 - mlflow may not be importable: that is reported, not raised
    from mlflow import MlflowClient  # deferred: imported only inside this helper process

    return MlflowClient()


def experiment(client, msg):  # noqa: ANN001, ANN201
    name = msg["name"]
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return {"experiment_id": client.create_experiment(name), "created": True}
    if exp.lifecycle_stage != "active":
        raise RuntimeError(f"experiment {name!r} is deleted in this store; restore it with "
                           f"`mlflow experiments restore --experiment-id {exp.experiment_id}`")
    return {"experiment_id": exp.experiment_id, "created": False}


def _job_runs(client, job, experiment_id):  # noqa: ANN001, ANN202
    query = f"tags.`octostore.job` = '{job}'"
    runs = client.search_runs([experiment_id], filter_string=query) if experiment_id else []
    if not runs:
        ids = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(ids, filter_string=query) if ids else []
    return sorted(runs, key=lambda r: (r.data.tags.get("mlflow.parentRunId") is not None,
                                       r.info.start_time or 0))


def finish(client, msg):  # noqa: ANN001, ANN201
    warnings = []
    runs = _job_runs(client, msg["job"], msg.get("experiment_id"))
    created = not runs
    if created:
        tags = {"octostore.job": msg["job"], **(msg.get("created_tags") or {})}
        run = client.create_run(msg["experiment_id"], tags=tags, run_name=msg.get("run_name"))
    else:
        run = runs[0]
    run_id = run.info.run_id
    for local, folder in msg.get("artifacts") or []:
        try:
            client.log_artifact(run_id, local, folder)
        except Exception as exc:  # noqa: BLE001 - a lost log must not lose the comparison
            warnings.append(f"cannot store {local} as an artifact: {exc}")
    for key, value in (msg.get("tags") or {}).items():
        client.set_tag(run_id, key, value)
    run = client.get_run(run_id)
    if run.info.status in ("RUNNING", "SCHEDULED"):
        client.set_terminated(run_id, msg.get("status") or "FAILED")
        run = client.get_run(run_id)
    return {"run_id": run_id, "created": created, "status": run.info.status,
            "metrics": dict(run.data.metrics), "params": dict(run.data.params),
            "run_name": run.info.run_name, "artifact_uri": run.info.artifact_uri,
            "other_runs": [r.info.run_id for r in runs[1:]], "warnings": warnings}


def tag(client, msg):  # noqa: ANN001, ANN201
    for key, value in (msg.get("tags") or {}).items():
        client.set_tag(msg["run_id"], key, value)
    return {}


OPS = {"experiment": experiment, "finish": finish, "tag": tag}


def _say(obj) -> None:  # noqa: ANN001
    sys.stdout.write(MARK + json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        client = _client()
        import mlflow

        version = mlflow.__version__
    except Exception as exc:  # noqa: BLE001
        _say({"ok": False, "op": "start", "error": f"cannot use MLflow in this environment: "
              f"{type(exc).__name__}: {exc}"})
        return 2
    _say({"ok": True, "op": "start", "mlflow": version})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            _say({"ok": False, "error": "not JSON"})
            continue
        op = msg.get("op")
        if op == "exit":
            _say({"ok": True, "op": "exit"})
            return 0
        fn = OPS.get(op)
        if fn is None:
            _say({"ok": False, "op": op, "error": f"unknown op {op!r}"})
            continue
        try:
            _say({"ok": True, "op": op, **fn(client, msg)})
        except Exception as exc:  # noqa: BLE001 - every failure is an answer
            _say({"ok": False, "op": op, "error": f"{type(exc).__name__}: {exc}",
                  "trace": traceback.format_exc()[-2000:]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
