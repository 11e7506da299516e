import type { GapReport, OutboxStats, SequencedRecord, UplinkRecord } from './records.js';

/**
 * Storage port for the edge's outbox. Appends are durable before they return; `trim` removes
 * only what the cloud acknowledged; `enforceQuota` applies the full-outbox policy and returns
 * what it removed so the gap can be reported.
 */
export interface Outbox {
  append(records: UplinkRecord[]): Promise<void>;
  /** Oldest records first, at most `limit` of them and about `maxBytes`. */
  peek(afterSeq: number, limit: number, maxBytes: number): Promise<SequencedRecord[]>;
  trim(upToSeq: number): Promise<number>;
  stats(): Promise<OutboxStats>;
  /** Records up to `sentUpTo` are on their way to the cloud (it may apply them): never removed. */
  enforceQuota(quotaBytes: number, policy: GapReport['policy'], now: number, sentUpTo?: number): Promise<GapReport | undefined>;
}
