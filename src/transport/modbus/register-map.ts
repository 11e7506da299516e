import type { BoundForm, WotForm } from '../../gateway/index.js';
import type { ThingModel } from '../../model/index.js';

/**
 * The register map of a device, read from its thing model's `modbus+tcp://` forms (W3C WoT Modbus
 * binding template, `modv:` terms) after the gateway filled `{{host}}`, `{{port}}` and `{{unitId}}`.
 * Pure: forms in, points and read blocks out; raw registers in, property values out (and back).
 */

export const MODBUS_ENTITIES = ['Coil', 'DiscreteInput', 'InputRegister', 'HoldingRegister'] as const;
export type ModbusEntity = (typeof MODBUS_ENTITIES)[number];

export const REGISTER_TYPES = ['bool', 'int16', 'uint16', 'int32', 'uint32', 'float32'] as const;
export type RegisterType = (typeof REGISTER_TYPES)[number];

/** The binding template's XML Schema spellings and a few common aliases. */
const TYPE_ALIASES: Record<string, RegisterType> = {
  bool: 'bool',
  boolean: 'bool',
  'xsd:boolean': 'bool',
  int16: 'int16',
  'xsd:short': 'int16',
  'xsd:integer': 'int16',
  uint16: 'uint16',
  'xsd:unsignedShort': 'uint16',
  int32: 'int32',
  'xsd:int': 'int32',
  uint32: 'uint32',
  'xsd:unsignedInt': 'uint32',
  float32: 'float32',
  float: 'float32',
  'xsd:float': 'float32',
};

export const DEFAULT_MODBUS_PORT = 502;

/** Where a PLC is reached: one TCP connection per host:port, shared by the unit ids behind it. */
export interface PlcAddress {
  host: string;
  port: number;
  unitId: number;
}

/** One readable or writable value in a PLC. */
export interface RegisterPoint extends PlcAddress {
  property: string;
  entity: ModbusEntity;
  /** Protocol (zero-based) address of the first register or bit. */
  address: number;
  /** Registers (or bits) the value spans. */
  quantity: number;
  type: RegisterType;
  /** Word order of 32-bit values: true (default) puts the high word in the lower register. */
  mostSignificantWord: boolean;
  /** Byte order within a register: true (default) is big-endian, as Modbus sends it. */
  mostSignificantByte: boolean;
  /** value = raw × scale + offset (Thingloop's terms; a desired value is written as (value − offset) / scale). */
  scale: number;
  offset: number;
  pollingMs: number;
}

/** One step of an action's write sequence (`"modv:writes"`). */
export interface WriteStep extends PlcAddress {
  entity: 'Coil' | 'HoldingRegister';
  address: number;
  type: RegisterType;
  mostSignificantWord: boolean;
  mostSignificantByte: boolean;
  scale: number;
  offset: number;
  /** A literal, or the action input (`{"input": true}`) or one of its fields (`{"input": "speed"}`). */
  value: { literal: number | boolean } | { input: string | null };
}

export interface ActionMapping {
  action: string;
  steps: WriteStep[];
  /** Properties read after the writes; their values are the action's output. */
  output: string[];
}

export interface RegisterMap {
  reads: RegisterPoint[];
  writes: Map<string, RegisterPoint>;
  actions: Map<string, ActionMapping>;
  problems: string[];
}

export interface MapDefaults {
  pollingMs: number;
}

const isEntity = (value: unknown): value is ModbusEntity =>
  typeof value === 'string' && (MODBUS_ENTITIES as readonly string[]).includes(value);

export function registerTypeOf(value: unknown): RegisterType | undefined {
  return typeof value === 'string' ? TYPE_ALIASES[value] : undefined;
}

export function registersFor(type: RegisterType): number {
  return type === 'int32' || type === 'uint32' || type === 'float32' ? 2 : 1;
}

const isBitEntity = (entity: ModbusEntity) => entity === 'Coil' || entity === 'DiscreteInput';

/** Modicon numbering: 0xxxx coils, 1xxxx discrete inputs, 3xxxx input registers, 4xxxx holding registers. */
const MODICON_PREFIX: Record<ModbusEntity, number> = { Coil: 0, DiscreteInput: 1, InputRegister: 3, HoldingRegister: 4 };

