/**
 * Hostile values on a real node (issue #17, defects 4 and 7): a timestamp outside the range of
 * JavaScript dates, integers beyond 2^53, strings with U+0000 or a lone surrogate. Each is a
 * refusal of that sample or value only, with a reason, over HTTP and MQTT alike; never a 500,
 * never a QoS 1 message left unacknowledged.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { nextMessage, startTestNode, type TestNode } from './support/harness.js';

const SENSOR_MODEL = {
  title: 'Tank sensor',
  properties: {
    temperature: { type: 'number', minimum: -40, maximum: 200 },
    count: { type: 'integer' },
    level: { type: 'integer', minimum: 0 },
    label: { type: 'string' },
    reading: { type: 'number' },
    position: { type: 'object', properties: { x: { type: 'integer' }, tag: { type: 'string' } } },
  },
  events: {
    note: { data: { type: 'string' } },
    ping: {},
    overheat: { data: { type: 'object', properties: { temperature: { type: 'number' } }, required: ['temperature'] } },
  },
};

interface RejectionBody {
  reason: string;
  message: string;
  property?: string;
  event?: string;
  sample?: number;
  value?: unknown;
}
interface IngestBody {
  acceptedSamples: number;
  rejections: RejectionBody[];
}
interface ErrorReport {
  source: string;
  rejections: RejectionBody[];
}
interface Latest {
  values: Record<string, { value: unknown; ts: number }>;
}

const POISON_TIMESTAMPS: unknown[] = [
  1e300,
  -1e300,
  8.64e15 + 1,
  -8.64e15 - 1,
  '+275760-09-14T00:00:00.001Z',
  '9999999-01-01',
  'NaN',
  'Infinity',
];

describe('hostile values', () => {
  let t: TestNode;
  let token: string;
  /** Over MQTT as `tank-m`: refusals of HTTP calls (for `tank-1`) are published too and must not be mistaken for its own. */
  let client: MqttClient;

  before(async () => {
    t = await startTestNode();
    const put = await t.api('/api/v1/models/sensor', { method: 'PUT', body: SENSOR_MODEL });
    assert.ok(put.status === 200 || put.status === 201, JSON.stringify(put.body));
    ({ token } = await t.registerDevice('tank-1', 'sensor'));
    const mqttDevice = await t.registerDevice('tank-m', 'sensor');
    client = await t.connectDevice('tank-m', mqttDevice.token);
    await client.subscribeAsync('things/tank-m/errors');
  });
  after(() => t.stop());

  const latest = async (device = 'tank-1') => (await t.api<Latest>(`/api/v1/devices/${device}/latest`)).body.values;
  const postTelemetry = (body: unknown) => t.api<IngestBody>('/api/v1/devices/tank-1/telemetry', { method: 'POST', auth: token, body });
  const postEvent = (name: string, body: unknown) =>
    t.api<{ error?: string; rejection: RejectionBody }>(`/api/v1/devices/tank-1/events/${name}`, { method: 'POST', auth: token, body });
  const rejectedCount = async (reason: string) => {
    const metrics = await t.api<string>('/metrics');
    const match = new RegExp(`thingloop_values_rejected_total\\{reason="${reason}"\\} (\\d+)`).exec(metrics.body);
    return match ? Number(match[1]) : 0;
  };

  describe('timestamps outside the range of dates', () => {
    test('HTTP: the poison sample of a batch is refused as bad_timestamp, the valid one is stored (200)', async () => {
      const counted = await rejectedCount('bad_timestamp');
      const response = await postTelemetry([{ ts: 1e300, temperature: 20 }, { temperature: 21 }]);
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.equal(response.body.acceptedSamples, 1);
      assert.deepEqual(
        response.body.rejections.map((r) => [r.sample, r.reason]),
        [[0, 'bad_timestamp']],
      );
      assert.equal((await latest()).temperature?.value, 21);
      assert.equal(await rejectedCount('bad_timestamp'), counted + 1, '/metrics counts the refusal');
    });

    test('HTTP: every out-of-range spelling is a bad_timestamp refusal, never a 500', async () => {
      for (const ts of POISON_TIMESTAMPS) {
        const response = await postTelemetry([{ ts, temperature: 30 }, { temperature: 31 }]);
        assert.equal(response.status, 200, `${JSON.stringify(ts)}: ${JSON.stringify(response.body)}`);
        assert.deepEqual(
          response.body.rejections.map((r) => [r.sample, r.reason]),
          [[0, 'bad_timestamp']],
          JSON.stringify(ts),
        );
      }
      const alone = await postTelemetry({ ts: 1e300, temperature: 30 });
      assert.equal(alone.status, 400, 'nothing stored: a refusal, not a server error');
      assert.equal(alone.body.rejections[0]?.reason, 'bad_timestamp');
    });

    test('MQTT QoS 1: the PUBACK arrives, the valid sample is stored, the connection stays open and later telemetry arrives', async () => {
      const report = nextMessage<ErrorReport>(client, 'things/tank-m/errors');
      await client.publishAsync('things/tank-m/telemetry', JSON.stringify([{ ts: 1e300, temperature: 40 }, { temperature: 41 }]), {
        qos: 1,
      });
      const received = await report;
      assert.equal(received.source, 'telemetry');
      assert.deepEqual(
        received.rejections.map((r) => [r.sample, r.reason]),
        [[0, 'bad_timestamp']],
      );
      assert.equal((await latest('tank-m')).temperature?.value, 41);
      assert.ok(client.connected, 'the connection stays open');
      await client.publishAsync('things/tank-m/telemetry', JSON.stringify({ temperature: 42 }), { qos: 1 });
      assert.equal((await latest('tank-m')).temperature?.value, 42, 'later telemetry arrives');
    });

    test('HTTP event: 400 with bad_timestamp, not 500', async () => {
      const counted = await rejectedCount('bad_timestamp');
      for (const ts of POISON_TIMESTAMPS) {
        const response = await postEvent('ping', { ts });
        assert.equal(response.status, 400, `${JSON.stringify(ts)}: ${JSON.stringify(response.body)}`);
        assert.equal(response.body.rejection.reason, 'bad_timestamp', JSON.stringify(ts));
      }
      assert.equal(await rejectedCount('bad_timestamp'), counted + POISON_TIMESTAMPS.length);
    });

    test('MQTT event: acknowledged and refused on things/{id}/errors; the connection stays open', async () => {
      const report = nextMessage<ErrorReport>(client, 'things/tank-m/errors');
      await client.publishAsync('things/tank-m/events/ping', JSON.stringify({ ts: 1e300 }), { qos: 1 });
      const received = await report;
      assert.equal(received.source, 'event');
      assert.deepEqual(
        received.rejections.map((r) => [r.event, r.reason]),
        [['ping', 'bad_timestamp']],
      );
      assert.ok(client.connected);
      await client.publishAsync('things/tank-m/events/ping', '', { qos: 1 });
      const page = await t.api<{ items: { name: string }[] }>('/api/v1/devices/tank-m/events?name=ping');
      assert.equal(page.body.items.length, 1, 'only the event with a good time was stored');
    });

    test('GET telemetry and events: from/to outside the range of dates are a 400', async () => {
      for (const query of [
        'from=1e300',
        `from=1${'0'.repeat(300)}`,
        `to=1${'0'.repeat(300)}`,
        `to=${'9'.repeat(400)}`,
        `from=-${'9'.repeat(20)}`,
        'from=%2B275760-09-14T00:00:00.001Z',
        `from=-${'9'.repeat(20)}d`,
      ]) {
        for (const path of ['telemetry', 'events']) {
          const response = await t.api<{ error: string }>(`/api/v1/devices/tank-1/${path}?${query}`);
          assert.equal(response.status, 400, `${path}?${query}: ${JSON.stringify(response.body)}`);
          assert.equal(response.body.error, 'invalid');
        }
      }
    });
  });

  describe('integers beyond 2^53', () => {
    test('an integer property refuses an unsafe integer over HTTP, MQTT and twin writes; safe ones are kept', async () => {
      const response = await postTelemetry({ count: 2 ** 53 + 2, level: 2 ** 53 - 1 });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.deepEqual(
        response.body.rejections.map((r) => [r.property, r.reason]),
        [['count', 'out_of_range']],
      );
      assert.match(response.body.rejections[0]?.message ?? '', /safe integer/);
      assert.equal((await latest()).level?.value, 2 ** 53 - 1);

      const report = nextMessage<ErrorReport>(client, 'things/tank-m/errors');
      // The digits as a device sends them: JSON.parse already rounds 2^53 + 1 to 2^53.
      await client.publishAsync('things/tank-m/telemetry', '{"count": 9007199254740993, "level": 7}', { qos: 1 });
      const received = await report;
      assert.deepEqual(
        received.rejections.map((r) => [r.property, r.reason]),
        [['count', 'out_of_range']],
      );
      assert.equal((await latest('tank-m')).level?.value, 7);

      const nested = await postTelemetry({ position: { x: -(2 ** 53) - 2, tag: 'a' } });
      assert.equal(nested.status, 400);
      assert.deepEqual(
        nested.body.rejections.map((r) => [r.property, r.reason]),
        [['position', 'out_of_range']],
      );

      const desired = await t.api<{ details: { property: string; reason: string }[] }>('/api/v1/devices/tank-1/twin', {
        method: 'PATCH',
        body: { desired: { count: 2 ** 60 }, version: 0 },
      });
      assert.equal(desired.status, 400);
      assert.deepEqual(
        desired.body.details.map((d) => [d.property, d.reason]),
        [['count', 'out_of_range']],
      );
    });

    test('a number property keeps the double JSON.parse gives', async () => {
      const response = await postTelemetry({ reading: 2 ** 60 + 1 });
      assert.equal(response.status, 200);
      assert.equal((await latest()).reading?.value, 2 ** 60);
    });
  });

  describe('strings with U+0000 or a lone surrogate', () => {
    const BAD = ['nul\u0000inside', 'lone \ud800 high', 'lone \udc00 low', '\udc00\ud800'];

    test('HTTP telemetry: the bad string is refused as bad_string, its neighbours are kept', async () => {
      for (const label of BAD) {
        const response = await postTelemetry({ label, temperature: 22 });
        assert.equal(response.status, 200, JSON.stringify(response.body));
        assert.deepEqual(
          response.body.rejections.map((r) => [r.property, r.reason]),
          [['label', 'bad_string']],
          JSON.stringify(label),
        );
      }
      const nested = await postTelemetry({ position: { x: 1, tag: '\u0000' } });
      assert.deepEqual(
        nested.body.rejections.map((r) => [r.property, r.reason]),
        [['position', 'bad_string']],
      );
      const asKey = await postTelemetry({ position: { x: 1, '\ud800': 'key' } });
      assert.deepEqual(
        asKey.body.rejections.map((r) => [r.property, r.reason]),
        [['position', 'bad_string']],
        'an object key is a string too',
      );
      const ok = await postTelemetry({ label: 'paired \ud83d\ude00 and tab\t' });
      assert.equal(ok.status, 200);
      assert.equal((await latest()).label?.value, 'paired \ud83d\ude00 and tab\t', 'a surrogate pair is a character: kept exactly');
    });

    test('MQTT telemetry: refused as bad_string, acknowledged, the good value stored', async () => {
      const report = nextMessage<ErrorReport>(client, 'things/tank-m/errors');
      await client.publishAsync('things/tank-m/telemetry', '{"label": "a\\u0000b", "temperature": 23}', { qos: 1 });
      const received = await report;
      assert.deepEqual(
        received.rejections.map((r) => [r.property, r.reason]),
        [['label', 'bad_string']],
      );
      assert.equal((await latest('tank-m')).temperature?.value, 23);
      const surrogate = nextMessage<ErrorReport>(client, 'things/tank-m/errors');
      await client.publishAsync('things/tank-m/telemetry', '{"label": "\\ud800"}', { qos: 1 });
      assert.equal((await surrogate).rejections[0]?.reason, 'bad_string');
      assert.ok(client.connected);
    });

    test('events: string data is refused as bad_string over HTTP and MQTT, with or without a data schema', async () => {
      const counted = await rejectedCount('bad_string');
      for (const [name, data] of [
        ['note', 'a\u0000b'],
        ['ping', { free: '\ud800' }],
        ['overheat', { temperature: 1, extra: '\udfff' }],
      ] as const) {
        const response = await postEvent(name, { data });
        assert.equal(response.status, 400, `${name}: ${JSON.stringify(response.body)}`);
        assert.equal(response.body.rejection.reason, 'bad_string', name);
      }
      assert.equal(await rejectedCount('bad_string'), counted + 3);
      const report = nextMessage<ErrorReport>(client, 'things/tank-m/errors');
      await client.publishAsync('things/tank-m/events/note', '{"data": "\\u0000"}', { qos: 1 });
      const received = await report;
      assert.deepEqual(
        received.rejections.map((r) => [r.event, r.reason]),
        [['note', 'bad_string']],
      );
      const good = await postEvent('note', { data: 'fine' });
      assert.equal(good.status, 201);
    });

    test('twins: a reported or desired string is refused as bad_string', async () => {
      const { token: ownToken } = await t.registerDevice('tank-2', 'sensor');
      const device = await t.connectDevice('tank-2', ownToken);
      await device.subscribeAsync('things/tank-2/errors');
      const report = nextMessage<ErrorReport>(device, 'things/tank-2/errors');
      await device.publishAsync('things/tank-2/twin/reported', '{"label": "\\ud800", "count": 5}', { qos: 1 });
      const received = await report;
      assert.equal(received.source, 'twin');
      assert.deepEqual(
        received.rejections.map((r) => [r.property, r.reason]),
        [['label', 'bad_string']],
      );
      const twin = await t.api<{ reported: Record<string, unknown> }>('/api/v1/devices/tank-2/twin');
      assert.deepEqual(twin.body.reported, { count: 5 });

      const desired = await t.api<{ error: string }>('/api/v1/devices/tank-2/twin', {
        method: 'PATCH',
        body: { desired: { label: 'x\u0000' }, version: 0 },
      });
      assert.equal(desired.status, 400);
      assert.equal(desired.body.error, 'invalid');
      const after = await t.api<{ desired: Record<string, unknown> }>('/api/v1/devices/tank-2/twin');
      assert.deepEqual(after.body.desired, {});
    });
  });

  describe('values nested deeper than the stack can walk', () => {
    // Well within the payload limit, far beyond what recursive validation or JSON.stringify survive.
    const DEEP = 50_000;
    const deepArray = `${'['.repeat(DEEP)}${']'.repeat(DEEP)}`;

    test('MQTT: a deep event or property value is refused, acknowledged, without its value echoed; the device keeps working', async () => {
      const event = nextMessage<ErrorReport>(client, 'things/tank-m/errors');
      await client.publishAsync('things/tank-m/events/ping', `{"data": ${deepArray}}`, { qos: 1 });
      const refusedEvent = await event;
      assert.deepEqual(
        refusedEvent.rejections.map((r) => [r.event, r.reason, r.value]),
        [['ping', 'invalid_value', undefined]],
      );
      assert.match(refusedEvent.rejections[0]?.message ?? '', /deeper than 64 levels/);

      const sample = nextMessage<ErrorReport>(client, 'things/tank-m/errors');
      await client.publishAsync(
        'things/tank-m/telemetry',
        `[{"position": ${deepArray}}, {"ts": ${deepArray}, "temperature": 1}, {"temperature": 24}]`,
        {
          qos: 1,
        },
      );
      const refusedSample = await sample;
      assert.deepEqual(
        refusedSample.rejections.map((r) => [r.sample, r.property, r.reason, r.value]),
        [
          [0, 'position', 'invalid_value', undefined],
          [1, undefined, 'bad_timestamp', undefined],
        ],
      );
      assert.equal((await latest('tank-m')).temperature?.value, 24);
      assert.ok(client.connected);
    });

    test('HTTP: a deep event is a 400, not a 500', async () => {
      const response = await t.api<{ rejection: RejectionBody }>('/api/v1/devices/tank-1/events/ping', {
        method: 'POST',
        auth: token,
        raw: `{"data": ${deepArray}}`,
      });
      assert.equal(response.status, 400, JSON.stringify(response.body).slice(0, 200));
      assert.equal(response.body.rejection.reason, 'invalid_value');
    });
  });
});
