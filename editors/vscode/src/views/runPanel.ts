// The run view: one webview per run with its charts (metric histories, uPlot), params, metrics,
// tags, outputs (artifacts) and console log, all from the daemon's methods. A running run
// refreshes as the daemon reports changes; a live console log is polled from where it was read.
import * as crypto from 'crypto';
import * as vscode from 'vscode';

import { Connection, DaemonError } from '../connection';
import { GREP_MAX_LINES, LogCursor, NO_LOG_HINT, POLL_MS, describeLog, pickLog } from '../core/consoleLog';
import { emit } from '../core/events';
import { runLabel } from '../core/format';
import {
  ArtifactReply, ArtifactsReply, ChangedNotification, ErrorCodes, LogGrepReply, LogInfo, LogReply, MetricHistoryReply,
  Methods, Notifications, RunFull,
} from '../protocol';

const MAX_CHART_KEYS = 24;

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
  private disposed = false;
  // the console log shown (see LogCursor): which one, where it was read to, the poll timer
  private logs: LogInfo[] = [];
  private selectedLog: string | undefined;
  private cursor: LogCursor | undefined;
  private logTimer: NodeJS.Timeout | undefined;
  private logReading = false;
  private logAgain = false;

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
      this.disposed = true;
      clearTimeout(this.timer);
      clearTimeout(this.logTimer);
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
      await this.panel.webview.postMessage({ type: 'run', root: this.root, run, history, artifacts, now: Date.now() });
      this.syncLog(run.logs);
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
      case 'console-rendered':
        emit('run-console', { run_id: this.runId, name: m.name, lines: m.lines, tail: m.tail });
        break;
      case 'log-select':
        this.selectedLog = String(m.name);
        this.syncLog(this.logs);
        break;
      case 'grep':
        await this.grep(String(m.pattern ?? ''));
        break;
    }
  }

  // -- the console log ---------------------------------------------------------------------------
  /** Show the run's log (`logs` from `octostore/run`): start reading a new one, or catch up. */
  private syncLog(logs: LogInfo[] | undefined): void {
    this.logs = logs ?? [];
    const info = pickLog(logs, this.selectedLog);
    if (!info) {
      clearTimeout(this.logTimer);
      this.cursor = undefined;
      // a daemon without console logs sends no `logs`: say nothing rather than a wrong hint
      void this.post({ type: 'log-none', hint: logs ? NO_LOG_HINT : undefined });
      return;
    }
    if (!this.cursor || this.cursor.name !== info.name || this.cursor.path !== info.path) {
      clearTimeout(this.logTimer);
      this.cursor = new LogCursor(info.name, info.path);
      void this.post({ type: 'log-start', names: this.logs.map((l) => l.name), name: info.name,
        describe: describeLog(info, info.size, 0, info.live) });
      void this.readLog();
    } else if (this.cursor.behind(info)) {
      void this.readLog();
    }
  }

  /** Read the log from where the cursor stands until its end, then poll while it is live. */
  private async readLog(): Promise<void> {
    if (this.logReading) {
      this.logAgain = true;
      return;
    }
    clearTimeout(this.logTimer);
    const cursor = this.cursor;
    if (!cursor || this.disposed) return;
    this.logReading = true;
    try {
      for (let i = 0; i < 64; i++) {
        const r = await this.conn.request<LogReply>(Methods.log, { root: this.root, run_id: this.runId, ...cursor.request() });
        if (cursor !== this.cursor || this.disposed) return;
        const step = cursor.accept(r);
        const info = this.logs.find((l) => l.name === cursor.name) ?? { name: cursor.name, path: cursor.path, kind: 'console', part: 'run' };
        if (step.reset || step.data) {
          await this.post({ type: 'log', name: cursor.name, reset: step.reset, data: step.data,
            describe: describeLog(info, step.size, step.skipped, step.live) });
        }
        if (!step.more) break;
      }
    } catch (e) {
      if (cursor !== this.cursor) return;
      const message = e instanceof DaemonError && e.code === ErrorCodes.MethodNotFound
        ? 'This octostored cannot read console logs yet; update it.'
        : e instanceof Error ? e.message : String(e);
      this.out.warn(`console log of ${this.runId}: ${message}`);
      this.cursor = undefined; // the next reload (or reconnection) starts over
      await this.post({ type: 'log-error', name: cursor.name, message });
      return;
    } finally {
      this.logReading = false;
    }
    if (cursor !== this.cursor || this.disposed) return;
    if (this.logAgain || cursor.live) {
      const delay = this.logAgain ? 0 : POLL_MS;
      this.logAgain = false;
      this.logTimer = setTimeout(() => void this.readLog(), delay);
    }
  }

  /** The filter box: the log's lines matching a (Python) regex, searched by the daemon. */
  private async grep(pattern: string): Promise<void> {
    const cursor = this.cursor;
    if (!cursor || !pattern) return;
    try {
      const r = await this.conn.request<LogGrepReply>(Methods.log,
        { root: this.root, run_id: this.runId, name: cursor.name, grep: pattern, max_lines: GREP_MAX_LINES });
      await this.post({ type: 'grep', pattern, matches: r.matches, truncated: r.truncated });
      emit('run-console-grep', { run_id: this.runId, pattern, matches: r.matches.length });
    } catch (e) {
      await this.post({ type: 'grep', pattern, error: e instanceof Error ? e.message : String(e) });
    }
  }

  private async post(m: object): Promise<void> {
    if (!this.disposed) await this.panel.webview.postMessage(m).then(undefined, () => undefined);
  }
}
