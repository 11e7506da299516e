/**
 * Issue #17 (3): a device's action queue is bounded, and the expiry sweep reads only what is due.
 * A real node (HTTP, MQTT, SQLite) with a ManualClock; the store is also opened directly to read
 * the due rows and the plans of the queue's queries.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import type { DecisionRecord } from '../src/agents/index.js';
import { DEFAULT_MAX_PENDING_ACTIONS } from '../src/registry/index.js';
import { openDatabase, type SqliteDatabase, SqliteInvocations } from '../src/store/sqlite/index.js';
import { DUE_INVOCATIONS_SQL, PENDING_INVOCATIONS_SQL } from '../src/store/sqlite/invocations.js';
import { ManualClock } from '../src/time/index.js';
import { connectPlantDevice, createAgent, decisionsOf, putModels } from './support/agents.js';
import { withCleanup } from './support/cleanup.js';
import { PUMP_MODEL, startTestNode, type TestNode, tempDir } from './support/harness.js';
import { until } from './support/wait.js';

interface InvocationBody {
  id: string;
  status: 'queued' | 'delivered' | 'succeeded' | 'failed' | 'expired';
  error?: string;
}
interface ErrorBody {
  error: string;
  message: string;
  details?: { reason: string; pending: number; limit: number };
}

const MINUTE = 60_000;
const SLEEPY = { network: { profile: 'nbiot', reportInterval: '1h' } };

/** The plan SQLite picks for `sql`, one line per step. */
const planOf = (db: SqliteDatabase, sql: string, ...params: number[]) =>
  db
    .prepare<number[], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`)
    .all(...params)
    .map((row) => row.detail)
    .join('\n');

describe('bounded action queues (real node, ManualClock)', () => {
  let t: TestNode;
  let db: SqliteDatabase;
  const clock = new ManualClock(Date.now());

  const invoke = (deviceId: string, body: Record<string, unknown> = { input: {} }) =>
    t.api<InvocationBody & ErrorBody>(`/api/v1/devices/${deviceId}/actions/reset`, { method: 'POST', body });
  const invocation = (id: string) => t.api<InvocationBody>(`/api/v1/invocations/${id}`).then((r) => r.body);
  const queueFullRefusals = async () => {
    const text = (await t.api<string>('/metrics')).body;
    const match = /thingloop_refusals_total\{listener="http",reason="queue_full"\} (\d+)/.exec(text);
    return match ? Number(match[1]) : 0;
  };
  /** Registers in process: the per-device bound is part of the network profile the registry resolves. */
  const registerWithLimit = async (id: string, model: string, profile: string, maxPendingActions: number) =>
    t.node.registry.register({ id, model, network: { profile: profile as 'nbiot', maxPendingActions } });

  before(async () => {
    t = await startTestNode({}, clock);
    // A second connection to the node's own file (WAL): what the sweep reads, and how.
    db = openDatabase(join(t.config.dataDir, 'thingloop.db'));
  });
  after(async () => {
    db.close();
    await t.stop();
  });

  test('a sleepy device takes 1,000 pending actions; the next is 429 queue_full, counted, and accepted again once some expire', async () => {
    assert.equal(DEFAULT_MAX_PENDING_ACTIONS, 1_000);
    await t.registerDevice('nb-full', 'pump', SLEEPY);
    // Ten that expire soon, so room comes back without the device ever waking.
    const shortLived: string[] = [];
    for (let i = 0; i < 10; i++) {
      const queued = await invoke('nb-full', { input: {}, ttl: '1m' });
      assert.equal(queued.status, 202, JSON.stringify(queued.body));
      shortLived.push(queued.body.id);
    }
    // 1,000 more in concurrent waves for the 990 places left: the count and the insert are one
    // step, so racing requests cannot overshoot the bound.
    const statuses: number[] = [];
    for (let wave = 0; wave < 50; wave++) {
      const answers = await Promise.all(Array.from({ length: 20 }, () => invoke('nb-full')));
      statuses.push(...answers.map((answer) => answer.status));
    }
    assert.equal(statuses.filter((status) => status === 202).length, 990);
    assert.equal(statuses.filter((status) => status === 429).length, 10);
    assert.equal(statuses.length, 1_000);

    const refusedBefore = await queueFullRefusals();
    const refused = await invoke('nb-full');
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error, 'too_many_requests');
    assert.deepEqual(refused.body.details, { reason: 'queue_full', pending: 1_000, limit: 1_000 });
    assert.match(refused.body.message, /nb-full already has 1000 pending actions \(limit 1000\)/);
    assert.match(refused.body.message, /wait for it to drain its queue/);
    assert.equal(await queueFullRefusals(), refusedBefore + 1, 'each refusal is counted in /metrics');
    assert.equal(refusedBefore, 10, 'the refusals of the concurrent waves were counted too');

    // A retry with the key of an earlier invocation is answered with it, not refused.
    const keyed = 'nb-full-keyed';
    clock.advance(2 * MINUTE);
    await t.node.sweep();
    for (const id of shortLived) assert.equal((await invocation(id)).status, 'expired');
    const first = await invoke('nb-full', { input: {}, idempotencyKey: keyed });
    assert.equal(first.status, 202);
    for (let i = 0; i < 9; i++) assert.equal((await invoke('nb-full')).status, 202, 'an expired one frees its place');
    assert.equal((await invoke('nb-full')).status, 429, 'full again after ten');
    const replay = await invoke('nb-full', { input: {}, idempotencyKey: keyed });
    assert.equal(replay.status, 202);
    assert.equal(replay.body.id, first.body.id);
  });

  test('a per-device bound is honoured, delivered-but-unanswered ones count, and a completed one frees a place', async () => {
    await assert.rejects(registerWithLimit('nb-zero', 'pump', 'nbiot', 0), /maxPendingActions must be a whole number from 1 to 10000/);
    await assert.rejects(registerWithLimit('nb-huge', 'pump', 'nbiot', 10_001), /maxPendingActions must be a whole number from 1 to 10000/);
    const { token } = await registerWithLimit('nb-three', 'pump', 'nbiot', 3);
    const queued = [];
    for (let i = 0; i < 3; i++) queued.push((await invoke('nb-three')).body);
    const refused = await invoke('nb-three');
    assert.equal(refused.status, 429);
    assert.deepEqual(refused.body.details, { reason: 'queue_full', pending: 3, limit: 3 });

    // The device wakes and gets all three: they are still pending until it answers.
    const client = await t.connectDevice('nb-three', token);
    const requests: { id: string }[] = [];
    client.on('message', (topic, payload) => {
      if (topic === 'things/nb-three/actions/reset') requests.push(JSON.parse(payload.toString()) as { id: string });
    });
    await client.subscribeAsync('things/nb-three/actions/+', { qos: 1 });
    await until('three delivered', () => (requests.length === 3 ? true : undefined));
    assert.deepEqual(
      requests.map((r) => r.id),
      queued.map((q) => q.id),
      'delivered oldest first',
    );
    assert.equal((await invoke('nb-three')).status, 429, 'delivered and unanswered still count');

    const answered = requests[0] as { id: string };
    await client.publishAsync('things/nb-three/actions/reset/result', JSON.stringify({ id: answered.id, output: {} }), { qos: 1 });
    await until('answered', async () => ((await invocation(answered.id)).status === 'succeeded' ? true : undefined));
    const next = await invoke('nb-three');
    assert.equal(next.status, 202, JSON.stringify(next.body));
    assert.equal(next.body.status, 'delivered', 'the awake device gets it at once');
    assert.equal((await invoke('nb-three')).status, 429);
  });

  test('an agent acting on a full queue gets the same refusal as a failed action, and the node carries on', async () => {
    await putModels(t);
    const { token } = await registerWithLimit('ag-full', 'agent-pump', 'ethernet', 1);
    const pump = await connectPlantDevice(t, 'ag-full', token);
    const first = await t.api<InvocationBody>('/api/v1/devices/ag-full/actions/stop', { method: 'POST', body: {} });
    assert.equal(first.body.status, 'queued', 'the device does not listen for actions: it stays queued');
    await createAgent(t, {
      id: 'stopper',
      perceive: { devices: { ids: ['ag-full'] } },
      judge: { when: 'temperature > 80', clear: 'temperature < 70' },
      act: { steps: [{ invoke: { action: 'stop' } }] },
    });
    await pump.send({ temperature: 90 });
    const [decision] = await decisionsOf(t, 'stopper');
    assert.equal((decision as DecisionRecord).outcome, 'failed');
    assert.match((decision as DecisionRecord).actions[0]?.error ?? '', /ag-full already has 1 pending actions \(limit 1\)/);
    assert.equal((await t.api('/healthz')).status, 200);
  });
});

describe('expiry in proportion to what is due (real node, ManualClock)', () => {
  let t: TestNode;
  let db: SqliteDatabase;
  const clock = new ManualClock(Date.now());
  const invocation = (id: string) => t.api<InvocationBody>(`/api/v1/invocations/${id}`).then((r) => r.body);

  before(async () => {
    t = await startTestNode({}, clock);
    db = openDatabase(join(t.config.dataDir, 'thingloop.db'));
    await t.api('/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL });
  });
  after(async () => {
    db.close();
    await t.stop();
  });

  test('5,000 far-future and 3 due: exactly the 3 expire, and the due read searches the deadline index', async () => {
    const { device } = await t.node.registry.register({
      id: 'nb-many',
      model: 'pump',
      network: { profile: 'nbiot', maxPendingActions: 6_000 },
    });
    const far = [];
    for (let i = 0; i < 5_000; i++)
      far.push((await t.node.commands.invoke(device, { action: 'reset', input: {}, actor: 'api' })).invocation);
    const due = [];
    for (let i = 0; i < 3; i++) {
      due.push((await t.node.commands.invoke(device, { action: 'reset', input: {}, ttlMs: MINUTE, actor: 'api' })).invocation);
    }
    const dueIds = due.map((d) => d.id).sort();

    const invocations = new SqliteInvocations(db);
    const at = clock.now() + 2 * MINUTE;
    assert.deepEqual((await invocations.due(at, 100)).map((d) => d.id).sort(), dueIds, 'the due read returns only due rows');
    assert.equal((await invocations.due(at, 2)).length, 2, 'and at most a batch');
    const plan = planOf(db, DUE_INVOCATIONS_SQL, at, 100);
    assert.match(plan, /SEARCH invocations USING INDEX invocations_due \(expires_at<\?\)/);
    assert.doesNotMatch(plan, /SCAN invocations/);
    assert.match(
      planOf(db, PENDING_INVOCATIONS_SQL, device.uid),
      /SEARCH invocations USING (COVERING )?INDEX invocations_open_by_device \(device_uid=\?\)/,
    );

    const touched = new Set<string>();
    const off = t.node.commands.events.on('invocation.changed', (changed) => {
      touched.add(changed.id);
      assert.equal(changed.status, 'expired');
    });
    clock.advance(2 * MINUTE);
    await t.node.commands.expireDue();
    off();
    assert.deepEqual([...touched].sort(), dueIds, 'only the due invocations were written');
    for (const id of dueIds) assert.match((await invocation(id)).error ?? '', /did not become reachable within 1m/);
    assert.deepEqual(await invocations.due(clock.now(), 100), []);
    const open = db
      .prepare<[number], { n: number }>("SELECT COUNT(*) AS n FROM invocations WHERE device_uid = ? AND status = 'queued'")
      .get(device.uid);
    assert.equal(open?.n, 5_000, 'the far-future ones are untouched');
  });
});

test('a database from before the deadline column gets it on open, filled from the stored invocations', async () => {
  await withCleanup(async (cleanup) => {
    const dir = tempDir();
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'old.db');
    // The invocations table as schema 6 left it, and the devices table later migrations alter.
    const old = new Database(file);
    old.exec(`CREATE TABLE devices (
       uid INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, model TEXT NOT NULL, model_version INTEGER NOT NULL,
       code TEXT NOT NULL UNIQUE, ipv6 TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL, record TEXT NOT NULL) STRICT;
     CREATE TABLE invocations (
       id TEXT PRIMARY KEY, device_uid INTEGER NOT NULL, status TEXT NOT NULL, idempotency_key TEXT,
       created_at INTEGER NOT NULL, record TEXT NOT NULL) STRICT;
     CREATE UNIQUE INDEX invocations_by_key ON invocations (device_uid, idempotency_key) WHERE idempotency_key IS NOT NULL;
     CREATE INDEX invocations_by_device ON invocations (device_uid, created_at);
     CREATE INDEX invocations_open ON invocations (status, created_at) WHERE status IN ('queued', 'delivered');`);
    const insert = old.prepare('INSERT INTO invocations (id, device_uid, status, created_at, record) VALUES (?, 1, ?, 1000, ?)');
    const record = (id: string, status: string, expiresAt: number) =>
      JSON.stringify({
        id,
        deviceId: 'd',
        action: 'reset',
        input: null,
        status,
        actor: 'api',
        createdAt: 1000,
        expiresAt,
        timeoutMs: 30_000,
      });
    insert.run('due', 'queued', record('due', 'queued', 5_000));
    insert.run('later', 'delivered', record('later', 'delivered', 50_000));
    insert.run('done', 'succeeded', record('done', 'succeeded', 2_000));
    old.pragma('user_version = 6');
    old.close();

    const db = openDatabase(file);
    cleanup.push(() => {
      db.close();
    });
    const invocations = new SqliteInvocations(db);
    assert.deepEqual(
      (await invocations.due(10_000, 100)).map((i) => i.id),
      ['due'],
    );
    assert.deepEqual(
      (await invocations.due(60_000, 100)).map((i) => i.id),
      ['due', 'later'],
    );
    assert.match(planOf(db, DUE_INVOCATIONS_SQL, 10_000, 100), /USING INDEX invocations_due/);
  });
});
