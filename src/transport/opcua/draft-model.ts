import type { ActionAffordance, DataSchema, PropertyAffordance, ThingModel } from '../../model/index.js';
import { AFFORDANCE_NAME_PATTERN, RESERVED_PROPERTY_NAMES } from '../../model/index.js';
import { jsonTypeOf } from './values.js';

/**
 * A draft thing model from what a browse of a server's address space found: a property per
 * readable variable, an action per method, each with its `opc.tcp` form and `{{endpoint}}`, so
 * the model serves every server with the same address space. Pure.
 */

export interface BrowsedVariable {
  nodeId: string;
  /** Browse names from below the start node down to the variable (`["Pump1", "Temperature"]`). */
  path: string[];
  builtIn: number;
  valueRank: number;
  writable: boolean;
  description?: string;
  /** EngineeringUnits: the UNECE common code (from unitId) and the display name. */
  unit?: { code?: string; text?: string };
  /** EURange. */
  range?: { low: number; high: number };
}

export interface BrowsedArgument {
  name: string;
  builtIn: number;
  valueRank: number;
  description?: string;
}

export interface BrowsedMethod {
  objectId: string;
  nodeId: string;
  path: string[];
  description?: string;
  inputs: BrowsedArgument[];
  outputs: BrowsedArgument[];
}

/** UNECE Rec. 20 codes as the units the house's models already use; others keep the server's display name. */
const UNITS_BY_CODE: Record<string, string> = {
  CEL: 'Cel',
  FAH: '[degF]',
  KEL: 'K',
  P1: 'percent',
  MQH: 'm3/h',
  MQS: 'm3/s',
  L2: 'l/min',
  BAR: 'bar',
  MBR: 'mbar',
  PAL: 'Pa',
  KPA: 'kPa',
  KWT: 'kW',
  WTT: 'W',
  VLT: 'V',
  AMP: 'A',
  HTZ: 'Hz',
  RPM: 'rpm',
  C16: 'mm/s',
  MTR: 'm',
  MMT: 'mm',
  SEC: 's',
  C26: 'ms',
  KWH: 'kW.h',
  LUX: 'lx',
};

/** EUInformation.unitId packs the UNECE code's ASCII letters into an Int32 (Part 8, 5.6.3). */
export function uneceCode(unitId: number): string | undefined {
  if (!Number.isInteger(unitId) || unitId <= 0) return undefined;
  const letters = [(unitId >> 16) & 0xff, (unitId >> 8) & 0xff, unitId & 0xff].filter((byte) => byte !== 0);
  const code = String.fromCharCode(...letters);
  return /^[A-Z0-9]{1,3}$/.test(code) ? code : undefined;
}

export function unitName(unit: BrowsedVariable['unit']): string | undefined {
  if (!unit) return undefined;
  const known = unit.code ? UNITS_BY_CODE[unit.code] : undefined;
  const text = unit.text?.trim();
  return known ?? (text ? text : unit.code);
}

/** A browse name as an affordance name: letters, digits, `_` and `-`, first letter lower case, at most 64. */
export function affordanceName(browseName: string): string {
  let name = browseName
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^A-Za-z0-9_-]+/g, '_')
    .replace(/^_+(?=[A-Za-z0-9])/, '');
  if (name === '' || !/^[A-Za-z_]/.test(name)) name = `_${name}`;
  if (/^[A-Z](?![A-Z])/.test(name)) name = name[0]?.toLowerCase() + name.slice(1);
  name = name.slice(0, 64);
  if (RESERVED_PROPERTY_NAMES.has(name) || name === '__proto__') name = `${name.slice(0, 62)}_x`;
  return name;
}

function suffixed(name: string, n: number): string {
  const suffix = `_${n}`;
  return `${name.slice(0, 64 - suffix.length)}${suffix}`;
}

/**
 * Names for paths: the leaf browse name where it is unique, else prefixed with the parents'
 * names until it is (`pump1_Temperature`), else numbered; always matching AFFORDANCE_NAME_PATTERN.
 */
