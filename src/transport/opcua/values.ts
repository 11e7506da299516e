import type { DataType as ModelDataType } from '../../model/index.js';
import type { JsonValue } from '../../telemetry/index.js';

/**
 * OPC UA built-in data types (Part 6, 5.1.2) by their numeric id, and how their values become JSON
 * and back. Pure: the session layer hands in what node-opcua decoded (numbers, strings, Dates,
 * Buffers, [high, low] pairs for 64-bit integers, NodeIds and LocalizedTexts with toString()).
 */
export const BuiltInType = {
  Null: 0,
  Boolean: 1,
  SByte: 2,
  Byte: 3,
  Int16: 4,
  UInt16: 5,
  Int32: 6,
  UInt32: 7,
  Int64: 8,
  UInt64: 9,
  Float: 10,
  Double: 11,
  String: 12,
  DateTime: 13,
  Guid: 14,
  ByteString: 15,
  XmlElement: 16,
  NodeId: 17,
  ExpandedNodeId: 18,
  StatusCode: 19,
  QualifiedName: 20,
  LocalizedText: 21,
  ExtensionObject: 22,
  DataValue: 23,
  Variant: 24,
  DiagnosticInfo: 25,
} as const;

const NAME_BY_ID = new Map<number, string>(Object.entries(BuiltInType).map(([name, id]) => [id, name]));

export function builtInTypeName(id: number): string {
  return NAME_BY_ID.get(id) ?? `DataType ${id}`;
}

/** `"Float"`, `"float"` or `10` → 10; undefined when not a built-in type's name or id. */
export function parseBuiltInType(text: unknown): number | undefined {
  if (typeof text === 'number') return NAME_BY_ID.has(text) ? text : undefined;
  if (typeof text !== 'string') return undefined;
  const found = Object.entries(BuiltInType).find(([name]) => name.toLowerCase() === text.trim().toLowerCase());
  return found?.[1];
}

const INTEGER_RANGES: Partial<Record<number, [number, number]>> = {
  [BuiltInType.SByte]: [-128, 127],
  [BuiltInType.Byte]: [0, 255],
  [BuiltInType.Int16]: [-32768, 32767],
  [BuiltInType.UInt16]: [0, 65535],
  [BuiltInType.Int32]: [-2147483648, 2147483647],
  [BuiltInType.UInt32]: [0, 4294967295],
  [BuiltInType.Int64]: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  [BuiltInType.UInt64]: [0, Number.MAX_SAFE_INTEGER],
};

/** The JSON type a model property gets for a variable of this built-in type. */
export function jsonTypeOf(builtIn: number, valueRank: number): ModelDataType {
  if (valueRank > 0) return 'array';
  switch (builtIn) {
    case BuiltInType.Boolean:
      return 'boolean';
    case BuiltInType.Float:
    case BuiltInType.Double:
      return 'number';
    case BuiltInType.ExtensionObject:
      return 'object';
    default:
      return INTEGER_RANGES[builtIn] ? 'integer' : 'string';
  }
}

/** The natural bounds of an integer type, for a drafted model where the server gives no EURange. */
export function integerRange(builtIn: number): [number, number] | undefined {
  return INTEGER_RANGES[builtIn];
}

/** A 64-bit integer as node-opcua decodes it: [high, low] unsigned 32-bit words. */
function fromWords(words: readonly number[], signed: boolean): number | string {
  const [high = 0, low = 0] = words;
  const big = (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
  const value = signed ? BigInt.asIntN(64, big) : big;
  // Beyond 2^53 a JSON number would silently change the value: keep the exact digits as a string.
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
}

function scalarToJson(value: unknown, builtIn: number): JsonValue {
  if (value === null || value === undefined) return null;
  if ((builtIn === BuiltInType.Int64 || builtIn === BuiltInType.UInt64) && Array.isArray(value)) {
    return fromWords(value as number[], builtIn === BuiltInType.Int64);
  }
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'bigint')
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (builtIn === BuiltInType.LocalizedText && typeof value === 'object' && 'text' in value) {
    const text = (value as { text: unknown }).text;
    return typeof text === 'string' ? text : null;
  }
  if (builtIn === BuiltInType.ExtensionObject && typeof value === 'object' && 'toJSON' in value && typeof value.toJSON === 'function') {
    return JSON.parse(JSON.stringify(value)) as JsonValue;
  }
  return String(value);
}

