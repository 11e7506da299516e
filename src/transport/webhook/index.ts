/**
 * Outbound webhooks: alarm events POSTed as JSON, signed with HMAC-SHA256 so the receiver can
 * check they came from this node, retried with exponential backoff. The outcome of every
 * delivery is reported back to whoever records it (the alarm's notification list).
 */
import { createHmac } from 'node:crypto';

export interface WebhookOptions {
  url: string;
  secret: string;
  /** Attempts in all, including the first (default 5). */
  attempts?: number;
  /** First backoff delay; doubles each retry (default 1 s). */
  backoffMs?: number;
  timeoutMs?: number;
}

export interface DeliveryOutcome {
  status: 'delivered' | 'failed';
  attempts: number;
  error?: string;
}

export const SIGNATURE_HEADER = 'x-thingloop-signature';

/** `sha256=<hex>` of the exact body bytes, GitHub-style. */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function postSigned(options: WebhookOptions, payload: unknown): Promise<DeliveryOutcome> {
  const body = JSON.stringify(payload);
  const attempts = options.attempts ?? 5;
  let lastError = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const response = await fetch(options.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          [SIGNATURE_HEADER]: signBody(options.secret, body),
          'user-agent': 'thingloop-webhook/1',
        },
        body,
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
      if (response.ok) return { status: 'delivered', attempts: attempt };
      lastError = `HTTP ${response.status}`;
      // A 4xx other than 408/429 will not get better by retrying.
      if (response.status < 500 && response.status !== 408 && response.status !== 429)
        return { status: 'failed', attempts: attempt, error: lastError };
    } catch (error) {
      lastError = (error as Error).message;
    }
    if (attempt < attempts) await sleep((options.backoffMs ?? 1_000) * 2 ** (attempt - 1));
  }
  return { status: 'failed', attempts, error: lastError };
}
