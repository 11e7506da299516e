import { createHash } from 'node:crypto';
import type { DataSchema, PropertyAffordance, ThingModel } from '../../model/index.js';
import type { JsonValue } from '../../telemetry/index.js';
import {
  datatypeName,
  isScalarDatatype,
  type MetricWrite,
  metricValue,
  SparkplugDataType,
  type SparkplugMetric,
  type SparkplugPayload,
} from './payload.js';

/**
 * Birth certificates: what an NBIRTH or DBIRTH says a node or device has (its metrics, their
 * aliases and datatypes), and the thing model derived from it. A metric becomes a property named
 * after it; a Boolean under `Node Control/` or `Device Control/` becomes an action (invoking it
 * writes true, as Sparkplug hosts do for Rebirth, Reboot or Reset). The derived document depends
 * only on the set of metrics (sorted by name), so an unchanged birth yields an unchanged model.
 */

/** Where a birth came from: an edge node, or a device behind it. */
export interface BirthScope {
  group: string;
  edgeNode: string;
  device?: string;
}

export interface MetricDefinition {
  /** The Sparkplug metric name. */
  name: string;
  /** The property or action it maps to; undefined when it is not mapped (bdSeq, DataSets…). */
  affordance?: { kind: 'property' | 'action'; name: string };
  alias?: number;
  datatype: number;
}

export interface BirthCertificate {
  scope: BirthScope;
  metrics: MetricDefinition[];
  byName: Map<string, MetricDefinition>;
  byAlias: Map<number, MetricDefinition>;
  /** By property or action name. */
  byAffordance: Map<string, MetricDefinition>;
  /** The thing model derived from the birth. */
  model: ThingModel;
  /** The birth's own values (births carry the current value of every metric). */
  values: SparkplugMetric[];
}

/** The bdSeq metric of an NBIRTH/NDEATH (spec 6.4.6): pairs a birth with its death certificate. */
export const BD_SEQ_METRIC = 'bdSeq';
export const REBIRTH_METRIC = 'Node Control/Rebirth';
const CONTROL_FOLDERS = ['Node Control/', 'Device Control/'];

/** The Sparkplug datatype as a JSON data schema (range of the integer types included). */
export function schemaOf(datatype: number): DataSchema {
  const T = SparkplugDataType;
  switch (datatype) {
    case T.Int8:
      return { type: 'integer', minimum: -128, maximum: 127 };
    case T.Int16:
      return { type: 'integer', minimum: -32768, maximum: 32767 };
    case T.Int32:
      return { type: 'integer', minimum: -2147483648, maximum: 2147483647 };
    case T.UInt8:
      return { type: 'integer', minimum: 0, maximum: 255 };
    case T.UInt16:
      return { type: 'integer', minimum: 0, maximum: 65535 };
    case T.UInt32:
      return { type: 'integer', minimum: 0, maximum: 4294967295 };
    case T.UInt64:
      return { type: 'integer', minimum: 0 };
    case T.Int64:
      return { type: 'integer' };
    case T.DateTime:
      return { type: 'integer', minimum: 0 };
    case T.Float:
    case T.Double:
      return { type: 'number' };
    case T.Boolean:
      return { type: 'boolean' };
    default:
      return { type: 'string' };
  }
}

const RESERVED = new Set(['ts', '__proto__']);

/** A metric name as an affordance name (`Temperature/PV` → `Temperature_PV`), unique among `taken`. */
export function affordanceName(metricName: string, taken: Set<string>): string {
  let base = metricName.replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^_+(?=.)/, '');
  if (!/^[A-Za-z_]/.test(base)) base = `m_${base}`;
  base = base.slice(0, 56);
  if (RESERVED.has(base)) base = `${base}_metric`;
  let name = base;
  for (let n = 2; taken.has(name); n++) name = `${base}_${n}`;
  taken.add(name);
  return name;
}

/** `sparkplug.{group}.{edgeNode}[.{device}]`, made URL-safe; a digest keeps long ids unique. */
export function modelIdFor(scope: BirthScope): string {
  const parts = [scope.group, scope.edgeNode, ...(scope.device !== undefined ? [scope.device] : [])];
  const id = `sparkplug.${parts.map((part) => part.replace(/[^A-Za-z0-9_-]/g, '_')).join('.')}`;
  if (id.length <= 128) return id;
  const digest = createHash('sha256').update(parts.join('/')).digest('hex').slice(0, 12);
  return `${id.slice(0, 115)}-${digest}`;
}

function isControl(metric: { name: string; datatype: number }): boolean {
  return metric.datatype === SparkplugDataType.Boolean && CONTROL_FOLDERS.some((folder) => metric.name.startsWith(folder));
}

