import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { ManualClock } from '../src/time/index.js';
import { nextMessage, startTestNode, type TestNode } from './support/harness.js';
import { until } from './support/wait.js';

interface InvocationBody {
  id: string;
  deviceId: string;
  action: string;
  input: unknown;
  status: 'queued' | 'delivered' | 'succeeded' | 'failed' | 'expired';
  output?: unknown;
  error?: string;
  idempotencyKey?: string;
  actor: string;
  createdAt: number;
  deliveredAt?: number;
  completedAt?: number;
  expiresAt: number;
  timeoutMs: number;
  note?: string;
  replayed?: boolean;
}
interface ActionRequest {
  id: string;
  input: unknown;
}
interface ErrorBody {
  error: string;
  message: string;
  details?: unknown;
}

/** Collects every action request a device session receives, in order. */
function recordRequests(client: MqttClient, deviceId: string): ActionRequest[] {
  const seen: ActionRequest[] = [];
  const prefix = `things/${deviceId}/actions/`;
  client.on('message', (topic, payload) => {
    if (topic.startsWith(prefix) && !topic.endsWith('/result')) seen.push(JSON.parse(payload.toString()) as ActionRequest);
  });
  return seen;
}

describe('device actions', () => {
  let t: TestNode;
  const clock = new ManualClock(Date.now());
  let token: string;
  let device: MqttClient;

  const invoke = (deviceId: string, action: string, body: unknown, options: { query?: string; headers?: Record<string, string> } = {}) =>
    t.api<InvocationBody & ErrorBody>(`/api/v1/devices/${deviceId}/actions/${action}${options.query ?? ''}`, {
      method: 'POST',
      body,
      ...(options.headers ? { headers: options.headers } : {}),
    });
  const invocation = (id: string) => t.api<InvocationBody>(`/api/v1/invocations/${id}`);

  before(async () => {
    t = await startTestNode({}, clock);
    ({ token } = await t.registerDevice('act-1'));
    device = await t.connectDevice('act-1', token);
    await device.subscribeAsync('things/act-1/actions/+', { qos: 1 });
  });
  after(() => t.stop());

  test('queued → delivered → succeeded: the device gets {id, input} and answers on …/result', async () => {
    const { token: token2 } = await t.registerDevice('act-late');
    const queued = await invoke('act-late', 'reset', { input: { reason: 'weekly' } });
    assert.equal(queued.status, 202);
    assert.equal(queued.body.status, 'queued');
    assert.equal(queued.body.actor, 'admin');
    assert.match(queued.body.note ?? '', /queued \(device offline\)/);
    assert.equal((await invocation(queued.body.id)).body.status, 'queued');

    const late = await t.connectDevice('act-late', token2);
    const request = nextMessage<ActionRequest>(late, 'things/act-late/actions/reset');
    await late.subscribeAsync('things/act-late/actions/reset', { qos: 1 });
    assert.deepEqual(await request, { id: queued.body.id, input: { reason: 'weekly' } });
    const delivered = await until('delivered', async () => {
      const { body } = await invocation(queued.body.id);
      return body.status === 'delivered' ? body : undefined;
    });
    assert.equal(delivered.deliveredAt, clock.now());

    clock.advance(250);
    await late.publishAsync('things/act-late/actions/reset/result', JSON.stringify({ id: queued.body.id, output: { done: true } }), {
      qos: 1,
    });
    const { body } = await invocation(queued.body.id);
    assert.equal(body.status, 'succeeded');
    assert.deepEqual(body.output, { done: true });
    assert.equal(body.completedAt, clock.now());
  });

  test('?wait returns the output directly when the device answers in time (200), 202 when it does not', async () => {
    const answering = (message: ActionRequest) =>
      device.publishAsync('things/act-1/actions/reset/result', JSON.stringify({ id: message.id, output: { ok: true } }), { qos: 1 });
    const request = nextMessage<ActionRequest>(device, 'things/act-1/actions/reset');
    const call = invoke('act-1', 'reset', { input: { reason: 'now' } }, { query: '?wait=5s' });
    await answering(await request);
    const answered = await call;
    assert.equal(answered.status, 200);
    assert.equal(answered.body.status, 'succeeded');
    assert.deepEqual(answered.body.output, { ok: true });
    assert.equal(answered.body.replayed, false);

    const unanswered = await invoke('act-1', 'reset', {}, { query: '?wait=100ms' });
    assert.equal(unanswered.status, 202);
    assert.equal(unanswered.body.status, 'delivered');

    assert.equal((await invoke('act-1', 'reset', {}, { query: '?wait=2m' })).status, 400, 'wait is capped at 60s');
    assert.equal((await invoke('act-1', 'reset', {}, { query: '?wait=soon' })).status, 400);
  });

  test('an error answer fails the invocation with the device message', async () => {
    const request = nextMessage<ActionRequest>(device, 'things/act-1/actions/reset');
    const call = invoke('act-1', 'reset', { input: {} }, { query: '?wait=5s' });
    const { id } = await request;
    await device.publishAsync('things/act-1/actions/reset/result', JSON.stringify({ id, error: 'motor jammed' }), { qos: 1 });
    const failed = await call;
    assert.equal(failed.status, 200);
    assert.equal(failed.body.status, 'failed');
    assert.equal(failed.body.error, 'motor jammed');

    // A second answer to a finished invocation changes nothing and is reported to the device.
    await device.subscribeAsync('things/act-1/errors');
    const complaint = nextMessage<{ rejections: { message: string }[] }>(device, 'things/act-1/errors');
    await device.publishAsync('things/act-1/actions/reset/result', JSON.stringify({ id, output: {} }), { qos: 1 });
    assert.match((await complaint).rejections[0]?.message ?? '', /already failed/);
    assert.equal((await invocation(id)).body.status, 'failed');
  });

  test('input is validated against the model: bad input → 400, unknown action → 404, nothing is sent', async () => {
    const seen = recordRequests(device, 'act-1');
    const bad = await invoke('act-1', 'reset', { input: { reason: 42 } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /input of reset/);
    const notObject = await invoke('act-1', 'reset', { input: 'now' });
    assert.equal(notObject.status, 400);
    const unknown = await invoke('act-1', 'explode', { input: {} });
    assert.equal(unknown.status, 404);
    assert.match(unknown.body.message, /no action "explode".*reset/);
    assert.equal((await invoke('nobody', 'reset', {})).status, 404);

    // A valid call afterwards is the first thing the device hears.
    const marker = nextMessage<ActionRequest>(device, 'things/act-1/actions/reset');
    const ok = await invoke('act-1', 'reset', { input: { reason: 'marker' } });
    assert.equal((await marker).id, ok.body.id);
    assert.deepEqual(
      seen.map((r) => r.id),
      [ok.body.id],
    );
    const history = await t.api<{ items: InvocationBody[] }>('/api/v1/devices/act-1/invocations?limit=1000');
    assert.ok(history.body.items.every((i) => (i.input as { reason?: unknown } | null)?.reason !== 42));
  });

  test('the same Idempotency-Key never runs twice: the device hears it once and the replay returns the first invocation', async () => {
    const seen = recordRequests(device, 'act-1');
    const first = await invoke('act-1', 'reset', { input: { reason: 'idem' } }, { headers: { 'idempotency-key': 'k-1' } });
    assert.equal(first.status, 202);
    assert.equal(first.body.replayed, false);
    assert.equal(first.body.idempotencyKey, 'k-1');
    const second = await invoke('act-1', 'reset', { input: { reason: 'idem' } }, { headers: { 'idempotency-key': 'k-1' } });
    assert.equal(second.body.id, first.body.id);
    assert.equal(second.body.replayed, true);
    const byBody = await invoke('act-1', 'reset', { input: { reason: 'idem' }, idempotencyKey: 'k-1' });
    assert.equal(byBody.body.id, first.body.id);
    assert.equal(byBody.body.replayed, true);

    // After the answer, a replay still returns the finished first invocation.
    await device.publishAsync('things/act-1/actions/reset/result', JSON.stringify({ id: first.body.id, output: { n: 1 } }), { qos: 1 });
    const replay = await invoke('act-1', 'reset', { input: { reason: 'idem' } }, { headers: { 'idempotency-key': 'k-1' } });
    assert.equal(replay.status, 200);
    assert.equal(replay.body.id, first.body.id);
    assert.equal(replay.body.status, 'succeeded');
    assert.deepEqual(replay.body.output, { n: 1 });

    // Requests reach one session in order: once a later request has arrived, a duplicate would have too.
    const marker = nextMessage<ActionRequest>(device, 'things/act-1/actions/reset');
    const other = await invoke('act-1', 'reset', { input: { reason: 'other' } }, { headers: { 'idempotency-key': 'k-2' } });
    assert.notEqual(other.body.id, first.body.id);
    assert.equal((await marker).id, other.body.id);
    assert.deepEqual(
      seen.map((r) => r.id),
      [first.body.id, other.body.id],
    );
  });

  test('concurrent calls with one Idempotency-Key create one invocation', async () => {
    const seen = recordRequests(device, 'act-1');
    const calls = await Promise.all(
      Array.from({ length: 6 }, () =>
        invoke('act-1', 'reset', { input: { reason: 'race' } }, { headers: { 'idempotency-key': 'race-1' } }),
      ),
    );
    assert.deepEqual(
      calls.map((c) => c.status),
      [202, 202, 202, 202, 202, 202],
    );
    const ids = new Set(calls.map((c) => c.body.id));
    assert.equal(ids.size, 1);
    assert.equal(calls.filter((c) => c.body.replayed === false).length, 1);
    // The one delivery is on its way to the device; the marker must not catch it.
    await until('the raced invocation reaches the device', () => (seen.length > 0 ? true : undefined));
    const marker = nextMessage<ActionRequest>(device, 'things/act-1/actions/reset');
    const after = await invoke('act-1', 'reset', { input: { reason: 'after-race' } });
    assert.equal((await marker).id, after.body.id);
    assert.deepEqual(
      seen.map((r) => r.id),
      [calls[0]?.body.id, after.body.id],
    );
  });

  test('the same key on another device is another invocation', async () => {
    const { token: token2 } = await t.registerDevice('act-2');
    const other = await t.connectDevice('act-2', token2);
    await other.subscribeAsync('things/act-2/actions/+', { qos: 1 });
    const a = await invoke('act-1', 'reset', {}, { headers: { 'idempotency-key': 'shared' } });
    const b = await invoke('act-2', 'reset', {}, { headers: { 'idempotency-key': 'shared' } });
    assert.notEqual(a.body.id, b.body.id);
    assert.equal(b.body.replayed, false);
    assert.equal(b.body.deviceId, 'act-2');
  });

  test('a delivered invocation nobody answers expires after its timeout with a reason', async () => {
    const request = nextMessage<ActionRequest>(device, 'things/act-1/actions/reset');
    const call = await invoke('act-1', 'reset', { input: {} });
    await request;
    const custom = await invoke('act-1', 'reset', { input: {}, timeout: '2s' });
    assert.equal(call.body.status, 'delivered');
    assert.equal(call.body.timeoutMs, 30_000);
    assert.equal(custom.body.timeoutMs, 2000);

    clock.advance(2000);
    await t.node.sweep();
    assert.equal((await invocation(custom.body.id)).body.status, 'expired');
    assert.equal((await invocation(call.body.id)).body.status, 'delivered', 'the default 30s timeout has not passed');

    clock.advance(28_000);
    await t.node.sweep();
    const expired = (await invocation(call.body.id)).body;
    assert.equal(expired.status, 'expired');
    assert.match(expired.error ?? '', /no result within 30s of delivery/);
    assert.equal(expired.completedAt, clock.now());

    // A late answer is refused and does not revive it.
    await device.publishAsync('things/act-1/actions/reset/result', JSON.stringify({ id: call.body.id, output: {} }), { qos: 1 });
    assert.equal((await invocation(call.body.id)).body.status, 'expired');
  });

  test('GET /devices/{id}/invocations lists the history newest first and filters by status', async () => {
    const { token: token3 } = await t.registerDevice('act-3');
    const client = await t.connectDevice('act-3', token3);
    await client.subscribeAsync('things/act-3/actions/+', { qos: 1 });
    const ids: string[] = [];
    for (const reason of ['a', 'b', 'c']) {
      const request = nextMessage<ActionRequest>(client, 'things/act-3/actions/reset');
      ids.push((await invoke('act-3', 'reset', { input: { reason } })).body.id);
      const { id } = await request;
      if (reason !== 'b')
        await client.publishAsync('things/act-3/actions/reset/result', JSON.stringify({ id, output: reason }), { qos: 1 });
      clock.advance(10);
    }
    const all = await t.api<{ items: InvocationBody[] }>('/api/v1/devices/act-3/invocations');
    assert.deepEqual(
      all.body.items.map((i) => [i.id, i.status]),
      [
        [ids[2], 'succeeded'],
        [ids[1], 'delivered'],
        [ids[0], 'succeeded'],
      ],
    );
    const open = await t.api<{ items: InvocationBody[] }>('/api/v1/devices/act-3/invocations?status=delivered');
    assert.deepEqual(
      open.body.items.map((i) => i.id),
      [ids[1]],
    );
    assert.equal((await t.api('/api/v1/invocations/no-such-id')).status, 404);
    assert.equal((await t.api('/api/v1/devices/nobody/invocations')).status, 404);
  });
});
