import { invalid } from '../errors/index.js';
import type { CompiledThingModel } from '../model/index.js';
import { parseDuration } from '../time/index.js';
import { AGGREGATE_FUNCTIONS, type AggregateFunction, isEpochMs, type RawPosition } from './sample.js';

/** What a caller may ask for in `GET …/telemetry`, as strings straight off a URL. */
export interface TelemetryQueryParams {
  property?: string | string[];
  from?: string;
  to?: string;
  limit?: string | number;
  cursor?: string;
  agg?: string;
  bucket?: string;
}

export type PlannedQuery =
  | { kind: 'raw'; properties: string[]; from: number; to: number; limit: number; after?: RawPosition }
  | { kind: 'aggregate'; properties: string[]; from: number; to: number; fn: AggregateFunction; bucketMs: number };

export const DEFAULT_WINDOW_MS = 86_400_000;
export const DEFAULT_RAW_LIMIT = 1000;
export const MAX_RAW_LIMIT = 10_000;
export const MAX_BUCKETS = 10_000;

/**
 * Parses a time given as epoch ms, ISO 8601, or relative to now (`-1h`). Undefined for
 * anything else, times outside the range of dates included (`1e300`, 400 digits, `-1e20d`).
 */
export function parseTime(text: string, now: number): number | undefined {
  const ms = parseTimeText(text, now);
  return ms !== undefined && isEpochMs(ms) ? ms : undefined;
}

function parseTimeText(text: string, now: number): number | undefined {
  if (/^-?\d+$/.test(text)) return Number(text);
  if (text.startsWith('-')) {
    const ago = parseDuration(text.slice(1));
    return ago === undefined ? undefined : now - ago;
  }
  const parsed = Date.parse(text);
  return Number.isNaN(parsed) ? undefined : parsed;
}

export function encodeCursor(position: RawPosition): string {
  return Buffer.from(JSON.stringify([position.ts, position.seq, position.property])).toString('base64url');
}

function decodeCursor(cursor: string): RawPosition {
  try {
    const [ts, seq, property] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [unknown, unknown, unknown];
    if (typeof ts === 'number' && typeof seq === 'number' && typeof property === 'string') return { ts, seq, property };
  } catch {
    // fall through to the error below
  }
  throw invalid('cursor is not one this API returned: pass the "next" value of the previous page');
}

function listOf(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).flatMap((v) => v.split(',')).filter((v) => v !== '');
}

/**
 * Turns URL parameters into a query the store can run, checking them against the device's
 * model so a typo in a property name is a 400 with the valid names, not an empty chart.
 */
export function planTelemetryQuery(params: TelemetryQueryParams, model: CompiledThingModel, now: number): PlannedQuery {
  const to = params.to === undefined ? now + 1 : parseTime(params.to, now);
  if (to === undefined) throw invalid(`"to" must be epoch ms, ISO 8601 or relative like -1h; got "${params.to}"`);
  const from = params.from === undefined ? to - DEFAULT_WINDOW_MS : parseTime(params.from, now);
  if (from === undefined) throw invalid(`"from" must be epoch ms, ISO 8601 or relative like -1h; got "${params.from}"`);
  if (from >= to) throw invalid('"from" must be before "to"');

  const known = [...model.properties.keys()];
  const requested = listOf(params.property);
  for (const name of requested) {
    if (!model.properties.has(name)) {
      throw invalid(`model "${model.id}" has no property "${name}"; it has: ${known.join(', ') || '(none)'}`);
    }
  }

  if (params.agg !== undefined || params.bucket !== undefined) {
    const fn = (params.agg ?? 'avg') as AggregateFunction;
    if (!AGGREGATE_FUNCTIONS.includes(fn)) throw invalid(`agg must be one of ${AGGREGATE_FUNCTIONS.join(', ')}`);
    const bucketMs = parseDuration(params.bucket ?? '1m');
    if (!bucketMs) throw invalid(`bucket must be a duration like 10s, 1m or 1h; got "${params.bucket}"`);
    if ((to - from) / bucketMs > MAX_BUCKETS) {
      throw invalid(`that range holds more than ${MAX_BUCKETS} buckets of ${params.bucket}: use a larger bucket or a shorter range`);
    }
    const numeric = known.filter((name) => model.properties.get(name)?.numeric);
    const properties = requested.length > 0 ? requested : numeric;
    const notNumeric = properties.filter((name) => !model.properties.get(name)?.numeric);
    if (notNumeric.length > 0 && fn !== 'count') {
      throw invalid(`agg=${fn} needs numeric properties; not numeric: ${notNumeric.join(', ')}`);
    }
    return { kind: 'aggregate', properties, from, to, fn, bucketMs };
  }

  const limit = params.limit === undefined ? DEFAULT_RAW_LIMIT : Number(params.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_RAW_LIMIT) {
    throw invalid(`limit must be an integer from 1 to ${MAX_RAW_LIMIT}`);
  }
  const planned: PlannedQuery = { kind: 'raw', properties: requested.length > 0 ? requested : known, from, to, limit };
  if (params.cursor) planned.after = decodeCursor(params.cursor);
  return planned;
}
