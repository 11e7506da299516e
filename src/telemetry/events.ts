import type { JsonValue } from './sample.js';

/**
 * Something a device reports as having happened (a fault code, a door opened, a firmware
 * update finished): named in its thing model's `events`, with data shaped by the model. Unlike
 * telemetry, an event is a fact at an instant, not a reading of a property.
 */
export interface DeviceEvent {
  deviceId: string;
  deviceUid: number;
  /** The event's name in the device's thing model. */
  name: string;
  /** Epoch ms: the device's `ts` when it sent one, else the time of receipt. */
  ts: number;
  data: JsonValue | null;
}

export interface StoredDeviceEvent {
  /** Arrival order in the store; the cursor of a page. */
  id: number;
  deviceId: string;
  name: string;
  ts: number;
  data: JsonValue | null;
}

export interface DeviceEventQuery {
  deviceUid: number;
  /** Only events with one of these names; all when empty. */
  names: string[];
  from: number;
  /** Exclusive. */
  to: number;
  limit: number;
  /** Newest first: continue with events stored before this id (the previous page's `next`). */
  before?: number;
}

export interface DeviceEventPage {
  items: StoredDeviceEvent[];
  next?: number;
}

/** Storage port for device events. `append` resolves once the event is durable, with its id. */
export interface DeviceEventStore {
  append(event: DeviceEvent): Promise<number>;
  /** Newest first. */
  list(query: DeviceEventQuery): Promise<DeviceEventPage>;
  /** Deletes events older than `before` and of devices no longer registered; returns events removed. */
  prune(before: number, liveDeviceUids: () => Promise<Set<number>>): Promise<number>;
}
