// The side panel's commands: Refresh, Filter Runs..., Clear Run Filter, and "show more runs".
import * as vscode from 'vscode';

import { DaemonError } from '../connection';
import { ErrorCodes, Methods } from '../protocol';
import { CommandContext, requireConnection } from './context';

/** octostore.refresh: forget the cached insights, reread the roots, redraw both trees. */
export function refresh(c: CommandContext): void {
  c.insights.invalidate();
  void c.roots.refresh();
  c.runsTree.refresh();
  c.bestTree.refresh();
}

/** octostore.filterRuns: an MLflow search filter for the Experiments tree, checked by the daemon. */
export async function filterRuns(c: CommandContext): Promise<void> {
  const { conn, roots } = c;
  if (!(await requireConnection(c))) return;
  const root = roots.all[0]?.root;
  const filter = await vscode.window.showInputBox({
    title: 'Octostore: Filter Runs',
    prompt: 'An MLflow search filter; empty shows every run',
    placeHolder: "metrics.rmse < 0.7 and params.max_depth = '8'",
    value: c.runsTree.currentFilter ?? '',
    validateInput: async (text) => {
      if (!text.trim() || !root) return undefined;
      try {
        await conn.request(Methods.runs, { root, filter: text, limit: 0 });
        return undefined;
      } catch (e) {
        return e instanceof DaemonError && e.code === ErrorCodes.BadFilter ? e.message : undefined;
      }
    },
  });
  if (filter !== undefined) await c.runsTree.setFilter(filter);
}

/** octostore.clearFilter */
export function clearFilter(c: CommandContext): Promise<void> {
  return c.runsTree.setFilter(undefined);
}

/** octostore.showMoreRuns: the tree's "more runs" node of an experiment. */
export function showMoreRuns(c: CommandContext, root: string, expKey: string): void {
  return c.runsTree.showMore(root, expKey);
}
