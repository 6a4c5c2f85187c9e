// A console log played like a terminal: the lines a terminal would show for the bytes a program
// wrote to it. `\r` goes back to the line's start and later text overwrites it (a tqdm bar
// updated a thousand times is one line, in its final state), `ESC[K` erases, `ESC[nA`/`ESC[nB`
// move between lines (multi-bar progress), SGR codes become styles (16, 256 and 24-bit colours,
// bold, dim, italic, underline, inverse, strike); every other control code is dropped. Feeding is
// incremental (a chunk may end inside an escape sequence) and keeps only the last `maxLines`
// lines. Pure: no DOM, no vscode; the run view's webview renders `spans()`.
// A column is a UTF-16 unit, not a terminal cell: a wide character takes one column, an emoji
// two and a combining mark one, so text written over part of such a line lands where a terminal
// would not put it. Screen clears (ESC[J) are ignored: a log keeps its history.
// The same rules as the terminal view of the TUI (octostore_tui/terminal.py); the cases both are
// tested against: tests/terminal_cases.json.

export interface Style {
  /** 'ansi-0'..'ansi-15' (the theme's terminal colours) or '#rrggbb'. */
  fg?: string;
  bg?: string;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
  inverse?: boolean;
  strike?: boolean;
}

export interface Span {
  text: string;
  style: Style;
}

interface Line {
  text: string;
  /** A style id per UTF-16 unit of `text` (index into the style table). */
  sty: number[];
}

export const MAX_LINES = 5000;

// One token per control: \r, \n, backspace, tab, VT/FF, CSI (args, final byte), OSC, other ESC,
// C0/DEL (a stray ESC too).
const TOKEN = /(\r)|(\n)|(\x08)|(\t)|([\x0b\x0c])|\x1b\[([0-9;?:<=>]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[ -/]*[0-~]|[\x00-\x07\x0e-\x1f\x7f]/g;
/** An escape sequence cut off at the end of a chunk (kept for the next one); an OSC may be cut
 * between the ESC and the backslash of its ST. */
const INCOMPLETE = /\x1b(?:\[[0-9;?:<=>]*[ -/]*|\][^\x07\x1b]*\x1b?|[ -/]*)?$/;
/** How far back a cut escape is looked for: an OSC 8 link's URL may be long; a stray `ESC ]`
 * that never ends is shown as text once this much followed it. */
const HOLD = 4096;

const CUBE = [0, 95, 135, 175, 215, 255];
const hex2 = (n: number) => Math.max(0, Math.min(255, n | 0)).toString(16).padStart(2, '0');

/** The colour of xterm's 256-colour palette entry `n` ('ansi-N' for the 16 theme colours). */
export function color256(n: number): string | undefined {
  if (!Number.isInteger(n) || n < 0 || n > 255) return undefined;
  if (n < 16) return `ansi-${n}`;
  if (n < 232) {
    const i = n - 16;
    return `#${hex2(CUBE[Math.floor(i / 36)])}${hex2(CUBE[Math.floor(i / 6) % 6])}${hex2(CUBE[i % 6])}`;
  }
  const g = 8 + 10 * (n - 232);
  return `#${hex2(g)}${hex2(g)}${hex2(g)}`;
}

/** The style after the SGR parameters `args` ("1;31", "38;5;208", "38;2;255;0;0", the colon
 * forms "38:5:208" and "38:2::255:0:0"; "" = reset). Unknown codes are ignored. */
export function applySgr(style: Style, args: string): Style {
  const s: Style = { ...style };
  const groups = (args === '' ? ['0'] : args.split(';')).map((g) => g.split(':').map((x) => (x === '' ? 0 : Number(x))));
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i];
    const p = g[0];
    if (p === 0) {
      for (const k of Object.keys(s) as (keyof Style)[]) delete s[k];
    } else if (p === 1) s.bold = true;
    else if (p === 2) s.dim = true;
    else if (p === 3) s.italic = true;
    else if (p === 4) s.underline = true;
    else if (p === 7) s.inverse = true;
    else if (p === 9) s.strike = true;
    else if (p === 21 || p === 22) { delete s.bold; delete s.dim; }
    else if (p === 23) delete s.italic;
    else if (p === 24) delete s.underline;
    else if (p === 27) delete s.inverse;
    else if (p === 29) delete s.strike;
    else if (p >= 30 && p <= 37) s.fg = `ansi-${p - 30}`;
    else if (p >= 90 && p <= 97) s.fg = `ansi-${p - 90 + 8}`;
    else if (p >= 40 && p <= 47) s.bg = `ansi-${p - 40}`;
    else if (p >= 100 && p <= 107) s.bg = `ansi-${p - 100 + 8}`;
    else if (p === 39) delete s.fg;
    else if (p === 49) delete s.bg;
    else if (p === 38 || p === 48) {
      let rest: number[];
      if (g.length > 1) {
        rest = g.slice(1); // colon form: everything in this group
        if (rest[0] === 2 && rest.length >= 5) rest = [2, ...rest.slice(-3)]; // 2:<colour space>:r:g:b
      } else {
        const need = groups[i + 1]?.[0] === 5 ? 2 : 4;
        rest = groups.slice(i + 1, i + 1 + need).map((x) => x[0]);
        i += need;
      }
      let c: string | undefined;
      if (rest[0] === 5) c = color256(rest[1]);
      else if (rest[0] === 2 && rest.length >= 4 && rest.slice(1, 4).every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) {
        c = `#${rest.slice(1, 4).map(hex2).join('')}`;
      }
      if (c) s[p === 38 ? 'fg' : 'bg'] = c;
    }
  }
  return s;
}

