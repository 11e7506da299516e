import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { ManualClock } from '../src/time/index.js';
import { nextMessage, startTestNode, type TestNode } from './support/harness.js';
import { until } from './support/wait.js';

interface InvocationBody {
  id: string;
  status: 'queued' | 'delivered' | 'succeeded' | 'failed' | 'expired';
  output?: unknown;
  error?: string;
  note?: string;
  expiresAt: number;
}
interface TwinBody {
  version: number;
  desired: Record<string, unknown>;
  delta: Record<string, unknown>;
  pendingDelivery: { version: number; keys: string[]; queuedAt: number; expiresAt: number }[];
}
interface PresenceBody {
  deviceId: string;
  status: 'online' | 'asleep' | 'offline' | 'unknown';
  connected: boolean;
  lastSeen: number | null;
  nextWindowExpected: number | null;
  network: { profile: string; reportIntervalMs: number; sleepy: boolean };
}
interface HistoryEntry {
  section: string;
  actor: string;
  version: number;
  changes: { key: string; old: unknown; new: unknown }[];
  reason?: string;
}
interface DesiredMessage {
  version: number;
  desired: Record<string, unknown>;
}

const HOUR = 3_600_000;
const SLEEPY = { network: { profile: 'nbiot', reportInterval: '1h' } };

