import { gunzipSync, gzipSync } from 'node:zlib';
import type { DeviceEvent, TelemetrySample } from '../telemetry/index.js';
import type { Outbox } from './outbox.js';
import type { SequencedRecord, UplinkRecord } from './records.js';

/** Accepted telemetry as outbox records. */
export function telemetryRecords(samples: TelemetrySample[]): UplinkRecord[] {
  return samples.map((s) => ({ kind: 'telemetry', deviceId: s.deviceId, ts: s.ts, values: s.values }));
}

/** An accepted device event as an outbox record. */
export function eventRecord(event: DeviceEvent): UplinkRecord {
  return { kind: 'event', deviceId: event.deviceId, name: event.name, ts: event.ts, data: event.data };
}

/** A batch on the wire: one JSON header line, then the gzipped JSON array of records. */
export function encodeBatch(records: SequencedRecord[]): Buffer {
  const first = (records[0] as SequencedRecord).seq;
  const last = (records[records.length - 1] as SequencedRecord).seq;
  const body = gzipSync(Buffer.from(JSON.stringify(records)), { level: 6 });
  return Buffer.concat([Buffer.from(`${JSON.stringify({ type: 'batch', first, last })}\n`), body]);
}

/** The most a batch may inflate to: a 64 KiB frame of JSON records is a few MiB; more is a gzip bomb. */
export const MAX_BATCH_INFLATED_BYTES = 32 * 1024 * 1024;

export function decodeBatch(frame: Buffer): { first: number; last: number; records: SequencedRecord[] } {
  const newline = frame.indexOf(0x0a);
  if (newline < 0) throw new Error('a batch frame starts with a JSON header line');
  const header = JSON.parse(frame.subarray(0, newline).toString('utf8')) as { first?: unknown; last?: unknown };
  if (!Number.isSafeInteger(header.first) || !Number.isSafeInteger(header.last))
    throw new Error('a batch header names its first and last sequence numbers');
  let inflated: Buffer;
  try {
    inflated = gunzipSync(frame.subarray(newline + 1), { maxOutputLength: MAX_BATCH_INFLATED_BYTES });
  } catch (error) {
    throw new Error(`a batch body must be gzip of at most ${MAX_BATCH_INFLATED_BYTES} bytes: ${(error as Error).message}`);
  }
  const records: unknown = JSON.parse(inflated.toString('utf8'));
  if (!Array.isArray(records) || !records.every(isSequencedRecord)) throw new Error('a batch body is an array of {seq, record}');
  return { first: header.first as number, last: header.last as number, records };
}

function isSequencedRecord(value: unknown): value is SequencedRecord {
  if (typeof value !== 'object' || value === null) return false;
  const { seq, record } = value as { seq?: unknown; record?: unknown };
  return (
    Number.isSafeInteger(seq) && typeof record === 'object' && record !== null && typeof (record as { kind?: unknown }).kind === 'string'
  );
}

/** The edge's side of the link as the sender sees it. */
export interface UplinkChannel {
  /** Sends a binary frame; false when the link is down. */
  sendBinary(frame: Buffer): boolean;
}

export interface UplinkOptions {
  batchRecords: number;
  batchBytes: number;
  /** Batches sent but not yet acknowledged. */
  maxInFlight: number;
  /** Records per second while draining a backlog; 0 = as fast as the cloud acknowledges. */
  drainRatePerSecond: number;
  now(): number;
}

/**
 * Forwards the outbox in sequence order, a few batches in flight, and trims only what the cloud
 * acknowledged. After a reconnect it starts again after the last acknowledgement, so a batch
 * lost with the connection is simply sent again (the cloud ignores sequence numbers it applied).
 */
export class UplinkSender {
  private connected = false;
  private sentUpTo = 0;
  private ackedUpTo = 0;
  private pacedUntil = 0;
  private inFlight = 0;
  private pumping = false;
  private wakeTimer: NodeJS.Timeout | undefined;
  private readonly acks: { at: number; records: number }[] = [];

  constructor(
    private readonly outbox: Outbox,
    private readonly channel: UplinkChannel,
    private readonly options: UplinkOptions,
    private readonly onError: (error: unknown) => void,
  ) {}

  linkUp(): void {
    this.connected = true;
    this.sentUpTo = this.ackedUpTo;
    this.inFlight = 0;
    this.pump();
  }

  linkDown(): void {
    this.connected = false;
    this.inFlight = 0;
  }

  /** New records are in the outbox. */
  notify(): void {
    this.pump();
  }

  async acknowledged(upTo: number): Promise<void> {
    if (upTo <= this.ackedUpTo) return;
    const records = upTo - this.ackedUpTo;
    this.ackedUpTo = upTo;
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.acks.push({ at: this.options.now(), records });
    await this.outbox.trim(upTo);
    this.pump();
  }

  /**
   * The cloud has just said what it applied (the first ack on a new connection): anything sent
   * above that was lost with the old connection, so the quota policy may drop it again.
   */
  async resumedAt(upTo: number): Promise<void> {
    this.ackedUpTo = Math.max(this.ackedUpTo, upTo);
    await this.outbox.releaseAbove(this.ackedUpTo);
  }

  /** Records acknowledged per second over the last 10 s. */
  drainRate(): number {
    const now = this.options.now();
    while (this.acks.length > 0 && now - (this.acks[0] as { at: number }).at > 10_000) this.acks.shift();
    return this.acks.reduce((sum, a) => sum + a.records, 0) / 10;
  }

  private pump(): void {
    if (this.pumping || !this.connected) return;
    this.pumping = true;
    this.fill()
      .catch(this.onError)
      .finally(() => {
        this.pumping = false;
      });
  }

  private async fill(): Promise<void> {
    const rate = this.options.drainRatePerSecond;
    while (this.connected && this.inFlight < this.options.maxInFlight) {
      let limit = this.options.batchRecords;
      if (rate > 0) {
        // Pace the drain: at most a second's worth of records per batch, spaced over time. An
        // acknowledgement wakes the pump early, so the pace is kept here, not only in the timer.
        const waitMs = this.pacedUntil - this.options.now();
        if (waitMs > 0) {
          clearTimeout(this.wakeTimer);
          this.wakeTimer = setTimeout(() => this.pump(), waitMs);
          this.wakeTimer.unref();
          return;
        }
        limit = Math.min(limit, Math.max(1, Math.floor(rate)));
      }
      const records = await this.outbox.lease(this.sentUpTo, limit, this.options.batchBytes);
      if (records.length === 0) return;
      const frame = encodeBatch(records);
      if (!this.channel.sendBinary(frame)) {
        // Never left the edge: the quota may drop these again. What went out before stays leased
        // until the cloud's mark on the next connection says whether it arrived.
        await this.outbox.releaseAbove(this.sentUpTo);
        return;
      }
      this.sentUpTo = (records[records.length - 1] as SequencedRecord).seq;
      this.inFlight++;
      if (rate > 0) this.pacedUntil = this.options.now() + (records.length / rate) * 1000;
    }
  }

  stop(): void {
    this.connected = false;
    clearTimeout(this.wakeTimer);
  }
}