/** The WoT form of an affordance: the Sparkplug address with the device's binding parameters as placeholders. */
function formOf(scope: BirthScope, metric: MetricDefinition, op: string[]): Record<string, unknown> {
  return {
    href: scope.device !== undefined ? 'spBv1.0://{{group}}/{{edgeNode}}/{{device}}' : 'spBv1.0://{{group}}/{{edgeNode}}',
    op,
    contentType: 'application/x-sparkplug-b',
    'sparkplug:metric': metric.name,
    'sparkplug:datatype': datatypeName(metric.datatype),
  };
}

function propertyOf(
  scope: BirthScope,
  metric: MetricDefinition,
  properties: Record<string, string | number | boolean>,
): PropertyAffordance {
  const schema: PropertyAffordance = { title: metric.name, ...schemaOf(metric.datatype) };
  if (typeof properties.engUnit === 'string' && properties.engUnit !== '') schema.unit = properties.engUnit;
  const numeric = schema.type === 'integer' || schema.type === 'number';
  const low = properties.engLow;
  const high = properties.engHigh;
  if (numeric && typeof low === 'number' && typeof high === 'number' && Number.isFinite(low) && Number.isFinite(high) && low <= high) {
    schema.minimum = low;
    schema.maximum = high;
  }
  if (properties.readOnly === true) schema.readOnly = true;
  return {
    ...schema,
    observable: true,
    forms: [formOf(scope, metric, ['readproperty', 'writeproperty', 'observeproperty'])],
  } as PropertyAffordance;
}

function titleOf(scope: BirthScope): string {
  return scope.device !== undefined
    ? `Sparkplug B device ${scope.group}/${scope.edgeNode}/${scope.device}`
    : `Sparkplug B edge node ${scope.group}/${scope.edgeNode}`;
}

/**
 * Reads a birth certificate. Metrics that cannot be defined (no name, no datatype, an alias
 * used twice) are left out and described in `problems`, for the device's error list.
 */
export function readBirth(scope: BirthScope, payload: SparkplugPayload): { certificate: BirthCertificate; problems: string[] } {
  const problems: string[] = [];
  const byName = new Map<string, MetricDefinition>();
  const byAlias = new Map<number, MetricDefinition>();
  const propertiesByName = new Map<string, Record<string, string | number | boolean>>();
  for (const metric of payload.metrics) {
    if (metric.name === undefined || metric.name === '') {
      problems.push(`a birth metric has no name${metric.alias !== undefined ? ` (alias ${metric.alias})` : ''}: left out`);
      continue;
    }
    if (metric.datatype === undefined) {
      problems.push(`birth metric "${metric.name}" has no datatype: left out`);
      continue;
    }
    if (byName.has(metric.name)) {
      problems.push(`birth metric "${metric.name}" appears twice: the first is kept`);
      continue;
    }
    const definition: MetricDefinition = { name: metric.name, datatype: metric.datatype };
    if (metric.alias !== undefined) {
      const holder = byAlias.get(metric.alias);
      if (holder) {
        problems.push(
          `birth metrics "${holder.name}" and "${metric.name}" share alias ${metric.alias}: "${metric.name}" is known by name only`,
        );
      } else {
        definition.alias = metric.alias;
        byAlias.set(metric.alias, definition);
      }
    }
    byName.set(metric.name, definition);
    propertiesByName.set(metric.name, metric.properties);
  }

  const taken = new Set<string>();
  const byAffordance = new Map<string, MetricDefinition>();
  const properties: Record<string, PropertyAffordance> = {};
  const actions: Record<string, Record<string, unknown>> = {};
  const sorted = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const metric of sorted) {
    if (metric.name === BD_SEQ_METRIC || !isScalarDatatype(metric.datatype)) continue;
    const name = affordanceName(metric.name, taken);
    if (isControl(metric)) {
      metric.affordance = { kind: 'action', name };
      actions[name] = { title: metric.name, forms: [formOf(scope, metric, ['invokeaction'])] };
    } else {
      metric.affordance = { kind: 'property', name };
      properties[name] = propertyOf(scope, metric, propertiesByName.get(metric.name) ?? {});
    }
    byAffordance.set(name, metric);
  }
  const model: ThingModel = {
    '@context': 'https://www.w3.org/2022/wot/td/v1.1',
    '@type': 'tm:ThingModel',
    title: titleOf(scope),
    description: 'Derived by Thingloop from the Sparkplug B birth certificate: a new version when the metric set changes.',
    properties,
    ...(Object.keys(actions).length > 0 ? { actions } : {}),
  };
  return {
    certificate: { scope, metrics: sorted, byName, byAlias, byAffordance, model, values: payload.metrics },
    problems,
  };
}

/** Finds a DATA metric's definition: by alias when it carries one, else by name. */
export function definitionOf(certificate: BirthCertificate, metric: SparkplugMetric): MetricDefinition | undefined {
  if (metric.alias !== undefined) return certificate.byAlias.get(metric.alias);
  return metric.name !== undefined ? certificate.byName.get(metric.name) : undefined;
}

