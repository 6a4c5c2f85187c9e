// Following a run's console log over `octostore/log`: the tail first, then from next_offset,
// polled while the log is live. Pure bookkeeping (no vscode, no socket): the run view's panel
// asks `request()` what to send and feeds each reply to `accept()`.
import { fmtBytes } from './format';
import type { LogInfo, LogParams, LogReply } from '../protocol';

export const TAIL_BYTES = 256 * 1024;
export const POLL_MS = 1000;
/** Lines the view keeps (the terminal renderer drops older ones). */
export const VIEW_LINES = 5000;
export const GREP_MAX_LINES = 1000;

export const NO_LOG_HINT = 'No console log for this run. `octostore run -- python train.py` keeps its console.';

/** The log to show: the one named `preferred` if the run still has it, else the first. */
export function pickLog(logs: LogInfo[] | undefined, preferred?: string): LogInfo | undefined {
  if (!logs?.length) return undefined;
  return logs.find((l) => l.name === preferred) ?? logs[0];
}

/** What one reply changes in the view. */
export interface LogStep {
  /** Start over: clear the view before `data` (the first read, or the log was replaced). */
  reset: boolean;
  data: string;
  /** Bytes before the first shown byte (the tail skipped them). */
  skipped: number;
  size: number;
  live: boolean;
  /** More is there now: read again at once. */
  more: boolean;
}

export class LogCursor {
  private next = -1;
  size = 0;
  live = false;
  skipped = 0;

  constructor(readonly name: string, readonly path: string, private readonly tail = TAIL_BYTES) {}

  get started(): boolean {
    return this.next >= 0;
  }

  /** The params (besides root and run_id) of the next `octostore/log` request. */
  request(): Pick<LogParams, 'name' | 'offset' | 'tail' | 'max_bytes'> {
    return this.next < 0
      ? { name: this.name, tail: this.tail, max_bytes: this.tail }
      : { name: this.name, offset: this.next };
  }

  accept(r: LogReply): LogStep {
    const first = this.next < 0;
    // A log that shrank (rewritten, or the run's part was re-cut): start over from its tail.
    const shrank = !first && r.size < this.next;
    if (shrank) {
      this.next = -1;
      return { reset: false, data: '', skipped: this.skipped, size: r.size, live: r.live, more: true };
    }
    if (first) this.skipped = r.offset;
    this.next = r.next_offset;
    this.size = r.size;
    this.live = r.live;
    return { reset: first, data: r.data, skipped: this.skipped, size: r.size, live: r.live, more: !r.eof && r.next_offset > r.offset };
  }

  /** Whether a listing (from `octostore/run`) shows bytes this cursor has not read yet. */
  behind(info: LogInfo): boolean {
    return this.started && (info.size > this.next || info.live !== this.live);
  }
}

/** The line above the log: which log, how big, what is shown, whether it is still written. */
export function describeLog(info: Pick<LogInfo, 'name' | 'path' | 'part' | 'kind'>, size: number, skipped: number, live: boolean): string {
  const parts = [info.kind === 'console' ? info.path : info.name, fmtBytes(size)];
  if (info.part === 'whole' && info.kind === 'console') parts.push('the whole log (shared with other runs)');
  if (skipped > 0) parts.push(`showing the last ${fmtBytes(size - skipped)}`);
  if (live) parts.push('live');
  return parts.join(' · ');
}
