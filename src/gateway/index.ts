/**
 * Gateway: the one device binding contract. Every protocol (MQTT, HTTP, CoAP, Modbus TCP, OPC UA,
 * Sparkplug B) is a binding that hands the gateway the same `DeviceMessage`s and takes the same
 * `DownlinkRequest`s; the gateway feeds ingest, the twin and commands, and routes each downlink to
 * the binding of the device's protocol or to the edge that serves the device. Forms in thing models
 * (W3C WoT, placeholders filled from the device's binding parameters) map protocol items to
 * properties, actions and events.
 */

export { type Codec, CodecRegistry, JSON_CONTENT_TYPE, jsonCodec, mediaType } from './codecs.js';
export * from './contract.js';
export { type AffordanceKind, type BoundForm, boundForms, type FormProblem, fillPlaceholders, type WotForm } from './forms.js';
export {
  type BindingRefusals,
  BindingStartError,
  bindingOf,
  DeviceGateway,
  type DeviceInbox,
  desiredStateOf,
  type EdgeRoute,
  type ForwardedAction,
  type GatewayDependencies,
  type MessageAdmission,
  type MessageOutcomes,
  protocolOf,
  type RunningBindings,
  startBindings,
} from './gateway.js';
export { TenantUplink } from './tenants.js';
