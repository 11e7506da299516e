import type { DataSchema } from './thing-model.js';

/**
 * Checks for values a device can send that the platform could not keep exactly. They apply on
 * every path a value enters by (telemetry, events, twin reports and desired writes, action
 * input and output), so a value reads back as it was sent or is refused with a reason.
 */

// Without the `u` flag a regular expression sees UTF-16 code units, which is what finds a
// surrogate that is not half of a pair.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * True when `text` survives storage unchanged: no U+0000 (SQLite's C string functions and
 * many consumers stop at it) and no lone UTF-16 surrogate (UTF-8 cannot encode one, so it
 * would come back as U+FFFD).
 */
export function isStorableString(text: string): boolean {
  return !text.includes('\u0000') && !LONE_SURROGATE.test(text);
}

/** Why a value cannot be kept exactly, and where in it (a JSON pointer, '' for the value itself). */
export interface UnstorableValue {
  path: string;
  reason: 'wrong_type' | 'bad_string';
  message: string;
}

const at = (path: string) => (path ? `${path} ` : '');

/**
 * The first part of `value` that cannot be stored exactly: a NaN or ±Infinity (JSON has no
 * spelling for them, and JSON.stringify would silently write null), or a string, value or
 * object key, that `isStorableString` refuses. Undefined when the whole value can be kept.
 */
export function findUnstorable(value: unknown, path = ''): UnstorableValue | undefined {
  if (typeof value === 'number') {
    return Number.isFinite(value) ? undefined : { path, reason: 'wrong_type', message: `${at(path)}must be a finite number` };
  }
  if (typeof value === 'string') {
    return isStorableString(value)
      ? undefined
      : { path, reason: 'bad_string', message: `${at(path)}must not contain U+0000 or an unpaired UTF-16 surrogate` };
  }
  if (typeof value !== 'object' || value === null) return undefined;
  for (const [key, child] of Object.entries(value)) {
    const childPath = `${path}/${key}`;
    if (!isStorableString(key)) {
      return { path: childPath, reason: 'bad_string', message: 'a key must not contain U+0000 or an unpaired UTF-16 surrogate' };
    }
    const found = findUnstorable(child, childPath);
    if (found) return found;
  }
  return undefined;
}

/**
 * The first place in `value` where its schema says `integer` but the number is beyond
 * ±(2^53 − 1): there JSON numbers no longer hold every integer, so the digits a device sent may
 * already be lost. `value` must already conform to `schema`.
 */
export function findUnsafeInteger(value: unknown, schema: DataSchema, path = ''): string | undefined {
  if (schema.type === 'integer') return typeof value === 'number' && !Number.isSafeInteger(value) ? path : undefined;
  if (Array.isArray(value)) {
    if (!schema.items) return undefined;
    for (let index = 0; index < value.length; index++) {
      const found = findUnsafeInteger(value[index], schema.items, `${path}/${index}`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (typeof value !== 'object' || value === null || !schema.properties) return undefined;
  const record = value as Record<string, unknown>;
  for (const [key, child] of Object.entries(schema.properties)) {
    if (!Object.hasOwn(record, key)) continue;
    const found = findUnsafeInteger(record[key], child, `${path}/${key}`);
    if (found !== undefined) return found;
  }
  return undefined;
}
