"""MLflow's side of a remote source, in its own process.

Run as ``python -m octostored.sources.remote_worker`` by :mod:`octostored.sources.remote`.

The daemon never imports MLflow (STACK.md section 4: 2 s and 166 MB).  A remote source
(:mod:`octostored.sources.remote`) starts this worker, which imports MLflow and talks to one
tracking server through ``MlflowClient``, so MLflow's REST client, its auth (URI
``user:pass@``, ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, ``MLFLOW_TRACKING_TOKEN``, TLS
variables) and its entity parsing are exactly MLflow's.

Protocol: one JSON object per line (the ``json`` module, so NaN and +-Infinity travel as
they are).  Requests on stdin: ``{"id": n, "op": ..., ...}``.  Replies on the real stdout:
zero or more ``{"id": n, "part": {...}}`` (a page of runs, so a long sync shows progress and
no line is huge), then ``{"id": n, "ok": true, "result": {...}}`` or ``{"id": n, "ok":
false, "error": {"kind": ..., "message": ...}}``.  Before any request the worker writes
``{"hello": {...}}`` once MLflow is imported, or ``{"fatal": "..."}`` when it cannot be.
Anything MLflow prints goes to stderr (fd 1 is pointed at fd 2 before MLflow loads); the
daemon scrubs stderr of credentials before logging it.

The worker keeps no sync state: every ``sync`` request carries what it needs (mode,
watermark, unfinished run ids, known experiments, and for a listing the run digests), so a
restarted worker loses nothing.  Requests run on a small thread pool, so a metric history
is not stuck behind a long first sync.  The worker exits when stdin closes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

PROTOCOL = 1
PAGE = 1000
"""Runs per ``search_runs`` page (MLflow's default page; its maximum is 50,000)."""
IN_CHUNK = 100
"""Run ids per ``attributes.run_id IN (...)`` query."""
EXP_CHUNK = 200
"""Experiment ids per ``search_runs`` request."""
VERIFY_LIMIT = 200
"""Runs missing from a listing that are confirmed gone with ``get_run`` (paging by offset can
skip a run when another is hard-deleted mid-listing); beyond this the listing is trusted."""
UNFINISHED = ("RUNNING", "SCHEDULED")
RUN_WIRE = ("run_id", "experiment_id", "run_name", "status", "lifecycle_stage", "start_time",
            "end_time", "user_id", "artifact_uri", "params", "metrics", "tags", "inputs",
            "digest")
"""Field order of a run on the wire (``metrics``: key -> [value, timestamp, step])."""
EXP_WIRE = ("experiment_id", "name", "lifecycle_stage", "artifact_location", "creation_time",
            "last_update_time", "tags")


# -- output channel ---------------------------------------------------------------------------

def _take_stdout() -> Any:
    """The protocol's channel: a private copy of fd 1; fd 1 itself then goes to stderr."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1 << 16)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


_OUT: Any = None
"""Set by :func:`main`: importing this module (docs, tests) leaves the process's fds alone."""
_OUT_LOCK = threading.Lock()


def _send(msg: dict[str, Any]) -> None:
    line = json.dumps(msg, separators=(",", ":")) + "\n"
    with _OUT_LOCK:
        _OUT.write(line)
        _OUT.flush()


# -- credentials never leave this process in clear ----------------------------------------------

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s]*@")
_AUTH_HEADER = re.compile(
    r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:(?:basic|bearer|token)\s+)?[^\s'\",}]+")


def _secrets() -> list[str]:
    out = []
    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD"):
        v = os.environ.get(name)
        if v and len(v) >= 3:
            out.append(v)
    return out


def scrub(text: str, extra: list[str] | tuple[str, ...] = ()) -> str:
    text = _USERINFO.sub(r"\1***@", text)
    text = _AUTH_HEADER.sub(r"\1***", text)
    for s in [*extra, *_secrets()]:
        if s:
            text = text.replace(s, "***")
    return text


# -- MLflow ----------------------------------------------------------------------------------

def _configure_http(timeout: float) -> None:
    """MLflow's defaults retry 7 times with exponential backoff (minutes against a dead server);
    the daemon has its own backoff between syncs, so one quick retry per request is enough."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = os.environ.get("OCTOSTORE_REMOTE_RETRIES", "1")
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"] = "0.3"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, int(timeout)))


mlflow: Any = None
ViewType: Any = None
MlflowClient: Any = None


class MlflowException(Exception):  # replaced by MLflow's own in _import_mlflow()
    pass


def _import_mlflow() -> float:
    """Import MLflow into this module's globals; return the seconds it took."""
    global mlflow, ViewType, MlflowException, MlflowClient
    t0 = time.perf_counter()
    import mlflow as _mlflow
    from mlflow.entities import ViewType as _ViewType
    from mlflow.exceptions import MlflowException as _MlflowException
    from mlflow.tracking import MlflowClient as _MlflowClient

    mlflow, ViewType, MlflowException, MlflowClient = (
        _mlflow, _ViewType, _MlflowException, _MlflowClient)
    return time.perf_counter() - t0


class Worker:
    def __init__(self) -> None:
        self.client: Any = None
        self.uri = ""
        self.where = ""
        self.extra: list[str] = []
        self.requests = 0
        self._lock = threading.Lock()

    # -- ops -------------------------------------------------------------------------------
    def op_init(self, req: dict[str, Any], _part: Any) -> dict[str, Any]:
        self.uri = req["uri"]
        self.where = req.get("where") or scrub(self.uri)
        self.extra = [s for s in req.get("secrets", []) if s]
        if req.get("timeout"):
            _configure_http(float(req["timeout"]))
        self.client = MlflowClient(tracking_uri=self.uri)
        return {"mlflow": mlflow.__version__}

    def op_ping(self, req: dict[str, Any], _part: Any) -> dict[str, Any]:
        self.client.search_experiments(max_results=1)
        return {}

    def op_metric_history(self, req: dict[str, Any], _part: Any) -> dict[str, Any]:
        self._count()
        pts = self.client.get_metric_history(req["run_id"], req["key"])
        return {"points": [[m.timestamp, m.value, m.step] for m in pts]}

    def op_download_artifacts(self, req: dict[str, Any], _part: Any) -> dict[str, Any]:
        self._count()
        dest = req["dest"]
        os.makedirs(dest, exist_ok=True)
        path = self.client.download_artifacts(req["run_id"], req.get("path", ""), dst_path=dest)
        return {"path": path}

    def op_sync(self, req: dict[str, Any], part: Any) -> dict[str, Any]:
        """One sync; see :mod:`octostored.sources.remote` for what each mode reads."""
        t0 = time.perf_counter()
        self.requests = 0
        mode = req.get("mode", "full")
        exps = self._experiments()
        exp_ids = [e.experiment_id for e in exps]
        known = req.get("experiments") or {}
        sent: set[str] = set()
        stats = {"listed": 0, "sent": 0}
        digests: dict[str, str] = req.get("digests") or {}
        removed: list[str] = []
        relisted: list[str] = []

        def emit(runs: list[Any], only_changed: bool) -> None:
            rows = []
            for r in runs:
                rid = r.info.run_id
                if rid in sent:
                    continue
                sent.add(rid)
                row = run_row(r)
                if only_changed and digests.get(rid) == row[-1]:
                    continue
                rows.append(row)
            stats["sent"] += len(rows)
            if rows:
                part({"runs": rows})

        if mode in ("full", "list"):
            for page in self._pages(exp_ids, ""):
                stats["listed"] += len(page)
                emit(page, mode == "list")
            if mode == "list":
                missing = [rid for rid in digests if rid not in sent]
                removed = self._confirm_gone(missing)
                # a run skipped by offset paging is still there: send it as changed
                for rid in missing:
                    if rid not in removed:
                        got = self._get_run(rid)
                        if got is not None:
                            emit([got], False)
        else:
            relisted = [e.experiment_id for e in exps
                        if known.get(e.experiment_id) not in (None, e.lifecycle_stage)
                        or e.experiment_id not in known]
            if relisted:
                for page in self._pages(relisted, ""):
                    stats["listed"] += len(page)
                    emit(page, False)
            since = int(req.get("since") or 0)
            filters = [f"attributes.start_time >= {since}", f"attributes.end_time >= {since}"]
            filters += [f"attributes.status = '{s}'" for s in UNFINISHED]
            for flt in filters:
                for page in self._pages(exp_ids, flt):
                    stats["listed"] += len(page)
                    emit(page, True)  # ``digests`` holds the unfinished runs': skip unchanged
            unfinished = [rid for rid in req.get("unfinished") or [] if rid not in sent]
            for i in range(0, len(unfinished), IN_CHUNK):
                chunk = unfinished[i:i + IN_CHUNK]
                ids = ", ".join("'" + rid.replace("'", "") + "'" for rid in chunk)
                for page in self._pages(exp_ids, f"attributes.run_id IN ({ids})"):
                    stats["listed"] += len(page)
                    emit(page, True)
            # an unfinished run that is in no experiment's listing any more was hard-deleted
            removed = self._confirm_gone([rid for rid in unfinished if rid not in sent])
        return {
            "mode": mode,
            "experiments": [exp_row(e) for e in exps],
            "relisted": relisted,
            "removed": removed,
            "stats": {**stats, "requests": self.requests,
                      "server_seconds": round(time.perf_counter() - t0, 4)},
        }

    # -- helpers ----------------------------------------------------------------------------
    def _count(self) -> None:
        with self._lock:
            self.requests += 1

    def _experiments(self) -> list[Any]:
        out: list[Any] = []
        token = None
        while True:
            self._count()
            page = self.client.search_experiments(view_type=ViewType.ALL, max_results=1000,
                                                  page_token=token)
            out.extend(page)
            token = page.token
            if not token:
                return out

    def _pages(self, exp_ids: list[str], flt: str):
        """Pages of ``search_runs`` over ``exp_ids`` (view ALL), oldest first: a run created
        during the listing lands on the last page instead of shifting the pages already read."""
        for i in range(0, len(exp_ids), EXP_CHUNK):
            chunk = exp_ids[i:i + EXP_CHUNK]
            token = None
            while True:
                self._count()
                page = self.client.search_runs(
                    chunk, flt, run_view_type=ViewType.ALL, max_results=PAGE,
                    order_by=["attributes.start_time ASC"], page_token=token)
                if page:
                    yield page
                token = page.token
                if not token:
                    break

    def _get_run(self, run_id: str) -> Any:
        try:
            self._count()
            return self.client.get_run(run_id)
        except MlflowException as exc:
            if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def _confirm_gone(self, ids: list[str]) -> list[str]:
        if len(ids) > VERIFY_LIMIT:
            return list(ids)
        return [rid for rid in ids if self._get_run(rid) is None]


def exp_row(e: Any) -> list[Any]:
    return [str(e.experiment_id), e.name, e.lifecycle_stage, e.artifact_location or "",
            e.creation_time, e.last_update_time, dict(e.tags or {})]


def run_row(r: Any) -> list[Any]:
    """A run as :mod:`octostored.sources.sqlitestore` builds it (see ``RUN_WIRE``)."""
    i, d = r.info, r.data
    tags = dict(d.tags)
    metrics = {m.key: [m.value, m.timestamp, m.step] for m in d._metric_objs}
    inputs = []
    if r.inputs is not None:
        for di in r.inputs.dataset_inputs:
            ds = di.dataset
            inputs.append({"name": ds.name, "digest": ds.digest, "source_type": ds.source_type,
                           "source": ds.source, "schema": ds.schema, "profile": ds.profile,
                           "tags": {t.key: t.value for t in di.tags}})
    row: list[Any] = [
        i.run_id, str(i.experiment_id), i.run_name or tags.get("mlflow.runName", ""),
        i.status or "", i.lifecycle_stage or "active", i.start_time, i.end_time,
        i.user_id or "", i.artifact_uri or "", dict(d.params), metrics, tags, inputs,
    ]
    blob = json.dumps(row, sort_keys=True, separators=(",", ":")).encode()
    row.append(hashlib.blake2b(blob, digest_size=8).hexdigest())
    return row


def _error_code(exc: BaseException) -> str:
    code = getattr(exc, "error_code", "") or ""
    return str(code)


_HTTP_STATUS = re.compile(r"(?:error code|status code|HTTP status|too many)\D{0,12}(\d{3})")
_UNREACHABLE = ("connection refused", "failed to establish", "name or service", "servname",
                "temporary failure in name resolution", "no route to host",
                "network is unreachable", "connection reset", "remote end closed",
                "connection aborted", "max retries exceeded", "connectionerror")


def classify(exc: BaseException, where: str, timeout: float, extra: list[str]) -> dict[str, str]:
    """A warning a person can act on, without credentials, for a failed call."""
    chain = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = " | ".join(f"{type(c).__name__}: {c}" for c in chain)
    low = text.lower()
    code = _error_code(exc)
    m = _HTTP_STATUS.search(text)
    status = int(m.group(1)) if m else 0
    detail = scrub(_first_line(str(exc)), extra)[:300]
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED") or status in (401, 403):
        return {"kind": "auth", "message": (
            f"the MLflow server {where} rejected the credentials"
            f"{f' (HTTP {status})' if status else ''}: set MLFLOW_TRACKING_USERNAME and"
            " MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN, where octostored starts (or"
            " in the root's .env), then `octostore daemon restart`")}
    if status >= 500:
        return {"kind": "server", "message":
                f"the MLflow server {where} answered with an error (HTTP {status}): {detail}"}
    if "timed out" in low or "timeouterror" in low or "read timeout" in low:
        return {"kind": "timeout", "message":
                f"the MLflow server {where} did not answer within {timeout:g} s (slow or hung)"}
    if any(s in low for s in _UNREACHABLE):
        if "refused" in low:
            reason = "connection refused"
        elif "name or service" in low or "servname" in low or "name resolution" in low:
            reason = "host name not resolved"
        else:
            reason = "connection failed"
        return {"kind": "unreachable", "message":
                f"cannot reach the MLflow server {where} ({reason})"}
    if status:
        return {"kind": "error", "message":
                f"the MLflow server {where} answered HTTP {status}: {detail}"}
    return {"kind": "error", "message":
            f"the MLflow server {where}: {type(exc).__name__}: {detail}"}


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def main() -> None:
    global _OUT
    _OUT = _take_stdout()  # before MLflow loads: whatever it prints goes to stderr
    _configure_http(float(os.environ.get("OCTOSTORE_REMOTE_REQUEST_TIMEOUT", "30")))
    try:
        import_s = _import_mlflow()
    except BaseException as exc:  # noqa: BLE001 - reported to the daemon, then exit
        _send({"fatal": f"cannot import mlflow in {sys.executable}: {type(exc).__name__}: {exc}"})
        sys.exit(3)
    worker = Worker()
    _send({"hello": {"protocol": PROTOCOL, "mlflow": mlflow.__version__, "pid": os.getpid(),
                     "import_s": round(import_s, 3), "run_fields": RUN_WIRE}})
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="remote")

    def handle(req: dict[str, Any]) -> None:
        rid = req.get("id")
        fn = getattr(worker, "op_" + str(req.get("op")), None)
        try:
            if fn is None:
                raise ValueError(f"unknown op {req.get('op')!r}")
            if worker.client is None and req.get("op") != "init":
                raise RuntimeError("the worker was not given a tracking URI")
            result = fn(req, lambda p: _send({"id": rid, "part": p}))
            _send({"id": rid, "ok": True, "result": result})
        except BaseException as exc:  # noqa: BLE001 - every failure is a reply
            err = classify(exc, worker.where or "(unknown)",
                           float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")), worker.extra)
            if err["kind"] == "error":  # unexpected: the whole story, for the daemon's log
                detail = scrub(traceback.format_exc(), worker.extra)
            else:  # a known condition, said once per failed call
                detail = err["message"]
            print(f"request {req.get('op')} failed: {detail}", file=sys.stderr, flush=True)
            _send({"id": rid, "ok": False, "error": err})

    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
        except ValueError:
            print(f"bad request line ({len(line)} chars)", file=sys.stderr, flush=True)
            continue
        if req.get("op") == "init":
            handle(req)  # before anything else that needs the client
        else:
            pool.submit(handle, req)
    # stdin closed: the daemon is gone or closed us; threads may be stuck in HTTP calls
    _OUT.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
