// Reproduction jobs: the reply of `octostore/reproduce`, the `octostore/job` notifications that
// follow it, and the final result with its verdict. Their shapes are the generated protocol.ts's
// (ReproduceStarted, JobNotification, CommitProgress, JobInfo, ReproduceResult, CommandDisplay);
// the reading stays tolerant (it accepts other obvious spellings too, and never throws), and the
// daemon's own spellings are pinned to those types below: a field renamed in the contract fails
// to compile here.
import { fmtValue, toNumber } from './format';
import type {
  CommandDisplay, CommitProgress, JobInfo, JobNotification, MetricCheck as WireMetricCheck, ReproduceResult,
  ReproduceStarted, WireFloat,
} from '../protocol';

/** `K`, checked to be fields of `T`. */
type Fields<T, K extends keyof T> = K;
/** What the readings below take from the daemon, by its spellings. */
export type DaemonJobFields = Fields<JobNotification & JobInfo,
  'job' | 'state' | 'phase' | 'phases' | 'message' | 'progress' | 'result' | 'error'> |
  Fields<JobNotification, 'lines' | 'event'> | Fields<CommitProgress, 'job' | 'kind' | 'phase' | 'message'> |
  Fields<ReproduceStarted, 'job' | 'state' | 'phases'>;
export type DaemonResultFields = Fields<ReproduceResult, 'verdict' | 'metrics' | 'new_run_id'> |
  Fields<WireMetricCheck, 'key' | 'original' | 'reproduced' | 'status'>;
export type DaemonCommandFields = Fields<CommandDisplay,
  'display' | 'interpreter' | 'script' | 'args' | 'env' | 'cwd' | 'commit' | 'source' | 'unusual' | 'reasons'>;

const TERMINAL = new Set(['done', 'succeeded', 'success', 'finished', 'completed', 'complete',
  'failed', 'error', 'errored', 'cancelled', 'canceled', 'killed']);
const FAILED = new Set(['failed', 'error', 'errored']);
const CANCELLED = new Set(['cancelled', 'canceled', 'killed']);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined =>
  typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;

/** The job id in a reply or notification (`job_id`, `job`, `id`, or `job.id`). */
export function jobIdOf(msg: unknown): string | undefined {
  if (!isObj(msg)) return undefined;
  if (isObj(msg.job)) return str(msg.job.job_id) ?? str(msg.job.id);
  return str(msg.job_id) ?? str(msg.job) ?? str(msg.id);
}

export interface JobUpdate {
  jobId?: string;
  phase?: string;
  message?: string;
  /** Progress as a fraction in [0, 1], when the daemon gives one. */
  fraction?: number;
  log: string[];
  state?: string;
  done: boolean;
  failed: boolean;
  cancelled: boolean;
  error?: string;
  result?: Obj;
}

/** One job notification (JobNotification, CommitProgress), or a reply that already holds the
 * final state (JobInfo, ReproduceStarted). */
export function parseJobUpdate(msg: unknown): JobUpdate {
  const m: Obj = isObj(msg) ? (isObj(msg.job) ? { ...msg, ...msg.job } : msg) : {};
  const state = (str(m.state) ?? str(m.status))?.toLowerCase();
  let fraction: number | undefined;
  const p = m.progress ?? m.fraction ?? m.percent;
  if (typeof p === 'number' && Number.isFinite(p)) fraction = p > 1 ? Math.min(1, p / 100) : Math.max(0, p);
  else if (isObj(p) && typeof p.done === 'number' && typeof p.total === 'number' && p.total > 0) {
    fraction = p.done / p.total;
  }
  const phase = str(m.phase) ?? str(m.step);
  // No fraction of its own: how far through the declared phases the job is.
  if (fraction === undefined && Array.isArray(m.phases) && phase && m.phases.includes(phase)) {
    fraction = m.phases.indexOf(phase) / m.phases.length;
  }
  const rawLog = m.log ?? m.lines ?? m.output;
  const log = Array.isArray(rawLog) ? rawLog.map((l) => String(l)) : typeof rawLog === 'string' ? rawLog.split('\n').filter((l) => l !== '') : [];
  const result = isObj(m.result) ? m.result : (m.verdict !== undefined ? m : undefined);
  const errorValue = m.error;
  const error = isObj(errorValue)
    ? [str(errorValue.message), str(errorValue.remedy)].filter(Boolean).join('; ') || undefined
    : str(errorValue);
  const failed = state !== undefined ? FAILED.has(state) : error !== undefined && !result;
  const cancelled = state !== undefined && CANCELLED.has(state);
  // A running job may already carry a partial result (octostored/jobs.py): its state decides.
  const done = m.done === true || m.event === 'finished' ||
    (state !== undefined ? TERMINAL.has(state) : result !== undefined || failed);
  return {
    jobId: jobIdOf(m),
    phase,
    message: str(m.message) ?? str(m.detail),
    fraction,
    log,
    state,
    done,
    failed,
    cancelled,
    error,
    result,
  };
}

export interface MetricCheck {
  key: string;
  original?: WireFloat;
  reproduced?: WireFloat;
  same?: boolean;
}

export interface ReproduceSummary {
  verdict: string;
  ok: boolean;
  newRunId?: string;
  metrics: MetricCheck[];
  /** One line for a notification: "same: rmse 0.61 = 0.61 · mae 0.47 = 0.47". */
  text: string;
  /** The metric part alone, metrics that moved first: "rmse 0.61 ≠ 0.7 · mae 0.47 = 0.47". */
  details: string;
}

const OK_VERDICTS = /^(same|identical|match|matches|matched|reproduced|ok|pass|passed|success|equal|within)$/i;

