// Commands on one run: Show Run... and Copy Run ID.
import * as vscode from 'vscode';

import { asRunRef } from '../core/commandArgs';
import { CommandContext, pickRun, requireConnection } from './context';

/** octostore.showRun: the run of the argument (a lens, a tree node), else one picked. */
export async function showRun(c: CommandContext, arg?: unknown): Promise<void> {
  if (!(await requireConnection(c))) return;
  const ref = asRunRef(arg) ?? (await pickRun(c, 'Octostore: Show Run'));
  if (ref) c.panels.open(ref.root, ref.run_id);
}

/** octostore.copyRunId: the run id of a tree node, to the clipboard. */
export async function copyRunId(_c: CommandContext, arg?: unknown): Promise<void> {
  const ref = asRunRef(arg);
  if (ref) await vscode.env.clipboard.writeText(ref.run_id);
}
