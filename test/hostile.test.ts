/**
 * Every ingress of a real node under property-based hostile input (issue #17, "proof that
 * lasts"): each HTTP route of the OpenAPI document, raw HTTP bytes, each MQTT topic of the device
 * contract, the WebSocket telemetry stream and the edge link. For every input: no 5xx, the node
 * stays up (/healthz after each run; it runs in this process, so an uncaught exception fails the
 * run), and known-good telemetry sent between hostile inputs over HTTP and MQTT QoS 1 is readable
 * at the end: nothing acknowledged is lost.
 *
 *   npm run test:hostile                              # default run counts, well under a minute
 *   THINGLOOP_HOSTILE_RUNS=2000 npm run test:hostile  # a longer hunt: runs per property
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import WebSocket from 'ws';
import { encodeBatch, type SequencedRecord } from '../src/edge/index.js';
import { ADMIN_KEY, PUMP_MODEL, startTestNode, type TestNode } from './support/harness.js';
import {
  bodyBytes,
  decodedSegment,
  type HostileBody,
  hostileBody,
  hostileQuery,
  hostileSegment,
  InputTally,
  isBinaryFrame,
  jsonText,
  type LinkFrame,
  linkFrameBytes,
  malformedJson,
  objectText,
  percentEncodeBytes,
  poisonNumber,
  poisonString,
  propertyParameters,
  RawMqttSession,
  rawHttpBytes,
  requestBytes,
  statusOf,
  subscribePacket,
} from './support/hostile.js';
import { until } from './support/wait.js';

/** The pump with a few more shapes (object, array, bounded string) for poison to aim at. */
const FUZZ_MODEL = {
  ...PUMP_MODEL,
  title: 'Fuzzed pump',
  properties: {
    ...PUMP_MODEL.properties,
    position: { type: 'object', properties: { x: { type: 'integer' }, tag: { type: 'string' } } },
    spectrum: { type: 'array', items: { type: 'number' }, maxItems: 16 },
    label: { type: 'string', maxLength: 32 },
  },
};
const FUZZ_PROPERTIES = Object.keys(FUZZ_MODEL.properties);

/** Witness samples carry a sequence number only, so each one can be found again. */
const WITNESS_MODEL = { title: 'Witness meter', properties: { seq: { type: 'integer', minimum: 0 } } };

/**
 * Everything the fuzzers must not take away (their DELETEs and token rotations hit whatever they
 * name) is named with "keep"; generated segments that decode to anything with "keep" are dropped.
 */
const KEEP = {
  httpWitness: 'keep-http',
  mqttWitness: 'keep-mqtt',
  witnessModel: 'keep-meter',
  mqttHostile: 'keep-hostile',
  edge: 'keep-edge',
  edgeDevice: 'keep-edge-device',
};
const namesKept = (segment: string) => decodedSegment(segment).toLowerCase().includes('keep');

/** Ids that exist, so fuzzed routes also run past their 404. */
const FUZZ = { device: 'fuzz-device', model: 'fuzz-model', edge: 'fuzz-edge', agent: 'fuzz-agent' };
const KNOWN_SEGMENTS = [...Object.values(FUZZ), 'pump', 'overheat', 'doorOpened', 'reset', 'speed'];

/** Slightly over what the node takes: Fastify's 4 MiB body limit, the 256 KiB MQTT payload limit. */
const HTTP_BODY_LIMIT = 4 * 1024 * 1024;
const MQTT_PAYLOAD_LIMIT = 256 * 1024;
/** A PUBLISH may announce the payload limit plus room for its topic and packet id (src/transport/mqtt/broker.ts). */
const MQTT_PACKET_LIMIT = MQTT_PAYLOAD_LIMIT + 2 + 1024 + 2;

const tally = new InputTally();

/**
 * Every socket the node accepts on its HTTP port, seen through Node's own `net.server.socket`
 * channel: what is still open once the clients are gone is what the node failed to close.
 */
const acceptedHttpSockets = new Set<Socket>();
const onServerSocket = (message: unknown) => {
  const { socket } = message as { socket: Socket };
  acceptedHttpSockets.add(socket);
  socket.once('close', () => acceptedHttpSockets.delete(socket));
};
subscribe('net.server.socket', onServerSocket);

interface OpenApi {
  paths: Record<string, Record<string, OpenApiOperation>>;
}
interface OpenApiOperation {
  parameters?: { in: string; name: string }[];
  requestBody?: { content: Record<string, { schema: JsonSchema }> };
}
interface JsonSchema {
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
}

/** One route and method, from the OpenAPI document or the few routes it does not list. */
interface Operation {
  method: string;
  /** `/api/v1/devices/{id}/telemetry`; `{*}` is a wildcard. */
  template: string;
  pathParams: string[];
  queryParams: string[];
  /** Keys of the route's body schema (any depth), for bodies shaped enough to get past the parser. */
  bodyKeys: string[];
}

function schemaKeys(schema: JsonSchema | undefined, depth = 0): string[] {
  if (!schema || depth > 4) return [];
  const own = Object.keys(schema.properties ?? {});
  const nested = [...Object.values(schema.properties ?? {}), ...(schema.items ? [schema.items] : []), ...(schema.anyOf ?? [])].flatMap(
    (child) => schemaKeys(child, depth + 1),
  );
  return [...new Set([...own, ...nested])];
}

function operationsOf(spec: OpenApi): Operation[] {
  const operations: Operation[] = [];
  for (const [template, methods] of Object.entries(spec.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const parameters = operation.parameters ?? [];
      const body = operation.requestBody ? Object.values(operation.requestBody.content)[0]?.schema : undefined;
      operations.push({
        method: method.toUpperCase(),
        template,
        pathParams: parameters.filter((p) => p.in === 'path').map((p) => p.name),
        queryParams: parameters.filter((p) => p.in === 'query').map((p) => p.name),
        bodyKeys: schemaKeys(body),
      });
    }
  }
  // Hidden from the document but served: operations, the console's static files, and no route at all.
  const hidden: [string, string, string[]][] = [
    ['GET', '/healthz', []],
    ['GET', '/readyz', []],
    ['GET', '/metrics', []],
    ['GET', '/api/v1/openapi.json', []],
    ['GET', '/', []],
    ['GET', '/assets/{*}', ['*']],
    ['GET', '/{*}', ['*']],
    ['POST', '/api/v1/{nothing}', ['nothing']],
  ];
  for (const [method, template, pathParams] of hidden) operations.push({ method, template, pathParams, queryParams: [], bodyKeys: [] });
  return operations;
}

