// A run's logged models (MLflow 3 keeps them as their own entities, not among the run's
// artifacts) as the run view shows them, one row each: `model  sklearn  signature  2.1 KB  m-0f1e2d3c`.
// Pure (no DOM, no `vscode`): the unit tests cover it. Every string is inert (control and bidi
// characters shown escaped); the page adds them as text, never as markup.
import type { LoggedModelInfo } from '../protocol';
import { fmtBytes } from './format';
import { inertText } from './jobs';

export interface ModelLook {
  /** The name, else the short id. */
  name: string;
  /** `sklearn`; `python_function` only when it is the only flavor; `no flavor`. */
  flavors: string;
  /** `signature` / `no signature`. */
  signature: string;
  /** `2.1 KB`, or `not on this machine`. */
  size: string;
  id: string;
  shortId: string;
  /** Lowercase status when not ready (`failed`, `pending`), else undefined. */
  status?: string;
  warnings: string[];
}

/** The flavors worth naming: python_function is left out when there are others. */
export function shownFlavors(flavors: unknown): string[] {
  const all = Array.isArray(flavors) ? flavors.map(String)
    : flavors && typeof flavors === 'object' ? Object.keys(flavors) : [];
  const others = all.filter((f) => f !== 'python_function');
  return others.length ? others : all;
}

/** `m-0f1e2d3c` for MLflow's `m-<32 hex>` ids, the first 8 characters otherwise. */
export function shortModelId(id: string): string {
  return id.startsWith('m-') ? id.slice(0, 10) : id.slice(0, 8);
}

export function modelLook(m: LoggedModelInfo): ModelLook {
  const id = inertText(m.model_id);
  const shortId = shortModelId(id);
  const flavors = shownFlavors(m.flavors).map(inertText).join(', ');
  const status = typeof m.status === 'string' && m.status && m.status !== 'READY'
    ? inertText(m.status.toLowerCase()) : undefined;
  return {
    name: inertText(m.name) || shortId || 'model',
    flavors: flavors || 'no flavor',
    signature: m.signature ? 'signature' : 'no signature',
    size: m.local ? fmtBytes(Number(m.size) || 0) : 'not on this machine',
    id,
    shortId,
    status,
    warnings: (m.warnings ?? []).map(inertText),
  };
}
