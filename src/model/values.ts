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

/**
 * Deepest nesting of arrays and objects a value may have. Deeper values overflow the stack of
 * recursive code downstream (schema validation, JSON.stringify when stored or echoed), which
 * would turn one hostile message into an exception instead of a refusal.
 */
export const MAX_VALUE_DEPTH = 64;

/** Why a value cannot be kept exactly, and where in it (a JSON pointer, '' for the value itself). */
export interface UnstorableValue {
  path: string;
  reason: 'wrong_type' | 'bad_string' | 'invalid_value';
  message: string;
}

const at = (path: string) => (path ? `${path} ` : '');
const BAD_STRING = 'U+0000 or an unpaired UTF-16 surrogate';

function unstorableLeaf(value: unknown, path: string): UnstorableValue | undefined {
  if (typeof value === 'number' && !Number.isFinite(value)) {
    return { path, reason: 'wrong_type', message: `${at(path)}must be a finite number` };
  }
  if (typeof value === 'string' && !isStorableString(value))
    return { path, reason: 'bad_string', message: `${at(path)}must not contain ${BAD_STRING}` };
  return undefined;
}

/**
 * The first part of `value` that cannot be stored exactly: a NaN or ±Infinity (JSON has no
 * spelling for them, and JSON.stringify would silently write null), a string, value or object
 * key, that `isStorableString` refuses, or nesting deeper than MAX_VALUE_DEPTH. Undefined when
 * the whole value can be kept. Walks without recursion: the input may be the hostile one.
 */
export function findUnstorable(value: unknown): UnstorableValue | undefined {
  // Most values are a number or a short string: no walk for them.
  if (typeof value !== 'object' || value === null) return unstorableLeaf(value, '');
  const pending: { value: unknown; path: string; depth: number; key?: string }[] = [{ value, path: '', depth: 0 }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { path, depth, key } = next;
    if (key !== undefined && !isStorableString(key)) {
      // The key itself stays out of the message: it is the text that cannot be written out.
      const parent = path.slice(0, path.length - key.length - 1);
      return { path: parent, reason: 'bad_string', message: `${at(parent)}has a key with ${BAD_STRING}` };
    }
    const current = next.value;
    if (typeof current !== 'object' || current === null) {
      const found = unstorableLeaf(current, path);
      if (found) return found;
      continue;
    }
    if (depth >= MAX_VALUE_DEPTH) {
      return { path, reason: 'invalid_value', message: `${at(path)}nests deeper than ${MAX_VALUE_DEPTH} levels` };
    }
    const children = Object.entries(current);
    // Pushed last to first, so the first problem in document order is the one reported.
    for (let index = children.length - 1; index >= 0; index--) {
      const [childKey, child] = children[index] as [string, unknown];
      pending.push({ value: child, path: `${path}/${childKey}`, depth: depth + 1, key: childKey });
    }
  }
  return undefined;
}

/** True when `value` nests no deeper than MAX_VALUE_DEPTH: safe to serialize, e.g. to echo it back. */
export function isShallowValue(value: unknown): boolean {
  const pending: { value: unknown; depth: number }[] = [{ value, depth: 0 }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (typeof next.value !== 'object' || next.value === null) continue;
    if (next.depth >= MAX_VALUE_DEPTH) return false;
    for (const child of Object.values(next.value)) pending.push({ value: child, depth: next.depth + 1 });
  }
  return true;
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
