// End-to-end test of the packaged extension in a real VS Code (code-server 4.139 = VS Code 1.139),
// driven headless through Debian's chromium with playwright-core, against a real octostored.
//
//   1. a demo workspace: a git copy of demo/ with six real training runs (cached between runs);
//   2. octostore.vsix installed with `code-server --install-extension`;
//   3. the extension starts the daemon itself (octostore.daemonPath), connects over the socket;
//   4. checks: the side panel lists the runs, code lenses show the metric values on train.py,
//      a hover on a param, the run view renders charts, Reproduce Run... completes (with the
//      daemon's verdict, or its clear "not supported yet" answer while octostore/reproduce is
//      missing), Commit Runs shows the plan (or the same answer), Restart Daemon reconnects;
//   5. a screenshot of each step in editors/vscode/test-output/.
//
// Run it with scripts/test-editor (which installs Node 24, code-server, playwright-core and
// chromium); it needs OCTOSTORE_E2E_MODULES (the node_modules holding code-server) and Node 24.
// Prints "N passed, N failed" and exits non-zero on any failure.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const EXT = path.resolve(HERE, '..');
const REPO = path.resolve(EXT, '../..');
const OUT = path.join(EXT, 'test-output');
const MODULES = process.env.OCTOSTORE_E2E_MODULES;
if (!MODULES || !fs.existsSync(path.join(MODULES, 'node_modules', 'code-server'))) {
  console.error('run-e2e: set OCTOSTORE_E2E_MODULES to the folder whose node_modules hold code-server ' +
    '(scripts/test-editor does this)');
  process.exit(2);
}
const require = createRequire(path.join(MODULES, 'package.json'));
const { chromium } = require('playwright-core');
const CODE_SERVER = path.join(MODULES, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
const PY = path.join(REPO, '.venv', 'bin', 'python');
const DAEMON = path.join(REPO, '.venv', 'bin', 'octostored');
const VSIX = path.join(EXT, 'octostore.vsix');
const CACHE = process.env.OCTOSTORE_E2E_CACHE || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'octostore-e2e');
const T0 = Date.now();
const log = (...a) => console.log(`[e2e ${((Date.now() - T0) / 1000).toFixed(1).padStart(6)}s]`, ...a);

fs.rmSync(OUT, { recursive: true, force: true });
fs.mkdirSync(OUT, { recursive: true });
const WORK = fs.mkdtempSync('/tmp/oe2e-'); // short: a socket path holds at most 104 bytes
const SOCK = path.join(WORK, 'd.sock');
const EVENTS = path.join(WORK, 'events.jsonl');
const XDG = path.join(WORK, 'xdg');
const DATA = path.join(WORK, 'data');
const EXTS = path.join(WORK, 'ext');

// -- helpers ------------------------------------------------------------------------------------
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function readEvents() {
  try {
    return fs.readFileSync(EVENTS, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  } catch {
    return [];
  }
}

async function waitEvent(pred, what, timeout = 60_000, since = 0) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const evs = readEvents().slice(since);
    const hit = evs.find(pred);
    if (hit) return hit;
    // a command that failed will not send what we wait for: say why at once
    const err = evs.find((e) => e.event === 'command-error');
    if (err) throw new Error(`${err.command} failed while waiting for ${what}: ${err.message}`);
    await sleep(200);
  }
  throw new Error(`timed out after ${timeout / 1000} s waiting for ${what}`);
}

