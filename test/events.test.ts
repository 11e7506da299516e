/**
 * Device events (named in the thing model) over real MQTT and HTTP on a real node: validated
 * against the event's data schema, stored before the PUBACK, refused with a reason on
 * `things/{id}/errors`, listed newest first with pagination; also sent through the SDK.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { ThingloopDevice } from '../src/sdk/index.js';
import { openDatabase, SqliteDeviceEvents } from '../src/store/sqlite/index.js';
import { nextMessage, startTestNode, type TestNode, tempDir } from './support/harness.js';

interface StoredEvent {
  id: number;
  deviceId: string;
  name: string;
  ts: number;
  data: unknown;
}

interface EventPage {
  items: StoredEvent[];
  next: string | null;
}

interface ErrorReport {
  source: string;
  rejections: { reason: string; message: string; event?: string }[];
}

describe('device events', () => {
  let t: TestNode;
  let client: MqttClient;
  let token: string;
  const T0 = Date.now() - 60_000;

  before(async () => {
    t = await startTestNode();
    ({ token } = await t.registerDevice('pump-1'));
    client = await t.connectDevice('pump-1', token);
    await client.subscribeAsync('things/pump-1/errors');
  });
  after(() => t.stop());

  const events = (query = '') => t.api<EventPage>(`/api/v1/devices/pump-1/events${query}`);

  test('an event published over MQTT is stored before its PUBACK, with its data and time', async () => {
    await client.publishAsync('things/pump-1/events/overheat', JSON.stringify({ ts: T0, data: { temperature: 97.5 } }), { qos: 1 });
    const page = await events();
    assert.equal(page.status, 200);
    assert.equal(page.body.items.length, 1);
    const [event] = page.body.items;
    assert.deepEqual(
      { ...event, id: undefined },
      { id: undefined, deviceId: 'pump-1', name: 'overheat', ts: T0, data: { temperature: 97.5 } },
    );
  });

  test('an event without data may have an empty body and gets the time of receipt', async () => {
    const before = Date.now();
    await client.publishAsync('things/pump-1/events/doorOpened', '', { qos: 1 });
    const [event] = (await events('?name=doorOpened')).body.items;
    assert.equal(event?.name, 'doorOpened');
    assert.equal(event?.data, null);
    assert.ok(event && event.ts >= before && event.ts <= Date.now());
  });

  test('an event stamped a little ahead of the node clock (within the allowed skew) is listed at once', async () => {
    const ahead = Date.now() + 20_000;
    await client.publishAsync('things/pump-1/events/doorOpened', JSON.stringify({ ts: ahead }), { qos: 1 });
    const [newest] = (await events()).body.items;
    assert.equal(newest?.ts, ahead);
  });

  for (const [what, topic, payload, reason] of [
    ['an event the model does not name', 'things/pump-1/events/explosion', '{"data":1}', 'unknown_event'],
    ['data that breaks the schema', 'things/pump-1/events/overheat', '{"data":{"temperature":"hot"}}', 'wrong_type'],
    ['data out of range', 'things/pump-1/events/overheat', '{"data":{"temperature":9000}}', 'out_of_range'],
    ['a body that is not JSON', 'things/pump-1/events/overheat', '{"data":', 'malformed_json'],
    ['fields beside data and ts', 'things/pump-1/events/overheat', '{"temperature":90}', 'malformed_event'],
    ['no data for an event whose model declares it', 'things/pump-1/events/overheat', '', 'wrong_type'],
  ] as const) {
    test(`${what} is refused with "${reason}" on things/{id}/errors and nothing is stored`, async () => {
      const countBefore = (await events()).body.items.length;
      const report = nextMessage<ErrorReport>(client, 'things/pump-1/errors');
      await client.publishAsync(topic, payload, { qos: 1 });
      const received = await report;
      assert.equal(received.source, 'event');
      assert.equal(received.rejections[0]?.reason, reason, JSON.stringify(received));
      assert.ok((received.rejections[0]?.message.length ?? 0) > 10, 'the message says what is wrong');
      assert.equal((await events()).body.items.length, countBefore);
      assert.ok(client.connected, 'a bad event never costs the connection');
    });
  }

  test('HTTP: a device reports an event with its token; a refusal is a 400 with the reason', async () => {
    const created = await t.api<StoredEvent>('/api/v1/devices/pump-1/events/overheat', {
      method: 'POST',
      auth: token,
      body: { data: { temperature: 120 } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(created.body.data, { temperature: 120 });
    const refused = await t.api<{ rejection: { reason: string } }>('/api/v1/devices/pump-1/events/overheat', {
      method: 'POST',
      auth: token,
      body: { data: {} },
    });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.rejection.reason, 'invalid_value');
    const stranger = await t.api('/api/v1/devices/pump-1/events/overheat', { method: 'POST', auth: 'wrong', body: {} });
    assert.equal(stranger.status, 401);
    const unknown = await t.api('/api/v1/devices/nope/events', {});
    assert.equal(unknown.status, 404);
  });

  test('the list is newest first, filtered by name and time, and pages with a cursor', async () => {
    for (let i = 0; i < 5; i++) {
      await client.publishAsync('things/pump-1/events/overheat', JSON.stringify({ ts: T0 + 1000 + i, data: { temperature: 100 + i } }), {
        qos: 1,
      });
    }
    const all = (await events('?name=overheat')).body.items;
    assert.ok(all.every((e) => e.name === 'overheat'));
    assert.deepEqual(
      all.slice(0, 5).map((e) => e.ts),
      [4, 3, 2, 1, 0].map((i) => T0 + 1000 + i),
      'newest first',
    );
    const first = (await events('?name=overheat&limit=2')).body;
    assert.equal(first.items.length, 2);
    assert.ok(first.next);
    const second = (await events(`?name=overheat&limit=2&cursor=${first.next}`)).body;
    assert.deepEqual(
      second.items.map((e) => e.id),
      all.slice(2, 4).map((e) => e.id),
    );
    const window = (await events(`?from=${T0 + 1001}&to=${T0 + 1003}`)).body.items;
    assert.deepEqual(
      window.map((e) => e.ts),
      [T0 + 1002, T0 + 1001],
    );
    const bad = await t.api('/api/v1/devices/pump-1/events?from=yesterday');
    assert.equal(bad.status, 400);
  });

  test('the SDK emits events in order with its samples', async () => {
    const { token: sdkToken } = await t.registerDevice('pump-sdk');
    const device = await ThingloopDevice.connect({ url: t.node.mqttUrl, deviceId: 'pump-sdk', token: sdkToken });
    try {
      device.report({ temperature: 80 });
      device.emitEvent('overheat', { temperature: 130 });
      device.emitEvent('doorOpened');
      // A name that is not one topic level would cost the connection: refused before it is queued.
      assert.throws(() => device.emitEvent('door/opened'), /not a model event name/);
      assert.throws(() => device.emitEvent('#'), /not a model event name/);
      await device.flush();
    } finally {
      await device.close();
    }
    const listed = (await t.api<EventPage>('/api/v1/devices/pump-sdk/events')).body.items;
    assert.deepEqual(
      listed.map((e) => [e.name, e.data]),
      [
        ['doorOpened', null],
        ['overheat', { temperature: 130 }],
      ],
    );
  });
});

test('retention removes old events and every event of deleted devices', async () => {
  const dir = tempDir('thingloop-events-');
  const db = openDatabase(join(dir, 'events.db'));
  try {
    const store = new SqliteDeviceEvents(db);
    db.prepare(
      "INSERT INTO devices (uid, id, model, model_version, code, ipv6, token_hash, record) VALUES (1, 'a', 'm', 1, 'c1', 'i1', 'h', '{}')",
    ).run();
    db.prepare(
      "INSERT INTO devices (uid, id, model, model_version, code, ipv6, token_hash, record) VALUES (2, 'b', 'm', 1, 'c2', 'i2', 'h', '{}')",
    ).run();
    for (const [uid, ts] of [
      [1, 100],
      [1, 200],
      [2, 300],
    ] as const) {
      await store.append({ deviceId: uid === 1 ? 'a' : 'b', deviceUid: uid, name: 'e', ts, data: null });
    }
    const removed = await store.prune(150, async () => new Set([1]));
    assert.equal(removed, 2, 'the old event of a, every event of b');
    const left = await store.list({ deviceUid: 1, names: [], from: 0, to: 1000, limit: 10 });
    assert.deepEqual(
      left.items.map((e) => e.ts),
      [200],
    );
  } finally {
    db.close();
  }
});
