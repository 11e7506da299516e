import { isDeepStrictEqual } from 'node:util';
import type { JsonValue } from '../telemetry/index.js';

export interface ReportedMeta {
  ts: number;
}
export interface DesiredMeta {
  ts: number;
  by: string;
}

/**
 * A desired change waiting for a sleepy device to wake. If it does not wake before
 * `expiresAt`, the change is withdrawn: a setpoint applied days late can do harm.
 */
export interface PendingDelivery {
  version: number;
  values: Record<string, JsonValue>;
  previous: Record<string, JsonValue | null>;
  queuedAt: number;
  expiresAt: number;
}

/**
 * The shadow of one device. `version` counts desired changes: it is what writers must
 * quote (If-Match), so a chatty device's reports never make an operator's write conflict.
 * `reportedVersion` counts reported changes.
 */
export interface TwinState {
  deviceId: string;
  version: number;
  reportedVersion: number;
  reported: Record<string, JsonValue>;
  desired: Record<string, JsonValue>;
  metadata: { reported: Record<string, ReportedMeta>; desired: Record<string, DesiredMeta> };
  pending: PendingDelivery[];
}

export interface TwinView extends Omit<TwinState, 'pending'> {
  /** Desired keys whose reported value differs (or is missing). */
  delta: Record<string, JsonValue>;
  pendingDelivery: { version: number; keys: string[]; queuedAt: number; expiresAt: number }[];
}

export interface KeyChange {
  key: string;
  old: JsonValue | null;
  new: JsonValue | null;
}

export function emptyTwin(deviceId: string): TwinState {
  return { deviceId, version: 0, reportedVersion: 0, reported: {}, desired: {}, metadata: { reported: {}, desired: {} }, pending: [] };
}

export function deltaOf(twin: Pick<TwinState, 'desired' | 'reported'>): Record<string, JsonValue> {
  const delta: Record<string, JsonValue> = {};
  for (const [key, value] of Object.entries(twin.desired)) {
    if (!isDeepStrictEqual(twin.reported[key], value)) delta[key] = value;
  }
  return delta;
}

export function viewOf(twin: TwinState): TwinView {
  const { pending, ...rest } = twin;
  return {
    ...rest,
    delta: deltaOf(twin),
    pendingDelivery: pending.map((p) => ({
      version: p.version,
      keys: Object.keys(p.values),
      queuedAt: p.queuedAt,
      expiresAt: p.expiresAt,
    })),
  };
}

/** Applies a desired patch (null removes a key); returns the keys that really changed. */
export function applyDesired(twin: TwinState, patch: Record<string, JsonValue | null>, by: string, at: number): KeyChange[] {
  const changes: KeyChange[] = [];
  for (const [key, value] of Object.entries(patch)) {
    const old = twin.desired[key] ?? null;
    if (isDeepStrictEqual(old, value)) continue;
    if (value === null) {
      delete twin.desired[key];
      delete twin.metadata.desired[key];
    } else {
      twin.desired[key] = value;
      twin.metadata.desired[key] = { ts: at, by };
    }
    changes.push({ key, old, new: value });
  }
  if (changes.length > 0) twin.version++;
  return changes;
}

/** Applies reported values taken at `ts`; an older report never overwrites a newer one. */
export function applyReported(twin: TwinState, values: Record<string, JsonValue>, ts: number): KeyChange[] {
  const changes: KeyChange[] = [];
  for (const [key, value] of Object.entries(values)) {
    const meta = twin.metadata.reported[key];
    if (meta && meta.ts > ts) continue;
    const old = twin.reported[key] ?? null;
    twin.metadata.reported[key] = { ts };
    if (isDeepStrictEqual(old, value)) continue;
    twin.reported[key] = value;
    changes.push({ key, old, new: value });
  }
  if (changes.length > 0) twin.reportedVersion++;
  return changes;
}