export function uniqueNames(paths: string[][]): string[] {
  const names = paths.map((path) => affordanceName(path[path.length - 1] ?? 'value'));
  for (let depth = 2; ; depth++) {
    const counts = new Map<string, number>();
    for (const name of names) counts.set(name.toLowerCase(), (counts.get(name.toLowerCase()) ?? 0) + 1);
    const clashing = names.map((name) => (counts.get(name.toLowerCase()) ?? 0) > 1);
    if (!clashing.some(Boolean)) break;
    let changed = false;
    paths.forEach((path, index) => {
      if (!clashing[index] || path.length < depth) return;
      names[index] = affordanceName(path.slice(-depth).join('_'));
      changed = true;
    });
    if (!changed) break;
  }
  const used = new Set<string>();
  return names.map((name) => {
    let candidate = name;
    for (let n = 2; used.has(candidate.toLowerCase()); n++) candidate = suffixed(name, n);
    used.add(candidate.toLowerCase());
    if (!AFFORDANCE_NAME_PATTERN.test(candidate)) throw new Error(`internal: ${candidate} is not an affordance name`);
    return candidate;
  });
}

function schemaOf(builtIn: number, valueRank: number): DataSchema {
  const scalar = jsonTypeOf(builtIn, -1);
  return valueRank > 0 ? { type: 'array', items: { type: scalar } } : { type: scalar };
}

export interface DraftOptions {
  title: string;
  description?: string;
  samplingIntervalMs?: number;
}

type WithForms<T> = T & { forms: Record<string, unknown>[] };

export function draftThingModel(variables: BrowsedVariable[], methods: BrowsedMethod[], options: DraftOptions): ThingModel {
  const properties: Record<string, WithForms<PropertyAffordance>> = {};
  const propertyNames = uniqueNames(variables.map((variable) => variable.path));
  variables.forEach((variable, index) => {
    const schema = schemaOf(variable.builtIn, variable.valueRank);
    const numeric = schema.type === 'number' || schema.type === 'integer';
    const unit = unitName(variable.unit);
    const property: WithForms<PropertyAffordance> = {
      ...schema,
      title: variable.path.join('.'),
      ...(variable.description ? { description: variable.description } : {}),
      ...(unit ? { unit } : {}),
      ...(numeric && variable.range && variable.range.low <= variable.range.high
        ? { minimum: variable.range.low, maximum: variable.range.high }
        : {}),
      ...(variable.writable ? {} : { readOnly: true }),
      observable: true,
      forms: [
        {
          href: '{{endpoint}}',
          'opcua:nodeId': variable.nodeId,
          op: variable.writable ? ['readproperty', 'writeproperty', 'observeproperty'] : ['readproperty', 'observeproperty'],
        },
      ],
    };
    properties[propertyNames[index] as string] = property;
  });
  const actions: Record<string, WithForms<ActionAffordance>> = {};
  const actionNames = uniqueNames(methods.map((method) => method.path));
  methods.forEach((method, index) => {
    const argumentsSchema = (list: BrowsedArgument[]): DataSchema => ({
      type: 'object',
      properties: Object.fromEntries(
        list.map((argument) => [
          argument.name,
          { ...schemaOf(argument.builtIn, argument.valueRank), ...(argument.description ? { description: argument.description } : {}) },
        ]),
      ),
      required: list.map((argument) => argument.name),
    });
    actions[actionNames[index] as string] = {
      title: method.path.join('.'),
      ...(method.description ? { description: method.description } : {}),
      ...(method.inputs.length > 0 ? { input: argumentsSchema(method.inputs) } : {}),
      ...(method.outputs.length > 0 ? { output: argumentsSchema(method.outputs) } : {}),
      forms: [{ href: '{{endpoint}}', 'opcua:objectId': method.objectId, 'opcua:methodId': method.nodeId }],
    };
  });
  return {
    '@context': ['https://www.w3.org/2022/wot/td/v1.1', { opcua: 'http://www.w3.org/ns/td/opcua#' }],
    '@type': 'tm:ThingModel',
    title: options.title,
    ...(options.description ? { description: options.description } : {}),
    ...(options.samplingIntervalMs ? { 'opcua:samplingInterval': options.samplingIntervalMs } : {}),
    properties,
    ...(methods.length > 0 ? { actions } : {}),
  };
}
