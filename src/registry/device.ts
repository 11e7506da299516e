import type { BindingProtocol, DeviceBindingConfig } from './binding.js';
import type { NetworkProfile } from './network.js';

/** A device as the platform knows it: one object, one code, one number, one model. */

export type AttributeValue = string | number | boolean | null;

export interface DeviceRecord {
  /** Platform id: also the MQTT username and the `{deviceId}` in every topic. Unique within its tenant. */
  id: string;
  /** The tenant that owns the device: stamped by the tenant's store on every read, never stored in the record. */
  tenant: string;
  /** Internal surrogate number; telemetry is keyed by it so a re-registered id starts clean. */
  uid: number;
  name: string;
  /** Thing model id and the version the device was registered with (until migrated). */
  model: string;
  modelVersion: number;
  /** Identification code, Handle-style `{prefix}/{id}`. */
  code: string;
  /** Stable IPv6 address in the site's /64. */
  ipv6: string;
  attributes: Record<string, AttributeValue>;
  /** The bearer and its timing: reporting interval, keep-alive, sleepy or not. */
  network: NetworkProfile;
  /** How the device is reached: its protocol and addressing (`{"protocol": "mqtt"}` unless registered otherwise). */
  binding: DeviceBindingConfig;
  /** The edge node that serves this device, when it is not served by the cloud directly. */
  edge?: string;
  createdAt: number;
  updatedAt: number;
}

/** A device as the registry writes it: the store assigns the uid and knows its tenant. */
export type NewDeviceRecord = Omit<DeviceRecord, 'uid' | 'tenant'>;

/** Ids appear in topics and URLs: no `/`, `+`, `#`, spaces or control characters. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export const MAX_ATTRIBUTES = 64;

export interface DeviceQuery {
  model?: string;
  edge?: string;
  /** Network profile name (ethernet, nbiot…). */
  network?: string;
  /** Binding protocol (mqtt, modbus-tcp…). */
  protocol?: BindingProtocol;
  /** Keyset pagination: ids strictly after this one. */
  after?: string;
  limit: number;
}

/** The filters listing and counting share. */
export type DeviceFilter = Pick<DeviceQuery, 'model' | 'edge' | 'network' | 'protocol'>;

/** Storage port for the registry. */
export interface DeviceRepository {
  /** Stores a new device and returns it with its assigned uid. */
  insert(device: NewDeviceRecord, tokenHash: string): Promise<DeviceRecord>;
  get(id: string): Promise<DeviceRecord | undefined>;
  findByCode(code: string): Promise<DeviceRecord | undefined>;
  findByIpv6(ipv6: string): Promise<DeviceRecord | undefined>;
  list(query: DeviceQuery): Promise<DeviceRecord[]>;
  count(query: DeviceFilter): Promise<number>;
  update(device: DeviceRecord): Promise<void>;
  delete(id: string): Promise<boolean>;
  tokenHash(id: string): Promise<string | undefined>;
  setTokenHash(id: string, hash: string): Promise<void>;
  /** Inserts or replaces a record defined elsewhere (edge sync); optional for stores that never serve an edge. */
  adopt?(device: NewDeviceRecord, tokenHash: string): Promise<DeviceRecord>;
}
