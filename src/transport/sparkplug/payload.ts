import protoRoot from 'sparkplug-payload/lib/sparkplugPayloadProto.js';
import type { JsonValue } from '../../telemetry/index.js';

/**
 * Sparkplug B payloads (the Eclipse Tahu protobuf) read into plain values. Metric values are
 * taken out only once their datatype is known: a DATA message may leave the datatype out and
 * name the metric by its alias alone, so the birth certificate decides how to read the value.
 */

const Payload = protoRoot.org.eclipse.tahu.protobuf.Payload;

/** Sparkplug B datatypes (spec 6.4.16), by their protobuf numbers. */
export const SparkplugDataType = {
  Int8: 1,
  Int16: 2,
  Int32: 3,
  Int64: 4,
  UInt8: 5,
  UInt16: 6,
  UInt32: 7,
  UInt64: 8,
  Float: 9,
  Double: 10,
  Boolean: 11,
  String: 12,
  DateTime: 13,
  Text: 14,
  UUID: 15,
  DataSet: 16,
  Bytes: 17,
  File: 18,
  Template: 19,
} as const;

const DATATYPE_NAMES = new Map<number, string>(Object.entries(SparkplugDataType).map(([name, code]) => [code, name]));

export function datatypeName(datatype: number): string {
  return DATATYPE_NAMES.get(datatype) ?? `datatype ${datatype}`;
}

/** The protobuf 64-bit integer as protobufjs hands it over (a `long` instance). */
interface LongValue {
  low: number;
  high: number;
  unsigned: boolean;
  toString(): string;
}

type Int64 = number | LongValue;

/** The metric fields as protobufjs decodes them (only what this module reads). */
export interface RawMetric {
  name?: string | null;
  alias?: Int64 | null;
  timestamp?: Int64 | null;
  datatype?: number | null;
  isNull?: boolean | null;
  properties?: { keys?: string[] | null; values?: RawPropertyValue[] | null } | null;
  intValue?: number | null;
  longValue?: Int64 | null;
  floatValue?: number | null;
  doubleValue?: number | null;
  booleanValue?: boolean | null;
  stringValue?: string | null;
}

interface RawPropertyValue {
  type?: number | null;
  isNull?: boolean | null;
  intValue?: number | null;
  longValue?: Int64 | null;
  floatValue?: number | null;
  doubleValue?: number | null;
  booleanValue?: boolean | null;
  stringValue?: string | null;
}

/** One metric of a payload; `raw` keeps the value fields for reading with the birth's datatype. */
export interface SparkplugMetric {
  name?: string;
  alias?: number;
  timestamp?: number;
  datatype?: number;
  isNull: boolean;
  /** Scalar metric properties (engUnit, engLow, engHigh…); property sets are left out. */
  properties: Record<string, string | number | boolean>;
  raw: RawMetric;
}

export interface SparkplugPayload {
  timestamp?: number;
  seq?: number;
  metrics: SparkplugMetric[];
}

function has<K extends string>(object: object, key: K): boolean {
  return Object.hasOwn(object, key);
}

/** A 64-bit integer as a JS number, or undefined when it does not fit exactly. */
export function int64ToNumber(value: Int64, signed: boolean): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined;
  const big = BigInt.asUintN(64, (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0));
  const exact = signed ? BigInt.asIntN(64, big) : big;
  return exact >= BigInt(Number.MIN_SAFE_INTEGER) && exact <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(exact) : undefined;
}

function propertyValue(value: RawPropertyValue): string | number | boolean | undefined {
  if (value.isNull) return undefined;
  const type = value.type ?? 0;
  return scalarOf(type, value);
}

/** Reads a scalar of a datatype from protobuf value fields; undefined when they do not hold one. */
function scalarOf(datatype: number, fields: RawPropertyValue | RawMetric): string | number | boolean | undefined {
  const T = SparkplugDataType;
  switch (datatype) {
    case T.Int8:
      return typeof fields.intValue === 'number' ? (fields.intValue << 24) >> 24 : undefined;
    case T.Int16:
      return typeof fields.intValue === 'number' ? (fields.intValue << 16) >> 16 : undefined;
    case T.Int32:
      return typeof fields.intValue === 'number' ? fields.intValue | 0 : undefined;
    case T.UInt8:
    case T.UInt16:
      return typeof fields.intValue === 'number' ? fields.intValue >>> 0 : undefined;
    case T.UInt32:
      // Tahu writes UInt32 to longValue; some edge nodes use intValue.
      if (fields.longValue !== undefined && fields.longValue !== null) return int64ToNumber(fields.longValue, false);
      return typeof fields.intValue === 'number' ? fields.intValue >>> 0 : undefined;
    case T.Int64:
      return fields.longValue !== undefined && fields.longValue !== null ? int64ToNumber(fields.longValue, true) : undefined;
    case T.UInt64:
    case T.DateTime:
      return fields.longValue !== undefined && fields.longValue !== null ? int64ToNumber(fields.longValue, false) : undefined;
    case T.Float:
      return typeof fields.floatValue === 'number' ? fields.floatValue : undefined;
    case T.Double:
      return typeof fields.doubleValue === 'number' ? fields.doubleValue : undefined;
    case T.Boolean:
      return typeof fields.booleanValue === 'boolean' ? fields.booleanValue : undefined;
    case T.String:
    case T.Text:
    case T.UUID:
      return typeof fields.stringValue === 'string' ? fields.stringValue : undefined;
    default:
      return undefined;
  }
}

