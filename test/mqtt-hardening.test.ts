/**
 * The embedded broker against hostile clients (issue #17): packets over their size limit are
 * refused from their fixed header, connections that have not logged in are capped and timed out,
 * a client id belongs to the device that holds it, failed logins are braked per address, and a
 * refused login does not log the credentials it was given.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import mqttPacket, { type IConnectPacket } from 'mqtt-packet';
import { type RunningNode, startCloudNode } from '../src/node/index.js';
import { createLogger } from '../src/observability/index.js';
import { ManualClock } from '../src/time/index.js';
import { ClientIdBook } from '../src/transport/mqtt/client-ids.js';
import { exceedsLimit, type FixedHeader, type HeaderScan, SCAN_START, scanFixedHeaders } from '../src/transport/mqtt/packet-guard.js';
import { ADMIN_KEY, PUMP_MODEL, startTestNode, type TestNode, testConfig } from './support/harness.js';
import { callApi } from './support/http.js';
import { until } from './support/wait.js';

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

function scanAll(chunks: Uint8Array[]): FixedHeader[] {
  let scan: HeaderScan = SCAN_START;
  const headers: FixedHeader[] = [];
  for (const chunk of chunks) {
    const result = scanFixedHeaders(scan, chunk);
    scan = result.scan;
    headers.push(...result.headers);
  }
  return headers;
}

const SAMPLE_PACKETS: mqttPacket.Packet[] = [
  {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId: 'pump-1',
    keepalive: 60,
    username: 'pump-1',
    password: Buffer.from('t'),
  },
  {
    cmd: 'publish',
    topic: 'things/pump-1/telemetry',
    payload: Buffer.from('{"speed":1}'),
    qos: 1,
    messageId: 7,
    retain: false,
    dup: false,
  },
  { cmd: 'pingreq' },
  // 300 and 20,000 bytes: two- and three-byte remaining lengths.
  { cmd: 'publish', topic: 'things/pump-1/telemetry', payload: Buffer.alloc(300, 0x20), qos: 0, retain: false, dup: false },
  { cmd: 'subscribe', messageId: 8, subscriptions: [{ topic: 'things/pump-1/#', qos: 1 }] },
  {
    cmd: 'publish',
    topic: 'things/pump-1/telemetry',
    payload: Buffer.alloc(20_000, 0x20),
    qos: 1,
    messageId: 9,
    retain: false,
    dup: false,
  },
  { cmd: 'puback', messageId: 3 },
  { cmd: 'disconnect' },
];

/** What mqtt-packet's own parser reads from the same bytes: the reference the scanner must agree with. */
function referenceHeaders(bytes: Buffer): FixedHeader[] {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const headers: FixedHeader[] = [];
  const types: Record<string, number> = { connect: 1, publish: 3, puback: 4, subscribe: 8, pingreq: 12, disconnect: 14 };
  parser.on('packet', (packet: mqttPacket.Packet) => headers.push({ type: types[packet.cmd] ?? -1, remainingLength: packet.length ?? 0 }));
  parser.parse(bytes);
  return headers;
}

describe('MQTT fixed-header scanner', () => {
  const stream = Buffer.concat(SAMPLE_PACKETS.map((packet) => mqttPacket.generate(packet)));
  const expected = referenceHeaders(stream);

  test('reads every header of several packets in one chunk, as the broker would', () => {
    assert.equal(expected.length, SAMPLE_PACKETS.length);
    assert.deepEqual(scanAll([stream]), expected);
  });

  test('reads the same headers however the bytes are split, also inside a length varint', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 40 }), (cuts) => {
        const bounds = [0, ...cuts.sort((a, b) => a - b), stream.length];
        const chunks = bounds.slice(1).map((end, i) => stream.subarray(bounds[i], end));
        assert.deepEqual(scanAll(chunks), expected);
      }),
    );
    // One byte at a time splits every varint.
    assert.deepEqual(scanAll([...stream].map((byte) => Uint8Array.of(byte))), expected);
  });

  test('a 200 MB CONNECT is known from its first five bytes', () => {
    const announced = 200 * 1024 * 1024;
    const { headers, scan } = scanFixedHeaders(SCAN_START, Buffer.concat([Buffer.of(0x10), varint(announced)]));
    assert.deepEqual(headers, [{ type: 1, remainingLength: announced }]);
    assert.deepEqual(scan, { at: 'body', left: announced });
  });

  test('a length over four bytes is malformed: announced as endless', () => {
    const { headers } = scanFixedHeaders(SCAN_START, Buffer.of(0x30, 0xff, 0xff, 0xff, 0xff, 0x01));
    assert.deepEqual(headers, [{ type: 3, remainingLength: Number.POSITIVE_INFINITY }]);
  });

  test('each packet type has its own limit', () => {
    const limits = { connect: 100, publish: 1000, other: 10 };
    assert.equal(exceedsLimit({ type: 1, remainingLength: 100 }, limits), false);
    assert.equal(exceedsLimit({ type: 1, remainingLength: 101 }, limits), true);
    assert.equal(exceedsLimit({ type: 3, remainingLength: 1000 }, limits), false);
    assert.equal(exceedsLimit({ type: 3, remainingLength: 1001 }, limits), true);
    assert.equal(exceedsLimit({ type: 8, remainingLength: 11 }, limits), true);
  });
});

