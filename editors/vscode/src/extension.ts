// Octostore for VS Code: a thin client of the octostored daemon. It connects (starting the
// daemon when none answers), shows the runs in a side panel and a run view, lets the daemon serve
// code lenses / hovers / inlay hints on Python files, and forwards the palette commands.
import * as vscode from 'vscode';

import { registerCommands } from './commands';
import { Connection } from './connection';
import { emit } from './core/events';
import { ChangedNotification, Notifications } from './protocol';
import { Roots } from './roots';
import { StatusItem } from './status';
import { BestTree } from './views/bestTree';
import { InsightsCache } from './views/model';
import { RunPanels } from './views/runPanel';
import { RunsTree } from './views/runsTree';

let connection: Connection | undefined;

export async function activate(ctx: vscode.ExtensionContext): Promise<void> {
  const out = vscode.window.createOutputChannel('Octostore', { log: true });
  const jobsOut = vscode.window.createOutputChannel('Octostore Jobs');
  const conn = new Connection(out);
  connection = conn;
  const roots = new Roots(conn, out);
  const insights = new InsightsCache(conn);
  const runsTree = new RunsTree(conn, roots, insights, ctx.workspaceState);
  const bestTree = new BestTree(conn, roots, insights);
  const runsView = vscode.window.createTreeView('octostore.runs', { treeDataProvider: runsTree, showCollapseAll: true });
  runsTree.attach(runsView);
  const bestView = vscode.window.createTreeView('octostore.best', { treeDataProvider: bestTree });
  const panels = new RunPanels(conn, ctx.extensionUri, out);
  const status = new StatusItem(conn, roots);
  ctx.subscriptions.push(out, jobsOut, roots, runsTree, bestTree, runsView, bestView, panels, status,
    { dispose: () => void conn.dispose() });

  // Live updates: a change in a root refreshes both trees and the counts, coalesced.
  const pending = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  ctx.subscriptions.push(conn.onNotification(Notifications.changed, (p: ChangedNotification) => {
    pending.add(p.root);
    clearTimeout(timer);
    timer = setTimeout(() => {
      for (const root of pending) {
        insights.invalidate(root);
        void roots.update(root);
      }
      pending.clear();
      runsTree.refresh();
      bestTree.refresh();
    }, 150);
  }));
  ctx.subscriptions.push(
    roots.onDidChange(() => {
      insights.invalidate();
      runsTree.refresh();
      bestTree.refresh();
    }),
    conn.onDidChangeState(() => {
      runsTree.refresh();
      bestTree.refresh();
    }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('octostore.keyMetric') || e.affectsConfiguration('octostore.runsPerExperiment')) {
        insights.invalidate();
        runsTree.refresh();
        bestTree.refresh();
      }
      if (e.affectsConfiguration('octostore.daemonPath') || e.affectsConfiguration('octostore.socketPath')) {
        if (conn.state !== 'connected') void conn.start();
      }
    }),
  );

  registerCommands(ctx, { conn, roots, runsTree, bestTree, insights, panels, out, jobsOut });
  emit('activated', { folders: (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath) });
  void conn.start();
}

export async function deactivate(): Promise<void> {
  await connection?.dispose();
  connection = undefined;
}
