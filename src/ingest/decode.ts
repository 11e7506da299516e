import { jsonCodec } from '../gateway/index.js';
import { type CompiledThingModel, isShallowValue, type ValueRejectionReason } from '../model/index.js';
import { EPOCH_MS_LIMIT, isEpochMs, type JsonValue } from '../telemetry/index.js';

/** Why (part of) a message was refused. Value-level reasons come from the model. */
export type RejectionReason =
  | ValueRejectionReason
  | 'malformed_json'
  | 'malformed_payload'
  | 'unsupported_content_type'
  | 'payload_too_large'
  | 'not_an_object'
  | 'too_many_samples'
  | 'empty_sample'
  | 'unknown_device'
  | 'unknown_event'
  | 'malformed_event';

export interface Rejection {
  reason: RejectionReason;
  message: string;
  property?: string;
  /** The event a refusal is about (events only). */
  event?: string;
  /** Position of the sample in a batch (array) payload. */
  sample?: number;
  value?: JsonValue;
}

/** What a device sent that was refused, with why: the device is told, operators can look it up. */
export interface DeviceErrorReport {
  ts: number;
  source: 'telemetry' | 'event' | 'twin' | 'action';
  rejections: Rejection[];
}

/**
 * Bytes to a body by their content type (the gateway's codecs); JSON when none is named.
 * Never throws: undecodable bytes are a rejection like any other.
 */
export type PayloadDecoder = (bytes: Buffer, contentType: string | undefined) => { body: unknown } | Rejection;

const decodeJson: PayloadDecoder = (bytes) => jsonCodec.decode(bytes);

/** A device payload: bytes (with the content type they were sent as) or an already decoded body. */
export interface PayloadFormat {
  contentType?: string;
  decode?: PayloadDecoder;
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

/**
 * A device's `ts` as epoch ms, or why it is refused. Never throws: a time outside the range of
 * dates (1e300) is a refusal of its sample like any other bad time, not an error that costs the
 * rest of the message (or, over MQTT, its PUBACK).
 */
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
  if (!isEpochMs(ts)) return `ts ${ts} is outside the range of dates (±${EPOCH_MS_LIMIT} ms from 1970)`;
  if (ts < EARLIEST_TS) return `ts ${ts} is before 2000-01-01 (is the device clock set, and in milliseconds?)`;
  if (ts > now + limits.maxFutureSkewMs) return `ts ${new Date(ts).toISOString()} is in the future beyond the allowed clock skew`;
  return ts;
}

/** The refused value, to show the device what was wrong; left out when too deep to serialize safely. */
function echo(value: JsonValue): { value?: JsonValue } {
  return isShallowValue(value) ? { value } : {};
}

/**
 * Checks every property value of `record` (its `ts` aside when `timestamped`) against the model: the good values
 * come back, each bad one is listed with its reason. One bad value never costs the others.
 */
function checkValues(
  record: Record<string, JsonValue>,
  model: CompiledThingModel,
  at: { sample?: number },
  rejections: Rejection[],
  timestamped: boolean,
): Record<string, JsonValue> {
  const values: Record<string, JsonValue> = {};
  for (const key in record) {
    if (timestamped && key === 'ts') continue;
    const value = record[key] as JsonValue;
    const property = model.properties.get(key);
    if (!property) {
      rejections.push({
        ...at,
        property: key,
        reason: 'unknown_property',
        message: `model "${model.id}" v${model.version} has no property "${key}"`,
      });
      continue;
    }
    const problem = property.check(value);
    if (problem) {
      rejections.push({ ...at, property: key, reason: problem.reason, message: `${key} ${problem.message}`, ...echo(value) });
      continue;
    }
    values[key] = value;
  }
  return values;
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
      out.rejections.push({ ...at, reason: 'bad_timestamp', message: parsed, ...echo(record.ts) });
      return;
    }
    ts = parsed;
  }
  const values = checkValues(record, model, at, out.rejections, true);
  let count = 0;
  for (const _ in values) count++;
  if (count > 0) {
    out.samples.push({ ts, values });
  } else if (Object.keys(record).every((key) => key === 'ts')) {
    out.rejections.push({ ...at, reason: 'empty_sample', message: 'the sample has no property values' });
  }
}

/**
 * A payload's body: bytes are size-checked, then decoded by the codec for their content type.
 * `emptyBody`: what an empty payload means, when it may be empty at all.
 */
