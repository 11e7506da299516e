import type { DataSchema } from '../api/types';

/** One control of a form generated from a data schema. */
export interface Field {
  name: string;
  label: string;
  kind: 'number' | 'integer' | 'boolean' | 'enum' | 'string' | 'json';
  required: boolean;
  description?: string;
  unit?: string;
  minimum?: number;
  maximum?: number;
  options?: string[];
}

/**
 * The fields of an action input (or any data schema): an object becomes one field per property,
 * a scalar becomes a single field named "value"; anything nested falls back to a JSON text field.
 * No schema means no input at all (an empty list).
 */
export function fieldsOf(schema: DataSchema | undefined): Field[] {
  if (!schema) return [];
  if (schema.type === 'object' || schema.properties) {
    const required = new Set(schema.required ?? []);
    return Object.entries(schema.properties ?? {}).map(([name, property]) => fieldOf(name, property, required.has(name)));
  }
  return [fieldOf('value', schema, true)];
}

function fieldOf(name: string, schema: DataSchema, required: boolean): Field {
  const base = {
    name,
    label: schema.title ?? name,
    required,
    ...(schema.description ? { description: schema.description } : {}),
    ...(schema.unit ? { unit: schema.unit } : {}),
  };
  if (Array.isArray(schema.enum)) return { ...base, kind: 'enum', options: schema.enum.map((v) => String(v)) };
  switch (schema.type) {
    case 'number':
    case 'integer':
      return {
        ...base,
        kind: schema.type,
        ...(schema.minimum !== undefined ? { minimum: schema.minimum } : {}),
        ...(schema.maximum !== undefined ? { maximum: schema.maximum } : {}),
      };
    case 'boolean':
      return { ...base, kind: 'boolean' };
    case 'string':
      return { ...base, kind: 'string' };
    default:
      return { ...base, kind: 'json' };
  }
}

export type FormValues = Record<string, string | boolean>;

export function initialValues(fields: Field[]): FormValues {
  return Object.fromEntries(fields.map((field) => [field.name, field.kind === 'boolean' ? false : '']));
}

export type BuildResult = { ok: true; value: unknown } | { ok: false; errors: Record<string, string> };

/**
 * Turns form text into the input value: numbers parsed and range-checked, empty optional fields
 * left out, JSON fields parsed. Errors are per field, in words a person can act on.
 */
export function buildInput(schema: DataSchema | undefined, fields: Field[], values: FormValues): BuildResult {
  if (!schema) return { ok: true, value: undefined };
  const errors: Record<string, string> = {};
  const out: Record<string, unknown> = {};
  for (const field of fields) {
    const raw = values[field.name];
    if (field.kind === 'boolean') {
      out[field.name] = raw === true;
      continue;
    }
    const text = typeof raw === 'string' ? raw.trim() : '';
    if (text === '') {
      if (field.required) errors[field.name] = `${field.label} is required`;
      continue;
    }
    const parsed = parseField(field, text);
    if ('error' in parsed) errors[field.name] = parsed.error;
    else out[field.name] = parsed.value;
  }
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  const scalar = !(schema.type === 'object' || schema.properties);
  return { ok: true, value: scalar ? out.value : out };
}

export function parseField(field: Field, text: string): { value: unknown } | { error: string } {
  switch (field.kind) {
    case 'number':
    case 'integer': {
      const value = Number(text);
      if (!Number.isFinite(value)) return { error: `${field.label} must be a number` };
      if (field.kind === 'integer' && !Number.isInteger(value)) return { error: `${field.label} must be a whole number` };
      if (field.minimum !== undefined && value < field.minimum) return { error: `${field.label} must be at least ${field.minimum}` };
      if (field.maximum !== undefined && value > field.maximum) return { error: `${field.label} must be at most ${field.maximum}` };
      return { value };
    }
    case 'enum':
      if (field.options && !field.options.includes(text)) return { error: `${field.label} must be one of ${field.options.join(', ')}` };
      return { value: text };
    case 'json':
      try {
        return { value: JSON.parse(text) };
      } catch {
        return { error: `${field.label} must be valid JSON` };
      }
    default:
      return { value: text };
  }
}

/** Properties of a model a person may set as desired state: not readOnly. */
export function writableProperties(properties: Record<string, DataSchema> | undefined): [string, DataSchema][] {
  return Object.entries(properties ?? {}).filter(([, schema]) => !schema.readOnly);
}

/** Properties that chart as numbers. */
export function numericProperties(properties: Record<string, DataSchema> | undefined): [string, DataSchema][] {
  return Object.entries(properties ?? {}).filter(([, schema]) => schema.type === 'number' || schema.type === 'integer');
}
