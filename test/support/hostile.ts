/**
 * Hostile inputs for test/hostile.test.ts: fast-check arbitraries that build request bodies,
 * path segments, query strings, MQTT payloads and edge-link frames as raw text or bytes (never
 * through JSON.stringify, which cannot write 1e400, -0 or 2^53+1 the way an attacker can), and
 * clients that send them exactly as built: node:http without an agent, a raw MQTT socket.
 *
 * Large inputs are descriptors (`{ kind: 'deep', depth: 100000 }`) turned into bytes only when
 * sent, so a shrunk counterexample stays readable.
 */
import { connect, type Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import mqttPacket from 'mqtt-packet';
import { until } from './wait.js';

/** Runs per property: the default keeps CI fast; THINGLOOP_HOSTILE_RUNS asks for a longer hunt. */
export function runsPerProperty(fallback: number): number {
  const asked = Number(process.env.THINGLOOP_HOSTILE_RUNS);
  return Number.isInteger(asked) && asked > 0 ? asked : fallback;
}

/**
 * fast-check parameters for one property: its run count (see runsPerProperty), the error of a
 * failure in the report, and THINGLOOP_HOSTILE_SEED to replay a reported failure.
 */
export function propertyParameters(fallbackRuns: number): fc.Parameters<unknown> {
  const seed = Number(process.env.THINGLOOP_HOSTILE_SEED);
  return {
    numRuns: runsPerProperty(fallbackRuns),
    includeErrorInReport: true,
    ...(Number.isInteger(seed) ? { seed } : {}),
    ...(process.env.THINGLOOP_HOSTILE_VERBOSE ? { verbose: 2 } : {}),
  };
}

/** How many hostile inputs each ingress was sent, for the suite's closing line. */
export class InputTally {
  private readonly counts = new Map<string, number>();

  count(ingress: string, inputs = 1): void {
    this.counts.set(ingress, (this.counts.get(ingress) ?? 0) + inputs);
  }

  get total(): number {
    let sum = 0;
    for (const n of this.counts.values()) sum += n;
    return sum;
  }

  summary(): string {
    return [...this.counts].map(([ingress, n]) => `${ingress} ${n.toLocaleString('en-US')}`).join(', ');
  }
}

// ---------------------------------------------------------------------------------------------
// JSON as text

/** Numbers JSON.parse reads as Infinity, -0, an unsafe integer, a denormal, or beyond the range of dates. */
export const poisonNumber: fc.Arbitrary<string> = fc.constantFrom(
  '1e300',
  '-1e300',
  '1e400',
  '-1e400',
  '-0',
  '-0.0',
  '9007199254740993',
  '-9007199254740993',
  '123456789012345678901234567890',
  '1e-400',
  '4.9e-324',
  '1.7976931348623157e308',
  '8640000000000001',
  '-8640000000000001',
  '0.1',
  '-1',
);

/** String literals (JSON text) with NUL, lone surrogates, bidi overrides, a BOM, emoji, odd times. */
export const poisonString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '"\\u0000"',
    '"a\\u0000b"',
    '"\\ud800"',
    '"\\udfff"',
    '"x\\udc00y"',
    '"\\u202eevil\\u202c"',
    '"\\u200f\\u0627\\u200e"',
    '"\\ufeff"',
    '"😀🏳️‍🌈"',
    '""',
    '"+275760-09-14T00:00:00.001Z"',
    '"9999999-01-01"',
    '"2024-02-30T25:61:61Z"',
    '"NaN"',
    '"Infinity"',
    '"-1h"',
    '"__proto__"',
    `"${'x'.repeat(3000)}"`,
  ),
  // Arbitrary UTF-16, lone surrogates included; JSON.stringify escapes those since ES2019.
  fc.string({ unit: 'binary', maxLength: 40 }).map((text) => JSON.stringify(text)),
);

/** Keys every body tries besides the route's own: prototype pollution, timestamps, the twin's sections. */
const COMMON_KEYS = ['ts', '__proto__', 'constructor', 'prototype', 'id', 'data', 'values', 'desired', 'reported', 'version', ''];

const keyText = (keys: readonly string[]): fc.Arbitrary<string> =>
  fc.oneof(
    { arbitrary: fc.constantFrom(...keys, ...COMMON_KEYS).map((key) => JSON.stringify(key)), weight: 4 },
    { arbitrary: poisonString, weight: 1 },
  );