/**
 * The protocol address of a form's address. Zero-based addressing uses it as is; the default
 * (`modv:zeroBasedAddressing: false`) counts from 1 and accepts Modicon numbers of the entity
 * (40001 is the first holding register, 300001 the first input register in six-digit form).
 */
export function protocolAddress(address: number, entity: ModbusEntity, zeroBased: boolean): number | string {
  if (!Number.isInteger(address) || address < 0) return `address ${address} is not a non-negative integer`;
  if (zeroBased) return address <= 0xffff ? address : `address ${address} is beyond 65535`;
  const prefix = MODICON_PREFIX[entity];
  let oneBased = address;
  if (prefix > 0 && address > prefix * 10_000 && address < (prefix + 1) * 10_000) oneBased = address - prefix * 10_000;
  else if (prefix > 0 && address > prefix * 100_000 && address <= prefix * 100_000 + 65_536) oneBased = address - prefix * 100_000;
  if (oneBased < 1) return `address ${address} counts from 1 (set "modv:zeroBasedAddressing": true for protocol addresses)`;
  if (oneBased > 65_536) return `address ${address} is beyond the 65536 ${entity}s a unit has`;
  return oneBased - 1;
}

const ops = (form: WotForm): string[] => (Array.isArray(form.op) ? form.op : typeof form.op === 'string' ? [form.op] : []);

const numberTerm = (form: WotForm | Record<string, unknown>, term: string): number | undefined => {
  const value = form[term];
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
  return undefined;
};

const booleanTerm = (form: WotForm | Record<string, unknown>, term: string, fallback: boolean): boolean =>
  typeof form[term] === 'boolean' ? (form[term] as boolean) : fallback;

interface ParsedHref extends PlcAddress {
  address: number | undefined;
  quantity: number | undefined;
}

/** `modbus+tcp://host:port/unitId/address?quantity=n`; `modv:unitID`, `modv:address` and `modv:quantity` fill what the path leaves out. */
export function parseHref(form: WotForm): ParsedHref | string {
  let url: URL;
  try {
    url = new URL(form.href);
  } catch {
    return `href "${form.href}" is not a URL`;
  }
  if (url.hostname === '') return `href "${form.href}" names no host`;
  const port = url.port === '' ? DEFAULT_MODBUS_PORT : Number(url.port);
  const segments = url.pathname.split('/').filter((segment) => segment !== '');
  const unitText = segments[0] ?? form['modv:unitID'];
  const unitId = Number(unitText ?? 1);
  if (!Number.isInteger(unitId) || unitId < 0 || unitId > 255) return `unit id "${String(unitText)}" is not 0…255`;
  const addressText = segments[1];
  const address = addressText !== undefined ? Number(addressText) : numberTerm(form, 'modv:address');
  if (address !== undefined && !Number.isInteger(address)) return `address "${addressText}" is not an integer`;
  const quantityText = url.searchParams.get('quantity');
  const quantity = quantityText !== null ? Number(quantityText) : numberTerm(form, 'modv:quantity');
  if (quantity !== undefined && (!Number.isInteger(quantity) || quantity < 1))
    return `quantity "${quantityText}" is not a positive integer`;
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port, unitId, address, quantity };
}

interface PointShape {
  entity: ModbusEntity;
  address: number;
  quantity: number;
  type: RegisterType;
  mostSignificantWord: boolean;
  mostSignificantByte: boolean;
  scale: number;
  offset: number;
}

