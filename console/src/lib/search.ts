/**
 * Device ids sort by byte order and use only [A-Za-z0-9._:-], so every id starting with `prefix`
 * comes after this string and nothing else lies between: `GET /devices?after=…` then pages
 * through exactly the ids with that prefix (the list stops at the first id without it).
 */
export function afterForPrefix(prefix: string): string | undefined {
  if (prefix === '') return undefined;
  const last = prefix.charCodeAt(prefix.length - 1);
  return `${prefix.slice(0, -1)}${String.fromCharCode(last - 1)}~`;
}

export function matchesPrefix(id: string, prefix: string): boolean {
  return prefix === '' || id.startsWith(prefix);
}

/** Runs `work` over `items` with at most `limit` in flight; results keep the items' order. */
export async function mapLimit<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