/** A telemetry sample as ingest takes it: `{ts, ...values}`. */
export type TelemetrySampleBody = { ts: number } & Record<string, JsonValue>;

export interface ReadMetrics {
  /** One sample per timestamp, in order. */
  samples: TelemetrySampleBody[];
  /** Property values read, by property name (the last one when a metric repeats). */
  values: Map<string, JsonValue>;
  problems: { reason: 'unknown_alias' | 'unknown_metric' | 'invalid_value'; message: string }[];
}

/**
 * The property values of a birth or DATA message, grouped by timestamp (a metric's own, else
 * the payload's, else `now`). Unknown aliases and names and unreadable values are problems;
 * metrics that map to no property (bdSeq, controls, DataSets) are skipped.
 */
export function readMetrics(certificate: BirthCertificate, payload: SparkplugPayload, now: number): ReadMetrics {
  const byTs = new Map<number, TelemetrySampleBody>();
  const values = new Map<string, JsonValue>();
  const problems: ReadMetrics['problems'] = [];
  for (const metric of payload.metrics) {
    const definition = definitionOf(certificate, metric);
    if (!definition) {
      problems.push(
        metric.alias !== undefined
          ? { reason: 'unknown_alias', message: `alias ${metric.alias} is not in the birth certificate: metric dropped` }
          : { reason: 'unknown_metric', message: `metric "${metric.name ?? '(no name)'}" is not in the birth certificate: dropped` },
      );
      continue;
    }
    if (definition.affordance?.kind !== 'property') continue;
    if (metric.datatype !== undefined && metric.datatype !== definition.datatype) {
      problems.push({
        reason: 'invalid_value',
        message: `metric "${definition.name}" arrived as ${datatypeName(metric.datatype)}, born ${datatypeName(definition.datatype)}: dropped`,
      });
      continue;
    }
    const read = metricValue(metric, definition.datatype);
    if ('problem' in read) {
      problems.push({ reason: 'invalid_value', message: `metric "${definition.name}": ${read.problem}` });
      continue;
    }
    // A null is a metric without a current value (spec: is_null), not a reading.
    if (read.value === null) continue;
    const ts = metric.timestamp ?? payload.timestamp ?? now;
    let sample = byTs.get(ts);
    if (!sample) {
      sample = { ts };
      byTs.set(ts, sample);
    }
    sample[definition.affordance.name] = read.value;
    values.set(definition.affordance.name, read.value);
  }
  const samples = [...byTs.values()].sort((a, b) => a.ts - b.ts);
  return { samples, values, problems };
}

const INTEGER_RANGES: Partial<Record<number, [number, number]>> = {
  [SparkplugDataType.Int8]: [-128, 127],
  [SparkplugDataType.Int16]: [-32768, 32767],
  [SparkplugDataType.Int32]: [-2147483648, 2147483647],
  [SparkplugDataType.UInt8]: [0, 255],
  [SparkplugDataType.UInt16]: [0, 65535],
  [SparkplugDataType.UInt32]: [0, 4294967295],
  [SparkplugDataType.Int64]: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  [SparkplugDataType.UInt64]: [0, Number.MAX_SAFE_INTEGER],
  [SparkplugDataType.DateTime]: [0, Number.MAX_SAFE_INTEGER],
};

/** A desired value or action input as a metric write in the birth's datatype, or why it cannot be one. */
export function writeOf(definition: MetricDefinition, value: JsonValue): MetricWrite | { problem: string } {
  const { datatype, name } = definition;
  const write = (converted: string | number | boolean): MetricWrite => ({
    name,
    ...(definition.alias !== undefined ? { alias: definition.alias } : {}),
    datatype,
    value: converted,
  });
  const range = INTEGER_RANGES[datatype];
  if (range) {
    if (typeof value !== 'number' || !Number.isInteger(value))
      return { problem: `metric "${name}" is ${datatypeName(datatype)}: an integer is needed` };
    if (value < range[0] || value > range[1])
      return { problem: `metric "${name}" is ${datatypeName(datatype)}: ${value} is out of its range` };
    return write(value);
  }
  if (datatype === SparkplugDataType.Float || datatype === SparkplugDataType.Double) {
    return typeof value === 'number' && Number.isFinite(value)
      ? write(value)
      : { problem: `metric "${name}" is ${datatypeName(datatype)}: a number is needed` };
  }
  if (datatype === SparkplugDataType.Boolean) {
    return typeof value === 'boolean' ? write(value) : { problem: `metric "${name}" is Boolean: true or false is needed` };
  }
  if (datatype === SparkplugDataType.String || datatype === SparkplugDataType.Text || datatype === SparkplugDataType.UUID) {
    return typeof value === 'string' ? write(value) : { problem: `metric "${name}" is ${datatypeName(datatype)}: a string is needed` };
  }
  return { problem: `metric "${name}" is ${datatypeName(datatype)}: it cannot be written` };
}
