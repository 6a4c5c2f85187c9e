// Commands about the daemon itself: Open Dashboard (the TUI next to it, in a terminal), Restart
// Daemon, Show Logs, How to Install the Daemon.
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';

import { INSTALL_HELP, dashboardCommand } from '../core/daemon';
import { emit } from '../core/events';
import { CommandContext, pickRoot, requireConnection } from './context';

/** octostore.openDashboard: octostore-tui in a terminal, on the picked root, on the same socket. */
export async function openDashboard(c: CommandContext): Promise<void> {
  const { conn } = c;
  const info = (await requireConnection(c)) ? await pickRoot(c, 'Octostore: Open Dashboard') : undefined;
  const isExe = (p: string) => { try { fs.accessSync(p, fs.constants.X_OK); return true; } catch { return false; } };
  const cmd = dashboardCommand(conn.daemonCommand, isExe);
  const onPath = path.isAbsolute(cmd) || (process.env.PATH ?? '').split(path.delimiter).some((dir) => isExe(path.join(dir, cmd)));
  if (!onPath) {
    void vscode.window.showErrorMessage(`Octostore: ${cmd} was not found next to octostored nor on PATH. ${INSTALL_HELP}`);
    return;
  }
  const root = info?.root ?? vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const term = vscode.window.createTerminal({
    name: 'Octostore Dashboard',
    shellPath: cmd,
    shellArgs: root ? [root] : [],
    cwd: root,
    env: conn.socket ? { OCTOSTORE_SOCKET: conn.socket } : undefined,
    iconPath: new vscode.ThemeIcon('beaker'),
  });
  term.show();
  emit('dashboard', { command: cmd, root });
}

/** octostore.restartDaemon */
export async function restartDaemon(c: CommandContext): Promise<void> {
  await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'Octostore: restarting the daemon' },
    () => c.conn.restartDaemon());
}

/** octostore.showLogs: the Octostore output channel. */
export function showLogs(c: CommandContext): void {
  c.out.show();
}

/** octostore.installHelp: how to install octostored, with the last error; settings or retry. */
export async function installHelp(c: CommandContext): Promise<void> {
  const { conn } = c;
  const pick = await vscode.window.showInformationMessage('Octostore: install the daemon',
    { modal: true, detail: `${INSTALL_HELP}\n\n${conn.lastError ?? ''}`.trim() }, 'Open Settings', 'Retry');
  if (pick === 'Open Settings') await vscode.commands.executeCommand('workbench.action.openSettings', 'octostore.daemonPath');
  if (pick === 'Retry') await conn.start();
}