/** The entity, address, type and scaling a form (or a write step) describes. */
function shapeOf(
  href: ParsedHref,
  terms: Record<string, unknown>,
  zeroBased: boolean,
  entityTerm: string,
  schemaType: string | undefined,
): PointShape | string {
  const entity = terms[entityTerm];
  if (!isEntity(entity)) return `"${entityTerm}" must be one of ${MODBUS_ENTITIES.join(', ')}`;
  if (href.address === undefined) return 'no register address (put it in the href path: /{unitId}/{address})';
  const address = protocolAddress(href.address, entity, zeroBased);
  if (typeof address === 'string') return address;
  const typeTerm = terms['modv:type'] ?? terms.type;
  let type: RegisterType | undefined;
  if (typeTerm === undefined) type = isBitEntity(entity) || schemaType === 'boolean' ? 'bool' : 'uint16';
  else type = registerTypeOf(typeTerm);
  if (type === undefined) return `"modv:type" ${JSON.stringify(typeTerm)} is not one of ${REGISTER_TYPES.join(', ')} (or their xsd: names)`;
  if (isBitEntity(entity) && type !== 'bool') return `a ${entity} holds one bit: its type is bool, not ${type}`;
  if (!isBitEntity(entity) && type === 'bool') return `a ${entity} holds a number: use int16, uint16, int32, uint32 or float32`;
  const quantity = registersFor(type);
  if (href.quantity !== undefined && href.quantity !== quantity)
    return `quantity ${href.quantity} does not fit ${type} (${quantity} ${entity})`;
  if (address + quantity > 0x10000) return `${type} at ${address} runs past the last register`;
  const scale = numberTerm(terms, 'modv:scale') ?? numberTerm(terms, 'scale') ?? 1;
  const offset = numberTerm(terms, 'modv:offset') ?? numberTerm(terms, 'offset') ?? 0;
  if (scale === 0) return '"modv:scale" must not be 0';
  return {
    entity,
    address,
    quantity,
    type,
    mostSignificantWord: booleanTerm(terms, 'modv:mostSignificantWord', booleanTerm(terms, 'mostSignificantWord', true)),
    mostSignificantByte: booleanTerm(terms, 'modv:mostSignificantByte', booleanTerm(terms, 'mostSignificantByte', true)),
    scale,
    offset,
  };
}

function schemaTypeOf(model: ThingModel, property: string): string | undefined {
  const type = model.properties?.[property]?.type;
  return typeof type === 'string' ? type : undefined;
}

/** Reads the register map from a device's bound forms; a form that cannot be used is a problem, the rest still work. */
export function registerMap(model: ThingModel, forms: BoundForm[], defaults: MapDefaults): RegisterMap {
  const map: RegisterMap = { reads: [], writes: new Map(), actions: new Map(), problems: [] };
  for (const { kind, name, form } of forms) {
    const where = `${kind} "${name}"`;
    const href = parseHref(form);
    if (typeof href === 'string') {
      map.problems.push(`${where}: ${href}`);
      continue;
    }
    const zeroBased = booleanTerm(form, 'modv:zeroBasedAddressing', false);
    if (kind === 'property') {
      const shape = shapeOf(href, form, zeroBased, 'modv:entity', schemaTypeOf(model, name));
      if (typeof shape === 'string') {
        map.problems.push(`${where}: ${shape}`);
        continue;
      }
      const pollingMs = numberTerm(form, 'modv:pollingTime') ?? defaults.pollingMs;
      if (pollingMs < 10) {
        map.problems.push(`${where}: "modv:pollingTime" ${pollingMs} ms is below 10 ms`);
        continue;
      }
      const point: RegisterPoint = { property: name, host: href.host, port: href.port, unitId: href.unitId, ...shape, pollingMs };
      const formOps = ops(form);
      const readOnly = model.properties?.[name]?.readOnly === true;
      const reads = formOps.length === 0 || formOps.includes('readproperty') || formOps.includes('observeproperty');
      const writes = !readOnly && (formOps.length === 0 ? true : formOps.includes('writeproperty'));
      if (reads && !map.reads.some((existing) => existing.property === name)) map.reads.push(point);
      if (writes && (point.entity === 'HoldingRegister' || point.entity === 'Coil') && !map.writes.has(name)) map.writes.set(name, point);
      else if (writes && formOps.includes('writeproperty')) map.problems.push(`${where}: a ${point.entity} cannot be written`);
    } else if (kind === 'action') {
      const action = actionMapping(name, href, form, zeroBased);
      if (typeof action === 'string') map.problems.push(`${where}: ${action}`);
      else if (!map.actions.has(name)) map.actions.set(name, action);
    }
  }
  for (const action of map.actions.values()) {
    const unknown = action.output.filter((property) => !map.reads.some((point) => point.property === property));
    if (unknown.length > 0)
      map.problems.push(`action "${action.action}": "modv:output" names ${unknown.join(', ')}, which no readable form maps`);
    action.output = action.output.filter((property) => !unknown.includes(property));
  }
  return map;
}

function stepValue(raw: unknown): WriteStep['value'] | string {
  if (typeof raw === 'number' || typeof raw === 'boolean') return { literal: raw };
  if (raw !== null && typeof raw === 'object' && 'input' in raw) {
    const input = (raw as { input: unknown }).input;
    if (input === true) return { input: null };
    if (typeof input === 'string' && input !== '') return { input };
  }
  return 'a write needs a "value": a number, a boolean, {"input": true} (the whole input) or {"input": "field"}';
}

