// The plan `octostore/commit` answers with `dry_run: true` (CommitReply in the generated
// protocol.ts), read tolerantly: which runs, which files, the message, warnings. The daemon's own
// spellings are pinned to the generated types below: a field renamed in the contract fails to
// compile here.
import type { CommitReply, CommittedRun } from '../protocol';

/** `K`, checked to be fields of `T`. */
type Fields<T, K extends keyof T> = K;
/** What the readings below take from the daemon, by its spellings. */
export type DaemonCommitFields = Fields<CommitReply, 'runs' | 'files' | 'message' | 'warnings' | 'commit'> |
  Fields<CommittedRun, 'run_id' | 'experiment' | 'status' | 'run_name'>;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export interface PlannedRun {
  runId: string;
  label: string;
  detail: string;
}

export interface CommitPlan {
  runs: PlannedRun[];
  files: string[];
  /** How many files the commit writes (a count when the daemon gives no list). */
  fileCount: number;
  message?: string;
  warnings: string[];
}

/** `reply`: a CommitReply of `dry_run: true` (any object is read, tolerantly). */
export function parsePlan(reply: unknown): CommitPlan {
  const r: Obj = isObj(reply) ? (isObj(reply.plan) ? { ...reply, ...reply.plan } : reply) : {};
  const runs: PlannedRun[] = [];
  const rawRuns = Array.isArray(r.runs) ? r.runs : Array.isArray(r.run_ids) ? r.run_ids : [];
  for (const x of rawRuns) {
    if (typeof x === 'string') {
      runs.push({ runId: x, label: x.slice(0, 8), detail: x });
    } else if (isObj(x)) {
      const id = str(x.run_id) ?? str(x.id);
      if (!id) continue;
      const exp = str(x.experiment_name) ?? str(x.experiment);
      const bits = [exp, str(x.status)?.toLowerCase(), id.slice(0, 8)].filter(Boolean);
      runs.push({ runId: id, label: str(x.run_name) ?? str(x.name) ?? id.slice(0, 8), detail: bits.join(' · ') });
    }
  }
  const files: string[] = [];
  const rawFiles = r.files ?? r.paths;
  if (Array.isArray(rawFiles)) {
    for (const f of rawFiles) {
      const p = typeof f === 'string' ? f : isObj(f) ? (str(f.path) ?? str(f.file)) : undefined;
      if (p) files.push(p);
    }
  }
  const fileCount = typeof rawFiles === 'number' ? rawFiles : files.length;
  const warnings = Array.isArray(r.warnings) ? r.warnings.map((w) => (isObj(w) ? str(w.message) ?? JSON.stringify(w) : String(w))) : [];
  return { runs, files, fileCount, message: str(r.message) ?? str(r.commit_message), warnings };
}

/** What a finished commit says: its short hash and message. */
export function commitSummary(reply: unknown): string {
  const r: Obj = isObj(reply) ? reply : {};
  const c = r.commit;
  const sha = str(c) ?? (isObj(c) ? str(c.sha) ?? str(c.hexsha) ?? str(c.id) : undefined) ?? str(r.sha);
  const msg = str(r.message) ?? (isObj(c) ? str(c.message) : undefined);
  const n = Array.isArray(r.runs) ? r.runs.length : typeof r.count === 'number' ? r.count : undefined;
  const head = sha ? `commit ${sha.slice(0, 10)}` : 'a commit';
  return `${n !== undefined ? `${n} run${n === 1 ? '' : 's'} in ` : ''}${head}${msg ? `: ${msg.split('\n')[0]}` : ''}`;
}