const styleKey = (s: Style) => JSON.stringify(s, Object.keys(s).sort());

export class TerminalText {
  /** Lines let go from the top to stay within maxLines (absolute number of `lines[0]`). */
  dropped = 0;
  private lines: Line[] = [{ text: '', sty: [] }];
  private row = 0;
  private col = 0;
  private pending = '';
  private styleId = 0;
  private readonly sgrMemo = new Map<string, number>();
  private readonly styles: Style[] = [{}];
  private readonly styleIds = new Map<string, number>([['{}', 0]]);
  private changed: number | null = 0;

  constructor(readonly maxLines = MAX_LINES) {}

  /** Play the next chunk of the stream. Returns this. */
  feed(data: string): this {
    if (this.pending) {
      data = this.pending + data;
      this.pending = '';
    }
    const cut = INCOMPLETE.exec(data.length > HOLD ? data.slice(-HOLD) : data);
    if (cut) {
      const at = data.length - cut[0].length;
      this.pending = data.slice(at);
      data = data.slice(0, at);
    }
    TOKEN.lastIndex = 0;
    let last = 0;
    for (let m = TOKEN.exec(data); m; m = TOKEN.exec(data)) {
      if (m.index > last) this.write(data.slice(last, m.index));
      last = TOKEN.lastIndex;
      if (m[1]) this.col = 0;
      else if (m[2]) this.newline();
      else if (m[3]) this.col = Math.max(0, this.col - 1);
      else if (m[4]) this.col += 8 - (this.col % 8); // a move: what it passes over stays
      else if (m[5]) this.newlineKeepCol(); // VT, FF: down a line, same column (xterm)
      else if (m[7] !== undefined) this.csi(m[6], m[7]);
      // OSC, other escapes, other control codes: dropped
    }
    if (last < data.length) this.write(data.slice(last));
    this.trim();
    return this;
  }

  /** Absolute number of the first kept line. */
  get first(): number {
    return this.dropped;
  }

  /** Absolute number after the last line to show (a last line still empty, where the cursor
   * waits, is not shown). */
  get end(): number {
    const n = this.lines.length - (this.lines[this.lines.length - 1].text === '' ? 1 : 0);
    return this.dropped + n;
  }

  /** The plain text of the lines to show. */
  get plain(): string[] {
    const out: string[] = [];
    for (let i = this.first; i < this.end; i++) out.push(this.lines[i - this.dropped].text);
    return out;
  }

  /** The first line (absolute) changed since the last call, or null when nothing changed. */
  takeChanges(): number | null {
    const c = this.changed;
    this.changed = null;
    return c === null ? null : Math.max(c, this.dropped);
  }

  /** Line `n` (absolute) as runs of equally styled text. */
  spans(n: number): Span[] {
    const line = this.lines[n - this.dropped];
    if (!line) return [];
    const out: Span[] = [];
    let start = 0;
    for (let i = 1; i <= line.text.length; i++) {
      if (i === line.text.length || line.sty[i] !== line.sty[start]) {
        out.push({ text: line.text.slice(start, i), style: this.styles[line.sty[start]] });
        start = i;
      }
    }
    return out;
  }

  private touch(row: number): void {
    const abs = this.dropped + row;
    if (this.changed === null || abs < this.changed) this.changed = abs;
  }

  private write(s: string): void {
    if (!s) return;
    const line = this.lines[this.row];
    if (this.col > line.text.length) {
      const pad = this.col - line.text.length;
      line.text += ' '.repeat(pad);
      for (let i = 0; i < pad; i++) line.sty.push(0);
    }
    const end = this.col + s.length;
    line.text = line.text.slice(0, this.col) + s + line.text.slice(end);
    for (let i = this.col; i < end; i++) line.sty[i] = this.styleId;
    this.col = end;
    this.touch(this.row);
  }

