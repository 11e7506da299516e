/**
 * Outbound webhooks: alarm events POSTed as JSON, signed with HMAC-SHA256 so the receiver can
 * check they came from this node, retried with exponential backoff. The outcome of every
 * delivery is reported back to whoever records it (the alarm's notification list).
 *
 * A webhook URL is a request this node makes on someone's behalf, so it must not become a way
 * into the node's own network (server-side request forgery): loopback, link-local (cloud
 * metadata at 169.254.169.254), private, unique-local, multicast and reserved addresses are
 * refused unless the platform admin allows their range. The check runs on the addresses the
 * host resolves to at delivery time, and the socket connects to exactly those addresses: a DNS
 * answer that changes between the check and the connection (rebinding) cannot slip through.
 * Redirects are not followed, or a permitted host could send the request anywhere.
 */
import { createHmac } from 'node:crypto';
import type { LookupAddress } from 'node:dns';
import { lookup } from 'node:dns/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

/** A network and its prefix length, as ipaddr.js parses a CIDR. */
export type AddressRange = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Counts refused deliveries (the node's refusal metrics implement it). */
export interface WebhookRefusals {
  refused(listener: 'webhook', reason: 'forbidden_target'): void;
}

/** Where a refused delivery is logged. */
export interface WebhookLog {
  warn(details: Record<string, unknown>, message: string): void;
}

export interface WebhookOptions {
  url: string;
  secret: string;
  /** Attempts in all, including the first (default 5). */
  attempts?: number;
  /** First backoff delay; doubles each retry (default 1 s). */
  backoffMs?: number;
  timeoutMs?: number;
  /** Ranges the platform admin allows although they are loopback, private or reserved (default none). */
  allow?: readonly AddressRange[];
  refusals?: WebhookRefusals;
  log?: WebhookLog;
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

/** "10.0.0.0/8", "fd00::/8" or one address ("127.0.0.1" is 127.0.0.1/32). */
export function parseAddressRange(text: string): AddressRange {
  const trimmed = text.trim();
  try {
    if (trimmed.includes('/')) return ipaddr.parseCIDR(trimmed);
    const address = ipaddr.parse(trimmed);
    return [address, address.kind() === 'ipv4' ? 32 : 128];
  } catch {
    throw new Error(`"${trimmed}" is not an address or a CIDR range like 10.0.0.0/8 or fd00::/8`);
  }
}

/** Every IPv6 unicast address that routes on the internet is in 2000::/3; the rest is reserved. */
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3');

function inRange(address: ipaddr.IPv4 | ipaddr.IPv6, [network, bits]: AddressRange): boolean {
  return address.kind() === network.kind() && address.match(network, bits);
}

/**
 * Why a webhook may not connect to `address` (the name of its range), or undefined when it may.
 * IPv4-mapped IPv6 addresses (::ffff:127.0.0.1) are judged as the IPv4 address they carry;
 * NAT64, 6to4 and Teredo addresses, which can also carry one, are reserved ranges.
 */
export function forbiddenRange(address: string, allow: readonly AddressRange[] = []): string | undefined {
  const parsed = ipaddr.process(address);
  if (allow.some((range) => inRange(parsed, range))) return undefined;
  const range = parsed.range();
  if (range !== 'unicast') return range;
  if (parsed.kind() === 'ipv6' && !inRange(parsed, GLOBAL_UNICAST_V6)) return 'reserved';
  return undefined;
}

/** The URL's host as lookup and isIP take it: an IPv6 literal without its brackets. */
function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

type Target = { addresses: LookupAddress[] } | { refused: { address: string; range: string } };

/** The addresses to connect to, every one of them checked; one forbidden address refuses them all. */
async function vetTarget(url: URL, allow: readonly AddressRange[]): Promise<Target> {
  const host = hostOf(url);
  const family = isIP(host);
  const addresses = family ? [{ address: host, family }] : await lookup(host, { all: true });
  for (const { address } of addresses) {
    const range = forbiddenRange(address, allow);
    if (range) return { refused: { address, range } };
  }
  return { addresses };
}

/** A lookup that answers with the vetted addresses only: the socket cannot reach any other. */
function pinnedLookup(addresses: LookupAddress[]): LookupFunction {
  return (hostname, options, callback) => {
    const usable = options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
    const [first] = usable;
    if (!first) {
      callback(Object.assign(new Error(`no IPv${options.family} address for ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
    } else if (options.all) {
      callback(null, usable);
    } else {
      callback(null, first.address, first.family);
    }
  };
}

/** One POST; resolves with the response status. The body of the answer is not needed. */
function post(url: URL, headers: Record<string, string>, body: string, lookup: LookupFunction, timeoutMs: number): Promise<number> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const request = send(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        lookup,
        // A fresh connection per delivery: a pooled socket would skip the address check.
        agent: false,
        signal: AbortSignal.timeout(timeoutMs),
      },
      (response: IncomingMessage) => {
        resolve(response.statusCode ?? 0);
        response.destroy();
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function postSigned(options: WebhookOptions, payload: unknown): Promise<DeliveryOutcome> {
  const body = JSON.stringify(payload);
  const attempts = options.attempts ?? 5;
  const url = new URL(options.url);
  const headers = {
    'content-type': 'application/json',
    [SIGNATURE_HEADER]: signBody(options.secret, body),
    'user-agent': 'thingloop-webhook/1',
  };
  let lastError = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const target = await vetTarget(url, options.allow ?? []);
      if ('refused' in target) {
        // Not retried: the same name would be judged the same, and retrying a rebinding name
        // only gives it more chances.
        const { address, range } = target.refused;
        options.refusals?.refused('webhook', 'forbidden_target');
        options.log?.warn({ host: url.host, address, range }, 'webhook refused: its target is not a public address');
        return { status: 'failed', attempts: attempt, error: `forbidden target: ${url.host} is ${address} (${range})` };
      }
      const status = await post(url, headers, body, pinnedLookup(target.addresses), options.timeoutMs ?? 10_000);
      if (status >= 200 && status < 300) return { status: 'delivered', attempts: attempt };
      lastError = status >= 300 && status < 400 ? `HTTP ${status} (redirects are not followed)` : `HTTP ${status}`;
      // A redirect, or a 4xx other than 408/429, will not get better by retrying.
      if (status < 500 && status !== 408 && status !== 429) return { status: 'failed', attempts: attempt, error: lastError };
    } catch (error) {
      lastError = (error as Error).message;
    }
    if (attempt < attempts) await sleep((options.backoffMs ?? 1_000) * 2 ** (attempt - 1));
  }
  return { status: 'failed', attempts, error: lastError };
}
