// The palette commands: Reproduce Run..., Commit Runs, Open Dashboard, Show Run..., Restart
// Daemon, and the side panel's helpers. Every action is a daemon method; these modules only ask
// the person what to do and show what the daemon answered. This one registers them: a table of
// command id -> handler, each handler given the shared context explicitly.
import * as vscode from 'vscode';

import { emit } from '../core/events';
import { commitRuns } from './commit';
import { CommandContext, Handler } from './context';
import { installHelp, openDashboard, restartDaemon, showLogs } from './daemon';
import { reproduceRun } from './reproduce';
import { copyRunId, showRun } from './runs';
import { clearFilter, filterRuns, refresh, showMoreRuns } from './sidePanel';

export { asRunRef, notYetMessage } from '../core/commandArgs';
export type { RunRef } from '../core/commandArgs';
export type { CommandContext, Handler } from './context';
/** The former name of the context (extension.ts passes it as an object literal). */
export type Deps = CommandContext;

/** Every command the extension registers (package.json contributes the palette ones' titles). */
export const COMMANDS: Readonly<Record<string, Handler>> = {
  'octostore.showRun': showRun,
  'octostore.reproduceRun': reproduceRun,
  'octostore.commitRuns': commitRuns,
  'octostore.openDashboard': openDashboard,
  'octostore.restartDaemon': restartDaemon,
  'octostore.refresh': refresh,
  'octostore.filterRuns': filterRuns,
  'octostore.clearFilter': clearFilter,
  'octostore.showMoreRuns': showMoreRuns,
  'octostore.showLogs': showLogs,
  'octostore.copyRunId': copyRunId,
  'octostore.installHelp': installHelp,
};

/** Registers every command of COMMANDS; a handler's error is logged, emitted and shown, never thrown. */
export function registerCommands(ctx: vscode.ExtensionContext, c: CommandContext): void {
  for (const [id, fn] of Object.entries(COMMANDS)) {
    ctx.subscriptions.push(vscode.commands.registerCommand(id, async (...args: any[]) => {
      try {
        return await fn(c, ...args);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        c.out.error(`${id}: ${msg}`);
        emit('command-error', { command: id, message: msg });
        void vscode.window.showErrorMessage(`Octostore: ${msg}`);
        return undefined;
      }
    }));
  }
}
