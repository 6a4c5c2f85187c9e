"""The socket protocol's shapes: every method's params and reply, every notification's payload.

Part of the contract (:mod:`.protocol` names them), import-free like it, and what the handlers and
:mod:`.shape` build.  Off every request's path (defining them costs a CLI call ~10 ms): read by
``docs/gen_protocol_ts.py`` (which makes ``protocol.ts``; a field's docstring becomes its doc
comment), the tests and type checkers.  ``NotRequired``: a reply may leave the field out."""

from typing import Annotated, Any, Literal, NotRequired, TypedDict

WireFloat = Annotated[float | str, "WireFloat"]
"""A metric value on the wire: a number, or "NaN" / "Infinity" / "-Infinity"."""
RunStatus = Annotated[Literal["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"] | str,
                      "RunStatus"]
Object = dict[str, Any]


class Empty(TypedDict):
    pass


class RootParams(TypedDict):
    root: str
    """A folder; the git work tree containing it is used."""


class RunParams(TypedDict):
    root: str
    run_id: str
    """A run id or a unique prefix of 6+ characters."""


# -- status, open, sync, subscribe ------------------------------------------------------------
class SourceSummary(TypedDict):
    id: str
    kind: str
    path: str
    committed: bool
    runs: int
    warnings: list[str]
    watching: str
    last_sync: NotRequired[float | None]
    warning: NotRequired[str | None]
    state: NotRequired[str]
    remote: NotRequired[Object]


class SearchDepth(TypedDict):
    depth: int
    git: bool
    limited: bool


class RootSummary(TypedDict):
    """``octostore/open``, and each root of ``octostore/status``."""
    root: str
    clock: str
    state: str
    runs: int
    experiments: int
    sources: list[SourceSummary]
    warnings: list[str]
    search: NotRequired[SearchDepth | None]


class StatusReply(TypedDict):
    protocol_version: int
    capabilities: list[str]
    version: str
    pid: int
    instance: str
    uptime: float
    clients: int
    roots: list[RootSummary]
    heavy_modules: NotRequired[list[str]]


class ClockReply(TypedDict):
    root: str
    clock: str


class SubscribeParams(TypedDict):
    root: str
    name: NotRequired[str]
    since: NotRequired[str]


class SubscribeReply(TypedDict):
    root: str
    subscription: str
    clock: str
    is_fresh_instance: bool


class UnsubscribeReply(TypedDict):
    root: str
    removed: bool


# -- experiments and runs -------------------------------------------------------------------
View = Literal["active", "deleted", "all"]


class ExperimentsParams(TypedDict):
    root: str
    view: NotRequired[View]


class ExperimentRow(TypedDict):
    experiment_id: str
    key: str
    """Unique in the root: the id, or ``<id>@<store>`` when two stores reuse an id."""
    name: str
    lifecycle_stage: str
    artifact_location: str
    creation_time: int | None
    last_update_time: int | None
    tags: dict[str, str]
    source: str
    dir: str
    runs: int
    active_runs: int
    last_activity: int | None
    warnings: list[str]


class ExperimentsReply(TypedDict):
    root: str
    clock: str
    experiments: list[ExperimentRow]


class RunsParams(TypedDict):
    root: str
    filter: NotRequired[str]
    """MLflow search syntax, e.g. ``metrics.rmse < 0.7 and params.model = 'rf'``."""
    order_by: NotRequired[list[str]]
    experiment_ids: NotRequired[list[str]]
    view: NotRequired[View]
    columns: NotRequired[list[str]]
    offset: NotRequired[int]
    limit: NotRequired[int]
    since_clock: NotRequired[str]


class RunRow(TypedDict):
    """A run as ``octostore/runs`` lists it: latest metric values only."""
    run_id: str
    experiment_id: str
    experiment_key: str
    run_name: str | None
    status: RunStatus
    lifecycle_stage: str
    start_time: int | None
    end_time: int | None
    user_id: str
    artifact_uri: str
    params: dict[str, str]
    metrics: dict[str, WireFloat]
    tags: dict[str, str]
    source: str
    sources: list[str]
    committed: bool
    warnings: list[str]
    clock: int
    """The run's own tick (the clock of its last change)."""


class RunsReply(TypedDict):
    root: str
    clock: str
    is_fresh_instance: bool
    total: int
    offset: int
    next_offset: int | None
    runs: list[RunRow]
    removed: list[str]


