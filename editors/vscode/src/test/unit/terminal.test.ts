import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TerminalText, applySgr, color256, cssColor, plainText, renderText, styleCss } from '../../core/terminal';

test('\\r updates collapse to the final state of the line (a tqdm bar)', () => {
  let bar = '';
  for (let i = 0; i <= 100; i += 10) bar += `\rtrees: ${String(i).padStart(3)}%|${'█'.repeat(i / 10).padEnd(10)}| ${i}/100`;
  const t = new TerminalText().feed(`fitting\n${bar}\ndone\n`);
  assert.deepEqual(t.plain, ['fitting', 'trees: 100%|██████████| 100/100', 'done']);
  // a shorter rewrite keeps the tail of the longer one, as a terminal does; ESC[K erases it
  assert.deepEqual(new TerminalText().feed('abcdef\rXY\n').plain, ['XYcdef']);
  assert.deepEqual(new TerminalText().feed('abcdef\rXY\x1b[K\n').plain, ['XY']);
  assert.deepEqual(new TerminalText().feed('abcdef\r\x1b[2KXY').plain, ['XY']);
  // \r\n is a plain line end; a trailing empty line (the cursor waits there) is not shown
  assert.deepEqual(new TerminalText().feed('a\r\nb\r\n').plain, ['a', 'b']);
  assert.deepEqual(new TerminalText().feed('\n\nx').plain, ['', '', 'x']);
});

test('chunks may split anything: escape sequences, \\r updates', () => {
  const whole = 'epoch 1 \x1b[32mok\x1b[0m\n50%\r100%\n\x1b[38;5;208mwarn\x1b[0m\n';
  const once = new TerminalText().feed(whole);
  for (let cut = 1; cut < whole.length; cut++) {
    const t = new TerminalText().feed(whole.slice(0, cut)).feed(whole.slice(cut));
    assert.deepEqual(t.plain, once.plain, `cut at ${cut}`);
    assert.deepEqual(t.spans(2), once.spans(2), `cut at ${cut}`);
  }
  assert.deepEqual(once.plain, ['epoch 1 ok', '100%', 'warn']);
  // a cut escape is held back, not shown
  assert.deepEqual(new TerminalText().feed('a\x1b[3').plain, ['a']);
});

test('ANSI colours become styles; other control codes are dropped cleanly', () => {
  const t = new TerminalText().feed('\x1b[1;31mERROR\x1b[0m plain \x1b[4m\x1b[38;2;10;20;30mrgb\x1b[24;39m end\n');
  assert.deepEqual(t.spans(0), [
    { text: 'ERROR', style: { bold: true, fg: 'ansi-1' } },
    { text: ' plain ', style: {} },
    { text: 'rgb', style: { underline: true, fg: '#0a141e' } },
    { text: ' end', style: {} },
  ]);
  // OSC titles, cursor show/hide, bells, other escapes: gone, text kept
  assert.equal(plainText('\x1b]0;title\x07a\x1b[?25lb\x1b[?25h\x07c\x1b(Bd\x1b=e'), 'abcde');
  assert.equal(plainText('tab\there'), 'tab     here');
  assert.equal(plainText('abc\x08\x08X'), 'aXc');
});

test('SGR parsing: 16/256/24-bit colours, colon forms, resets', () => {
  assert.deepEqual(applySgr({}, '1;2;3;4;7;9'), { bold: true, dim: true, italic: true, underline: true, inverse: true, strike: true });
  assert.deepEqual(applySgr({ bold: true, fg: 'ansi-1' }, ''), {});
  assert.deepEqual(applySgr({ bold: true, dim: true }, '22'), {});
  assert.deepEqual(applySgr({}, '93;104'), { fg: 'ansi-11', bg: 'ansi-12' });
  assert.deepEqual(applySgr({}, '38;5;208;48;5;4'), { fg: '#ff8700', bg: 'ansi-4' });
  assert.deepEqual(applySgr({}, '38:5:232'), { fg: '#080808' });
  assert.deepEqual(applySgr({}, '38:2::255:0:128'), { fg: '#ff0080' });
  assert.deepEqual(applySgr({}, '48;2;1;2;3;1'), { bg: '#010203', bold: true });
  assert.deepEqual(applySgr({ fg: 'ansi-2' }, '39'), {});
  assert.equal(color256(16), '#000000');
  assert.equal(color256(231), '#ffffff');
  assert.equal(color256(300), undefined);
  assert.equal(cssColor('ansi-9'), 'var(--vscode-terminal-ansiBrightRed)');
  assert.equal(cssColor('#123456'), '#123456');
  assert.equal(styleCss({ fg: 'ansi-2', bold: true, underline: true, strike: true }),
    'color: var(--vscode-terminal-ansiGreen); font-weight: bold; text-decoration: underline line-through');
  assert.equal(styleCss({ inverse: true }), 'color: var(--vscode-editor-background); background-color: var(--vscode-editor-foreground)');
});

test('cursor up/down redraws earlier lines (multi-bar progress)', () => {
  const t = new TerminalText().feed('bar1 0%\nbar2 0%\n\x1b[2A\rbar1 50%\n\x1b[1B\rbar1 100%\x1b[1A\rbar2 100%\n\n');
  // \x1b[2A back to bar1; "\n" down to bar2's line; ESC[1B down again; ESC[1A up to bar2
  assert.deepEqual(t.plain.slice(0, 3), ['bar1 50%', 'bar2 100%', 'bar1 100%']);
});

test('only the last maxLines lines are kept; changes are reported by absolute line', () => {
  const t = new TerminalText(3);
  t.feed('1\n2\n3\n4\n5\n');
  assert.deepEqual(t.plain, ['3', '4', '5']);
  assert.equal(t.first, 2);
  assert.equal(t.end, 5);
  assert.equal(t.takeChanges(), 2);
  assert.equal(t.takeChanges(), null);
  t.feed('6');
  assert.equal(t.takeChanges(), 5);
  t.feed('\r7');
  assert.equal(t.takeChanges(), 5);
  assert.deepEqual(t.plain, ['4', '5', '7']);
  assert.deepEqual(renderText('a\rb\nc'), [[{ text: 'b', style: {} }], [{ text: 'c', style: {} }]]);
});

test('a long log stays fast and bounded', () => {
  const t = new TerminalText(1000);
  const chunk = Array.from({ length: 1000 }, (_, i) => `\x1b[32mline ${i}\x1b[0m ${'x'.repeat(60)}\r\n`).join('');
  for (let i = 0; i < 100; i++) t.feed(chunk);
  assert.equal(t.end - t.first, 1000);
  assert.equal(t.end, 100_000);
  // one huge line without a newline (no stack overflow)
  assert.equal(new TerminalText().feed('y'.repeat(2_000_000)).plain[0].length, 2_000_000);
});
