import { type BindingHealth, isBindingProtocol } from '../gateway/index.js';
import type { JsonValue } from '../telemetry/index.js';

/**
 * What an edge forwards to the cloud. Each record gets the edge's next sequence number when it
 * enters the outbox; the cloud applies a sequence number at most once.
 */
export type UplinkRecord =
  | { kind: 'telemetry'; deviceId: string; ts: number; values: Record<string, JsonValue> }
  | { kind: 'twin'; deviceId: string; ts: number; section: 'reported' | 'desired'; values: Record<string, JsonValue | null>; actor: string }
  | { kind: 'event'; deviceId: string; name: string; ts: number; data: JsonValue | null }
  | { kind: 'decision'; decision: Record<string, JsonValue> }
  | { kind: 'alarm'; alarm: Record<string, JsonValue> }
  | { kind: 'invocation'; invocation: Record<string, JsonValue> }
  | { kind: 'gap'; gap: GapReport };

/** Idempotency-key prefix an edge gives invocations forwarded by its cloud. */
export const CLOUD_INVOCATION_PREFIX = 'cloud:';

/** The device an uplink record is about, if any: the cloud applies it only when the edge serves that device. */
export function deviceIdOf(record: UplinkRecord): string | undefined {
  if (record.kind === 'telemetry' || record.kind === 'twin' || record.kind === 'event') return record.deviceId;
  const named =
    record.kind === 'invocation'
      ? record.invocation
      : record.kind === 'decision'
        ? record.decision
        : record.kind === 'alarm'
          ? record.alarm
          : undefined;
  return typeof named?.deviceId === 'string' ? named.deviceId : undefined;
}

type Shape = Record<string, (value: unknown) => boolean>;
const text = (value: unknown) => typeof value === 'string' && value.length > 0;
const time = (value: unknown) => Number.isSafeInteger(value);
const object = (value: unknown) => typeof value === 'object' && value !== null && !Array.isArray(value);
const count = (value: unknown) => Number.isSafeInteger(value) && (value as number) >= 0;
const present = (value: unknown) => value !== undefined;
/** A gap's devices: per device id, what was dropped and the time range it covered. */
const gapDevices = (value: unknown) =>
  object(value) &&
  Object.values(value as Record<string, unknown>).every(
    (entry) =>
      object(entry) &&
      count((entry as { dropped?: unknown }).dropped) &&
      time((entry as { from?: unknown }).from) &&
      time((entry as { to?: unknown }).to),
  );

/** The fields each kind must carry for the cloud to store it and read it back. */
const SHAPES: Record<UplinkRecord['kind'], { field?: string; shape: Shape }> = {
  telemetry: { shape: { deviceId: text, ts: time, values: object } },
  twin: { shape: { deviceId: text, ts: time, section: (v) => v === 'reported' || v === 'desired', values: object, actor: text } },
  event: { shape: { deviceId: text, name: text, ts: time } },
  decision: { field: 'decision', shape: { id: text, agentId: text, deviceId: text, ts: time, outcome: text } },
  alarm: { field: 'alarm', shape: { id: text, agentId: text, deviceId: text, type: text, state: text, raisedAt: time } },
  invocation: {
    field: 'invocation',
    shape: {
      id: text,
      deviceId: text,
      action: text,
      input: present,
      status: text,
      actor: text,
      createdAt: time,
      expiresAt: time,
      timeoutMs: count,
    },
  },
  gap: { field: 'gap', shape: { policy: (v) => v === 'drop-oldest' || v === 'downsample', at: time, devices: gapDevices, total: count } },
};

/**
 * What is missing or wrong in an uplink record, or undefined when the cloud can keep it. An edge
 * of another version, or a broken one, must not store what later reads cannot serve.
 */
export function malformedRecord(record: unknown): string | undefined {
  if (!object(record)) return 'a record is an object';
  const kind = (record as { kind?: unknown }).kind;
  const spec = typeof kind === 'string' ? SHAPES[kind as UplinkRecord['kind']] : undefined;
  if (!spec) return `unknown record kind ${JSON.stringify(kind)}`;
  const body = spec.field === undefined ? record : (record as Record<string, unknown>)[spec.field];
  if (!object(body)) return `a ${kind} record carries its ${spec.field} as an object`;
  for (const [name, valid] of Object.entries(spec.shape)) {
    if (!valid((body as Record<string, unknown>)[name])) return `a ${kind} record has no valid ${name}`;
  }
  return undefined;
}

export interface SequencedRecord {
  seq: number;
  record: UplinkRecord;
}

