// The run view's page script (bundled by esbuild for the webview, with uPlot and its CSS).
// It only renders what the extension posts (`{type: 'run', ...}`, the console log's chunks) and
// asks the extension for artifacts and log searches; it never talks to the daemon itself.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './runView.css';

import { duration, fmtBytes, fmtValue, runLabel, statusLook, toNumber } from '../core/format';
import type { ArtifactsReply, RunFull, Series } from '../protocol';
import { ConsoleView } from './consoleView';
import { h, section, table } from './dom';
import { modelsSection } from './modelsView';

declare function acquireVsCodeApi(): { postMessage(m: unknown): void; getState(): any; setState(s: any): void };
const vscode = acquireVsCodeApi();

interface RunMessage {
  type: 'run';
  root: string;
  run: RunFull;
  history: { series: Series[]; error?: string };
  artifacts: ArtifactsReply;
  now: number;
}

const app = document.getElementById('app')!;
let charts: uPlot[] = [];
const consoleView = new ConsoleView((m) => vscode.postMessage(m));

function css(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

function button(label: string, onClick: () => void, title = ''): HTMLButtonElement {
  const b = h('button', { title }, label);
  b.addEventListener('click', onClick);
  return b;
}

function chart(s: Series, width: number): HTMLElement {
  const card = h('div', { class: 'chart' });
  const ys = s.y.map((v) => {
    const n = toNumber(v);
    return Number.isFinite(n) ? n : null;
  });
  const last = s.y.length ? fmtValue(s.y[s.y.length - 1]) : '–';
  card.append(h('div', { class: 'chart-title' }, h('span', {}, s.key), h('span', { class: 'muted' },
    ` ${last} · ${s.points} point${s.points === 1 ? '' : 's'}${s.points > s.x.length ? ` (${s.x.length} shown)` : ''}`)));
  const fg = css('--vscode-foreground', '#ccc');
  const grid = css('--vscode-editorWidget-border', 'rgba(128,128,128,0.25)');
  const stroke = css('--vscode-charts-blue', '#3794ff');
  const opts: uPlot.Options = {
    width,
    height: 180,
    legend: { show: false },
    cursor: { drag: { x: true, y: false } },
    scales: { x: { time: false } },
    axes: [
      { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, label: 'step', labelSize: 16, size: 36 },
      { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 56 },
    ],
    series: [{}, { label: s.key, stroke, width: 2, points: { show: s.x.length < 40 }, spanGaps: false }],
  };
  const target = h('div', {});
  card.append(target);
  charts.push(new uPlot(opts, [s.x, ys as number[]], target));
  return card;
}

function render(m: RunMessage): void {
  for (const c of charts) c.destroy();
  charts = [];
  const { run } = m;
  const look = statusLook(run.status);
  app.replaceChildren();

  const meta = [
    run.experiment_name ? `experiment ${run.experiment_name}` : null,
    `started ${run.start_time ? new Date(run.start_time).toLocaleString() : '?'}`,
    `took ${duration(run.start_time, run.end_time, m.now)}`,
    run.user_id ? `by ${run.user_id}` : null,
    run.git?.commit ? `commit ${run.git.commit.slice(0, 10)}${run.git.dirty === 'true' ? ' (dirty)' : ''}` : null,
    run.committed ? 'committed to git' : 'not committed',
  ].filter(Boolean).join(' · ');
  const idEl = h('code', { class: 'runid', title: 'Copy the run id' }, run.run_id);
  idEl.addEventListener('click', () => vscode.postMessage({ type: 'copy', text: run.run_id }));
  app.append(h('header', {},
    h('h1', {}, h('span', { class: `status status-${look.label}` }, look.label), ` ${runLabel(run)}`),
    h('div', { class: 'muted' }, meta),
    h('div', { class: 'muted' }, idEl),
    h('div', { class: 'actions' },
      button('Reproduce…', () => vscode.postMessage({ type: 'reproduce' }), 'Octostore: Reproduce Run'),
      button('Refresh', () => vscode.postMessage({ type: 'refresh' })))));

  if (run.reproduces || run.reproduced_by?.length) {
    const items: Node[] = [];
    if (run.reproduces) {
      const a = h('a', { href: '#' }, run.reproduces.slice(0, 8));
      a.addEventListener('click', (e) => { e.preventDefault(); vscode.postMessage({ type: 'showRun', run_id: run.reproduces }); });
      items.push(h('li', {}, 'reproduces ', a));
    }
    for (const r of run.reproduced_by ?? []) {
      const a = h('a', { href: '#' }, r.run_id.slice(0, 8));
      a.addEventListener('click', (e) => { e.preventDefault(); vscode.postMessage({ type: 'showRun', run_id: r.run_id }); });
      items.push(h('li', {}, 'reproduced by ', a, ` — ${r.verdict ?? r.status.toLowerCase()}`));
    }
    app.append(section('Reproductions', 'reproductions', h('ul', {}, ...items)));
  }

  const warnings = [...(run.warnings ?? []), ...(m.artifacts.warnings ?? [])];
  if (m.history.error) warnings.push(m.history.error);
  if (warnings.length) app.append(h('div', { class: 'warnings' }, ...warnings.map((w) => h('div', {}, `⚠ ${w}`))));

  // Charts: every metric with more than one point.
  const curves = m.history.series.filter((s) => s.x.length > 1);
  const width = Math.max(260, Math.min(560, Math.floor((app.clientWidth || 800) / (curves.length > 1 ? 2 : 1)) - 24));
  if (curves.length) {
    const grid = h('div', { class: 'charts' });
    app.append(section('Charts', 'charts', grid));
    for (const s of curves) grid.append(chart(s, width));
  }

  const metricRows = Object.entries(run.metrics).sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => [k, fmtValue(v.value), String(v.step), v.timestamp ? new Date(v.timestamp).toLocaleTimeString() : '']);
  app.append(section('Metrics', 'metrics', metricRows.length
    ? table(['metric', 'latest', 'step', 'logged'], metricRows, 'num2')
    : h('p', { class: 'muted' }, 'No metrics.')));

  const paramRows = Object.entries(run.params).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, h('code', {}, v)]);
  app.append(section('Parameters', 'params', paramRows.length
    ? table(['param', 'value'], paramRows) : h('p', { class: 'muted' }, 'No parameters.')));

  const tags = Object.entries(run.tags).sort(([a], [b]) => a.localeCompare(b));
  const user = tags.filter(([k]) => !k.startsWith('mlflow.') && !k.startsWith('octostore.'));
  const system = tags.filter(([k]) => k.startsWith('mlflow.') || k.startsWith('octostore.'));
  app.append(section('Tags', 'tags',
    user.length ? table(['tag', 'value'], user.map(([k, v]) => [k, v])) : h('p', { class: 'muted' }, 'No tags of your own.'),
    system.length ? h('details', {}, h('summary', {}, `${system.length} system tags (mlflow.*, octostore.*)`),
      table(['tag', 'value'], system.map(([k, v]) => [k, v.length > 300 ? v.slice(0, 300) + '…' : v]))) : null));

  const env = run.environment ?? {};
  if (env.python || env.argv || env.lock) {
    app.append(section('Environment', 'environment', table(['', ''], [
      ['python', env.python ?? '–'], ['command', env.argv ?? '–'], ['lock', env.lock ?? '–'],
    ])));
  }

  // the run's logged models (MLflow 3 keeps their files apart from the artifacts)
  const models = modelsSection(run.models, (text) => vscode.postMessage({ type: 'copy', text }));
  if (models) app.append(models);

  const viewer = h('div', { id: 'artifact-view' });
  const list = m.artifacts.artifacts;
  const rows = list.slice(0, 500).map((a) => {
    const link = h('a', { href: '#' }, a.path);
    link.addEventListener('click', (e) => {
      e.preventDefault();
      viewer.replaceChildren(h('p', { class: 'muted' }, `Loading ${a.path}…`));
      vscode.postMessage({ type: 'artifact', path: a.path });
    });
    return [link, fmtBytes(a.size)];
  });
  app.append(section('Outputs', 'outputs', list.length
    ? table(['artifact', 'size'], rows, 'num1') : h('p', { class: 'muted' }, 'No artifacts.'), viewer));

  // the console log: the same element across renders (it follows the log on its own)
  app.append(consoleView.section);

  vscode.setState({ runId: run.run_id });
  vscode.postMessage({ type: 'rendered', charts: curves.length,
    sections: [...app.querySelectorAll('section')].filter((s) => !s.hidden).map((s) => s.id) });
}

