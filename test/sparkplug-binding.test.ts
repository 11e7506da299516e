/**
 * Sparkplug B end to end through a real node: an edge node written with MQTT.js and the Eclipse
 * Tahu payload library logs in on the node's embedded broker as its registered device, and its
 * births, data and deaths show in the REST API; desired writes and actions reach it as DCMD.
 * Then the same against an external broker (a Mosquitto the test starts) with the node's host
 * application connected to it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { ADMIN_KEY, startTestNode, type TestNode } from './support/harness.js';
import { type Mosquitto, sparkplug, startMosquitto, TestEdgeNode } from './support/sparkplug.js';
import { until } from './support/wait.js';

interface DeviceBody {
  id: string;
  model: string;
  modelVersion: number;
  edge?: string;
  binding: Record<string, unknown>;
}
interface TelemetryBody {
  items: { property: string; ts: number; value: unknown }[];
}
interface ErrorsBody {
  items: { source: string; rejections: { reason: string; message: string }[] }[];
}
interface HealthBody {
  protocol: string;
  state: string;
  lastGoodReadTs: number | null;
  errors: number;
  latencyMs: number | null;
}
interface InvocationBody {
  id: string;
  status: string;
  output?: unknown;
}

/** A model the edge node is registered with until its NBIRTH derives its own. */
const EDGE_NODE_MODEL = { title: 'Sparkplug B edge node (until its birth)', properties: {} };

