/**
 * Issue 13: a device the ACL refuses learns why. MQTT 3.1.1 has no negative PUBACK, so a publish
 * outside the device's topics closes the connection, but the reason goes out first on the
 * device's own `things/{id}/errors` and stays in its recent errors (GET /devices/{id}/errors) for
 * its next session; a refused subscription gets SUBACK 0x80 and the same notice. Each is counted.
 * Also for a device of a non-default tenant, whose topics are mounted inside the broker.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { PUMP_MODEL, startTestNode, type TestNode } from './support/harness.js';
import { until } from './support/wait.js';

interface ErrorNotice {
  ts: number;
  source: string;
  rejections: { reason: string; message: string }[];
}

function counter(metrics: string, line: string): number {
  const found = metrics.split('\n').find((l) => l.startsWith(`${line} `));
  return found ? Number(found.split(' ').at(-1)) : 0;
}

/** What a client hears on its errors topic and when its connection closes, in order. */
function watch(client: MqttClient, errorsTopic: string): { seen: string[]; notices: ErrorNotice[]; closed: Promise<void> } {
  const seen: string[] = [];
  const notices: ErrorNotice[] = [];
  client.on('message', (topic, payload) => {
    if (topic !== errorsTopic) return;
    notices.push(JSON.parse(payload.toString()) as ErrorNotice);
    seen.push('notice');
  });
  const closed = new Promise<void>((resolve) =>
    client.once('close', () => {
      seen.push('close');
      resolve();
    }),
  );
  return { seen, notices, closed };
}

/** The grants of a SUBSCRIBE (MQTT.js rejects one whose only grant is the failure code 128). */
function grantsFor(client: MqttClient, filter: string): Promise<number[] | undefined> {
  return client.subscribeAsync(filter).then(
    (grants) => grants.map((g) => g.qos as number),
    (error: { packet?: { granted: number[] } }) => error.packet?.granted,
  );
}