/** A bare JSON-RPC client on the daemon's socket (LSP framing), for the expected values. */
function rpc(method, params = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path: SOCK });
    let buf = Buffer.alloc(0);
    s.on('error', reject);
    s.on('connect', () => {
      const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }));
      s.write(Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`), body]));
    });
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const head = buf.indexOf('\r\n\r\n');
        if (head < 0) return;
        const len = Number(/content-length:\s*(\d+)/i.exec(buf.subarray(0, head).toString())[1]);
        if (buf.length < head + 4 + len) return;
        const msg = JSON.parse(buf.subarray(head + 4, head + 4 + len).toString());
        buf = buf.subarray(head + 4 + len);
        if (msg.id === 1) {
          s.end();
          if (msg.error) reject(new Error(msg.error.message));
          else resolve(msg.result);
        }
      }
    });
  });
}

/** The daemon's lens formatting (octostored/lsp/features.py fmt). */
function fmt(v) {
  if (typeof v === 'string') return v;
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(3).replace(/e([+-])(\d)$/, 'e$10$2');
  return String(Number(v.toPrecision(4)));
}

function findFiles(dir, re, out = []) {
  let entries = [];
  try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return out; }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) findFiles(p, re, out);
    else if (re.test(p)) out.push(p);
  }
  return out;
}

/** Stop the test's daemon: ask it, then make sure through the pid in its lock file. */
async function stopDaemon() {
  await rpc('octostore/shutdown').catch(() => {});
  let pid = 0;
  try { pid = Number(fs.readFileSync(`${SOCK}.lock`, 'utf8').trim()); } catch {}
  for (let i = 0; i < 50 && pid > 0; i++) {
    try { process.kill(pid, 0); } catch { return; } // gone
    if (i === 30) { try { process.kill(pid, 'SIGTERM'); } catch {} }
    await sleep(100);
  }
  if (pid > 0) { try { process.kill(pid, 'SIGKILL'); } catch {} }
}

function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${(r.stderr || r.stdout || '').slice(-2000)}`);
  return r.stdout;
}

