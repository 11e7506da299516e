import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Ajv, type ValidateFunction } from 'ajv';
import { ADMIN_KEY, type JsonObject, PUMP_MODEL, startTestNode, type TestNode } from './support/harness.js';

// The W3C WoT TD 1.1 JSON Schema as the Thing Description Playground ships it (draft-07).
const require = createRequire(import.meta.url);
const schemaPath = require.resolve('@thing-description-playground/core/td-schema.json');
const tdSchema = JSON.parse(readFileSync(schemaPath, 'utf8')) as JsonObject;

interface Form {
  href: string;
  op?: string | string[];
  security?: string[];
  [term: string]: unknown;
}

interface Affordance {
  forms: Form[];
  [member: string]: unknown;
}

interface TdBody {
  '@context': unknown[];
  id: string;
  title: string;
  securityDefinitions: Record<string, { scheme: string }>;
  security: string[];
  properties: Record<string, Affordance>;
  actions: Record<string, Affordance>;
  events: Record<string, Affordance>;
  forms: Form[];
  links: { href: string; rel: string }[];
}

const MODBUS_PUMP = {
  '@context': ['https://www.w3.org/2022/wot/td/v1.1', { modv: 'https://www.w3.org/2019/wot/modbus#' }],
  '@type': 'tm:ThingModel',
  title: 'Pump behind a PLC',
  properties: {
    speed: {
      type: 'number',
      unit: 'percent',
      minimum: 0,
      maximum: 100,
      forms: [
        {
          href: 'modbus+tcp://{{host}}:{{port}}/{{unitId}}/40001?quantity=1',
          op: ['readproperty', 'writeproperty'],
          'modv:entity': 'HoldingRegister',
          'modv:type': 'xsd:unsignedShort',
          'modv:pollingTime': 1000,
        },
      ],
    },
    temperature: {
      type: 'number',
      unit: 'Cel',
      readOnly: true,
      forms: [
        {
          href: 'modbus+tcp://{{host}}:{{port}}/{{unitId}}/30001?quantity=2',
          op: 'readproperty',
          'modv:entity': 'InputRegister',
          'modv:type': 'xsd:float',
        },
      ],
    },
  },
  actions: {
    reset: { forms: [{ href: 'modbus+tcp://{{host}}:{{port}}/{{unitId}}/2', op: 'invokeaction', 'modv:entity': 'Coil' }] },
  },
  events: {},
};

/** Every op of the forms of one affordance, per URI scheme. */
function opsByScheme(forms: Form[]): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const form of forms) {
    const scheme = new URL(form.href).protocol;
    const ops = Array.isArray(form.op) ? form.op : form.op ? [form.op] : [];
    found.set(scheme, [...(found.get(scheme) ?? []), ...ops]);
  }
  return found;
}

