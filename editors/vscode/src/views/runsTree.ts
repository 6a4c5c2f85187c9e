// The "Experiments" view: (roots ->) experiments -> runs, newest first, with the key metric in the
// description, params and metrics in the tooltip, a status icon, an MLflow filter, live updates.
import * as vscode from 'vscode';

import { Connection, DaemonError } from '../connection';
import { emit } from '../core/events';
import { orderKeys, runDescription, runLabel, runTooltip, statusLook } from '../core/format';
import { ErrorCodes, ExperimentRow, ExperimentsReply, Methods, RunRow, RunsReply } from '../protocol';
import { RootInfo, Roots } from '../roots';
import { InsightsCache } from './model';

type Node =
  | { kind: 'root'; info: RootInfo }
  | { kind: 'experiment'; root: string; exp: ExperimentRow; expanded: boolean }
  | { kind: 'run'; root: string; run: RunRow; keys: string[] }
  | { kind: 'more'; root: string; exp: ExperimentRow; shown: number; total: number }
  | { kind: 'message'; text: string; icon?: string };

export class RunsTree implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private filter: string | undefined;
  private readonly limits = new Map<string, number>();
  private readonly matchCounts = new Map<string, number>();
  view: vscode.TreeView<Node> | undefined;

  constructor(private readonly conn: Connection, private readonly roots: Roots,
              private readonly insights: InsightsCache, private readonly state: vscode.Memento) {
    this.filter = state.get<string>('octostore.filter') || undefined;
  }

  attach(view: vscode.TreeView<Node>): void {
    this.view = view;
    this.renderFilter();
  }

  get currentFilter(): string | undefined {
    return this.filter;
  }

  async setFilter(filter: string | undefined): Promise<void> {
    this.filter = filter?.trim() || undefined;
    await this.state.update('octostore.filter', this.filter);
    this.matchCounts.clear();
    this.renderFilter();
    this.refresh();
  }

  private renderFilter(): void {
    void vscode.commands.executeCommand('setContext', 'octostore.filtered', !!this.filter);
    if (this.view) this.view.description = this.filter ? `filter: ${this.filter}` : undefined;
  }

  refresh(): void {
    this.emitter.fire(undefined);
  }

  private perExperiment(): number {
    return vscode.workspace.getConfiguration('octostore').get<number>('runsPerExperiment', 200);
  }

  getTreeItem(n: Node): vscode.TreeItem {
    switch (n.kind) {
      case 'root': {
        const it = new vscode.TreeItem(this.roots.label(n.info), vscode.TreeItemCollapsibleState.Expanded);
        it.id = `root:${n.info.root}`;
        it.description = `${n.info.summary.runs} runs`;
        it.tooltip = n.info.root;
        it.iconPath = new vscode.ThemeIcon('repo');
        return it;
      }
      case 'experiment': {
        const it = new vscode.TreeItem(n.exp.name || n.exp.key,
          n.expanded ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.Collapsed);
        it.id = `exp:${n.root}:${n.exp.key}`;
        const matched = this.matchCounts.get(`${n.root}:${n.exp.key}`);
        it.description = this.filter && matched !== undefined
          ? `${matched} of ${n.exp.runs} runs match`
          : `${n.exp.runs} run${n.exp.runs === 1 ? '' : 's'}`;
        it.tooltip = new vscode.MarkdownString(`**${n.exp.name}** (id ${n.exp.experiment_id})\n\n` +
          `${n.exp.runs} runs${n.exp.last_activity ? `, last activity ${new Date(n.exp.last_activity).toLocaleString()}` : ''}` +
          (n.exp.warnings.length ? `\n\n⚠ ${n.exp.warnings.join('\n\n⚠ ')}` : ''));
        it.iconPath = new vscode.ThemeIcon('beaker');
        it.contextValue = 'octostore.experiment';
        return it;
      }
      case 'run': {
        const it = new vscode.TreeItem(runLabel(n.run), vscode.TreeItemCollapsibleState.None);
        it.id = `run:${n.root}:${n.run.run_id}`;
        it.description = runDescription(n.run, n.keys);
        const md = new vscode.MarkdownString(runTooltip(n.run));
        it.tooltip = md;
        const look = statusLook(n.run.status);
        it.iconPath = new vscode.ThemeIcon(look.icon, look.color ? new vscode.ThemeColor(look.color) : undefined);
        it.contextValue = 'octostore.run';
        it.command = { command: 'octostore.showRun', title: 'Show Run', arguments: [{ root: n.root, run_id: n.run.run_id }] };
        return it;
      }
      case 'more': {
        const it = new vscode.TreeItem(`Show more (${n.shown} of ${n.total})`, vscode.TreeItemCollapsibleState.None);
        it.iconPath = new vscode.ThemeIcon('ellipsis');
        it.command = { command: 'octostore.showMoreRuns', title: 'Show more', arguments: [n.root, n.exp.key] };
        return it;
      }
      case 'message': {
        const it = new vscode.TreeItem(n.text, vscode.TreeItemCollapsibleState.None);
        it.iconPath = new vscode.ThemeIcon(n.icon ?? 'info');
        return it;
      }
    }
  }

  async getChildren(n?: Node): Promise<Node[]> {
    if (this.conn.state !== 'connected') return [];
    try {
      if (!n) {
        const roots = this.roots.all;
        if (roots.length === 0) return [];
        if (roots.length === 1) return this.experiments(roots[0].root);
        return roots.map((info) => ({ kind: 'root', info }));
      }
      if (n.kind === 'root') return this.experiments(n.info.root);
      if (n.kind === 'experiment') return this.runs(n.root, n.exp);
      return [];
    } catch (e) {
      return [{ kind: 'message', text: e instanceof Error ? e.message : String(e), icon: 'error' }];
    }
  }

  private async experiments(root: string): Promise<Node[]> {
    const reply = await this.conn.request<ExperimentsReply>(Methods.experiments, { root });
    let exps = reply.experiments;
    const withRuns = exps.filter((e) => e.runs > 0);
    if (withRuns.length) exps = withRuns; // MLflow's empty "Default" experiment is noise
    if (!exps.length) return [];
    const expand = exps.length <= 3;
    return exps.map((exp) => ({ kind: 'experiment', root, exp, expanded: expand }));
  }

  private async runs(root: string, exp: ExperimentRow): Promise<Node[]> {
    const key = `${root}:${exp.key}`;
    const limit = this.limits.get(key) ?? this.perExperiment();
    let reply: RunsReply;
    try {
      reply = await this.conn.request<RunsReply>(Methods.runs, {
        root, experiment_ids: [exp.key], order_by: ['attributes.start_time DESC'], limit,
        ...(this.filter ? { filter: this.filter } : {}),
      });
    } catch (e) {
      if (e instanceof DaemonError && e.code === ErrorCodes.BadFilter) {
        return [{ kind: 'message', text: `Filter: ${e.message}`, icon: 'error' }];
      }
      throw e;
    }
    const insights = await this.insights.get(root);
    const configured = vscode.workspace.getConfiguration('octostore').get<string>('keyMetric') || undefined;
    const keys = orderKeys(configured, insights?.metric, reply.runs);
    if (this.filter && this.matchCounts.get(key) !== reply.total) {
      this.matchCounts.set(key, reply.total);
      setTimeout(() => this.emitter.fire(undefined), 0);
    }
    const nodes: Node[] = reply.runs.map((run) => ({ kind: 'run', root, run, keys }));
    if (reply.total > reply.runs.length) nodes.push({ kind: 'more', root, exp, shown: reply.runs.length, total: reply.total });
    if (!nodes.length && this.filter) nodes.push({ kind: 'message', text: 'No run matches the filter' });
    emit('tree', { root, experiment: exp.name, runs: reply.runs.map((r) => runLabel(r)), total: reply.total });
    return nodes;
  }

  showMore(root: string, expKey: string): void {
    const key = `${root}:${expKey}`;
    this.limits.set(key, (this.limits.get(key) ?? this.perExperiment()) * 2);
    this.refresh();
  }

  dispose(): void {
    this.emitter.dispose();
  }
}