/** A variant's value as JSON: arrays (typed arrays included) element by element. */
export function variantToJson(value: unknown, builtIn: number): JsonValue {
  if (ArrayBuffer.isView(value) && !Buffer.isBuffer(value)) {
    return Array.from(value as unknown as ArrayLike<number>, (item) => scalarToJson(item, builtIn));
  }
  if (Array.isArray(value) && !((builtIn === BuiltInType.Int64 || builtIn === BuiltInType.UInt64) && typeof value[0] === 'number')) {
    return value.map((item) => variantToJson(item, builtIn));
  }
  return scalarToJson(value, builtIn);
}

export type Conversion = { value: unknown } | { problem: string };

function scalarFromJson(value: JsonValue, builtIn: number): Conversion {
  const name = builtInTypeName(builtIn);
  const range = INTEGER_RANGES[builtIn];
  if (range) {
    if (typeof value !== 'number' || !Number.isInteger(value)) return { problem: `${name} needs an integer, got ${JSON.stringify(value)}` };
    if (value < range[0] || value > range[1]) return { problem: `${value} is outside ${name} (${range[0]}…${range[1]})` };
    if (builtIn === BuiltInType.Int64 || builtIn === BuiltInType.UInt64) {
      const big = BigInt.asUintN(64, BigInt(value));
      return { value: [Number(big >> 32n), Number(big & 0xffffffffn)] };
    }
    return { value };
  }
  switch (builtIn) {
    case BuiltInType.Boolean:
      return typeof value === 'boolean' ? { value } : { problem: `Boolean needs true or false, got ${JSON.stringify(value)}` };
    case BuiltInType.Float:
      if (typeof value !== 'number') return { problem: `Float needs a number, got ${JSON.stringify(value)}` };
      return Math.abs(value) > 3.4028234663852886e38 ? { problem: `${value} is outside Float` } : { value };
    case BuiltInType.Double:
      return typeof value === 'number' ? { value } : { problem: `Double needs a number, got ${JSON.stringify(value)}` };
    case BuiltInType.String:
    case BuiltInType.XmlElement:
      return typeof value === 'string' ? { value } : { problem: `${name} needs a string, got ${JSON.stringify(value)}` };
    case BuiltInType.LocalizedText:
      return typeof value === 'string'
        ? { value: { text: value } }
        : { problem: `LocalizedText needs a string, got ${JSON.stringify(value)}` };
    case BuiltInType.DateTime: {
      const date = typeof value === 'number' ? new Date(value) : typeof value === 'string' ? new Date(value) : undefined;
      return date && !Number.isNaN(date.getTime())
        ? { value: date }
        : { problem: `DateTime needs epoch ms or an ISO 8601 time, got ${JSON.stringify(value)}` };
    }
    case BuiltInType.ByteString:
      return typeof value === 'string' ? { value: Buffer.from(value, 'base64') } : { problem: 'ByteString needs base64 text' };
    default:
      return { problem: `writing ${name} values is not supported` };
  }
}

/** A JSON value as a variant value of the variable's type (arrays when `valueRank` > 0), or why not. */
export function jsonToVariantValue(value: JsonValue, builtIn: number, valueRank: number): Conversion {
  if (valueRank > 0) {
    if (!Array.isArray(value)) return { problem: `an array of ${builtInTypeName(builtIn)} is needed, got ${JSON.stringify(value)}` };
    const out: unknown[] = [];
    for (const item of value) {
      const converted = scalarFromJson(item, builtIn);
      if ('problem' in converted) return converted;
      out.push(converted.value);
    }
    return { value: out };
  }
  return scalarFromJson(value, builtIn);
}