/** Operations that remove or re-key what they name: they get only generated names, never the fuzz targets. */
function destroys(operation: Operation): boolean {
  return operation.method === 'DELETE' || operation.template.endsWith('/token');
}

const AUTH_HEADERS = (deviceToken: string): (string | undefined)[] => [
  undefined,
  `Bearer ${ADMIN_KEY}`,
  `Bearer ${deviceToken}`,
  'Bearer wrong-key-0123456789',
  `bearer ${ADMIN_KEY}`,
  `Bearer ${ADMIN_KEY}x`,
  `Bearer  ${ADMIN_KEY} `,
  'Basic YWRtaW46YWRtaW4=',
  'Bearer ',
  'Bearer',
  `Bearer ${ADMIN_KEY}, Bearer other`,
  `Bearer ${'k'.repeat(8_000)}`,
  'Bearer \u00ff\u00fe\u00e9',
];

const CONTENT_TYPES: (string | undefined)[] = [
  'application/json',
  'application/json',
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16le',
  'application/json;;;',
  'text/plain',
  'application/octet-stream',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/vnd.api+json',
  undefined,
];

const EXTRA_METHODS = ['HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'PATCH', 'DELETE', 'PUT', 'POST', 'GET'];

interface HttpInput {
  operation: Operation;
  method: string;
  segments: string[];
  query: string;
  authorization: string | undefined;
  contentType: string | undefined;
  body: HostileBody | undefined;
}

function httpInput(operations: Operation[], deviceToken: string): fc.Arbitrary<HttpInput> {
  return fc.constantFrom(...operations).chain((operation) =>
    fc.record({
      operation: fc.constant(operation),
      method: fc.oneof(
        { arbitrary: fc.constant(operation.method), weight: 9 },
        { arbitrary: fc.constantFrom(...EXTRA_METHODS), weight: 1 },
      ),
      segments: fc.tuple(
        ...operation.pathParams.map(() => hostileSegment(destroys(operation) ? [] : KNOWN_SEGMENTS).filter((s) => !namesKept(s))),
      ),
      query: hostileQuery(operation.queryParams),
      authorization: fc.constantFrom(...AUTH_HEADERS(deviceToken)),
      contentType: fc.constantFrom(...CONTENT_TYPES),
      body: fc.option(hostileBody([...operation.bodyKeys, ...FUZZ_PROPERTIES], HTTP_BODY_LIMIT), {
        nil: undefined,
        freq: operation.method === 'GET' || operation.method === 'DELETE' ? 1 : 8,
      }),
    }),
  );
}

function pathOf(input: HttpInput): string {
  let index = 0;
  const path = input.operation.template.replace(/\{[^}]+\}/g, () => input.segments[index++] ?? '');
  return input.query.length > 0 ? `${path}?${input.query}` : path;
}

/** What the fuzzer's report shows of an input: big bodies by their description, not their bytes. */
function describeHttp(input: HttpInput, path: string): string {
  return JSON.stringify({
    method: input.method,
    path: path.length > 300 ? `${path.slice(0, 300)}… (${path.length} chars)` : path,
    authorization: input.authorization && input.authorization.length > 80 ? `${input.authorization.slice(0, 40)}…` : input.authorization,
    contentType: input.contentType,
    body: input.body,
  });
}

/** Known-good telemetry sent between hostile inputs; every sample acknowledged must be readable at the end. */
class Witness {
  private seq = 0;
  /** Older than any hostile sample might be stamped with, and in the past: read back with from/to. */
  readonly base = Date.now() - 3_600_000;
  readonly acknowledged = { http: new Set<number>(), mqtt: new Set<number>() };

  constructor(
    private readonly t: TestNode,
    private readonly httpToken: string,
    private readonly mqtt: MqttClient,
  ) {}

  async send(): Promise<void> {
    const overHttp = ++this.seq;
    const posted = await this.t.api<{ acceptedSamples: number }>(`/api/v1/devices/${KEEP.httpWitness}/telemetry`, {
      method: 'POST',
      auth: this.httpToken,
      body: { ts: this.base + overHttp, seq: overHttp },
    });
    assert.equal(posted.status, 200, `a good sample over HTTP was refused: ${JSON.stringify(posted.body)}`);
    assert.equal(posted.body.acceptedSamples, 1);
    this.acknowledged.http.add(overHttp);

    const overMqtt = ++this.seq;
    assert.equal(this.mqtt.connected, true, 'the witness device lost its MQTT connection');
    // Resolves on the PUBACK, which the node sends once the sample is committed.
    await this.mqtt.publishAsync(`things/${KEEP.mqttWitness}/telemetry`, JSON.stringify({ ts: this.base + overMqtt, seq: overMqtt }), {
      qos: 1,
    });
    this.acknowledged.mqtt.add(overMqtt);
  }

  /** The seq values stored for a witness device, all pages. */
  async stored(deviceId: string): Promise<number[]> {
    const values: number[] = [];
    let cursor: string | null = null;
    do {
      const query = new URLSearchParams({ property: 'seq', from: String(this.base), to: String(this.base + 10_000_000), limit: '10000' });
      if (cursor) query.set('cursor', cursor);
      const page = await this.t.api<{ items: { value: number }[]; next: string | null }>(`/api/v1/devices/${deviceId}/telemetry?${query}`);
      assert.equal(page.status, 200, JSON.stringify(page.body));
      values.push(...page.body.items.map((item) => item.value));
      cursor = page.body.next;
    } while (cursor);
    return values.sort((a, b) => a - b);
  }
}

