// Commit Runs: the daemon plans the commit (a dry run), the person picks the runs, the daemon
// commits them and reports its phases as octostore/job notifications of kind "commit".
import * as vscode from 'vscode';

import { DaemonError } from '../connection';
import { notYetMessage, phaseMessage } from '../core/commandArgs';
import { commitSummary, parsePlan } from '../core/commitPlan';
import { emit } from '../core/events';
import { parseJobUpdate } from '../core/jobs';
import { CommitParams, CommitProgress, CommitReply, JobNotification, Methods, Notifications } from '../protocol';
import { CommandContext, pickRoot, requireConnection } from './context';

/** octostore.commitRuns */
export async function commitRuns(c: CommandContext): Promise<void> {
  const { conn, roots, out } = c;
  if (!(await requireConnection(c))) return;
  const info = await pickRoot(c, 'Octostore: Commit Runs');
  if (!info) return;
  let planReply: CommitReply;
  try {
    planReply = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'Octostore: planning the commit' },
      () => conn.request<CommitReply>(Methods.commit, { root: info.root, dry_run: true } satisfies CommitParams));
  } catch (e) {
    if (e instanceof DaemonError && e.methodNotFound) {
      emit('commit', { outcome: 'not-supported', message: e.message });
      void vscode.window.showErrorMessage(notYetMessage('commit runs', e), 'Show Logs')
        .then((p) => { if (p) out.show(); });
      return;
    }
    throw e;
  }
  const plan = parsePlan(planReply);
  emit('commit-plan', { runs: plan.runs.length, files: plan.fileCount });
  if (!plan.runs.length) {
    void vscode.window.showInformationMessage(`Octostore: every run of ${roots.label(info)} is committed already.` +
      (plan.warnings.length ? ` ${plan.warnings.join(' ')}` : ''));
    return;
  }
  if (plan.warnings.length) {
    const go = await vscode.window.showWarningMessage(`Octostore: committing ${plan.runs.length} runs`,
      { modal: true, detail: plan.warnings.join('\n') }, 'Continue');
    if (go !== 'Continue') return;
  }
  type Item = vscode.QuickPickItem & { runId: string };
  const picked = await vscode.window.showQuickPick<Item>(plan.runs.map((r) => ({
    label: r.label, detail: r.detail, picked: true, runId: r.runId,
  })), {
    canPickMany: true,
    title: `Commit ${plan.runs.length} run${plan.runs.length === 1 ? '' : 's'}` +
      (plan.fileCount ? ` (${plan.fileCount} file${plan.fileCount === 1 ? '' : 's'})` : '') + ' to git',
    placeHolder: plan.message ? `Message: ${plan.message.split('\n')[0]} — Enter to commit` : 'Uncheck runs to leave out; Enter to commit',
  });
  if (!picked || !picked.length) return;
  const ids = picked.map((p) => p.runId);
  const all = ids.length === plan.runs.length;
  const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Octostore: committing runs' },
    async (progress) => {
      // The daemon reports the commit's phases as octostore/job notifications of kind "commit".
      const sub = conn.onNotification(Notifications.job, (p: JobNotification | CommitProgress) => {
        if (p?.kind === 'commit' && p?.root === info.root) {
          const u = parseJobUpdate(p);
          progress.report({ message: phaseMessage(u) });
        }
      });
      try {
        return await conn.request<CommitReply>(Methods.commit, { root: info.root, ...(all ? {} : { run_ids: ids }) } satisfies CommitParams);
      } finally {
        sub.dispose();
      }
    });
  const text = commitSummary(result);
  emit('commit', { outcome: 'result', text });
  void vscode.window.showInformationMessage(`Octostore: committed ${text}`);
}