describe('client-id book', () => {
  test("another owner is refused; the owner's takeover keeps the id held while the old session ends", () => {
    const book = new ClientIdBook<string>();
    assert.equal(book.claim('shared', 'device:a', 'a1', false), true);
    assert.equal(book.claim('shared', 'device:b', 'b1', false), false);
    assert.equal(book.claim('shared', 'device:a', 'a2', false), true);
    // The taken-over session closes after the new one claimed: the id stays a's.
    book.release('shared', 'a1');
    assert.equal(book.claim('shared', 'device:b', 'b2', false), false);
    book.release('shared', 'a2');
    assert.equal(book.claim('shared', 'device:b', 'b3', false), true);
  });

  test('a persistent session keeps its id after it disconnects, until its device is forgotten', () => {
    const book = new ClientIdBook<string>();
    book.claim('kept', 'device:a', 'a1', true);
    book.release('kept', 'a1');
    assert.equal(book.holder('kept'), 'device:a');
    assert.equal(book.claim('kept', 'device:b', 'b1', false), false);
    book.forgetOwner('device:a');
    assert.equal(book.claim('kept', 'device:b', 'b1', false), true);
  });
});

function metricsOf(t: TestNode): Promise<string> {
  return t.api<string>('/metrics').then(({ status, body }) => {
    assert.equal(status, 200, `metrics: ${body}`);
    return body;
  });
}

