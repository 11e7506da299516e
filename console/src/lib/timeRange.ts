/** Chart time ranges and the telemetry query each one makes. */

export type RangeId = 'live' | '1h' | '24h' | '7d';

export interface RangeOption {
  id: RangeId;
  label: string;
  spanMs: number;
  /** Aggregation bucket; undefined means raw samples. */
  bucket?: string;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

export const RANGES: RangeOption[] = [
  { id: 'live', label: 'Live', spanMs: 10 * MINUTE },
  { id: '1h', label: '1 h', spanMs: HOUR, bucket: '15s' },
  { id: '24h', label: '24 h', spanMs: 24 * HOUR, bucket: '5m' },
  { id: '7d', label: '7 d', spanMs: 7 * 24 * HOUR, bucket: '30m' },
];

export function rangeById(id: RangeId): RangeOption {
  return RANGES.find((range) => range.id === id) ?? (RANGES[0] as RangeOption);
}

/** The query string for a range ending at `now`: raw recent samples for live, averaged buckets otherwise. */
export function telemetryQuery(id: RangeId, now: number, properties: string[]): URLSearchParams {
  const range = rangeById(id);
  const params = new URLSearchParams();
  params.set('from', String(now - range.spanMs));
  params.set('to', String(now + 1));
  if (properties.length > 0) params.set('property', properties.join(','));
  if (range.bucket) {
    params.set('agg', 'avg');
    params.set('bucket', range.bucket);
  } else {
    params.set('limit', '10000');
  }
  return params;
}

/** How many points one series of a range holds at most (live keeps a sliding window). */
export function maxPoints(id: RangeId): number {
  const range = rangeById(id);
  if (!range.bucket) return 2_000;
  return Math.ceil(range.spanMs / parseDurationMs(range.bucket)) + 1;
}

export function parseDurationMs(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!match) throw new Error(`not a duration: ${text}`);
  const factor = { ms: 1, s: 1_000, m: MINUTE, h: HOUR, d: 24 * HOUR }[match[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * factor;
}

export function formatDuration(ms: number): string {
  if (ms % HOUR === 0 && ms >= HOUR) return `${ms / HOUR} h`;
  if (ms % MINUTE === 0 && ms >= MINUTE) return `${ms / MINUTE} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}
