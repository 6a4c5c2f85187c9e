// The palette commands: Reproduce Run..., Commit Runs, Open Dashboard, Show Run..., Restart
// Daemon, and the side panel's helpers. Every action is a daemon method; this file only asks the
// person what to do and shows what the daemon answered.
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';

import { Connection, DaemonError } from './connection';
import { commitSummary, parsePlan } from './core/commitPlan';
import { INSTALL_HELP, dashboardCommand } from './core/daemon';
import { emit } from './core/events';
import { ago, metricsSummary, orderKeys, runLabel, statusLook } from './core/format';
import { JobUpdate, confirmationOf, jobIdOf, parseJobUpdate, summarizeResult } from './core/jobs';
import { effectiveChanges, formatAssignments, parseAssignments } from './core/params';
import {
  CancelParams, CancelReply, CommitParams, CommitProgress, CommitReply, ErrorCodes, ExperimentsReply, InsightsReply,
  JobNotification, JobsParams, JobsReply, MethodTypes, Methods, Notifications, ReproduceParams, RunFull, RunsReply,
} from './protocol';
import { RootInfo, Roots } from './roots';
import { BestTree } from './views/bestTree';
import { InsightsCache } from './views/model';
import { RunPanels } from './views/runPanel';
import { RunsTree } from './views/runsTree';

export interface RunRef {
  root: string;
  run_id: string;
}

export interface Deps {
  conn: Connection;
  roots: Roots;
  runsTree: RunsTree;
  bestTree: BestTree;
  insights: InsightsCache;
  panels: RunPanels;
  out: vscode.LogOutputChannel;
  jobsOut: vscode.OutputChannel;
}

/** A run reference from a command argument: a lens's {root, run_id}, a tree node, or nothing. */
export function asRunRef(arg: any): RunRef | undefined {
  if (!arg || typeof arg !== 'object') return undefined;
  if (arg.kind === 'run' && arg.run) return { root: arg.root, run_id: arg.run.run_id };
  if (arg.kind === 'best' && arg.best) return { root: arg.root, run_id: arg.best.run_id };
  if (typeof arg.root === 'string' && typeof arg.run_id === 'string') return { root: arg.root, run_id: arg.run_id };
  return undefined;
}

/** What to say when the daemon does not have a method yet (an older octostored). */
export function notYetMessage(action: string, e: DaemonError): string {
  return `Octostore: this daemon cannot ${action} yet. It answered "${e.message}" to ${e.method}. ` +
    'Update octostore in the environment octostored runs from, then run "Octostore: Restart Daemon".';
}