describe('WoT Thing Description of a device', () => {
  let t: TestNode;
  let validate: ValidateFunction;
  before(async () => {
    assert.equal(tdSchema.$schema, 'http://json-schema.org/draft-07/schema#');
    const ajv = new Ajv({ strict: false, allErrors: true });
    validate = ajv.compile(tdSchema);
    t = await startTestNode();
    await t.api('/api/v1/models/modbus-pump', { method: 'PUT', body: MODBUS_PUMP });
  });
  after(() => t.stop());

  const expectValid = (td: unknown) => {
    const valid = validate(td);
    assert.ok(valid, `TD invalid: ${JSON.stringify(validate.errors?.slice(0, 5), null, 2)}`);
  };

  test('the schema check is real: a TD without title or with an unknown op is refused', () => {
    assert.equal(
      validate({ '@context': 'https://www.w3.org/2022/wot/td/v1.1', security: ['s'], securityDefinitions: { s: { scheme: 'nosec' } } }),
      false,
    );
    assert.equal(
      validate({
        '@context': 'https://www.w3.org/2022/wot/td/v1.1',
        title: 'x',
        security: ['s'],
        securityDefinitions: { s: { scheme: 'nosec' } },
        properties: { p: { type: 'number', forms: [{ href: 'http://x', op: 'invokeaction' }] } },
      }),
      false,
    );
  });

  test("an MQTT device's TD validates and offers HTTP, WebSocket and MQTT forms with the model's schemas and units", async () => {
    const { device } = await t.registerDevice('td-pump', 'pump', { name: 'Pump 7' });
    const response = await fetch(`${t.node.httpUrl}/api/v1/devices/td-pump/td`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/td\+json/);
    const td = (await response.json()) as TdBody;
    expectValid(td);

    assert.equal(td['@context'][0], 'https://www.w3.org/2022/wot/td/v1.1');
    assert.equal(td.id, `urn:thingloop:device:${device.code}`);
    assert.doesNotThrow(() => new URL(td.id));
    assert.equal(td.title, 'Pump 7');
    assert.deepEqual(td.security, ['bearer_sc']);
    assert.equal(td.securityDefinitions.bearer_sc?.scheme, 'bearer');
    assert.equal(td.securityDefinitions.mqtt_sc?.scheme, 'basic');
    assert.ok(!Object.values(td.securityDefinitions).some((s) => s.scheme === 'nosec'), 'the platform is never nosec');

    assert.deepEqual(Object.keys(td.properties), Object.keys(PUMP_MODEL.properties));
    assert.equal(td.properties.temperature?.unit, 'Cel');
    assert.equal(td.properties.temperature?.maximum, 200);
    assert.equal(td.properties.temperature?.readOnly, true);
    assert.deepEqual(td.properties.mode?.enum, ['auto', 'manual', 'maintenance']);
    assert.deepEqual(td.actions.reset?.input, PUMP_MODEL.actions.reset.input);
    assert.deepEqual(td.events.overheat?.data, PUMP_MODEL.events.overheat.data);

    const base = `${t.node.httpUrl}/api/v1/devices/td-pump`;
    const speed = td.properties.speed?.forms ?? [];
    assert.ok(speed.some((f) => f.href === `${base}/twin` && f.op === 'readproperty' && f['htv:methodName'] === 'GET'));
    assert.ok(speed.some((f) => f.href === `${base}/twin` && f.op === 'writeproperty' && f['htv:methodName'] === 'PATCH'));
    assert.ok(speed.some((f) => f.href === `${base.replace('http:', 'ws:')}/stream` && f.op === 'observeproperty'));
    const mqttPort = new URL(t.node.mqttUrl).port;
    const mqtt = speed.find((f) => f.href.startsWith('mqtt:'));
    assert.deepEqual(mqtt && { ...mqtt }, {
      href: `mqtt://127.0.0.1:${mqttPort}/things/td-pump/telemetry`,
      op: 'observeproperty',
      contentType: 'application/json',
      'mqv:filter': 'things/td-pump/telemetry',
      'mqv:controlPacket': 'subscribe',
      security: ['mqtt_sc'],
    });
    // A read-only property has no write form anywhere.
    assert.ok(!(td.properties.temperature?.forms ?? []).some((f) => f.op === 'writeproperty'));
    assert.ok(
      (td.actions.reset?.forms ?? []).some(
        (f) => f.href === `${base}/actions/reset` && f.op === 'invokeaction' && f['htv:methodName'] === 'POST',
      ),
    );
    const overheat = opsByScheme(td.events.overheat?.forms ?? []);
    assert.deepEqual(overheat.get('mqtt:'), ['subscribeevent']);
    assert.ok((td.events.overheat?.forms ?? []).some((f) => f['mqv:filter'] === 'things/td-pump/events/overheat'));
  });

  test('the forms work: the HTTP read form answers the twin, the write form changes the desired state', async () => {
    await t.registerDevice('td-live');
    const td = (await t.api<TdBody>('/api/v1/devices/td-live/td')).body;
    const read = td.properties.speed?.forms.find((f) => f.op === 'readproperty' && f.href.startsWith('http'));
    const write = td.properties.speed?.forms.find((f) => f.op === 'writeproperty');
    assert.ok(read && write);
    const twin = await fetch(read.href, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(twin.status, 200);
    const { version } = (await twin.json()) as { version: number };
    const written = await fetch(write.href, {
      method: String(write['htv:methodName']),
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', 'if-match': `"${version}"` },
      body: JSON.stringify({ desired: { speed: 40 } }),
    });
    assert.equal(written.status, 200);
    assert.equal(((await written.json()) as { desired: { speed: number } }).desired.speed, 40);
  });

  test("a Modbus device's TD carries the model's Modbus forms with its host, port and unit filled, and no MQTT forms", async () => {
    await t.registerDevice('td-plc', 'modbus-pump', { binding: { protocol: 'modbus-tcp', host: '10.1.2.3', unitId: 7 } });
    const td = (await t.api<TdBody>('/api/v1/devices/td-plc/td')).body;
    expectValid(td);
    const speed = td.properties.speed?.forms.find((f) => f.href.startsWith('modbus+tcp:'));
    assert.deepEqual(speed && { ...speed }, {
      href: 'modbus+tcp://10.1.2.3:502/7/40001?quantity=1',
      op: ['readproperty', 'writeproperty'],
      'modv:entity': 'HoldingRegister',
      'modv:type': 'xsd:unsignedShort',
      'modv:pollingTime': 1000,
      security: ['nosec_sc'],
    });
    assert.equal(
      td.properties.temperature?.forms.find((f) => f.href.startsWith('modbus'))?.href,
      'modbus+tcp://10.1.2.3:502/7/30001?quantity=2',
    );
    assert.equal(td.actions.reset?.forms.find((f) => f.href.startsWith('modbus'))?.href, 'modbus+tcp://10.1.2.3:502/7/2');
    assert.ok(JSON.stringify(td).indexOf('{{') === -1, 'no placeholder is left');
    assert.equal(td.securityDefinitions.nosec_sc?.scheme, 'nosec');
    assert.ok(!JSON.stringify(td).includes('mqtt://'), 'the PLC does not publish on the broker');
    // The model's vocabulary stays declared for its terms.
    assert.deepEqual(td['@context'][1], {
      htv: 'http://www.w3.org/2011/http#',
      mqv: 'http://www.example.org/mqtt-binding#',
      modv: 'https://www.w3.org/2019/wot/modbus#',
    });
    assert.ok(
      td.properties.speed?.forms.some((f) => f.op === 'readproperty' && f.href.startsWith('http')),
      'HTTP reaches every device',
    );
  });

  test("a CoAP device's TD validates and links its resources on the CoAP listener", async () => {
    await t.registerDevice('td-tank', 'pump', { binding: { protocol: 'coap' } });
    const td = (await t.api<TdBody>('/api/v1/devices/td-tank/td')).body;
    expectValid(td);
    assert.ok(!JSON.stringify(td).includes('mqtt://'));
    const coap = td.links.filter((link) => link.href.startsWith('coap://'));
    const info = (await t.api<{ coapPort?: number }>('/api/v1/node')).body;
    if (info.coapPort === undefined) {
      assert.deepEqual(coap, [], 'no CoAP listener, no CoAP links');
      return;
    }
    const origin = `coap://127.0.0.1:${info.coapPort}/things/td-tank`;
    assert.deepEqual(
      coap.map((link) => link.href),
      [
        `${origin}/telemetry`,
        `${origin}/events/overheat`,
        `${origin}/events/doorOpened`,
        `${origin}/twin/reported`,
        `${origin}/twin/desired`,
        `${origin}/actions`,
        `${origin}/actions/reset/result`,
      ],
    );
  });

  test('a Host header that is not a host name is refused with the reason, as is a request without one', async () => {
    await t.registerDevice('td-host');
    const ask = (hostLine: string) =>
      new Promise<string>((resolve, reject) => {
        const { port } = new URL(t.node.httpUrl);
        const socket = connect(Number(port), '127.0.0.1', () => {
          socket.end(`GET /api/v1/devices/td-host/td HTTP/1.0\r\n${hostLine}Authorization: Bearer ${ADMIN_KEY}\r\n\r\n`);
        });
        let text = '';
        socket.on('data', (chunk) => {
          text += chunk.toString();
        });
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
    const refusals = async () => {
      const metrics = (await t.api<string>('/metrics')).body;
      return Number(/thingloop_refusals_total\{listener="http",reason="invalid_request"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    };
    const before = await refusals();
    const bad = await ask('Host: evil/path@x\r\n');
    assert.match(bad, /^HTTP\/1\.[01] 400/);
    assert.match(bad, /is not a host name with an optional port/);
    const none = await ask('');
    assert.match(none, /^HTTP\/1\.[01] 400/);
    assert.match(none, /send a Host header/);
    assert.equal(await refusals(), before + 2, 'both refusals are counted');
    const good = await ask('Host: plant.example:8443\r\n');
    assert.match(good, /^HTTP\/1\.[01] 200/);
    assert.match(good, /"http:\/\/plant\.example:8443\/api\/v1\/devices\/td-host\/twin"/);
    assert.match(good, /"mqtt:\/\/plant\.example:\d+\/things\/td-host\/telemetry"/);
  });

  test('the TD is for admins only, and an unknown device is 404', async () => {
    await t.registerDevice('td-private');
    assert.equal((await t.api('/api/v1/devices/td-private/td', { auth: null })).status, 401);
    assert.equal((await t.api('/api/v1/devices/td-missing/td')).status, 404);
  });
});

describe('Thing Description hosts', () => {
  test('--public-host names the broker in MQTT forms; the HTTP forms keep the host the request came to', async () => {
    const t = await startTestNode({ publicHost: 'plant.example' });
    try {
      await t.registerDevice('td-public');
      const td = (await t.api<TdBody>('/api/v1/devices/td-public/td')).body;
      const mqttPort = new URL(t.node.mqttUrl).port;
      const forms = td.properties.speed?.forms ?? [];
      assert.ok(forms.some((f) => f.href === `mqtt://plant.example:${mqttPort}/things/td-public/telemetry`));
      assert.ok(forms.some((f) => f.href === `${t.node.httpUrl}/api/v1/devices/td-public/twin`));
    } finally {
      await t.stop();
    }
  });
});
