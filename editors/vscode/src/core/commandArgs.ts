// Pure pieces of the palette commands (src/commands/): reading a command's run argument, the
// message for a daemon too old for a method, and a job's progress as the notification shows it.
import type { JobUpdate } from './jobs';

export interface RunRef {
  root: string;
  run_id: string;
}

/** A run reference from a command argument: a lens's {root, run_id}, a tree node, or nothing. */
export function asRunRef(arg: any): RunRef | undefined {
  if (!arg || typeof arg !== 'object') return undefined;
  if (arg.kind === 'run' && arg.run) return { root: arg.root, run_id: arg.run.run_id };
  if (arg.kind === 'best' && arg.best) return { root: arg.root, run_id: arg.best.run_id };
  if (typeof arg.root === 'string' && typeof arg.run_id === 'string') return { root: arg.root, run_id: arg.run_id };
  return undefined;
}

/** What to say when the daemon does not have a method yet (an older octostored). */
export function notYetMessage(action: string, e: { message: string; method: string }): string {
  return `Octostore: this daemon cannot ${action} yet. It answered "${e.message}" to ${e.method}. ` +
    'Update octostore in the environment octostored runs from, then run "Octostore: Restart Daemon".';
}

/** A job's phase and message as one line ("" when it has neither). */
export function phaseMessage(u: Pick<JobUpdate, 'phase' | 'message'>): string {
  return [u.phase, u.message].filter(Boolean).join(': ');
}

/** What a job update adds to a progress notification that has shown `reported` percent so far:
 * the report to make (none when the update says nothing) and the new `reported`. */
export function progressStep(u: Pick<JobUpdate, 'fraction' | 'phase' | 'message'>, reported: number):
  { report?: { increment?: number; message?: string }; reported: number } {
  if (u.fraction !== undefined) {
    const pct = Math.round(u.fraction * 100);
    return {
      report: { increment: Math.max(0, pct - reported), message: phaseMessage(u) || undefined },
      reported: Math.max(reported, pct),
    };
  }
  if (u.phase || u.message) return { report: { message: phaseMessage(u) }, reported };
  return { reported };
}
