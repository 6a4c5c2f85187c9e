// The workspace's roots: each workspace folder is opened in the daemon (octostore/open), which
// maps it to its repo (a git work tree or the folder itself). Two folders of one repo share a
// root. Every root is subscribed to, so `octostore/changed` arrives for it.
import * as path from 'path';
import * as vscode from 'vscode';

import { Connection, DaemonError } from './connection';
import { Methods, RootSummary } from './protocol';

export interface RootInfo {
  /** The daemon's root path (the repo's top folder). */
  root: string;
  /** The first workspace folder that maps to this root. */
  folder: vscode.WorkspaceFolder;
  summary: RootSummary;
  error?: string;
}

export class Roots implements vscode.Disposable {
  private list: RootInfo[] = [];
  private readonly emitter = new vscode.EventEmitter<void>();
  readonly onDidChange = this.emitter.event;
  private readonly disposables: vscode.Disposable[] = [];
  private refreshing: Promise<void> | undefined;
  private again = false;

  constructor(private readonly conn: Connection, private readonly out: vscode.LogOutputChannel) {
    this.disposables.push(
      conn.onDidConnect(() => void this.refresh()),
      vscode.workspace.onDidChangeWorkspaceFolders(() => void this.refresh()),
    );
  }

  get all(): readonly RootInfo[] {
    return this.list;
  }

  get(root: string): RootInfo | undefined {
    return this.list.find((r) => r.root === root);
  }

  /** The root of a file or folder of the workspace. */
  forUri(uri: vscode.Uri): RootInfo | undefined {
    const folder = vscode.workspace.getWorkspaceFolder(uri);
    const p = uri.fsPath;
    return this.list.find((r) => r.folder === folder)
      ?? this.list.find((r) => p === r.root || p.startsWith(r.root + path.sep));
  }

  label(info: RootInfo): string {
    return this.list.length > 1 ? info.folder.name : path.basename(info.root);
  }

  /** Open every folder, subscribe to every root. Concurrent calls coalesce. */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        await this.doRefresh();
      } while (this.again);
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    if (this.conn.state !== 'connected') return;
    const folders = vscode.workspace.workspaceFolders ?? [];
    const next: RootInfo[] = [];
    await Promise.all(folders.filter((f) => f.uri.scheme === 'file').map(async (folder) => {
      try {
        const summary = await this.conn.request<RootSummary>(Methods.open, { root: folder.uri.fsPath });
        next.push({ root: summary.root, folder, summary });
      } catch (e) {
        const msg = e instanceof DaemonError ? e.message : String(e);
        this.out.warn(`cannot open ${folder.uri.fsPath}: ${msg}`);
      }
    }));
    // Keep the workspace's folder order; one entry per root.
    next.sort((a, b) => a.folder.index - b.folder.index);
    const unique: RootInfo[] = [];
    for (const r of next) if (!unique.some((u) => u.root === r.root)) unique.push(r);
    const gone = this.list.filter((old) => !unique.some((u) => u.root === old.root));
    for (const g of gone) {
      await this.conn.request(Methods.unsubscribe, { root: g.root }).catch(() => undefined);
    }
    await Promise.all(unique.map((r) =>
      this.conn.request(Methods.subscribe, { root: r.root, name: 'vscode' }).catch((e) =>
        this.out.warn(`cannot subscribe to ${r.root}: ${e}`))));
    this.list = unique;
    this.emitter.fire();
    this.watchIndexing();
  }

  private indexingTimer: NodeJS.Timeout | undefined;

  /** While a root is still indexing (or verifying its snapshot), re-read its summary: the end of
   * a scan that changed nothing sends no octostore/changed. */
  private watchIndexing(): void {
    clearTimeout(this.indexingTimer);
    const busy = this.list.filter((r) => r.summary.state !== 'ready' && r.summary.state !== 'failed');
    if (!busy.length) return;
    this.indexingTimer = setTimeout(() => {
      void Promise.all(busy.map((r) => this.update(r.root)));
    }, 1000);
  }

  /** Re-read the run counts of one root (after a change). */
  async update(root: string): Promise<void> {
    const info = this.get(root);
    if (!info || this.conn.state !== 'connected') return;
    try {
      info.summary = await this.conn.request<RootSummary>(Methods.open, { root });
      this.emitter.fire();
      this.watchIndexing();
    } catch {
      // the next change or reconnection tries again
    }
  }

  dispose(): void {
    clearTimeout(this.indexingTimer);
    for (const d of this.disposables) d.dispose();
    this.emitter.dispose();
  }
}