describe('a device learns why the MQTT ACL refused it', () => {
  let t: TestNode;
  const tokens: Record<string, string> = {};
  let acmeKey = '';

  const connect = (id: string, token: string) =>
    mqtt.connectAsync(t.node.mqttUrl, { username: id, password: token, protocolVersion: 4, reconnectPeriod: 0 });
  const metric = async (line: string) => counter((await t.api<string>('/metrics')).body, line);
  const errorsOf = async (id: string, auth?: string) => {
    const listed = await t.api<{ items: ErrorNotice[] }>(`/api/v1/devices/${id}/errors`, auth ? { auth } : {});
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    return listed.body.items;
  };

  before(async () => {
    t = await startTestNode();
    for (const id of ['pump-1', 'pump-2', 'pump-3']) tokens[id] = (await t.registerDevice(id)).token;
    const tenant = await t.api<{ adminKey: string }>('/api/v1/tenants', { method: 'POST', body: { id: 'acme' } });
    assert.equal(tenant.status, 201, JSON.stringify(tenant.body));
    acmeKey = tenant.body.adminKey;
    await t.api('/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL, auth: acmeKey });
    const device = await t.api<{ token: string }>('/api/v1/devices', {
      method: 'POST',
      body: { id: 'pump-1', model: 'pump' },
      auth: acmeKey,
    });
    assert.equal(device.status, 201, JSON.stringify(device.body));
    tokens['acme/pump-1'] = device.body.token;
  });
  after(() => t.stop());

  test('a refused publish: the subscribed device hears the reason before the close, its error list keeps it, it is counted', async () => {
    const before = await metric('thingloop_acl_denied_total{action="publish"}');
    const client = await connect('pump-1', tokens['pump-1'] as string);
    await client.subscribeAsync('things/pump-1/errors');
    const watched = watch(client, 'things/pump-1/errors');
    client.publish('things/pump-2/telemetry', JSON.stringify({ speed: 99 }), { qos: 1 });
    await watched.closed;

    assert.deepEqual(watched.seen, ['notice', 'close'], 'the reason arrives, then the connection closes');
    const [notice] = watched.notices;
    assert.equal(notice?.source, 'binding');
    assert.equal(notice?.rejections[0]?.reason, 'acl_denied');
    assert.match(notice?.rejections[0]?.message ?? '', /things\/pump-2\/telemetry/);
    assert.match(notice?.rejections[0]?.message ?? '', /things\/pump-1\//, 'it says where the device may publish');

    const listed = await errorsOf('pump-1');
    assert.equal(listed[0]?.rejections[0]?.reason, 'acl_denied');
    assert.deepEqual(listed[0], notice, 'the list holds the notice the device heard');
    assert.deepEqual((await t.api<{ values: object }>('/api/v1/devices/pump-2/latest')).body.values, {}, 'nothing stored');
    assert.equal(await metric('thingloop_acl_denied_total{action="publish"}'), before + 1);
  });

  test('a device that was not listening finds the reason in its error list in its next session', async () => {
    const client = await connect('pump-3', tokens['pump-3'] as string);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish('$SYS/broker/uptime', 'x', { qos: 0 });
    await closed;
    const again = await connect('pump-3', tokens['pump-3'] as string);
    try {
      const listed = await errorsOf('pump-3');
      assert.equal(listed.length, 1);
      assert.equal(listed[0]?.rejections[0]?.reason, 'acl_denied');
      assert.match(listed[0]?.rejections[0]?.message ?? '', /\$SYS\/broker\/uptime/);
    } finally {
      await again.endAsync();
    }
  });

  test('a refused subscription gets SUBACK 0x80, the session stays, the reason is sent and listed, and it is counted', async () => {
    const before = await metric('thingloop_acl_denied_total{action="subscribe"}');
    const client = await connect('pump-2', tokens['pump-2'] as string);
    try {
      await client.subscribeAsync('things/pump-2/errors');
      const watched = watch(client, 'things/pump-2/errors');
      assert.deepEqual(await grantsFor(client, 'things/pump-1/#'), [128]);
      assert.deepEqual(await grantsFor(client, 'things/pump-2/twin/desired'), [0], 'the session goes on');
      const listed = await errorsOf('pump-2');
      assert.equal(listed[0]?.rejections[0]?.reason, 'acl_denied');
      assert.match(listed[0]?.rejections[0]?.message ?? '', /things\/pump-1\/#.*0x80/);
      // The notice is published after the SUBACK: wait for it on the device's errors topic.
      const heard = await until('the notice on things/pump-2/errors', () => watched.notices[0]);
      assert.equal(heard.rejections[0]?.reason, 'acl_denied');
      assert.equal(await metric('thingloop_acl_denied_total{action="subscribe"}'), before + 1);
    } finally {
      await client.endAsync();
    }
  });

  test("a tenant's device hears the reason on its own topic (the mount is not shown) and only its tenant lists it", async () => {
    const defaultBefore = (await errorsOf('pump-1')).length;
    const client = await connect('pump-1', tokens['acme/pump-1'] as string);
    await client.subscribeAsync('things/pump-1/errors');
    const watched = watch(client, 'things/pump-1/errors');
    client.publish('things/pump-1/twin/desired', JSON.stringify({ speed: 1 }), { qos: 1 });
    await watched.closed;

    assert.deepEqual(watched.seen, ['notice', 'close']);
    const message = watched.notices[0]?.rejections[0]?.message ?? '';
    assert.match(message, /publish to things\/pump-1\/twin\/desired refused/);
    assert.doesNotMatch(message, /\$tenant/, "the broker's mount stays inside the broker");
    const listed = await errorsOf('pump-1', acmeKey);
    assert.equal(listed[0]?.rejections[0]?.reason, 'acl_denied');
    assert.equal((await errorsOf('pump-1')).length, defaultBefore, "the default tenant's pump-1 is not told");
  });
});
