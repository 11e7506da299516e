/**
 * A CoAP device through a real node: registered with `"binding": {"protocol": "coap"}` over the
 * REST API, its telemetry stored and read back, a desired write observed, an action fetched in the
 * sleepy device's exchange window and answered, its binding health and refusals in /metrics. The
 * device is the `coap` package's client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Agent } from 'coap';
import { closeAgent, coapAgent, coapObserve, coapRequest } from './support/coap.js';
import { startTestNode, type TestNode } from './support/harness.js';
import { until } from './support/wait.js';

interface Invocation {
  id: string;
  status: string;
  output?: unknown;
}

describe('CoAP devices on a node', () => {
  let t: TestNode;
  let port: number;
  let agent: Agent;
  const tokens: Record<string, string> = {};

  before(async () => {
    t = await startTestNode();
    assert.ok(t.node.coapPort !== undefined && t.node.coapPort > 0, 'the node reports the bound CoAP port');
    port = t.node.coapPort;
    for (const [id, network] of [
      ['tank-a', { profile: 'ethernet' }],
      ['tank-nb', { profile: 'nbiot' }],
    ] as const) {
      const { token, device } = await t.registerDevice(id, 'pump', { network, binding: { protocol: 'coap' } });
      assert.equal((device as unknown as { binding: { protocol: string } }).binding.protocol, 'coap');
      tokens[id] = token;
    }
    agent = await coapAgent();
  });

  after(async () => {
    await closeAgent(agent);
    await t.stop();
  });

  it('reports the CoAP port on GET /api/v1/node', async () => {
    const { status, body } = await t.api<{ coapPort: number }>('/api/v1/node');
    assert.equal(status, 200);
    assert.equal(body.coapPort, port);
  });

  it('stores telemetry a device POSTs and shows the binding healthy', async () => {
    const answer = await coapRequest(agent, port, {
      method: 'POST',
      pathname: '/things/tank-a/telemetry',
      token: tokens['tank-a'],
      payload: { temperature: 18.5, speed: 30 },
    });
    assert.equal(answer.code, '2.04');
    // 2.04 comes after the commit: the sample is there at once.
    const page = await t.api<{ items: { value: number }[] }>('/api/v1/devices/tank-a/telemetry?property=temperature&from=0');
    assert.equal(page.status, 200);
    assert.deepEqual(
      page.body.items.map((item) => item.value),
      [18.5],
    );
    const health = await t.api<{ protocol: string; state: string; lastGoodReadTs: number | null; errors: number }>(
      '/api/v1/devices/tank-a/binding',
    );
    assert.equal(health.status, 200);
    assert.equal(health.body.protocol, 'coap');
    assert.equal(health.body.state, 'connected');
    assert.ok(health.body.lastGoodReadTs !== null);
    assert.equal(health.body.errors, 0);
  });

  it('puts per-value rejections and malformed payloads on the device errors', async () => {
    const partly = await coapRequest(agent, port, {
      method: 'POST',
      pathname: '/things/tank-a/telemetry',
      token: tokens['tank-a'],
      payload: { temperature: 999, speed: 31 },
    });
    assert.equal(partly.code, '2.04', 'good values of a partly bad message are kept');
    const malformed = await coapRequest(agent, port, {
      method: 'POST',
      pathname: '/things/tank-a/telemetry',
      token: tokens['tank-a'],
      payload: '{"speed":',
    });
    assert.equal(malformed.code, '4.00');
    const errors = await until('both refusals on the error list', async () => {
      const { body } = await t.api<{ items: { rejections: { reason: string; property?: string }[] }[] }>('/api/v1/devices/tank-a/errors');
      const reasons = body.items.flatMap((item) => item.rejections.map((r) => r.reason));
      return reasons.includes('malformed_json') && reasons.length >= 2 ? reasons : undefined;
    });
    assert.ok(
      errors.some((reason) => reason !== 'malformed_json'),
      `a value rejection is listed too: ${errors.join(', ')}`,
    );
  });

  it('notifies an observer of twin/desired when the desired state is written over the API', async () => {
    const observation = await coapObserve(agent, port, '/things/tank-a/twin/desired', tokens['tank-a']!);
    assert.equal(observation.first.code, '2.05');
    const first = observation.first.body as { version: number };
    const { status } = await t.api('/api/v1/devices/tank-a/twin', {
      method: 'PATCH',
      body: { desired: { speed: 65 }, version: first.version },
    });
    assert.equal(status, 200);
    const next = (await observation.next()) as { version: number; desired: Record<string, unknown> };
    assert.equal(next.desired.speed, 65);
    assert.ok(next.version > first.version);
    observation.close();
  });

  it('queues an action for a sleepy device, hands it over in the window after its next uplink, and completes it with its result', async () => {
    const invoked = await t.api<{ id: string; status: string }>('/api/v1/devices/tank-nb/actions/reset', {
      method: 'POST',
      body: { input: { reason: 'calibrate' } },
    });
    assert.ok(invoked.status === 202 || invoked.status === 200 || invoked.status === 201, JSON.stringify(invoked.body));
    const id = invoked.body.id;
    assert.equal(invoked.body.status, 'queued');
    // The device wakes: one uplink, then it fetches what waited for it.
    const sent = await coapRequest(agent, port, {
      method: 'POST',
      pathname: '/things/tank-nb/telemetry',
      token: tokens['tank-nb'],
      payload: { temperature: 9 },
    });
    assert.equal(sent.code, '2.04');
    const fetched = await until('the action handed over', async () => {
      const answer = await coapRequest(agent, port, { pathname: '/things/tank-nb/actions', token: tokens['tank-nb'] });
      const list = answer.body as { id: string; action: string; input: unknown }[];
      return list.length > 0 ? list : undefined;
    });
    assert.deepEqual(
      fetched.map(({ id: fetchedId, action, input }) => ({ id: fetchedId, action, input })),
      [{ id, action: 'reset', input: { reason: 'calibrate' } }],
    );
    const delivered = await t.api<Invocation>(`/api/v1/invocations/${id}`);
    assert.equal(delivered.body.status, 'delivered');
    const result = await coapRequest(agent, port, {
      method: 'POST',
      pathname: '/things/tank-nb/actions/reset/result',
      token: tokens['tank-nb'],
      payload: { id, output: null },
    });
    assert.equal(result.code, '2.04');
    const done = await t.api<Invocation>(`/api/v1/invocations/${id}`);
    assert.equal(done.body.status, 'succeeded');
  });

  it('counts refused requests in thingloop_refusals_total{listener="coap"}', async () => {
    const stranger = await coapAgent('127.0.0.9');
    try {
      const wrong = await coapRequest(stranger, port, {
        method: 'POST',
        pathname: '/things/tank-a/telemetry',
        token: 'tld_wrong',
        payload: { speed: 1 },
      });
      assert.equal(wrong.code, '4.01');
      const nowhere = await coapRequest(stranger, port, { pathname: '/.well-known/core' });
      assert.equal(nowhere.code, '4.04');
    } finally {
      await closeAgent(stranger);
    }
    const metrics = await t.api<string>('/metrics');
    const text = typeof metrics.body === 'string' ? metrics.body : JSON.stringify(metrics.body);
    assert.match(text, /thingloop_refusals_total\{listener="coap",reason="bad_token"\} 1/);
    assert.match(text, /thingloop_refusals_total\{listener="coap",reason="not_found"\} 1/);
  });
});
