"""Copy runs from one MLflow store into a database store, keeping their ids (MLflow's side).

Standard library + MLflow only: imported by :mod:`.worker` in a Python that has MLflow.

* **Reading** goes through ``MlflowClient(source)`` whatever the source is (a file store,
  the committed layout, a database, a tracking server), so what is copied is what stock
  MLflow reads from it.
* **Writing** goes through the destination's ``SqlAlchemyStore`` (the store ``MlflowClient``
  builds for the URI, so its default artifact root is stock MLflow's).  MLflow's API has no
  way to choose a run id (``create_run`` draws a uuid) nor a logged model id, so the two
  rows that carry the id (``runs``, ``logged_models``) are added through the store's own
  session, field by field as the store's ``create_run``/``create_logged_model`` fill them
  (and as MLflow's own ``mlflow.store.fs2db`` migration does); everything else goes through
  the store's public methods (``log_batch`` for params, tags and every metric step,
  ``update_run_info``, ``log_inputs``, ``log_outputs``, ``log_logged_model_params``,
  ``set_logged_model_tags``, ``delete_run``) and artifacts through the artifact repository
  of the run's destination ``artifact_uri``.
* **Idempotent by run id.**  A run the destination has is compared with the source: metric
  points it lacks (by timestamp, step and value), params and tags it lacks, a changed tag,
  status, end time or name, and artifact files it lacks (or whose size differs) are added;
  nothing else is touched.  A param whose value differs is left as the destination has it
  (MLflow never changes a logged param) and reported.  Tags the source lacks stay.  A run
  deleted in the destination is left alone.
* **Experiments by name.**  A source experiment goes into the destination's experiment of
  the same name, or a new one (whose id MLflow chooses); ids that differ are reported as
  mapped.  Deleted source experiments are skipped.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from .files import dest_files, server_files, source_dir, source_files

MAX_FLOAT = 1.7976931348623157e308
"""What SQL stores keep for +-inf (and serve back)."""
BATCH_METRICS, BATCH_PARAMS, BATCH_TAGS = 1000, 100, 100
"""MLflow's ``log_batch`` limits."""
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""A run or logged model id we write: it becomes a folder of the destination's artifacts, so
an id a (cloned, untrusted) source made up, like ``../..``, is refused."""


class ImportFailure(Exception):
    """A failure of the whole import, said in one sentence."""


def pages(fn: Callable[..., Any], *args: Any, **kw: Any) -> Iterator[Any]:
    """Every item of a paged MLflow listing."""
    token = None
    while True:
        page = fn(*args, page_token=token, **kw)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def norm_value(v: float) -> Any:
    """A metric value as a SQL store serves it back (+-inf clamped, NaN as a string)."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return MAX_FLOAT if v > 0 else -MAX_FLOAT
    return float(v)


def point(m: Any) -> tuple[int, int, Any]:
    return (int(m.timestamp), int(m.step), norm_value(m.value))


def session(store: Any) -> Any:
    """A writing session of the store (MLflow 3.18 asks for ``read_only=False``; 3.17 has
    no such argument)."""
    try:
        return store.ManagedSessionMaker(read_only=False)
    except TypeError:
        return store.ManagedSessionMaker()


