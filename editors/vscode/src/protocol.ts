// The daemon's socket protocol as the extension uses it: method names, error codes and reply
// shapes. Mirrors octostored/rpc/protocol.py, rpc/shape.py and the handlers; the unit tests check
// these shapes against replies recorded from a real daemon (src/test/unit/fixtures/).
// Metric values that are not finite arrive as the strings "NaN", "Infinity", "-Infinity".

export const PROTOCOL_VERSION = 1;

export const Methods = {
  status: 'octostore/status',
  sync: 'octostore/sync',
  open: 'octostore/open',
  subscribe: 'octostore/subscribe',
  unsubscribe: 'octostore/unsubscribe',
  experiments: 'octostore/experiments',
  runs: 'octostore/runs',
  run: 'octostore/run',
  metricHistory: 'octostore/metric_history',
  artifacts: 'octostore/artifacts',
  artifact: 'octostore/artifact',
  log: 'octostore/log',
  insights: 'octostore/insights',
  compare: 'octostore/compare',
  commit: 'octostore/commit',
  reproduce: 'octostore/reproduce',
  jobs: 'octostore/jobs',
  cancel: 'octostore/cancel',
  shutdown: 'octostore/shutdown',
} as const;

export const Notifications = {
  changed: 'octostore/changed',
  job: 'octostore/job',
} as const;

export const ErrorCodes = {
  MethodNotFound: -32601,
  InvalidParams: -32602,
  RootNotFound: 1001,
  BadFilter: 1002,
  RunNotFound: 1003,
  ExperimentNotFound: 1004,
  ArtifactNotFound: 1005,
  PathOutside: 1006,
  NotSupported: 1007,
  LogNotFound: 1008,
  /** `octostore/reproduce`: the command the run recorded is not accepted yet (`data.command`). */
  ConfirmationRequired: 1032,
} as const;

/** A metric value on the wire: a number, or "NaN" / "Infinity" / "-Infinity". */
export type WireFloat = number | string;

export interface SourceSummary {
  id: string;
  kind: string;
  path: string;
  committed: boolean;
  runs: number;
  warnings: string[];
  watching: string;
}

export interface RootSummary {
  root: string;
  clock: string;
  state: string;
  runs: number;
  experiments: number;
  sources: SourceSummary[];
  warnings: string[];
}

export interface StatusReply {
  protocol_version: number;
  capabilities: string[];
  version: string;
  pid: number;
  instance: string;
  uptime: number;
  clients: number;
  roots: RootSummary[];
}

export interface ExperimentRow {
  experiment_id: string;
  key: string;
  name: string;
  lifecycle_stage: string;
  runs: number;
  active_runs: number;
  last_activity: number | null;
  warnings: string[];
}

export interface ExperimentsReply {
  root: string;
  clock: string;
  experiments: ExperimentRow[];
}

export type RunStatus = 'RUNNING' | 'SCHEDULED' | 'FINISHED' | 'FAILED' | 'KILLED' | string;

export interface RunRow {
  run_id: string;
  experiment_id: string;
  experiment_key: string;
  run_name: string | null;
  status: RunStatus;
  lifecycle_stage: string;
  start_time: number | null;
  end_time: number | null;
  user_id: string;
  artifact_uri: string;
  params: Record<string, string>;
  metrics: Record<string, WireFloat>;
  tags: Record<string, string>;
  committed: boolean;
  warnings: string[];
  clock: number;
}

export interface RunsReply {
  root: string;
  clock: string;
  is_fresh_instance: boolean;
  total: number;
  offset: number;
  next_offset: number | null;
  runs: RunRow[];
  removed: string[];
}

export interface LatestMetric {
  value: WireFloat;
  timestamp: number;
  step: number;
}

export interface RunFull extends Omit<RunRow, 'metrics' | 'clock'> {
  /** The root's clock at the reply (a run row's `clock` is its own tick). */
  clock: string;
  metrics: Record<string, LatestMetric>;
  experiment_name: string | null;
  git: { commit?: string | null; dirty?: string | null; patch?: string | null };
  environment: { lock?: string | null; python?: string | null; argv?: string | null };
  reproduces: string | null;
  reproduced_by: { run_id: string; verdict: string | null; status: string }[];
  inputs?: unknown[];
  location?: string;
  /** The run's console logs (daemons before console logs send none). */
  logs?: LogInfo[];
  /** The run's logged models (MLflow 3 keeps them apart from its artifacts; daemons before
   * this send none). octostored/sources/models.py, `LoggedModel.summary`. */
  models?: LoggedModelInfo[];
}

