/**
 * The simulator: plants with physics-like coupling (commands change readings) and fault
 * injection, run as real devices on the device SDK. Used by `thingloop sim`, the demo, tests
 * and benchmarks.
 */
export { type DemoSite, type DemoSiteOptions, devicesByProtocol, type SiteDevice, startDemoSite } from './demo-site.js';
export { Fleet, type FleetOptions, type FleetStats } from './fleet.js';
export { PLC_MODELS, type PlcStation, startPlcStation } from './modbus-station.js';
export { OPCUA_LINE_MODEL_ID, type OpcuaLine, type OpcuaLineOptions, opcuaPumpModel, startOpcuaLine } from './opcua-line.js';
export * from './physics.js';
export {
  type DeviceSpec,
  type ExistingDevicePolicy,
  ExistingDevicesError,
  HttpProvisioner,
  type Provisioner,
  SIM_MARK,
} from './provisioning.js';
export {
  type Plant,
  pumpStation,
  SCENARIOS,
  type Scenario,
  type SimulatedDevice,
  streetLights,
  type ThingModelDocument,
} from './scenarios.js';
