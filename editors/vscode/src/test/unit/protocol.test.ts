// The reply shapes of src/protocol.ts against replies recorded from a real daemon
// (fixtures/replies.json, recorded and kept fresh by tests/test_lsp.py in the Python suite):
// the assignments below fail to compile when a type claims a field the daemon does not send.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { fmtValue, runDescription, runTooltip } from '../../core/format';
import type {
  ArtifactsReply, ExperimentsReply, InsightsReply, MetricHistoryReply, RootSummary, RunFull, RunsReply, StatusReply,
} from '../../protocol';
import { PROTOCOL_VERSION } from '../../protocol';
import replies from './fixtures/replies.json';

const status: StatusReply = replies.status;
const open: RootSummary = replies.open;
const experiments: ExperimentsReply = replies.experiments;
const runs: RunsReply = replies.runs;
const run: RunFull = replies.run;
const history: MetricHistoryReply = replies.metric_history;
const artifacts: ArtifactsReply = replies.artifacts;
const insights: InsightsReply = replies.insights;

test('the recorded daemon speaks this protocol version and lists its methods', () => {
  assert.equal(status.protocol_version, PROTOCOL_VERSION);
  assert.ok(status.capabilities.includes('cmd-octostore/runs'));
  assert.equal(open.state, 'ready');
});

test('recorded replies render in the tree, the tooltip and the run view', () => {
  assert.ok(experiments.experiments.some((e) => e.runs > 0 && typeof e.key === 'string'));
  const row = runs.runs[0];
  assert.match(runDescription(row, [insights.metric ?? 'rmse']), /^(rmse|mae) \d/);
  assert.match(runTooltip(row), /\| alpha \|/);
  assert.equal(typeof run.metrics.rmse.step, 'number');
  assert.equal(fmtValue(history.series[0].y[0]), fmtValue(run.metrics.rmse.value));
  assert.ok(artifacts.artifacts.every((a) => typeof a.path === 'string' && typeof a.size === 'number'));
  assert.ok(insights.key_metrics.every((k) => typeof k.lower_is_better === 'boolean' && Array.isArray(k.best)));
});