class LatestMetric(TypedDict):
    value: WireFloat
    timestamp: int
    step: int


class RunGit(TypedDict):
    commit: NotRequired[str | None]
    dirty: NotRequired[str | None]
    patch: NotRequired[str | None]


class RunEnvironment(TypedDict):
    lock: NotRequired[str | None]
    python: NotRequired[str | None]
    argv: NotRequired[str | None]
    notebook: NotRequired[str]
    inputs: NotRequired[str]
    big_changes: NotRequired[str]


class Reproduction(TypedDict):
    run_id: str
    verdict: str | None
    status: str


class LogInfo(TypedDict):
    """One log of a run, as ``octostore/run`` lists it."""
    name: str
    """"console" for the tee'd log, the artifact's path otherwise."""
    kind: Literal["console", "artifact"] | str
    path: str
    """Relative to the root."""
    size: int
    """Bytes of this run's part."""
    live: bool
    """The writer is still writing (poll ``octostore/log`` from next_offset)."""
    part: Literal["run", "whole"] | str
    """run: the run's part of a log several runs share; whole: all of it."""


class LoggedModelInfo(TypedDict):
    """One logged model of a run, as ``octostore/run`` lists it."""
    model_id: str
    name: str
    source_run_id: str | None
    flavors: list[str]
    """Flavor names of its MLmodel, e.g. ["python_function", "sklearn"]."""
    signature: bool
    size: int
    files: int
    artifact_location: str
    """As the store records it: a ``file:`` URI, a path, or a remote URI."""
    status: str | None
    """"READY", "PENDING", "FAILED", ... (null when the store says nothing)."""
    local: bool
    warnings: list[str]


class RunFull(TypedDict):
    """A run in full (``octostore/run``)."""
    run_id: str
    experiment_id: str
    experiment_key: str
    run_name: str | None
    status: RunStatus
    lifecycle_stage: str
    start_time: int | None
    end_time: int | None
    user_id: str
    artifact_uri: str
    params: dict[str, str]
    metrics: dict[str, LatestMetric]
    tags: dict[str, str]
    source: str
    sources: list[str]
    committed: bool
    warnings: list[str]
    clock: str
    """The root's clock at the reply (a run row's ``clock`` is its own tick)."""
    inputs: NotRequired[list[Object]]
    deleted_time: NotRequired[int | None]
    location: NotRequired[str]
    experiment_name: str | None
    git: RunGit
    environment: RunEnvironment
    models: NotRequired[list[LoggedModelInfo]]
    reproduces: str | None
    reproduced_by: list[Reproduction]
    logs: NotRequired[list[LogInfo]]


class MetricHistoryParams(TypedDict):
    root: str
    run_ids: list[str]
    keys: list[str]
    x: NotRequired[Literal["step", "time", "relative"]]
    max_points: NotRequired[int]


class Series(TypedDict):
    run_id: str
    key: str
    x: list[float]
    y: list[WireFloat]
    points: int
    warnings: list[str]


class MetricHistoryReply(TypedDict):
    root: str
    clock: str
    x: Literal["step", "time", "relative"] | str
    series: list[Series]


# -- artifacts and logs -----------------------------------------------------------------------
class ArtifactsParams(TypedDict):
    root: str
    run_id: str
    path: NotRequired[str]


class ArtifactEntry(TypedDict):
    path: str
    size: int


class ArtifactsReply(TypedDict):
    run_id: str
    artifacts: list[ArtifactEntry]
    warnings: list[str]


class ArtifactParams(TypedDict):
    root: str
    run_id: str
    path: str
    offset: NotRequired[int]
    max_bytes: NotRequired[int]


class ArtifactReply(TypedDict):
    run_id: str
    path: str
    size: int
    offset: int
    next_offset: int
    truncated: bool
    binary: bool
    text: str


class LogParams(TypedDict):
    """A byte range (or the last ``tail`` bytes) of the run's part, or ``grep``'s lines (RE2)."""
    root: str
    run_id: str
    name: NotRequired[str]
    offset: NotRequired[int]
    max_bytes: NotRequired[int]
    tail: NotRequired[int]
    grep: NotRequired[str]
    max_lines: NotRequired[int]


class LogReply(TypedDict):
    run_id: NotRequired[str]
    name: str
    offset: int
    next_offset: int
    size: int
    data: str
    eof: bool
    live: bool


