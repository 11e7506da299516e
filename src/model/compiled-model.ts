import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import type { DataSchema, PropertyAffordance, ThingModel, ThingModelVersion } from './thing-model.js';
import { findUnsafeInteger, findUnstorable } from './values.js';

/** Why a single value was refused; machine-readable, published to `things/{id}/errors`. */
export type ValueRejectionReason =
  | 'unknown_property'
  | 'wrong_type'
  | 'out_of_range'
  | 'not_in_enum'
  | 'invalid_value'
  | 'read_only'
  | 'bad_timestamp'
  /** A string holding U+0000 or an unpaired UTF-16 surrogate, which storage cannot keep exactly. */
  | 'bad_string';

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

/**
 * What no schema can allow, because it could not be stored exactly: NaN and ±Infinity (JSON has
 * none, but the HTTP path and SDKs hand us JS numbers, also inside objects and arrays) and
 * strings `isStorableString` refuses. It applies to values without a schema too.
 */
function storableProblem(value: unknown): ValueProblem | null {
  const found = findUnstorable(value);
  return found ? { reason: found.reason, message: found.message } : null;
}

function compileCheck(schema: DataSchema | undefined): ValueCheck {
  if (!schema) return storableProblem;
  const validate: ValidateFunction = valueAjv.compile(schema);
  return (value) => {
    const unstorable = storableProblem(value);
    if (unstorable) return unstorable;
    if (!validate(value)) {
      const error = validate.errors?.[0];
      if (!error) return { reason: 'invalid_value', message: 'is invalid' };
      return { reason: REASON_BY_KEYWORD[error.keyword] ?? 'invalid_value', message: describe(error) };
    }
    // ajv's integer is any whole double; beyond 2^53 a JSON number may already have lost digits.
    const unsafe = findUnsafeInteger(value, schema);
    if (unsafe === undefined) return null;
    return {
      reason: 'out_of_range',
      message: `${unsafe ? `${unsafe} ` : ''}must be a safe integer, from -(2^53 - 1) to 2^53 - 1: larger integers lose digits as JSON numbers`,
    };
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
