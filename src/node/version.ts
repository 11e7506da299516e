import { readFileSync } from 'node:fs';

/** The package version, read once from package.json (two levels up from src/node or dist/node). */
export const VERSION: string = (() => {
  try {
    const url = new URL('../../package.json', import.meta.url);
    return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();