/** Records the edge had to drop or thin out because its outbox was full: never silent. */
export interface GapReport {
  policy: 'drop-oldest' | 'downsample';
  at: number;
  /**
   * Per device: telemetry samples removed (`dropped`), device events removed (`events`, only
   * when telemetry alone could not make room), and the time range they covered.
   */
  devices: Record<string, { dropped: number; events?: number; from: number; to: number }>;
  /** Every record removed: samples and events. */
  total: number;
  /** Device events among them, when any. */
  events?: number;
}

/** The header an edge names its outbox epoch in when it opens the link (see `Outbox.epoch`). */
export const OUTBOX_EPOCH_HEADER = 'thingloop-outbox-epoch';

/** Frames on the edge ↔ cloud WebSocket. */
/** JSON frames; batches travel as binary frames (see encodeBatch). */
export type EdgeToCloud =
  | { type: 'heartbeat'; heartbeat: EdgeHeartbeat }
  | { type: 'applied'; version: number; results: ReconcileResult[] };

export type CloudToEdge =
  | { type: 'ack'; upTo: number }
  /** An action invoked in the cloud for a device this edge serves; the outcome comes back as an invocation record. */
  | { type: 'invoke'; id: string; deviceId: string; action: string; input: JsonValue | null; timeoutMs: number }
  | { type: 'config'; config: EdgeConfig }
  | { type: 'error'; message: string };

export interface EdgeHeartbeat {
  at: number;
  cpuPercent: number;
  memory: { usedBytes: number; totalBytes: number; rssBytes: number };
  disk: { freeBytes: number; totalBytes: number };
  outbox: OutboxStats;
  accelerators: string[];
  drainRatePerSecond: number;
  /**
   * Per device the edge serves, the health of the binding it runs for it (absent from older
   * edges). The cloud answers `GET /api/v1/devices/{id}/binding` for edge-served devices from it.
   */
  bindings?: Record<string, BindingHealth>;
}

const BINDING_STATES: readonly BindingHealth['state'][] = ['connected', 'polling', 'unreachable', 'idle'];
/** Longest error message kept from an edge's report: enough to read, not a place to store bulk. */
const MAX_ERROR_MESSAGE = 500;

/**
 * A binding health entry an edge reported, checked field by field (an edge of another version,
 * or a broken one, must not put what the API cannot serve into the cloud); undefined when it is
 * not one. Copies only the known fields.
 */
export function bindingHealthOf(value: unknown): BindingHealth | undefined {
  if (!object(value)) return undefined;
  const entry = value as Record<string, unknown>;
  const { protocol, state, lastGoodReadTs, errors, latencyMs, lastError } = entry;
  if (!isBindingProtocol(protocol)) return undefined;
  if (!BINDING_STATES.includes(state as BindingHealth['state'])) return undefined;
  if (lastGoodReadTs !== null && !time(lastGoodReadTs)) return undefined;
  if (!count(errors)) return undefined;
  if (latencyMs !== null && !(typeof latencyMs === 'number' && Number.isFinite(latencyMs) && latencyMs >= 0)) return undefined;
  const health: BindingHealth = {
    protocol,
    state: state as BindingHealth['state'],
    lastGoodReadTs: lastGoodReadTs as number | null,
    errors: errors as number,
    latencyMs: latencyMs as number | null,
  };
  if (lastError !== undefined) {
    if (!object(lastError)) return undefined;
    const { ts, message } = lastError as Record<string, unknown>;
    if (!time(ts) || typeof message !== 'string') return undefined;
    health.lastError = { ts: ts as number, message: message.slice(0, MAX_ERROR_MESSAGE) };
  }
  return health;
}

export interface OutboxStats {
  records: number;
  bytes: number;
  oldestTs: number | null;
  lastSeq: number;
  /** Records dropped or thinned because of the quota since the edge started counting. */
  dropped: number;
}

/** The desired configuration of one edge, versioned by the cloud. */
export interface EdgeConfig {
  version: number;
  models: { id: string; version: number; document: Record<string, JsonValue> }[];
  devices: { record: Record<string, JsonValue>; tokenHash: string }[];
  agents: Record<string, JsonValue>[];
  /** Desired twin values set in the cloud, with when they were set (newest write wins). */
  desired: { deviceId: string; values: Record<string, JsonValue>; setAt: Record<string, number> }[];
}

export interface ReconcileResult {
  kind: 'model' | 'device' | 'agent' | 'desired' | 'removal';
  id: string;
  status: 'applied' | 'unchanged' | 'failed';
  reason?: string;
}
