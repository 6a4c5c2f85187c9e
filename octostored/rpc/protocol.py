"""The socket protocol's contract, in one place: version, methods, errors, notifications.

Import-free (nothing but this module and :mod:`.protocol_types`, which holds the params, reply
and payload types that the specs here name): the daemon, the CLI, the TUI and the generator of
the VS Code extension's ``protocol.ts`` (``docs/gen_protocol_ts.py``) all read it, and a client
never pulls in the daemon through it.  Cheap to import (plain classes, no typing): every CLI
call loads it.

- :data:`METHOD_SPECS`: one :class:`Method` per ``octostore/*`` method: its name, a one-line
  summary, its params and reply types (by name, in :mod:`.protocol_types`), whether it takes
  ``root``, its deadline, and the prose of ``docs/protocol.md``.  Handlers register through it
  (:mod:`octostored.rpc.register`): a name not here cannot be registered, and a test checks that
  a real server has a handler for each.
- :data:`ERRORS`: every error code with its name, exception class and meaning.  Codes sit outside
  the JSON-RPC (-32768..-32000) and LSP (-32899..-32800) reserved ranges; append new ones, never
  renumber.
- :data:`NOTIFICATIONS`: every notification the daemon sends, with its payload type.

Clients check ``PROTOCOL_VERSION`` through ``octostore/status`` and refuse a mismatch with a
remedy.
"""

PROTOCOL_VERSION = 1
"""Bump on any incompatible change of a method's params or reply."""

DEFAULT_DEADLINE = "default"
"""A method's deadline is the daemon's default (``OCTOSTORE_REQUEST_DEADLINE``, 120 s)."""


class Method:
    """One method: ``name``; ``summary`` (one line); ``params`` and ``reply``, the names of its
    types in :mod:`.protocol_types` (a reply may be a union, ``"LogReply | LogGrepReply"``;
    which params are required is in the type's ``__required_keys__``); ``rooted``: it takes
    ``root`` (required) and its handler gets the open root (:func:`..register.rooted`);
    ``deadline``: seconds, None for none, :data:`DEFAULT_DEADLINE` for the default; ``doc``:
    its description in ``docs/protocol.md``."""

    __slots__ = ("name", "summary", "params", "reply", "rooted", "deadline", "doc")

    def __init__(self, name: str, summary: str, params: str, reply: str, *, rooted: bool,
                 deadline: float | str | None = DEFAULT_DEADLINE, doc: str = "") -> None:
        self.name = name
        self.summary = summary
        self.params = params
        self.reply = reply
        self.rooted = rooted
        self.deadline = deadline
        self.doc = doc

    def __repr__(self) -> str:
        return f"Method({self.name!r})"


