import assert from 'node:assert/strict';
import { test } from 'node:test';

import { LogCursor, TAIL_BYTES, describeLog, pickLog } from '../../core/consoleLog';
import type { LogInfo, LogReply } from '../../protocol';

const info = (o: Partial<LogInfo> = {}): LogInfo =>
  ({ name: 'console', kind: 'console', path: '.octostore/logs/a.log', size: 10, live: false, part: 'run', ...o });
const reply = (o: Partial<LogReply>): LogReply =>
  ({ name: 'console', offset: 0, next_offset: 0, size: 0, data: '', eof: true, live: false, ...o });

test('the log to show: the chosen one while the run has it, else the first', () => {
  const logs = [info(), info({ name: 'octostore/console.log', kind: 'artifact' })];
  assert.equal(pickLog(logs)?.name, 'console');
  assert.equal(pickLog(logs, 'octostore/console.log')?.name, 'octostore/console.log');
  assert.equal(pickLog(logs, 'gone')?.name, 'console');
  assert.equal(pickLog([]), undefined);
  assert.equal(pickLog(undefined), undefined);
});

test('a log is read from its tail, then from next_offset; a live one keeps polling', () => {
  const c = new LogCursor('console', 'p');
  assert.deepEqual(c.request(), { name: 'console', tail: TAIL_BYTES, max_bytes: TAIL_BYTES });
  let step = c.accept(reply({ offset: 100, next_offset: 300, size: 400, data: 'a', eof: false, live: true }));
  assert.deepEqual(step, { reset: true, data: 'a', skipped: 100, size: 400, live: true, more: true });
  assert.deepEqual(c.request(), { name: 'console', offset: 300 });
  step = c.accept(reply({ offset: 300, next_offset: 400, size: 400, data: 'b', eof: true, live: true }));
  assert.deepEqual([step.reset, step.more, step.skipped], [false, false, 100]);
  assert.equal(c.live, true);
  // the listing shows more bytes, or the writer stopped: catch up
  assert.equal(c.behind(info({ size: 400, live: true })), false);
  assert.equal(c.behind(info({ size: 450, live: true })), true);
  assert.equal(c.behind(info({ size: 400, live: false })), true);
  // no progress although not at eof (a character split at the end): wait for the next poll
  step = c.accept(reply({ offset: 400, next_offset: 400, size: 401, eof: false, live: true }));
  assert.equal(step.more, false);
  // the log shrank under us: start over from the tail
  step = c.accept(reply({ offset: 0, next_offset: 10, size: 10, data: 'x', live: false }));
  assert.deepEqual([step.reset, step.data, step.more], [false, '', true]);
  assert.equal(c.request().tail, TAIL_BYTES);
  assert.equal(c.accept(reply({ offset: 0, next_offset: 10, size: 10, data: 'new' })).reset, true);
});

test('the line above the log says what is shown', () => {
  assert.equal(describeLog(info(), 2048, 0, false), '.octostore/logs/a.log · 2.0 KB');
  assert.equal(describeLog(info({ part: 'whole' }), 3 * 1024 * 1024, 1024 * 1024, true),
    '.octostore/logs/a.log · 3.0 MB · the whole log (shared with other runs) · showing the last 2.0 MB · live');
  assert.equal(describeLog(info({ name: 'octostore/console.log', kind: 'artifact', part: 'whole' }), 10, 0, false),
    'octostore/console.log · 10 B');
});
