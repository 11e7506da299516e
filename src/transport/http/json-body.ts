/** Limits every JSON request body is held to before a route sees it. */
import { isStorableString } from '../../model/index.js';

/** Deeper bodies are refused: a thing model 20,000 levels deep overflowed the stack downstream. */
export const MAX_JSON_DEPTH = 64;

/**
 * What is wrong with a parsed body, or undefined. Walks without recursion, so the check itself
 * cannot overflow the stack on the input it guards against.
 */
export function jsonBodyProblem(value: unknown, maxDepth = MAX_JSON_DEPTH): string | undefined {
  const pending: { value: unknown; depth: number }[] = [{ value, depth: 0 }];
  while (pending.length > 0) {
    const next = pending.pop() as { value: unknown; depth: number };
    const current = next.value;
    if (typeof current === 'string') {
      if (!isStorableString(current)) return 'a string holds NUL or a lone UTF-16 surrogate, which cannot be stored exactly';
      continue;
    }
    if (current === null || typeof current !== 'object') continue;
    if (next.depth >= maxDepth) return `the body nests deeper than ${maxDepth} levels`;
    if (Array.isArray(current)) {
      for (const item of current) pending.push({ value: item, depth: next.depth + 1 });
      continue;
    }
    for (const [key, item] of Object.entries(current)) {
      if (!isStorableString(key)) return 'a key holds NUL or a lone UTF-16 surrogate, which cannot be stored exactly';
      pending.push({ value: item, depth: next.depth + 1 });
    }
  }
  return undefined;
}
