import assert from 'node:assert/strict';
import { test } from 'node:test';

import { commitSummary, parsePlan } from '../../core/commitPlan';
import { dashboardCommand, findDaemon, socketPath } from '../../core/daemon';
import { confirmationOf, inertText, jobIdOf, parseJobUpdate, summarizeResult } from '../../core/jobs';
import { effectiveChanges, formatAssignments, parseAssignments } from '../../core/params';
import { RestartPolicy, backoff } from '../../core/restart';

test('socket path: setting, $OCTOSTORE_SOCKET, $XDG_RUNTIME_DIR, /tmp (as octostored/paths.py)', () => {
  const isDir = (p: string) => p === '/run/user/1000';
  assert.equal(socketPath({ env: {}, uid: 1000, isDir }), '/tmp/octostore-1000/octostored.sock');
  assert.equal(socketPath({ env: { XDG_RUNTIME_DIR: '/run/user/1000' }, uid: 1000, isDir }),
    '/run/user/1000/octostore/octostored.sock');
  assert.equal(socketPath({ env: { XDG_RUNTIME_DIR: '/gone' }, uid: 7, isDir }), '/tmp/octostore-7/octostored.sock');
  assert.equal(socketPath({ env: { OCTOSTORE_SOCKET: '/s/d.sock', XDG_RUNTIME_DIR: '/run/user/1000' }, uid: 1, isDir }), '/s/d.sock');
  assert.equal(socketPath({ env: { OCTOSTORE_SOCKET: '/s/d.sock' }, uid: 1, isDir, setting: '/x/y.sock' }), '/x/y.sock');
});

test('finding octostored: setting, PATH, selected Python, workspace venvs', () => {
  const exes = new Set(['/usr/local/bin/octostored', '/proj/.venv/bin/octostored', '/envs/a/bin/octostored']);
  const isExecutable = (p: string) => exes.has(p);
  const base = { folders: ['/proj'], isExecutable, platform: 'linux' };
  assert.deepEqual(findDaemon({ ...base, configured: '/envs/a/bin/octostored' }),
    { command: '/envs/a/bin/octostored', origin: 'octostore.daemonPath' });
  const bad = findDaemon({ ...base, configured: '/nope/octostored', pathEnv: '/usr/local/bin' });
  assert.ok(!('origin' in bad) && bad.badSetting === '/nope/octostored');
  assert.equal(findDaemon({ ...base, pathEnv: '/usr/bin:/usr/local/bin' }).command, '/usr/local/bin/octostored');
  assert.deepEqual(findDaemon({ ...base, pathEnv: '/usr/bin', selectedPython: '/envs/a/bin/python' }),
    { command: '/envs/a/bin/octostored', origin: 'the selected Python environment' });
  assert.equal(findDaemon({ ...base, pathEnv: '/usr/bin' }).command, '/proj/.venv/bin/octostored');
  const none = findDaemon({ folders: ['/empty'], isExecutable, pathEnv: '/usr/bin', platform: 'linux' });
  assert.ok(!('origin' in none));
  assert.deepEqual(none.searched.slice(0, 2), ['PATH', '/empty/.venv/bin/octostored']);
  assert.equal(dashboardCommand('/proj/.venv/bin/octostored', (p) => p === '/proj/.venv/bin/octostore-tui', 'linux'),
    '/proj/.venv/bin/octostore-tui');
  assert.equal(dashboardCommand(undefined, () => false, 'linux'), 'octostore-tui');
});

test('parameter changes: name=value pairs, quoted values, errors', () => {
  assert.deepEqual(parseAssignments('alpha=0.3  max_depth=4'), { set: { alpha: '0.3', max_depth: '4' }, errors: [] });
  assert.deepEqual(parseAssignments('name="a b" x=\'c d\' e=').set, { name: 'a b', x: 'c d', e: '' });
  const bad = parseAssignments('alpha=1 oops beta=2');
  assert.deepEqual(bad.set, { alpha: '1', beta: '2' });
  assert.deepEqual(bad.errors, ['"oops" is not name=value']);
  assert.equal(formatAssignments({ a: '1', b: 'x y', c: '' }), 'a=1 b="x y" c=""');
  assert.deepEqual(effectiveChanges({ a: '1', b: '2' }, { a: '1', b: '3', c: '4' }), { b: '3', c: '4' });
});

