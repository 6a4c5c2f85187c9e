// Reproduce Run...: pick a run and the parameters to change, start octostore/reproduce (asking
// first when the daemon wants the recorded command accepted), follow the job, show the verdict.
import * as vscode from 'vscode';

import { DaemonError } from '../connection';
import { asRunRef, notYetMessage, progressStep } from '../core/commandArgs';
import { emit } from '../core/events';
import { runLabel } from '../core/format';
import { JobUpdate, confirmationOf, jobIdOf, parseJobUpdate, summarizeResult } from '../core/jobs';
import { effectiveChanges, formatAssignments, parseAssignments } from '../core/params';
import {
  CancelParams, CancelReply, ErrorCodes, JobNotification, JobsParams, JobsReply, MethodTypes, Methods, Notifications,
  ReproduceParams, RunFull,
} from '../protocol';
import { CommandContext, pickRun, requireConnection } from './context';

/** The parameter changes to reproduce `run` with ({} for none), or undefined when dismissed. */
async function pickChanges(run: RunFull): Promise<Record<string, string> | undefined> {
  const changes: Record<string, string> = {};
  type Item = vscode.QuickPickItem & { action: 'start' | 'text' | 'param'; key?: string };
  for (;;) {
    const n = Object.keys(changes).length;
    const items: Item[] = [
      { label: '$(play) Reproduce', description: n ? `with ${formatAssignments(changes)}` : 'as it ran', action: 'start', alwaysShow: true },
      { label: '$(edit) Change several parameters…', description: 'name=value name=value', action: 'text', alwaysShow: true },
      { label: 'Parameters', kind: vscode.QuickPickItemKind.Separator, action: 'param' },
      ...Object.entries(run.params).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]): Item => ({
        label: k, description: k in changes ? `${v} → ${changes[k]}` : v, action: 'param', key: k,
      })),
    ];
    const pick = await vscode.window.showQuickPick(items, {
      title: `Reproduce ${runLabel(run)}: parameters (optional)`,
      placeHolder: 'Enter to start, or pick a parameter to change its value',
    });
    if (!pick) return undefined;
    if (pick.action === 'start') return changes;
    if (pick.action === 'text') {
      const text = await vscode.window.showInputBox({
        title: `Reproduce ${runLabel(run)}: parameter changes`,
        prompt: 'name=value pairs separated by spaces; quote values with spaces',
        value: formatAssignments(changes),
        validateInput: (t) => {
          const { errors } = parseAssignments(t);
          return errors.length ? errors.join('; ') : undefined;
        },
      });
      if (text !== undefined) {
        for (const k of Object.keys(changes)) delete changes[k];
        Object.assign(changes, effectiveChanges(run.params, parseAssignments(text).set));
      }
      continue;
    }
    if (pick.key) {
      const key = pick.key;
      const value = await vscode.window.showInputBox({
        title: `Reproduce ${runLabel(run)}: ${key}`,
        prompt: `The run used ${key} = ${run.params[key]}`,
        value: changes[key] ?? run.params[key],
      });
      if (value === undefined) continue;
      if (value === run.params[key]) delete changes[key];
      else changes[key] = value;
    }
  }
}

/** Follows job `jobId` to its end: its log to the jobs channel, its progress to `progress`;
 * cancelling `token` asks the daemon to cancel it; losing the connection ends it as failed. */
function waitForJob(c: CommandContext, jobId: string, progress: vscode.Progress<{ message?: string; increment?: number }>,
                    token: vscode.CancellationToken, label: string): Promise<JobUpdate> {
  const { conn, out } = c;
  return new Promise<JobUpdate>((resolve) => {
    let reported = 0;
    let finished = false;
    const done = (u: JobUpdate) => {
      if (finished) return;
      finished = true;
      for (const x of subs) x.dispose();
      clearInterval(poll);
      resolve(u);
    };
    const apply = (u: JobUpdate) => {
      for (const line of u.log) c.jobsOut.appendLine(line);
      const step = progressStep(u, reported);
      if (step.report) progress.report(step.report);
      reported = step.reported;
      if (u.done) done(u);
    };
    const subs: vscode.Disposable[] = [
      conn.onNotification(Notifications.job, (p: JobNotification) => {
        const u = parseJobUpdate(p);
        if (u.jobId === jobId) apply(u);
      }),
      conn.onDidChangeState((s) => {
        if (s !== 'connected') done({ ...parseJobUpdate({}), done: true, failed: true, error: 'lost the connection to the daemon' });
      }),
      token.onCancellationRequested(() => {
        c.jobsOut.appendLine(`[octostore] cancelling the reproduction of ${label}`);
        void conn.request<CancelReply>(Methods.cancel, { job: jobId } satisfies CancelParams).catch((e) => out.warn(`cancel: ${e.message ?? e}`));
      }),
    ];
    // Notifications are the main channel; a slow poll covers a missed one.
    const poll = setInterval(async () => {
      if (!conn.supports(Methods.jobs)) return;
      try {
        const reply = await conn.request<JobsReply>(Methods.jobs, { job: jobId, log_lines: 0 } satisfies JobsParams);
        const list: unknown[] = Array.isArray(reply?.jobs) ? reply.jobs : [reply];
        for (const j of list) {
          const u = parseJobUpdate(j);
          if ((u.jobId === undefined || u.jobId === jobId) && u.done) apply(u);
        }
      } catch {
        // the next notification or poll
      }
    }, 5000);
  });
}

