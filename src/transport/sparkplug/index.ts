/**
 * Sparkplug B: a v3.0 Host Application on the node's embedded broker or an external one. Births
 * register devices (`{group}:{edgeNode}[:{device}]`) with thing models derived from their
 * metrics, DATA becomes telemetry, deaths presence, and desired writes and actions go out as
 * NCMD/DCMD. Payloads are the Eclipse Tahu protobuf (`sparkplug-payload`).
 */
export {
  type BirthCertificate,
  type BirthScope,
  type MetricDefinition,
  modelIdFor,
  REBIRTH_METRIC,
  readBirth,
  readMetrics,
  schemaOf,
  writeOf,
} from './births.js';
export { SPARKPLUG_CONTENT_TYPE, sparkplugCodec } from './codec.js';
export { HostCredential } from './credential.js';
export { type SparkplugBrokerEndpoint, SparkplugHost, type SparkplugHostOptions, statePayload } from './host.js';
export {
  decodeSparkplugPayload,
  encodeCommandPayload,
  type MetricWrite,
  SparkplugDataType,
  type SparkplugMetric,
  type SparkplugPayload,
} from './payload.js';
export { parseSparkplugTopic, SPARKPLUG_NAMESPACE, type SparkplugTopic, sparkplugDeviceIds, sparkplugTopics } from './topics.js';
