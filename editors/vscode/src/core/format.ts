// Formatting of runs and metric values for the tree, tooltips, quick picks and messages.
// Pure functions (no `vscode`): the unit tests cover them.
import type { RunRow, WireFloat } from '../protocol';

/** A metric value off the wire as a number ("NaN", "Infinity", "-Infinity" included). */
export function toNumber(v: WireFloat | null | undefined): number {
  if (v === null || v === undefined) return NaN;
  if (typeof v === 'number') return v;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  return Number(v);
}

/** A value, short: 4 significant digits; NaN and infinities spelled out (as the daemon's lenses). */
export function fmtValue(v: WireFloat | null | undefined): string {
  if (v === null || v === undefined) return '–';
  const n = toNumber(v);
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? '∞' : '-∞';
  if (Number.isInteger(n) && Math.abs(n) < 1e9) return String(n);
  const a = Math.abs(n);
  // as the daemon's lenses (Python's %.3e): two exponent digits at least
  if (a >= 1e5 || a < 1e-3) return n.toExponential(3).replace(/e([+-])(\d)$/, 'e$10$2');
  return String(Number(n.toPrecision(4)));
}

const LOWER_IS_BETTER = /(loss|err|rmse|mse|mae|mape|perplexity|cost|time|latency|wer|cer)/i;

/** The daemon's rule (octostored/index/insights.py), for when no insights reply says otherwise. */
export function lowerIsBetter(key: string): boolean {
  return LOWER_IS_BETTER.test(key);
}

export function runLabel(run: { run_name?: string | null; run_id: string }): string {
  return run.run_name || run.run_id.slice(0, 8);
}

export function ago(ms: number | null | undefined, now: number = Date.now()): string {
  if (!ms) return '?';
  const secs = Math.max(0, (now - ms) / 1000);
  if (secs >= 86400) return `${Math.floor(secs / 86400)} d ago`;
  if (secs >= 3600) return `${Math.floor(secs / 3600)} h ago`;
  if (secs >= 60) return `${Math.floor(secs / 60)} min ago`;
  return 'just now';
}

export function duration(start: number | null | undefined, end: number | null | undefined,
                         now: number = Date.now()): string {
  if (!start) return '?';
  const secs = Math.max(0, ((end || now) - start) / 1000);
  if (secs < 60) return `${secs.toFixed(secs < 10 ? 1 : 0)} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ${Math.round(secs % 60)} s`;
  return `${Math.floor(secs / 3600)} h ${Math.round((secs % 3600) / 60)} min`;
}

export interface StatusLook {
  icon: string;
  color?: string;
  label: string;
}

/** Codicon and theme colour of a run status. */
export function statusLook(status: string): StatusLook {
  switch (status) {
    case 'FINISHED': return { icon: 'pass', color: 'testing.iconPassed', label: 'finished' };
    case 'FAILED': return { icon: 'error', color: 'testing.iconFailed', label: 'failed' };
    case 'RUNNING': return { icon: 'sync~spin', color: 'charts.blue', label: 'running' };
    case 'KILLED': return { icon: 'circle-slash', color: 'testing.iconSkipped', label: 'killed' };
    case 'SCHEDULED': return { icon: 'clock', label: 'scheduled' };
    default: return { icon: 'circle-outline', label: status.toLowerCase() };
  }
}

/** The metric a run shows next to its name: the chosen key, else its first metric. */
export function keyMetricOf(run: Pick<RunRow, 'metrics'>, keys: string[]): string | undefined {
  for (const k of keys) if (k in run.metrics) return k;
  return undefined;
}

/** The tree item description: `rmse 0.6123`, then `running` / `committed` when they apply
 * (the side panel is narrow: the age and the rest are in the tooltip). */
export function runDescription(run: RunRow, keys: string[]): string {
  const parts: string[] = [];
  const k = keyMetricOf(run, keys);
  if (k !== undefined) parts.push(`${k} ${fmtValue(run.metrics[k])}`);
  if (run.status === 'RUNNING') parts.push('running');
  if (run.committed) parts.push('committed');
  return parts.join(' · ');
}

function mdCell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** Markdown tooltip of a run: status, times, params and metrics. */
export function runTooltip(run: RunRow, now: number = Date.now()): string {
  const look = statusLook(run.status);
  const lines = [
    `**${mdCell(runLabel(run))}** — ${look.label}`,
    '',
    `\`${run.run_id}\` · started ${ago(run.start_time, now)} · ${duration(run.start_time, run.end_time, now)}` +
      (run.committed ? ' · committed' : ''),
  ];
  const params = Object.entries(run.params).sort(([a], [b]) => a.localeCompare(b));
  if (params.length) {
    lines.push('', '| param | value |', '|---|---|');
    for (const [k, v] of params.slice(0, 30)) lines.push(`| ${mdCell(k)} | \`${mdCell(v)}\` |`);
    if (params.length > 30) lines.push(`| … ${params.length - 30} more | |`);
  }
  const metrics = Object.entries(run.metrics).sort(([a], [b]) => a.localeCompare(b));
  if (metrics.length) {
    lines.push('', '| metric | value |', '|---|---:|');
    for (const [k, v] of metrics.slice(0, 30)) lines.push(`| ${mdCell(k)} | ${fmtValue(v)} |`);
  }
  if (run.warnings?.length) lines.push('', ...run.warnings.map((w) => `⚠ ${mdCell(w)}`));
  return lines.join('\n');
}

/** The description of a run in a quick pick: its key metrics. */
export function metricsSummary(run: Pick<RunRow, 'metrics'>, keys: string[], limit = 3): string {
  const shown = keys.filter((k) => k in run.metrics).slice(0, limit);
  if (!shown.length) {
    return Object.keys(run.metrics).sort().slice(0, limit)
      .map((k) => `${k} ${fmtValue(run.metrics[k])}`).join(' · ');
  }
  return shown.map((k) => `${k} ${fmtValue(run.metrics[k])}`).join(' · ');
}

/** Metric keys in the order the side panel prefers: the configured one, the daemon's choice,
 * then the metrics most runs logged. */
export function orderKeys(configured: string | undefined, daemonChoice: string | null | undefined,
                          runs: Pick<RunRow, 'metrics'>[]): string[] {
  const counts = new Map<string, number>();
  for (const r of runs) for (const k of Object.keys(r.metrics)) counts.set(k, (counts.get(k) || 0) + 1);
  const byCount = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([k]) => k);
  const out: string[] = [];
  for (const k of [configured, daemonChoice, ...byCount]) {
    if (k && !out.includes(k)) out.push(k);
  }
  return out;
}

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