window.addEventListener('message', (ev) => {
  const m = ev.data;
  if (m?.type === 'run') render(m as RunMessage);
  else if (m?.type === 'error') {
    app.replaceChildren(h('div', { class: 'warnings' }, `⚠ ${m.message}`),
      button('Retry', () => vscode.postMessage({ type: 'refresh' })));
  } else if (m?.type === 'log-start') consoleView.start(m.names, m.name, m.describe);
  else if (m?.type === 'log') consoleView.append(m.name, m.data, m.reset, m.describe);
  else if (m?.type === 'log-none') consoleView.showNone(m.hint);
  else if (m?.type === 'log-error') consoleView.error(m.message);
  else if (m?.type === 'grep') consoleView.showMatches(m);
  else if (m?.type === 'artifact') {
    const viewer = document.getElementById('artifact-view');
    if (!viewer) return;
    if (m.error) viewer.replaceChildren(h('div', { class: 'warnings' }, `⚠ ${m.error}`));
    else viewer.replaceChildren(h('div', { class: 'muted' }, `${m.path} · ${fmtBytes(m.size)}${m.truncated ? ' (truncated)' : ''}`),
      h('pre', { class: 'log' }, m.binary ? '(binary file)' : m.text));
  }
});

vscode.postMessage({ type: 'ready' });
