// What the two trees share: the daemon's insights per root (its choice of key metric and the best
// runs per metric), cached until the root changes.
import * as vscode from 'vscode';

import { Connection } from '../connection';
import { InsightsReply, Methods } from '../protocol';

export class InsightsCache {
  private readonly cache = new Map<string, Promise<InsightsReply | undefined>>();

  constructor(private readonly conn: Connection) {}

  get(root: string): Promise<InsightsReply | undefined> {
    let p = this.cache.get(root);
    if (!p) {
      const metric = vscode.workspace.getConfiguration('octostore').get<string>('keyMetric') || undefined;
      p = this.conn.request<InsightsReply>(Methods.insights, { root, ...(metric ? { metric } : {}) })
        .catch(() => undefined);
      this.cache.set(root, p);
    }
    return p;
  }

  invalidate(root?: string): void {
    if (root) this.cache.delete(root);
    else this.cache.clear();
  }
}
