import { describe, expect, it } from 'vitest';
import type { DataSchema } from '../api/types';
import { buildInput, fieldsOf, initialValues, numericProperties, parseField, writableProperties } from './schemaForm';

const injectFault: DataSchema = {
  type: 'object',
  properties: {
    fault: { type: 'string', enum: ['bearing', 'cavitation'] },
    durationS: { type: 'number', minimum: 1, unit: 's' },
    count: { type: 'integer', maximum: 3 },
    force: { type: 'boolean' },
    extra: { type: 'object', properties: { a: { type: 'number' } } },
    note: { type: 'string', title: 'Note' },
  },
  required: ['fault'],
};

describe('schema → form fields', () => {
  it('makes one field per object property with kind, range, unit and required', () => {
    const fields = fieldsOf(injectFault);
    expect(fields.map((f) => [f.name, f.kind, f.required])).toEqual([
      ['fault', 'enum', true],
      ['durationS', 'number', false],
      ['count', 'integer', false],
      ['force', 'boolean', false],
      ['extra', 'json', false],
      ['note', 'string', false],
    ]);
    expect(fields[0]?.options).toEqual(['bearing', 'cavitation']);
    expect(fields[1]).toMatchObject({ minimum: 1, unit: 's' });
    expect(fields[5]?.label).toBe('Note');
  });

  it('has no fields without an input schema, and one "value" field for a scalar input', () => {
    expect(fieldsOf(undefined)).toEqual([]);
    expect(fieldsOf({ type: 'number', minimum: 0 })).toEqual([
      { name: 'value', label: 'value', kind: 'number', required: true, minimum: 0 },
    ]);
  });

  it('builds the input: numbers parsed, empty optionals left out, booleans always sent', () => {
    const fields = fieldsOf(injectFault);
    const values = { ...initialValues(fields), fault: 'bearing', durationS: ' 30 ', extra: '{"a":1}' };
    expect(buildInput(injectFault, fields, values)).toEqual({
      ok: true,
      value: { fault: 'bearing', durationS: 30, force: false, extra: { a: 1 } },
    });
  });

  it('reports every problem per field', () => {
    const fields = fieldsOf(injectFault);
    const result = buildInput(injectFault, fields, { ...initialValues(fields), durationS: '0', count: '1.5', extra: '{' });
    expect(result).toEqual({
      ok: false,
      errors: {
        fault: 'fault is required',
        durationS: 'durationS must be at least 1',
        count: 'count must be a whole number',
        extra: 'extra must be valid JSON',
      },
    });
  });

  it('sends no input when the action has none, and the bare value for a scalar schema', () => {
    expect(buildInput(undefined, [], {})).toEqual({ ok: true, value: undefined });
    const scalar: DataSchema = { type: 'integer' };
    expect(buildInput(scalar, fieldsOf(scalar), { value: '7' })).toEqual({ ok: true, value: 7 });
  });

  it('checks enum membership and maximum', () => {
    const [fault, , count] = fieldsOf(injectFault);
    expect(parseField(fault!, 'rust')).toEqual({ error: 'fault must be one of bearing, cavitation' });
    expect(parseField(count!, '4')).toEqual({ error: 'count must be at most 3' });
    expect(parseField(count!, 'x')).toEqual({ error: 'count must be a number' });
  });

  it('splits model properties into writable and numeric ones', () => {
    const properties: Record<string, DataSchema> = {
      speed: { type: 'number' },
      flow: { type: 'number', readOnly: true },
      starts: { type: 'integer', readOnly: true },
      running: { type: 'boolean', readOnly: true },
      mode: { type: 'string' },
    };
    expect(writableProperties(properties).map(([n]) => n)).toEqual(['speed', 'mode']);
    expect(numericProperties(properties).map(([n]) => n)).toEqual(['speed', 'flow', 'starts']);
    expect(writableProperties(undefined)).toEqual([]);
  });
});
