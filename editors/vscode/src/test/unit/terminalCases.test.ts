// The shared cases of the two terminal renderers: tests/terminal_cases.json at the repo's root,
// run here through core/terminal.ts and by tests/test_terminal_cases.py through the TUI's
// octostore_tui/terminal.py. The conventions of the file (what `lines`, `chunks`, `styles`,
// `skip` mean) are in the Python test's docstring.
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';

import { Style, TerminalText } from '../../core/terminal';

interface Case {
  name: string;
  input: string;
  chunks?: (number[] | 'every')[];
  max_lines?: number;
  lines: string[];
  dropped?: number;
  styles?: Run[][];
  skip?: { py?: string; ts?: string };
}
type Attrs = Record<string, string | boolean>;
type Run = [number, number, Attrs];

function casesFile(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const f = join(dir, 'tests', 'terminal_cases.json');
    if (existsSync(f)) return f;
    if (dirname(dir) === dir) throw new Error('tests/terminal_cases.json not found above ' + __dirname);
  }
}
const CASES: Case[] = JSON.parse(readFileSync(casesFile(), 'utf8'));

const NAMES = ['black', 'red', 'green', 'yellow', 'blue', 'magenta', 'cyan', 'white'];
const NAMES16 = [...NAMES, ...NAMES.map((n) => `bright_${n}`)];

function colour(c: string): string {
  const m = /^ansi-(\d+)$/.exec(c);
  return m ? NAMES16[Number(m[1])] : c;
}

function attrs(s: Style): Attrs {
  const out: Attrs = {};
  if (s.fg) out.fg = colour(s.fg);
  if (s.bg) out.bg = colour(s.bg);
  for (const k of ['bold', 'dim', 'italic', 'underline', 'inverse', 'strike'] as const) if (s[k]) out[k] = true;
  return out;
}

/** A line's spans as the neutral styled runs, in code points. */
function runs(t: TerminalText, n: number): Run[] {
  const out: Run[] = [];
  let i = 0;
  for (const span of t.spans(n)) {
    const a = attrs(span.style);
    const len = [...span.text].length;
    const prev = out[out.length - 1];
    if (prev && prev[1] === i && JSON.stringify(prev[2]) === JSON.stringify(a)) prev[1] = i + len;
    else if (Object.keys(a).length) out.push([i, i + len, a]);
    i += len;
  }
  return out;
}

function plans(c: Case): number[][] {
  const n = [...c.input].length;
  const out: number[][] = [[]];
  for (const plan of c.chunks ?? []) {
    if (plan === 'every') for (let i = 1; i < n; i++) out.push([i]);
    else out.push(plan);
  }
  return out;
}

function play(c: Case, cuts: number[]): Partial<Case> {
  const t = new TerminalText(c.max_lines ?? 10_000);
  const chars = [...c.input]; // offsets are in code points
  let last = 0;
  for (const cut of [...cuts, chars.length]) {
    t.feed(chars.slice(last, cut).join(''));
    last = cut;
  }
  const got: Partial<Case> = { lines: t.plain };
  if (c.dropped !== undefined) got.dropped = t.dropped;
  if (c.styles) {
    got.styles = [];
    for (let i = t.first; i < t.end; i++) got.styles.push(runs(t, i));
  }
  return got;
}

function check(c: Case): void {
  const want: Partial<Case> = { lines: c.lines };
  if (c.dropped !== undefined) want.dropped = c.dropped;
  if (c.styles) want.styles = c.styles;
  for (const cuts of plans(c)) assert.deepEqual(play(c, cuts), want, `chunks cut at [${cuts}]`);
}

for (const c of CASES) {
  const reason = c.skip?.ts;
  if (reason === undefined) {
    test(`terminal case: ${c.name}`, () => check(c));
  } else {
    // a documented limit: the case must still fail here (a renderer that learns it drops the skip)
    test(`terminal case: ${c.name} (skipped: ${reason})`, () => assert.throws(() => check(c)));
  }
}

test('the shared cases are many and well formed', () => {
  assert.ok(CASES.length >= 30);
  assert.equal(new Set(CASES.map((c) => c.name)).size, CASES.length);
  for (const c of CASES) assert.equal((c.styles ?? c.lines).length, c.lines.length, c.name);
});
