import type { ErrorKind } from '../../errors/index.js';
import { DEVICE_ID_PATTERN } from '../../registry/index.js';

/**
 * The device token as a CoAP option. 65003 lies in the experimental range (65000–65535, RFC 7252
 * §12.2) and is odd and has bit 1 set: critical (a server that does not know it must refuse the
 * request rather than ignore it) and unsafe to forward (a proxy that does not know it must not
 * pass a secret on).
 */
export const TOKEN_OPTION = 65003;

/** The query parameter for devices whose stack cannot set options; weaker: URIs end up in logs. */
export const TOKEN_QUERY = 't';

/** What a device can ask for under `things/{id}/`. */
export type CoapResource =
  | { kind: 'telemetry' }
  | { kind: 'event'; name: string }
  | { kind: 'twin-reported' }
  | { kind: 'twin-desired' }
  | { kind: 'actions' }
  | { kind: 'action-result'; action: string }
  | { kind: 'errors' };

export type CoapMethodName = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'FETCH' | 'PATCH' | 'iPATCH';

export interface CoapTarget {
  deviceId: string;
  resource: CoapResource;
}

export interface RouteProblem {
  code: '4.04' | '4.05';
  reason: 'not_found' | 'method_not_allowed';
  message: string;
}

/** Event and action names appear in paths: the same characters as device ids. */
const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._:-]{0,127}$/;

const METHOD_OF: Record<CoapResource['kind'], CoapMethodName> = {
  telemetry: 'POST',
  event: 'POST',
  'twin-reported': 'POST',
  'twin-desired': 'GET',
  actions: 'GET',
  'action-result': 'POST',
  errors: 'GET',
};

function resourceOf(rest: string[]): CoapResource | undefined {
  const [first, second, third, ...more] = rest;
  if (more.length > 0) return undefined;
  if (first === 'telemetry' && second === undefined) return { kind: 'telemetry' };
  if (first === 'errors' && second === undefined) return { kind: 'errors' };
  if (first === 'events' && second !== undefined && NAME_PATTERN.test(second) && third === undefined)
    return { kind: 'event', name: second };
  if (first === 'twin' && third === undefined) {
    if (second === 'reported') return { kind: 'twin-reported' };
    if (second === 'desired') return { kind: 'twin-desired' };
    return undefined;
  }
  if (first === 'actions') {
    if (second === undefined) return { kind: 'actions' };
    if (NAME_PATTERN.test(second) && third === 'result') return { kind: 'action-result', action: second };
  }
  return undefined;
}

/** Pure: which device resource a request's path (its Uri-Path segments) and method address. */
export function routeOf(method: string | null | undefined, segments: string[]): CoapTarget | RouteProblem {
  const [root, deviceId, ...rest] = segments;
  const resource = root === 'things' && deviceId !== undefined && DEVICE_ID_PATTERN.test(deviceId) ? resourceOf(rest) : undefined;
  if (!resource || deviceId === undefined) {
    return {
      code: '4.04',
      reason: 'not_found',
      message: `no resource at /${segments.join('/')}: devices use things/{id}/telemetry, events/{name}, twin/reported, twin/desired, actions, actions/{name}/result, errors`,
    };
  }
  const allowed = METHOD_OF[resource.kind];
  if (method !== allowed) {
    return { code: '4.05', reason: 'method_not_allowed', message: `/${segments.join('/')} takes ${allowed}, not ${method ?? 'this code'}` };
  }
  return { deviceId, resource };
}

/** An option value as the library hands it over (raw, or converted for the options it knows). */
export type OptionContent = Buffer | string | number | null | undefined;

export interface RawOption {
  name: string | number;
  value: OptionContent;
}

function text(value: OptionContent): string {
  if (value === null || value === undefined) return '';
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
}

/** The Uri-Path segments of a request, in order. */
export function pathSegments(options: readonly RawOption[]): string[] {
  return options.filter((option) => option.name === 'Uri-Path').map((option) => text(option.value));
}

/** The Uri-Query parameters of a request (`name=value` each, as RFC 7252 §6.5 splits them). */
export function queryParameters(options: readonly RawOption[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const option of options) {
    if (option.name !== 'Uri-Query') continue;
    const pair = text(option.value);
    const at = pair.indexOf('=');
    const name = at < 0 ? pair : pair.slice(0, at);
    if (!out.has(name)) out.set(name, at < 0 ? '' : pair.slice(at + 1));
  }
  return out;
}

export interface PresentedToken {
  token: string;
  /** Where it came from: a token in the URI is weaker (it ends up in proxies' and clients' logs). */
  via: 'option' | 'query';
}

/** The device token: option 65003 first, then the `t` query parameter. */
export function presentedToken(options: readonly RawOption[]): PresentedToken | undefined {
  const option = options.find((candidate) => String(candidate.name) === String(TOKEN_OPTION));
  if (option) {
    const token = text(option.value);
    if (token !== '') return { token, via: 'option' };
  }
  const query = queryParameters(options).get(TOKEN_QUERY);
  return query ? { token: query, via: 'query' } : undefined;
}

/** An RFC 7959 block option (Block1/Block2): block number, more flag, size. */
export interface BlockOption {
  num: number;
  more: boolean;
  size: number;
}

/** Pure: reads a Block1/Block2 value (0–3 bytes: NUM, M, SZX). SZX 7 is reserved: undefined. */
export function blockOf(value: Buffer): BlockOption | undefined {
  if (value.length > 3) return undefined;
  let raw = 0;
  for (const byte of value) raw = raw * 256 + byte;
  const szx = raw & 0x7;
  if (szx === 7) return undefined;
  return { num: Math.floor(raw / 16), more: (raw & 0x8) !== 0, size: 2 ** (szx + 4) };
}

/** Content types that mean JSON here: none given, or application/json (Content-Format 50). */
export function isJsonContent(contentType: string | undefined): boolean {
  return contentType === undefined || contentType === 'application/json';
}

/** The Content-Format of a request as a media type (the library names the registered ones). */
export function contentTypeOf(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number') return `coap-content-format/${value}`;
  return undefined;
}

/** CoAP response codes for the domain's error kinds (RFC 7252 §12.1.2, RFC 8516 for 4.29). */
export const CODE_OF_ERROR: Record<ErrorKind, string> = {
  invalid: '4.00',
  unauthorized: '4.01',
  forbidden: '4.03',
  not_found: '4.04',
  conflict: '4.09',
  too_large: '4.13',
  too_many_requests: '4.29',
  unavailable: '5.03',
};
