// The run view's Console section: the run's console log drawn like a terminal (core/terminal.ts
// plays the bytes: `\r` updates collapse, ANSI colours use the theme's terminal colours), fed
// incrementally as the extension reads and polls the log, and a filter box whose regex the
// daemon runs over the whole log (`octostore/log` with `grep`). The section element lives
// across re-renders of the run, so a followed log keeps its place.
import { VIEW_LINES } from '../core/consoleLog';
import { Span, TerminalText, renderText, styleCss } from '../core/terminal';

type Post = (m: unknown) => void;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls = '', text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function lineEl(spans: Span[], lineNo?: number): HTMLElement {
  const div = el('div', 'tl');
  if (lineNo !== undefined) div.append(el('span', 'ln', String(lineNo)));
  for (const s of spans) {
    const css = styleCss(s.style);
    if (!css) {
      div.append(s.text);
      continue;
    }
    const span = el('span', '', s.text);
    span.style.cssText = css;
    div.append(span);
  }
  return div;
}

export class ConsoleView {
  readonly section = el('section');
  private readonly info = el('span', 'muted');
  private readonly picker = el('select');
  private readonly filter = el('input');
  private readonly term = el('div', 'term');
  private readonly matches = el('div', 'term grep');
  private readonly note = el('p', 'muted');
  private text = new TerminalText(VIEW_LINES);
  /** Absolute number of the terminal line the first child of `term` shows. */
  private shownFirst = 0;
  private name = '';
  private grepTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly post: Post) {
    this.section.id = 'console';
    this.section.append(el('h2', '', 'Console'));
    this.filter.type = 'search';
    this.filter.placeholder = 'Filter lines (regular expression)';
    this.filter.setAttribute('aria-label', 'Filter the console log');
    this.filter.addEventListener('input', () => {
      clearTimeout(this.grepTimer);
      this.grepTimer = setTimeout(() => this.applyFilter(), 300);
    });
    this.picker.addEventListener('change', () => this.post({ type: 'log-select', name: this.picker.value }));
    const bar = el('div', 'console-bar');
    bar.append(this.picker, this.filter, this.info);
    this.section.append(bar, this.note, this.term, this.matches);
    this.showNone(undefined);
  }

  /** No log to show: the hint (or nothing, when the daemon cannot tell). */
  showNone(hint: string | undefined): void {
    this.section.hidden = !hint;
    this.note.className = 'muted hint';
    this.note.textContent = hint ?? '';
    this.note.hidden = false;
    for (const e of [this.term, this.matches, this.picker, this.filter, this.info]) e.hidden = true;
    this.name = '';
  }

  /** A (new) log: clear, list the run's logs in the picker when there are several. */
  start(names: string[], name: string, describe: string): void {
    this.section.hidden = false;
    this.name = name;
    this.picker.replaceChildren(...names.map((n) => {
      const o = el('option', '', n);
      o.value = n;
      o.selected = n === name;
      return o;
    }));
    this.picker.hidden = names.length < 2;
    this.filter.hidden = false;
    this.info.hidden = false;
    this.info.textContent = describe;
    this.note.hidden = true;
    this.note.className = 'muted';
    this.text = new TerminalText(VIEW_LINES);
    this.shownFirst = 0;
    this.term.replaceChildren();
    this.applyFilter();
  }

  /** The next bytes of the log (`reset`: the first ones, from its tail). */
  append(name: string, data: string, reset: boolean, describe: string): void {
    if (name !== this.name) return;
    if (reset) {
      this.text = new TerminalText(VIEW_LINES);
      this.shownFirst = 0;
      this.term.replaceChildren();
    }
    this.info.textContent = describe;
    const atBottom = this.term.scrollTop + this.term.clientHeight >= this.term.scrollHeight - 4;
    this.text.feed(data);
    this.redraw();
    if (atBottom || reset) this.term.scrollTop = this.term.scrollHeight;
    if (!this.text.plain.length && !this.term.childElementCount) {
      this.term.append(el('div', 'tl muted', '(nothing printed yet)'));
      this.shownFirst = -1; // replaced on the next redraw
    }
    const plain = this.text.plain;
    this.post({ type: 'console-rendered', name, lines: this.text.end, tail: plain.slice(-20) });
  }

  error(message: string): void {
    this.section.hidden = false;
    this.note.hidden = false;
    this.note.textContent = `⚠ ${message}`;
    this.note.className = 'warnings';
  }

  /** The daemon's matches for the filter box's pattern (or why it could not search). */
  showMatches(m: { pattern: string; matches?: [number, string][]; truncated?: boolean; error?: string }): void {
    if (m.pattern !== this.filter.value) return; // a newer pattern is on its way
    this.matches.replaceChildren();
    if (m.error) {
      this.matches.append(el('div', 'warnings', `⚠ ${m.error}`));
      return;
    }
    const rows = m.matches ?? [];
    this.matches.append(el('div', 'muted', rows.length
      ? `${rows.length}${m.truncated ? '+' : ''} matching line${rows.length === 1 ? '' : 's'}${m.truncated ? ' (the first shown)' : ''}`
      : 'No line matches.'));
    for (const [no, text] of rows) {
      const lines = renderText(text);
      this.matches.append(lineEl(lines[lines.length - 1] ?? [], no));
    }
  }

  private applyFilter(): void {
    const pattern = this.filter.value;
    this.term.hidden = !!pattern;
    this.matches.hidden = !pattern;
    if (pattern && this.name) {
      this.matches.replaceChildren(el('div', 'muted', 'Searching…'));
      this.post({ type: 'grep', pattern });
    }
  }

  /** Bring the DOM lines in line with the terminal: drop lines gone from the top, redraw changed. */
  private redraw(): void {
    const changed = this.text.takeChanges();
    if (changed === null && this.shownFirst >= 0) return;
    if (this.shownFirst < 0) {
      this.term.replaceChildren();
      this.shownFirst = this.text.first;
    }
    const first = this.text.first;
    const end = this.text.end;
    const drop = Math.min(first - this.shownFirst, this.term.childElementCount);
    for (let i = 0; i < drop; i++) this.term.firstElementChild?.remove();
    this.shownFirst = first;
    const from = Math.max(changed ?? first, first);
    const kids = this.term.children;
    for (let n = from; n < end; n++) {
      const node = lineEl(this.text.spans(n));
      const at = n - first;
      if (at < kids.length) kids[at].replaceWith(node);
      else this.term.append(node);
    }
    while (kids.length > end - first) this.term.lastElementChild?.remove();
  }
}
