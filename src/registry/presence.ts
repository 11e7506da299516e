import type { NetworkProfile } from './network.js';

/**
 * online: reachable now (a live session, or recent uplink within the expected interval);
 * asleep: a sleepy device between wake windows that has not yet missed one;
 * offline: silent beyond what its network profile allows; unknown: never seen.
 */
export type PresenceStatus = 'online' | 'asleep' | 'offline' | 'unknown';

export interface Presence {
  status: PresenceStatus;
  connected: boolean;
  lastSeen: number | null;
  /** For sleepy devices: when the next wake window is expected. */
  nextWindowExpected: number | null;
}

/** A device may be this late (as a fraction of its interval) before it counts as missing. */
export const PRESENCE_GRACE = 0.5;

/** Pure: presence from the session state, last uplink and network profile at time `now`. */
export function presenceOf(network: NetworkProfile, connected: boolean, lastSeen: number | null, now: number): Presence {
  const nextWindowExpected = network.sleepy && lastSeen !== null ? lastSeen + network.reportIntervalMs : null;
  if (connected) return { status: 'online', connected, lastSeen, nextWindowExpected };
  if (lastSeen === null) return { status: 'unknown', connected, lastSeen, nextWindowExpected };
  const withinWindow = now - lastSeen <= network.reportIntervalMs * (1 + PRESENCE_GRACE);
  if (!withinWindow) return { status: 'offline', connected, lastSeen, nextWindowExpected };
  return { status: network.sleepy ? 'asleep' : 'online', connected, lastSeen, nextWindowExpected };
}

/** Live session and last-uplink facts per device, fed by transports. */
export class PresenceBook {
  private readonly connected = new Set<string>();
  private readonly seen = new Map<string, number>();

  opened(deviceId: string, at: number): void {
    this.connected.add(deviceId);
    this.seen.set(deviceId, at);
  }
  closed(deviceId: string, at: number): void {
    this.connected.delete(deviceId);
    this.seen.set(deviceId, at);
  }
  uplink(deviceId: string, at: number): void {
    this.seen.set(deviceId, at);
  }
  forget(deviceId: string): void {
    this.connected.delete(deviceId);
    this.seen.delete(deviceId);
  }
  lastSeen(deviceId: string): number | null {
    return this.seen.get(deviceId) ?? null;
  }
  /** `fallbackLastSeen` covers the time before this node started (e.g. the newest stored sample). */
  of(device: { id: string; network: NetworkProfile }, now: number, fallbackLastSeen: number | null = null): Presence {
    return presenceOf(device.network, this.connected.has(device.id), this.lastSeen(device.id) ?? fallbackLastSeen, now);
  }
}
