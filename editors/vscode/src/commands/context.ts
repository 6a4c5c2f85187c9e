// What the palette commands share, passed to each handler explicitly: the connection, the roots,
// the views and the output channels; and the steps several commands begin with (being connected,
// choosing a repository, choosing a run).
import * as vscode from 'vscode';

import { Connection } from '../connection';
import { RunRef } from '../core/commandArgs';
import { emit } from '../core/events';
import { ago, metricsSummary, orderKeys, runLabel, statusLook } from '../core/format';
import { ExperimentsReply, InsightsReply, Methods, RunsReply } from '../protocol';
import { RootInfo, Roots } from '../roots';
import { BestTree } from '../views/bestTree';
import { InsightsCache } from '../views/model';
import { RunPanels } from '../views/runPanel';
import { RunsTree } from '../views/runsTree';

export interface CommandContext {
  conn: Connection;
  roots: Roots;
  runsTree: RunsTree;
  bestTree: BestTree;
  insights: InsightsCache;
  panels: RunPanels;
  out: vscode.LogOutputChannel;
  jobsOut: vscode.OutputChannel;
}

/** A palette command: the shared context, then the command's own arguments. */
export type Handler = (c: CommandContext, ...args: any[]) => unknown;

/** True when connected (waiting up to 20 s while the connection starts); else says why and offers
 * the way out. */
export async function requireConnection(c: CommandContext): Promise<boolean> {
  const { conn, out } = c;
  if (conn.state === 'connected') return true;
  if (conn.state === 'starting') {
    await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'Octostore: connecting' },
      () => new Promise<void>((resolve) => {
        const sub = conn.onDidChangeState((s) => { if (s !== 'starting') { sub.dispose(); resolve(); } });
        setTimeout(() => { sub.dispose(); resolve(); }, 20_000);
      }));
    if ((conn.state as string) === 'connected') return true;
  }
  const pick = await vscode.window.showErrorMessage(
    `Octostore: not connected to the daemon${conn.lastError ? ` (${conn.lastError})` : ''}.`,
    conn.state === 'notFound' ? 'How to Install' : 'Restart Daemon', 'Show Logs');
  if (pick === 'How to Install') await vscode.commands.executeCommand('octostore.installHelp');
  if (pick === 'Restart Daemon') await vscode.commands.executeCommand('octostore.restartDaemon');
  if (pick === 'Show Logs') out.show();
  return false;
}

/** The repository to act on: the only one, or the one picked (the active editor's preselected). */
export async function pickRoot(c: CommandContext, title: string): Promise<RootInfo | undefined> {
  const { roots } = c;
  const all = roots.all;
  if (all.length <= 1) return all[0];
  const active = vscode.window.activeTextEditor?.document.uri;
  const preferred = active ? roots.forUri(active) : undefined;
  const picked = await vscode.window.showQuickPick(all.map((r) => ({
    label: roots.label(r), description: `${r.summary.runs} runs`, detail: r.root, info: r,
    picked: r === preferred,
  })), { title, placeHolder: 'Which repository?' });
  return picked?.info;
}

/** A run picked from a quick pick of every root's newest runs. */
export async function pickRun(c: CommandContext, title: string): Promise<RunRef | undefined> {
  const { conn, roots } = c;
  type Item = vscode.QuickPickItem & { ref?: RunRef };
  const qp = vscode.window.createQuickPick<Item>();
  qp.title = title;
  qp.placeholder = 'Type to search runs by name, metric, experiment or id';
  qp.matchOnDescription = true;
  qp.matchOnDetail = true;
  qp.busy = true;
  qp.show();
  const items: Item[] = [];
  const configured = vscode.workspace.getConfiguration('octostore').get<string>('keyMetric') || undefined;
  for (const info of roots.all) {
    const [reply, exps, ins] = await Promise.all([
      conn.request<RunsReply>(Methods.runs, { root: info.root, order_by: ['attributes.start_time DESC'], limit: 500 }),
      conn.request<ExperimentsReply>(Methods.experiments, { root: info.root }).catch(() => undefined),
      c.insights.get(info.root) as Promise<InsightsReply | undefined>,
    ]);
    const names = new Map((exps?.experiments ?? []).map((e) => [e.key, e.name]));
    const keys = orderKeys(configured, ins?.metric, reply.runs);
    if (roots.all.length > 1) items.push({ label: roots.label(info), kind: vscode.QuickPickItemKind.Separator });
    for (const r of reply.runs) {
      const look = statusLook(r.status);
      items.push({
        label: `$(${look.icon.replace('~spin', '')}) ${runLabel(r)}`,
        description: metricsSummary(r, keys),
        detail: [names.get(r.experiment_key) ?? r.experiment_id, look.label, ago(r.start_time), r.run_id.slice(0, 8)].join(' · '),
        ref: { root: info.root, run_id: r.run_id },
      });
    }
  }
  qp.items = items;
  qp.busy = false;
  emit('quickpick', { title, items: items.filter((i) => i.ref).length });
  if (!items.some((i) => i.ref)) qp.placeholder = 'No runs in this workspace yet';
  return new Promise<RunRef | undefined>((resolve) => {
    qp.onDidAccept(() => {
      const ref = qp.selectedItems[0]?.ref;
      if (!ref) return;
      resolve(ref);
      qp.hide();
    });
    qp.onDidHide(() => {
      resolve(undefined);
      qp.dispose();
    });
  });
}