test('reproduce jobs: ids, progress, terminal states, results (tolerant reading)', () => {
  assert.equal(jobIdOf({ job_id: 'j1' }), 'j1');
  assert.equal(jobIdOf({ job: { id: 7 } }), '7');
  assert.equal(jobIdOf('x'), undefined);
  const running = parseJobUpdate({ job_id: 'j1', phase: 'environment', progress: 40, log: 'a\nb\n' });
  assert.deepEqual([running.jobId, running.phase, running.fraction, running.log, running.done], ['j1', 'environment', 0.4, ['a', 'b'], false]);
  assert.equal(parseJobUpdate({ job_id: 'j1', progress: { done: 1, total: 4 } }).fraction, 0.25);
  const failed = parseJobUpdate({ job_id: 'j1', state: 'failed', error: { message: 'pip failed' } });
  assert.ok(failed.done && failed.failed && failed.error === 'pip failed');
  // octostored/jobs.py's notification: {job, kind, root, event, state, phase, phases, message, progress, lines}
  const log = parseJobUpdate({ job: 'r-1a2b3c4d', kind: 'reproduce', event: 'log', state: 'running', phase: 'run', progress: null, lines: ['epoch 1'] });
  assert.deepEqual([log.jobId, log.done, log.log, log.fraction], ['r-1a2b3c4d', false, ['epoch 1'], undefined]);
  // a running job's listing carries its partial result: still running
  const partial = parseJobUpdate({ job: 'r-1', state: 'running', phase: 'environment', phases: ['resolve', 'checkout', 'environment', 'run', 'compare'],
    progress: null, result: { verdict: null, run_id: 'orig', new_run_id: null } });
  assert.deepEqual([partial.done, partial.fraction], [false, 0.4]);
  assert.equal(summarizeResult(partial.result).newRunId, undefined);
  const end = parseJobUpdate({ job: 'r-1', event: 'finished', state: 'failed', result: { verdict: 'failed' },
    error: { phase: 'environment', message: 'pip install failed', remedy: 'see the log' } });
  assert.ok(end.done && end.failed && end.error === 'pip install failed; see the log');
  assert.ok(parseJobUpdate({ id: 'j', status: 'cancelled' }).cancelled);
  const finished = parseJobUpdate({ job_id: 'j1', state: 'done', result: { verdict: 'same' } });
  assert.ok(finished.done && !finished.failed && finished.result?.verdict === 'same');
});

test('a reproduction verdict, metric by metric', () => {
  const same = summarizeResult({ verdict: 'same', new_run_id: 'r2', metrics: [
    { key: 'rmse', original: 0.6123, reproduced: 0.6123, same: true },
    { key: 'mae', original: 0.47, reproduced: 'NaN', same: false },
  ] });
  assert.equal(same.ok, true);
  assert.equal(same.newRunId, 'r2');
  assert.equal(same.text, 'same: mae 0.47 ≠ NaN · rmse 0.6123 = 0.6123');
  const derived = summarizeResult({ metrics: { rmse: { original: 1, new: 2, within_tolerance: false } } });
  assert.deepEqual([derived.verdict, derived.ok], ['different', false]);
  assert.equal(summarizeResult(undefined).verdict, 'finished');
  // octostored/reproduce/compare.py rows
  const rows = summarizeResult({ verdict: 'diverged', metrics: [
    { key: 'mae', original: 0.5, reproduced: 0.5, status: 'equal' },
    { key: 'rmse', original: 0.6, reproduced: 0.7, status: 'diverged' },
    { key: 'extra', original: null, reproduced: 1, status: 'new' }] });
  assert.deepEqual([rows.ok, rows.details], [false, 'rmse 0.6 ≠ 0.7 · mae 0.5 = 0.5 · extra – → 1']);
  assert.equal(summarizeResult({ verdict: 'reproduced', metrics: [] }).ok, true);
  assert.equal(summarizeResult({ verdict: 'diverged', metrics: [{ key: 'r2', original: 0.40521234, reproduced: 0.40521239, status: 'diverged' }] }).details,
    'r2 0.40521234 ≠ 0.40521239');
});

