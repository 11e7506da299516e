/**
 * Telemetry: the samples devices report, the storage port they are kept behind, and the
 * queries (raw pages, bucketed aggregates, latest values) that read them back. Device events
 * (named occurrences from the thing model) are kept beside them.
 */

export type { DeviceEvent, DeviceEventPage, DeviceEventQuery, DeviceEventStore, StoredDeviceEvent } from './events.js';
export {
  DEFAULT_RAW_LIMIT,
  encodeCursor,
  MAX_BUCKETS,
  MAX_RAW_LIMIT,
  type PlannedQuery,
  parseTime,
  planTelemetryQuery,
  type TelemetryQueryParams,
} from './query.js';
export { type RetentionParts, TelemetryRetention } from './retention.js';
export * from './sample.js';
