import type { GapReport, OutboxStats, SequencedRecord, UplinkRecord } from './records.js';

/**
 * Storage port for the edge's outbox. Appends are durable before they return; `trim` removes
 * only what the cloud acknowledged; `enforceQuota` applies the full-outbox policy and returns
 * what it removed so the gap can be reported.
 *
 * Records handed out by `lease` may already be applied in the cloud (an ack can be lost with
 * the link), so the quota policy never removes them: counting them as dropped would report a gap
 * that is not there. The outbox itself keeps that mark, in the same step that reads the records,
 * so no quota run can slip in between reading a batch and sending it.
 */
export interface Outbox {
  /**
   * Names this outbox's sequence. A new data directory starts sequence numbers at 1 again under
   * a new epoch, so the cloud knows to restart its applied mark instead of skipping them as
   * replays.
   */
  readonly epoch: string;
  append(records: UplinkRecord[]): Promise<void>;
  /**
   * The next records to send, oldest first, at most `limit` of them and about `maxBytes`. They
   * stay protected from the quota until `releaseAbove` says the cloud never got them.
   */
  lease(afterSeq: number, limit: number, maxBytes: number): Promise<SequencedRecord[]>;
  /** Records above `seq` were not delivered (the connection died, the cloud's mark is lower). */
  releaseAbove(seq: number): Promise<void>;
  trim(upToSeq: number): Promise<number>;
  stats(): Promise<OutboxStats>;
  enforceQuota(quotaBytes: number, policy: GapReport['policy'], now: number): Promise<GapReport | undefined>;
}