describe('sleepy (NB-IoT) devices', () => {
  let t: TestNode;
  const clock = new ManualClock(Date.now());

  const presence = (id: string) => t.api<PresenceBody>(`/api/v1/devices/${id}/presence`).then((r) => r.body);
  const presenceIs = (id: string, status: PresenceBody['status']) =>
    until(`${id} ${status}`, async () => {
      const body = await presence(id);
      return body.status === status ? body : undefined;
    });
  const invocation = (id: string) => t.api<InvocationBody>(`/api/v1/invocations/${id}`).then((r) => r.body);
  const twin = (id: string) => t.api<TwinBody>(`/api/v1/devices/${id}/twin`).then((r) => r.body);

  /** One wake window: connect, report, and disconnect again (the device goes back to sleep). */
  async function wakeAndSleep(id: string, token: string): Promise<void> {
    const client = await t.connectDevice(id, token);
    await client.publishAsync(`things/${id}/telemetry`, JSON.stringify({ vibration: 1 }), { qos: 1 });
    await client.endAsync();
    await presenceIs(id, 'asleep');
  }

  before(async () => {
    t = await startTestNode({}, clock);
  });
  after(() => t.stop());

  test('the registration resolves the network profile', async () => {
    await t.registerDevice('nb-profile', 'pump', SLEEPY);
    // The device body does not show `network` (see the report); the presence resource does.
    const { network } = await presence('nb-profile');
    assert.deepEqual(
      { profile: network.profile, reportIntervalMs: network.reportIntervalMs, sleepy: network.sleepy },
      { profile: 'nbiot', reportIntervalMs: HOUR, sleepy: true },
    );
    const bad = await t.api('/api/v1/devices', {
      method: 'POST',
      body: { id: 'nb-bad', model: 'pump', network: { profile: 'nbiot', reportInterval: 'often' } },
    });
    assert.equal(bad.status, 400);
  });

  test('presence: unknown → online while connected → asleep after disconnect → offline after missing its window', async () => {
    const { token } = await t.registerDevice('nb-presence', 'pump', SLEEPY);
    assert.equal((await presence('nb-presence')).status, 'unknown');

    const client = await t.connectDevice('nb-presence', token);
    const online = await presence('nb-presence');
    assert.equal(online.status, 'online');
    assert.equal(online.connected, true);

    clock.advance(1000);
    await client.endAsync();
    const asleep = await presenceIs('nb-presence', 'asleep');
    assert.equal(asleep.connected, false);
    assert.equal(asleep.lastSeen, clock.now());
    assert.equal(asleep.nextWindowExpected, clock.now() + HOUR);

    clock.advance(HOUR);
    assert.equal((await presence('nb-presence')).status, 'asleep', 'a window only just due is not yet missed');
    clock.advance(HOUR);
    const offline = await presence('nb-presence');
    assert.equal(offline.status, 'offline');
    assert.equal(offline.lastSeen, asleep.lastSeen);
  });

  test('presence of a non-sleepy device: online while connected, offline once silent beyond its interval', async () => {
    const { token } = await t.registerDevice('eth-presence');
    const { network } = await presence('eth-presence');
    assert.deepEqual([network.profile, network.sleepy], ['ethernet', false]);
    const client = await t.connectDevice('eth-presence', token);
    assert.equal((await presence('eth-presence')).status, 'online');
    await client.endAsync();
    const closed = await until('session closed', async () => {
      const body = await presence('eth-presence');
      return body.connected ? undefined : body;
    });
    assert.notEqual(closed.status, 'asleep', 'only sleepy devices sleep');
    assert.equal(closed.nextWindowExpected, null);
    clock.advance(2 * network.reportIntervalMs);
    assert.equal((await presence('eth-presence')).status, 'offline');
  });

  test('an action for a sleeping device stays queued with a note and is delivered when it next wakes', async () => {
    const { token } = await t.registerDevice('nb-act', 'pump', SLEEPY);
    await wakeAndSleep('nb-act', token);
    const sleptAt = clock.now();
    clock.advance(10 * 60_000);

    const queued = await t.api<InvocationBody>('/api/v1/devices/nb-act/actions/reset?wait=200ms', {
      method: 'POST',
      body: { input: { reason: 'calibrate' } },
    });
    assert.equal(queued.status, 202);
    assert.equal(queued.body.status, 'queued');
    assert.match(queued.body.note ?? '', /^queued \(device asleep, next window expected /);
    assert.ok(queued.body.note?.includes(new Date(sleptAt + HOUR).toISOString()), queued.body.note);
    assert.equal(queued.body.expiresAt, clock.now() + 24 * HOUR, 'sleepy devices get the long default ttl');

    clock.advance(50 * 60_000);
    await t.node.sweep();
    assert.equal((await invocation(queued.body.id)).status, 'queued');

    const client: MqttClient = await t.connectDevice('nb-act', token);
    const request = nextMessage<{ id: string; input: unknown }>(client, 'things/nb-act/actions/reset');
    await client.subscribeAsync('things/nb-act/actions/+', { qos: 1 });
    const received = await request;
    assert.deepEqual(received, { id: queued.body.id, input: { reason: 'calibrate' } });
    await client.publishAsync('things/nb-act/actions/reset/result', JSON.stringify({ id: received.id, output: { ok: true } }), { qos: 1 });
    const done = await invocation(queued.body.id);
    assert.equal(done.status, 'succeeded');
    assert.deepEqual(done.output, { ok: true });
  });

  test('a queued action expires past its ttl with a reason, and is not delivered afterwards', async () => {
    const { token } = await t.registerDevice('nb-ttl', 'pump', SLEEPY);
    await wakeAndSleep('nb-ttl', token);
    const queued = await t.api<InvocationBody>('/api/v1/devices/nb-ttl/actions/reset', {
      method: 'POST',
      body: { input: {}, ttl: '2h' },
    });
    assert.equal(queued.body.status, 'queued');
    clock.advance(2 * HOUR - 1);
    await t.node.sweep();
    assert.equal((await invocation(queued.body.id)).status, 'queued');
    clock.advance(1);
    await t.node.sweep();
    const expired = await invocation(queued.body.id);
    assert.equal(expired.status, 'expired');
    assert.match(expired.error ?? '', /did not become reachable within 2h/);

    // On its next wake the device hears only what is still open.
    const fresh = await t.api<InvocationBody>('/api/v1/devices/nb-ttl/actions/reset', {
      method: 'POST',
      body: { input: { reason: 'fresh' } },
    });
    const client = await t.connectDevice('nb-ttl', token);
    const seen: string[] = [];
    client.on('message', (topic, payload) => {
      if (topic === 'things/nb-ttl/actions/reset') seen.push((JSON.parse(payload.toString()) as { id: string }).id);
    });
    const request = nextMessage<{ id: string }>(client, 'things/nb-ttl/actions/reset');
    await client.subscribeAsync('things/nb-ttl/actions/+', { qos: 1 });
    assert.equal((await request).id, fresh.body.id);
    assert.deepEqual(seen, [fresh.body.id]);
  });

  test('a desired change waits in pendingDelivery and is delivered when the device wakes', async () => {
    const { token } = await t.registerDevice('nb-desired', 'pump', SLEEPY);
    await wakeAndSleep('nb-desired', token);
    const written = await t.api<TwinBody>('/api/v1/devices/nb-desired/twin', {
      method: 'PATCH',
      body: { desired: { speed: 35 }, version: 0, ttl: '6h' },
    });
    assert.equal(written.status, 200);
    assert.deepEqual(written.body.pendingDelivery, [
      { version: 1, keys: ['speed'], queuedAt: clock.now(), expiresAt: clock.now() + 6 * HOUR },
    ]);

    clock.advance(HOUR);
    const client = await t.connectDevice('nb-desired', token);
    const desired = nextMessage<DesiredMessage>(client, 'things/nb-desired/twin/desired');
    await client.subscribeAsync('things/nb-desired/twin/desired', { qos: 1 });
    assert.deepEqual((await desired).desired, { speed: 35 });
    await until('pending delivery cleared', async () => {
      const body = await twin('nb-desired');
      return body.pendingDelivery.length === 0 ? body : undefined;
    });
    await client.endAsync();

    clock.advance(6 * HOUR);
    await t.node.sweep();
    assert.deepEqual((await twin('nb-desired')).desired, { speed: 35 }, 'a delivered change is never withdrawn');
  });

  test('a desired change the device does not wake for is withdrawn at its ttl: desired reverts and history says why', async () => {
    const { token } = await t.registerDevice('nb-withdraw', 'pump', SLEEPY);
    await t.api('/api/v1/devices/nb-withdraw/twin', {
      method: 'PATCH',
      body: { desired: { mode: 'auto', speed: 20 }, version: 0, ttl: '1h' },
    });
    // Deliver the first change, so the one after it has something to revert to.
    const first = await t.connectDevice('nb-withdraw', token);
    await first.subscribeAsync('things/nb-withdraw/twin/desired', { qos: 1 });
    await until('first change delivered', async () => {
      const body = await twin('nb-withdraw');
      return body.pendingDelivery.length === 0 ? body : undefined;
    });
    await first.endAsync();
    await presenceIs('nb-withdraw', 'asleep');

    const written = await t.api<TwinBody>('/api/v1/devices/nb-withdraw/twin', {
      method: 'PATCH',
      body: { desired: { speed: 80, running: true }, version: 1, ttl: '6h' },
    });
    assert.equal(written.body.version, 2);
    assert.deepEqual(
      written.body.pendingDelivery.map((p) => p.keys.sort()),
      [['running', 'speed']],
    );

    clock.advance(6 * HOUR - 1);
    await t.node.sweep();
    assert.deepEqual((await twin('nb-withdraw')).desired, { mode: 'auto', speed: 80, running: true });
    clock.advance(1);
    await t.node.sweep();

    const reverted = await twin('nb-withdraw');
    assert.deepEqual(reverted.desired, { mode: 'auto', speed: 20 });
    assert.deepEqual(reverted.pendingDelivery, []);
    assert.equal(reverted.version, 3);

    const { items } = (await t.api<{ items: HistoryEntry[] }>('/api/v1/devices/nb-withdraw/twin/history?section=desired')).body;
    const withdrawal = items[0];
    assert.equal(withdrawal?.actor, 'system');
    assert.match(withdrawal?.reason ?? '', /device asleep: not delivered within 6h \(queued as version 2\)/);
    assert.deepEqual(
      [...(withdrawal?.changes ?? [])].sort((a, b) => a.key.localeCompare(b.key)),
      [
        { key: 'running', old: true, new: null },
        { key: 'speed', old: 80, new: 20 },
      ],
    );

    // When it finally wakes, the device is told the reverted state, not the withdrawn one.
    const late = await t.connectDevice('nb-withdraw', token);
    const retained = nextMessage<DesiredMessage>(late, 'things/nb-withdraw/twin/desired');
    await late.subscribeAsync('things/nb-withdraw/twin/desired', { qos: 1 });
    const message = await retained;
    assert.deepEqual({ version: message.version, desired: message.desired }, { version: 3, desired: { mode: 'auto', speed: 20 } });
  });

  test('a pending removal of a desired key is withdrawn too: the key comes back', async () => {
    const { token } = await t.registerDevice('nb-remove', 'pump', SLEEPY);
    await t.api('/api/v1/devices/nb-remove/twin', { method: 'PATCH', body: { desired: { speed: 20 }, version: 0 } });
    const client = await t.connectDevice('nb-remove', token);
    await client.subscribeAsync('things/nb-remove/twin/desired', { qos: 1 });
    await until('delivered', async () => ((await twin('nb-remove')).pendingDelivery.length === 0 ? true : undefined));
    await client.endAsync();
    await presenceIs('nb-remove', 'asleep');

    const removed = await t.api<TwinBody>('/api/v1/devices/nb-remove/twin', {
      method: 'PATCH',
      body: { desired: { speed: null }, version: 1, ttl: '1h' },
    });
    assert.deepEqual(removed.body.desired, {});
    assert.deepEqual(
      removed.body.pendingDelivery.map((p) => p.keys),
      [['speed']],
    );
    clock.advance(HOUR);
    await t.node.sweep();
    const reverted = await twin('nb-remove');
    assert.deepEqual(reverted.desired, { speed: 20 });
    assert.deepEqual(reverted.pendingDelivery, []);
  });

  test('a later write to the same key is not withdrawn when an earlier pending change expires', async () => {
    const { token } = await t.registerDevice('nb-later', 'pump', SLEEPY);
    await wakeAndSleep('nb-later', token);
    await t.api('/api/v1/devices/nb-later/twin', { method: 'PATCH', body: { desired: { speed: 10 }, version: 0, ttl: '1h' } });
    clock.advance(30 * 60_000);
    await t.api('/api/v1/devices/nb-later/twin', { method: 'PATCH', body: { desired: { speed: 15 }, version: 1, ttl: '1h' } });
    clock.advance(30 * 60_000);
    await t.node.sweep();
    assert.deepEqual((await twin('nb-later')).desired, { speed: 15 });
    clock.advance(30 * 60_000);
    await t.node.sweep();
    const after = await twin('nb-later');
    assert.deepEqual(after.desired, {}, 'both withdrawn: the second change reverts to what it replaced');
    assert.deepEqual(after.pendingDelivery, []);

    // The same when both expire in one sweep.
    const { token: token2 } = await t.registerDevice('nb-later-2', 'pump', SLEEPY);
    await wakeAndSleep('nb-later-2', token2);
    await t.api('/api/v1/devices/nb-later-2/twin', { method: 'PATCH', body: { desired: { speed: 10 }, version: 0, ttl: '1h' } });
    await t.api('/api/v1/devices/nb-later-2/twin', { method: 'PATCH', body: { desired: { speed: 15 }, version: 1, ttl: '1h' } });
    clock.advance(HOUR);
    await t.node.sweep();
    assert.deepEqual((await twin('nb-later-2')).desired, {});
  });
});

describe('sleepy devices across a restart', () => {
  test('a pending desired change still expires on time after the node restarts', async () => {
    const clock = new ManualClock(Date.now());
    const first = await startTestNode({}, clock);
    const { config } = first;
    try {
      await first.registerDevice('nb-restart', 'pump', SLEEPY);
      const written = await first.api<TwinBody>('/api/v1/devices/nb-restart/twin', {
        method: 'PATCH',
        body: { desired: { speed: 55 }, version: 0, ttl: '2h' },
      });
      assert.equal(written.status, 200);
      assert.equal(written.body.pendingDelivery.length, 1);
    } finally {
      await first.stop({ keepData: true });
    }
    const second = await startTestNode({ dataDir: config.dataDir }, clock);
    try {
      clock.advance(3 * HOUR);
      await second.node.sweep();
      const twin = await second.api<TwinBody>('/api/v1/devices/nb-restart/twin');
      assert.deepEqual(twin.body.desired, {}, 'withdrawn although nothing read the twin since the restart');
      assert.deepEqual(twin.body.pendingDelivery, []);
      const history = await second.api<{ items: HistoryEntry[] }>('/api/v1/devices/nb-restart/twin/history?section=desired');
      assert.equal(history.body.items[0]?.actor, 'system');
      assert.match(history.body.items[0]?.reason ?? '', /device asleep: not delivered within 2h/);
    } finally {
      await second.stop();
    }
  });
});
