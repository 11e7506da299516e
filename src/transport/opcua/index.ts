/**
 * OPC UA transport: the client binding for devices behind OPC UA servers (one session per
 * endpoint, monitored items as telemetry, writes for desired values, methods as actions, Bad
 * status codes on the device's errors, reconnect and resubscribe), and the address-space browse
 * that drafts a thing model for `thingloop model from-opcua`.
 */

export { createOpcuaBinding, OpcuaBinding, type OpcuaBindingOptions, opcuaBindingOf } from './binding.js';
export { type BrowseOptions, thingModelFromServer } from './browse.js';
export { affordanceName, type BrowsedMethod, type BrowsedVariable, draftThingModel, uniqueNames } from './draft-model.js';
export {
  DEFAULT_PUBLISHING_INTERVAL_MS,
  DEFAULT_SAMPLING_INTERVAL_MS,
  isNodeId,
  type OpcuaDeviceMapping,
  type OpcuaEndpoint,
  readDeviceMapping,
  readEndpoint,
  SECURITY_MODES,
  SECURITY_POLICIES,
} from './mapping.js';