function refusals(metrics: string, reason: string): number {
  const line = metrics
    .split('\n')
    .find((l) => l.startsWith('thingloop_refusals_total{') && l.includes('listener="sparkplug-b"') && l.includes(`reason="${reason}"`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

async function metricsText(t: TestNode): Promise<string> {
  const { status, body } = await t.api<string>('/metrics');
  assert.equal(status, 200);
  return body;
}

async function telemetryOf(t: TestNode, id: string, property: string): Promise<TelemetryBody['items']> {
  const { body } = await t.api<TelemetryBody>(`/api/v1/devices/${encodeURIComponent(id)}/telemetry?property=${property}&limit=100`);
  return body.items ?? [];
}

/** PATCH /twin with the version read just before (the API asks for the version being changed). */
async function writeDesired(t: TestNode, id: string, desired: Record<string, unknown>) {
  const path = `/api/v1/devices/${encodeURIComponent(id)}/twin`;
  const { body } = await t.api<{ version: number }>(path);
  return t.api(path, { method: 'PATCH', body: { desired }, headers: { 'if-match': `"${body.version}"` } });
}

async function registerEdgeNode(t: TestNode, group: string, edgeNode: string): Promise<string> {
  await t.api('/api/v1/models/sparkplug-edge-node', { method: 'PUT', body: EDGE_NODE_MODEL });
  const { status, body } = await t.api<{ token: string }>('/api/v1/devices', {
    method: 'POST',
    body: { id: `${group}:${edgeNode}`, model: 'sparkplug-edge-node', binding: { protocol: 'sparkplug-b', group, edgeNode } },
  });
  assert.equal(status, 201, JSON.stringify(body));
  return body.token;
}

const PUMP_BIRTH = [
  {
    name: 'Temperature/PV',
    alias: 10,
    type: 'Float' as const,
    value: 21.5,
    properties: { engUnit: { type: 'String' as const, value: 'Cel' } },
  },
  { name: 'Setpoint', alias: 11, type: 'Int16' as const, value: 40 },
  { name: 'Device Control/Reset', alias: 14, type: 'Boolean' as const, value: false },
];

describe('Sparkplug B on the embedded broker, end to end', () => {
  let t: TestNode;
  let edge: TestEdgeNode;
  const device = 'plant1:gw1:pump1';
  const path = `/api/v1/devices/${encodeURIComponent(device)}`;

  before(async () => {
    t = await startTestNode();
    const token = await registerEdgeNode(t, 'plant1', 'gw1');
    edge = new TestEdgeNode({ url: t.node.mqttUrl, group: 'plant1', edgeNode: 'gw1', username: 'plant1:gw1', password: token, bdSeq: 3 });
    await edge.connect();
    await edge.nodeBirth([{ name: 'Uptime', alias: 1, type: 'UInt32', value: 5 }]);
    await edge.publish('DBIRTH', PUMP_BIRTH, 'pump1');
  });

  after(async () => {
    await edge?.close();
    await t?.stop();
  });

  test('the host application announces itself on STATE, retained', async () => {
    const observer = await mqtt.connectAsync(t.node.mqttUrl, { username: '$admin', password: ADMIN_KEY, reconnectPeriod: 0 });
    try {
      const state = new Promise<{ online: boolean; timestamp: number }>((resolve) => {
        observer.on('message', (topic, payload, packet) => {
          if (topic === 'spBv1.0/STATE/thingloop' && packet.retain)
            resolve(JSON.parse(payload.toString()) as { online: boolean; timestamp: number });
        });
      });
      await observer.subscribeAsync('spBv1.0/STATE/+', { qos: 1 });
      assert.equal((await state).online, true);
    } finally {
      await observer.endAsync();
    }
  });

  test('NBIRTH and DBIRTH: the device exists with its binding and a model derived from the birth', async () => {
    const { body } = await until('the pump registered', async () => {
      const response = await t.api<DeviceBody>(path);
      return response.status === 200 ? response : undefined;
    });
    assert.deepEqual(body.binding, { protocol: 'sparkplug-b', group: 'plant1', edgeNode: 'gw1', device: 'pump1' });
    assert.equal(body.edge, undefined);
    assert.equal(body.model, 'sparkplug.plant1.gw1.pump1');
    const model = await t.api<{ document: { properties: Record<string, { type: string; unit?: string }> } }>(
      `/api/v1/models/sparkplug.plant1.gw1.pump1`,
    );
    assert.equal(model.body.document.properties.Temperature_PV?.unit, 'Cel');
    assert.equal(model.body.document.properties.Setpoint?.type, 'integer');
    // The edge node's own record moved from its placeholder model to the derived one.
    const node = await until('the node on its derived model', async () => {
      const response = await t.api<DeviceBody>('/api/v1/devices/plant1%3Agw1');
      return response.body.model === 'sparkplug.plant1.gw1' ? response.body : undefined;
    });
    assert.equal(node.binding.protocol, 'sparkplug-b');
    const listed = await t.api<{ items: DeviceBody[] }>('/api/v1/devices?protocol=sparkplug-b');
    assert.deepEqual(listed.body.items.map((d) => d.id).sort(), ['plant1:gw1', 'plant1:gw1:pump1']);
  });

  test('DDATA by alias is stored telemetry, at the timestamp the metric carries', async () => {
    const ts = Date.now() - 2_000;
    await edge.publish('DDATA', [{ alias: 11, type: 'Int16', value: 42, timestamp: ts } as never], 'pump1');
    const items = await until('the stored sample', async () => {
      const found = (await telemetryOf(t, device, 'Setpoint')).filter((item) => item.value === 42);
      return found.length > 0 ? found : undefined;
    });
    assert.equal(items[0]?.ts, ts);
  });

  test('GET /devices/{id}/binding shows the Sparkplug health', async () => {
    const { status, body } = await t.api<HealthBody>(`${path}/binding`);
    assert.equal(status, 200);
    assert.equal(body.protocol, 'sparkplug-b');
    assert.equal(body.state, 'connected');
    assert.ok(body.lastGoodReadTs !== null);
    assert.equal(body.latencyMs, null);
  });

  test('an unknown alias is on the device errors and counted in /metrics', async () => {
    const before = refusals(await metricsText(t), 'unknown_alias');
    await edge.publish('DDATA', [{ alias: 77, type: 'Int32', value: 1 } as never], 'pump1');
    const errors = await until('the error on the device', async () => {
      const { body } = await t.api<ErrorsBody>(`${path}/errors`);
      const found = (body.items ?? []).flatMap((item) => item.rejections).find((r) => r.reason === 'unknown_alias');
      return found;
    });
    assert.match(errors.message, /alias 77/);
    assert.equal(refusals(await metricsText(t), 'unknown_alias'), before + 1);
  });

  test('a payload that is not protobuf is counted and dropped', async () => {
    const before = refusals(await metricsText(t), 'invalid_payload');
    await edge.raw('DDATA', Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), 'pump1');
    await until('the refusal counted', async () => (refusals(await metricsText(t), 'invalid_payload') === before + 1 ? true : undefined));
  });

  test('a seq gap: the edge node receives a rebirth request (NCMD) through the broker ACL', async () => {
    const before = refusals(await metricsText(t), 'seq_gap');
    edge.skip(4);
    await edge.publish('NDATA', [{ name: 'Uptime', type: 'UInt32', value: 6 }]);
    const rebirth = await until('the NCMD', () => edge.commandsFor('spBv1.0/plant1/NCMD/gw1', 'Node Control/Rebirth')[0]);
    assert.equal(rebirth.value, true);
    assert.equal(refusals(await metricsText(t), 'seq_gap'), before + 1);
    // The edge node answers as the spec asks: born again.
    await edge.nodeBirth([{ name: 'Uptime', alias: 1, type: 'UInt32', value: 6 }]);
    await edge.publish('DBIRTH', PUMP_BIRTH, 'pump1');
  });

  test('a desired write through the twin reaches the edge node as DCMD with the value', async () => {
    await until('the pump reborn and listening', async () =>
      (await t.api<HealthBody>(`${path}/binding`)).body.state === 'connected' ? true : undefined,
    );
    const written = await writeDesired(t, device, { Setpoint: 47 });
    assert.equal(written.status, 200, JSON.stringify(written.body));
    const write = await until('the DCMD', () => edge.commandsFor('spBv1.0/plant1/DCMD/gw1/pump1', 'Setpoint').find((m) => m.value === 47));
    assert.equal(write.type, 'Int16');
    // Reported back: the twin's reported value follows.
    await edge.publish('DDATA', [{ alias: 11, type: 'Int16', value: 47 } as never], 'pump1');
    await until('the twin reported', async () => {
      const { body } = await t.api<{ reported: Record<string, unknown>; delta: Record<string, unknown> }>(`${path}/twin`);
      return body.reported?.Setpoint === 47 && Object.keys(body.delta ?? {}).length === 0 ? true : undefined;
    });
  });

  test('an action goes out as DCMD and the invocation succeeds', async () => {
    const invoked = await t.api<InvocationBody>(`${path}/actions/Device_Control_Reset`, { method: 'POST', body: {} });
    assert.ok(invoked.status === 200 || invoked.status === 201 || invoked.status === 202, JSON.stringify(invoked.body));
    const write = await until('the DCMD', () => edge.commandsFor('spBv1.0/plant1/DCMD/gw1/pump1', 'Device Control/Reset')[0]);
    assert.equal(write.value, true);
    const done = await until('the invocation done', async () => {
      const { body } = await t.api<InvocationBody>(`/api/v1/invocations/${invoked.body.id}`);
      return body.status === 'succeeded' ? body : undefined;
    });
    assert.deepEqual(done.output, { metric: 'Device Control/Reset', value: true });
  });

  test('the edge node may not publish for another edge node: the broker closes its connection', async () => {
    const token = await registerEdgeNode(t, 'plant1', 'gw2');
    const intruder = new TestEdgeNode({ url: t.node.mqttUrl, group: 'plant1', edgeNode: 'gw2', username: 'plant1:gw2', password: token });
    await intruder.connect();
    const closed = new Promise<void>((resolve) => intruder.client.once('close', () => resolve()));
    const payload = sparkplug.encodePayload({ timestamp: Date.now(), seq: 0, metrics: [] });
    intruder.client.publish('spBv1.0/plant1/NDATA/gw1', Buffer.from(payload), { qos: 1 });
    await closed;
    await intruder.close();
  });

  test('NDEATH (the will, when the connection drops) takes the node and its devices offline', async () => {
    edge.drop();
    for (const id of ['plant1:gw1', device]) {
      // Presence keeps a grace period of the network profile before `offline`; the session is gone at once.
      await until(`${id} disconnected`, async () => {
        const { body } = await t.api<{ connected: boolean }>(`/api/v1/devices/${encodeURIComponent(id)}/presence`);
        return body.connected === false ? true : undefined;
      });
    }
    assert.equal((await t.api<HealthBody>(`${path}/binding`)).body.state, 'unreachable');
  });
});

describe('Sparkplug B through an external broker (Mosquitto)', () => {
  let broker: Mosquitto;
  let t: TestNode;
  let edge: TestEdgeNode;

  before(async () => {
    broker = await startMosquitto();
    t = await startTestNode({ sparkplugBroker: broker.url, sparkplugHostId: 'site-host' });
  });

  after(async () => {
    await edge?.close();
    await t?.stop();
    await broker?.stop();
  });

  test('births on the external broker register devices, DDATA is telemetry, a desired write comes back as DCMD', async () => {
    edge = new TestEdgeNode({ url: broker.url, group: 'siteA', edgeNode: 'rtu7' });
    await edge.connect();
    // The host's STATE is on the external broker, retained.
    const state = new Promise<{ online: boolean }>((resolve) => {
      edge.client.on('message', (topic, payload) => {
        if (topic === 'spBv1.0/STATE/site-host') resolve(JSON.parse(payload.toString()) as { online: boolean });
      });
    });
    await edge.client.subscribeAsync('spBv1.0/STATE/+', { qos: 1 });
    assert.equal((await state).online, true);

    await edge.nodeBirth([]);
    await edge.publish('DBIRTH', PUMP_BIRTH, 'pump9');
    const id = 'siteA:rtu7:pump9';
    await until('the device registered', async () =>
      (await t.api(`/api/v1/devices/${encodeURIComponent(id)}`)).status === 200 ? true : undefined,
    );
    await edge.publish('DDATA', [{ alias: 10, type: 'Float', value: 33.5 } as never], 'pump9');
    await until('the stored sample', async () =>
      (await telemetryOf(t, id, 'Temperature_PV')).some((i) => i.value === 33.5) ? true : undefined,
    );
    const written = await writeDesired(t, id, { Setpoint: 12 });
    assert.equal(written.status, 200, JSON.stringify(written.body));
    const write = await until('the DCMD', () => edge.commandsFor('spBv1.0/siteA/DCMD/rtu7/pump9', 'Setpoint')[0]);
    assert.equal(write.value, 12);
  });
});
