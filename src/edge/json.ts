import type { JsonValue } from '../telemetry/index.js';

/** A record as it travels on the link: plain JSON (no undefined, no class instances). */
export const jsonRecord = <T>(value: T) => JSON.parse(JSON.stringify(value)) as Record<string, JsonValue>;