/** One logged model of a run, as `octostore/run` lists it. */
export interface LoggedModelInfo {
  model_id: string;
  name: string;
  source_run_id: string | null;
  /** Flavor names of its MLmodel, e.g. ["python_function", "sklearn"]. */
  flavors: string[];
  /** It has a signature. */
  signature: boolean;
  /** Bytes on disk (0 when not on this machine). */
  size: number;
  files: number;
  /** As the store records it: a `file:` URI, a path, or a remote URI. */
  artifact_location: string;
  /** "READY", "PENDING", "FAILED", ... (null when the store says nothing). */
  status: string | null;
  /** Its files are on this machine. */
  local: boolean;
  warnings: string[];
}

/** One log of a run, as `octostore/run` lists it. */
export interface LogInfo {
  /** "console" for the tee'd log, the artifact's path otherwise. */
  name: string;
  kind: 'console' | 'artifact' | string;
  /** Relative to the root. */
  path: string;
  /** Bytes of this run's part. */
  size: number;
  /** The writer is still writing (poll `octostore/log` from next_offset). */
  live: boolean;
  /** "run": the run's part of a log shared by several runs; "whole": all of it. */
  part: 'run' | 'whole' | string;
}

/** The params of `octostore/log`: a byte range (or the last `tail` bytes) of the run's part, or
 * with `grep` the lines matching a regular expression (RE2 syntax). */
export interface LogParams {
  root: string;
  run_id: string;
  name?: string;
  offset?: number;
  max_bytes?: number;
  tail?: number;
  grep?: string;
  max_lines?: number;
}

export interface LogReply {
  name: string;
  offset: number;
  next_offset: number;
  size: number;
  data: string;
  eof: boolean;
  live: boolean;
}

export interface LogGrepReply {
  name: string;
  size: number;
  /** [line number (1-based, within the run's part), text] */
  matches: [number, string][];
  truncated: boolean;
}

export interface Series {
  run_id: string;
  key: string;
  x: number[];
  y: WireFloat[];
  points: number;
  warnings: string[];
}

export interface MetricHistoryReply {
  root: string;
  clock: string;
  x: string; // 'step' | 'time' | 'relative'
  series: Series[];
}

export interface ArtifactEntry {
  path: string;
  size: number;
}

export interface ArtifactsReply {
  run_id: string;
  artifacts: ArtifactEntry[];
  warnings: string[];
}

export interface ArtifactReply {
  run_id: string;
  path: string;
  size: number;
  offset: number;
  next_offset: number;
  truncated: boolean;
  binary: boolean;
  text: string;
}

export interface BestRun {
  run_id: string;
  run_name: string | null;
  value: WireFloat;
}

export interface KeyMetric {
  key: string;
  lower_is_better: boolean;
  best: BestRun[];
}

export interface InsightsReply {
  root: string;
  clock: string;
  total: number;
  by_status: Record<string, number>;
  key_metrics: KeyMetric[];
  metric: string | null;
}

export interface ChangedNotification {
  root: string;
  clock: string;
  runs: string[];
  removed?: string[];
  experiments: string[];
  subscription?: string;
}

/** The params of `octostore/reproduce` (DESIGN.md: `octostore reproduce RUN [--set alpha=0.3]`). */
export interface ReproduceParams {
  root: string;
  run_id: string;
  set?: Record<string, string>;
  /** The person saw `data.command` of a CONFIRMATION_REQUIRED answer and accepted it. */
  confirmed?: boolean;
  /** Answer with the plan and the command; start nothing. */
  dry_run?: boolean;
}

/** What a reproduction would run (`data.command` of CONFIRMATION_REQUIRED, octostored/reproduce/command.py). */
export interface CommandDisplay {
  argv: string[];
  display: string;
  interpreter: string;
  script: string | null;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  commit: string;
  source: string;
  kind: string;
  unusual: boolean;
  reasons: string[];
  hash: string;
}

/** The params of `octostore/commit` (`dry_run` answers with the plan and commits nothing). */
export interface CommitParams {
  root: string;
  run_ids?: string[];
  dry_run?: boolean;
  message?: string;
}
