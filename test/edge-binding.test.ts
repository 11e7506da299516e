/**
 * Device bindings across the edge link, with a real cloud node and a real edge node in this
 * process: a device registered in the cloud for an edge arrives there with its binding (and a
 * changed binding follows), and the edge reports the health of the bindings it runs so the
 * cloud's `GET /api/v1/devices/{id}/binding` shows the edge's figures.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import WebSocket from 'ws';
import type { BindingHealth } from '../src/gateway/index.js';
import { type RunningNode, startCloudNode } from '../src/node/index.js';
import { createLogger } from '../src/observability/index.js';
import { ADMIN_KEY, PUMP_MODEL, startTestNode, type TestNode, tempDir, testConfig } from './support/harness.js';
import { callApi } from './support/http.js';
import { until } from './support/wait.js';

const EDGE_ID = 'site-fieldbus';
/** Only turns a hang into a failure: the edge learns its devices on the cloud's next push. */
const SYNC_LIMIT_MS = 20_000;
/** Binding figures travel with the edge's heartbeat (every 10 s): a hang guard, not a timing. */
const HEARTBEAT_LIMIT_MS = 30_000;

/** A heartbeat as an edge sends it, with what it says about its bindings. */
function heartbeat(bindings: unknown): string {
  return JSON.stringify({
    type: 'heartbeat',
    heartbeat: {
      at: Date.now(),
      cpuPercent: 1,
      memory: { usedBytes: 1, totalBytes: 2, rssBytes: 1 },
      disk: { freeBytes: 1, totalBytes: 2 },
      outbox: { records: 0, bytes: 0, oldestTs: null, lastSeq: 0, dropped: 0 },
      accelerators: [],
      drainRatePerSecond: 0,
      bindings,
    },
  });
}

function refusals(metrics: string): number {
  const match = /thingloop_refusals_total\{listener="edge-link",reason="invalid_request"\} (\d+)/.exec(metrics);
  return match ? Number(match[1]) : 0;
}

