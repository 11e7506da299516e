/**
 * The device registry: who the devices are, which model each follows, their codes,
 * addresses and credentials. Edge nodes, groups and network profiles join it later.
 */
export * from './binding.js';
export * from './device.js';
export { type FleetDeviceRef, FleetDirectory, fleetKey } from './fleet.js';
export * from './network.js';
export * from './presence.js';
export {
  type Addressing,
  type DevicePage,
  type DevicePatch,
  type DeviceRegistration,
  DeviceRegistry,
  type RegisteredDevice,
  type RegistryEvents,
} from './registry.js';
