export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** How far from the epoch a JavaScript Date reaches, either way, in ms (ECMAScript's time range). */
export const EPOCH_MS_LIMIT = 8.64e15;

/**
 * True for whole epoch milliseconds a Date can hold. Anything else (1e300, NaN, Infinity) makes
 * `new Date(ms).toISOString()` throw, so a time from outside is checked with this first.
 */
export function isEpochMs(ms: number): boolean {
  return Number.isInteger(ms) && Math.abs(ms) <= EPOCH_MS_LIMIT;
}

/** One timestamped set of property values from one device; the unit of ingest and storage. */
export interface TelemetrySample {
  deviceId: string;
  deviceUid: number;
  /** Epoch ms: the device's `ts` when it sent one, else the time of receipt. */
  ts: number;
  values: Record<string, JsonValue>;
}

export interface StoredValue {
  property: string;
  ts: number;
  value: JsonValue;
}

export type AggregateFunction = 'avg' | 'min' | 'max' | 'count' | 'first' | 'last' | 'sum';
export const AGGREGATE_FUNCTIONS: readonly AggregateFunction[] = ['avg', 'min', 'max', 'count', 'first', 'last', 'sum'];

/** Where a page of raw values ended: the sample (time, then arrival order) and the property within it. */
export interface RawPosition {
  ts: number;
  seq: number;
  property: string;
}

export interface RawPage {
  items: StoredValue[];
  /** Set when more values may follow. */
  next?: RawPosition;
}

export interface RawQuery {
  deviceUid: number;
  properties: string[];
  from: number;
  /** Exclusive. */
  to: number;
  limit: number;
  /** Resume after this position (from the previous page's `next`). */
  after?: RawPosition;
}

export interface AggregateQuery {
  deviceUid: number;
  properties: string[];
  from: number;
  to: number;
  bucketMs: number;
  fn: AggregateFunction;
}

export interface AggregatePoint {
  /** Start of the bucket, epoch ms. */
  ts: number;
  value: number | null;
  count: number;
}

export interface AggregateSeries {
  property: string;
  points: AggregatePoint[];
}

/**
 * Storage port for telemetry. `append` resolves only once the samples are durable, which is
 * what lets transports acknowledge a QoS 1 message honestly.
 */
export interface TelemetryStore {
  append(samples: TelemetrySample[]): Promise<void>;
  raw(query: RawQuery): Promise<RawPage>;
  aggregate(query: AggregateQuery): Promise<AggregateSeries[]>;
  /** The newest value of each of `properties`. */
  latest(deviceUid: number, properties: string[]): Promise<StoredValue[]>;
  /** Deletes samples older than `before` and of devices no longer registered; returns samples removed. */
  prune(before: number, liveDeviceUids: () => Promise<Set<number>>): Promise<number>;
  /** Time of the newest stored sample of a device, or null. */
  lastSampleAt(deviceUid: number): Promise<number | null>;
  /** Samples accepted but not yet committed. */
  pendingSamples(): number;
  /** Commits everything pending. */
  flush(): Promise<void>;
}
