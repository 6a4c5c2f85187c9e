// The run view: one webview per run with its charts (metric histories, uPlot), params, metrics,
// tags, outputs (artifacts) and logs, all from the daemon's methods. A running run refreshes as
// the daemon reports changes.
import * as crypto from 'crypto';
import * as vscode from 'vscode';

import { Connection, DaemonError } from '../connection';
import { emit } from '../core/events';
import { runLabel } from '../core/format';
import {
  ArtifactReply, ArtifactsReply, ChangedNotification, MetricHistoryReply, Methods, Notifications, RunFull,
} from '../protocol';

const MAX_CHART_KEYS = 24;
const LOG_TAIL = 64 * 1024;
const LOG_LIKE = /(^|\/)(logs?\/.*|[^/]*\.(log|out|err)|stdout|stderr|console[^/]*\.txt|output\.txt)$/i;

export class RunPanels implements vscode.Disposable {
  private readonly panels = new Map<string, RunPanel>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly conn: Connection, private readonly extensionUri: vscode.Uri,
              private readonly out: vscode.LogOutputChannel) {
    this.disposables.push(
      conn.onNotification(Notifications.changed, (p: ChangedNotification) => {
        for (const panel of this.panels.values()) {
          if (panel.root === p.root && (p.runs?.includes(panel.runId) || p.removed?.includes(panel.runId))) {
            panel.scheduleReload();
          }
        }
      }),
      conn.onDidConnect(() => {
        for (const panel of this.panels.values()) panel.scheduleReload();
      }),
    );
  }

  open(root: string, runId: string): void {
    const key = `${root}\u0000${runId}`;
    const existing = this.panels.get(key) ?? [...this.panels.values()].find((p) => p.root === root && p.runId.startsWith(runId));
    if (existing) {
      existing.panel.reveal();
      existing.scheduleReload();
      return;
    }
    const panel = new RunPanel(this.conn, this.extensionUri, root, runId, this.out, () => this.panels.delete(key));
    this.panels.set(key, panel);
  }

  /** Reload the view of a run, if open (e.g. after a reproduction of it finished). */
  reload(root: string, runId: string): void {
    this.panels.get(`${root}\u0000${runId}`)?.scheduleReload(0);
  }

  dispose(): void {
    for (const p of this.panels.values()) p.panel.dispose();
    for (const d of this.disposables) d.dispose();
  }
}

class RunPanel {
  readonly panel: vscode.WebviewPanel;
  private timer: NodeJS.Timeout | undefined;
  private loading = false;

  constructor(private readonly conn: Connection, extensionUri: vscode.Uri, readonly root: string,
              public runId: string, private readonly out: vscode.LogOutputChannel, onDispose: () => void) {
    this.panel = vscode.window.createWebviewPanel('octostore.run', `Run ${runId.slice(0, 8)}`,
      vscode.ViewColumn.Active, {
        enableScripts: true,
        retainContextWhenHidden: true,
        localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'out', 'webview'), vscode.Uri.joinPath(extensionUri, 'media')],
      });
    this.panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'octostore.svg');
    this.panel.webview.html = this.html(extensionUri);
    this.panel.onDidDispose(() => {
      clearTimeout(this.timer);
      onDispose();
    });
    this.panel.webview.onDidReceiveMessage((m) => void this.onMessage(m));
  }

  private html(extensionUri: vscode.Uri): string {
    const w = this.panel.webview;
    const nonce = crypto.randomBytes(16).toString('base64');
    const script = w.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'out', 'webview', 'runView.js'));
    const style = w.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'out', 'webview', 'runView.css'));
    const csp = [
      "default-src 'none'",
      `img-src ${w.cspSource} data:`,
      `style-src ${w.cspSource} 'unsafe-inline'`,
      `font-src ${w.cspSource}`,
      `script-src 'nonce-${nonce}'`,
    ].join('; ');
    return `<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${style}">
<title>Run</title></head>
<body><div id="app"><p class="muted">Loading run ${this.runId}…</p></div>
<script nonce="${nonce}" src="${script}"></script></body></html>`;
  }

  scheduleReload(delay = 300): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.load(), delay);
  }

  private async load(): Promise<void> {
    if (this.loading) {
      this.scheduleReload(500);
      return;
    }
    this.loading = true;
    try {
      const run = await this.conn.request<RunFull>(Methods.run, { root: this.root, run_id: this.runId });
      this.runId = run.run_id;
      this.panel.title = `Run ${runLabel(run)}`;
      const keys = Object.keys(run.metrics).sort().slice(0, MAX_CHART_KEYS);
      const [history, artifacts] = await Promise.all([
        keys.length
          ? this.conn.request<MetricHistoryReply>(Methods.metricHistory,
            { root: this.root, run_ids: [run.run_id], keys, x: 'step', max_points: 500 })
            .catch((e) => ({ series: [], error: String(e.message ?? e) }))
          : Promise.resolve({ series: [] }),
        this.conn.request<ArtifactsReply>(Methods.artifacts, { root: this.root, run_id: run.run_id })
          .catch((e) => ({ run_id: run.run_id, artifacts: [], warnings: [String(e.message ?? e)] })),
      ]);
      const logs: ArtifactReply[] = [];
      for (const a of artifacts.artifacts.filter((x) => LOG_LIKE.test(x.path)).slice(0, 3)) {
        const offset = Math.max(0, a.size - LOG_TAIL);
        const r = await this.conn.request<ArtifactReply>(Methods.artifact,
          { root: this.root, run_id: run.run_id, path: a.path, offset, max_bytes: LOG_TAIL }).catch(() => undefined);
        if (r) logs.push(r);
      }
      await this.panel.webview.postMessage({ type: 'run', root: this.root, run, history, artifacts, logs, now: Date.now() });
    } catch (e) {
      const msg = e instanceof DaemonError ? e.message : String(e);
      this.out.warn(`run view of ${this.runId}: ${msg}`);
      await this.panel.webview.postMessage({ type: 'error', message: msg });
    } finally {
      this.loading = false;
    }
  }

  private async onMessage(m: any): Promise<void> {
    switch (m?.type) {
      case 'ready':
        await this.load();
        break;
      case 'rendered':
        emit('run-view', { run_id: this.runId, charts: m.charts, sections: m.sections });
        break;
      case 'artifact': {
        try {
          const r = await this.conn.request<ArtifactReply>(Methods.artifact,
            { root: this.root, run_id: this.runId, path: String(m.path), max_bytes: 256 * 1024 });
          await this.panel.webview.postMessage({ type: 'artifact', ...r });
        } catch (e) {
          await this.panel.webview.postMessage({ type: 'artifact', path: m.path, error: e instanceof Error ? e.message : String(e) });
        }
        break;
      }
      case 'reproduce':
        await vscode.commands.executeCommand('octostore.reproduceRun', { root: this.root, run_id: this.runId });
        break;
      case 'showRun':
        await vscode.commands.executeCommand('octostore.showRun', { root: this.root, run_id: String(m.run_id) });
        break;
      case 'copy':
        await vscode.env.clipboard.writeText(String(m.text));
        void vscode.window.setStatusBarMessage('Copied', 1500);
        break;
      case 'refresh':
        await this.load();
        break;
    }
  }
}