METHOD_SPECS: tuple[Method, ...] = (
    Method(
        'octostore/status', 'protocol version and capabilities, daemon version, pid, uptime, roots with run counts, clocks and indexing state',
        'Empty', 'StatusReply', rooted=False,
        doc="Protocol version and capabilities (`cmd-<method>`), daemon version, pid, uptime, clients, and each open root with its run counts, clock, indexing state and sources. A source's `state` may be `untrusted` (a tracking server the repo names that the user has not trusted: no request is sent to it, no runs; its `warning` says how to trust it with `octostore remote trust URI`), and its `watching` is `polling`, with a warning, when more than 16 roots are watched by processes."),
    Method(
        'octostore/sync', 'answer once every change on disk before this call is in the index',
        'RootParams', 'ClockReply', rooted=True, deadline=300.0,
        doc='Answers once every change on disk made before the call is in the index. Tests and scripts wait on this, never on sleeps.'),
    Method(
        'octostore/open', 'open a root; its sources, counts, clock, warnings',
        'RootParams', 'RootSummary', rooted=True,
        doc="Opens a root (or returns it if open): its sources with their kind, run counts and warnings, counts, clock and state. It answers once every run is in the index: `state` is `verifying` while the watch is being set up and the store re-checked for changes made during the first read (or since the snapshot), `ready` after that, `failed` if the first read failed; `octostore/sync` waits for `ready`. `warnings` may name a root file that was skipped (e.g. `.env` is not a regular file (a FIFO); octostore skipped it). `search` says how deep stores were looked for: `{depth, git, limited}`; `limited` is true for a root that is not a git work tree and has no MLflow store at its top (say `/tmp`), searched only `search_depth_outside_git` folders deep (the user's `config.toml`, default 1) so other people's folders stay unread. One connection may name 32 distinct roots (1011). Answers 1012 past its deadline (120 s, `OCTOSTORE_REQUEST_DEADLINE`)."),
    Method(
        'octostore/subscribe', 'get octostore/changed notifications for a root on this connection',
        'SubscribeParams', 'SubscribeReply', rooted=True,
        doc='Sends `octostore/changed` notifications for this root on this connection until it closes. `since` (a clock) tells whether that clock is still valid (`is_fresh_instance`).'),
    Method(
        'octostore/unsubscribe', "stop this connection's notifications for a root",
        'RootParams', 'UnsubscribeReply', rooted=True,
        doc="Stops this connection's notifications for a root."),
    Method(
        'octostore/experiments', 'experiments with run counts and last activity',
        'ExperimentsParams', 'ExperimentsReply', rooted=True,
        doc='Experiments with run counts and last activity. `view`: active (default), deleted, all. `key` is unique in the root (`<id>@<store>` when two stores reuse an id).'),
    Method(
        'octostore/runs', "search runs with MLflow's semantics, a page at a time",
        'RunsParams', 'RunsReply', rooted=True,
        doc='Search runs with MLflow\'s semantics: `filter` (MLflow search syntax), `order_by` (list), `experiment_ids` (keys, ids or names), `view` (active|deleted|all), `columns` (e.g. `["params.alpha", "metrics.rmse"]` to trim params/metrics/tags), `offset`, `limit` (default 1000, max 10000), `since_clock`. Metrics are the latest values. A filter over 16 KiB or 200 conditions, or an `order_by` over 100 items or 4 KiB, is 1009 before anything parses it; a page also ends after 24 MiB of rows (follow `next_offset`). A run of a SQLite store that can no longer be read carries the warning \'the store <id> could not be read (<reason>); these runs are its last known state\' until the store reads again.'),
    Method(
        'octostore/run', 'one run in full: params, metrics, tags, datasets, models, logs, git, environment, reproductions',
        'RunParams', 'RunFull', rooted=True,
        doc="One run in full: metrics with step and timestamp, params, tags, datasets, sources, committed flag, git and environment tags, reproductions both ways, and `logs`: the run's console logs (`name`, `kind` console|artifact, root-relative `path`, `size` of the run's part in bytes, `live` while the writer still writes, `part` run|whole). `committed` is true when the run's folder is in HEAD's tree. `git.commit` falls back to the capture's `octostore.git.commit` (MLflow records none for notebook runs); `environment` also holds `notebook`, `inputs` and `big_changes` when the capture recorded them."),
    Method(
        'octostore/metric_history', 'series for runs x keys, x by step, time or relative time, downsampled keeping extremes',
        'MetricHistoryParams', 'MetricHistoryReply', rooted=True,
        doc="Series for `run_ids` x `keys`; `x`: step (default), time (epoch ms) or relative (seconds since the run started); downsampled to `max_points` keeping each bucket's extremes and the last point. `points` is the full count. A reply over 1,000,000 points (after downsampling) is 1010."),
    Method(
        'octostore/artifacts', "list a run's artifact files",
        'ArtifactsParams', 'ArtifactsReply', rooted=True,
        doc="A run's artifact files (path relative to the run's artifact folder, size). `path` lists a subfolder."),
    Method(
        'octostore/artifact', 'read one artifact (text, bounded, with offset for tailing)',
        'ArtifactParams', 'ArtifactReply', rooted=True,
        doc='Reads one text artifact: `path`, `offset`, `max_bytes` (default 256 KiB, max 1 MiB). Follow a growing log by passing `next_offset` back. Never leaves the artifact folder.'),
    Method(
        'octostore/log', "a run's console log: a byte range, its tail, or the lines a regex matches",
        'LogParams', 'LogReply | LogGrepReply', rooted=True,
        doc="Reads a run's console log: `name` (default: the first of the run's `logs`), `offset` and `max_bytes` (default 256 KiB, max 1 MiB) in bytes of the run's part, or `tail` (the last N bytes; overrides offset). `data` never splits a UTF-8 character (`offset` may move forward to the next one; `next_offset` counts the bytes consumed); ANSI colours and carriage returns are kept as written. While `live` is true, poll from `next_offset` every 0.5-1 s. With `grep` (a regular expression in RE2 syntax) and `max_lines` (default 1000) the reply is instead the matching lines `[line number in the part, text]` and `truncated`. A bad regex is -32602; no log is 1008; a log tag that leaves the repo is 1006. `grep` takes RE2 syntax (Python's without backreferences and lookaround; linear whatever the pattern); a pattern over 4,000 characters is 1009; matches stop at 4 MiB of text (`truncated`); a search over 30 s is 1012."),
    Method(
        'octostore/insights', 'highlights: runs by status and day, best runs per metric, distribution, parameter influence',
        'InsightsParams', 'InsightsReply', rooted=True,
        doc='Highlights of the active runs: counts by status and day, the best runs of each key metric (lower is better for loss/error/rmse-like names; `lower_is_better` overrides it for `metric`), the distribution of `metric`, and the params that move it most.'),
    Method(
        'octostore/compare', 'runs side by side: params diff, metrics, environment and code',
        'CompareParams', 'CompareReply', rooted=True,
        doc='Two or more `run_ids` side by side: params (with `differs`), metrics (with the best run), environment hashes and git commits. `run_ids` are deduplicated; more than 100 is 1009.'),
    Method(
        'octostore/environment', "the root's environment files, parsed",
        'RootParams', 'EnvironmentReply', rooted=True,
        doc="The root's environment files (requirements, pyproject, uv.lock, conda, MLproject...), parsed. A file's `warnings` say when it was skipped (not a regular file, or over the 4 MiB cap). Pipfile records also carry `indexes` and `options`."),
    Method(
        'octostore/shutdown', 'stop the daemon',
        'Empty', 'ShutdownReply', rooted=False,
        doc="Stops the daemon (LSP `shutdown`/`exit` from an editor only close that editor's connection)."),
    Method(
        'octostore/commit', 'commit runs to git in one commit (or show the plan with dry_run)',
        'CommitParams', 'CommitReply', rooted=True, deadline=None,
        doc="Commits runs to git in one commit that holds exactly them (MLflow's file-store layout under `.octostore/runs/`, with their environment locks and patches), never touching the user's other changes. `run_ids` (default: every run not committed yet), `experiment`, `message`, `dry_run` (answer the plan only), `push`. Copies nothing from outside the repo's work tree (real paths, links resolved): each refused place is in `refused` and a warning; the dry run lists `origins` (`{source, dest, run_id, refused}`, refused first). The repo's pre-commit and commit-msg hooks run on exactly what the commit holds (`no_verify: true` skips them; a failure is 1022 with `data.hook` and `data.output`). A user's own files in a re-exported run folder are kept (`kept`); one she edited refuses the commit (1020). A run is committed when its folder is in HEAD's tree. `data` (paths of data files or folders inside the repo) adds them to the commit, through Git LFS above the size limit (a git-ignored one with force); the reply's `data` lists each with its route, and `not_committed` the runs' recorded inputs git does not track. `include_other_branches: true` also takes runs made on other branches (listed apart in `other_branches` otherwise); `models` lists each run's logged models with size and route."),
    Method(
        'octostore/reproduce', 'start a reproduction job (or show its plan with dry_run)',
        'ReproduceParams', 'ReproduceStarted | ReproducePlan | JobInfo', rooted=True, deadline=None,
        doc='Starts a reproduction job for `run_id` (with `set` overrides, `env`, `tolerance`); `octostore/job` notifications carry its phase, progress and log lines, and its result the verdict. A command the repo recorded runs only once the user accepted it: without `confirmed: true`, a command not yet accepted for this repo answers 1032 with `data.command` (`argv`, `display`, `interpreter`, `script`, `args`, `env`, `cwd`, `commit`, `source`, `kind`, `unusual`, `reasons`, `hash`); `confirmed: true` records the acceptance in the user\'s state folder and starts the job. `dry_run: true` answers `{plan, command, accepted}` and starts nothing. `env: "model"` uses the environment the run\'s model recorded (a model folder in its artifacts, or its MLflow 3 logged model, live or committed: the one named `model` or the only one). A run\'s recorded inputs are checked before anything runs: `result.inputs` lists each `{path, size, sha256, why, case, detail}` with `case` in-commit, provided, differs or missing; a missing one fails the job in resolve; one that differs makes the verdict `diverged`. The result\'s `environment.why` says which environment file was used and why; `environment.cache_evicted` lists environments the cache cap removed.'),
    Method(
        'octostore/jobs', 'list jobs (running and finished)',
        'JobsParams', 'JobsReply', rooted=False,
        doc="Lists the daemon's jobs (running and finished) with phase, progress and result."),
    Method(
        'octostore/cancel', 'cancel a job',
        'CancelParams', 'CancelReply', rooted=False,
        doc='Cancels a job by `job` (its id): stops its process tree and cleans its worktree.'),
)
"""Every ``octostore/*`` method, in the order ``octostore/status`` advertises them."""