class LogGrepReply(TypedDict):
    run_id: NotRequired[str]
    name: str
    size: int
    matches: list[tuple[int, str]]
    """[line number (1-based, within the run's part), text]"""
    truncated: bool


# -- insights, compare, environment -----------------------------------------------------------
class InsightsParams(TypedDict):
    root: str
    experiment_ids: NotRequired[list[str]]
    metric: NotRequired[str]
    lower_is_better: NotRequired[bool]


class BestRun(TypedDict):
    run_id: str
    run_name: str | None
    value: WireFloat


class KeyMetric(TypedDict):
    key: str
    lower_is_better: bool
    best: list[BestRun]


class Distribution(TypedDict):
    edges: list[float]
    counts: list[int]


class Influence(TypedDict):
    param: str
    score: float
    groups: int
    best_value: str | None
    numeric: bool


class InsightsReply(TypedDict):
    root: str
    clock: str
    total: int
    by_status: dict[str, int]
    per_day: list[list[str | int]]
    """[day as YYYY-MM-DD, runs started that day], oldest first."""
    key_metrics: list[KeyMetric]
    metric: str | None
    distribution: NotRequired[Distribution]
    influence: NotRequired[list[Influence]]


class CompareParams(TypedDict):
    root: str
    run_ids: list[str]


class RunBrief(TypedDict):
    run_id: str
    run_name: str | None
    status: str


class CompareReply(TypedDict):
    root: str
    clock: str
    runs: list[RunBrief]
    params: list[Object]
    metrics: list[Object]
    environment: Object
    code: Object


class EnvironmentReply(TypedDict):
    root: str
    clock: str
    files: list[Object]
    python: list[Object]
    pinned: list[str]
    warning_count: int


class ShutdownReply(TypedDict):
    stopping: bool
    pid: int


# -- commit -----------------------------------------------------------------------------------
class CommitParams(TypedDict):
    root: str
    run_ids: NotRequired[list[str]]
    """Ids or prefixes; default: every run not committed yet."""
    experiment: NotRequired[list[str]]
    message: NotRequired[str]
    dry_run: NotRequired[bool]
    push: NotRequired[bool]
    max_artifact_mb: NotRequired[float]
    gitignore_db: NotRequired[bool]
    no_verify: NotRequired[bool]
    include_other_branches: NotRequired[bool]
    data: NotRequired[list[str]]


class CommittedRun(TypedDict):
    run_id: str
    run_name: str | None
    experiment: str
    folder: str
    status: str
    source: str


class SkippedRun(TypedDict):
    run_id: str
    reason: str


class CommitReply(TypedDict):
    """``octostore/commit``: what was committed, or with ``dry_run`` what would be."""
    root: str
    dry_run: bool
    committed: bool
    commit: str | None
    branch: str | None
    nothing_to_commit: bool
    message: str
    runs: list[CommittedRun]
    skipped: list[SkippedRun]
    already_committed: int
    files: int
    bytes: int
    artifacts: Object
    locks: list[Any]
    patches: list[Any]
    inputs: list[Any]
    notebooks: list[Any]
    models: list[Object]
    other_branches: list[Object]
    env_files: list[Any]
    lfs_setup: Any
    gitignore: Object
    pushed: bool | None
    push_error: NotRequired[str]
    recovered: Any
    warnings: list[str]
    logs: list[Object]
    origins: list[Object]
    refused: list[Any]
    kept: list[Any]
    data: list[Object]
    not_committed: Object | None
    job: str
    clock: str
    remote_not_selected: int


# -- reproduce and jobs -----------------------------------------------------------------------
class ReproduceParams(TypedDict):
    root: str
    run_id: str
    set: NotRequired[dict[str, str] | list[str]]
    """``{"key": "value"}`` or ``["key=value", ...]``."""
    env: NotRequired[Literal["auto", "captured", "model", "project", "current"]]
    python: NotRequired[str]
    tolerance: NotRequired[float]
    ignore_metrics: NotRequired[list[str]]
    tracking_uri: NotRequired[str]
    keep_worktree: NotRequired[bool]
    allow_env_differences: NotRequired[bool]
    rebuild_env: NotRequired[bool]
    wait: NotRequired[bool]
    """Answer once the job has finished, with the job in full."""
    confirmed: NotRequired[bool]
    """The person saw ``data.command`` of a CONFIRMATION_REQUIRED answer and accepted it."""
    dry_run: NotRequired[bool]
    """Answer with the plan and the command; start nothing."""


