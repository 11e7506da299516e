/**
 * Durability of acknowledged telemetry across a crash (SIGKILL) and a graceful stop (SIGTERM)
 * of the real `thingloop serve` process: a QoS 1 PUBACK is a promise that the sample is on
 * disk, so every sample whose PUBACK arrived must be there after a restart on the same data.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { type Cleanup, withCleanup } from './support/cleanup.js';
import { PUMP_MODEL, tempDir } from './support/harness.js';
import { type ProcessNode, startProcessNode } from './support/process-node.js';

const ADMIN_KEY = 'durability-admin-key-0123';
const DEVICES = 4;
/** QoS 1 messages each connection keeps in flight (sent, PUBACK not yet received). */
const WINDOW = 64;
/** Acknowledged messages (all devices together) to wait for before the signal. */
const ACKS_BEFORE_KILL = 3000;

interface Page {
  items: { property: string; ts: number; value: unknown }[];
  next: string | null;
}

/** What a message with sequence number `seq` carries; distinct per message so a mix-up shows. */
const valuesOf = (seq: number) => ({ vibration: seq / 4, starts: seq });

interface DeviceLoad {
  id: string;
  /** ts → seq of every message whose PUBACK arrived. */
  acked: Map<number, number>;
  sent: number;
  inFlight: number;
}

/**
 * Publishes QoS 1 telemetry from every device as fast as PUBACKs come back, WINDOW messages in
 * flight per connection, each with a unique increasing ts (base + seq), until the connection
 * closes. `whenAcked(n)` resolves once n messages have been acknowledged in total.
 */
function startLoad(clients: { id: string; client: MqttClient }[], base: number) {
  const loads: DeviceLoad[] = [];
  let totalAcked = 0;
  const waiters: { count: number; resolve: () => void; reject: (error: Error) => void }[] = [];
  let openConnections = clients.length;
  const connectionClosed = () => {
    openConnections--;
    // No more acknowledgements can come: fail instead of waiting forever.
    if (openConnections === 0) {
      for (const waiter of waiters.splice(0)) {
        waiter.reject(new Error(`every connection closed after ${totalAcked} of ${waiter.count} acknowledgements`));
      }
    }
  };
  for (const { id, client } of clients) {
    const load: DeviceLoad = { id, acked: new Map(), sent: 0, inFlight: 0 };
    loads.push(load);
    let closed = false;
    client.once('close', () => {
      closed = true;
      connectionClosed();
    });
    client.on('error', () => {
      closed = true;
    });
    const sendNext = () => {
      if (closed || !client.connected) return;
      const seq = load.sent++;
      const ts = base + seq;
      load.inFlight++;
      client.publish(`things/${id}/telemetry`, JSON.stringify({ ts, ...valuesOf(seq) }), { qos: 1 }, (error) => {
        load.inFlight--;
        if (error) return;
        load.acked.set(ts, seq);
        totalAcked++;
        for (const waiter of [...waiters]) {
          if (totalAcked >= waiter.count) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve();
          }
        }
        sendNext();
      });
    };
    for (let i = 0; i < WINDOW; i++) sendNext();
  }
  return {
    loads,
    totalAcked: () => totalAcked,
    inFlight: () => loads.reduce((sum, load) => sum + load.inFlight, 0),
    whenAcked: (count: number) => new Promise<void>((resolve, reject) => waiters.push({ count, resolve, reject })),
  };
}

/** Every stored sample of a device in [from, to), following `next` cursors. */
async function storedSamples(node: ProcessNode, id: string, from: number, to: number): Promise<Map<number, Record<string, unknown>>> {
  const samples = new Map<number, Record<string, unknown>>();
  let cursor: string | null = null;
  do {
    const query = new URLSearchParams({ property: 'vibration,starts', from: String(from), to: String(to), limit: '2500' });
    if (cursor) query.set('cursor', cursor);
    const page = await node.api<Page>(`/api/v1/devices/${id}/telemetry?${query}`, { auth: ADMIN_KEY });
    assert.equal(page.status, 200, JSON.stringify(page.body));
    for (const item of page.body.items) {
      const sample = samples.get(item.ts) ?? {};
      assert.equal(sample[item.property], undefined, `${id} ts ${item.ts} ${item.property} returned twice across pages`);
      sample[item.property] = item.value;
      samples.set(item.ts, sample);
    }
    cursor = page.body.next;
  } while (cursor);
  return samples;
}

async function connect(node: ProcessNode, id: string, token: string): Promise<MqttClient> {
  return mqtt.connectAsync(node.mqttUrl, { username: id, password: token, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000 });
}

/**
 * Starts a node, loads it from DEVICES connections, sends `signal` mid-load, restarts on the
 * same data directory and checks every acknowledged sample. Returns the first process's exit.
 */
