import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import type { DataSchema, PropertyAffordance, ThingModel, ThingModelVersion } from './thing-model.js';

/** Why a single value was refused; machine-readable, published to `things/{id}/errors`. */
export type ValueRejectionReason =
  | 'unknown_property'
  | 'wrong_type'
  | 'out_of_range'
  | 'not_in_enum'
  | 'invalid_value'
  | 'read_only'
  | 'bad_timestamp';

export interface ValueProblem {
  reason: ValueRejectionReason;
  message: string;
}

export type ValueCheck = (value: unknown) => ValueProblem | null;

export interface CompiledProperty {
  name: string;
  schema: PropertyAffordance;
  numeric: boolean;
  /** A desired value may be written (not readOnly). */
  writable: boolean;
  check: ValueCheck;
}

export interface CompiledAction {
  name: string;
  checkInput: ValueCheck;
  checkOutput: ValueCheck;
}

/** A model version with its validators built once, reused for every message. */
export interface CompiledThingModel {
  id: string;
  version: number;
  document: ThingModel;
  properties: ReadonlyMap<string, CompiledProperty>;
  actions: ReadonlyMap<string, CompiledAction>;
  events: ReadonlyMap<string, ValueCheck>;
}

// `unit`, `observable` and the other WoT annotations are not JSON Schema keywords;
// non-strict mode lets ajv ignore them instead of refusing to compile.
const valueAjv = new Ajv({ allErrors: false, strict: false, coerceTypes: false });
addFormats.default(valueAjv);

const REASON_BY_KEYWORD: Record<string, ValueRejectionReason> = {
  type: 'wrong_type',
  minimum: 'out_of_range',
  maximum: 'out_of_range',
  exclusiveMinimum: 'out_of_range',
  exclusiveMaximum: 'out_of_range',
  enum: 'not_in_enum',
  const: 'not_in_enum',
};

function describe(error: ErrorObject): string {
  const where = error.instancePath ? `${error.instancePath} ` : '';
  if (error.keyword === 'enum') {
    return `${where}must be one of ${JSON.stringify((error.params as { allowedValues: unknown[] }).allowedValues)}`;
  }
  return `${where}${error.message ?? 'is invalid'}`;
}

const ACCEPT_ANYTHING: ValueCheck = () => null;

/** The JSON pointer of the first NaN or ±Infinity in a value ('' for the value itself), or undefined. */
function nonFinitePath(value: unknown, path: string): string | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : path;
  if (typeof value !== 'object' || value === null) return undefined;
  for (const [key, child] of Object.entries(value)) {
    const found = nonFinitePath(child, `${path}/${key}`);
    if (found !== undefined) return found;
  }
  return undefined;
}

function compileCheck(schema: DataSchema | undefined): ValueCheck {
  if (!schema) return ACCEPT_ANYTHING;
  const validate: ValidateFunction = valueAjv.compile(schema);
  return (value) => {
    // JSON has no NaN/Infinity, but the HTTP path and SDKs hand us JS numbers (also inside
    // objects and arrays, where JSON.stringify would silently turn them into null).
    const where = nonFinitePath(value, '');
    if (where !== undefined) {
      return { reason: 'wrong_type', message: `${where ? `${where} ` : ''}must be a finite number` };
    }
    if (validate(value)) return null;
    const error = validate.errors?.[0];
    if (!error) return { reason: 'invalid_value', message: 'is invalid' };
    return { reason: REASON_BY_KEYWORD[error.keyword] ?? 'invalid_value', message: describe(error) };
  };
}

/** Builds the validators of one model version. The document must already be valid. */
export function compileThingModel(version: ThingModelVersion): CompiledThingModel {
  const { document } = version;
  const properties = new Map<string, CompiledProperty>();
  for (const [name, schema] of Object.entries(document.properties ?? {})) {
    properties.set(name, {
      name,
      schema,
      numeric: schema.type === 'number' || schema.type === 'integer',
      writable: schema.readOnly !== true,
      check: compileCheck(schema),
    });
  }
  const actions = new Map<string, CompiledAction>();
  for (const [name, action] of Object.entries(document.actions ?? {})) {
    actions.set(name, { name, checkInput: compileCheck(action.input), checkOutput: compileCheck(action.output) });
  }
  const events = new Map<string, ValueCheck>();
  for (const [name, event] of Object.entries(document.events ?? {})) {
    events.set(name, compileCheck(event.data));
  }
  return { id: version.id, version: version.version, document, properties, actions, events };
}