SPECS: dict[str, Method] = {m.name: m for m in METHOD_SPECS}
METHODS: tuple[str, ...] = tuple(SPECS)
"""Every ``octostore/*`` method; each is advertised as capability ``cmd-<name>``."""


# -- errors -------------------------------------------------------------------------------------
class Error:
    """One error code: ``code``; ``name``, its constant here (``ROOT_NOT_FOUND``);
    ``exception``, the class in :mod:`octostored.rpc.errors` that answers it (None: JSON-RPC's
    own); ``meaning``, one line as ``docs/protocol.md`` lists it; ``title``, the heading a client
    shows above the message (the TUI; None: "Daemon error")."""

    __slots__ = ("code", "name", "exception", "meaning", "title")

    def __init__(self, code: int, name: str, exception: str | None, meaning: str,
                 title: str | None = None) -> None:
        self.code = code
        self.name = name
        self.exception = exception
        self.meaning = meaning
        self.title = title

    def __repr__(self) -> str:
        return f"Error({self.code}, {self.name!r})"


ERRORS: tuple[Error, ...] = (
    Error(-32700, "PARSE_ERROR", None, "the body is not JSON"),
    Error(-32600, "INVALID_REQUEST", None,
          "not a JSON-RPC 2.0 request object (batches are not supported)"),
    Error(-32601, "METHOD_NOT_FOUND", None, "unknown method"),
    Error(-32602, "INVALID_PARAMS", "InvalidParams",
          "a parameter has the wrong type or value (an explicit `null` means not given)",
          "Bad request"),
    Error(-32603, "INTERNAL_ERROR", None,
          "a bug in the daemon (please report it, with `octostore daemon logs`)"),
    Error(1001, "ROOT_NOT_FOUND", "RootNotFound",
          "`root` is missing, does not exist or is a file", "Folder not found"),
    Error(1002, "BAD_FILTER", "BadFilter",
          "the filter or order_by is not valid MLflow search syntax", "Bad filter"),
    Error(1003, "RUN_NOT_FOUND", "RunNotFound",
          "no such run (ids and unique prefixes of 6+ characters are accepted)", "Run not found"),
    Error(1004, "EXPERIMENT_NOT_FOUND", "ExperimentNotFound",
          "no such experiment (by key, id or name)", "Experiment not found"),
    Error(1005, "ARTIFACT_NOT_FOUND", "ArtifactNotFound",
          "no such artifact, or the run's artifacts are not on this machine",
          "Artifact not found"),
    Error(1006, "PATH_OUTSIDE", "PathOutside",
          "an artifact path leaves the run's artifact folder", "Path outside the run"),
    Error(1007, "NOT_SUPPORTED", "OctostoreError",
          "the request is valid but cannot be done here (the message says why)",
          "Not supported"),
    Error(1008, "LOG_NOT_FOUND", "LogNotFound",
          "the run has no console log (or it is not on this machine, or no log has that name)",
          "No console log"),
    Error(1009, "REQUEST_TOO_LARGE", "RequestTooLarge",
          "a filter, pattern, list or body is over its cap (the message gives it): filter 16 KiB or 200 conditions, order_by 100 items or 4 KiB, a list param 10,000 items, compare 100 runs, a grep pattern 4,000 characters, a body 16 MiB, 64 MiB of large bodies arriving at once"),
    Error(1010, "REPLY_TOO_LARGE", "ReplyTooLarge",
          "the reply would be over 32 MiB (or metric_history over 1,000,000 points): page with `limit` and `offset`, or ask for fewer series"),
    Error(1011, "TOO_MANY_ROOTS", "TooManyRoots",
          "this connection already named 32 distinct roots"),
    Error(1012, "DEADLINE_EXCEEDED", "DeadlineExceeded",
          "the request ran past its deadline (120 s by default, `OCTOSTORE_REQUEST_DEADLINE`; sync 300 s; a log search 30 s) and was stopped"),
    Error(1020, "COMMIT_REFUSED", "CommitRefused",
          "the repo cannot take a commit now (not a repo, a merge in progress, another commit)"),
    Error(1021, "GIT_FAILED", "GitFailed", "a git command failed; the repo was left as it was"),
    Error(1022, "HOOK_REFUSED", "HookRefused",
          "the repo's pre-commit hook refused the commit (`no_verify` skips it)"),
    Error(1030, "JOB_NOT_FOUND", "JobNotFound", "no job with that id"),
    Error(1031, "CANNOT_REPRODUCE", "CannotReproduce",
          "the run cannot be reproduced as asked (the message says why)"),
    Error(1032, "CONFIRMATION_REQUIRED", "ConfirmationRequired",
          "the run's recorded command must be shown to the user and confirmed: `data.command` holds it; resend with `confirmed: true`"),
)
"""Every error code a client can get, in ``docs/protocol.md``'s order."""