export function parseBody(
  payload: Buffer | unknown,
  limits: DecodeLimits,
  emptyBody?: unknown,
  format: PayloadFormat = {},
): { body: unknown } | Rejection {
  if (!Buffer.isBuffer(payload)) return { body: payload };
  if (payload.length > limits.maxPayloadBytes) {
    return { reason: 'payload_too_large', message: `payload is ${payload.length} bytes; the limit is ${limits.maxPayloadBytes}` };
  }
  if (payload.length === 0 && emptyBody !== undefined) return { body: emptyBody };
  return (format.decode ?? decodeJson)(payload, format.contentType);
}

/**
 * Decodes a telemetry payload and validates every value against the device's model. Valid
 * values survive their invalid neighbours: one bad reading never costs the others.
 */
export function decodeTelemetry(
  payload: Buffer | unknown,
  model: CompiledThingModel,
  now: number,
  limits: DecodeLimits,
  format: PayloadFormat = {},
): DecodeResult {
  const out: DecodeResult = { samples: [], rejections: [] };
  const parsed = parseBody(payload, limits, undefined, format);
  if (!('body' in parsed)) {
    out.rejections.push(parsed);
    return out;
  }
  const { body } = parsed;
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

export interface DecodedEvent {
  name: string;
  ts: number;
  data: JsonValue | null;
}

/**
 * Decodes an event message `{"data": …, "ts": …}` (both optional) for the event `name` and
 * validates the data against the event's schema in the device's model.
 */
export function decodeEvent(
  name: string,
  payload: Buffer | unknown,
  model: CompiledThingModel,
  now: number,
  limits: DecodeLimits,
  format: PayloadFormat = {},
): { event: DecodedEvent } | { rejection: Rejection } {
  const check = model.events.get(name);
  if (!check) {
    const known = [...model.events.keys()];
    return {
      rejection: {
        reason: 'unknown_event',
        event: name,
        message: `model "${model.id}" v${model.version} has no event "${name}"${known.length > 0 ? ` (it has: ${known.join(', ')})` : ''}`,
      },
    };
  }
  // An event without data may come with an empty body.
  const parsed = parseBody(payload, limits, {}, format);
  if (!('body' in parsed)) return { rejection: { ...parsed, event: name } };
  const body = parsed.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { rejection: { reason: 'malformed_event', event: name, message: 'an event message is a JSON object: {"data": …, "ts": …}' } };
  }
  const record = body as Record<string, JsonValue>;
  const extra = Object.keys(record).filter((key) => key !== 'data' && key !== 'ts');
  if (extra.length > 0) {
    return {
      rejection: {
        reason: 'malformed_event',
        event: name,
        message: `an event message holds only "data" and "ts"; move ${extra.map((k) => `"${k}"`).join(', ')} into "data"`,
      },
    };
  }
  let ts = now;
  if (record.ts !== undefined) {
    const parsedTs = parseTimestamp(record.ts, now, limits);
    if (typeof parsedTs === 'string') return { rejection: { reason: 'bad_timestamp', event: name, message: parsedTs, ...echo(record.ts) } };
    ts = parsedTs;
  }
  // Missing data is checked as null: an event whose model declares data must carry it.
  const data = record.data === undefined ? null : record.data;
  const problem = check(data);
  if (problem)
    return { rejection: { reason: problem.reason, event: name, message: `event ${name}: data ${problem.message}`, ...echo(data) } };
  return { event: { name, ts, data } };
}

/**
 * Decodes a twin report (`things/{id}/twin/reported`): a JSON object of property values, each
 * checked against the model like a telemetry sample's (a report carries no `ts`).
 */
export function decodeTwinReport(
  payload: Buffer | unknown,
  model: CompiledThingModel,
  limits: DecodeLimits,
  format: PayloadFormat = {},
): { values: Record<string, JsonValue>; rejections: Rejection[] } {
  const parsed = parseBody(payload, limits, undefined, format);
  if (!('body' in parsed)) return { values: {}, rejections: [parsed] };
  const { body } = parsed;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { values: {}, rejections: [{ reason: 'not_an_object', message: 'a twin report is a JSON object of property values' }] };
  }
  const rejections: Rejection[] = [];
  return { values: checkValues(body as Record<string, JsonValue>, model, {}, rejections, false), rejections };
}
