// When to reconnect to the daemon after the connection dropped (redhat vscode-java's rule):
// always, with a growing delay, unless it dropped `maxCrashes` times within `windowMs`; then
// stop and let the person decide (Show Logs / Restart Daemon).

export class RestartPolicy {
  private drops: number[] = [];

  constructor(readonly maxCrashes = 5, readonly windowMs = 3 * 60_000) {}

  /** Record a dropped connection at `now`; true when it should be reconnected. */
  dropped(now: number = Date.now()): boolean {
    this.drops = this.drops.filter((t) => now - t < this.windowMs);
    this.drops.push(now);
    return this.drops.length < this.maxCrashes;
  }

  /** A connection that stayed up for a while clears the record. */
  stable(): void {
    this.drops = [];
  }

  reset(): void {
    this.drops = [];
  }

  get recent(): number {
    return this.drops.length;
  }
}

/** Delay before connection attempt number `attempt` (0-based): 100 ms doubling to `max`. */
export function backoff(attempt: number, max = 2000): number {
  return Math.min(max, 100 * 2 ** Math.max(0, attempt));
}
