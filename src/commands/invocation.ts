import type { JsonValue } from '../telemetry/index.js';

/** queued → delivered → succeeded | failed | expired (a queued invocation may also expire). */
export type InvocationStatus = 'queued' | 'delivered' | 'succeeded' | 'failed' | 'expired';

export interface Invocation {
  id: string;
  deviceId: string;
  action: string;
  input: JsonValue | null;
  status: InvocationStatus;
  output?: JsonValue;
  /** The device's error message (failed) or the platform's reason (expired, invalid output). */
  error?: string;
  idempotencyKey?: string;
  /** Who asked: `api`, `agent:<id>`… */
  actor: string;
  createdAt: number;
  deliveredAt?: number;
  completedAt?: number;
  /** While queued: when it stops waiting for the device; once delivered: the result deadline. */
  expiresAt: number;
  /** How long the device has to answer once delivered. */
  timeoutMs: number;
}

/** The wire format of a request on `things/{id}/actions/{name}`. */
export interface ActionRequest {
  id: string;
  input: JsonValue | null;
}

/** The wire format of an answer on `things/{id}/actions/{name}/result`. */
export interface ActionResult {
  id: string;
  output?: JsonValue;
  error?: string;
}

export const isFinished = (status: InvocationStatus) => status === 'succeeded' || status === 'failed' || status === 'expired';

/** Reads an answer payload; undefined when it is not one (the caller reports why). */
export function parseActionResult(payload: unknown): ActionResult | string {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
    return 'a result must be a JSON object {"id", "output"|"error"}';
  const record = payload as Record<string, JsonValue>;
  if (typeof record.id !== 'string' || record.id === '') return 'a result needs the invocation "id" it answers';
  if (record.error !== undefined) {
    return { id: record.id, error: typeof record.error === 'string' ? record.error : JSON.stringify(record.error) };
  }
  return { id: record.id, output: record.output ?? null };
}