/**
 * An action's form: `"modv:writes": [{"entity": "Coil", "address": 5, "value": true}, …]` writes a
 * sequence on the form's unit (addresses count as the form's `modv:zeroBasedAddressing` says);
 * without it the form's own register or coil gets the action input.
 */
function actionMapping(action: string, href: ParsedHref, form: WotForm, zeroBased: boolean): ActionMapping | string {
  const outputTerm = form['modv:output'];
  const output = Array.isArray(outputTerm) ? outputTerm.filter((item): item is string => typeof item === 'string') : [];
  const list = form['modv:writes'];
  const raws: Record<string, unknown>[] =
    list === undefined
      ? [{ ...form, entity: form['modv:entity'], address: href.address, value: { input: true } }]
      : Array.isArray(list)
        ? list.map((item) => (item !== null && typeof item === 'object' ? (item as Record<string, unknown>) : {}))
        : [];
  if (list !== undefined && (!Array.isArray(list) || list.length === 0)) return '"modv:writes" must be a non-empty list of writes';
  const steps: WriteStep[] = [];
  for (const [index, raw] of raws.entries()) {
    const at = list === undefined ? '' : `write ${index + 1}: `;
    const address = numberTerm(raw, 'address');
    const shape = shapeOf(
      { ...href, address, quantity: undefined },
      { ...raw, 'modv:entity': raw.entity },
      zeroBased,
      'modv:entity',
      undefined,
    );
    if (typeof shape === 'string') return `${at}${shape}`;
    if (shape.entity !== 'Coil' && shape.entity !== 'HoldingRegister') return `${at}a ${shape.entity} cannot be written`;
    const value = stepValue(raw.value);
    if (typeof value === 'string') return `${at}${value}`;
    steps.push({ host: href.host, port: href.port, unitId: href.unitId, ...shape, entity: shape.entity, value });
  }
  return { action, steps, output };
}

/** Nearby registers are read together when the gap costs less than another round trip. */
export interface CoalesceLimits {
  /** Unused registers (bits) a block may span between two points. */
  maxGap: number;
  /** The protocol's limits: 125 registers, 2000 bits per read. */
  maxRegisters: number;
  maxBits: number;
}

export const DEFAULT_COALESCE: CoalesceLimits = { maxGap: 16, maxRegisters: 125, maxBits: 2000 };

export interface ReadBlock extends PlcAddress {
  entity: ModbusEntity;
  address: number;
  quantity: number;
  points: RegisterPoint[];
}

/** Groups points of one unit and entity into as few reads as the limits allow. */
export function coalesce(points: RegisterPoint[], limits: CoalesceLimits = DEFAULT_COALESCE): ReadBlock[] {
  const key = (point: RegisterPoint) => `${point.host}|${point.port}|${point.unitId}|${point.entity}`;
  const sorted = [...points].sort((a, b) => key(a).localeCompare(key(b)) || a.address - b.address);
  const blocks: ReadBlock[] = [];
  let current: ReadBlock | undefined;
  for (const point of sorted) {
    const max = isBitEntity(point.entity) ? limits.maxBits : limits.maxRegisters;
    const end = point.address + point.quantity;
    const fits =
      current !== undefined &&
      key(current.points[0] as RegisterPoint) === key(point) &&
      point.address - (current.address + current.quantity) <= limits.maxGap &&
      Math.max(end, current.address + current.quantity) - current.address <= max;
    if (current && fits) {
      current.quantity = Math.max(end, current.address + current.quantity) - current.address;
      current.points.push(point);
    } else {
      current = {
        host: point.host,
        port: point.port,
        unitId: point.unitId,
        entity: point.entity,
        address: point.address,
        quantity: point.quantity,
        points: [point],
      };
      blocks.push(current);
    }
  }
  return blocks;
}