async function killUnderLoad(signal: 'SIGKILL' | 'SIGTERM', cleanup: Cleanup) {
  const dataDir = tempDir('thingloop-durability-');
  cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const first = await startProcessNode({ dataDir, adminKey: ADMIN_KEY });
  cleanup.push(() => first.kill('SIGKILL').then(() => undefined));

  const ready = await first.api('/readyz');
  assert.equal(ready.status, 200, 'the node is ready before the load starts');
  const model = await first.api('/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL, auth: ADMIN_KEY });
  assert.ok(model.status === 200 || model.status === 201, JSON.stringify(model.body));
  const devices: { id: string; token: string }[] = [];
  for (let i = 0; i < DEVICES; i++) {
    const id = `pump-${i}`;
    const created = await first.api<{ token: string }>('/api/v1/devices', { method: 'POST', body: { id, model: 'pump' }, auth: ADMIN_KEY });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    devices.push({ id, token: created.body.token });
  }

  const clients = await Promise.all(devices.map(async ({ id, token }) => ({ id, client: await connect(first, id, token) })));
  cleanup.push(() => Promise.all(clients.map(({ client }) => client.endAsync(true).catch(() => undefined))).then(() => undefined));
  const closed = Promise.all(clients.map(({ client }) => new Promise<void>((resolve) => client.once('close', () => resolve()))));

  // Timestamps in the recent past: inside the default query window and the retention period.
  const base = Date.now() - 600_000;
  const load = startLoad(clients, base);
  await load.whenAcked(ACKS_BEFORE_KILL);
  const inFlightAtKill = load.inFlight();
  const exit = await first.kill(signal);
  await closed;

  const acked = load.totalAcked();
  assert.ok(acked >= ACKS_BEFORE_KILL, `acknowledged ${acked} messages before the ${signal}`);
  assert.ok(inFlightAtKill > 0, `messages were still in flight when ${signal} was sent`);
  const sentMax = Math.max(...load.loads.map((l) => l.sent));

  const second = await startProcessNode({ dataDir, adminKey: ADMIN_KEY });
  cleanup.push(() => second.kill('SIGKILL').then(() => undefined));
  for (const device of load.loads) {
    const stored = await storedSamples(second, device.id, base, base + sentMax + 1);
    const missing: string[] = [];
    for (const [ts, seq] of device.acked) {
      const sample = stored.get(ts);
      if (!sample) missing.push(`ts ${ts} (seq ${seq}) is missing`);
      else if (!isDeepStrictEqual(sample, valuesOf(seq))) missing.push(`ts ${ts} (seq ${seq}) holds ${JSON.stringify(sample)}`);
    }
    assert.deepEqual(
      missing.slice(0, 20),
      [],
      `${device.id}: ${missing.length} of ${device.acked.size} acknowledged samples lost or wrong`,
    );
    // Whatever else survived is whole and right: a sample is committed with all its values or not at all.
    for (const [ts, sample] of stored) {
      assert.deepEqual(sample, valuesOf(ts - base), `${device.id}: stored sample at ts ${ts}`);
    }
    assert.ok(stored.size <= device.sent, `${device.id}: no more samples stored than sent`);
  }

  // The restarted node takes new telemetry from the same devices and credentials.
  const [firstDevice] = devices;
  assert.ok(firstDevice);
  const again = await connect(second, firstDevice.id, firstDevice.token);
  cleanup.push(() => again.endAsync(true).catch(() => undefined));
  const ts = base + sentMax + 10;
  await again.publishAsync(`things/${firstDevice.id}/telemetry`, JSON.stringify({ ts, vibration: 0.5 }), { qos: 1 });
  const latest = await second.api<{ values: Record<string, { value: unknown; ts: number }> }>(`/api/v1/devices/${firstDevice.id}/latest`, {
    auth: ADMIN_KEY,
  });
  assert.deepEqual(latest.body.values.vibration, { value: 0.5, ts });

  return { exit, first, second };
}

describe('acknowledged telemetry survives the process going away (real CLI, real MQTT, real SQLite)', () => {
  // The limit only turns a hang into a failure; nothing here asserts how fast anything is.
  test('SIGKILL mid-load: after a restart every sample whose PUBACK arrived is stored with its value', { timeout: 120_000 }, () =>
    withCleanup(async (cleanup) => {
      const { exit } = await killUnderLoad('SIGKILL', cleanup);
      assert.deepEqual(exit, { code: null, signal: 'SIGKILL' });
    }),
  );

  test('SIGTERM mid-load: the node stops gracefully with exit code 0 and keeps every acknowledged sample', { timeout: 120_000 }, () =>
    withCleanup(async (cleanup) => {
      const { exit, first } = await killUnderLoad('SIGTERM', cleanup);
      assert.deepEqual(exit, { code: 0, signal: null }, `stderr:\n${first.stderr()}`);
      assert.match(first.stdout(), /"msg":"stopped"/);
    }),
  );
});
