// The "Best Runs" view: per key metric (the daemon's insights), the best runs, best first.
import * as vscode from 'vscode';

import { Connection } from '../connection';
import { emit } from '../core/events';
import { fmtValue, runLabel } from '../core/format';
import { BestRun, KeyMetric } from '../protocol';
import { RootInfo, Roots } from '../roots';
import { InsightsCache } from './model';

type Node =
  | { kind: 'root'; info: RootInfo }
  | { kind: 'metric'; root: string; km: KeyMetric; first: boolean }
  | { kind: 'best'; root: string; km: KeyMetric; best: BestRun; rank: number };

export class BestTree implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;

  constructor(private readonly conn: Connection, private readonly roots: Roots,
              private readonly insights: InsightsCache) {}

  refresh(): void {
    this.emitter.fire(undefined);
  }

  getTreeItem(n: Node): vscode.TreeItem {
    switch (n.kind) {
      case 'root': {
        const it = new vscode.TreeItem(this.roots.label(n.info), vscode.TreeItemCollapsibleState.Expanded);
        it.id = `best-root:${n.info.root}`;
        it.iconPath = new vscode.ThemeIcon('repo');
        return it;
      }
      case 'metric': {
        const it = new vscode.TreeItem(n.km.key,
          n.first ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.Collapsed);
        it.id = `best-metric:${n.root}:${n.km.key}`;
        it.description = n.km.lower_is_better ? 'lower is better' : 'higher is better';
        it.iconPath = new vscode.ThemeIcon(n.km.lower_is_better ? 'arrow-down' : 'arrow-up');
        return it;
      }
      case 'best': {
        const it = new vscode.TreeItem(`${n.rank}. ${runLabel(n.best)}`, vscode.TreeItemCollapsibleState.None);
        it.id = `best-run:${n.root}:${n.km.key}:${n.best.run_id}`;
        it.description = `${n.km.key} ${fmtValue(n.best.value)}`;
        it.tooltip = `${n.best.run_id}`;
        it.iconPath = new vscode.ThemeIcon(n.rank === 1 ? 'star-full' : 'circle-small');
        it.contextValue = 'octostore.run';
        it.command = { command: 'octostore.showRun', title: 'Show Run', arguments: [{ root: n.root, run_id: n.best.run_id }] };
        return it;
      }
    }
  }

  async getChildren(n?: Node): Promise<Node[]> {
    if (this.conn.state !== 'connected') return [];
    if (!n) {
      const roots = this.roots.all;
      if (roots.length === 1) return this.metrics(roots[0].root);
      return roots.map((info) => ({ kind: 'root', info }));
    }
    if (n.kind === 'root') return this.metrics(n.info.root);
    if (n.kind === 'metric') return n.km.best.map((best, i) => ({ kind: 'best', root: n.root, km: n.km, best, rank: i + 1 }));
    return [];
  }

  private async metrics(root: string): Promise<Node[]> {
    const ins = await this.insights.get(root);
    if (!ins) return [];
    const kms = [...ins.key_metrics].sort((a, b) => (a.key === ins.metric ? -1 : b.key === ins.metric ? 1 : 0));
    emit('best', { root, metrics: kms.map((k) => k.key) });
    return kms.filter((km) => km.best.length).map((km, i) => ({ kind: 'metric', root, km, first: i === 0 }));
  }

  dispose(): void {
    this.emitter.dispose();
  }
}
