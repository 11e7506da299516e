/**
 * Ingest: the single pipeline every device binding feeds (through the gateway); bytes are
 * decoded by the gateway's codecs, chosen by content type. It validates each value against the
 * device's thing model, keeps the good values of a partly bad message, stores durably and only
 * then publishes to the bus.
 */
export {
  type DecodeLimits,
  type DecodeResult,
  type DeviceErrorReport,
  decodeEvent,
  decodeTelemetry,
  type PayloadDecoder,
  type PayloadFormat,
  type Rejection,
  type RejectionReason,
} from './decode.js';
export {
  type IngestDependencies,
  type IngestEvents,
  type IngestMetrics,
  type IngestOutcome,
  IngestPipeline,
  type IngestSource,
} from './pipeline.js';