/** Raw words of a register value in register order, as the PLC holds them. */
function wordsOf(point: Pick<PointShape, 'type' | 'mostSignificantWord' | 'mostSignificantByte'>, buffer: Buffer): Buffer {
  const bytes = Buffer.from(buffer);
  if (!point.mostSignificantByte) for (let i = 0; i + 1 < bytes.length; i += 2) bytes.writeUInt16BE(bytes.readUInt16LE(i), i);
  if (bytes.length === 4 && !point.mostSignificantWord) return Buffer.concat([bytes.subarray(2, 4), bytes.subarray(0, 2)]);
  return bytes;
}

/** Drops float noise from scaling (0.1 × 234 is 23.400000000000002) and float32 widening. */
const tidy = (value: number, digits: number) => Number(value.toPrecision(digits));

/** A point's value from its registers (big-endian bytes as they came off the wire). */
export function decodeRegisters(point: RegisterPoint, bytes: Buffer): number {
  const ordered = wordsOf(point, bytes);
  let raw: number;
  switch (point.type) {
    case 'int16':
      raw = ordered.readInt16BE(0);
      break;
    case 'int32':
      raw = ordered.readInt32BE(0);
      break;
    case 'uint32':
      raw = ordered.readUInt32BE(0);
      break;
    case 'float32':
      raw = tidy(ordered.readFloatBE(0), 7);
      break;
    default:
      raw = ordered.readUInt16BE(0);
  }
  if (point.scale === 1 && point.offset === 0) return raw;
  const value = raw * point.scale + point.offset;
  // An integer count scaled has no more decimals than the scale and offset: 234 × 0.1 is 23.4 exactly.
  return point.type === 'float32' ? tidy(value, 7) : Number(value.toFixed(Math.max(decimalsOf(point.scale), decimalsOf(point.offset))));
}

function decimalsOf(value: number): number {
  const [mantissa = '', exponent] = String(value).split('e');
  const decimals = (mantissa.split('.')[1] ?? '').length - Number(exponent ?? 0);
  return Math.min(15, Math.max(0, decimals));
}

const RANGES: Record<Exclude<RegisterType, 'bool' | 'float32'>, [number, number]> = {
  int16: [-32_768, 32_767],
  uint16: [0, 65_535],
  int32: [-2_147_483_648, 2_147_483_647],
  uint32: [0, 4_294_967_295],
};

/** The registers that hold `value` (inverse scale and offset), or why it cannot be written. */
export function encodeRegisters(
  point: Pick<PointShape, 'type' | 'mostSignificantWord' | 'mostSignificantByte' | 'scale' | 'offset'>,
  value: unknown,
): number[] | string {
  if (point.type === 'bool') return 'a bit is written as a coil';
  const number = typeof value === 'boolean' ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isFinite(number)) return `${JSON.stringify(value)} is not a number`;
  const scaled = (number - point.offset) / point.scale;
  const bytes = Buffer.alloc(registersFor(point.type) * 2);
  if (point.type === 'float32') {
    if (Math.abs(scaled) > 3.4028234663852886e38) return `${number} is out of range for float32`;
    bytes.writeFloatBE(scaled, 0);
  } else {
    const raw = Math.round(scaled);
    const [min, max] = RANGES[point.type];
    if (raw < min || raw > max)
      return `${number} is out of range for ${point.type}${point.scale !== 1 || point.offset !== 0 ? ` after scale ${point.scale} and offset ${point.offset} (raw ${raw})` : ''}`;
    if (point.type === 'int16') bytes.writeInt16BE(raw, 0);
    else if (point.type === 'uint16') bytes.writeUInt16BE(raw, 0);
    else if (point.type === 'int32') bytes.writeInt32BE(raw, 0);
    else bytes.writeUInt32BE(raw, 0);
  }
  // Register order out is the inverse of the order in: the same swaps undo themselves.
  const ordered = wordsOf(point, bytes);
  const words: number[] = [];
  for (let i = 0; i < ordered.length; i += 2) words.push(ordered.readUInt16BE(i));
  return words;
}

/** Whether a value read back confirms a written one (within the register's resolution). */
export function confirms(point: Pick<PointShape, 'type' | 'scale'>, written: unknown, read: unknown): boolean {
  if (typeof written === 'boolean' || typeof read === 'boolean') return Boolean(written) === Boolean(read);
  if (typeof written !== 'number' || typeof read !== 'number') return false;
  const resolution = point.type === 'float32' ? Math.max(Math.abs(written) * 1e-6, 1e-6) : Math.abs(point.scale) / 2 + 1e-9;
  return Math.abs(written - read) <= resolution;
}
