import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { nextMessage, startTestNode, type TestNode } from './support/harness.js';

interface Latest {
  values: Record<string, { value: unknown; ts: number }>;
}
interface ErrorReport {
  source: string;
  rejections: { reason: string; property?: string; sample?: number }[];
}

describe('telemetry over MQTT (embedded broker, MQTT 3.1.1)', () => {
  let t: TestNode;
  let token: string;

  before(async () => {
    t = await startTestNode();
    ({ token } = await t.registerDevice('pump-1'));
    await t.registerDevice('pump-2');
  });
  after(() => t.stop());

  test('a QoS 1 message is stored by the time its PUBACK arrives', async () => {
    const client = await t.connectDevice('pump-1', token);
    await client.publishAsync('things/pump-1/telemetry', JSON.stringify({ speed: 42.5, running: true, mode: 'auto' }), { qos: 1 });
    const latest = await t.api<Latest>('/api/v1/devices/pump-1/latest');
    assert.equal(latest.body.values.speed?.value, 42.5);
    assert.equal(latest.body.values.running?.value, true);
    assert.equal(latest.body.values.mode?.value, 'auto');
  });

  test('invalid values are refused with reasons on things/{id}/errors while valid ones are kept', async () => {
    const client = await t.connectDevice('pump-1', token);
    await client.subscribeAsync('things/pump-1/errors');
    const report = nextMessage<ErrorReport>(client, 'things/pump-1/errors');
    const ts = Date.now() - 1000;
    await client.publishAsync(
      'things/pump-1/telemetry',
      JSON.stringify({ ts, speed: 250, temperature: 'hot', vibration: 1.5, colour: 'red', mode: 'turbo', starts: 1.5 }),
      { qos: 1 },
    );
    const { rejections } = await report;
    const byProperty = Object.fromEntries(rejections.map((r) => [r.property, r.reason]));
    assert.deepEqual(byProperty, {
      speed: 'out_of_range',
      temperature: 'wrong_type',
      colour: 'unknown_property',
      mode: 'not_in_enum',
      starts: 'wrong_type',
    });
    const stored = await t.api<{ items: { property: string; ts: number; value: unknown }[] }>(
      `/api/v1/devices/pump-1/telemetry?from=${ts}&to=${ts + 1}`,
    );
    assert.deepEqual(stored.body.items, [{ property: 'vibration', ts, value: 1.5 }]);
  });

  test('a batch (array) keeps its timestamps and refuses only its bad samples', async () => {
    const client = await t.connectDevice('pump-1', token);
    await client.subscribeAsync('things/pump-1/errors');
    const report = nextMessage<ErrorReport>(client, 'things/pump-1/errors');
    const base = Date.UTC(2026, 0, 1);
    const batch = [
      { ts: base, vibration: 1 },
      { ts: new Date(base + 1000).toISOString(), vibration: 2 },
      { ts: 'yesterday', vibration: 3 },
      { ts: 12, vibration: 4 },
      { ts: Date.now() + 86_400_000 * 30, vibration: 5 },
      'not a sample',
      { ts: base + 2000 },
    ];
    await client.publishAsync('things/pump-1/telemetry', JSON.stringify(batch), { qos: 1 });
    const { rejections } = await report;
    assert.deepEqual(
      rejections.map((r) => [r.sample, r.reason]),
      [
        [2, 'bad_timestamp'],
        [3, 'bad_timestamp'],
        [4, 'bad_timestamp'],
        [5, 'not_an_object'],
        [6, 'empty_sample'],
      ],
    );
    const stored = await t.api<{ items: { ts: number; value: number }[] }>(
      `/api/v1/devices/pump-1/telemetry?property=vibration&from=${base}&to=${base + 10_000}`,
    );
    assert.deepEqual(
      stored.body.items.map((i) => [i.ts, i.value]),
      [
        [base, 1],
        [base + 1000, 2],
      ],
    );
  });

  test('malformed JSON, binary garbage and oversized payloads are refused and the node keeps serving', async () => {
    const small = await startTestNode({ maxPayloadBytes: 1024 });
    try {
      const { token: smallToken } = await small.registerDevice('pump-x');
      const client = await small.connectDevice('pump-x', smallToken);
      await client.subscribeAsync('things/pump-x/errors');
      const reasons: string[] = [];
      for (const payload of [
        '{"speed": 1',
        Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80]),
        JSON.stringify({ speed: 1, pad: 'x'.repeat(2000) }),
        '42',
        '',
      ]) {
        const report = nextMessage<ErrorReport>(client, 'things/pump-x/errors');
        await client.publishAsync('things/pump-x/telemetry', payload, { qos: 1 });
        reasons.push((await report).rejections[0]?.reason ?? 'none');
      }
      assert.deepEqual(reasons, ['malformed_json', 'malformed_json', 'payload_too_large', 'not_an_object', 'malformed_json']);
      await client.publishAsync('things/pump-x/telemetry', JSON.stringify({ speed: 7 }), { qos: 1 });
      const latest = await small.api<Latest>('/api/v1/devices/pump-x/latest');
      assert.equal(latest.body.values.speed?.value, 7);
      const metrics = await small.api<string>('/metrics');
      assert.match(metrics.body, /thingloop_values_rejected_total\{reason="malformed_json"\} 3/);
      assert.match(metrics.body, /thingloop_values_rejected_total\{reason="payload_too_large"\} 1/);
    } finally {
      await small.stop();
    }
  });

  test('a wrong token or unknown device cannot connect', async () => {
    await assert.rejects(t.connectDevice('pump-1', 'tld_wrong'), /Bad username or password|Not authorized/);
    await assert.rejects(t.connectDevice('nobody', token), /Bad username or password|Not authorized/);
    const metrics = await t.api<string>('/metrics');
    assert.match(metrics.body, /thingloop_auth_failures_total\{protocol="mqtt"\} [1-9]/);
  });

  test('a device may not subscribe to or publish under another device', async () => {
    const client = await t.connectDevice('pump-1', token);
    // MQTT.js rejects a SUBACK whose only grant is the failure code 128.
    const grantedFor = (filter: string) =>
      client.subscribeAsync(filter).then(
        (grants) => grants.map((g) => g.qos as number),
        (error: { packet?: { granted: number[] } }) => error.packet?.granted,
      );
    assert.deepEqual(await grantedFor('things/pump-2/#'), [128]);
    assert.deepEqual(await grantedFor('things/+/telemetry'), [128]);

    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish('things/pump-2/telemetry', JSON.stringify({ speed: 99 }), { qos: 1 });
    await closed;
    const latest = await t.api<Latest>('/api/v1/devices/pump-2/latest');
    assert.deepEqual(latest.body.values, {}, 'nothing was stored for pump-2');
    const metrics = await t.api<string>('/metrics');
    assert.match(metrics.body, /thingloop_acl_denied_total\{action="publish"\} 1/);
    assert.match(metrics.body, /thingloop_acl_denied_total\{action="subscribe"\} 2/);
  });

  test('deleting a device drops its live session and its token stops working', async () => {
    const { token: doomed } = await t.registerDevice('pump-doomed');
    const client = await t.connectDevice('pump-doomed', doomed);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const deleted = await t.api('/api/v1/devices/pump-doomed', { method: 'DELETE' });
    assert.equal(deleted.status, 204);
    await closed;
    await assert.rejects(t.connectDevice('pump-doomed', doomed));
  });

  test('the admin key opens an MQTT session that sees every device', async () => {
    const watcher = await mqtt.connectAsync(t.node.mqttUrl, {
      username: '$admin',
      password: 'test-admin-key-0123456789',
      reconnectPeriod: 0,
    });
    try {
      await watcher.subscribeAsync('things/+/telemetry');
      const seen = nextMessage<{ speed: number }>(watcher, 'things/pump-2/telemetry');
      const { token: token2 } = await t.api<{ token: string }>('/api/v1/devices/pump-2/token', { method: 'POST' }).then((r) => r.body);
      const device = await t.connectDevice('pump-2', token2);
      await device.publishAsync('things/pump-2/telemetry', JSON.stringify({ speed: 12 }), { qos: 1 });
      assert.equal((await seen).speed, 12);
    } finally {
      await watcher.endAsync(true);
    }
  });
});