const leafText: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: poisonNumber, weight: 3 },
  { arbitrary: poisonString, weight: 3 },
  { arbitrary: fc.constantFrom('null', 'true', 'false', '0', '1', '42', '[]', '{}'), weight: 2 },
  { arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)), weight: 1 },
  { arbitrary: fc.integer().map(String), weight: 1 },
);

/**
 * Well-formed JSON text whose keys come mostly from `keys` (a route's body schema, a thing
 * model's properties) and whose values are poison: shaped enough to get past the first check.
 */
export function jsonText(keys: readonly string[], maxBreadth = 4): fc.Arbitrary<string> {
  const { value } = fc.letrec<{ value: string; array: string; object: string }>((tie) => ({
    value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leafText, tie('array'), tie('object')),
    array: fc.array(tie('value'), { maxLength: maxBreadth }).map((items) => `[${items.join(',')}]`),
    object: fc
      .array(fc.tuple(keyText(keys), tie('value')), { maxLength: maxBreadth })
      .map((entries) => `{${entries.map(([key, item]) => `${key}:${item}`).join(',')}}`),
  }));
  return value;
}

/** A JSON object (as text) with some of `keys`, each holding poison: the likeliest shape to pass a parser. */
export function objectText(keys: readonly string[]): fc.Arbitrary<string> {
  return fc
    .array(fc.tuple(keyText(keys), fc.oneof(leafText, jsonText(keys, 2))), { minLength: 1, maxLength: 6 })
    .map((entries) => `{${entries.map(([key, item]) => `${key}:${item}`).join(',')}}`);
}

/** Text that is not JSON, or not quite. */
export const malformedJson: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '{',
    '}',
    '[1,2',
    '{"a":1,}',
    "{'a':1}",
    '{"a":}',
    'NaN',
    'Infinity',
    'undefined',
    '\ufeff{}',
    '{"a":1}{"b":2}',
    '{"a":1} trailing',
    '"\\ud800',
    '"\\u00zz"',
    '{"a":01}',
    '{"a":1e}',
    '{"a":+1}',
    '{"__proto__":{"polluted":true}}',
    '{"constructor":{"prototype":{"polluted":true}}}',
    'null',
    'true',
    '"a string"',
    '12',
  ),
  fc.string({ unit: 'binary', maxLength: 60 }),
  jsonText([]).chain((text) => fc.nat({ max: Math.max(0, text.length - 1) }).map((cut) => text.slice(0, cut))),
);

// ---------------------------------------------------------------------------------------------
// Bodies and payloads

/** A request body or message payload, described; `bodyBytes` builds it. */
export type HostileBody =
  | { kind: 'text'; text: string }
  | { kind: 'bytes'; bytes: Uint8Array }
  /** `[[[…]]]` or `{"a":{"a":…}}`, closed or not. */
  | { kind: 'deep'; depth: number; shape: 'array' | 'object'; closed: boolean }
  /** A JSON array of one long string, `bytes` long in all. */
  | { kind: 'oversized'; bytes: number }
  /** `count` telemetry samples in one array, each `{ts, <property>: n}`. */
  | { kind: 'samples'; count: number; property: string; ts: string };

export function bodyBytes(body: HostileBody): Buffer {
  switch (body.kind) {
    case 'text':
      return Buffer.from(body.text, 'utf8');
    case 'bytes':
      return Buffer.from(body.bytes);
    case 'deep': {
      const [open, close] = body.shape === 'array' ? ['[', ']'] : ['{"a":', '}'];
      const inner = body.shape === 'array' ? '' : '1';
      return Buffer.from(`${open.repeat(body.depth)}${inner}${body.closed ? close.repeat(body.depth) : ''}`);
    }
    case 'oversized':
      return Buffer.from(`["${'x'.repeat(Math.max(0, body.bytes - 4))}"]`);
    case 'samples': {
      const samples = Array.from({ length: body.count }, (_, i) => `{"ts":${body.ts},${JSON.stringify(body.property)}:${i}}`);
      return Buffer.from(`[${samples.join(',')}]`);
    }
  }
}

/**
 * Every kind of body, keyed by `keys`: malformed, shaped-but-poisoned, deeply nested, random
 * bytes, thousands of samples, and (rarely, they are slow to send) bodies at, just over and well
 * over `limitBytes`.
 */