async function refusals(t: TestNode, reason: string): Promise<number> {
  const text = await metricsOf(t);
  const line = text
    .split('\n')
    .find((l) => l.startsWith('thingloop_refusals_total{') && l.includes('listener="mqtt"') && l.includes(`reason="${reason}"`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

interface RawConnection {
  socket: Socket;
  /** True once the server has closed the connection. */
  closed(): boolean;
  /** Packets the server sent, parsed. */
  packets: mqttPacket.Packet[];
}

async function openRaw(port: number): Promise<RawConnection> {
  const socket = connect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let closed = false;
  const packets: mqttPacket.Packet[] = [];
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  parser.on('packet', (packet: mqttPacket.Packet) => packets.push(packet));
  socket.on('data', (data) => parser.parse(data));
  // A server that closes mid-write resets the connection: that is the close the tests wait for.
  socket.on('error', () => undefined);
  socket.on('close', () => {
    closed = true;
  });
  return { socket, closed: () => closed, packets };
}

function rawConnect(username: string, password: string, clientId = username): Buffer {
  const packet: IConnectPacket = {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId,
    keepalive: 60,
    username,
    password: Buffer.from(password),
  };
  return mqttPacket.generate(packet);
}

function closedByServer(raw: RawConnection, what: string): Promise<true> {
  return until(what, () => (raw.closed() ? true : undefined));
}

/** The CONNACK return code of a login MQTT.js attempts (0 when accepted). */
async function loginCode(url: string, options: IClientOptions): Promise<{ code: number; client?: MqttClient }> {
  try {
    // No retries: a socket the server closes without a CONNACK rejects instead of waiting.
    const client = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, ...options }, false);
    return { code: 0, client };
  } catch (error) {
    return { code: (error as { code?: number }).code ?? -1 };
  }
}

describe('MQTT packet size limits', () => {
  const MAX_PAYLOAD = 4096;
  let t: TestNode;
  let token: string;

  before(async () => {
    t = await startTestNode({ maxPayloadBytes: MAX_PAYLOAD });
    ({ token } = await t.registerDevice('pump-1'));
  });
  after(() => t.stop());

  test('a socket announcing a 200 MB CONNECT is closed without the node reading it, and counted', async () => {
    const before = await refusals(t, 'packet_too_large');
    const raw = await openRaw(t.node.mqttPort);
    // The header and a first slice of the body: the node must not wait for the other 200 MB.
    raw.socket.write(Buffer.concat([Buffer.of(0x10), varint(200 * 1024 * 1024), Buffer.alloc(16 * 1024)]));
    await closedByServer(raw, 'the server closing the 200 MB CONNECT');
    assert.equal(raw.packets.length, 0, 'no CONNACK');
    assert.equal(await refusals(t, 'packet_too_large'), before + 1);
  });

  test('a PUBLISH announcing more than the payload limit closes the connection from its header; nothing is stored', async () => {
    const raw = await openRaw(t.node.mqttPort);
    raw.socket.write(rawConnect('pump-1', token));
    await until('the CONNACK', () => raw.packets.find((p) => p.cmd === 'connack'));
    assert.equal((raw.packets[0] as mqttPacket.IConnackPacket).returnCode, 0);
    const before = await refusals(t, 'packet_too_large');

    const topic = Buffer.from('things/pump-1/telemetry');
    const announcedPayload = 100 * 1024 * 1024;
    const variableHeader = Buffer.concat([Buffer.of(topic.length >> 8, topic.length & 0xff), topic, Buffer.of(0, 1)]);
    const start = Buffer.concat([
      Buffer.of(0x32),
      varint(variableHeader.length + announcedPayload),
      variableHeader,
      Buffer.from('{"speed":12'),
    ]);
    raw.socket.write(start);
    await closedByServer(raw, 'the server closing the 100 MB PUBLISH');
    assert.equal(raw.packets.filter((p) => p.cmd === 'puback').length, 0, 'never acknowledged');
    assert.equal(await refusals(t, 'packet_too_large'), before + 1);
    const latest = await t.api<{ values: Record<string, unknown> }>('/api/v1/devices/pump-1/latest');
    assert.equal(latest.body.values.speed, undefined);
  });

  test('a PUBLISH of exactly the payload limit passes the guard and is stored', async () => {
    const client = await t.connectDevice('pump-1', token);
    // JSON allows whitespace, so the payload can be padded to the limit and still be read.
    const head = '{"speed":42';
    const payload = `${head}${' '.repeat(MAX_PAYLOAD - head.length - 1)}}`;
    assert.equal(Buffer.byteLength(payload), MAX_PAYLOAD);
    await client.publishAsync('things/pump-1/telemetry', payload, { qos: 1 });
    const latest = await t.api<{ values: Record<string, { value: unknown }> }>('/api/v1/devices/pump-1/latest');
    assert.equal(latest.body.values.speed?.value, 42);
  });
});

describe('MQTT connections that have not logged in', () => {
  test('beyond the cap a new socket is closed at once and counted; logged-in devices do not count', async () => {
    const t = await startTestNode({ mqttMaxUnauthenticated: 2 });
    const raws: RawConnection[] = [];
    try {
      const { token } = await t.registerDevice('pump-1');
      await t.connectDevice('pump-1', token);
      raws.push(await openRaw(t.node.mqttPort), await openRaw(t.node.mqttPort));
      const third = await openRaw(t.node.mqttPort);
      raws.push(third);
      await closedByServer(third, 'the server closing the socket over the cap');
      assert.equal(raws[0]?.closed(), false);
      assert.equal(raws[1]?.closed(), false);
      assert.equal(await refusals(t, 'too_many_unauthenticated'), 1);

      // A slot frees when a waiting socket goes away.
      raws[0]?.socket.destroy();
      const code = await until('a login once a slot is free', async () => {
        const attempt = await loginCode(t.node.mqttUrl, { username: 'pump-1', password: token, clientId: 'pump-1-second' });
        attempt.client?.end(true);
        return attempt.code === 0 ? 0 : undefined;
      });
      assert.equal(code, 0);
    } finally {
      for (const raw of raws) raw.socket.destroy();
      await t.stop();
    }
  });

  test('a connection that does not log in before the connect timeout is closed and counted', async () => {
    const t = await startTestNode({ mqttConnectTimeoutMs: 200 });
    try {
      const { token } = await t.registerDevice('pump-1');
      const device = await t.connectDevice('pump-1', token);
      const silent = await openRaw(t.node.mqttPort);
      const trickling = await openRaw(t.node.mqttPort);
      trickling.socket.write(rawConnect('pump-1', token, 'slow').subarray(0, 10));
      await closedByServer(silent, 'the server closing the silent socket');
      await closedByServer(trickling, 'the server closing the socket that never finished its CONNECT');
      assert.equal(await refusals(t, 'connect_timeout'), 2);
      // The device logged in before either and is past its deadline: it stays.
      assert.equal(device.connected, true);
      await device.publishAsync('things/pump-1/telemetry', JSON.stringify({ speed: 7 }), { qos: 1 });
    } finally {
      await t.stop();
    }
  });
});

describe('MQTT client ids belong to their device', () => {
  let t: TestNode;
  const tokens: Record<string, string> = {};

  before(async () => {
    t = await startTestNode();
    for (const id of ['pump-1', 'pump-2', 'pump-3']) tokens[id] = (await t.registerDevice(id)).token;
  });
  after(() => t.stop());

  const login = (id: string, options: IClientOptions) => loginCode(t.node.mqttUrl, { username: id, password: tokens[id], ...options });

  test("another device's client id is refused; the victim stays connected and keeps publishing", async () => {
    const victim = await t.connectDevice('pump-1', tokens['pump-1'] as string, { clientId: 'shared-id' });
    let victimClosed = false;
    victim.on('close', () => {
      victimClosed = true;
    });
    const before = await refusals(t, 'client_id_taken');

    const intruder = await login('pump-2', { clientId: 'shared-id' });
    assert.equal(intruder.code, 2, 'identifier rejected');
    assert.equal(await refusals(t, 'client_id_taken'), before + 1);

    await victim.publishAsync('things/pump-1/telemetry', JSON.stringify({ speed: 55 }), { qos: 1 });
    const latest = await t.api<{ values: Record<string, { value: unknown }> }>('/api/v1/devices/pump-1/latest');
    assert.equal(latest.body.values.speed?.value, 55);
    assert.equal(victimClosed, false);
    assert.equal(victim.connected, true);
    await victim.endAsync();
  });

  test("a device's own reconnect with its client id takes over the old session", async () => {
    const old = await t.connectDevice('pump-1', tokens['pump-1'] as string, { clientId: 'pump-1-main' });
    const fresh = await login('pump-1', { clientId: 'pump-1-main' });
    assert.equal(fresh.code, 0);
    await until('the old session to be closed', () => (old.connected ? undefined : true));
    await fresh.client?.publishAsync('things/pump-1/telemetry', JSON.stringify({ speed: 56 }), { qos: 1 });
    const latest = await t.api<{ values: Record<string, { value: unknown }> }>('/api/v1/devices/pump-1/latest');
    assert.equal(latest.body.values.speed?.value, 56);
    await fresh.client?.endAsync();
  });

  test('a persistent session keeps its id for its device after it disconnects', async () => {
    const first = await t.connectDevice('pump-1', tokens['pump-1'] as string, { clientId: 'pump-1-persistent', clean: false });
    await first.subscribeAsync('things/pump-1/actions/+', { qos: 1 });
    await first.endAsync();

    assert.equal((await login('pump-2', { clientId: 'pump-1-persistent', clean: false })).code, 2);
    assert.equal((await login('pump-2', { clientId: 'pump-1-persistent', clean: true })).code, 2);
    const again = await login('pump-1', { clientId: 'pump-1-persistent', clean: false });
    assert.equal(again.code, 0);
    await again.client?.endAsync();
  });

  test('the admin integration holds its client ids too', async () => {
    const admin = await loginCode(t.node.mqttUrl, { username: '$admin', password: ADMIN_KEY, clientId: 'integration-1' });
    assert.equal(admin.code, 0);
    assert.equal((await login('pump-2', { clientId: 'integration-1' })).code, 2);
    assert.equal(admin.client?.connected, true);
    await admin.client?.endAsync();
  });

  test("a deleted device's client ids are free again", async () => {
    const gone = await t.connectDevice('pump-3', tokens['pump-3'] as string, { clientId: 'pump-3-session', clean: false });
    await gone.endAsync();
    assert.equal((await login('pump-2', { clientId: 'pump-3-session', clean: false })).code, 2);
    assert.equal((await t.api('/api/v1/devices/pump-3', { method: 'DELETE' })).status, 204);
    const heir = await login('pump-2', { clientId: 'pump-3-session', clean: false });
    assert.equal(heir.code, 0);
    await heir.client?.endAsync();
  });
});

describe('MQTT guessing brake', () => {
  test('after 20 failed logins an address is refused slowly without a credential check, until its bucket refills', async () => {
    const clock = new ManualClock(Date.now());
    // The harness raises the burst so other suites can fail logins freely; this one needs the node's default.
    const t = await startTestNode({ authFailureBurst: 20, authFailureRefillPerSecond: 1 }, clock);
    try {
      const { token } = await t.registerDevice('pump-1');
      const device = (password: string) => loginCode(t.node.mqttUrl, { username: 'pump-1', password, clientId: 'pump-1' });

      const early = await device(token);
      assert.equal(early.code, 0, 'correct credentials pass while the address has tokens');
      await early.client?.endAsync();
      assert.equal(await refusals(t, 'rate_limited'), 0);

      for (let i = 0; i < 20; i++) assert.equal((await device(`wrong-${i}`)).code, 4, `guess ${i} is checked and refused`);

      const startedAt = Date.now();
      const braked = await Promise.all([...Array.from({ length: 5 }, (_, i) => device(`wrong-${20 + i}`)), device(token)]);
      // A lower bound only: the refusal waits for the brake's delay (1 s).
      assert.ok(Date.now() - startedAt >= 900, 'braked refusals are delayed');
      assert.deepEqual(
        braked.map((attempt) => attempt.code),
        [3, 3, 3, 3, 3, 3],
        'refused as unavailable, also the correct token, without a check',
      );

      // The brake is shared with HTTP, so the metrics are read once the address has earned tokens back.
      clock.advance(60_000);
      assert.equal(await refusals(t, 'rate_limited'), 6);
      assert.equal(await refusals(t, 'auth_failed'), 20, 'the braked guesses were never checked');
      const later = await device(token);
      assert.equal(later.code, 0);
      await later.client?.endAsync();
    } finally {
      await t.stop();
    }
  });
});

describe('MQTT refusal logs', () => {
  let node: RunningNode;
  let dataDir: string;
  const lines: string[] = [];

  before(async () => {
    const config = testConfig();
    dataDir = config.dataDir;
    node = await startCloudNode(config, {
      logger: createLogger({ level: 'info', destination: { write: (line: string) => lines.push(line) } }),
    });
  });
  after(async () => {
    await node.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('a refused login logs neither username nor password, and the device id only for a registered device', async () => {
    const api = (path: string, init = {}) => callApi<Record<string, unknown>>(node.httpUrl, path, init, ADMIN_KEY);
    await api('/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL });
    const created = await api('/api/v1/devices', { method: 'POST', body: { id: 'pump-1', model: 'pump' } });
    const token = created.body.token as string;

    // Username and password swapped: the token arrives as the username.
    const swapped = await loginCode(node.mqttUrl, { username: token, password: 'pump-1', clientId: 'pump-1' });
    assert.equal(swapped.code, 4);
    const wrong = await loginCode(node.mqttUrl, { username: 'pump-1', password: 'not-the-token', clientId: 'pump-1' });
    assert.equal(wrong.code, 4);

    const refusalsLogged = await until('two refusals in the log', () => {
      const found = lines.filter((line) => line.includes('mqtt authentication refused'));
      return found.length >= 2 ? found : undefined;
    });
    const all = lines.join('\n');
    assert.equal(all.includes(token), false, 'the token is never logged');
    assert.equal(all.includes('not-the-token'), false);
    const [first, second] = refusalsLogged.map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.equal(first?.device, undefined, 'no registered device goes by the name given');
    assert.equal(second?.device, 'pump-1');
    assert.equal(typeof second?.address, 'string');
  });
});
