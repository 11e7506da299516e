/**
 * Alarms on a real node: lifecycle through the REST API, the MQTT sink (things/{id}/alarms) and
 * the signed webhook sink against a local HTTP receiver.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import type { Alarm } from '../src/agents/index.js';
import { ManualClock } from '../src/time/index.js';
import { alarmById, alarmsOf, createAgent, type PlantDevice, plantDevice, putModels } from './support/agents.js';
import { ADMIN_KEY, startTestNode, type TestNode } from './support/harness.js';
import { until } from './support/wait.js';

const SECRET = 'webhook-test-secret';

interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
}
interface AlarmMessage {
  event: string;
  alarm: Alarm;
}

/** A real HTTP receiver. `fail[deviceId]` answers that many requests about the device with `status`. */
class Receiver {
  readonly deliveries: Delivery[] = [];
  readonly fail = new Map<string, { remaining: number; status: number }>();
  private readonly server: Server;

  constructor() {
    this.server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let status = 200;
        try {
          const deviceId = (JSON.parse(body) as AlarmMessage).alarm.deviceId;
          const plan = this.fail.get(deviceId);
          if (plan && plan.remaining > 0) {
            plan.remaining--;
            status = plan.status;
          }
        } catch {
          status = 400;
        }
        this.deliveries.push({ headers: request.headers, body, status });
        response.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : 'no');
      });
    });
  }

  async start(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/alarms`;
  }

  about(deviceId: string): (Delivery & { message: AlarmMessage })[] {
    return this.deliveries
      .map((d) => ({ ...d, message: JSON.parse(d.body) as AlarmMessage }))
      .filter((d) => d.message.alarm.deviceId === deviceId);
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const hotAgent = (id: string, ids: string[], alarm: Record<string, unknown>) => ({
  id,
  perceive: { devices: { ids } },
  judge: { when: 'temperature > 80', clear: 'temperature < 70' },
  alarm,
});

describe('alarms', () => {
  let t: TestNode;
  let receiver: Receiver;
  let watcher: MqttClient;
  const messages: { topic: string; body: AlarmMessage }[] = [];
  const clock = new ManualClock(Date.now());

  before(async () => {
    receiver = new Receiver();
    const url = await receiver.start();
    // The receiver is on loopback, which webhooks may reach only when allowed.
    t = await startTestNode({ alarmWebhook: url, alarmWebhookSecret: SECRET, webhookAllow: ['127.0.0.1/32'] }, clock);
    await putModels(t);
    watcher = await mqtt.connectAsync(t.node.mqttUrl, { username: '$admin', password: ADMIN_KEY, protocolVersion: 4, reconnectPeriod: 0 });
    watcher.on('message', (topic, payload) => messages.push({ topic, body: JSON.parse(payload.toString()) as AlarmMessage }));
    await watcher.subscribeAsync('things/+/alarms', { qos: 1 });
  });
  after(async () => {
    await watcher.endAsync(true);
    await t.stop();
    await receiver.stop();
  });

  /** Waits until the alarm has `count` notification outcomes recorded. */
  const notified = (id: string, count: number, deadlineMs = 5000) =>
    until(
      `${count} notifications of ${id}`,
      async () => {
        const alarm = await alarmById(t, id);
        return alarm.notifications.length >= count ? alarm : undefined;
      },
      deadlineMs,
    );

  test('lifecycle: raise, dedup per agent/device/type, acknowledge, clear, history, 409s', async () => {
    const one = await plantDevice(t, 'al-1');
    const two = await plantDevice(t, 'al-2');
    await createAgent(t, hotAgent('al-agent', ['al-1', 'al-2'], { type: 'hot', severity: 'minor', clearOnRecovery: false }));
    await createAgent(t, hotAgent('al-other', ['al-1'], { type: 'hot', severity: 'warning', clearOnRecovery: false }));
    const episode = async (device: PlantDevice) => {
      await device.send({ temperature: 90 });
      await device.send({ temperature: 60 });
      clock.advance(1_000);
    };

    await episode(one);
    const [raised, ...others] = await alarmsOf(t, '?agent=al-agent&device=al-1');
    assert.equal(others.length, 0);
    assert.ok(raised);
    assert.equal(raised.state, 'active');
    assert.equal(raised.count, 1);
    assert.equal(raised.severity, 'minor');
    assert.equal(raised.type, 'hot');
    assert.ok(raised.decisionId);

    await episode(one);
    await episode(one);
    const repeated = await alarmById(t, raised.id);
    assert.equal(repeated.count, 3, 'the same agent, device and type: one alarm, counted');
    assert.equal(repeated.lastRaisedAt, clock.now() - 1_000);
    assert.equal((await alarmsOf(t, '?agent=al-agent&device=al-1&state=all')).length, 1);
    // A different device and a different agent each get their own alarm.
    await episode(two);
    assert.equal((await alarmsOf(t, '?agent=al-agent&device=al-2')).length, 1);
    const fromOther = await alarmsOf(t, '?agent=al-other&device=al-1');
    assert.equal(fromOther.length, 1);
    assert.equal(fromOther[0]?.count, 3);
    assert.notEqual(fromOther[0]?.id, raised.id);

    const ack = await t.api<Alarm>(`/api/v1/alarms/${raised.id}/acknowledge`, { method: 'POST', body: { note: 'on it' } });
    assert.equal(ack.status, 200);
    assert.equal(ack.body.state, 'acknowledged');
    assert.equal(ack.body.acknowledgedBy, 'admin');
    assert.equal(ack.body.acknowledgedAt, clock.now());
    assert.equal((await t.api(`/api/v1/alarms/${raised.id}/acknowledge`, { method: 'POST', body: {} })).status, 409);
    assert.deepEqual(
      (await alarmsOf(t, '?state=acknowledged')).map((a) => a.id),
      [raised.id],
    );

    await episode(one); // still open (acknowledged): counted into the same alarm
    assert.equal((await alarmById(t, raised.id)).count, 4);

    const cleared = await t.api<Alarm>(`/api/v1/alarms/${raised.id}/clear`, { method: 'POST', body: { note: 'bearing replaced' } });
    assert.equal(cleared.status, 200);
    assert.equal(cleared.body.state, 'cleared');
    assert.equal(cleared.body.clearedBy, 'admin');
    const acknowledgeCleared = await t.api<{ error: string }>(`/api/v1/alarms/${raised.id}/acknowledge`, { method: 'POST', body: {} });
    assert.equal(acknowledgeCleared.status, 409);
    assert.equal(acknowledgeCleared.body.error, 'conflict');
    assert.equal((await t.api(`/api/v1/alarms/${raised.id}/clear`, { method: 'POST', body: {} })).status, 409);

    const final = await alarmById(t, raised.id);
    assert.deepEqual(
      final.history.map((h) => [h.event, h.by ?? null, h.note ?? null]),
      [
        ['raised', null, null],
        ['repeated', null, null],
        ['repeated', null, null],
        ['acknowledged', 'admin', 'on it'],
        ['repeated', null, null],
        ['cleared', 'admin', 'bearing replaced'],
      ],
    );

    await episode(one); // after clearing, the condition raises a new alarm
    const fresh = await alarmsOf(t, '?agent=al-agent&device=al-1');
    assert.equal(fresh.length, 1);
    assert.notEqual(fresh[0]?.id, raised.id);
    assert.equal(fresh[0]?.count, 1);
    assert.deepEqual(
      (await alarmsOf(t, '?agent=al-agent&device=al-1&state=all')).map((a) => a.id),
      [fresh[0]?.id, raised.id],
      'newest first',
    );
    assert.deepEqual(
      (await alarmsOf(t, '?agent=al-agent&device=al-1&state=cleared')).map((a) => a.id),
      [raised.id],
    );
    assert.equal((await t.api('/api/v1/alarms?state=sleeping')).status, 400);
    assert.equal((await t.api('/api/v1/alarms/no-such-alarm')).status, 404);
    assert.equal((await t.api('/api/v1/alarms/no-such-alarm/acknowledge', { method: 'POST', body: {} })).status, 404);

    // Every broadcast event (raised, acknowledged, cleared; not repeats) reached both sinks.
    const notifications = (await notified(raised.id, 6)).notifications;
    assert.deepEqual(notifications.map((n) => `${n.sink}:${n.event}:${n.status}`).sort(), [
      'mqtt:acknowledged:delivered',
      'mqtt:cleared:delivered',
      'mqtt:raised:delivered',
      'webhook:acknowledged:delivered',
      'webhook:cleared:delivered',
      'webhook:raised:delivered',
    ]);
  });

  test('MQTT sink: things/{id}/alarms carries raised, escalated, acknowledged and cleared', async () => {
    const device = await plantDevice(t, 'mq-1');
    await createAgent(t, {
      ...hotAgent('mq-agent', ['mq-1'], { type: 'mq', severity: 'minor', escalateTo: 'major' }),
      act: { steps: [{ set: { property: 'speed', value: '50' } }] },
      verify: { expect: 'temperature < 50', within: '10s', onFailure: ['escalate'] },
    });
    await device.send({ temperature: 90 });
    const [alarm] = await alarmsOf(t, '?agent=mq-agent');
    assert.ok(alarm);
    clock.advance(11_000);
    await t.node.sweep();
    assert.equal((await alarmById(t, alarm.id)).severity, 'major');
    await t.api(`/api/v1/alarms/${alarm.id}/acknowledge`, { method: 'POST', body: {} });
    await device.send({ temperature: 60 }); // recovered: cleared by the agent
    const received = await until('four alarm messages for mq-1', async () => {
      const mine = messages.filter((m) => m.topic === 'things/mq-1/alarms');
      return mine.length >= 4 ? mine : undefined;
    });
    assert.deepEqual(
      received.map((m) => [m.body.event, m.body.alarm.severity, m.body.alarm.state]),
      [
        ['raised', 'minor', 'active'],
        ['escalated', 'major', 'active'],
        ['acknowledged', 'major', 'acknowledged'],
        ['cleared', 'major', 'cleared'],
      ],
    );
    for (const m of received) {
      assert.equal(m.body.alarm.id, alarm.id);
      assert.equal('notifications' in m.body.alarm, false, 'delivery bookkeeping is not broadcast');
    }
    assert.equal(received.at(-1)?.body.alarm.clearedBy, 'agent:mq-agent');
  });

  test('webhook sink: HMAC-SHA256 signature over the exact body', async () => {
    const device = await plantDevice(t, 'wh-1');
    await createAgent(t, hotAgent('wh-agent', ['wh-1'], { type: 'wh', severity: 'major' }));
    await device.send({ temperature: 90 });
    const [alarm] = await alarmsOf(t, '?agent=wh-agent');
    assert.ok(alarm);
    await notified(alarm.id, 2);
    const [delivery, ...more] = receiver.about('wh-1');
    assert.equal(more.length, 0);
    assert.ok(delivery);
    assert.equal(delivery.headers['content-type'], 'application/json');
    const expected = `sha256=${createHmac('sha256', SECRET).update(delivery.body).digest('hex')}`;
    assert.equal(delivery.headers['x-thingloop-signature'], expected);
    const forged = `sha256=${createHmac('sha256', SECRET).update(`${delivery.body} `).digest('hex')}`;
    assert.notEqual(delivery.headers['x-thingloop-signature'], forged, 'the signature covers every byte');
    assert.equal(delivery.message.event, 'raised');
    assert.equal(delivery.message.alarm.id, alarm.id);
    assert.equal(delivery.message.alarm.severity, 'major');
  });

  test('webhook sink: a failing receiver is retried and the outcome recorded', async () => {
    receiver.fail.set('wh-retry', { remaining: 2, status: 500 });
    receiver.fail.set('wh-refused', { remaining: 10, status: 400 });
    const retry = await plantDevice(t, 'wh-retry');
    const refused = await plantDevice(t, 'wh-refused');
    await createAgent(t, hotAgent('wh-fail', ['wh-retry', 'wh-refused'], { type: 'whf', severity: 'minor' }));
    await retry.send({ temperature: 90 });
    await refused.send({ temperature: 90 });
    const [retried] = await alarmsOf(t, '?agent=wh-fail&device=wh-retry');
    const [rejected] = await alarmsOf(t, '?agent=wh-fail&device=wh-refused');
    assert.ok(retried && rejected);

    // Backoff is 1 s then 2 s before the third attempt: allow for it generously.
    const webhookOf = (alarm: Alarm) => alarm.notifications.find((n) => n.sink === 'webhook');
    const done = await until(
      'the webhook outcome of wh-retry',
      async () => {
        const alarm = await alarmById(t, retried.id);
        return webhookOf(alarm) ? alarm : undefined;
      },
      15_000,
    );
    assert.deepEqual(
      { ...webhookOf(done), ts: undefined },
      { sink: 'webhook', event: 'raised', status: 'delivered', attempts: 3, ts: undefined },
    );
    const attempts = receiver.about('wh-retry');
    assert.deepEqual(
      attempts.map((d) => d.status),
      [500, 500, 200],
    );
    assert.equal(new Set(attempts.map((d) => d.body)).size, 1, 'every attempt carries the same body');
    assert.equal(new Set(attempts.map((d) => d.headers['x-thingloop-signature'])).size, 1);

    const failed = webhookOf(await alarmById(t, rejected.id));
    assert.deepEqual(
      { ...failed, ts: undefined },
      { sink: 'webhook', event: 'raised', status: 'failed', attempts: 1, error: 'HTTP 400', ts: undefined },
    );
    assert.equal(receiver.about('wh-refused').length, 1, 'a 400 is not retried');
  });
});

describe('alarms: concurrent changes', () => {
  test('sink outcomes arriving during operator actions neither undo them nor get lost', async () => {
    const t = await startTestNode();
    try {
      const ids: string[] = [];
      for (let i = 0; i < 300; i++) {
        const alarm = await t.node.alarms.raise({ agentId: 'race', deviceId: `race-${i}`, type: 'race', severity: 'minor', message: 'm' });
        // Vary the gap so the acknowledgement meets the MQTT sink's outcome at every point.
        for (let k = 0; k < i % 30; k++) await Promise.resolve();
        if (i % 60 >= 30) await new Promise((resolve) => setImmediate(resolve));
        await t.node.alarms.acknowledge(alarm.id, 'operator');
        ids.push(alarm.id);
      }
      for (const id of ids) {
        // raised and acknowledged, each published on things/{id}/alarms
        const alarm = await until(`two notifications of ${id}`, async () => {
          const current = await t.node.alarms.get(id);
          return current.notifications.length >= 2 ? current : undefined;
        });
        assert.equal(alarm.state, 'acknowledged', id);
        assert.equal(alarm.notifications.length, 2, id);
      }
    } finally {
      await t.stop();
    }
  });
});