export function hostileBody(keys: readonly string[], limitBytes: number): fc.Arbitrary<HostileBody> {
  return fc.oneof(
    { arbitrary: objectText(keys).map((text) => ({ kind: 'text' as const, text })), weight: 6 },
    { arbitrary: jsonText(keys).map((text) => ({ kind: 'text' as const, text })), weight: 3 },
    { arbitrary: malformedJson.map((text) => ({ kind: 'text' as const, text })), weight: 3 },
    { arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ kind: 'bytes' as const, bytes })), weight: 2 },
    {
      arbitrary: fc.record({
        kind: fc.constant('deep' as const),
        depth: fc.constantFrom(63, 64, 65, 1_000, 20_000, 100_000),
        shape: fc.constantFrom('array' as const, 'object' as const),
        closed: fc.boolean(),
      }),
      weight: 2,
    },
    {
      arbitrary: fc.record({
        kind: fc.constant('samples' as const),
        count: fc.constantFrom(1_000, 1_001, 5_000),
        property: fc.constantFrom(...keys, 'ts', 'unknown'),
        ts: fc.oneof(poisonNumber, fc.constant(String(Date.now() - 60_000))),
      }),
      weight: 1,
    },
    {
      arbitrary: fc
        .constantFrom(limitBytes, limitBytes + 1, limitBytes + 64 * 1024)
        .map((bytes) => ({ kind: 'oversized' as const, bytes })),
      weight: 1,
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Paths and query strings

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** Percent-encodes every byte but the unreserved ones: also bytes that are not UTF-8. */
export function percentEncodeBytes(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) {
    const char = String.fromCharCode(byte);
    out += UNRESERVED.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** What a route sees of a segment once the router decoded it (or the text itself when it cannot be decoded). */
export function decodedSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * Path segments as they go on the wire (already encoded): dot segments, encoded slashes, bad
 * escapes, encoded invalid UTF-8, raw Latin-1 bytes (node:http sends 0x80–0xFF as is), unicode,
 * very long, and the ids in `known` so routes also run past their 404.
 */
export function hostileSegment(known: readonly string[]): fc.Arbitrary<string> {
  const arbitraries: fc.Arbitrary<string>[] = [
    fc.constantFrom(
      '..',
      '.',
      '%2e%2e',
      '%2F',
      '..%2F..%2F',
      'a%2Fb',
      '%',
      '%zz',
      '%0',
      '%00',
      'a%00b',
      '%ED%A0%80',
      '%FF%FE',
      '%C0%AF',
      '%E2%80%AE',
      '~',
      '*',
      '%2A',
      'a'.repeat(128),
      'a'.repeat(129),
      'a'.repeat(2_000),
      'a'.repeat(20_000),
    ),
    fc.string({ unit: 'binary', maxLength: 40 }).map((text) => percentEncodeBytes(Buffer.from(text, 'utf8'))),
    fc.uint8Array({ minLength: 1, maxLength: 40 }).map(percentEncodeBytes),
    // Characters node:http lets through unencoded: ASCII punctuation and raw Latin-1.
    fc.string({ unit: fc.integer({ min: 0x21, max: 0xff }).map((code) => String.fromCharCode(code)), minLength: 1, maxLength: 30 }),
  ];
  if (known.length > 0) arbitraries.push(fc.constantFrom(...known), fc.constantFrom(...known));
  return fc.oneof(...arbitraries).filter((segment) => segment.length > 0);
}

const queryValue: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '1e300',
    '-0',
    '9007199254740993',
    '1e400',
    'NaN',
    '-1',
    '0',
    '',
    '%',
    '%zz',
    '%00',
    '%ED%A0%80',
    '%E2%80%AE',
    '%F0%9F%98%80',
    'true',
    'null',
    '[]',
    '-7d',
    '+275760-09-14T00:00:00.001Z',
    '1s',
    '0s',
    '999999999d',
    'avg',
    'a'.repeat(5_000),
  ),
  fc.string({ unit: 'binary', maxLength: 30 }).map((text) => percentEncodeBytes(Buffer.from(text, 'utf8'))),
  fc.string({ unit: fc.integer({ min: 0x21, max: 0xff }).map((code) => String.fromCharCode(code)), maxLength: 20 }),
);

