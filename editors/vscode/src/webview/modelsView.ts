// The run view's Models section: the run's logged models (MLflow 3), one row each: name,
// flavors, signature, size (or "not on this machine") and the short model id (click: copy).
// Built with dom.ts's `h` (text nodes only); what each row says comes from core/models.ts.
import { modelLook } from '../core/models';
import type { LoggedModelInfo } from '../protocol';
import { h, section, table } from './dom';

/** The section, or null when the run has no logged models (or the daemon sends none). */
export function modelsSection(models: LoggedModelInfo[] | undefined, copy: (id: string) => void): HTMLElement | null {
  if (!models?.length) return null;
  const rows = models.slice(0, 200).map((m) => {
    const look = modelLook(m);
    const id = h('code', { class: 'modelid', title: `${look.id} (click to copy)` }, look.shortId);
    id.addEventListener('click', () => copy(String(m.model_id)));
    const name: (Node | string)[] = [look.name];
    if (look.status) name.push(h('span', { class: 'muted' }, ` (${look.status})`));
    if (look.warnings.length) name.push(h('span', { class: 'warn', title: look.warnings.join('\n') }, ' ⚠'));
    return [h('span', {}, ...name), look.flavors, look.signature, look.size, id];
  });
  return section('Models', 'models', table(['model', 'flavors', '', 'size', 'id'], rows, 'models'));
}
