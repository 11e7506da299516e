import type { DeviceEventStore } from './events.js';
import type { TelemetryStore } from './sample.js';

const SWEEP_EVERY_MS = 3_600_000;
/** One sweep soon after start: a node restarted more often than hourly must still prune. */
const FIRST_SWEEP_AFTER_MS = 60_000;

export interface RetentionParts {
  samples: Pick<TelemetryStore, 'prune'>;
  events: Pick<DeviceEventStore, 'prune'>;
  /** Devices that still exist: data of deleted devices goes whatever its age. */
  liveDeviceUids(): Promise<Set<number>>;
  retentionMs: number;
  now(): number;
  /** What a sweep removed (for the log). */
  swept(removed: { samples: number; events: number }): void;
  failed(error: Error): void;
}

/**
 * Retention of telemetry and device events: sweeps run one at a time (each writes to the store),
 * hourly and once soon after start, and stopping waits for the sweep in progress.
 */
export class TelemetryRetention {
  private running: Promise<number> = Promise.resolve(0);
  private timers: NodeJS.Timeout[] = [];

  constructor(private readonly parts: RetentionParts) {}

  /** Removes what is older than the retention now; resolves with the number of rows removed. */
  sweep(): Promise<number> {
    this.running = this.running.then(async () => {
      const before = this.parts.now() - this.parts.retentionMs;
      const live = await this.parts.liveDeviceUids();
      const samples = await this.parts.samples.prune(before, async () => live);
      const events = await this.parts.events.prune(before, async () => live);
      if (samples + events > 0) this.parts.swept({ samples, events });
      return samples + events;
    });
    return this.running;
  }

  start(): void {
    const sweepLogged = () => {
      this.sweep().catch((error: Error) => this.parts.failed(error));
    };
    this.timers = [setTimeout(sweepLogged, FIRST_SWEEP_AFTER_MS), setInterval(sweepLogged, SWEEP_EVERY_MS)];
    for (const timer of this.timers) timer.unref();
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers = [];
    await this.running.catch(() => 0);
  }
}
