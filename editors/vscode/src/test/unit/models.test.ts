// A run's logged models (MLflow 3) in the run view: what each row says (core/models.ts) and the
// section the page builds from them (webview/modelsView.ts), drawn here into a small stand-in
// DOM that serializes as a browser does: every string from the daemon must arrive as text.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { modelLook, shownFlavors, shortModelId } from '../../core/models';
import type { LoggedModelInfo, RunFull } from '../../protocol';
import { modelsSection } from '../../webview/modelsView';
import replies from './fixtures/replies.json';

// -- a stand-in DOM: elements, text nodes, attributes; innerHTML kept raw (as a browser parses it)
const escText = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const escAttr = (s: string) => escText(s).replace(/"/g, '&quot;');

class FakeText {
  constructor(readonly data: string) {}
  get html(): string { return escText(this.data); }
}

class FakeElement {
  readonly attrs = new Map<string, string>();
  readonly children: (FakeElement | FakeText | { html: string })[] = [];
  readonly listeners = new Map<string, ((e: unknown) => void)[]>();
  constructor(readonly tagName: string) {}
  set className(v: string) { this.attrs.set('class', v); }
  get className(): string { return this.attrs.get('class') ?? ''; }
  setAttribute(k: string, v: string): void { this.attrs.set(k, String(v)); }
  getAttribute(k: string): string | null { return this.attrs.get(k) ?? null; }
  set title(v: string) { this.attrs.set('title', v); }
  append(...nodes: (FakeElement | string)[]): void {
    for (const n of nodes) this.children.push(typeof n === 'string' ? new FakeText(n) : n);
  }
  set textContent(v: string) { this.children.length = 0; this.children.push(new FakeText(v)); }
  get textContent(): string {
    return this.children.map((c) => (c instanceof FakeText ? c.data : c instanceof FakeElement ? c.textContent : '')).join('');
  }
  set innerHTML(v: string) { this.children.length = 0; this.children.push({ html: v }); }
  addEventListener(type: string, f: (e: unknown) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), f]);
  }
  click(): void { for (const f of this.listeners.get('click') ?? []) f({ preventDefault() {} }); }
  get html(): string {
    const attrs = [...this.attrs].map(([k, v]) => ` ${k}="${escAttr(v)}"`).join('');
    return `<${this.tagName}${attrs}>${this.children.map((c) => c.html).join('')}</${this.tagName}>`;
  }
  /** Every element below, depth first; throws on markup that went in raw (innerHTML). */
  descendants(): FakeElement[] {
    const out: FakeElement[] = [];
    for (const c of this.children) {
      if (c instanceof FakeElement) out.push(c, ...c.descendants());
      else if (!(c instanceof FakeText)) throw new Error(`raw markup in <${this.tagName}>: ${c.html}`);
    }
    return out;
  }
  all(tag: string): FakeElement[] {
    return this.descendants().filter((e) => e.tagName === tag);
  }
}

(globalThis as unknown as { document: unknown }).document = { createElement: (tag: string) => new FakeElement(tag) };

function model(over: Partial<LoggedModelInfo> = {}): LoggedModelInfo {
  return {
    model_id: 'm-0f1e2d3c4b5a69788796a5b4c3d2e1f0', name: 'model', source_run_id: 'd02c20578e8b44b59895a081b5644dc2',
    flavors: ['python_function', 'sklearn'], signature: true, size: 2150, files: 5,
    artifact_location: 'file:///tmp/repo/mlruns/1/models/m-0f1e2d3c4b5a69788796a5b4c3d2e1f0/artifacts',
    status: 'READY', local: true, warnings: [], ...over,
  };
}

test('a model row: flavors without python_function, signature, size or where it is, a short id', () => {
  assert.deepEqual(shownFlavors(['python_function', 'sklearn']), ['sklearn']);
  assert.deepEqual(shownFlavors(['python_function']), ['python_function']);
  assert.deepEqual(shownFlavors([]), []);
  assert.equal(shortModelId('m-0f1e2d3c4b5a69788796a5b4c3d2e1f0'), 'm-0f1e2d3c');
  assert.equal(shortModelId('0123456789abcdef'), '01234567');
  const look = modelLook(model());
  assert.deepEqual([look.name, look.flavors, look.signature, look.size, look.id, look.shortId, look.status],
    ['model', 'sklearn', 'signature', '2.1 KB', 'm-0f1e2d3c4b5a69788796a5b4c3d2e1f0', 'm-0f1e2d3c', undefined]);
  const remote = modelLook(model({ local: false, size: 0, signature: false, flavors: ['python_function'], status: 'FAILED', name: '' }));
  assert.deepEqual([remote.name, remote.flavors, remote.signature, remote.size, remote.status],
    ['m-0f1e2d3c', 'python_function', 'no signature', 'not on this machine', 'failed']);
  assert.equal(modelLook(model({ flavors: [] })).flavors, 'no flavor');
  // control and bidi characters are shown escaped, never acted on
  assert.equal(modelLook(model({ name: 'a\u202eb\nc' })).name, 'a\\u202eb\\nc');
});

test('the Models section: a name or id that is markup stays text on the page', () => {
  const evil = '<img src=x onerror=alert(1)>';
  const copied: string[] = [];
  const sec = modelsSection([
    model({ name: evil, flavors: ['python_function', '<b>torch</b>'], warnings: ['<script>alert(2)</script>'] }),
    model({ model_id: 'm-"><svg onload=alert(3)>', name: 'other', local: false }),
  ], (id) => copied.push(id)) as unknown as FakeElement;
  assert.ok(sec, 'a section for the models');
  const html = sec.html;
  // only the elements the view builds, no markup parsed from the data
  const tags = new Set(sec.descendants().map((e) => e.tagName));
  assert.deepEqual([...tags].filter((t) => !['h2', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'span', 'code'].includes(t)), []);
  assert.ok(!/<img|<svg|<script|<b>/i.test(html), html);
  assert.ok(html.includes(escText(evil)), html);
  assert.ok(html.includes('&lt;b&gt;torch&lt;/b&gt;'), html);
  assert.ok(sec.textContent.includes(evil));
  assert.match(sec.textContent, /not on this machine/);
  assert.equal(sec.all('span').find((e) => e.className === 'warn')?.getAttribute('title'), '<script>alert(2)</script>');
  assert.equal(sec.getAttribute('id'), 'models');
  // the id: monospace, short, the whole of it on hover and copied on click
  const ids = sec.all('code');
  assert.deepEqual(ids.map((c) => c.textContent), ['m-0f1e2d3c', 'm-"><svg o']);
  assert.equal(ids[1].getAttribute('title'), 'm-"><svg onload=alert(3)> (click to copy)');
  ids[1].click();
  assert.deepEqual(copied, ['m-"><svg onload=alert(3)>']);
});

test('no models: no section', () => {
  assert.equal(modelsSection([], () => undefined), null);
  assert.equal(modelsSection(undefined, () => undefined), null);
});

test('the recorded run reply lists its models in the shape the view reads', () => {
  // (the hand-added model keeps the shape type-checked; a re-recording from the Python suite's
  // repo, which logs none, leaves `models: []`)
  const run: RunFull = replies.run;
  assert.ok(Array.isArray(run.models));
  for (const m of run.models) {
    assert.ok(typeof m.model_id === 'string' && Array.isArray(m.flavors) && typeof m.local === 'boolean');
    assert.match(modelLook(m).size, /^\d+(\.\d)? (B|KB|MB)$|^not on this machine$/);
  }
});