/** The datatypes this host maps to thing-model properties (scalars). */
export function isScalarDatatype(datatype: number): boolean {
  return datatype >= SparkplugDataType.Int8 && datatype <= SparkplugDataType.UUID;
}

/**
 * A metric's value read with a datatype (the birth's when the message leaves it out): a JSON
 * value, or why it cannot be read (a 64-bit integer beyond 2^53, a missing value field).
 */
export function metricValue(metric: SparkplugMetric, datatype: number): { value: JsonValue } | { problem: string } {
  if (metric.isNull) return { value: null };
  if (!isScalarDatatype(datatype)) return { problem: `${datatypeName(datatype)} values are not mapped to properties` };
  const value = scalarOf(datatype, metric.raw);
  if (value === undefined) return { problem: `no ${datatypeName(datatype)} value that fits a JSON number or string` };
  if (typeof value === 'number' && !Number.isFinite(value)) return { problem: `${value} is not a finite number` };
  return { value };
}

function readProperties(raw: RawMetric): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  const keys = raw.properties?.keys ?? [];
  const values = raw.properties?.values ?? [];
  keys.forEach((key, index) => {
    const value = values[index];
    const read = value ? propertyValue(value) : undefined;
    if (read !== undefined) out[key] = read;
  });
  return out;
}

function readMetric(raw: RawMetric): SparkplugMetric {
  const metric: SparkplugMetric = { isNull: raw.isNull === true, properties: readProperties(raw), raw };
  if (has(raw, 'name') && typeof raw.name === 'string') metric.name = raw.name;
  if (has(raw, 'alias') && raw.alias !== null && raw.alias !== undefined) {
    const alias = int64ToNumber(raw.alias, false);
    if (alias !== undefined) metric.alias = alias;
  }
  if (has(raw, 'timestamp') && raw.timestamp !== null && raw.timestamp !== undefined) {
    const ts = int64ToNumber(raw.timestamp, false);
    if (ts !== undefined) metric.timestamp = ts;
  }
  if (has(raw, 'datatype') && typeof raw.datatype === 'number') metric.datatype = raw.datatype;
  return metric;
}

/** Decodes a Sparkplug B payload; throws when the bytes are not one (the caller counts and drops it). */
export function decodeSparkplugPayload(bytes: Uint8Array): SparkplugPayload {
  const decoded = Payload.decode(bytes);
  const payload: SparkplugPayload = { metrics: (decoded.metrics ?? []).map((metric) => readMetric(metric as RawMetric)) };
  if (has(decoded, 'timestamp') && decoded.timestamp !== null && decoded.timestamp !== undefined) {
    const ts = int64ToNumber(decoded.timestamp as Int64, false);
    if (ts !== undefined) payload.timestamp = ts;
  }
  if (has(decoded, 'seq') && decoded.seq !== null && decoded.seq !== undefined) {
    const seq = int64ToNumber(decoded.seq as Int64, false);
    if (seq !== undefined) payload.seq = seq;
  }
  return payload;
}

/** A metric a command writes: by name and, when the birth gave one, by alias too. */
export interface MetricWrite {
  name: string;
  alias?: number;
  datatype: number;
  value: string | number | boolean;
}

function valueFields(datatype: number, value: string | number | boolean): Record<string, unknown> {
  const T = SparkplugDataType;
  switch (datatype) {
    case T.Int8:
    case T.Int16:
    case T.Int32:
    case T.UInt8:
    case T.UInt16:
      return { intValue: Number(value) >>> 0 };
    case T.Int64:
    case T.UInt32:
    case T.UInt64:
    case T.DateTime:
      return { longValue: Number(value) };
    case T.Float:
      return { floatValue: Number(value) };
    case T.Double:
      return { doubleValue: Number(value) };
    case T.Boolean:
      return { booleanValue: Boolean(value) };
    default:
      return { stringValue: String(value) };
  }
}

/** Encodes an NCMD/DCMD payload (commands carry no seq, spec 6.4.1). */
export function encodeCommandPayload(writes: MetricWrite[], timestamp: number): Uint8Array {
  const metrics = writes.map((write) =>
    Payload.Metric.create({
      name: write.name,
      ...(write.alias !== undefined ? { alias: write.alias } : {}),
      timestamp,
      datatype: write.datatype,
      ...valueFields(write.datatype, write.value),
    }),
  );
  return Payload.encode(Payload.create({ timestamp, metrics })).finish();
}
