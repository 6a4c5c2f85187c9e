// Test events: when $OCTOSTORE_E2E_EVENTS names a file, the extension appends one JSON line per
// event that an end-to-end test waits on (connected, tree loaded, reproduce finished…).
// Nothing is written otherwise.
import * as fs from 'fs';

export function emit(event: string, data: Record<string, unknown> = {}): void {
  const file = process.env.OCTOSTORE_E2E_EVENTS;
  if (!file) return;
  try {
    fs.appendFileSync(file, JSON.stringify({ t: Date.now(), event, ...data }) + '\n');
  } catch {
    // a test harness that went away must not break the extension
  }
}