/** A query string (without `?`): the route's own parameters and others, repeated, with hostile values. */
export function hostileQuery(names: readonly string[]): fc.Arbitrary<string> {
  const name = fc.oneof(
    { arbitrary: fc.constantFrom(...names, 'ticket', '__proto__', 'constructor[prototype][x]', 'a[]', ''), weight: 4 },
    { arbitrary: queryValue, weight: 1 },
  );
  return fc
    .array(fc.tuple(name, fc.option(queryValue, { nil: undefined })), { maxLength: 5 })
    .map((pairs) => pairs.map(([key, value]) => (value === undefined ? key : `${key}=${value}`)).join('&'));
}

// ---------------------------------------------------------------------------------------------
// HTTP without normalisation

export interface RawRequest {
  method: string;
  /** Sent as is, byte for byte (Latin-1): no client normalises or refuses it, unlike fetch and node:http. */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
}

/** An HTTP/1.1 request as bytes, framed with Content-Length and Connection: close. */
export function requestBytes(init: RawRequest): Buffer {
  const headers: Record<string, string> = { host: '127.0.0.1', ...init.headers, connection: 'close' };
  if (init.body !== undefined) headers['content-length'] = String(init.body.length);
  const head = [`${init.method} ${init.path} HTTP/1.1`, ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`), '', ''];
  return Buffer.concat([Buffer.from(head.join('\r\n'), 'latin1'), init.body ?? Buffer.alloc(0)]);
}

/**
 * Bytes written to the HTTP port as they are; resolves with what came back (Latin-1) once the
 * node closed the connection. `halfClose` ends the sending side at once, for bytes that may not
 * be a whole request (the node would otherwise wait for the rest until its request deadline);
 * whole requests keep it open, since the console's static files are not sent to a half-closed client.
 */
export function rawHttpBytes(port: number, bytes: Buffer, halfClose = false): Promise<{ statusLine: string | undefined; text: string }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    // A node that refuses a body before reading it all resets the connection: the answer, if any, is already here.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      const text = Buffer.concat(received).toString('latin1');
      resolve({ statusLine: text.length > 0 ? text.split('\r\n')[0] : undefined, text });
    });
    socket.on('connect', () => {
      socket.write(bytes);
      if (halfClose) socket.end();
    });
  });
}

/** The status of a status line such as `HTTP/1.1 400 Bad Request`. */
export function statusOf(statusLine: string | undefined): number | undefined {
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
  return match ? Number(match[1]) : undefined;
}

// ---------------------------------------------------------------------------------------------
// MQTT on a raw socket

/** MQTT's remaining-length varint (§2.2.3). */
function varint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 0x80;
    bytes.push(byte);
  } while (rest > 0);
  return Buffer.from(bytes);
}

/** A PUBLISH built byte by byte, so the topic may be any bytes (invalid UTF-8, NUL, wildcards). */
export function publishPacket(topic: Buffer, payload: Buffer, qos: 0 | 1, messageId: number, retain = false): Buffer {
  const id = qos > 0 ? Buffer.of(messageId >> 8, messageId & 0xff) : Buffer.alloc(0);
  const variable = Buffer.concat([Buffer.of(topic.length >> 8, topic.length & 0xff), topic, id]);
  return Buffer.concat([Buffer.of(0x30 | (qos << 1) | (retain ? 1 : 0)), varint(variable.length + payload.length), variable, payload]);
}

/** A SUBSCRIBE of one filter at QoS 1, built byte by byte (mqtt-packet would refuse the odd filters). */
export function subscribePacket(filter: Buffer, messageId: number): Buffer {
  const body = Buffer.concat([Buffer.of(messageId >> 8, messageId & 0xff, filter.length >> 8, filter.length & 0xff), filter, Buffer.of(1)]);
  return Buffer.concat([Buffer.of(0x82), varint(body.length), body]);
}

export type PublishOutcome = 'acknowledged' | 'processed' | 'closed';

/**
 * An MQTT 3.1.1 session on a plain socket: it writes whatever it is given and records what the
 * broker sends back. `publish` waits for the PUBACK (QoS 1) or for a PINGRESP sent after it (QoS
 * 0; the broker handles a client's packets in order), or for the broker closing the connection.
 */
export class RawMqttSession {
  readonly received: mqttPacket.Packet[] = [];
  private closedByServer = false;
  private nextMessageId = 1;

  private constructor(private readonly socket: Socket) {
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (packet: mqttPacket.Packet) => this.received.push(packet));
    // What the broker sends is parsed by a real parser; a parse error here would be the broker's.
    parser.on('error', () => undefined);
    socket.on('data', (data: Buffer) => parser.parse(data));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closedByServer = true;
    });
  }

  get closed(): boolean {
    return this.closedByServer;
  }

  /** A socket that has sent nothing yet. */
  static async socket(port: number): Promise<RawMqttSession> {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawMqttSession(socket);
  }

  /** Logs in; resolves with the CONNACK's return code (0 accepted) or undefined if closed without one. */
  static async login(port: number, username: string, password: string, clientId: string): Promise<RawMqttSession> {
    const session = await RawMqttSession.socket(port);
    session.write(
      mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clean: true,
        clientId,
        // No keepalive: a session idle between fast-check runs must not be timed out.
        keepalive: 0,
        username,
        password: Buffer.from(password),
      }),
    );
    const connack = await until('a CONNACK', () =>
      session.closed ? null : (session.received.find((p) => p.cmd === 'connack') as mqttPacket.IConnackPacket | undefined),
    );
    if (connack === null || connack.returnCode !== 0) {
      session.destroy();
      throw new Error(`login of ${username} refused (${connack === null ? 'closed' : `return code ${connack.returnCode}`})`);
    }
    return session;
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  messageId(): number {
    const id = this.nextMessageId;
    this.nextMessageId = (this.nextMessageId % 65_535) + 1;
    return id;
  }

  async publish(topic: Buffer, payload: Buffer, qos: 0 | 1, retain = false): Promise<PublishOutcome> {
    const id = this.messageId();
    this.write(publishPacket(topic, payload, qos, id, retain));
    if (qos === 0) return (await this.barrier()) ? 'processed' : 'closed';
    const seen = this.received.length;
    const acked = await until(`the PUBACK of message ${id}`, () => {
      if (this.received.slice(seen).some((p) => p.cmd === 'puback' && p.messageId === id)) return true;
      return this.closed ? false : undefined;
    });
    return acked ? 'acknowledged' : 'closed';
  }

  /** A PINGREQ answered means the broker handled everything sent before it; false when it closed instead. */
  async barrier(): Promise<boolean> {
    const seen = this.received.length;
    this.write(Buffer.of(0xc0, 0x00));
    return until('a PINGRESP', () => {
      if (this.received.slice(seen).some((p) => p.cmd === 'pingresp')) return true;
      return this.closed ? false : undefined;
    });
  }

  /** Topics of the PUBLISH packets the broker delivered to this session. */
  deliveredTopics(): string[] {
    return this.received.filter((p): p is mqttPacket.IPublishPacket => p.cmd === 'publish').map((p) => p.topic);
  }

  /** Half-closes the socket: the broker ends a session whose client has finished sending. Resolves once it has. */
  async end(): Promise<void> {
    this.socket.end();
    await until('the broker closing the session', () => (this.closed ? true : undefined));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Edge-link frames

/** A frame an edge could send on its link, described; `linkFrameBytes` builds it. */
export type LinkFrame =
  | { kind: 'binary'; bytes: Uint8Array }
  | { kind: 'text'; text: string }
  /** A header line and a body gzipped as given (`records` is JSON text, well formed or not). */
  | { kind: 'batch'; header: string; records: string }
  /** A header line and a body that is not gzip. */
  | { kind: 'not-gzip'; header: string; body: Uint8Array }
  /** A header line and `inflated` bytes of `fill`, gzipped: a small frame that inflates a lot. */
  | { kind: 'bomb'; header: string; inflated: number; fill: '0' | '[' | ' ' };

export function isBinaryFrame(frame: LinkFrame): boolean {
  return frame.kind !== 'text';
}

export function linkFrameBytes(frame: LinkFrame): Buffer | string {
  switch (frame.kind) {
    case 'binary':
      return Buffer.from(frame.bytes);
    case 'text':
      return frame.text;
    case 'batch':
      return Buffer.concat([Buffer.from(`${frame.header}\n`), gzipSync(Buffer.from(frame.records))]);
    case 'not-gzip':
      return Buffer.concat([Buffer.from(`${frame.header}\n`), Buffer.from(frame.body)]);
    case 'bomb':
      return Buffer.concat([Buffer.from(`${frame.header}\n`), gzipSync(Buffer.alloc(frame.inflated, frame.fill), { level: 9 })]);
  }
}