ERROR_TITLES: dict[int, str] = {e.code: e.title for e in ERRORS if e.title}
"""Code -> the heading a client shows (codes without one: "Daemon error")."""

# The codes as constants (append only; checked against ERRORS by tests/test_protocol_contract.py).
# JSON-RPC's own codes have none but INVALID_PARAMS: an upper-case int here is a code a client's
# mistake may earn (tests read them so), and -32603 is always a bug.
INVALID_PARAMS = -32602
ROOT_NOT_FOUND = 1001
BAD_FILTER = 1002
RUN_NOT_FOUND = 1003
EXPERIMENT_NOT_FOUND = 1004
ARTIFACT_NOT_FOUND = 1005
PATH_OUTSIDE = 1006
NOT_SUPPORTED = 1007
LOG_NOT_FOUND = 1008
REQUEST_TOO_LARGE = 1009
"""A request's filter, pattern or other input is over its size or cost cap."""
REPLY_TOO_LARGE = 1010
"""The reply would be over the reply cap: ask for a smaller page."""
TOO_MANY_ROOTS = 1011
"""This connection has as many roots open as it may."""
DEADLINE_EXCEEDED = 1012
"""The request ran past its deadline and was stopped."""
COMMIT_REFUSED = 1020
GIT_FAILED = 1021
HOOK_REFUSED = 1022
"""The repo's pre-commit hook refused the commit."""
JOB_NOT_FOUND = 1030
CANNOT_REPRODUCE = 1031
CONFIRMATION_REQUIRED = 1032
"""A command the repo recorded must be shown to the user and confirmed (``confirmed: true``)."""


# -- notifications ------------------------------------------------------------------------------
class Notification:
    """One notification: ``name``, ``summary``, ``payload`` (its type's name in
    :mod:`.protocol_types`)."""

    __slots__ = ("name", "summary", "payload")

    def __init__(self, name: str, summary: str, payload: str) -> None:
        self.name = name
        self.summary = summary
        self.payload = payload

    def __repr__(self) -> str:
        return f"Notification({self.name!r})"


NOTIFICATION_CHANGED = "octostore/changed"
NOTIFICATION_JOB = "octostore/job"

NOTIFICATIONS: tuple[Notification, ...] = (
    Notification(NOTIFICATION_CHANGED, "a subscribed root changed (one per applied batch)",
                 "ChangedNotification"),
    Notification(NOTIFICATION_JOB, "a job's progress: a reproduction's events, or a commit's "
                 "phases (to the connection that asked)", "JobNotification | CommitProgress"),
)
"""Every notification the daemon sends (LSP's own aside)."""
