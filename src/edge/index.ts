/**
 * Edge ↔ cloud synchronisation. Uplink: everything an edge accepts goes into a durable,
 * sequenced outbox and is forwarded in order, batched and compressed; the cloud applies each
 * sequence number once and acknowledges; the edge trims only what was acknowledged. Downlink:
 * the cloud holds each edge's desired configuration as a versioned document; the edge
 * reconciles to it item by item and reports what it applied and what failed.
 */

export { EDGE_ID_PATTERN, EdgeDirectory, type EdgeRecord, type EdgeRepository, type UplinkApplied } from './directory.js';
export type { Outbox } from './outbox.js';
export * from './records.js';
export {
  decodeBatch,
  encodeBatch,
  eventRecord,
  MAX_BATCH_INFLATED_BYTES,
  telemetryRecords,
  type UplinkChannel,
  type UplinkOptions,
  UplinkSender,
} from './uplink.js';
