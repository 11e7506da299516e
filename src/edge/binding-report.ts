import type { BindingHealth } from '../gateway/index.js';

/**
 * The most binding figures one heartbeat carries. The link's frames are at most 64 KiB, and a
 * site with thousands of devices would not fit in one: a heartbeat that is too big would close
 * the link on every attempt.
 */
export const MAX_BINDING_FIGURES_BYTES = 32 * 1024;
/** Longest error message an edge reports per device: the figures are a status, not a log. */
const MAX_REPORTED_ERROR = 200;

/**
 * What an edge has told its cloud about the bindings it runs. Each heartbeat carries the figures
 * that changed since they were last sent, then the longest unsent others, within the size budget:
 * a change reaches the cloud with the next heartbeat, and every device's figures are refreshed in
 * turn however many devices there are. The cloud keeps the last figures per device.
 */
export class BindingHealthReport {
  private sent = new Map<string, { json: string; at: number }>();

  constructor(private readonly budgetBytes = MAX_BINDING_FIGURES_BYTES) {}

  /** The figures for the next heartbeat (not yet marked sent: see `sentAt`). */
  next(current: ReadonlyMap<string, BindingHealth>): Record<string, BindingHealth> {
    const candidates = [...current].map(([deviceId, health]) => {
      const reported = reportable(health);
      const json = JSON.stringify(reported);
      const previous = this.sent.get(deviceId);
      const changed = previous === undefined || previous.json !== json;
      return { deviceId, reported, bytes: JSON.stringify(deviceId).length + json.length + 2, changed, at: previous?.at ?? -1 };
    });
    candidates.sort((a, b) => Number(b.changed) - Number(a.changed) || a.at - b.at);
    const chosen: Record<string, BindingHealth> = {};
    let bytes = 2;
    for (const candidate of candidates) {
      if (bytes + candidate.bytes > this.budgetBytes) continue;
      bytes += candidate.bytes;
      chosen[candidate.deviceId] = candidate.reported;
    }
    return chosen;
  }

  /** The heartbeat carrying these figures left the edge at `at`. */
  sentAt(figures: Record<string, BindingHealth>, at: number): void {
    for (const [deviceId, health] of Object.entries(figures)) this.sent.set(deviceId, { json: JSON.stringify(health), at });
  }

  /** A new link: the cloud may have restarted and lost what it had, so everything counts as changed. */
  reset(): void {
    this.sent = new Map();
  }
}

/** The figures as reported: a long error message is cut. */
function reportable(health: BindingHealth): BindingHealth {
  if (!health.lastError || health.lastError.message.length <= MAX_REPORTED_ERROR) return health;
  return { ...health, lastError: { ts: health.lastError.ts, message: health.lastError.message.slice(0, MAX_REPORTED_ERROR) } };
}
