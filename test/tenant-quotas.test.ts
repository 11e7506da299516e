/**
 * Per-tenant quotas on a real node over real HTTP and MQTT: devices, agents, messages per second
 * and stored bytes are each refused with their reason and counted in /metrics; another tenant
 * is unaffected; a quota changed with PATCH /tenants/{id} applies at once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { type JsonObject, PUMP_MODEL, startTestNode, type TestNode } from './support/harness.js';
import { until } from './support/wait.js';

interface Refusal {
  error: string;
  message: string;
  details: { reason: string; limit: number; current?: number; retryAfterSeconds?: number };
}

interface Page {
  items: { property: string; ts: number; value: unknown }[];
}

/** The value of one series in the metrics text (0 when it has not been counted yet). */
function metric(text: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.indexOf('}'));
    const have = labelText.split(',');
    if (wanted.every((pair) => have.includes(pair))) return Number(line.slice(line.indexOf('}') + 1).trim());
  }
  return 0;
}

describe('tenant quotas', () => {
  let t: TestNode;
  const inTenant = (tenant: string) => ({
    api: <T = JsonObject>(path: string, init: Parameters<TestNode['api']>[1] = {}) =>
      t.api<T>(path, { ...init, headers: { ...init.headers, 'x-thingloop-tenant': tenant } }),
  });
  const acme = inTenant('acme');
  const beta = inTenant('beta');
  const metrics = async () => (await t.api<string>('/metrics')).body;
  const quotaRefusals = async (tenant: string, quota: string) =>
    metric(await metrics(), 'thingloop_quota_refusals_total', { tenant, quota });
  const listenerRefusals = async (listener: string, reason: string) =>
    metric(await metrics(), 'thingloop_refusals_total', { listener, reason });
  const setQuotas = async (tenant: string, quotas: Record<string, number>) => {
    const changed = await t.api<JsonObject>(`/api/v1/tenants/${tenant}`, { method: 'PATCH', body: { quotas } });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.deepEqual(changed.body.quotas, quotas);
  };
  const register = (tenant: ReturnType<typeof inTenant>, id: string) =>
    tenant.api<{ token: string } & Refusal>('/api/v1/devices', { method: 'POST', body: { id, model: 'pump' } });
  const stored = async (tenant: ReturnType<typeof inTenant>, id: string) => {
    const page = await tenant.api<Page>(`/api/v1/devices/${id}/telemetry?property=vibration&from=0&limit=10000`);
    assert.equal(page.status, 200, JSON.stringify(page.body));
    return page.body.items.length;
  };

  before(async () => {
    t = await startTestNode();
    for (const id of ['acme', 'beta']) {
      const created = await t.api('/api/v1/tenants', {
        method: 'POST',
        body: { id, ...(id === 'acme' ? { quotas: { devices: 2 } } : {}) },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const model = await inTenant(id).api('/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL });
      assert.equal(model.status, 201, JSON.stringify(model.body));
    }
  });
  after(async () => {
    await t?.stop();
  });

  test('devices: registering past the quota is refused (429, naming the quota, limit and use), counted; a raised quota applies at once', async () => {
    assert.equal((await register(acme, 'pump-1')).status, 201);
    assert.equal((await register(acme, 'pump-2')).status, 201);
    const refused = await register(acme, 'pump-3');
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal(refused.body.error, 'too_many_requests');
    assert.deepEqual(refused.body.details, { reason: 'quota_devices', limit: 2, current: 2 });
    assert.match(refused.body.message, /devices quota \(2 of 2\)/);
    assert.equal(await quotaRefusals('acme', 'devices'), 1);
    assert.equal(await listenerRefusals('http', 'quota_devices'), 1);

    for (const id of ['pump-1', 'pump-2', 'pump-3']) assert.equal((await register(beta, id)).status, 201, 'beta has no quota');
    assert.equal(await quotaRefusals('beta', 'devices'), 0);

    await setQuotas('acme', { devices: 3 });
    assert.equal((await register(acme, 'pump-3')).status, 201, 'the raised quota applies without a restart');
    // Registrations made at the same time cannot pass the quota together.
    const burst = await Promise.all(['pump-4', 'pump-5', 'pump-6'].map((id) => register(acme, id)));
    assert.deepEqual(
      burst.map((answer) => answer.status),
      [429, 429, 429],
    );
    await setQuotas('acme', { devices: 5 });
    const raced = await Promise.all(['pump-4', 'pump-5', 'pump-6', 'pump-7'].map((id) => register(acme, id)));
    assert.equal(raced.filter((answer) => answer.status === 201).length, 2, 'exactly the two the quota leaves room for');
    assert.equal((await acme.api<{ total: number }>('/api/v1/devices')).body.total, 5);
  });

  test('agents: creating past the quota is refused and counted; replacing an existing agent is not creating one', async () => {
    await setQuotas('acme', { devices: 5, agents: 1 });
    const agent = (id: string) => ({
      id,
      perceive: { devices: { ids: ['pump-1'] } },
      judge: { when: 'vibration > 80' },
      alarm: { type: 'vibration', severity: 'warning' },
    });
    const first = await acme.api('/api/v1/agents', { method: 'POST', body: agent('first') });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const second = await acme.api<Refusal>('/api/v1/agents', { method: 'POST', body: agent('second') });
    assert.equal(second.status, 429, JSON.stringify(second.body));
    assert.deepEqual(second.body.details, { reason: 'quota_agents', limit: 1, current: 1 });
    const replaced = await acme.api('/api/v1/agents/first', {
      method: 'PUT',
      body: { ...agent('first'), judge: { when: 'vibration > 90' } },
    });
    assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
    assert.equal(await quotaRefusals('acme', 'agents'), 1);
    assert.equal(await listenerRefusals('http', 'quota_agents'), 1);

    for (const id of ['first', 'second']) assert.equal((await beta.api('/api/v1/agents', { method: 'POST', body: agent(id) })).status, 201);
    await setQuotas('acme', { devices: 5, agents: 2 });
    assert.equal((await acme.api('/api/v1/agents', { method: 'POST', body: agent('second') })).status, 201, 'applies at once');
  });

  test("messagesPerSecond: a flooding tenant's messages are dropped, acknowledged, counted and noticed; another tenant's all stored", async () => {
    await setQuotas('acme', { devices: 10 });
    const acmeDevice = await register(acme, 'flood-1');
    const betaDevice = await register(beta, 'steady-1');
    assert.equal(acmeDevice.status, 201, JSON.stringify(acmeDevice.body));
    // 0.01 a second: one message now, the next in 100 s — so the count below does not depend on how fast the test runs.
    await setQuotas('acme', { devices: 10, messagesPerSecond: 0.01 });
    const refusedBefore = await listenerRefusals('mqtt', 'quota_messages_per_second');

    const flooder = await t.connectDevice('flood-1', acmeDevice.body.token);
    const steady = await t.connectDevice('steady-1', betaDevice.body.token);
    const notices: JsonObject[] = [];
    flooder.on('message', (_topic, payload) => notices.push(JSON.parse(payload.toString()) as JsonObject));
    await flooder.subscribeAsync('things/flood-1/errors', { qos: 1 });

    const base = Date.now() - 60_000;
    const publish = (client: MqttClient, id: string, i: number) =>
      client.publishAsync(`things/${id}/telemetry`, JSON.stringify({ ts: base + i, vibration: i }), { qos: 1 });
    const SENT = 40;
    // Interleaved: beta's device sends while acme's floods; every publish is acknowledged.
    await Promise.all(Array.from({ length: SENT }, (_, i) => [publish(flooder, 'flood-1', i), publish(steady, 'steady-1', i)]).flat());
    assert.ok(flooder.connected, 'the flooding device stays connected: its messages are dropped, not its session');

    assert.equal(await stored(beta, 'steady-1'), SENT, "every one of beta's samples is stored");
    assert.equal(await stored(acme, 'flood-1'), 1, 'acme gets the one message its bucket holds');
    assert.equal(await quotaRefusals('acme', 'messagesPerSecond'), SENT - 1);
    assert.equal(await quotaRefusals('beta', 'messagesPerSecond'), 0);
    assert.equal(await listenerRefusals('mqtt', 'quota_messages_per_second'), refusedBefore + SENT - 1);

    const notice = await until('an error notice on things/flood-1/errors', () => notices[0]);
    const rejections = notice.rejections as { reason: string; message: string }[];
    assert.equal(rejections[0]?.reason, 'quota_messages_per_second');
    assert.match(rejections[0]?.message ?? '', /messagesPerSecond quota \(0.01 per second\)/);
    assert.ok(notices.length < SENT - 1, 'notices are not a flood of their own');

    // HTTP: 429 with retry-after, the refusal on the device's errors.
    const response = await fetch(`${t.node.httpUrl}/api/v1/devices/flood-1/telemetry`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acmeDevice.body.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ vibration: 1 }),
    });
    assert.equal(response.status, 429);
    assert.ok(Number(response.headers.get('retry-after')) >= 1, `retry-after: ${response.headers.get('retry-after')}`);
    const body = (await response.json()) as Refusal;
    assert.equal(body.details.reason, 'quota_messages_per_second');
    const errors = await acme.api<JsonObject[] | { items: JsonObject[] }>('/api/v1/devices/flood-1/errors');
    assert.match(JSON.stringify(errors.body), /quota_messages_per_second/);

    // Lifted at runtime: the next message is stored.
    await setQuotas('acme', { devices: 10 });
    await publish(flooder, 'flood-1', SENT + 1);
    assert.equal(await stored(acme, 'flood-1'), 2);
  });

  test('storedBytes: over the size quota new telemetry and events are refused, reads still work; raised, writes resume', async () => {
    const device = await register(acme, 'full-1');
    assert.equal(device.status, 201, JSON.stringify(device.body));
    const send = (path: string, body: JsonObject) =>
      acme.api<Refusal>(`/api/v1/devices/full-1/${path}`, { method: 'POST', auth: device.body.token, body });
    assert.equal((await send('telemetry', { vibration: 3 })).status, 200);

    // A database is larger than a kilobyte from its schema alone.
    await setQuotas('acme', { devices: 10, storedBytes: 1024 });
    const telemetry = await send('telemetry', { vibration: 4 });
    assert.equal(telemetry.status, 429, JSON.stringify(telemetry.body));
    assert.equal(telemetry.body.details.reason, 'quota_stored_bytes');
    assert.equal(telemetry.body.details.limit, 1024);
    assert.ok((telemetry.body.details.current ?? 0) > 1024, 'the use is named');
    const event = await send('events/doorOpened', {});
    assert.equal(event.status, 429, JSON.stringify(event.body));
    assert.equal(event.body.details.reason, 'quota_stored_bytes');
    assert.equal(await quotaRefusals('acme', 'storedBytes'), 2);
    assert.equal(await stored(acme, 'full-1'), 1, 'reads still work');
    assert.equal((await acme.api('/api/v1/devices/full-1/latest')).status, 200);

    const flooderOfBeta = await register(beta, 'full-1');
    const betaSent = await beta.api(`/api/v1/devices/full-1/telemetry`, {
      method: 'POST',
      auth: flooderOfBeta.body.token,
      body: { vibration: 5 },
    });
    assert.equal(betaSent.status, 200, "beta's store is its own");

    await setQuotas('acme', { devices: 10, storedBytes: 1024 * 1024 * 1024 });
    assert.equal((await send('telemetry', { vibration: 6 })).status, 200, 'a raised quota applies at once');
    assert.equal(await stored(acme, 'full-1'), 2);
  });
});