export function registerCommands(ctx: vscode.ExtensionContext, d: Deps): void {
  const { conn, roots, out } = d;
  const reg = (id: string, fn: (...args: any[]) => unknown) =>
    ctx.subscriptions.push(vscode.commands.registerCommand(id, async (...args: any[]) => {
      try {
        return await fn(...args);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        out.error(`${id}: ${msg}`);
        emit('command-error', { command: id, message: msg });
        void vscode.window.showErrorMessage(`Octostore: ${msg}`);
        return undefined;
      }
    }));

  const requireConnection = async (): Promise<boolean> => {
    if (conn.state === 'connected') return true;
    if (conn.state === 'starting') {
      await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'Octostore: connecting' },
        () => new Promise<void>((resolve) => {
          const sub = conn.onDidChangeState((s) => { if (s !== 'starting') { sub.dispose(); resolve(); } });
          setTimeout(() => { sub.dispose(); resolve(); }, 20_000);
        }));
      if ((conn.state as string) === 'connected') return true;
    }
    const pick = await vscode.window.showErrorMessage(
      `Octostore: not connected to the daemon${conn.lastError ? ` (${conn.lastError})` : ''}.`,
      conn.state === 'notFound' ? 'How to Install' : 'Restart Daemon', 'Show Logs');
    if (pick === 'How to Install') await vscode.commands.executeCommand('octostore.installHelp');
    if (pick === 'Restart Daemon') await vscode.commands.executeCommand('octostore.restartDaemon');
    if (pick === 'Show Logs') out.show();
    return false;
  };

  const pickRoot = async (title: string): Promise<RootInfo | undefined> => {
    const all = roots.all;
    if (all.length <= 1) return all[0];
    const active = vscode.window.activeTextEditor?.document.uri;
    const preferred = active ? roots.forUri(active) : undefined;
    const picked = await vscode.window.showQuickPick(all.map((r) => ({
      label: roots.label(r), description: `${r.summary.runs} runs`, detail: r.root, info: r,
      picked: r === preferred,
    })), { title, placeHolder: 'Which repository?' });
    return picked?.info;
  };

  const pickRun = async (title: string): Promise<RunRef | undefined> => {
    type Item = vscode.QuickPickItem & { ref?: RunRef };
    const qp = vscode.window.createQuickPick<Item>();
    qp.title = title;
    qp.placeholder = 'Type to search runs by name, metric, experiment or id';
    qp.matchOnDescription = true;
    qp.matchOnDetail = true;
    qp.busy = true;
    qp.show();
    const items: Item[] = [];
    const configured = vscode.workspace.getConfiguration('octostore').get<string>('keyMetric') || undefined;
    for (const info of roots.all) {
      const [reply, exps, ins] = await Promise.all([
        conn.request<RunsReply>(Methods.runs, { root: info.root, order_by: ['attributes.start_time DESC'], limit: 500 }),
        conn.request<ExperimentsReply>(Methods.experiments, { root: info.root }).catch(() => undefined),
        d.insights.get(info.root) as Promise<InsightsReply | undefined>,
      ]);
      const names = new Map((exps?.experiments ?? []).map((e) => [e.key, e.name]));
      const keys = orderKeys(configured, ins?.metric, reply.runs);
      if (roots.all.length > 1) items.push({ label: roots.label(info), kind: vscode.QuickPickItemKind.Separator });
      for (const r of reply.runs) {
        const look = statusLook(r.status);
        items.push({
          label: `$(${look.icon.replace('~spin', '')}) ${runLabel(r)}`,
          description: metricsSummary(r, keys),
          detail: [names.get(r.experiment_key) ?? r.experiment_id, look.label, ago(r.start_time), r.run_id.slice(0, 8)].join(' · '),
          ref: { root: info.root, run_id: r.run_id },
        });
      }
    }
    qp.items = items;
    qp.busy = false;
    emit('quickpick', { title, items: items.filter((i) => i.ref).length });
    if (!items.some((i) => i.ref)) qp.placeholder = 'No runs in this workspace yet';
    return new Promise<RunRef | undefined>((resolve) => {
      qp.onDidAccept(() => {
        const ref = qp.selectedItems[0]?.ref;
        if (!ref) return;
        resolve(ref);
        qp.hide();
      });
      qp.onDidHide(() => {
        resolve(undefined);
        qp.dispose();
      });
    });
  };

  // -- Show Run... ------------------------------------------------------------------------------
  reg('octostore.showRun', async (arg?: unknown) => {
    if (!(await requireConnection())) return;
    const ref = asRunRef(arg) ?? (await pickRun('Octostore: Show Run'));
    if (ref) d.panels.open(ref.root, ref.run_id);
  });

  // -- Reproduce Run... ------------------------------------------------------------------------------
  const pickChanges = async (run: RunFull): Promise<Record<string, string> | undefined> => {
    const changes: Record<string, string> = {};
    type Item = vscode.QuickPickItem & { action: 'start' | 'text' | 'param'; key?: string };
    for (;;) {
      const n = Object.keys(changes).length;
      const items: Item[] = [
        { label: '$(play) Reproduce', description: n ? `with ${formatAssignments(changes)}` : 'as it ran', action: 'start', alwaysShow: true },
        { label: '$(edit) Change several parameters…', description: 'name=value name=value', action: 'text', alwaysShow: true },
        { label: 'Parameters', kind: vscode.QuickPickItemKind.Separator, action: 'param' },
        ...Object.entries(run.params).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]): Item => ({
          label: k, description: k in changes ? `${v} → ${changes[k]}` : v, action: 'param', key: k,
        })),
      ];
      const pick = await vscode.window.showQuickPick(items, {
        title: `Reproduce ${runLabel(run)}: parameters (optional)`,
        placeHolder: 'Enter to start, or pick a parameter to change its value',
      });
      if (!pick) return undefined;
      if (pick.action === 'start') return changes;
      if (pick.action === 'text') {
        const text = await vscode.window.showInputBox({
          title: `Reproduce ${runLabel(run)}: parameter changes`,
          prompt: 'name=value pairs separated by spaces; quote values with spaces',
          value: formatAssignments(changes),
          validateInput: (t) => {
            const { errors } = parseAssignments(t);
            return errors.length ? errors.join('; ') : undefined;
          },
        });
        if (text !== undefined) {
          for (const k of Object.keys(changes)) delete changes[k];
          Object.assign(changes, effectiveChanges(run.params, parseAssignments(text).set));
        }
        continue;
      }
      if (pick.key) {
        const key = pick.key;
        const value = await vscode.window.showInputBox({
          title: `Reproduce ${runLabel(run)}: ${key}`,
          prompt: `The run used ${key} = ${run.params[key]}`,
          value: changes[key] ?? run.params[key],
        });
        if (value === undefined) continue;
        if (value === run.params[key]) delete changes[key];
        else changes[key] = value;
      }
    }
  };

  const waitForJob = (jobId: string, progress: vscode.Progress<{ message?: string; increment?: number }>,
                      token: vscode.CancellationToken, label: string): Promise<JobUpdate> =>
    new Promise<JobUpdate>((resolve) => {
      let reported = 0;
      let finished = false;
      const done = (u: JobUpdate) => {
        if (finished) return;
        finished = true;
        for (const x of subs) x.dispose();
        clearInterval(poll);
        resolve(u);
      };
      const apply = (u: JobUpdate) => {
        for (const line of u.log) d.jobsOut.appendLine(line);
        if (u.fraction !== undefined) {
          const pct = Math.round(u.fraction * 100);
          progress.report({ increment: Math.max(0, pct - reported), message: [u.phase, u.message].filter(Boolean).join(': ') || undefined });
          reported = Math.max(reported, pct);
        } else if (u.phase || u.message) {
          progress.report({ message: [u.phase, u.message].filter(Boolean).join(': ') });
        }
        if (u.done) done(u);
      };
      const subs: vscode.Disposable[] = [
        conn.onNotification(Notifications.job, (p: JobNotification) => {
          const u = parseJobUpdate(p);
          if (u.jobId === jobId) apply(u);
        }),
        conn.onDidChangeState((s) => {
          if (s !== 'connected') done({ ...parseJobUpdate({}), done: true, failed: true, error: 'lost the connection to the daemon' });
        }),
        token.onCancellationRequested(() => {
          d.jobsOut.appendLine(`[octostore] cancelling the reproduction of ${label}`);
          void conn.request<CancelReply>(Methods.cancel, { job: jobId } satisfies CancelParams).catch((e) => out.warn(`cancel: ${e.message ?? e}`));
        }),
      ];
      // Notifications are the main channel; a slow poll covers a missed one.
      const poll = setInterval(async () => {
        if (!conn.supports(Methods.jobs)) return;
        try {
          const reply = await conn.request<JobsReply>(Methods.jobs, { job: jobId, log_lines: 0 } satisfies JobsParams);
          const list: unknown[] = Array.isArray(reply?.jobs) ? reply.jobs : [reply];
          for (const j of list) {
            const u = parseJobUpdate(j);
            if ((u.jobId === undefined || u.jobId === jobId) && u.done) apply(u);
          }
        } catch {
          // the next notification or poll
        }
      }, 5000);
    });

  reg('octostore.reproduceRun', async (arg?: unknown) => {
    if (!(await requireConnection())) return;
    const ref = asRunRef(arg) ?? (await pickRun('Octostore: Reproduce Run — which run?'));
    if (!ref) return;
    const run = await conn.request<RunFull>(Methods.run, { root: ref.root, run_id: ref.run_id });
    const set = await pickChanges(run);
    if (!set) return;
    const label = runLabel(run);
    d.jobsOut.appendLine(`[octostore] reproducing ${label} (${run.run_id})${Object.keys(set).length ? ` with ${formatAssignments(set)}` : ''}`);
    emit('reproduce-start', { run_id: run.run_id, set });
    const params: ReproduceParams = { root: ref.root, run_id: run.run_id, ...(Object.keys(set).length ? { set } : {}) };
    let outcome: JobUpdate;
    let declined = false;
    try {
      outcome = await vscode.window.withProgress({
        location: vscode.ProgressLocation.Notification, title: `Octostore: reproducing ${label}`, cancellable: true,
      }, async (progress, token) => {
        progress.report({ message: 'starting…' });
        let reply: MethodTypes['octostore/reproduce']['reply'];
        try {
          reply = await conn.request<typeof reply>(Methods.reproduce, params);
        } catch (e) {
          // A command the repo recorded runs only once accepted: show it, ask, send it again.
          const ask = e instanceof DaemonError && e.code === ErrorCodes.ConfirmationRequired
            ? confirmationOf(e.data, label) : undefined;
          if (!ask) throw e;
          progress.report({ message: 'waiting for your answer…' });
          emit('reproduce-confirm', { run_id: run.run_id, unusual: ask.unusual });
          const pick = await vscode.window.showWarningMessage(ask.message, { modal: true, detail: ask.detail }, 'Run');
          if (pick !== 'Run') {
            declined = true;
            return { ...parseJobUpdate({}), done: true, cancelled: true };
          }
          progress.report({ message: 'starting…' });
          reply = await conn.request<typeof reply>(Methods.reproduce, { ...params, confirmed: true } satisfies ReproduceParams);
        }
        const first = parseJobUpdate(reply);
        const jobId = jobIdOf(reply);
        if (first.done || !jobId) return { ...first, done: true };
        return waitForJob(jobId, progress, token, label);
      });
    } catch (e) {
      if (e instanceof DaemonError && e.methodNotFound) {
        const msg = notYetMessage('reproduce runs', e);
        emit('reproduce', { outcome: 'not-supported', message: e.message });
        const pick = await vscode.window.showErrorMessage(msg, 'Restart Daemon', 'Show Logs');
        if (pick === 'Restart Daemon') await vscode.commands.executeCommand('octostore.restartDaemon');
        if (pick === 'Show Logs') out.show();
        return;
      }
      emit('reproduce', { outcome: 'error', message: e instanceof Error ? e.message : String(e) });
      throw e;
    }
    if (declined) {
      emit('reproduce', { outcome: 'declined' });
      d.jobsOut.appendLine(`[octostore] ${label}: not run (the command it recorded was not accepted)`);
      return;
    }
    if (outcome.cancelled) {
      emit('reproduce', { outcome: 'cancelled' });
      void vscode.window.showInformationMessage(`Octostore: the reproduction of ${label} was cancelled.`);
      return;
    }
    if (outcome.failed) {
      emit('reproduce', { outcome: 'failed', message: outcome.error });
      d.jobsOut.appendLine(`[octostore] ${label}: failed${outcome.phase ? ` during ${outcome.phase}` : ''}: ${outcome.error ?? outcome.message ?? ''}`);
      const pick = await vscode.window.showErrorMessage(
        `Octostore: the reproduction of ${label} failed${outcome.phase ? ` during ${outcome.phase}` : ''}: ` +
        `${outcome.error ?? outcome.message ?? 'see the log'}`, 'Show Log');
      if (pick === 'Show Log') d.jobsOut.show();
      return;
    }
    const summary = summarizeResult(outcome.result ?? {});
    d.jobsOut.appendLine(`[octostore] ${label}: ${summary.text}`);
    emit('reproduce', { outcome: 'result', verdict: summary.verdict, ok: summary.ok, text: summary.text, new_run_id: summary.newRunId });
    const buttons = summary.newRunId ? ['Show Run', 'Show Log'] : ['Show Log'];
    d.panels.reload(ref.root, run.run_id); // its "reproduced by" list has a new entry
    const line = `Octostore: ${label} ${summary.verdict}${summary.details ? ` — ${summary.details}` : ''}`;
    const pick = summary.ok
      ? await vscode.window.showInformationMessage(line, ...buttons)
      : await vscode.window.showWarningMessage(line, ...buttons);
    if (pick === 'Show Run' && summary.newRunId) d.panels.open(ref.root, summary.newRunId);
    if (pick === 'Show Log') d.jobsOut.show();
  });

  // -- Commit Runs ----------------------------------------------------------------------------------
  reg('octostore.commitRuns', async () => {
    if (!(await requireConnection())) return;
    const info = await pickRoot('Octostore: Commit Runs');
    if (!info) return;
    let planReply: CommitReply;
    try {
      planReply = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'Octostore: planning the commit' },
        () => conn.request<CommitReply>(Methods.commit, { root: info.root, dry_run: true } satisfies CommitParams));
    } catch (e) {
      if (e instanceof DaemonError && e.methodNotFound) {
        emit('commit', { outcome: 'not-supported', message: e.message });
        void vscode.window.showErrorMessage(notYetMessage('commit runs', e), 'Show Logs')
          .then((p) => { if (p) out.show(); });
        return;
      }
      throw e;
    }
    const plan = parsePlan(planReply);
    emit('commit-plan', { runs: plan.runs.length, files: plan.fileCount });
    if (!plan.runs.length) {
      void vscode.window.showInformationMessage(`Octostore: every run of ${roots.label(info)} is committed already.` +
        (plan.warnings.length ? ` ${plan.warnings.join(' ')}` : ''));
      return;
    }
    if (plan.warnings.length) {
      const go = await vscode.window.showWarningMessage(`Octostore: committing ${plan.runs.length} runs`,
        { modal: true, detail: plan.warnings.join('\n') }, 'Continue');
      if (go !== 'Continue') return;
    }
    type Item = vscode.QuickPickItem & { runId: string };
    const picked = await vscode.window.showQuickPick<Item>(plan.runs.map((r) => ({
      label: r.label, detail: r.detail, picked: true, runId: r.runId,
    })), {
      canPickMany: true,
      title: `Commit ${plan.runs.length} run${plan.runs.length === 1 ? '' : 's'}` +
        (plan.fileCount ? ` (${plan.fileCount} file${plan.fileCount === 1 ? '' : 's'})` : '') + ' to git',
      placeHolder: plan.message ? `Message: ${plan.message.split('\n')[0]} — Enter to commit` : 'Uncheck runs to leave out; Enter to commit',
    });
    if (!picked || !picked.length) return;
    const ids = picked.map((p) => p.runId);
    const all = ids.length === plan.runs.length;
    const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Octostore: committing runs' },
      async (progress) => {
        // The daemon reports the commit's phases as octostore/job notifications of kind "commit".
        const sub = conn.onNotification(Notifications.job, (p: JobNotification | CommitProgress) => {
          if (p?.kind === 'commit' && p?.root === info.root) {
            const u = parseJobUpdate(p);
            progress.report({ message: [u.phase, u.message].filter(Boolean).join(': ') });
          }
        });
        try {
          return await conn.request<CommitReply>(Methods.commit, { root: info.root, ...(all ? {} : { run_ids: ids }) } satisfies CommitParams);
        } finally {
          sub.dispose();
        }
      });
    const text = commitSummary(result);
    emit('commit', { outcome: 'result', text });
    void vscode.window.showInformationMessage(`Octostore: committed ${text}`);
  });

  // -- Open Dashboard -----------------------------------------------------------------------------
  reg('octostore.openDashboard', async () => {
    const info = (await requireConnection()) ? await pickRoot('Octostore: Open Dashboard') : undefined;
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
  });

  // -- Restart Daemon ------------------------------------------------------------------------------
  reg('octostore.restartDaemon', async () => {
    await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'Octostore: restarting the daemon' },
      () => conn.restartDaemon());
  });

  // -- the side panel -----------------------------------------------------------------------------
  reg('octostore.refresh', () => {
    d.insights.invalidate();
    void roots.refresh();
    d.runsTree.refresh();
    d.bestTree.refresh();
  });

  reg('octostore.filterRuns', async () => {
    if (!(await requireConnection())) return;
    const root = roots.all[0]?.root;
    const filter = await vscode.window.showInputBox({
      title: 'Octostore: Filter Runs',
      prompt: 'An MLflow search filter; empty shows every run',
      placeHolder: "metrics.rmse < 0.7 and params.max_depth = '8'",
      value: d.runsTree.currentFilter ?? '',
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
    if (filter !== undefined) await d.runsTree.setFilter(filter);
  });

  reg('octostore.clearFilter', () => d.runsTree.setFilter(undefined));
  reg('octostore.showMoreRuns', (root: string, expKey: string) => d.runsTree.showMore(root, expKey));
  reg('octostore.showLogs', () => out.show());
  reg('octostore.copyRunId', async (arg?: unknown) => {
    const ref = asRunRef(arg);
    if (ref) await vscode.env.clipboard.writeText(ref.run_id);
  });
  reg('octostore.installHelp', async () => {
    const pick = await vscode.window.showInformationMessage('Octostore: install the daemon',
      { modal: true, detail: `${INSTALL_HELP}\n\n${conn.lastError ?? ''}`.trim() }, 'Open Settings', 'Retry');
    if (pick === 'Open Settings') await vscode.commands.executeCommand('workbench.action.openSettings', 'octostore.daemonPath');
    if (pick === 'Retry') await conn.start();
  });
}