test('commit plan and result', () => {
  const plan = parsePlan({ dry_run: true, runs: [{ run_id: 'abcdef0123', run_name: 'r1', experiment_name: 'wine', status: 'FINISHED' }, 'fedcba9876'],
    files: ['.octostore/runs/1/abc/meta.yaml', { path: 'requirements.txt' }], message: 'octostore: 2 runs', warnings: ['big.bin left out'] });
  assert.deepEqual(plan.runs.map((r) => [r.runId, r.label, r.detail]), [
    ['abcdef0123', 'r1', 'wine · finished · abcdef01'], ['fedcba9876', 'fedcba98', 'fedcba9876']]);
  assert.deepEqual(plan.files, ['.octostore/runs/1/abc/meta.yaml', 'requirements.txt']);
  assert.equal(plan.message, 'octostore: 2 runs');
  assert.deepEqual(plan.warnings, ['big.bin left out']);
  assert.deepEqual(parsePlan(null), { runs: [], files: [], fileCount: 0, message: undefined, warnings: [] });
  // octostored/gitops: files is a count, runs carry their experiment's name
  const real = parsePlan({ dry_run: true, files: 14, runs: [{ run_id: 'abcdef0123', run_name: 'r1', experiment: 'wine', status: 'FINISHED' }] });
  assert.deepEqual([real.fileCount, real.runs[0].detail], [14, 'wine · finished · abcdef01']);
  assert.equal(commitSummary({ commit: '0123456789abcdef', message: 'octostore: 2 runs\n\nbody', runs: ['a', 'b'] }),
    '2 runs in commit 0123456789: octostore: 2 runs');
});

test('reconnection: give up after 5 drops in 3 minutes, back off between attempts', () => {
  const p = new RestartPolicy(5, 180_000);
  const t0 = 1_000_000;
  for (let i = 0; i < 4; i++) assert.equal(p.dropped(t0 + i * 1000), true);
  assert.equal(p.dropped(t0 + 5000), false);
  assert.equal(p.dropped(t0 + 400_000), true); // the old drops aged out
  p.stable();
  assert.equal(p.recent, 0);
  assert.deepEqual([0, 1, 2, 3, 10].map((a) => backoff(a, 1000)), [100, 200, 400, 800, 1000]);
});

test('confirmation modal: the command taken apart, unusual reasons, strings inert', () => {
  const data = {
    remedy: 'check data.command',
    command: {
      argv: ['bash', '-c', 'id > /tmp/f; python train.py'], display: "bash -c 'id > /tmp/f; python train.py'",
      interpreter: 'bash', script: null, args: ['-c', 'id > /tmp/f; python train.py'],
      env: { MLFLOW_EXPERIMENT_NAME: 'tiny\u001b[2J' }, cwd: '.', commit: '0123456789abcdef',
      source: 'tag octostore.argv, run abc', kind: 'argv', unusual: true,
      reasons: ['it runs bash, not a Python interpreter running a file of the repo'], hash: 'h',
    },
  };
  const c = confirmationOf(data, 'bright-owl\u202e');
  assert.ok(c && c.unusual);
  assert.match(c.message, /UNUSUAL/);
  assert.ok(c.message.includes('bright-owl\\u202e'));
  assert.ok(c.detail.includes("Command: bash -c 'id > /tmp/f; python train.py'"));
  assert.ok(c.detail.includes('Interpreter: bash'));
  assert.ok(c.detail.includes('MLFLOW_EXPERIMENT_NAME=tiny\\x1b[2J'));
  assert.ok(c.detail.includes('commit 0123456789)'));
  assert.ok(c.detail.includes('• it runs bash'));
  assert.ok(!/[\u001b\u202e]/.test(c.detail + c.message));
  assert.equal(confirmationOf({ remedy: 'x' }, 'r'), undefined);
  assert.equal(inertText('a\tb\u0007'), 'a\\tb\\x07');
});
