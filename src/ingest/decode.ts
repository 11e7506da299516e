import type { CompiledThingModel, ValueRejectionReason } from '../model/index.js';
import type { JsonValue } from '../telemetry/index.js';

/** Why (part of) a message was refused. Value-level reasons come from the model. */
export type RejectionReason =
  | ValueRejectionReason
  | 'malformed_json'
  | 'payload_too_large'
  | 'not_an_object'
  | 'too_many_samples'
  | 'empty_sample'
  | 'unknown_device';

export interface Rejection {
  reason: RejectionReason;
  message: string;
  property?: string;
  /** Position of the sample in a batch (array) payload. */
  sample?: number;
  value?: JsonValue;
}

export interface DecodeLimits {
  maxPayloadBytes: number;
  maxSamplesPerMessage: number;
  /** How far ahead of the node's clock a device timestamp may be. */
  maxFutureSkewMs: number;
}

export interface DecodedSample {
  ts: number;
  values: Record<string, JsonValue>;
}

export interface DecodeResult {
  samples: DecodedSample[];
  rejections: Rejection[];
}

/** ISO 8601 needs a date and, if a time is given, an explicit zone; bare local times are ambiguous. */
const ISO_8601 = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2}))?$/;
// 2000-01-01: a device reporting earlier than this has an unset clock, not old data.
const EARLIEST_TS = 946_684_800_000;

function parseTimestamp(raw: unknown, now: number, limits: DecodeLimits): number | string {
  let ts: number;
  if (typeof raw === 'number') {
    if (!Number.isInteger(raw)) return 'ts must be an integer number of epoch milliseconds';
    ts = raw;
  } else if (typeof raw === 'string' && ISO_8601.test(raw)) {
    ts = Date.parse(raw);
    if (Number.isNaN(ts)) return `ts "${raw}" is not a valid ISO 8601 time`;
  } else {
    return 'ts must be epoch milliseconds or an ISO 8601 time with a zone';
  }
  if (ts < EARLIEST_TS) return `ts ${ts} is before 2000-01-01 (is the device clock set, and in milliseconds?)`;
  if (ts > now + limits.maxFutureSkewMs) return `ts ${new Date(ts).toISOString()} is in the future beyond the allowed clock skew`;
  return ts;
}

function decodeSample(
  raw: unknown,
  index: number | undefined,
  model: CompiledThingModel,
  now: number,
  limits: DecodeLimits,
  out: DecodeResult,
): void {
  const at = index === undefined ? {} : { sample: index };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    out.rejections.push({ ...at, reason: 'not_an_object', message: 'a sample must be a JSON object of property values' });
    return;
  }
  const record = raw as Record<string, JsonValue>;
  let ts = now;
  if (record.ts !== undefined) {
    const parsed = parseTimestamp(record.ts, now, limits);
    if (typeof parsed === 'string') {
      out.rejections.push({ ...at, reason: 'bad_timestamp', message: parsed, value: record.ts });
      return;
    }
    ts = parsed;
  }
  const values: Record<string, JsonValue> = {};
  let count = 0;
  for (const key in record) {
    if (key === 'ts') continue;
    const value = record[key] as JsonValue;
    const property = model.properties.get(key);
    if (!property) {
      out.rejections.push({
        ...at,
        property: key,
        reason: 'unknown_property',
        message: `model "${model.id}" v${model.version} has no property "${key}"`,
      });
      continue;
    }
    const problem = property.check(value);
    if (problem) {
      out.rejections.push({ ...at, property: key, reason: problem.reason, message: `${key} ${problem.message}`, value });
      continue;
    }
    values[key] = value;
    count++;
  }
  if (count > 0) {
    out.samples.push({ ts, values });
  } else if (Object.keys(record).every((key) => key === 'ts')) {
    out.rejections.push({ ...at, reason: 'empty_sample', message: 'the sample has no property values' });
  }
}

/**
 * Decodes a telemetry payload and validates every value against the device's model. Valid
 * values survive their invalid neighbours: one bad reading never costs the others.
 */
export function decodeTelemetry(payload: Buffer | unknown, model: CompiledThingModel, now: number, limits: DecodeLimits): DecodeResult {
  const out: DecodeResult = { samples: [], rejections: [] };
  let body: unknown = payload;
  if (Buffer.isBuffer(payload)) {
    if (payload.length > limits.maxPayloadBytes) {
      out.rejections.push({
        reason: 'payload_too_large',
        message: `payload is ${payload.length} bytes; the limit is ${limits.maxPayloadBytes}`,
      });
      return out;
    }
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch (error) {
      out.rejections.push({ reason: 'malformed_json', message: `payload is not JSON: ${(error as Error).message}` });
      return out;
    }
  }
  if (Array.isArray(body)) {
    if (body.length > limits.maxSamplesPerMessage) {
      out.rejections.push({
        reason: 'too_many_samples',
        message: `a batch holds at most ${limits.maxSamplesPerMessage} samples; got ${body.length}`,
      });
      return out;
    }
    body.forEach((sample, index) => {
      decodeSample(sample, index, model, now, limits, out);
    });
  } else {
    decodeSample(body, undefined, model, now, limits, out);
  }
  return out;
}
