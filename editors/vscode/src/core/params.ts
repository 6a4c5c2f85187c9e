// Parameter changes for a reproduction: `alpha=0.3 max_depth=4` <-> {alpha: "0.3", max_depth: "4"}.

export function parseAssignments(text: string): { set: Record<string, string>; errors: string[] } {
  const set: Record<string, string> = {};
  const errors: string[] = [];
  // key=value, value may be quoted to hold spaces
  const re = /\s*([^\s=]+)=("([^"]*)"|'([^']*)'|\S*)/y;
  let pos = 0;
  const src = text.trim();
  while (pos < src.length) {
    re.lastIndex = pos;
    const m = re.exec(src);
    if (!m) {
      const bad = src.slice(pos).trim().split(/\s+/)[0];
      errors.push(`"${bad}" is not name=value`);
      pos = src.indexOf(bad, pos) + bad.length;
      continue;
    }
    set[m[1]] = m[3] ?? m[4] ?? m[2];
    pos = re.lastIndex;
    while (pos < src.length && /\s/.test(src[pos])) pos++;
  }
  return { set, errors };
}

export function formatAssignments(set: Record<string, string>): string {
  return Object.entries(set)
    .map(([k, v]) => (/\s/.test(v) || v === '' ? `${k}="${v}"` : `${k}=${v}`))
    .join(' ');
}

/** Changes that differ from the run's own params (a value set back to the original is no change). */
export function effectiveChanges(original: Record<string, string>, set: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(set)) if (original[k] !== v) out[k] = v;
  return out;
}