/** octostore.reproduceRun: the run of the argument (a lens, a tree node, the run view), else one picked. */
export async function reproduceRun(c: CommandContext, arg?: unknown): Promise<void> {
  const { conn, out } = c;
  if (!(await requireConnection(c))) return;
  const ref = asRunRef(arg) ?? (await pickRun(c, 'Octostore: Reproduce Run — which run?'));
  if (!ref) return;
  const run = await conn.request<RunFull>(Methods.run, { root: ref.root, run_id: ref.run_id });
  const set = await pickChanges(run);
  if (!set) return;
  const label = runLabel(run);
  c.jobsOut.appendLine(`[octostore] reproducing ${label} (${run.run_id})${Object.keys(set).length ? ` with ${formatAssignments(set)}` : ''}`);
  emit('reproduce-start', { run_id: run.run_id, set });
  const params: ReproduceParams = { root: ref.root, run_id: run.run_id, ...(Object.keys(set).length ? { set } : {}) };
  let outcome: JobUpdate;
  let declined = false;
  try {
    outcome = await vscode.window.withProgress({
      location: vscode.ProgressLocation.Notification, title: `Octostore: reproducing ${label}`, cancellable: true,
    }, async (progress, token) => {
      progress.report({ message: 'starting…' });
      let reply: MethodTypes['octostore/reproduce']['reply'];
      try {
        reply = await conn.request<typeof reply>(Methods.reproduce, params);
      } catch (e) {
        // A command the repo recorded runs only once accepted: show it, ask, send it again.
        const ask = e instanceof DaemonError && e.code === ErrorCodes.ConfirmationRequired
          ? confirmationOf(e.data, label) : undefined;
        if (!ask) throw e;
        progress.report({ message: 'waiting for your answer…' });
        emit('reproduce-confirm', { run_id: run.run_id, unusual: ask.unusual });
        const pick = await vscode.window.showWarningMessage(ask.message, { modal: true, detail: ask.detail }, 'Run');
        if (pick !== 'Run') {
          declined = true;
          return { ...parseJobUpdate({}), done: true, cancelled: true };
        }
        progress.report({ message: 'starting…' });
        reply = await conn.request<typeof reply>(Methods.reproduce, { ...params, confirmed: true } satisfies ReproduceParams);
      }
      const first = parseJobUpdate(reply);
      const jobId = jobIdOf(reply);
      if (first.done || !jobId) return { ...first, done: true };
      return waitForJob(c, jobId, progress, token, label);
    });
  } catch (e) {
    if (e instanceof DaemonError && e.methodNotFound) {
      const msg = notYetMessage('reproduce runs', e);
      emit('reproduce', { outcome: 'not-supported', message: e.message });
      const pick = await vscode.window.showErrorMessage(msg, 'Restart Daemon', 'Show Logs');
      if (pick === 'Restart Daemon') await vscode.commands.executeCommand('octostore.restartDaemon');
      if (pick === 'Show Logs') out.show();
      return;
    }
    emit('reproduce', { outcome: 'error', message: e instanceof Error ? e.message : String(e) });
    throw e;
  }
  if (declined) {
    emit('reproduce', { outcome: 'declined' });
    c.jobsOut.appendLine(`[octostore] ${label}: not run (the command it recorded was not accepted)`);
    return;
  }
  if (outcome.cancelled) {
    emit('reproduce', { outcome: 'cancelled' });
    void vscode.window.showInformationMessage(`Octostore: the reproduction of ${label} was cancelled.`);
    return;
  }
  if (outcome.failed) {
    emit('reproduce', { outcome: 'failed', message: outcome.error });
    c.jobsOut.appendLine(`[octostore] ${label}: failed${outcome.phase ? ` during ${outcome.phase}` : ''}: ${outcome.error ?? outcome.message ?? ''}`);
    const pick = await vscode.window.showErrorMessage(
      `Octostore: the reproduction of ${label} failed${outcome.phase ? ` during ${outcome.phase}` : ''}: ` +
      `${outcome.error ?? outcome.message ?? 'see the log'}`, 'Show Log');
    if (pick === 'Show Log') c.jobsOut.show();
    return;
  }
  const summary = summarizeResult(outcome.result ?? {});
  c.jobsOut.appendLine(`[octostore] ${label}: ${summary.text}`);
  emit('reproduce', { outcome: 'result', verdict: summary.verdict, ok: summary.ok, text: summary.text, new_run_id: summary.newRunId });
  const buttons = summary.newRunId ? ['Show Run', 'Show Log'] : ['Show Log'];
  c.panels.reload(ref.root, run.run_id); // its "reproduced by" list has a new entry
  const line = `Octostore: ${label} ${summary.verdict}${summary.details ? ` — ${summary.details}` : ''}`;
  const pick = summary.ok
    ? await vscode.window.showInformationMessage(line, ...buttons)
    : await vscode.window.showWarningMessage(line, ...buttons);
  if (pick === 'Show Run' && summary.newRunId) c.panels.open(ref.root, summary.newRunId);
  if (pick === 'Show Log') c.jobsOut.show();
}