  private newline(): void {
    this.row++;
    this.col = 0;
    if (this.row === this.lines.length) {
      this.lines.push({ text: '', sty: [] });
      this.touch(this.row);
    }
  }

  private csi(args: string, final: string): void {
    const n = Math.max(1, Number.parseInt(args.split(';')[0], 10) || 1);
    switch (final) {
      case 'm': {
        if (/[<=>?]/.test(args)) return;
        const memo = `${this.styleId}|${args}`;
        let id = this.sgrMemo.get(memo);
        if (id === undefined) {
          const style = applySgr(this.styles[this.styleId], args);
          const key = styleKey(style);
          id = this.styleIds.get(key);
          if (id === undefined) {
            id = this.styles.length;
            this.styles.push(style);
            this.styleIds.set(key, id);
          }
          if (this.sgrMemo.size < 4096) this.sgrMemo.set(memo, id);
        }
        this.styleId = id;
        return;
      }
      case 'K': {
        const line = this.lines[this.row];
        const mode = Number.parseInt(args, 10) || 0;
        if (mode === 0) {
          line.text = line.text.slice(0, this.col);
          line.sty = line.sty.slice(0, this.col);
        } else if (mode === 1) {
          const k = Math.min(this.col + 1, line.text.length);
          line.text = ' '.repeat(k) + line.text.slice(k);
          line.sty.fill(0, 0, k);
        } else if (mode === 2) {
          line.text = '';
          line.sty = [];
        }
        this.touch(this.row);
        return;
      }
      case 'A': // up
      case 'F': // up, to the line's start
        this.row = Math.max(0, this.row - n);
        if (final === 'F') this.col = 0;
        return;
      case 'B': // down
      case 'E': // down, to the line's start
        for (let i = 0; i < n; i++) this.newlineKeepCol();
        if (final === 'E') this.col = 0;
        return;
      case 'C':
        this.col += n;
        return;
      case 'D':
        this.col = Math.max(0, this.col - n);
        return;
      case 'G':
        this.col = n - 1;
        return;
      default:
        // cursor positioning, screen clearing, modes: meaningless in a log
    }
  }

  private newlineKeepCol(): void {
    const col = this.col;
    this.newline();
    this.col = col;
  }

  private trim(): void {
    // the shown lines: an empty last line (the cursor waits there) is not one of them
    const extra = this.lines.length - (this.lines[this.lines.length - 1].text === '' ? 1 : 0) - this.maxLines;
    if (extra <= 0) return;
    // keep the cursor's line, whatever happens
    const k = Math.min(extra, this.row);
    if (k <= 0) return;
    this.lines.splice(0, k);
    this.row -= k;
    this.dropped += k;
  }
}

/** The lines of `text` as a terminal would show them (a one-off, e.g. a grep match). */
export function renderText(text: string, maxLines = MAX_LINES): Span[][] {
  const t = new TerminalText(maxLines).feed(text);
  const out: Span[][] = [];
  for (let i = t.first; i < t.end; i++) out.push(t.spans(i));
  return out;
}

/** `text` without escape sequences and with `\r` updates collapsed (plain lines). */
export function plainText(text: string): string {
  return new TerminalText(Number.MAX_SAFE_INTEGER).feed(text).plain.join('\n');
}

const ANSI_NAMES = ['Black', 'Red', 'Green', 'Yellow', 'Blue', 'Magenta', 'Cyan', 'White'];

/** The CSS value of a style colour: the theme's terminal colour variable, or the hex value. */
export function cssColor(c: string): string {
  const m = /^ansi-(\d+)$/.exec(c);
  if (!m) return c;
  const n = Number(m[1]);
  const name = (n >= 8 ? 'Bright' : '') + ANSI_NAMES[n % 8];
  return `var(--vscode-terminal-ansi${name})`;
}

/** The CSS declarations of a style (inverse swaps the colours, defaulting to the theme's). */
export function styleCss(s: Style): string {
  let fg = s.fg ? cssColor(s.fg) : undefined;
  let bg = s.bg ? cssColor(s.bg) : undefined;
  if (s.inverse) {
    [fg, bg] = [bg ?? 'var(--vscode-editor-background)', fg ?? 'var(--vscode-editor-foreground)'];
  }
  const out: string[] = [];
  if (fg) out.push(`color: ${fg}`);
  if (bg) out.push(`background-color: ${bg}`);
  if (s.bold) out.push('font-weight: bold');
  if (s.dim) out.push('opacity: 0.6');
  if (s.italic) out.push('font-style: italic');
  const deco = [s.underline ? 'underline' : '', s.strike ? 'line-through' : ''].filter(Boolean).join(' ');
  if (deco) out.push(`text-decoration: ${deco}`);
  return out.join('; ');
}
