/**
 * The edge directory's HTTP face on a real cloud node: registration, the gap list and
 * decommissioning (refused while devices are attached; afterwards the token stops working and a
 * live link is closed). The sync itself is proven with real processes in edge.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { encodeBatch, OUTBOX_EPOCH_HEADER, type SequencedRecord } from '../src/edge/index.js';
import { startTestNode, type TestNode } from './support/harness.js';

describe('edges API', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode();
  });
  after(() => t.stop());

  const linkStatus = async (id: string, token: string) =>
    (await fetch(`${t.node.httpUrl}/api/v1/edges/${id}/link`, { headers: { authorization: `Bearer ${token}` } })).status;

  test('a new edge has no gap reports; an unknown edge is a 404', async () => {
    const created = await t.api<{ token: string }>('/api/v1/edges', { method: 'POST', body: { id: 'site-gaps' } });
    assert.equal(created.status, 201);
    const gaps = await t.api<{ items: unknown[] }>('/api/v1/edges/site-gaps/gaps');
    assert.equal(gaps.status, 200);
    assert.deepEqual(gaps.body.items, []);
    assert.equal((await t.api('/api/v1/edges/nowhere/gaps')).status, 404);
    assert.equal((await t.api('/api/v1/edges/nowhere', { method: 'DELETE' })).status, 404);
  });

  test('an edge is decommissioned only once no device is attached; then its token and link are gone', async () => {
    const { token } = (await t.api<{ token: string }>('/api/v1/edges', { method: 'POST', body: { id: 'site-old' } })).body;
    await t.registerDevice('pump-behind-old', 'pump', { edge: 'site-old' });
    assert.equal(await linkStatus('site-old', token), 426, 'the token is good: only the upgrade is missing');

    const refused = await t.api<{ error: string; message: string; details: { devices: string[] } }>('/api/v1/edges/site-old', {
      method: 'DELETE',
    });
    assert.equal(refused.status, 409);
    assert.match(refused.body.message, /pump-behind-old/);
    assert.match(refused.body.message, /DELETE \/api\/v1\/devices/, 'says what to do');
    assert.deepEqual(refused.body.details.devices, ['pump-behind-old']);

    // A live link, closed by the deletion.
    const link = new WebSocket(`${t.node.httpUrl.replace('http', 'ws')}/api/v1/edges/site-old/link`, {
      headers: { authorization: `Bearer ${token}` },
    });
    await new Promise<void>((resolve, reject) => {
      link.once('message', () => resolve());
      link.once('error', reject);
    });
    const closed = new Promise<number>((resolve) => link.once('close', (code) => resolve(code)));

    assert.equal((await t.api('/api/v1/devices/pump-behind-old', { method: 'DELETE' })).status, 204);
    assert.equal((await t.api('/api/v1/edges/site-old', { method: 'DELETE' })).status, 204);
    assert.equal(await closed, 4403);
    assert.equal((await t.api('/api/v1/edges/site-old')).status, 404);
    assert.equal(await linkStatus('site-old', token), 401, 'the token no longer works');
    const orphan = await t.api('/api/v1/devices', { method: 'POST', body: { id: 'pump-late', model: 'pump', edge: 'site-old' } });
    assert.equal(orphan.status, 400, 'no device can be attached to a deleted edge');
  });

  test("an edge's token speaks for its own devices only: records for others are skipped, the batch still acknowledged", async () => {
    const { token } = (await t.api<{ token: string }>('/api/v1/edges', { method: 'POST', body: { id: 'site-own' } })).body;
    await t.registerDevice('pump-own', 'pump', { edge: 'site-own' });
    await t.registerDevice('pump-direct', 'pump');
    const link = new WebSocket(`${t.node.httpUrl.replace('http', 'ws')}/api/v1/edges/site-own/link`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const acks: number[] = [];
    link.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as { type: string; upTo?: number };
      if (frame.type === 'ack' && frame.upTo !== undefined) acks.push(frame.upTo);
    });
    await new Promise<void>((resolve, reject) => {
      link.once('message', () => resolve());
      link.once('error', reject);
    });
    const ts = Date.now() - 1000;
    link.send(
      encodeBatch([
        { seq: 1, record: { kind: 'telemetry', deviceId: 'pump-own', ts, values: { speed: 10 } } },
        { seq: 2, record: { kind: 'telemetry', deviceId: 'pump-direct', ts, values: { speed: 99 } } },
        { seq: 3, record: { kind: 'event', deviceId: 'pump-direct', name: 'doorOpened', ts, data: null } },
      ]),
    );
    const deadline = Date.now() + 5000;
    while (!acks.includes(3) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    link.close();
    assert.ok(acks.includes(3), `the batch was acknowledged (acks ${JSON.stringify(acks)})`);
    const own = await t.api<{ items: { value: number }[] }>(`/api/v1/devices/pump-own/telemetry?property=speed&from=${ts}`);
    assert.deepEqual(
      own.body.items.map((i) => i.value),
      [10],
    );
    const other = await t.api<{ items: unknown[] }>(`/api/v1/devices/pump-direct/telemetry?property=speed&from=${ts}`);
    assert.deepEqual(other.body.items, [], 'a device the edge does not serve got nothing from it');
    const events = await t.api<{ items: unknown[] }>('/api/v1/devices/pump-direct/events');
    assert.deepEqual(events.body.items, []);
  });

  test('an edge with a new outbox (new data directory) starts its sequence again; its records are not skipped as replays', async () => {
    const { token } = (await t.api<{ token: string }>('/api/v1/edges', { method: 'POST', body: { id: 'site-reborn' } })).body;
    await t.registerDevice('pump-reborn', 'pump', { edge: 'site-reborn' });
    const ts = Date.now() - 10_000;
    const samples = (from: number, count: number, at: number): SequencedRecord[] =>
      Array.from({ length: count }, (_, i) => ({
        seq: from + i,
        record: { kind: 'telemetry', deviceId: 'pump-reborn', ts: at + i, values: { speed: i } },
      }));

    /** Opens the link naming an outbox epoch; resolves with the first ack (where the cloud stands). */
    const open = async (epoch: string) => {
      const link = new WebSocket(`${t.node.httpUrl.replace('http', 'ws')}/api/v1/edges/site-reborn/link`, {
        headers: { authorization: `Bearer ${token}`, [OUTBOX_EPOCH_HEADER]: epoch },
      });
      const acks: number[] = [];
      link.on('message', (data: Buffer) => {
        const frame = JSON.parse(data.toString()) as { type: string; upTo?: number };
        if (frame.type === 'ack' && frame.upTo !== undefined) acks.push(frame.upTo);
      });
      const deadline = Date.now() + 5000;
      while (acks.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      const until = async (upTo: number) => {
        const limit = Date.now() + 5000;
        while (!acks.includes(upTo) && Date.now() < limit) await new Promise((resolve) => setTimeout(resolve, 20));
        assert.ok(acks.includes(upTo), `acknowledged up to ${upTo} (acks ${JSON.stringify(acks)})`);
      };
      const closed = () =>
        new Promise<void>((resolve) => {
          link.once('close', () => resolve());
          link.close();
        });
      return { first: acks[0], link, until, closed };
    };

    const first = await open('epoch-a');
    assert.equal(first.first, 0);
    first.link.send(encodeBatch(samples(1, 3, ts)));
    await first.until(3);
    await first.closed();

    const again = await open('epoch-a');
    assert.equal(again.first, 3, 'the same outbox resumes after its mark');
    await again.closed();

    const reborn = await open('epoch-b');
    assert.equal(reborn.first, 0, 'a new outbox starts from the beginning');
    reborn.link.send(encodeBatch(samples(1, 2, ts + 100)));
    await reborn.until(2);
    await reborn.closed();

    const stored = await t.api<{ items: { ts: number }[] }>(`/api/v1/devices/pump-reborn/telemetry?property=speed&from=${ts}`);
    assert.deepEqual(
      stored.body.items.map((i) => i.ts),
      [ts, ts + 1, ts + 2, ts + 100, ts + 101],
      'the new outbox records are stored, not skipped',
    );
  });

  test('an agent deployed to a connected edge reaches it at once, not at its next heartbeat', async () => {
    const { token } = (await t.api<{ token: string }>('/api/v1/edges', { method: 'POST', body: { id: 'site-agents' } })).body;
    await t.registerDevice('pump-agents', 'pump', { edge: 'site-agents' });
    const link = new WebSocket(`${t.node.httpUrl.replace('http', 'ws')}/api/v1/edges/site-agents/link`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const configs: { agents: { id: string }[] }[] = [];
    link.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as { type: string; config?: { agents: { id: string }[] } };
      if (frame.type === 'config' && frame.config) configs.push(frame.config);
    });
    await new Promise<void>((resolve, reject) => {
      link.once('message', () => resolve());
      link.once('error', reject);
    });
    const created = await t.api('/api/v1/agents', {
      method: 'POST',
      body: {
        id: 'edge-pushed',
        mode: 'auto',
        perceive: { devices: { ids: ['pump-agents'] } },
        judge: { when: 'speed > 90', clear: 'speed < 50' },
        act: { steps: [{ set: { property: 'speed', value: '50' } }] },
        deploy: { edges: ['site-agents'] },
      },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const deadline = Date.now() + 5000;
    while (!configs.some((c) => c.agents.some((a) => a.id === 'edge-pushed')) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    link.close();
    assert.ok(
      configs.some((c) => c.agents.some((a) => a.id === 'edge-pushed')),
      'a configuration naming the new agent was pushed',
    );
    assert.equal((await t.api('/api/v1/agents/edge-pushed', { method: 'DELETE' })).status, 204);
  });
});