class Copier:
    """One import: ``run()`` returns the summary; ``say`` gets progress dicts."""

    def __init__(self, req: dict[str, Any], say: Callable[[dict[str, Any]], None]) -> None:
        self.src = req["source"]
        self.dest = req["destination"]
        self.dry = bool(req.get("dry_run"))
        self.say = say
        self.warnings: list[str] = []
        self.runs: list[dict[str, Any]] = []
        self.experiments: list[dict[str, Any]] = []
        self.models: list[dict[str, Any]] = []
        self._tmp: str | None = None

    # -- stores ---------------------------------------------------------------------------
    def _open(self) -> None:
        from mlflow import MlflowClient

        self.sc = MlflowClient(tracking_uri=self.src["uri"])
        self.store = None
        db = self.dest.get("sqlite_path")
        if self.dry and db and not os.path.exists(db):
            return  # nothing there yet: everything would be added, and a dry run makes nothing
        dc = MlflowClient(tracking_uri=self.dest["uri"])
        try:
            store = dc._tracking_client.store
        except Exception as exc:  # noqa: BLE001 - MLflow's own one-sentence error
            raise ImportFailure(f"MLflow cannot open the destination: {_first_line(exc)}"
                                ) from None
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        if not isinstance(store, SqlAlchemyStore):
            raise ImportFailure(f"the destination is a {type(store).__name__}, not a database "
                                "store; point MLFLOW_TRACKING_URI at a sqlite:/// (or other "
                                "SQL) database, or unset it to use ./mlflow.db")
        self.store = store

    def _dest_run(self, run_id: str) -> Any:
        if self.store is None:
            return None
        from mlflow.exceptions import MlflowException

        try:
            return self.store.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    # -- the import -----------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        import logging

        logging.getLogger("mlflow").setLevel(logging.ERROR)
        self._open()
        try:
            plan = self._experiments()
            todo = [(se, de, sr) for se, de in plan for sr in self._list_runs(se)]
            self.say({"progress": {"done": 0, "total": len(todo)}})
            later: list[tuple[Any, Any]] = []
            for i, (se, de, sr) in enumerate(todo, 1):
                entry = self._one_run(se, de, sr, later)
                self.runs.append(entry)
                self.say({"progress": {"done": i, "total": len(todo),
                                       "run_id": sr.info.run_id, "action": entry["action"]}})
            for se, de in plan:
                self._models(se, de)
            self._outputs_and_deletes(later)
        finally:
            if self._tmp:
                shutil.rmtree(self._tmp, ignore_errors=True)
        count = {a: sum(1 for r in self.runs if r["action"] == a)
                 for a in ("added", "updated", "unchanged", "skipped", "failed")}
        return {"dry_run": self.dry, "counts": count, "runs": self.runs,
                "experiments": self.experiments, "models": self.models,
                "warnings": self.warnings}

    def _experiments(self) -> list[tuple[Any, dict[str, Any] | None]]:
        from mlflow.entities import ExperimentTag

        dest = {}
        if self.store is not None:
            dest = {e.name: e for e in pages(self.store.search_experiments,
                                             view_type=_view_all(), max_results=1000)}
        out = []
        for se in pages(self.sc.search_experiments, view_type=_view_all(), max_results=1000):
            entry = {"source_id": se.experiment_id, "name": se.name, "destination_id": None,
                     "action": "existing"}
            if se.lifecycle_stage != "active":
                entry["action"] = "skipped (deleted in the source)"
                self.experiments.append(entry)
                continue
            de = dest.get(se.name)
            tags = {k: v for k, v in (se.tags or {}).items()}
            if de is not None and de.lifecycle_stage != "active":
                entry["action"] = "skipped (deleted in the destination)"
                self.warnings.append(
                    f"experiment {se.name!r} is deleted in the destination, so its runs were "
                    f"not imported; restore it with `mlflow experiments restore "
                    f"--experiment-id {de.experiment_id}` and import again")
                self.experiments.append(entry)
                continue
            if de is None and self.store is None and se.name == "Default":
                entry.update(action="existing", destination_id="0")  # every new store has it
            elif de is None:
                entry["action"] = "created"
                if not self.dry:
                    new_id = self.store.create_experiment(
                        se.name, tags=[ExperimentTag(k, v) for k, v in tags.items()])
                    de = self.store.get_experiment(new_id)
            elif not self.dry:
                for k, v in tags.items():
                    if k not in (de.tags or {}):
                        self.store.set_experiment_tag(de.experiment_id, ExperimentTag(k, v))
            if de is not None:
                entry["destination_id"] = de.experiment_id
            if entry["destination_id"] not in (None, se.experiment_id):
                entry["mapped"] = True
            self.experiments.append(entry)
            out.append((se, {"id": de.experiment_id, "artifact_location": de.artifact_location}
                        if de is not None else None))
        return out

    def _list_runs(self, se: Any) -> list[Any]:
        """The experiment's runs.  MLflow's file store fails a whole listing on one bad run
        (a made-up run id, a broken ``meta.yaml``); then each run folder is read on its own
        and the ones MLflow cannot read are skipped with a warning."""
        try:
            return list(pages(self.sc.search_runs, [se.experiment_id],
                              run_view_type=_view_all(), max_results=1000))
        except Exception as exc:  # noqa: BLE001
            if self.src["kind"] != "file":
                raise
            first = _first_line(exc)
        runs = []
        folder = os.path.join(self.src["folder"], se.experiment_id)
        for name in sorted(os.listdir(folder)):
            if not os.path.isfile(os.path.join(folder, name, "meta.yaml")):
                continue
            try:
                run = self.sc.get_run(name) if ID_RE.fullmatch(name) else None
            except Exception:  # noqa: BLE001
                run = None
            if run is None or run.info.run_id != name:
                self.warnings.append(f"run folder {name!r} of experiment {se.name!r} was "
                                     f"skipped: MLflow cannot read it ({first})")
                continue
            runs.append(run)
        return runs

    def _one_run(self, se: Any, de: dict[str, Any] | None, sr: Any,
                 later: list[tuple[Any, Any]]) -> dict[str, Any]:
        run_id = sr.info.run_id
        entry: dict[str, Any] = {"run_id": run_id, "experiment": se.name,
                                 "run_name": sr.info.run_name}
        if not ID_RE.fullmatch(run_id or ""):
            entry.update(action="skipped", reason="its run id is not one MLflow makes")
            self.warnings.append(f"a run with the id {run_id!r} was skipped: not an MLflow id")
            return entry
        try:
            dr = self._dest_run(run_id)
            if dr is not None and dr.info.lifecycle_stage != "active":
                entry.update(action="skipped", reason="deleted in the destination")
                return entry
            changes = self._changes(sr, dr)
            files = self._artifact_plan(se, sr, dr, de)
            if files:
                changes["artifacts"] = len(files)
            if dr is None:
                entry["action"] = "added"
            elif changes:
                entry["action"] = "updated"
            else:
                entry["action"] = "unchanged"
            entry["changes"] = changes
            if self.dry or entry["action"] == "unchanged":
                return entry
            self._write_run(sr, dr, de, changes)
            self._copy_artifacts(sr, files)
            later.append((sr, dr))
            return entry
        except Exception as exc:  # noqa: BLE001 - one run's failure is that run's
            entry.update(action="failed", reason=_first_line(exc))
            self.warnings.append(f"run {run_id} was not fully imported: {_first_line(exc)}")
            return entry

    def _changes(self, sr: Any, dr: Any) -> dict[str, Any]:
        """What the destination lacks of the source run (everything when it has no such run)."""
        sp, st = dict(sr.data.params), dict(sr.data.tags)
        dp = dict(dr.data.params) if dr is not None else {}
        dt = dict(dr.data.tags) if dr is not None else {}
        ch: dict[str, Any] = {}
        params = {k: v for k, v in sp.items() if k not in dp}
        conflicts = sorted(k for k, v in sp.items() if k in dp and dp[k] != v)
        tags = {k: v for k, v in st.items() if dt.get(k) != v}
        new_points: dict[str, list[Any]] = {}
        for key in sr.data.metrics:
            have = set()
            if dr is not None and key in dr.data.metrics:
                have = {point(m) for m in self.store.get_metric_history(sr.info.run_id, key)}
            got = [m for m in self.sc.get_metric_history(sr.info.run_id, key)
                   if point(m) not in have]
            seen: set[Any] = set()
            uniq = []
            for m in got:
                if point(m) not in seen:
                    seen.add(point(m))
                    uniq.append(m)
            if uniq:
                new_points[key] = uniq
        if params:
            ch["params"] = params
        if conflicts:
            ch["param_conflicts"] = conflicts
            self.warnings.append(
                f"run {sr.info.run_id}: param(s) {', '.join(conflicts)} differ from the "
                "destination's; kept the destination's values (MLflow never changes a "
                "logged param)")
        if tags:
            ch["tags"] = tags
        if new_points:
            ch["metrics"] = new_points
        if dr is not None:
            si, di = sr.info, dr.info
            if si.status != di.status or (si.end_time is not None and si.end_time != di.end_time):
                ch["status"] = [di.status, si.status]
            if si.run_name and si.run_name != di.run_name:
                ch["run_name"] = [di.run_name, si.run_name]
            if si.lifecycle_stage != "active":
                ch["delete"] = True
        return ch

    def _write_run(self, sr: Any, dr: Any, de: dict[str, Any] | None,
                   ch: dict[str, Any]) -> None:
        from mlflow.entities import Metric, Param, RunStatus, RunTag

        store, si = self.store, sr.info
        if dr is None:
            from mlflow.store.tracking.dbmodels.models import SqlRun
            from mlflow.utils.uri import append_to_uri_path

            assert de is not None
            with session(store) as s:
                s.add(SqlRun(
                    run_uuid=si.run_id, name=si.run_name or "", experiment_id=int(de["id"]),
                    artifact_uri=append_to_uri_path(de["artifact_location"], si.run_id,
                                                    "artifacts"),
                    source_type="UNKNOWN", source_name="", entry_point_name="",
                    user_id=si.user_id, status=si.status, start_time=si.start_time,
                    end_time=si.end_time, deleted_time=None, source_version="",
                    lifecycle_stage="active"))
        params = [Param(k, v) for k, v in ch.get("params", {}).items()]
        tags = [RunTag(k, v) for k, v in ch.get("tags", {}).items()]
        metrics = [Metric(m.key, m.value, m.timestamp, m.step)
                   for ms in ch.get("metrics", {}).values() for m in ms]
        for i in range(0, len(params), BATCH_PARAMS):
            store.log_batch(si.run_id, [], params[i:i + BATCH_PARAMS], [])
        for i in range(0, len(tags), BATCH_TAGS):
            store.log_batch(si.run_id, [], [], tags[i:i + BATCH_TAGS])
        for i in range(0, len(metrics), BATCH_METRICS):
            store.log_batch(si.run_id, metrics[i:i + BATCH_METRICS], [], [])
        if dr is not None and ("status" in ch or "run_name" in ch):
            store.update_run_info(si.run_id, RunStatus.from_string(si.status), si.end_time,
                                  si.run_name if "run_name" in ch else None)
        if dr is None:
            full = self.sc.get_run(si.run_id)
            datasets = list(getattr(full.inputs, "dataset_inputs", None) or [])
            if datasets:
                try:
                    store.log_inputs(si.run_id, datasets=datasets)
                except Exception as exc:  # noqa: BLE001 - the run stands without them
                    self.warnings.append(f"run {si.run_id}: its dataset inputs were not "
                                         f"copied: {_first_line(exc)}")

    # -- artifacts --------------------------------------------------------------------------
    def _artifact_plan(self, se: Any, sr: Any, dr: Any,
                       de: dict[str, Any] | None) -> list[tuple[str, int, str | None]]:
        """The files the destination run lacks: (rel path, size, local source path)."""
        run_id = sr.info.run_id
        if self.src["kind"] == "server":
            files: dict[str, tuple[int, str | None]] = server_files(self.sc, run_id,
                                                                    self.warnings)
        else:
            folder = source_dir(self.src, se.experiment_id, run_id, sr.info.artifact_uri)
            files = dict(source_files(folder, self.warnings)) if folder else {}
        if not files:
            return []
        have = dest_files(dr.info.artifact_uri) if dr is not None else {}
        return [(rel, size, path) for rel, (size, path) in sorted(files.items())
                if have.get(rel) != size]

    def _copy_artifacts(self, sr: Any, files: list[tuple[str, int, str | None]]) -> None:
        if not files:
            return
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        run_id = sr.info.run_id
        repo = get_artifact_repository(self.store.get_run(run_id).info.artifact_uri)
        for rel, _size, path in files:
            if path is None:  # a server's: fetched one by one through MLflow
                path = self.sc.download_artifacts(run_id, rel, self._tmpdir())
            folder = posixpath.dirname(rel)
            if posixpath.basename(rel) == os.path.basename(path):
                repo.log_artifact(path, folder or None)
            else:  # a name MLflow's download changed: copy under the source's name
                tmp = os.path.join(self._tmpdir(), "named")
                os.makedirs(tmp, exist_ok=True)
                named = os.path.join(tmp, posixpath.basename(rel))
                shutil.copyfile(path, named)
                repo.log_artifact(named, folder or None)

    def _tmpdir(self) -> str:
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="octostore-import-")
        return self._tmp

    # -- logged models ---------------------------------------------------------------------
    def _models(self, se: Any, de: dict[str, Any] | None) -> None:
        try:
            found = list(pages(self.sc.search_logged_models, [se.experiment_id],
                               max_results=100))
        except Exception as exc:  # noqa: BLE001 - a store without models (older MLflow)
            self.warnings.append(f"cannot list the logged models of experiment {se.name!r}: "
                                 f"{_first_line(exc)}")
            return
        for m in found:
            if not ID_RE.fullmatch(m.model_id or ""):
                self.warnings.append(f"a logged model with the id {m.model_id!r} was skipped: "
                                     "not an MLflow id")
                continue
            entry = {"model_id": m.model_id, "name": m.name, "source_run_id": m.source_run_id,
                     "experiment": se.name}
            try:
                entry["action"] = self._one_model(se, de, m)
            except Exception as exc:  # noqa: BLE001
                entry["action"] = "failed"
                self.warnings.append(f"logged model {m.model_id} was not imported: "
                                     f"{_first_line(exc)}")
            self.models.append(entry)

    def _one_model(self, se: Any, de: dict[str, Any] | None, m: Any) -> str:
        from mlflow.exceptions import MlflowException

        if self.store is not None:
            try:
                self.store.get_logged_model(m.model_id)
                return "unchanged"
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
        if self.dry:
            return "added"
        from mlflow.entities import LoggedModelParameter, LoggedModelTag
        from mlflow.store.tracking.dbmodels.models import SqlLoggedModel
        from mlflow.utils.uri import append_to_uri_path

        assert de is not None
        location = append_to_uri_path(de["artifact_location"], "models", m.model_id, "artifacts")
        status = m.status.to_int() if hasattr(m.status, "to_int") else int(m.status)
        with session(self.store) as s:
            s.add(SqlLoggedModel(
                model_id=m.model_id, experiment_id=int(de["id"]), name=m.name,
                artifact_location=location, creation_timestamp_ms=m.creation_timestamp,
                last_updated_timestamp_ms=m.last_updated_timestamp, model_type=m.model_type,
                status=status, lifecycle_stage="active", source_run_id=m.source_run_id,
                status_message=m.status_message))
        if m.params:
            self.store.log_logged_model_params(
                m.model_id, [LoggedModelParameter(k, v) for k, v in m.params.items()])
        if m.tags:
            self.store.set_logged_model_tags(
                m.model_id, [LoggedModelTag(k, v) for k, v in m.tags.items()])
        if m.metrics:
            # Rows as the store's ``_log_model_metrics`` writes them (NaN kept as 0, +-inf
            # clamped): ``log_batch`` would log them as run metrics too.
            from mlflow.store.tracking.dbmodels.models import SqlLoggedModelMetric

            with session(self.store) as s:
                s.add_all(SqlLoggedModelMetric(
                    model_id=m.model_id, metric_name=x.key, metric_timestamp_ms=x.timestamp,
                    metric_step=x.step, metric_value=_model_metric_value(x.value),
                    experiment_id=int(de["id"]), run_id=x.run_id or m.source_run_id,
                    dataset_uuid=None, dataset_name=x.dataset_name,
                    dataset_digest=x.dataset_digest) for x in {
                        (x.key, x.timestamp, x.step, x.run_id or m.source_run_id): x
                        for x in m.metrics if x.run_id or m.source_run_id}.values())
        # The model's files.
        if self.src["kind"] == "server":
            import mlflow.artifacts

            folder = mlflow.artifacts.download_artifacts(
                artifact_uri=m.artifact_location, tracking_uri=self.src["uri"],
                dst_path=tempfile.mkdtemp(dir=self._tmpdir()))
        else:
            folder = source_dir(self.src, se.experiment_id, m.model_id, m.artifact_location,
                                model=True)
        if folder is None:
            self.warnings.append(f"logged model {m.model_id}: its files are not on this "
                                 "machine; imported its record only")
            return "added"
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(location)
        for rel, (_size, path) in sorted(source_files(folder, self.warnings).items()):
            repo.log_artifact(path, posixpath.dirname(rel) or None)
        return "added"

    def _outputs_and_deletes(self, later: list[tuple[Any, Any]]) -> None:
        """Link runs to the models they logged (once both are in), then delete what the
        source has deleted."""
        from mlflow.entities import LoggedModelOutput

        for sr, _dr in later:
            run_id = sr.info.run_id
            try:
                outs = getattr(self.sc.get_run(run_id).outputs, "model_outputs", None) or []
                have_run = self.store.get_run(run_id)
                have = {o.model_id for o in
                        (getattr(have_run.outputs, "model_outputs", None) or [])}
                add = []
                for o in outs:
                    if o.model_id in have:
                        continue
                    try:
                        self.store.get_logged_model(o.model_id)
                    except Exception:  # noqa: BLE001 - a model not imported: no link
                        continue
                    add.append(LoggedModelOutput(o.model_id, o.step))
                if add:
                    self.store.log_outputs(run_id, add)
                if sr.info.lifecycle_stage != "active":
                    self.store.delete_run(run_id)
            except Exception as exc:  # noqa: BLE001
                self.warnings.append(f"run {run_id}: {_first_line(exc)}")


def _model_metric_value(v: float) -> float:
    n = norm_value(v)
    return 0.0 if n == "nan" else n


def _view_all() -> Any:
    from mlflow.entities import ViewType

    return ViewType.ALL


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:500]