describe('device bindings across the edge link', () => {
  let cloud: TestNode;
  let edge: RunningNode;
  const edgeDir = tempDir('thingloop-edge-binding-');

  before(async () => {
    cloud = await startTestNode();
    await cloud.api('/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL });
    const created = await cloud.api<{ token: string }>('/api/v1/edges', { method: 'POST', body: { id: EDGE_ID } });
    assert.equal(created.status, 201);
    edge = await startCloudNode(
      testConfig({
        dataDir: join(edgeDir, 'edge'),
        role: 'edge',
        cloudUrl: cloud.node.httpUrl,
        edgeId: EDGE_ID,
        edgeToken: created.body.token,
      }),
      { logger: createLogger({ level: 'silent' }) },
    );
  });
  after(async () => {
    await edge?.stop();
    await cloud?.stop();
    rmSync(edgeDir, { recursive: true, force: true });
  });

  const onEdge = (path: string) => callApi<Record<string, unknown>>(edge.httpUrl, path, {}, ADMIN_KEY);

  test('a device registered in the cloud for an edge arrives there with the same binding; a changed binding follows', async () => {
    const binding = { protocol: 'modbus-tcp', host: '127.0.0.1', port: 502, unitId: 1 };
    const registered = await cloud.api<{ device: { binding: unknown; edge?: string } }>('/api/v1/devices', {
      method: 'POST',
      body: { id: 'plc-pump-1', model: 'pump', edge: EDGE_ID, binding },
    });
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    assert.deepEqual(registered.body.device.binding, binding);

    const arrived = await until('the device on the edge', async () => (await edge.registry.find('plc-pump-1')) ?? undefined, SYNC_LIMIT_MS);
    assert.deepEqual(arrived.binding, binding);
    assert.equal(arrived.edge, EDGE_ID);
    const read = await onEdge('/api/v1/devices/plc-pump-1');
    assert.equal(read.status, 200);
    assert.deepEqual(read.body.binding, binding, "the edge's own API shows it too");

    const moved = { protocol: 'modbus-tcp', host: '127.0.0.1', port: 1502, unitId: 7 };
    const patched = await cloud.api('/api/v1/devices/plc-pump-1', { method: 'PATCH', body: { binding: moved } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const changed = await until(
      'the changed binding on the edge',
      async () => {
        const device = await edge.registry.find('plc-pump-1');
        return device?.binding.port === 1502 ? device : undefined;
      },
      SYNC_LIMIT_MS,
    );
    assert.deepEqual(changed.binding, moved);
  });

  test("the edge's binding health reaches the cloud: GET /devices/{id}/binding on the cloud shows the edge's figures", async () => {
    const { token } = await cloud.registerDevice('edge-mqtt-pump', 'pump', { edge: EDGE_ID });
    await until('the device on the edge', async () => (await edge.registry.find('edge-mqtt-pump')) ?? undefined, SYNC_LIMIT_MS);
    const before = await cloud.api<BindingHealth>('/api/v1/devices/edge-mqtt-pump/binding');
    assert.equal(before.status, 200);
    assert.notEqual(before.body.state, 'connected', 'nothing is connected yet');

    // The device talks to the edge's broker only: "connected" on the cloud can only be the edge's word.
    const device = await mqtt.connectAsync(edge.mqttUrl, {
      username: 'edge-mqtt-pump',
      password: token,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    try {
      await device.publishAsync('things/edge-mqtt-pump/telemetry', JSON.stringify({ speed: 42 }), { qos: 1 });
      const seen = await until(
        "the edge's figures in the cloud",
        async () => {
          const health = (await cloud.api<BindingHealth>('/api/v1/devices/edge-mqtt-pump/binding')).body;
          return health.state === 'connected' && health.lastGoodReadTs !== null ? health : undefined;
        },
        HEARTBEAT_LIMIT_MS,
        200,
      );
      assert.equal(seen.protocol, 'mqtt');
      assert.equal(seen.errors, 0);
    } finally {
      await device.endAsync(true);
    }
  });
});

describe('binding health an edge reports, as the cloud checks it', () => {
  let cloud: TestNode;
  let link: WebSocket;

  before(async () => {
    cloud = await startTestNode();
    const { token } = (await cloud.api<{ token: string }>('/api/v1/edges', { method: 'POST', body: { id: 'site-raw' } })).body;
    await cloud.registerDevice('raw-plc', 'pump', { edge: 'site-raw', binding: { protocol: 'modbus-tcp', host: '10.0.0.9' } });
    await cloud.registerDevice('raw-direct', 'pump');
    link = new WebSocket(`${cloud.node.httpUrl.replace('http', 'ws')}/api/v1/edges/site-raw/link`, {
      headers: { authorization: `Bearer ${token}` },
    });
    // The first frame is the cloud's ack: the link is up and the edge authenticated.
    await new Promise<void>((resolve, reject) => {
      link.once('message', () => resolve());
      link.once('error', reject);
    });
  });
  after(async () => {
    link?.close();
    await cloud?.stop();
  });

  const health = async (id: string) => (await cloud.api<BindingHealth>(`/api/v1/devices/${id}/binding`)).body;
  const refused = async () => refusals((await cloud.api<string>('/metrics')).body);

  test("figures for the edge's own devices are shown; for other devices they are ignored; malformed ones are counted", async () => {
    const directBefore = await health('raw-direct');
    const reported: BindingHealth = {
      protocol: 'modbus-tcp',
      state: 'unreachable',
      lastGoodReadTs: 1_700_000_000_000,
      errors: 17,
      latencyMs: null,
      lastError: { ts: 1_700_000_100_000, message: 'connect ECONNREFUSED 10.0.0.9:502' },
    };
    link.send(heartbeat({ 'raw-plc': reported, 'raw-direct': { ...reported, errors: 99 }, ghost: reported }));
    const shown = await until('the figures in the cloud', async () => {
      const current = await health('raw-plc');
      return current.errors === 17 ? current : undefined;
    });
    assert.deepEqual(shown, reported);
    assert.deepEqual(await health('raw-direct'), directBefore, "a device the edge does not serve keeps the cloud's own figures");

    const counted = await refused();
    link.send(heartbeat({ 'raw-plc': { protocol: 'carrier-pigeon', state: 'flying', errors: -1 } }));
    await until('the malformed entry counted', async () => ((await refused()) > counted ? true : undefined));
    const afterwards = await health('raw-plc');
    assert.equal(afterwards.protocol, 'modbus-tcp');
    assert.equal(afterwards.state, 'idle', 'a device the edge no longer reports has no figures from it');
    assert.equal(afterwards.errors, 0);
  });
});