class CommandDisplay(TypedDict):
    """What a reproduction would run (``data.command`` of CONFIRMATION_REQUIRED)."""
    argv: list[str]
    display: str
    interpreter: str
    script: str | None
    args: list[str]
    env: dict[str, str]
    cwd: str
    commit: str
    source: str
    kind: str
    unusual: bool
    reasons: list[str]
    hash: str
    notebook: str | None


class ReproduceStarted(TypedDict):
    """``octostore/reproduce``: the job started (its progress comes as ``octostore/job``)."""
    job: str
    kind: str
    root: str
    run_id: str
    state: str
    phases: list[str]


class ReproducePlan(TypedDict):
    """``octostore/reproduce`` with ``dry_run``: what it would do; nothing started."""
    plan: Object
    command: CommandDisplay
    accepted: bool


class MetricCheck(TypedDict):
    key: str
    original: WireFloat | None
    reproduced: WireFloat | None
    abs_diff: NotRequired[float | None]
    rel_diff: NotRequired[float | None]
    status: Literal["equal", "diverged", "missing", "new", "ignored"] | str


class ReproduceResult(TypedDict):
    """A reproduction job's result (partial while it runs)."""
    verdict: str | None
    run_id: str
    run_name: str | None
    experiment: str
    new_run_id: str | None
    overrides: dict[str, str]
    tolerance: float
    ignore_metrics: list[str]
    metrics: NotRequired[list[MetricCheck]]
    params: NotRequired[list[Object]]
    diverged: NotRequired[list[str]]
    diverged_inputs: NotRequired[list[str]]
    inputs: NotRequired[list[Object]]
    environment: NotRequired[Object]
    notes: NotRequired[list[str]]
    console_log: NotRequired[str]
    run_seconds: NotRequired[float]
    worktree: NotRequired[str]
    failed: NotRequired[Object]
    clock: NotRequired[str]
    commit: NotRequired[str]
    patch: NotRequired[str | None]
    entry_point: NotRequired[Object]
    command: NotRequired[CommandDisplay]
    store: NotRequired[Object]
    new_experiment_id: NotRequired[str | None]
    new_run_status: NotRequired[str | None]
    other_runs: NotRequired[list[Any]]


class JobInfo(TypedDict):
    """A job as ``octostore/jobs`` lists it (and ``octostore/reproduce`` with ``wait``)."""
    job: str
    kind: str
    root: str
    state: Literal["running", "succeeded", "failed", "cancelled"] | str
    phase: str
    phases: list[str]
    message: str
    progress: float | None
    created: float
    ended: float | None
    timings: dict[str, float]
    params: Object
    log_tail: list[str]
    result: ReproduceResult | None
    error: Object | None


class JobsParams(TypedDict):
    root: NotRequired[str]
    job: NotRequired[str]
    log_lines: NotRequired[int]
    follow: NotRequired[bool]


class JobsReply(TypedDict):
    jobs: list[JobInfo]


class CancelParams(TypedDict):
    job: str


class CancelReply(TypedDict):
    job: str
    cancelled: bool
    state: str
    phase: str
    result: ReproduceResult | None


# -- notifications ----------------------------------------------------------------------------
class ChangedNotification(TypedDict):
    """``octostore/changed``: one per applied batch of changes of a subscribed root."""
    root: str
    clock: str
    runs: list[str]
    removed: list[str]
    experiments: list[str]
    environment: bool
    git: bool
    subscription: str


class JobNotification(TypedDict):
    """``octostore/job`` of a job (a reproduction): to its owner and the root's subscribers."""
    job: str
    kind: str
    root: str
    event: Literal["started", "phase", "progress", "log", "finished"] | str
    state: str
    phase: str
    phases: list[str]
    message: str
    progress: float | None
    lines: NotRequired[list[str]]
    result: NotRequired[ReproduceResult | None]
    error: NotRequired[Object | None]
    timings: NotRequired[dict[str, float]]


class CommitProgress(TypedDict):
    """``octostore/job`` of a commit: its progress, to the connection that asked."""
    job: str
    kind: Literal["commit"]
    root: str
    phase: str
    message: str


def resolve(expr: str) -> Any:
    """The type a spec names: ``"RunsReply"``, or a union ``"LogReply | LogGrepReply"``."""
    out: Any = None
    for name in expr.split("|"):
        out = globals()[name.strip()] if out is None else out | globals()[name.strip()]
    return out