/** The verdict of a finished reproduction (a ReproduceResult), for a notification. */
export function summarizeResult(result: unknown): ReproduceSummary {
  const r: Obj = isObj(result) ? result : {};
  const metrics: MetricCheck[] = [];
  const raw = r.metrics ?? r.comparison ?? r.compare;
  const push = (key: string, v: unknown) => {
    if (!isObj(v)) return;
    const orig = (v.original ?? v.expected ?? v.old ?? v.before) as WireFloat | undefined;
    const repr = (v.reproduced ?? v.new ?? v.actual ?? v.after ?? v.value) as WireFloat | undefined;
    const sameRaw = v.same ?? v.match ?? v.ok ?? v.within_tolerance ?? v.equal;
    const verdict = str(v.verdict) ?? str(v.status);
    // octostored/reproduce/compare.py: status equal | diverged | missing | new | ignored
    const same = typeof sameRaw === 'boolean' ? sameRaw
      : verdict === 'new' || verdict === 'ignored' ? undefined
        : verdict ? OK_VERDICTS.test(verdict) : undefined;
    metrics.push({ key, original: orig, reproduced: repr, same });
  };
  if (Array.isArray(raw)) for (const v of raw) push(isObj(v) ? (str(v.key) ?? str(v.metric) ?? '?') : '?', v);
  else if (isObj(raw)) for (const [k, v] of Object.entries(raw)) push(k, v);
  let verdict = str(r.verdict) ?? str(r.outcome) ?? str(r.status) ?? '';
  if (!verdict && metrics.length) verdict = metrics.every((m) => m.same !== false) ? 'same' : 'different';
  if (!verdict) verdict = 'finished';
  const ok = OK_VERDICTS.test(verdict) || (metrics.length > 0 && metrics.every((m) => m.same === true));
  // The new run (never `run_id`: that is the original's).
  const newRunId = str(r.new_run_id) ?? str(r.reproduction_run_id) ?? str(r.reproduction) ??
    (isObj(r.reproduction) ? str(r.reproduction.run_id) : undefined);
  const ordered = [...metrics].sort((a, b) => Number(a.same !== false) - Number(b.same !== false));
  const parts = ordered.slice(0, 4).map((m) => {
    let a = fmtValue(m.original ?? null);
    let b = fmtValue(m.reproduced ?? null);
    if (m.same === false && a === b) { // moved below 4 digits: show every digit
      a = String(toNumber(m.original ?? null));
      b = String(toNumber(m.reproduced ?? null));
    }
    return `${m.key} ${a} ${m.same === false ? '≠' : m.same === true ? '=' : '→'} ${b}`;
  });
  const more = metrics.length > 4 ? ` · +${metrics.length - 4} more` : '';
  const details = parts.length ? parts.join(' · ') + more : '';
  return { verdict, ok, newRunId, metrics, details, text: `${verdict}${details ? `: ${details}` : ''}` };
}

// -- the command a reproduction would run, before it runs -------------------------------------
// A repo is untrusted input: the command a run recorded (`octostore.argv`, an MLproject entry
// point) runs only once the person accepted it. The daemon answers CONFIRMATION_REQUIRED (1032)
// with `data.command` (octostored/reproduce/command.py); the editor shows it in a modal.

// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ufff9-\ufffb]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\t': '\\t', '\r': '\\r' };

/** `s` with control, bidi and invisible characters shown escaped (as octostored/inert.py). */
export function inertText(s: unknown): string {
  const text = typeof s === 'string' ? s : s === undefined || s === null ? '' : String(s);
  return text.replace(UNSAFE, (ch) => {
    if (NAMED[ch]) return NAMED[ch];
    const code = ch.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

export interface Confirmation {
  /** The modal's message: one line. */
  message: string;
  /** The modal's detail: the command, taken apart, every string inert. */
  detail: string;
  unusual: boolean;
}

const short = (s: string, n = 400): string => (s.length > n ? `${s.slice(0, n)}…` : s);

/** The modal for a CONFIRMATION_REQUIRED answer (`data`), or undefined when it holds no command. */
export function confirmationOf(data: unknown, label: string): Confirmation | undefined {
  const cmd = isObj(data) && isObj(data.command) ? data.command : undefined;
  if (!cmd) return undefined;
  const unusual = cmd.unusual === true;
  const args = Array.isArray(cmd.args) ? cmd.args.map((a) => inertText(a)) : [];
  const env = isObj(cmd.env) ? Object.entries(cmd.env).map(([k, v]) => `  ${inertText(k)}=${inertText(v)}`) : [];
  const reasons = Array.isArray(cmd.reasons) ? cmd.reasons.map((r) => `  • ${inertText(r)}`) : [];
  const lines = [
    `Command: ${short(inertText(cmd.display))}`,
    `Interpreter: ${inertText(cmd.interpreter) || '-'}`,
    `Script: ${inertText(cmd.script) || '-'}`,
    `Arguments: ${args.length ? short(args.join(' ')) : '-'}`,
    `Working folder: ${inertText(cmd.cwd) || '.'} (in a checkout of commit ${inertText(cmd.commit).slice(0, 10)})`,
    `Environment:`, ...env,
    `From: ${inertText(cmd.source)}`,
    ...(unusual ? ['', 'UNUSUAL:', ...reasons] : ['', 'A Python interpreter running a file of the repo at that commit.']),
  ];
  const message = unusual
    ? `Octostore: reproducing ${inertText(label)} would run an UNUSUAL command that its repo recorded. Run it?`
    : `Octostore: reproducing ${inertText(label)} runs a command that its repo recorded. Run it?`;
  return { message, detail: lines.join('\n'), unusual };
}