// -- 1. the demo workspace ------------------------------------------------------------------------
function demoWorkspace() {
  const files = ['train.py', 'prepare.py', 'MLproject', 'python_env.yaml', 'requirements.txt', 'README.md', 'data/wine-quality.csv', 'data/README.md'];
  const h = crypto.createHash('sha256');
  for (const f of files) h.update(f).update(fs.readFileSync(path.join(REPO, 'demo', f)));
  const ws = path.join(CACHE, `demo-${h.digest('hex').slice(0, 12)}`);
  const pristine = path.join(ws, '.e2e-pristine');
  if (!fs.existsSync(path.join(pristine, 'mlflow.db'))) {
    log(`training the demo's six runs into ${ws} (first time only; a few minutes)`);
    fs.rmSync(ws, { recursive: true, force: true });
    fs.mkdirSync(ws, { recursive: true });
    for (const f of files) {
      fs.mkdirSync(path.dirname(path.join(ws, f)), { recursive: true });
      fs.copyFileSync(path.join(REPO, 'demo', f), path.join(ws, f));
    }
    fs.writeFileSync(path.join(ws, '.gitignore'), 'mlflow.db\nmlruns/\n.octostore/\n.e2e-pristine/\n');
    const git = (...a) => run('git', a, { cwd: ws, env: { ...process.env, GIT_AUTHOR_NAME: 'e2e', GIT_AUTHOR_EMAIL: 'e2e@octostore.invalid', GIT_COMMITTER_NAME: 'e2e', GIT_COMMITTER_EMAIL: 'e2e@octostore.invalid' } });
    git('init', '-q', '-b', 'main');
    git('add', '-A');
    git('commit', '-q', '-m', 'demo');
    const env = { ...process.env };
    for (const k of ['MLFLOW_TRACKING_URI', 'MLFLOW_RUN_ID', 'MLFLOW_EXPERIMENT_ID', 'MLFLOW_EXPERIMENT_NAME']) delete env[k];
    const r = spawnSync(PY, ['prepare.py'], { cwd: ws, env, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('demo/prepare.py failed');
    fs.mkdirSync(pristine, { recursive: true });
    fs.copyFileSync(path.join(ws, 'mlflow.db'), path.join(pristine, 'mlflow.db'));
    fs.cpSync(path.join(ws, 'mlruns'), path.join(pristine, 'mlruns'), { recursive: true });
  } else {
    // Start from the six runs: a reproduction of an earlier e2e run may have added some.
    fs.copyFileSync(path.join(pristine, 'mlflow.db'), path.join(ws, 'mlflow.db'));
    fs.rmSync(path.join(ws, 'mlruns'), { recursive: true, force: true });
    fs.cpSync(path.join(pristine, 'mlruns'), path.join(ws, 'mlruns'), { recursive: true });
    for (const f of ['mlflow.db-journal', 'mlflow.db-wal']) fs.rmSync(path.join(ws, f), { force: true });
  }
  // The latest run gets a console log (as `octostore run -- python train.py` keeps one): its
  // .log/.idx and the run's tag, made once and kept in the pristine copy.
  const consoleJson = path.join(pristine, 'console-v1.json');
  if (!fs.existsSync(consoleJson)) {
    log('writing a console log for the latest demo run');
    const env = { ...process.env, OCTOSTORE_REPO: REPO };
    for (const k of ['MLFLOW_TRACKING_URI', 'MLFLOW_RUN_ID', 'MLFLOW_EXPERIMENT_ID', 'MLFLOW_EXPERIMENT_NAME']) delete env[k];
    const out = run(PY, [path.join(HERE, 'demo_console_log.py')], { cwd: ws, env });
    fs.copyFileSync(path.join(ws, 'mlflow.db'), path.join(pristine, 'mlflow.db'));
    fs.rmSync(path.join(pristine, 'logs'), { recursive: true, force: true });
    fs.cpSync(path.join(ws, '.octostore', 'logs'), path.join(pristine, 'logs'), { recursive: true });
    fs.writeFileSync(consoleJson, out.trim().split('\n').at(-1));
  } else {
    fs.rmSync(path.join(ws, '.octostore', 'logs'), { recursive: true, force: true });
    fs.cpSync(path.join(pristine, 'logs'), path.join(ws, '.octostore', 'logs'), { recursive: true });
  }
  return { ws, consoleLog: JSON.parse(fs.readFileSync(consoleJson, 'utf8')) };
}

// -- the checks --------------------------------------------------------------------------------
const results = [];
let page;
let reproduceOutcome = 'not run';

async function shot(name) {
  await sleep(400); // let toasts and hovers finish drawing
  const file = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

async function check(name, fn) {
  const t = Date.now();
  try {
    await fn();
    results.push({ name, ok: true, secs: (Date.now() - t) / 1000 });
    log(`PASS ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push({ name, ok: false, secs: (Date.now() - t) / 1000, error: e.message });
    log(`FAIL ${name}: ${e.message}`);
    if (page) await page.screenshot({ path: path.join(OUT, `failed-${name.replace(/\W+/g, '-')}.png`) }).catch(() => {});
  }
}

/** Take the keyboard focus out of a webview (the run view's page, e.g. its filter box): keys
 * pressed there reach the workbench only by message, and a quick input that opens while the
 * webview still holds the focus closes again as the focus comes back to it. */
async function leaveWebview() {
  await page.evaluate(() => {
    const a = document.activeElement;
    if (a && a.tagName === 'IFRAME') a.blur();
  });
}

/** Run `command` from the command palette. Keys go to whatever has the focus, and focus moves
 * asynchronously (a closing quick pick hands it back to a webview, which forwards keys by
 * message): when the palette closes before the command is picked, open it again. */
async function palette(command) {
  const input = page.locator('.quick-input-widget input');
  for (let attempt = 1; ; attempt++) {
    try {
      await leaveWebview();
      await page.keyboard.press('Escape');
      await input.waitFor({ state: 'hidden', timeout: 5_000 }).catch(() => {});
      await page.keyboard.press('F1');
      await input.waitFor({ state: 'visible', timeout: 5_000 });
      await input.fill(`>${command}`, { timeout: 5_000 });
      await page.locator('.quick-input-list .monaco-list-row.focused', { hasText: command }).first().waitFor({ timeout: 10_000 });
      await page.keyboard.press('Enter');
      return;
    } catch (e) {
      if (attempt >= 3) throw e;
      log(`palette "${command}": attempt ${attempt} lost the palette (${e.message.split('\n')[0]}); again`);
    }
  }
}

// -- preconditions: each check sets up the UI state it needs (no check relies on the one before) --
const sidebar = () => page.locator('[id="workbench.parts.sidebar"]');
const treeRow = (name) => sidebar().locator('.monaco-list-row', { hasText: name }).first();
const statusItem = (text) => page.locator('.statusbar-item', { hasText: text }).first();

/** Show the Octostore side bar with its Experiments tree listing `expect` (the experiment's name).
 * `octostore.runs.focus` opens the view container and never toggles it; a click on the
 * activity bar icon of the container already shown collapses the side bar instead. */
async function showRunsView(expect) {
  await palette('Octostore: Focus on Experiments View');
  await sidebar().locator('.pane-body', { hasText: expect }).first().waitFor({ state: 'visible', timeout: 30_000 });
}

/** Open `file` in the editor with the cursor on `line`, checked on the status bar ("Ln 128,").
 * Keys go to the focused part, and a webview (the run view) forwards them to the workbench
 * asynchronously: focus a text editor by a click first, and try the keyboard steps again when
 * the status bar does not show the line. */
async function openAt(file, line) {
  const tab = page.locator('.tabs-container .tab', { hasText: file }).first();
  const input = page.locator('.quick-input-widget input');
  for (let attempt = 1; ; attempt++) {
    try {
      if (await tab.count()) {
        await tab.click();
        await page.locator('.tab.active', { hasText: file }).first().waitFor({ timeout: 5_000 });
        await page.keyboard.press('Control+G');
        await input.waitFor({ state: 'visible', timeout: 5_000 });
        await input.fill(`:${line}`);
      } else {
        await leaveWebview();
        await page.keyboard.press('Escape');
        await page.keyboard.press('Control+P');
        await input.waitFor({ state: 'visible', timeout: 5_000 });
        await input.fill(`${file}:${line}`);
        await page.locator('.quick-input-list .monaco-list-row', { hasText: file }).first().waitFor({ timeout: 10_000 });
      }
      await page.keyboard.press('Enter');
      await page.locator('.tab.active', { hasText: file }).first().waitFor({ timeout: 5_000 });
      await statusItem(`Ln ${line},`).waitFor({ timeout: 5_000 });
      await page.locator('.monaco-editor .view-lines').first().waitFor();
      return;
    } catch (e) {
      if (attempt >= 3) throw e;
      log(`openAt ${file}:${line}: attempt ${attempt} did not get there (${e.message.split('\n')[0]}); again`);
      await page.keyboard.press('Escape').catch(() => {});
    }
  }
}

async function main() {
  const { ws, consoleLog } = demoWorkspace();
  const expectRuns = 6;

  // -- 2. install the .vsix -----------------------------------------------------------------------
  if (!fs.existsSync(VSIX)) throw new Error(`${VSIX} is missing: run npm run build first`);
  fs.mkdirSync(path.join(DATA, 'User'), { recursive: true });
  fs.writeFileSync(path.join(DATA, 'User', 'settings.json'), JSON.stringify({
    'workbench.startupEditor': 'none',
    'chat.disableAIFeatures': true,
    'workbench.secondarySideBar.defaultVisibility': 'hidden',
    'telemetry.telemetryLevel': 'off',
    'extensions.autoUpdate': false,
    'extensions.autoCheckUpdates': false,
    'security.workspace.trust.enabled': false,
    'workbench.tips.enabled': false,
    'update.mode': 'none',
  }, null, 2));
  // No octostored on PATH and none configured yet: the extension must say "not found" first.
  const csEnv = {
    ...process.env,
    PATH: `${path.dirname(process.execPath)}:${process.env.PATH}`,
    XDG_CONFIG_HOME: XDG, XDG_DATA_HOME: XDG, XDG_CACHE_HOME: path.join(XDG, 'cache'),
    OCTOSTORE_SOCKET: SOCK,
    // kept between runs: a reproduction's environment is built once (uv), then reused
    OCTOSTORE_CACHE_DIR: path.join(CACHE, 'daemon-cache'),
    XDG_STATE_HOME: path.join(WORK, 'state'),
    OCTOSTORE_E2E_EVENTS: EVENTS,
  };
  let t = Date.now();
  const inst = spawnSync(process.execPath, [CODE_SERVER, '--extensions-dir', EXTS, '--user-data-dir', DATA,
    '--install-extension', VSIX], { env: csEnv, encoding: 'utf8' });
  const instOut = `${inst.stdout}\n${inst.stderr}`;
  fs.writeFileSync(path.join(OUT, 'install-extension.log'), instOut);
  results.push({ name: 'the .vsix installs into code-server', ok: inst.status === 0 && /successfully installed/i.test(instOut), secs: (Date.now() - t) / 1000,
    error: inst.status === 0 ? 'no "successfully installed" in the output' : instOut.slice(-500) });
  log(`${results.at(-1).ok ? 'PASS' : 'FAIL'} the .vsix installs into code-server (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  if (!results.at(-1).ok) return;

  // -- 3. code-server and the browser ------------------------------------------------------------------
  const port = await freePort();
  const csLog = fs.openSync(path.join(OUT, 'code-server.log'), 'w');
  const cs = spawn(process.execPath, [CODE_SERVER, '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none',
    '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', '--disable-getting-started-override',
    '--user-data-dir', DATA, '--extensions-dir', EXTS, ws], { env: csEnv, stdio: ['ignore', csLog, csLog], detached: true });
  const cleanups = [async () => { try { process.kill(-cs.pid, 'SIGTERM'); } catch {} }];
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok).catch(() => false);
      if (ok) break;
      if (Date.now() > deadline || cs.exitCode !== null) throw new Error('code-server did not start; see code-server.log');
      await sleep(200);
    }
    const chromiumPath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
    const browser = await chromium.launch({ executablePath: chromiumPath, headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    cleanups.unshift(() => browser.close());
    page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    page.setDefaultTimeout(30_000);
    t = Date.now();
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(ws)}`);
    await page.locator('.monaco-workbench').waitFor({ timeout: 90_000 });
    log(`workbench up in ${((Date.now() - t) / 1000).toFixed(1)} s`);

    // -- 4. the checks --------------------------------------------------------------------------------
    let status;
    await check('without a daemon: "not found" with install help', async () => {
      await waitEvent((e) => e.event === 'state' && e.state === 'notFound', 'the not-found state', 60_000);
      await page.locator('.statusbar-item', { hasText: 'Octostore: daemon not found' }).first().waitFor({ timeout: 20_000 });
      await page.locator('.statusbar-item', { hasText: 'Octostore: daemon not found' }).first().click();
      await page.locator('.monaco-dialog-box, .notification-toast', { hasText: 'pip install octostore' }).first().waitFor({ timeout: 10_000 });
      await shot('not-found');
      await page.keyboard.press('Escape');
    });

    await check('with octostore.daemonPath set, the extension starts the daemon and connects', async () => {
      // A machine setting (the extension host is remote in code-server), picked up live.
      fs.mkdirSync(path.join(DATA, 'Machine'), { recursive: true });
      fs.writeFileSync(path.join(DATA, 'Machine', 'settings.json'), JSON.stringify({ 'octostore.daemonPath': DAEMON }, null, 2));
      const ev = await waitEvent((e) => e.event === 'connected', 'the extension to connect', 120_000);
      status = await rpc('octostore/status');
      if (status.pid !== ev.pid) throw new Error(`connected to pid ${ev.pid}, the socket answers ${status.pid}`);
      if (!readEvents().some((e) => e.event === 'daemon-start')) throw new Error('the extension did not start the daemon itself');
      await page.locator('.statusbar-item', { hasText: `Octostore: ${expectRuns} runs` }).first().waitFor({ timeout: 60_000 });
    });
    if (!status) throw new Error('not connected: the remaining checks need the daemon');

    const runs = (await rpc('octostore/runs', { root: ws, order_by: ['attributes.start_time DESC'] }).catch(() => ({ runs: [] }))).runs;
    const names = runs.map((r) => r.run_name);
    const keyMetric = (await rpc('octostore/insights', { root: ws }).catch(() => ({}))).metric;

    await check('the side panel lists the runs', async () => {
      if (names.length !== expectRuns) throw new Error(`the daemon has ${names.length} runs, expected ${expectRuns}`);
      await showRunsView('wine-quality');
      for (const n of names) await treeRow(n).waitFor({ timeout: 30_000 });
      // the key metric in the description
      const latest = runs[0];
      const desc = `${keyMetric} ${fmt(latest.metrics[keyMetric])}`; // the daemon's key metric
      await sidebar().locator('.monaco-list-row', { hasText: latest.run_name }).filter({ hasText: desc }).first().waitFor({ timeout: 10_000 });
      await sidebar().locator('.pane-body', { hasText: 'is better' }).first().waitFor({ timeout: 10_000 }); // Best Runs
      await shot('side-panel');
    });

    await check('a code lens shows the metric values on train.py', async () => {
      await openAt('train.py', 128);
      const latest = runs[0];
      const want = `latest (${latest.run_name}): rmse ${fmt(latest.metrics.rmse)}`;
      await page.locator('.codelens-decoration', { hasText: want }).first().waitFor({ timeout: 60_000 });
      await page.locator('.codelens-decoration', { hasText: 'val_rmse' }).first().waitFor({ timeout: 10_000 });
      await shot('code-lens');
    });

    await check('a hover on a param key shows what the runs used and scored', async () => {
      await openAt('train.py', 96);
      const key = page.locator('.view-line span', { hasText: '"max_depth"' }).first();
      await key.waitFor({ timeout: 10_000 });
      await key.hover();
      await page.locator('.monaco-hover', { hasText: 'runs of' }).filter({ hasText: 'max_depth' }).first().waitFor({ timeout: 20_000 });
      await shot('hover');
      await page.mouse.move(5, 500);
    });

    await check('the run view shows charts, params, metrics, outputs', async () => {
      const since = readEvents().length;
      await showRunsView('wine-quality');
      await treeRow(names[0]).click();
      const ev = await waitEvent((e) => e.event === 'run-view', 'the run view to render', 60_000, since);
      await page.locator('.tab.active', { hasText: `Run ${names[0]}` }).first().waitFor({ timeout: 10_000 });
      if (!(ev.charts >= 1)) throw new Error(`the run view drew ${ev.charts} charts`);
      for (const s of ['metrics', 'params', 'tags', 'outputs']) {
        if (!ev.sections.includes(s)) throw new Error(`the run view has no ${s} section (${ev.sections})`);
      }
      await shot('run-view');
    });

    await check('the run view shows the run\'s console log like a terminal, with a filter', async () => {
      // the run view of the run with a log (opened by the check before, or now)
      await showRunsView('wine-quality');
      await treeRow(consoleLog.run_name).click();
      await page.locator('.tab.active', { hasText: `Run ${consoleLog.run_name}` }).first().waitFor({ timeout: 10_000 });
      const ev = await waitEvent((e) => e.event === 'run-console' && e.run_id === consoleLog.run_id, 'the console log to render', 60_000);
      const want = consoleLog.lines;
      if (ev.lines !== want.length) throw new Error(`the console shows ${ev.lines} lines, expected ${want.length}: ${JSON.stringify(ev.tail)}`);
      if (JSON.stringify(ev.tail) !== JSON.stringify(want.slice(-20))) throw new Error(`the console shows ${JSON.stringify(ev.tail)}, expected ${JSON.stringify(want.slice(-20))}`);
      // in the page: the progress bar in its final state only, colours as styles, no escape codes,
      // and only the run's part (the line printed before the run started is not in it)
      const view = page.frameLocator('iframe.webview.ready >> nth=0').frameLocator('#active-frame');
      const term = view.locator('#console .term:not(.grep)');
      const toConsole = () => view.locator('#console').evaluate((e) => e.scrollIntoView({ block: 'start' }));
      await toConsole();
      await term.locator('.tl', { hasText: 'trees: 100%|██████████| 100/100' }).waitFor({ timeout: 10_000 });
      const text = await term.innerText();
      for (const bad of ['trees:  50%', '\x1b', '[0m', consoleLog.hidden]) {
        if (text.includes(bad)) throw new Error(`the console shows ${JSON.stringify(bad)}: ${text.slice(0, 400)}`);
      }
      const done = term.locator('span', { hasText: '✓ done' }).first();
      const style = await done.getAttribute('style');
      if (!/ansiGreen|ansiBrightGreen/.test(style ?? '') || !/bold/.test(style ?? '')) throw new Error(`"✓ done" is styled ${style}`);
      await toConsole();
      await shot('run-console');
      // the filter box: the daemon's grep over the log
      const since = readEvents().length;
      await view.locator('#console input[type=search]').fill('val_rmse=0\\.67[0-4]');
      const g = await waitEvent((e) => e.event === 'run-console-grep', 'the filtered lines', 30_000, since);
      const expect = consoleLog.lines.filter((l) => /val_rmse=0\.67[0-4]/.test(l)).length;
      if (g.matches !== expect) throw new Error(`the filter found ${g.matches} lines, expected ${expect}`);
      await view.locator('#console .grep .tl').nth(expect - 1).waitFor({ timeout: 10_000 });
      if (await view.locator('#console .grep .tl').count() !== expect) throw new Error('the filter shows other lines too');
      await toConsole();
      await shot('run-console-filter');
      await view.locator('#console input[type=search]').fill('');
      // Hand the focus back to a text editor: a webview holding it (the filter box) takes it
      // back from the quick picks of the next commands, which then close.
      await page.locator('.tabs-container .tab', { hasText: 'train.py' }).first().click();
      await page.locator('.tab.active', { hasText: 'train.py' }).first().waitFor({ timeout: 10_000 });
    });

    await check('Reproduce Run... completes', async () => {
      const since = readEvents().length;
      await palette('Octostore: Reproduce Run...');
      await waitEvent((e) => e.event === 'quickpick' && e.items === expectRuns, 'the run quick pick', 30_000, since);
      await page.locator('.quick-input-list .monaco-list-row', { hasText: names[0] }).first().waitFor();
      await shot('reproduce-pick');
      await page.keyboard.press('Enter');
      await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Reproduce' }).first().waitFor();
      await page.keyboard.press('Enter');
      // A command the repo recorded runs only once accepted: the first time, a modal shows it.
      const asked = await waitEvent((e) => e.event === 'reproduce-confirm' || e.event === 'reproduce',
        'the command to accept (or the outcome)', 120_000, since);
      if (asked.event === 'reproduce-confirm') {
        const dialog = page.locator('.monaco-dialog-box', { hasText: 'Run it?' }).first();
        await dialog.waitFor({ timeout: 10_000 });
        const shown = await dialog.innerText();
        if (!shown.includes('Command: ') || !shown.includes('From: ')) throw new Error(`the modal does not show the command: ${shown}`);
        await shot('reproduce-confirm');
        await dialog.getByRole('button', { name: 'Run', exact: true }).click();
        log(`reproduce: accepted the command (${asked.unusual ? 'unusual' : 'usual'})`);
      }
      // A real reproduction builds an environment and trains: allow it time. Without
      // octostore/reproduce in the daemon the answer comes at once.
      const ev = await waitEvent((e) => e.event === 'reproduce', 'the reproduction to finish', 900_000, since);
      if (ev.outcome === 'result') {
        // any verdict completes the command: "reproduced" (info) or "diverged" (warning)
        await page.locator('.notification-toast', { hasText: `${names[0]} ${ev.verdict}` }).first().waitFor({ timeout: 10_000 });
        log(`reproduce verdict: ${ev.text}`);
        reproduceOutcome = `completed: ${ev.text}`;
      } else if (ev.outcome === 'not-supported') {
        // octostore/reproduce is not in this daemon yet: the command must say so clearly.
        await page.locator('.notification-toast', { hasText: 'cannot reproduce runs yet' }).first().waitFor({ timeout: 10_000 });
        log(`reproduce: the daemon has no octostore/reproduce yet; the extension said so (${ev.message})`);
        reproduceOutcome = `not in the daemon yet: ${ev.message}`;
      } else {
        throw new Error(`reproduce ended with ${ev.outcome}: ${ev.message ?? ''}`);
      }
      await sleep(1500); // the progress toast closes
      await shot('reproduce');
    });

    await check('Commit Runs shows the plan (or the daemon\'s answer)', async () => {
      const since = readEvents().length;
      await page.keyboard.press('Escape');
      await palette('Octostore: Commit Runs');
      const ev = await waitEvent((e) => e.event === 'commit-plan' || e.event === 'commit', 'the commit plan', 120_000, since);
      if (ev.event === 'commit-plan') {
        // every run is uncommitted: the six, plus the reproduction's new run when it ran
        if (ev.runs < expectRuns) throw new Error(`the plan holds ${ev.runs} runs, expected ${expectRuns} or more`);
        await page.locator('.quick-input-widget', { hasText: `Commit ${ev.runs} runs` }).first().waitFor({ timeout: 10_000 });
        await shot('commit-plan');
        await page.keyboard.press('Escape'); // leave the workspace uncommitted
      } else if (ev.outcome === 'not-supported') {
        await page.locator('.notification-toast', { hasText: 'cannot commit runs yet' }).first().waitFor({ timeout: 10_000 });
        await shot('commit');
      } else {
        throw new Error(`commit answered ${JSON.stringify(ev)}`);
      }
    });

    await check('Open Dashboard: the terminal dashboard in an integrated terminal', async () => {
      const since = readEvents().length;
      await page.keyboard.press('Escape');
      await palette('Octostore: Open Dashboard');
      const ev = await waitEvent((e) => e.event === 'dashboard', 'the dashboard terminal', 30_000, since);
      if (!ev.command.endsWith('octostore-tui')) throw new Error(`the dashboard runs ${ev.command}`);
      await page.locator('.terminal-tabs-entry, .single-terminal-tab, .terminal-tab', { hasText: 'Octostore Dashboard' }).first()
        .waitFor({ timeout: 20_000 }).catch(() => page.locator('.xterm').first().waitFor({ timeout: 10_000 }));
      // the dashboard starts (Textual) and draws; the terminal's DOM rows show its text
      await page.locator('.xterm-rows', { hasText: 'Runs by status' }).first().waitFor({ timeout: 8_000 })
        .catch(() => log('the dashboard\'s text is not in the terminal DOM (canvas renderer?): screenshot as is'));
      await shot('dashboard');
    });

    await check('Restart Daemon: a new daemon, reconnected, lenses back', async () => {
      const since = readEvents().length;
      const before = status.pid;
      await page.keyboard.press('Escape');
      await palette('Octostore: Restart Daemon');
      const ev = await waitEvent((e) => e.event === 'connected', 'the reconnection', 90_000, since);
      if (ev.pid === before) throw new Error(`still the same daemon (pid ${before})`);
      const now = (await rpc('octostore/runs', { root: ws, limit: 0 })).total; // 7 after a reproduction
      await statusItem(`Octostore: ${now} runs`).waitFor({ timeout: 60_000 });
      // the editor of train.py gets its lenses from the new daemon
      await openAt('train.py', 128);
      // the lenses count every run of train.py, the reproduction's too (attributed by its source)
      await page.locator('.codelens-decoration', { hasText: `of ${now} runs` }).first().waitFor({ timeout: 60_000 });
      await shot('after-restart');
    });

    await check('the daemon dies (kill -9): the extension starts a new one and reconnects', async () => {
      const since = readEvents().length;
      const st = await rpc('octostore/status');
      process.kill(st.pid, 'SIGKILL');
      // The status bar item is the user's signal: "disconnected"/"starting", then the run count
      // again once the new daemon answers (its own index: it reads the stores from scratch).
      await statusItem('Octostore: starting').or(statusItem('Octostore: disconnected')).waitFor({ timeout: 30_000 });
      const ev = await waitEvent((e) => e.event === 'connected', 'the reconnection after the crash', 90_000, since);
      if (ev.pid === st.pid) throw new Error('still the killed daemon?');
      if (!readEvents().slice(since).some((e) => e.event === 'daemon-start')) throw new Error('no new daemon was started');
      const now = (await rpc('octostore/runs', { root: ws, limit: 0 })).total;
      await statusItem(`Octostore: ${now} runs`).waitFor({ timeout: 60_000 });
      await showRunsView('wine-quality');
      await treeRow(names[1]).waitFor({ timeout: 30_000 });
      await openAt('train.py', 128);
      await page.locator('.codelens-decoration', { hasText: `of ${now} runs` }).first().waitFor({ timeout: 60_000 });
      await shot('after-crash');
    });
  } finally {
    fs.copyFileSync(EVENTS, path.join(OUT, 'events.jsonl'));
    // The editor first: a live extension would start a new daemon as soon as this one stops.
    for (const c of cleanups) await c().catch(() => {});
    await stopDaemon();
    // the extension's own log (Output > Octostore) and the jobs channel
    for (const f of findFiles(path.join(DATA, 'logs'), /(Octostore|remoteexthost)[^/]*\.log$/)) {
      fs.copyFileSync(f, path.join(OUT, path.basename(f).replace(/^\d+-/, '')));
    }
    const dlog = path.join(WORK, 'd.sock.log');
    if (fs.existsSync(dlog)) fs.copyFileSync(dlog, path.join(OUT, 'daemon.log'));
  }
}

let fatal;
try {
  await main();
} catch (e) {
  fatal = e;
  log(`ERROR ${e.stack || e}`);
}
const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed + (fatal ? 1 : 0);
fs.writeFileSync(path.join(OUT, 'results.json'), JSON.stringify({ results, reproduce: reproduceOutcome, fatal: fatal?.message, secs: (Date.now() - T0) / 1000 }, null, 2));
for (const r of results.filter((x) => !x.ok)) console.log(`  failed: ${r.name}: ${r.error}`);
log(`screenshots and logs in ${path.relative(process.cwd(), OUT) || OUT}`);
fs.rmSync(WORK, { recursive: true, force: true });
log(`reproduce: ${reproduceOutcome}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
