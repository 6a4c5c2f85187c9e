// The run view's element builders. Every string child becomes a text node and every attribute
// is set with setAttribute: data from the daemon (names, paths, values) is never parsed as
// markup. Nothing here sets innerHTML.

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {},
  ...children: (Node | string | null | undefined)[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') el.className = v;
    else el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

export function section(title: string, id: string, ...body: (Node | null)[]): HTMLElement {
  return h('section', { id }, h('h2', {}, title), ...body);
}

export function table(head: string[], rows: (string | Node)[][], cls = ''): HTMLTableElement {
  return h('table', { class: cls },
    h('thead', {}, h('tr', {}, ...head.map((c) => h('th', {}, c)))),
    h('tbody', {}, ...rows.map((r) => h('tr', {}, ...r.map((c) => h('td', {}, c))))));
}
