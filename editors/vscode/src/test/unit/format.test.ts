import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  ago, duration, fmtValue, keyMetricOf, lowerIsBetter, metricsSummary, orderKeys, runDescription,
  runLabel, runTooltip, statusLook, toNumber,
} from '../../core/format';
import type { RunRow } from '../../protocol';

const NOW = Date.UTC(2026, 10, 26, 12, 0, 0);

function run(over: Partial<RunRow> = {}): RunRow {
  return {
    run_id: '0123456789abcdef0123456789abcdef', experiment_id: '1', experiment_key: '1',
    run_name: 'rogue-bird-993', status: 'FINISHED', lifecycle_stage: 'active',
    start_time: NOW - 5 * 60_000, end_time: NOW - 4 * 60_000, user_id: 'me', artifact_uri: '',
    params: { n_estimators: '100', max_depth: '8' }, metrics: { rmse: 0.61234, r2: 0.4 },
    tags: {}, source: 'mlruns', sources: ['mlruns'], committed: false, warnings: [], clock: 3, ...over,
  };
}

test('values off the wire: numbers and the strings for non-finite values', () => {
  assert.equal(toNumber('NaN'), NaN);
  assert.equal(toNumber('Infinity'), Infinity);
  assert.equal(toNumber('-Infinity'), -Infinity);
  assert.equal(fmtValue('NaN'), 'NaN');
  assert.equal(fmtValue('Infinity'), '∞');
  assert.equal(fmtValue('-Infinity'), '-∞');
  assert.equal(fmtValue(0.612345), '0.6123');
  assert.equal(fmtValue(100), '100');
  assert.equal(fmtValue(123456.7), '1.235e+05');
  assert.equal(fmtValue(0.00001234), '1.234e-05');
  assert.equal(fmtValue(null), '–');
});

test('which metrics are better lower, as the daemon decides', () => {
  assert.ok(lowerIsBetter('rmse') && lowerIsBetter('val_loss') && lowerIsBetter('MAE'));
  assert.ok(!lowerIsBetter('r2') && !lowerIsBetter('accuracy'));
});

test('labels, ages and durations', () => {
  assert.equal(runLabel({ run_id: 'abcdef0123456789', run_name: null }), 'abcdef01');
  assert.equal(ago(NOW - 30_000, NOW), 'just now');
  assert.equal(ago(NOW - 5 * 60_000, NOW), '5 min ago');
  assert.equal(ago(NOW - 3 * 3600_000, NOW), '3 h ago');
  assert.equal(ago(null, NOW), '?');
  assert.equal(duration(NOW - 61_000, NOW, NOW), '1 min 1 s');
  assert.equal(duration(NOW - 2500, NOW, NOW), '2.5 s');
});

test('status icons', () => {
  assert.equal(statusLook('FINISHED').icon, 'pass');
  assert.equal(statusLook('FAILED').icon, 'error');
  assert.equal(statusLook('RUNNING').icon, 'sync~spin');
  assert.equal(statusLook('WEIRD').label, 'weird');
});

test('a run in the tree: its key metric; running and committed runs say so', () => {
  assert.equal(runDescription(run(), ['rmse']), 'rmse 0.6123');
  assert.equal(runDescription(run({ status: 'RUNNING', committed: true }), ['mae', 'r2']), 'r2 0.4 · running · committed');
  assert.equal(runDescription(run({ metrics: {} }), ['rmse']), '');
  assert.equal(keyMetricOf(run(), ['acc', 'r2']), 'r2');
});

test('tooltip lists params and metrics as markdown tables, escaping pipes', () => {
  const md = runTooltip(run({ params: { 'a|b': 'x|y' } }), NOW);
  assert.match(md, /\*\*rogue-bird-993\*\* — finished/);
  assert.match(md, /\| a\\\|b \| `x\\\|y` \|/);
  assert.match(md, /\| rmse \| 0\.6123 \|/);
});

test('key metric order: setting, daemon, then the most logged', () => {
  const runs = [run({ metrics: { mae: 1, r2: 2 } }), run({ metrics: { mae: 1 } })];
  assert.deepEqual(orderKeys(undefined, null, runs), ['mae', 'r2']);
  assert.deepEqual(orderKeys('r2', 'rmse', runs), ['r2', 'rmse', 'mae']);
  assert.equal(metricsSummary(run(), ['rmse', 'r2']), 'rmse 0.6123 · r2 0.4');
  assert.equal(metricsSummary(run(), ['nope']), 'r2 0.4 · rmse 0.6123');
});