describe('hostile input on every ingress', () => {
  let t: TestNode;
  let witness: Witness;
  let operations: Operation[];
  let fuzzDeviceToken: string;
  let hostileToken: string;
  let edgeToken: string;
  const startedAt = Date.now();

  const healthy = async (after: string) => {
    const health = await t.api('/healthz', { auth: null });
    assert.equal(health.status, 200, `/healthz after ${after}`);
  };

  /** Reads that must still work once hostile input may have been stored: no 5xx on the way out either. */
  const readBack = async (paths: string[], after: string) => {
    for (const path of paths) {
      const read = await t.api(path);
      assert.ok(read.status < 500, `GET ${path} answered ${read.status} after ${after}: ${JSON.stringify(read.body)}`);
    }
  };

  before(async () => {
    // The guessing brake would turn wrong-key probes into 429s (fine, but it hides the routes behind).
    t = await startTestNode({ authFailureBurst: 1_000_000 });
    const spec = await t.api<OpenApi>('/api/v1/openapi.json');
    assert.equal(spec.status, 200);
    operations = operationsOf(spec.body);

    for (const [id, document] of [
      [KEEP.witnessModel, WITNESS_MODEL],
      [FUZZ.model, FUZZ_MODEL],
    ] as const) {
      const put = await t.api(`/api/v1/models/${id}`, { method: 'PUT', body: document });
      assert.ok(put.status === 200 || put.status === 201, JSON.stringify(put.body));
    }
    const httpWitness = await t.registerDevice(KEEP.httpWitness, KEEP.witnessModel);
    const mqttWitness = await t.registerDevice(KEEP.mqttWitness, KEEP.witnessModel);
    fuzzDeviceToken = (await t.registerDevice(FUZZ.device, FUZZ.model)).token;
    hostileToken = (await t.registerDevice(KEEP.mqttHostile, FUZZ.model)).token;

    for (const id of [KEEP.edge, FUZZ.edge]) {
      const edge = await t.api<{ token: string }>('/api/v1/edges', { method: 'POST', body: { id } });
      assert.equal(edge.status, 201, JSON.stringify(edge.body));
      if (id === KEEP.edge) edgeToken = edge.body.token;
    }
    await t.registerDevice(KEEP.edgeDevice, FUZZ.model, { edge: KEEP.edge });

    const agent = await t.api('/api/v1/agents', {
      method: 'POST',
      body: {
        id: FUZZ.agent,
        mode: 'approve',
        perceive: { devices: { ids: [FUZZ.device] } },
        judge: { when: 'speed > 90', clear: 'speed < 50' },
        act: { steps: [{ set: { property: 'speed', value: '50' } }] },
      },
    });
    assert.equal(agent.status, 201, JSON.stringify(agent.body));

    const mqttClient = await t.connectDevice(KEEP.mqttWitness, mqttWitness.token);
    witness = new Witness(t, httpWitness.token, mqttClient);
  });

  after(async () => {
    const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);
    console.log(`hostile inputs thrown: ${tally.total.toLocaleString('en-US')} in ${seconds} s (${tally.summary()})`);
    // A node that leaves a socket half-open never finishes stopping, and this file would hang instead of failing.
    const stopping = t?.stop();
    let deadline: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      stopping?.then(() => true),
      new Promise((resolve) => {
        deadline = setTimeout(resolve, 15_000, false);
      }),
    ]);
    clearTimeout(deadline);
    const leftOpen = [...acceptedHttpSockets].filter((socket) => socket.localPort === t?.node.httpPort);
    for (const socket of leftOpen) socket.destroy();
    await stopping;
    unsubscribe('net.server.socket', onServerSocket);
    assert.ok(stopped, `the node did not stop until the test closed ${leftOpen.length} HTTP sockets it had left open`);
  });

  test('HTTP: every route of the OpenAPI document, with hostile paths, queries, keys and bodies, answers below 500', async () => {
    await fc.assert(
      fc.asyncProperty(httpInput(operations, fuzzDeviceToken), async (input) => {
        const path = pathOf(input);
        const headers: Record<string, string> = {};
        if (input.authorization !== undefined) headers.authorization = input.authorization;
        if (input.contentType !== undefined && input.body !== undefined) headers['content-type'] = input.contentType;
        const body = input.body ? bodyBytes(input.body) : undefined;
        const { statusLine, text } = await rawHttpBytes(t.node.httpPort, requestBytes({ method: input.method, path, headers, body }));
        tally.count('http');
        const status = statusOf(statusLine);
        if (status === undefined) {
          // A node may stop reading a body or request line it will not take, and reset before its answer arrives.
          const tooBig = (body?.length ?? 0) > HTTP_BODY_LIMIT / 2 || path.length > 8_000;
          assert.ok(tooBig, `no answer to ${describeHttp(input, path)}: ${JSON.stringify(text.slice(0, 200))}`);
        } else {
          assert.ok(status < 500, `${statusLine} for ${describeHttp(input, path)}: ${text.slice(-500)}`);
          assert.equal(text.includes(ADMIN_KEY), false, `the admin key leaked in the answer to ${describeHttp(input, path)}`);
          assert.equal(text.includes('"devDependencies"'), false, `a package.json was served for ${describeHttp(input, path)}`);
        }
        await witness.send();
        await healthy(describeHttp(input, path));
      }),
      propertyParameters(350),
    );
  });

  test('HTTP: raw request bytes the parser must refuse get a 4xx or a closed socket', async () => {
    const requestLine = fc.constantFrom(
      'GET /healthz HTTP/1.1',
      `POST /api/v1/devices/${FUZZ.device}/telemetry HTTP/1.1`,
      'GET /api/v1/devices HTTP/1.1',
      'GET /\u0000 HTTP/1.1',
      'GET  /healthz  HTTP/1.1',
      'GET /healthz HTTP/9.9',
      'PRI * HTTP/2.0',
      'GET http://evil.example/healthz HTTP/1.1',
      'G\u00c9T /healthz HTTP/1.1',
    );
    const header = fc.constantFrom(
      'Host: 127.0.0.1',
      'Content-Length: -1',
      'Content-Length: 5',
      'Content-Length: 99999999999999999999',
      'Content-Length: 1, 2',
      'Transfer-Encoding: chunked',
      'Transfer-Encoding: gzip, chunked',
      'Transfer-Encoding: xchunked',
      `Authorization: Bearer ${ADMIN_KEY}`,
      'Authorization: Bearer \u0000',
      'X-Folded: a\r\n b',
      'Bad Header: x',
      'Content-Type: application/json',
      `X-Long: ${'h'.repeat(20_000)}`,
      ': empty-name',
    );
    const tail = fc.oneof(
      fc.constantFrom('', '{"speed":1}', '5\r\nhello\r\n0\r\n\r\n', 'zz\r\nhello\r\n0\r\n\r\n', '0\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n'),
      malformedJson,
    );
    const message = fc.oneof(
      { arbitrary: fc.tuple(requestLine, fc.array(header, { maxLength: 5 }), tail), weight: 4 },
      { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 300 }), weight: 1 },
    );
    await fc.assert(
      fc.asyncProperty(message, async (input) => {
        const bytes = Array.isArray(input)
          ? Buffer.from(`${input[0]}\r\n${input[1].join('\r\n')}${input[1].length > 0 ? '\r\n' : ''}\r\n${input[2]}`, 'latin1')
          : Buffer.from(input);
        const { statusLine } = await rawHttpBytes(t.node.httpPort, bytes, true);
        tally.count('http-raw');
        const status = statusOf(statusLine);
        assert.ok(status === undefined || status < 500, `${statusLine} for ${JSON.stringify(bytes.toString('latin1').slice(0, 400))}`);
        await healthy('raw HTTP bytes');
      }),
      propertyParameters(60),
    );
  });

  describe('MQTT', () => {
    let session: RawMqttSession | undefined;
    const prefix = `things/${KEEP.mqttHostile}/`;

    const hostileSession = async () => {
      if (!session || session.closed) {
        session?.destroy();
        session = await RawMqttSession.login(t.node.mqttPort, KEEP.mqttHostile, hostileToken, `${KEEP.mqttHostile}-fuzz`);
      }
      return session;
    };
    after(() => session?.destroy());

    const eventOrActionName = fc.oneof(
      fc.constantFrom('overheat', 'doorOpened', 'reset', 'unknown', 'a+b', '#', '+', '$SYS', ' ', '\u0000', '\u202e'),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }),
    );
    /** Suffixes under the device's own prefix: the contract's topics, and near misses. */
    const ownSuffix = fc.oneof(
      fc.constantFrom(
        'telemetry',
        'telemetry',
        'twin/reported',
        'twin/get',
        'telemetry/',
        'Telemetry',
        'twin/desired',
        'twin',
        'errors',
        'alarms',
        'actions/reset',
        'events',
        'events/',
        '',
      ),
      eventOrActionName.map((name) => `events/${name}`),
      eventOrActionName.map((name) => `actions/${name}/result`),
    );
    type TopicChoice = { own: string } | { foreign: string } | { bytes: Uint8Array };
    const topic: fc.Arbitrary<TopicChoice> = fc.oneof(
      { arbitrary: ownSuffix.map((own) => ({ own })), weight: 8 },
      {
        arbitrary: fc
          .constantFrom(
            `things/${KEEP.mqttWitness}/telemetry`,
            `things/${FUZZ.device}/telemetry`,
            `things/${KEEP.mqttWitness}/twin/reported`,
            'things/+/telemetry',
            'things/#',
            'things//telemetry',
            'things/telemetry',
            `Things/${KEEP.mqttHostile}/telemetry`,
            `/things/${KEEP.mqttHostile}/telemetry`,
            `things/${KEEP.mqttHostile}`,
            '$SYS/broker/uptime',
            '',
            `${'a/'.repeat(200)}a`,
            `things/${KEEP.mqttHostile}/${'x'.repeat(2_000)}`,
          )
          .map((foreign) => ({ foreign })),
        weight: 2,
      },
      { arbitrary: fc.uint8Array({ maxLength: 60 }).map((bytes) => ({ bytes })), weight: 1 },
    );
    const topicBytes = (choice: TopicChoice): Buffer =>
      'own' in choice
        ? Buffer.from(`${prefix}${choice.own}`, 'utf8')
        : 'foreign' in choice
          ? Buffer.from(choice.foreign, 'utf8')
          : Buffer.from(choice.bytes);
    /** The device contract's topics (src/transport/mqtt/topics.ts): each is answered, never closed. */
    const isContractTopic = (choice: TopicChoice): boolean =>
      'own' in choice &&
      !/[+#]/.test(choice.own) &&
      !choice.own.includes('\u0000') &&
      /^(telemetry|twin\/reported|twin\/get|events\/[^/]+|actions\/[^/]+\/result)$/.test(choice.own);

    type MqttInput =
      | { kind: 'publish'; topic: TopicChoice; payload: HostileBody; qos: 0 | 1; retain: boolean }
      | { kind: 'subscribe'; filter: string }
      | { kind: 'garbage'; bytes: Uint8Array }
      | { kind: 'login'; username: string; password: string };

    const payload: fc.Arbitrary<HostileBody> = fc.oneof(
      { arbitrary: hostileBody(FUZZ_PROPERTIES, MQTT_PAYLOAD_LIMIT), weight: 12 },
      {
        // A sample shaped right, with poison only where the value or the time goes.
        arbitrary: fc
          .tuple(fc.constantFrom(...FUZZ_PROPERTIES), fc.oneof(poisonNumber, poisonString), fc.oneof(poisonNumber, poisonString))
          .map(([property, value, ts]) => ({ kind: 'text' as const, text: `{"ts":${ts},${JSON.stringify(property)}:${value}}` })),
        weight: 4,
      },
      {
        arbitrary: fc
          .tuple(objectText(['temperature', 'status', 'output', 'error', 'data']), poisonNumber)
          .map(([data, ts]) => ({ kind: 'text' as const, text: `{"ts":${ts},"data":${data},"status":"succeeded","output":${data}}` })),
        weight: 2,
      },
    );
    const input: fc.Arbitrary<MqttInput> = fc.oneof(
      {
        arbitrary: fc.record({
          kind: fc.constant('publish' as const),
          topic,
          payload,
          qos: fc.constantFrom(0 as const, 1 as const, 1 as const),
          retain: fc.boolean(),
        }),
        weight: 12,
      },
      {
        arbitrary: fc
          .oneof(
            fc.constantFrom('#', '+/#', 'things/#', 'things/+/telemetry', `things/${KEEP.mqttWitness}/#`, '$SYS/#', `${prefix}#`, ''),
            fc.string({ unit: 'binary', maxLength: 30 }),
          )
          .map((filter) => ({ kind: 'subscribe' as const, filter })),
        weight: 2,
      },
      { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 200 }).map((bytes) => ({ kind: 'garbage' as const, bytes })), weight: 2 },
      {
        arbitrary: fc.record({
          kind: fc.constant('login' as const),
          username: fc.oneof(
            fc.constantFrom(KEEP.mqttWitness, KEEP.mqttHostile, '$admin', ''),
            fc.string({ unit: 'binary', maxLength: 30 }),
          ),
          password: fc.oneof(fc.constantFrom('', 'wrong', ADMIN_KEY.slice(0, -1)), fc.string({ unit: 'binary', maxLength: 30 })),
        }),
        weight: 1,
      },
    );

    test("an authenticated device's hostile publishes, subscribes and packets: contract topics are answered, nothing leaks in", async () => {
      await fc.assert(
        fc.asyncProperty(input, async (hostile) => {
          tally.count('mqtt');
          if (hostile.kind === 'login') {
            // Wrong credentials on a fresh socket: refused with a CONNACK code, or closed.
            const socket = await RawMqttSession.socket(t.node.mqttPort);
            try {
              const connect = mqttPacket.generate({
                cmd: 'connect',
                protocolId: 'MQTT',
                protocolVersion: 4,
                clean: true,
                clientId: `fuzz-login-${tally.total}`,
                keepalive: 0,
                username: hostile.username,
                password: Buffer.from(hostile.password),
              });
              socket.write(connect);
              const connack = await until('a CONNACK or a close', () =>
                socket.closed ? null : socket.received.find((p) => p.cmd === 'connack'),
              );
              if (connack !== null)
                assert.notEqual((connack as { returnCode: number }).returnCode, 0, `login ${JSON.stringify(hostile)} accepted`);
            } finally {
              socket.destroy();
            }
          } else if (hostile.kind === 'garbage') {
            // Garbage leaves a session in no known state: it gets a session of its own, closed once the node has read it.
            const throwaway = await RawMqttSession.login(t.node.mqttPort, KEEP.mqttHostile, hostileToken, `${KEEP.mqttHostile}-garbage`);
            throwaway.write(Buffer.from(hostile.bytes));
            await throwaway.end();
          } else {
            const live = await hostileSession();
            if (hostile.kind === 'publish') {
              const bytes = bodyBytes(hostile.payload);
              const outcome = await live.publish(topicBytes(hostile.topic), bytes, hostile.qos, hostile.retain);
              const described = JSON.stringify({ ...hostile, payload: bytes.length > 300 ? `${bytes.length} bytes` : hostile.payload });
              // The guard reads sizes from the fixed header: a payload a little over the limit is refused by ingest instead.
              const remainingLength = 2 + topicBytes(hostile.topic).length + (hostile.qos > 0 ? 2 : 0) + bytes.length;
              if (remainingLength > MQTT_PACKET_LIMIT)
                assert.equal(outcome, 'closed', `over the packet limit but not closed: ${described}`);
              else if (isContractTopic(hostile.topic) && hostile.qos === 1)
                assert.equal(outcome, 'acknowledged', `a contract topic was not acknowledged: ${described}`);
            } else if (hostile.kind === 'subscribe') {
              const id = live.messageId();
              const seen = live.received.length;
              live.write(subscribePacket(Buffer.from(hostile.filter, 'utf8'), id));
              const suback = await until('a SUBACK or a close', () => {
                const answer = live.received.slice(seen).find((p) => p.cmd === 'suback' && p.messageId === id);
                if (answer) return answer as { granted: number[] };
                return live.closed ? null : undefined;
              });
              const ownFilter = hostile.filter.startsWith(prefix) && !hostile.filter.includes('\u0000');
              if (suback !== null && !ownFilter)
                assert.deepEqual(suback.granted, [128], `a foreign filter was granted: ${JSON.stringify(hostile.filter)}`);
            }
            // The barrier twice: packets read in one chunk are handled concurrently, the next chunk only after them.
            if (!live.closed) await live.barrier();
            const leaked = live.deliveredTopics().filter((delivered) => !delivered.startsWith(prefix));
            assert.deepEqual(leaked, [], `another device's messages reached the hostile device after ${JSON.stringify(hostile)}`);
          }
          await witness.send();
          await healthy(`MQTT ${JSON.stringify(hostile).slice(0, 300)}`);
        }),
        propertyParameters(200),
      );
      await readBack(
        ['telemetry', 'latest', 'events', 'twin', 'twin/history', 'errors', 'invocations', 'presence'].map(
          (part) => `/api/v1/devices/${KEEP.mqttHostile}/${part}?from=0`,
        ),
        'the MQTT fuzzing',
      );
    });
  });

  describe('WebSocket telemetry stream', () => {
    type ClientFrame =
      | { kind: 'text'; text: string }
      | { kind: 'binary'; bytes: Uint8Array }
      /** A text frame whose bytes are not UTF-8. */
      | { kind: 'bad-utf8'; bytes: Uint8Array }
      /** Over the node's 64 KiB frame limit. */
      | { kind: 'large'; bytes: number }
      | { kind: 'ping'; bytes: Uint8Array };

    type StreamInput = {
      device: string;
      authorization: string | undefined;
      ticket: string | undefined;
      /** A raw upgrade with these handshake headers instead of a real client. */
      handshake: { key: string | undefined; version: string | undefined } | undefined;
      frames: ClientFrame[];
    };

    const frame: fc.Arbitrary<ClientFrame> = fc.oneof(
      fc.oneof(fc.string({ unit: 'binary', maxLength: 60 }), jsonText([])).map((text) => ({ kind: 'text' as const, text })),
      fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ kind: 'binary' as const, bytes })),
      fc
        .constantFrom(Uint8Array.of(0xff), Uint8Array.of(0xed, 0xa0, 0x80), Uint8Array.of(0xc0, 0xaf))
        .map((bytes) => ({ kind: 'bad-utf8' as const, bytes })),
      fc.constantFrom(64 * 1024, 64 * 1024 + 1).map((bytes) => ({ kind: 'large' as const, bytes })),
      fc.uint8Array({ maxLength: 125 }).map((bytes) => ({ kind: 'ping' as const, bytes })),
    );

    const input = (deviceToken: string): fc.Arbitrary<StreamInput> =>
      fc.record({
        device: fc.oneof(
          fc.constant(FUZZ.device),
          fc.constant(FUZZ.device),
          hostileSegment([]).filter((s) => !namesKept(s) && s.length < 1000),
        ),
        authorization: fc.constantFrom(...AUTH_HEADERS(deviceToken)),
        ticket: fc.option(
          fc.oneof(
            fc.constant('issued'),
            fc.string({ unit: 'binary', maxLength: 40 }).map((text) => percentEncodeBytes(Buffer.from(text))),
          ),
          { nil: undefined },
        ),
        handshake: fc.option(
          fc.record({
            key: fc.option(fc.constantFrom('', 'short', 'dGhlIHNhbXBsZSBub25jZQ==', '!!!!!!!!!!!!!!!!!!!!!!!!', 'a'.repeat(200)), {
              nil: undefined,
            }),
            version: fc.option(fc.constantFrom('13', '8', '999', '', 'x'), { nil: undefined }),
          }),
          { nil: undefined, freq: 3 },
        ),
        frames: fc.array(frame, { maxLength: 4 }),
      });

    test('hostile keys, tickets, handshakes and client frames: refused below 500 or served, never a crash', async () => {
      await fc.assert(
        fc.asyncProperty(input(fuzzDeviceToken), async (hostile) => {
          tally.count('stream', 1 + hostile.frames.length);
          let ticket = hostile.ticket;
          if (ticket === 'issued') ticket = (await t.api<{ ticket: string }>('/api/v1/stream-tickets', { method: 'POST' })).body.ticket;
          const path = `/api/v1/devices/${hostile.device}/stream${ticket === undefined ? '' : `?ticket=${ticket}`}`;
          const headers: Record<string, string> = {};
          if (hostile.authorization !== undefined) headers.authorization = hostile.authorization;

          if (hostile.handshake) {
            headers.connection = 'Upgrade';
            headers.upgrade = 'websocket';
            if (hostile.handshake.key !== undefined) headers['sec-websocket-key'] = hostile.handshake.key;
            if (hostile.handshake.version !== undefined) headers['sec-websocket-version'] = hostile.handshake.version;
            const status = await upgradeStatus(t.node.httpPort, path, headers);
            assert.ok(status === 101 || status === undefined || status < 500, `${status} for ${JSON.stringify(hostile)}`);
          } else {
            await streamSession(`${t.node.httpUrl.replace('http', 'ws')}${path}`, headers, hostile.frames, JSON.stringify(hostile));
          }
          await witness.send();
          await healthy(`the stream input ${JSON.stringify(hostile).slice(0, 300)}`);
        }),
        propertyParameters(80),
      );
    });

    /** Opens the stream with a real client, sends the frames, and waits for the node to answer a ping (or close). */
    async function streamSession(url: string, headers: Record<string, string>, frames: ClientFrame[], described: string): Promise<void> {
      let socket: WebSocket;
      try {
        socket = new WebSocket(url, { headers });
      } catch {
        return; // the client would not even send it
      }
      const outcome = await new Promise<{ status: number } | 'open' | 'failed'>((resolve) => {
        socket.once('open', () => resolve('open'));
        socket.once('unexpected-response', (_request, response) => {
          resolve({ status: response.statusCode ?? 0 });
          response.resume();
        });
        socket.once('error', () => resolve('failed'));
      });
      if (typeof outcome === 'object') {
        socket.terminate();
        assert.ok(outcome.status < 500, `${outcome.status} for ${described}`);
        return;
      }
      if (outcome === 'failed') return;
      socket.on('error', () => undefined);
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      let isClosed = false;
      void closed.then(() => {
        isClosed = true;
      });
      for (const f of frames) {
        if (isClosed) break;
        if (f.kind === 'text') socket.send(f.text);
        else if (f.kind === 'binary') socket.send(Buffer.from(f.bytes), { binary: true });
        else if (f.kind === 'bad-utf8') socket.send(Buffer.from(f.bytes), { binary: false });
        else if (f.kind === 'large') socket.send(Buffer.alloc(f.bytes, 0x61), { binary: true });
        else socket.ping(Buffer.from(f.bytes));
      }
      if (!isClosed) {
        const pong = new Promise<void>((resolve) => socket.once('pong', () => resolve()));
        socket.ping();
        await Promise.race([pong, closed]);
      }
      socket.close();
      await closed;
    }
  });

  describe('edge link', () => {
    const deviceId = fc.oneof(
      { arbitrary: fc.constant(KEEP.edgeDevice), weight: 6 },
      { arbitrary: fc.constantFrom(FUZZ.device, KEEP.mqttWitness, 'nobody'), weight: 2 },
      { arbitrary: poisonString.map((text) => JSON.parse(text) as string), weight: 1 },
    );
    const poison = fc.oneof(poisonNumber, poisonString, jsonText(FUZZ_PROPERTIES, 3));
    const recent = fc.integer({ min: Date.now() - 600_000, max: Date.now() - 1 }).map(String);
    /** A field that is usually plausible and sometimes poison. */
    const field = (plausible: fc.Arbitrary<string>) => fc.oneof({ arbitrary: plausible, weight: 3 }, { arbitrary: poison, weight: 1 });
    const text = (values: string[]) => fc.constantFrom(...values).map((value) => JSON.stringify(value));
    const objectOf = (fields: Record<string, fc.Arbitrary<string>>) =>
      fc.record(Object.fromEntries(Object.entries(fields).map(([key, value]) => [key, fc.option(value, { nil: undefined, freq: 6 })]))).map(
        (chosen) =>
          `{${Object.entries(chosen)
            .filter(([, value]) => value !== undefined)
            .map(([key, value]) => `${JSON.stringify(key)}:${value}`)
            .join(',')}}`,
      );

    const device = field(deviceId.map((id) => JSON.stringify(id)));
    const record = fc.oneof(
      objectOf({ kind: text(['telemetry']), deviceId: device, ts: field(recent), values: field(objectText(FUZZ_PROPERTIES)) }),
      objectOf({
        kind: text(['event']),
        deviceId: device,
        name: field(text(['overheat', 'doorOpened', 'nope'])),
        ts: field(recent),
        data: poison,
      }),
      objectOf({
        kind: text(['twin']),
        deviceId: device,
        ts: field(recent),
        section: field(text(['reported', 'desired', 'other'])),
        values: field(objectText(FUZZ_PROPERTIES)),
        actor: field(text(['agent:x', ''])),
      }),
      objectOf({
        kind: text(['decision']),
        decision: objectOf({
          id: field(text(['d-1', 'd-2'])),
          agentId: field(text([FUZZ.agent, 'edge-agent'])),
          deviceId: device,
          ts: field(recent),
          outcome: field(text(['acted', 'proposed', 'nonsense'])),
        }),
      }),
      objectOf({
        kind: text(['alarm']),
        alarm: objectOf({
          id: field(text(['a-1', 'a-2'])),
          agentId: field(text([FUZZ.agent, 'edge-agent'])),
          deviceId: device,
          type: field(text(['threshold', ''])),
          state: field(text(['active', 'cleared', 'acknowledged', 'weird'])),
          raisedAt: field(recent),
        }),
      }),
      objectOf({
        kind: text(['invocation']),
        invocation: objectOf({
          id: field(text(['i-1', 'i-2'])),
          deviceId: device,
          action: field(text(['reset'])),
          status: field(text(['succeeded', 'failed', 'queued', 'weird'])),
          createdAt: field(recent),
          idempotencyKey: field(text(['cloud:nope', 'edge:1'])),
        }),
      }),
      objectOf({
        kind: text(['gap']),
        gap: objectOf({
          policy: field(text(['drop-oldest', 'downsample', 'other'])),
          at: field(recent),
          total: field(fc.nat({ max: 1000 }).map(String)),
          devices: field(objectText([KEEP.edgeDevice])),
        }),
      }),
      objectOf({ kind: field(text(['unknown', ''])), deviceId: device }),
      poison,
    );
    const seq = fc.oneof({ arbitrary: fc.integer({ min: 1, max: 1_000 }).map(String), weight: 4 }, { arbitrary: poison, weight: 1 });
    const records = fc.oneof(
      {
        arbitrary: fc
          .array(fc.tuple(seq, record), { maxLength: 6 })
          .map((entries) => `[${entries.map(([n, r]) => `{"seq":${n},"record":${r}}`).join(',')}]`),
        weight: 6,
      },
      { arbitrary: fc.oneof(jsonText([]), malformedJson), weight: 1 },
    );
    const header = fc.oneof(
      { arbitrary: fc.tuple(seq, seq).map(([first, last]) => `{"type":"batch","first":${first},"last":${last}}`), weight: 4 },
      { arbitrary: fc.oneof(jsonText(['type', 'first', 'last']), malformedJson).map((text) => text.replaceAll('\n', ' ')), weight: 1 },
    );
    const linkFrame: fc.Arbitrary<LinkFrame> = fc.oneof(
      { arbitrary: fc.record({ kind: fc.constant('batch' as const), header, records }), weight: 8 },
      { arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ kind: 'binary' as const, bytes })), weight: 1 },
      {
        arbitrary: fc.record({ kind: fc.constant('not-gzip' as const), header, body: fc.uint8Array({ maxLength: 100 }) }),
        weight: 1,
      },
      {
        arbitrary: fc
          .oneof(
            jsonText(['type', 'heartbeat', 'version', 'results']).map((json) => `{"type":"heartbeat","heartbeat":${json}}`),
            fc
              .tuple(poisonNumber, jsonText(['kind', 'id', 'status', 'reason']))
              .map(([version, results]) => `{"type":"applied","version":${version},"results":${results}}`),
            objectText(['type', 'heartbeat', 'version', 'results']),
            malformedJson,
          )
          .map((json) => ({ kind: 'text' as const, text: json })),
        weight: 3,
      },
      {
        // Modest bombs: the compressed frame stays under the 64 KiB frame limit.
        arbitrary: fc.record({
          kind: fc.constant('bomb' as const),
          header: fc.constant('{"type":"batch","first":1,"last":1}'),
          inflated: fc.constantFrom(1024 * 1024, 16 * 1024 * 1024, 60 * 1024 * 1024),
          fill: fc.constantFrom('0' as const, ' ' as const),
        }),
        weight: 1,
      },
    );
    const linkInput = fc.record({
      /** A fresh outbox epoch per run resets the applied mark, so one run's huge seq does not blind the rest. */
      epoch: fc.option(
        poisonString.map((text) => text.replaceAll(/[^\x20-\x7e]/g, '?')),
        { nil: undefined, freq: 8 },
      ),
      wrongToken: fc.oneof({ arbitrary: fc.constant(false), weight: 12 }, { arbitrary: fc.constant(true), weight: 1 }),
      frames: fc.array(linkFrame, { minLength: 1, maxLength: 4 }),
    });

    let run = 0;
    test('hostile frames on an authenticated edge link: every batch answered (ack or error), stored data still readable', async () => {
      await fc.assert(
        fc.asyncProperty(linkInput, async (hostile) => {
          run++;
          tally.count('edge-link', hostile.frames.length);
          const headers: Record<string, string> = {
            authorization: `Bearer ${hostile.wrongToken ? 'not-the-edge-token' : edgeToken}`,
            'thingloop-outbox-epoch': hostile.epoch ?? `fuzz-epoch-${run}`,
          };
          const link = new WebSocket(`${t.node.httpUrl.replace('http', 'ws')}/api/v1/edges/${KEEP.edge}/link`, { headers });
          const replies: { type: string }[] = [];
          link.on('message', (data: Buffer) => replies.push(JSON.parse(data.toString()) as { type: string }));
          link.on('error', () => undefined);
          let closed = false;
          const closing = new Promise<void>((resolve) =>
            link.once('close', () => {
              closed = true;
              resolve();
            }),
          );
          const refused = new Promise<number>((resolve) =>
            link.once('unexpected-response', (_request, response) => {
              response.resume();
              resolve(response.statusCode ?? 0);
            }),
          );
          const opened = await Promise.race([
            refused,
            until('the ack that opens the link', () => (replies.some((r) => r.type === 'ack') ? -1 : undefined)),
          ]);
          if (opened !== -1) {
            assert.ok(opened < 500, `${opened} when opening the link`);
            assert.ok(hostile.wrongToken, `the edge token was refused (${opened})`);
            link.terminate();
            return;
          }
          const answered = () => replies.filter((r) => r.type === 'ack' || r.type === 'error').length;
          const before = answered();
          let binary = 0;
          for (const f of hostile.frames) {
            if (closed) break;
            link.send(linkFrameBytes(f), { binary: isBinaryFrame(f) });
            if (isBinaryFrame(f)) binary++;
          }
          const described = JSON.stringify(hostile.frames, (_key, value: unknown) =>
            typeof value === 'string' && value.length > 300 ? `${value.slice(0, 300)}…` : value,
          );
          await until(
            `an answer to each of ${binary} binary frames: ${described.slice(0, 500)}`,
            () => (closed || answered() >= before + binary ? true : undefined),
            30_000,
          );
          link.close();
          await closing;
          await readBack(
            [
              '/api/v1/edges',
              `/api/v1/edges/${KEEP.edge}`,
              `/api/v1/edges/${KEEP.edge}/config`,
              `/api/v1/edges/${KEEP.edge}/gaps`,
              `/api/v1/devices?edge=${KEEP.edge}`,
              '/api/v1/devices/summary',
              '/api/v1/alarms',
              '/api/v1/approvals',
              `/api/v1/agents/${FUZZ.agent}/decisions`,
              ...['', '/telemetry?from=0', '/latest', '/events', '/twin', '/twin/history', '/invocations', '/presence'].map(
                (part) => `/api/v1/devices/${KEEP.edgeDevice}${part}`,
              ),
            ],
            `the link frames ${described.slice(0, 500)}`,
          );
          await witness.send();
          await healthy('edge link frames');
        }),
        propertyParameters(80),
      );
    });
  });

  /**
   * Sends a WebSocket upgrade, reads the answer, then ends the client's side: the node must close
   * its side too. A socket it keeps is closed here, so a failure does not also hang the node's stop.
   */
  async function refusedUpgrade(path: string, authorization: string): Promise<number | undefined> {
    const socket = connect({ host: '127.0.0.1', port: t.node.httpPort });
    await new Promise((resolve) => socket.once('connect', resolve));
    let answer = '';
    let closed = false;
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
    });
    const clientPort = socket.localPort;
    socket.write(
      [
        `GET ${path} HTTP/1.1`,
        'Host: 127.0.0.1',
        'Connection: Upgrade',
        'Upgrade: websocket',
        'Sec-WebSocket-Version: 13',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
        `Authorization: ${authorization}`,
        '',
        '',
      ].join('\r\n'),
    );
    try {
      const status = await until('the answer to the upgrade', () => statusOf(answer.split('\r\n')[0]));
      socket.end();
      await until(`the node closing the refused upgrade of ${path}`, () => (closed ? true : undefined), 3_000);
      return status;
    } finally {
      socket.destroy();
      for (const accepted of acceptedHttpSockets) if (accepted.remotePort === clientPort) accepted.destroy();
    }
  }

  test('a WebSocket upgrade the access check refuses is answered 401 and closed, not left half-open', async () => {
    for (const path of [`/api/v1/devices/${FUZZ.device}/stream`, `/api/v1/edges/${KEEP.edge}/link`]) {
      assert.equal(await refusedUpgrade(path, 'Bearer wrong-key-0123456789'), 401, path);
    }
  });

  test('a WebSocket upgrade whose path cannot be decoded is answered 400 and closed', async () => {
    for (const path of ['/%zz', `/api/v1/devices/%ED%A0%80/stream`]) {
      assert.equal(await refusedUpgrade(path, `Bearer ${ADMIN_KEY}`), 400, path);
    }
  });

  test('afterwards: every acknowledged good sample is stored, the node is ready, a device still connects, refusals were counted', async () => {
    for (const [deviceId, acknowledged] of [
      [KEEP.httpWitness, witness.acknowledged.http],
      [KEEP.mqttWitness, witness.acknowledged.mqtt],
    ] as const) {
      const stored = await witness.stored(deviceId);
      assert.ok(acknowledged.size > 0);
      // Exactly: nothing acknowledged is missing, and nothing a hostile device sent landed on a witness.
      assert.deepEqual(
        stored,
        [...acknowledged].sort((a, b) => a - b),
        `${deviceId}: stored ≠ acknowledged`,
      );
    }

    assert.equal((await t.api('/readyz', { auth: null })).status, 200);
    const { token } = await t.registerDevice('after-the-storm', KEEP.witnessModel);
    const device = await t.connectDevice('after-the-storm', token);
    await device.publishAsync('things/after-the-storm/telemetry', JSON.stringify({ seq: 7 }), { qos: 1 });
    const latest = await t.api<{ values: Record<string, { value: unknown }> }>('/api/v1/devices/after-the-storm/latest');
    assert.equal(latest.body.values.seq?.value, 7);

    const metrics = await t.api<string>('/metrics');
    assert.equal(metrics.status, 200);
    for (const name of ['thingloop_refusals_total', 'thingloop_values_rejected_total']) {
      const counted = metrics.body
        .split('\n')
        .filter((line) => line.startsWith(`${name}{`))
        .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
      assert.ok(counted > 0, `${name} counted nothing`);
    }
    const witnessed = witness.acknowledged.http.size + witness.acknowledged.mqtt.size;
    console.log(`good samples acknowledged and found again: ${witnessed.toLocaleString('en-US')}`);
  });

  describe('uplink records the cloud once stored and then could not read back (found by this suite)', () => {
    /** Opens a new edge's link, sends one batch, and waits for its answer. */
    async function uplink(edgeId: string, records: unknown[]): Promise<string> {
      const { token } = (await t.api<{ token: string }>('/api/v1/edges', { method: 'POST', body: { id: edgeId } })).body;
      await t.registerDevice(`${edgeId}-pump`, FUZZ.model, { edge: edgeId });
      const link = new WebSocket(`${t.node.httpUrl.replace('http', 'ws')}/api/v1/edges/${edgeId}/link`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const replies: string[] = [];
      link.on('message', (data: Buffer) => replies.push(data.toString()));
      await until('the link to open', () => (replies.length > 0 ? true : undefined));
      link.send(encodeBatch(records.map((record, i) => ({ seq: i + 1, record }) as SequencedRecord)));
      const answer = await until('the answer to the batch', () => replies.find((r) => r.includes('"upTo":1') || r.includes('"error"')));
      link.close();
      return answer;
    }

    test('an uplink gap report without policy or devices does not break GET …/gaps', async () => {
      await uplink('defect-gap', [{ kind: 'gap', gap: { at: Date.now(), total: 1 } }]);
      assert.equal((await t.api('/api/v1/edges/defect-gap/gaps')).status, 200);
    });

    test('an uplink gap report with malformed device entries does not break GET …/gaps', async () => {
      await uplink('defect-gap-devices', [
        { kind: 'gap', gap: { policy: 'downsample', at: Date.now() - 5000, total: 1, devices: { 'defect-gap-devices-pump': -5 } } },
      ]);
      assert.equal((await t.api('/api/v1/edges/defect-gap-devices/gaps')).status, 200);
    });

    test('an uplink invocation without its action does not break GET …/invocations', async () => {
      await uplink('defect-inv', [
        {
          kind: 'invocation',
          invocation: { id: 'defect-inv-1', deviceId: 'defect-inv-pump', status: 'succeeded', createdAt: Date.now() - 1000 },
        },
      ]);
      assert.equal((await t.api('/api/v1/devices/defect-inv-pump/invocations')).status, 200);
      // Refused (404) or stored whole (200): either way not a 500.
      assert.ok((await t.api('/api/v1/invocations/defect-inv-1')).status < 500);
    });

    test('an uplink invocation missing the fields an invocation is read with does not break GET …/invocations', async () => {
      await uplink('defect-inv-fields', [
        {
          kind: 'invocation',
          invocation: {
            id: 'defect-inv-fields-1',
            deviceId: 'defect-inv-fields-pump',
            action: 'reset',
            status: 'succeeded',
            createdAt: Date.now() - 1000,
          },
        },
      ]);
      assert.equal((await t.api('/api/v1/devices/defect-inv-fields-pump/invocations')).status, 200);
      assert.ok((await t.api('/api/v1/invocations/defect-inv-fields-1')).status < 500);
    });

    test('an uplink telemetry record with null values does not break GET …/telemetry and …/latest', async () => {
      await uplink('defect-null', [{ kind: 'telemetry', deviceId: 'defect-null-pump', ts: Date.now() - 1000, values: null }]);
      assert.equal((await t.api('/api/v1/devices/defect-null-pump/telemetry?from=0')).status, 200);
      assert.equal((await t.api('/api/v1/devices/defect-null-pump/latest')).status, 200);
    });
  });
});

/** The status a raw upgrade request gets: 101 when the node switches, undefined when it just closes. */
function upgradeStatus(port: number, path: string, headers: Record<string, string>): Promise<number | undefined> {
  return new Promise((resolve) => {
    let req: ReturnType<typeof httpRequest>;
    try {
      req = httpRequest({ host: '127.0.0.1', port, path, headers, agent: false });
    } catch {
      resolve(undefined);
      return;
    }
    req.on('upgrade', (_response, socket) => {
      socket.destroy();
      resolve(101);
    });
    req.on('response', (response) => {
      response.resume();
      resolve(response.statusCode);
    });
    req.on('error', () => resolve(undefined));
    req.end();
  });
}
