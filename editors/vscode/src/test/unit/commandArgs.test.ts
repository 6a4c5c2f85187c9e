import assert from 'node:assert/strict';
import { test } from 'node:test';

import { asRunRef, notYetMessage, phaseMessage, progressStep } from '../../core/commandArgs';

test('a command\'s run argument: a tree node, a best-runs node, a lens\'s {root, run_id}, or nothing', () => {
  assert.deepEqual(asRunRef({ kind: 'run', root: '/r', run: { run_id: 'a1' } }), { root: '/r', run_id: 'a1' });
  assert.deepEqual(asRunRef({ kind: 'best', root: '/r', best: { run_id: 'b2' } }), { root: '/r', run_id: 'b2' });
  assert.deepEqual(asRunRef({ root: '/r', run_id: 'c3', extra: 1 }), { root: '/r', run_id: 'c3' });
  assert.equal(asRunRef(undefined), undefined);
  assert.equal(asRunRef('a1'), undefined);
  assert.equal(asRunRef({ kind: 'experiment', root: '/r' }), undefined);
  assert.equal(asRunRef({ root: '/r', run_id: 7 }), undefined);
});

test('an older daemon: the message names the action, the answer and the method', () => {
  assert.equal(notYetMessage('commit runs', { message: 'Method not found', method: 'octostore/commit' }),
    'Octostore: this daemon cannot commit runs yet. It answered "Method not found" to octostore/commit. ' +
    'Update octostore in the environment octostored runs from, then run "Octostore: Restart Daemon".');
});

test('job progress: increments never go back, phase and message joined', () => {
  assert.equal(phaseMessage({ phase: 'env', message: 'pip' }), 'env: pip');
  assert.equal(phaseMessage({ message: 'pip' }), 'pip');
  assert.equal(phaseMessage({}), '');
  assert.deepEqual(progressStep({ fraction: 0.25, phase: 'env' }, 0), { report: { increment: 25, message: 'env' }, reported: 25 });
  assert.deepEqual(progressStep({ fraction: 0.1 }, 25), { report: { increment: 0, message: undefined }, reported: 25 });
  assert.deepEqual(progressStep({ phase: 'run', message: 'step 3' }, 25), { report: { message: 'run: step 3' }, reported: 25 });
  assert.deepEqual(progressStep({}, 40), { reported: 40 });
});
