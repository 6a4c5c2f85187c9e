// The status bar item: connected (with the run count) / starting / not found (how to install) /
// failed (show logs, restart).
import * as vscode from 'vscode';

import { Connection } from './connection';
import { Roots } from './roots';

export class StatusItem implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('octostore.status', vscode.StatusBarAlignment.Left, 50);
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly conn: Connection, private readonly roots: Roots) {
    this.item.name = 'Octostore';
    this.disposables.push(conn.onDidChangeState(() => this.render()), roots.onDidChange(() => this.render()));
    this.render();
    this.item.show();
  }

  render(): void {
    const it = this.item;
    it.backgroundColor = undefined;
    switch (this.conn.state) {
      case 'connected': {
        const runs = this.roots.all.reduce((n, r) => n + (r.summary.runs || 0), 0);
        // 'verifying' (the watch being set up, the disk re-checked) already lists every run.
        const indexing = this.roots.all.some((r) => r.summary.state === 'indexing');
        it.text = `$(beaker) Octostore: ${runs} run${runs === 1 ? '' : 's'}${indexing ? ' (indexing)' : ''}`;
        const st = this.conn.status;
        const md = new vscode.MarkdownString(
          `**Octostore** — connected to octostored ${st?.version ?? ''} (pid ${st?.pid ?? '?'})\n\n` +
          `Socket: \`${this.conn.socket}\`\n\n` +
          this.roots.all.map((r) => `- \`${r.root}\`: ${r.summary.runs} runs in ${r.summary.experiments} experiments` +
            (r.summary.warnings.length ? ` ⚠ ${r.summary.warnings.length} warnings` : '')).join('\n'));
        it.tooltip = md;
        it.command = 'workbench.view.extension.octostore';
        break;
      }
      case 'starting':
        it.text = '$(loading~spin) Octostore: starting';
        it.tooltip = `Connecting to the octostore daemon${this.conn.socket ? ` at ${this.conn.socket}` : ''}…`;
        it.command = 'octostore.showLogs';
        break;
      case 'notFound':
        it.text = '$(warning) Octostore: daemon not found';
        it.tooltip = `${this.conn.lastError ?? 'octostored was not found'}. Click for how to install it.`;
        it.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
        it.command = 'octostore.installHelp';
        break;
      case 'failed':
        it.text = '$(error) Octostore: disconnected';
        it.tooltip = `${this.conn.lastError ?? 'The daemon is not reachable'}. Click to restart it.`;
        it.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
        it.command = 'octostore.restartDaemon';
        break;
      default:
        it.text = '$(beaker) Octostore';
        it.tooltip = 'Octostore';
        it.command = 'octostore.restartDaemon';
    }
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
    this.item.dispose();
  }
}
