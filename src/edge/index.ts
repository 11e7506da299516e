/**
 * Edge ↔ cloud synchronisation. Uplink: everything an edge accepts goes into a durable,
 * sequenced outbox and is forwarded in order, batched and compressed; the cloud applies each
 * sequence number once and acknowledges; the edge trims only what was acknowledged. Downlink:
 * the cloud holds each edge's desired configuration as a versioned document; the edge
 * reconciles to it item by item and reports what it applied and what failed. The cloud's side
 * is the `EdgeHub`, the edge's side `startEdgeSync`; both run on ports (the outbox, the link,
 * device credentials) the node fills with its store and transports.
 */

export { BindingHealthReport, MAX_BINDING_FIGURES_BYTES } from './binding-report.js';
export { EDGE_ID_PATTERN, EdgeDirectory, type EdgeRecord, type EdgeRepository, type UplinkApplied } from './directory.js';
export { type HostFigures, HostProbe } from './host.js';
export { type DeviceCredentials, EdgeHub, type EdgeHubParts, type EdgeLinkSession } from './hub.js';
export type { Outbox } from './outbox.js';
export * from './records.js';
export {
  type CloudLink,
  type CloudLinkFactory,
  type CloudLinkHandlers,
  type EdgeSync,
  type EdgeSyncOptions,
  type EdgeSyncParts,
  startEdgeSync,
} from './sync.js';
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
