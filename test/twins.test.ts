import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../src/time/index.js';
import { nextMessage, startTestNode, type TestNode } from './support/harness.js';
import { until } from './support/wait.js';

interface TwinBody {
  deviceId: string;
  version: number;
  reportedVersion: number;
  reported: Record<string, unknown>;
  desired: Record<string, unknown>;
  delta: Record<string, unknown>;
  metadata: { reported: Record<string, { ts: number }>; desired: Record<string, { ts: number; by: string }> };
  pendingDelivery: unknown[];
}
interface DesiredMessage {
  version: number;
  desired: Record<string, unknown>;
  delta: Record<string, unknown>;
}
interface HistoryEntry {
  seq: number;
  section: 'desired' | 'reported';
  actor: string;
  version: number;
  ts: number;
  changes: { key: string; old: unknown; new: unknown }[];
  reason?: string;
}
interface ErrorBody {
  error: string;
  message: string;
  details?: unknown;
}

describe('device twins', () => {
  let t: TestNode;
  const clock = new ManualClock(Date.now());
  const tokens: Record<string, string> = {};

  const twin = (id: string) => t.api<TwinBody>(`/api/v1/devices/${id}/twin`);
  const patch = (id: string, body: unknown, ifMatch?: string) =>
    t.api<TwinBody & ErrorBody>(`/api/v1/devices/${id}/twin`, {
      method: 'PATCH',
      body,
      ...(ifMatch === undefined ? {} : { headers: { 'if-match': ifMatch } }),
    });
  const history = (id: string, query = '') => t.api<{ items: HistoryEntry[] }>(`/api/v1/devices/${id}/twin/history${query}`);

  before(async () => {
    t = await startTestNode({}, clock);
    for (const id of ['tw-1', 'tw-2', 'tw-3', 'tw-4', 'tw-5', 'tw-6']) tokens[id] = (await t.registerDevice(id)).token;
  });
  after(() => t.stop());

  test('a new twin is empty at version 0 and GET carries its version as ETag', async () => {
    const response = await fetch(`${t.node.httpUrl}/api/v1/devices/tw-1/twin`, {
      headers: { authorization: 'Bearer test-admin-key-0123456789' },
    });
    const body = (await response.json()) as TwinBody;
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('etag'), '"0"');
    assert.deepEqual(
      { version: body.version, reported: body.reported, desired: body.desired, delta: body.delta },
      { version: 0, reported: {}, desired: {}, delta: {} },
    );
    assert.equal((await t.api('/api/v1/devices/nobody/twin')).status, 404);
  });

  test('accepted telemetry updates reported state with per-key timestamps; refused values do not', async () => {
    const client = await t.connectDevice('tw-1', tokens['tw-1'] as string);
    const at = clock.now();
    await client.publishAsync('things/tw-1/telemetry', JSON.stringify({ speed: 40, running: true, colour: 'red' }), { qos: 1 });
    const reported = await until('reported speed', async () => {
      const { body } = await twin('tw-1');
      return body.reported.speed === 40 ? body : undefined;
    });
    assert.deepEqual(reported.reported, { speed: 40, running: true });
    assert.deepEqual(reported.metadata.reported, { speed: { ts: at }, running: { ts: at } });

    // An older sample never overwrites a newer reported value.
    await client.publishAsync('things/tw-1/telemetry', JSON.stringify({ ts: at - 60_000, speed: 10 }), { qos: 1 });
    clock.advance(1000);
    await client.publishAsync('things/tw-1/telemetry', JSON.stringify({ speed: 45 }), { qos: 1 });
    const later = await until('reported speed 45', async () => {
      const { body } = await twin('tw-1');
      return body.reported.speed === 45 ? body : undefined;
    });
    assert.deepEqual(later.metadata.reported.speed, { ts: at + 1000 });
    assert.deepEqual(later.metadata.reported.running, { ts: at }, 'a key not in the sample keeps its timestamp');
  });

  test('things/{id}/twin/reported updates reported state and is recorded in the history with actor device', async () => {
    const client = await t.connectDevice('tw-2', tokens['tw-2'] as string);
    await client.subscribeAsync('things/tw-2/errors');
    await client.publishAsync('things/tw-2/twin/reported', JSON.stringify({ mode: 'auto', starts: 3 }), { qos: 1 });
    const errors = nextMessage<{ source: string; rejections: { property: string; reason: string }[] }>(client, 'things/tw-2/errors');
    await client.publishAsync('things/tw-2/twin/reported', JSON.stringify({ mode: 'manual', speed: 500 }), { qos: 1 });
    const refused = await errors;
    assert.equal(refused.source, 'twin');
    assert.deepEqual(
      refused.rejections.map((r) => [r.property, r.reason]),
      [['speed', 'out_of_range']],
    );

    const { body } = await twin('tw-2');
    assert.deepEqual(body.reported, { mode: 'manual', starts: 3 });
    assert.equal(body.reportedVersion, 2);
    assert.equal(body.version, 0, 'reports do not move the desired version writers quote');
    const { items } = (await history('tw-2')).body;
    assert.deepEqual(
      items.map((e) => [e.section, e.actor, e.changes]),
      [
        ['reported', 'device', [{ key: 'mode', old: 'auto', new: 'manual' }]],
        [
          'reported',
          'device',
          [
            { key: 'mode', old: null, new: 'auto' },
            { key: 'starts', old: null, new: 3 },
          ],
        ],
      ],
    );
  });

  test('desired writes need the current version: missing → 428, stale → 409, If-Match or body version → 200', async () => {
    const missing = await patch('tw-3', { desired: { speed: 50 } });
    assert.equal(missing.status, 428);
    assert.deepEqual(missing.body.details, { currentVersion: 0 });

    const first = await patch('tw-3', { desired: { speed: 50 } }, '"0"');
    assert.equal(first.status, 200);
    assert.equal(first.body.version, 1);
    assert.deepEqual(first.body.desired, { speed: 50 });

    const stale = await patch('tw-3', { desired: { speed: 60 } }, '"0"');
    assert.equal(stale.status, 409);
    assert.deepEqual(stale.body.details, { currentVersion: 1 });
    const staleBody = await patch('tw-3', { desired: { speed: 60 }, version: 0 });
    assert.equal(staleBody.status, 409);

    const byBody = await patch('tw-3', { desired: { mode: 'manual' }, version: 1 });
    assert.equal(byBody.status, 200);
    assert.equal(byBody.body.version, 2);
    assert.deepEqual(byBody.body.desired, { speed: 50, mode: 'manual' });

    const badHeader = await patch('tw-3', { desired: { speed: 1 } }, 'latest');
    assert.equal(badHeader.status, 400);

    // null removes a key
    const removed = await patch('tw-3', { desired: { mode: null } }, '2');
    assert.equal(removed.status, 200);
    assert.deepEqual(removed.body.desired, { speed: 50 });
    assert.equal(removed.body.version, 3);
  });

  test('no lost updates: of concurrent writers quoting the same version exactly one wins', async () => {
    const current = (await twin('tw-4')).body.version;
    const results = await Promise.all(
      [10, 20, 30, 40, 50].map((speed) => patch('tw-4', { desired: { speed } }, `"${current}"`).then((r) => ({ speed, r }))),
    );
    const winners = results.filter((x) => x.r.status === 200);
    assert.equal(winners.length, 1, JSON.stringify(results.map((x) => x.r.status)));
    assert.deepEqual(
      results.filter((x) => x.r.status !== 200).map((x) => x.r.status),
      [409, 409, 409, 409],
    );
    const after = (await twin('tw-4')).body;
    assert.equal(after.version, current + 1);
    assert.deepEqual(after.desired, { speed: winners[0]?.speed });
  });

  test('desired values are validated against the model and every problem is listed', async () => {
    const refused = await patch(
      'tw-5',
      { desired: { colour: 'red', temperature: 30, speed: 250, mode: 'turbo', running: 'yes', starts: 1.5 } },
      '"0"',
    );
    assert.equal(refused.status, 400);
    const problems = refused.body.details as { property: string; reason: string }[];
    assert.deepEqual(Object.fromEntries(problems.map((p) => [p.property, p.reason])), {
      colour: 'unknown_property',
      temperature: 'read_only',
      speed: 'out_of_range',
      mode: 'not_in_enum',
      running: 'wrong_type',
      starts: 'wrong_type',
    });
    for (const key of ['colour', 'temperature', 'speed', 'mode', 'running', 'starts']) assert.match(refused.body.message, new RegExp(key));
    const unchanged = (await twin('tw-5')).body;
    assert.equal(unchanged.version, 0);
    assert.deepEqual(unchanged.desired, {});
  });

  test('delta lists desired keys whose reported value differs; metadata says when and by whom', async () => {
    const client = await t.connectDevice('tw-6', tokens['tw-6'] as string);
    await client.publishAsync('things/tw-6/twin/reported', JSON.stringify({ speed: 40, mode: 'auto' }), { qos: 1 });
    clock.advance(5000);
    const at = clock.now();
    const written = await patch('tw-6', { desired: { speed: 55, mode: 'auto', running: true } }, '"0"');
    assert.equal(written.status, 200);
    assert.deepEqual(written.body.delta, { speed: 55, running: true });
    assert.deepEqual(written.body.metadata.desired, {
      speed: { ts: at, by: 'admin' },
      mode: { ts: at, by: 'admin' },
      running: { ts: at, by: 'admin' },
    });
    // A write that changes nothing keeps the version.
    const same = await patch('tw-6', { desired: { speed: 55 } }, '"1"');
    assert.equal(same.status, 200);
    assert.equal(same.body.version, 1);

    await client.publishAsync('things/tw-6/twin/reported', JSON.stringify({ speed: 55 }), { qos: 1 });
    assert.deepEqual((await twin('tw-6')).body.delta, { running: true });
    await client.publishAsync('things/tw-6/telemetry', JSON.stringify({ running: true }), { qos: 1 });
    await until('empty delta', async () => {
      const { body } = await twin('tw-6');
      return Object.keys(body.delta).length === 0 ? body : undefined;
    });
  });

  test('desired state reaches the device retained on twin/desired, live, on reconnect and on twin/get', async () => {
    const { token } = await t.registerDevice('tw-live');
    const written = await patch('tw-live', { desired: { speed: 30 } }, '"0"');
    assert.equal(written.status, 200);

    // A device that connects after the change gets it when it subscribes (retained).
    const late = await t.connectDevice('tw-live', token);
    const retained = nextMessage<DesiredMessage>(late, 'things/tw-live/twin/desired');
    await late.subscribeAsync('things/tw-live/twin/desired', { qos: 1 });
    const first = await retained;
    assert.deepEqual(
      { version: first.version, desired: first.desired, delta: first.delta },
      { version: 1, desired: { speed: 30 }, delta: { speed: 30 } },
    );

    // A live subscriber gets the next change as it happens.
    const live = nextMessage<DesiredMessage>(late, 'things/tw-live/twin/desired');
    await patch('tw-live', { desired: { mode: 'maintenance' } }, '"1"');
    const second = await live;
    assert.deepEqual(
      { version: second.version, desired: second.desired, delta: second.delta },
      { version: 2, desired: { speed: 30, mode: 'maintenance' }, delta: { speed: 30, mode: 'maintenance' } },
    );

    // Asking on twin/get sends the current state again (with the delta after a report).
    await late.publishAsync('things/tw-live/twin/reported', JSON.stringify({ speed: 30 }), { qos: 1 });
    const answer = nextMessage<DesiredMessage>(late, 'things/tw-live/twin/desired');
    await late.publishAsync('things/tw-live/twin/get', '', { qos: 1 });
    const got = await answer;
    assert.deepEqual(
      { version: got.version, desired: got.desired, delta: got.delta },
      { version: 2, desired: { speed: 30, mode: 'maintenance' }, delta: { mode: 'maintenance' } },
    );

    // A second, later session also gets the retained state.
    await late.endAsync();
    const again = await t.connectDevice('tw-live', token);
    const replay = nextMessage<DesiredMessage>(again, 'things/tw-live/twin/desired');
    await again.subscribeAsync('things/tw-live/#', { qos: 1 });
    assert.equal((await replay).version, 2);
  });

  test('history lists every desired change and twin report, newest first, with actor and old → new', async () => {
    const { token } = await t.registerDevice('tw-hist');
    const client = await t.connectDevice('tw-hist', token);
    await patch('tw-hist', { desired: { speed: 20 } }, '"0"');
    await client.publishAsync('things/tw-hist/twin/reported', JSON.stringify({ speed: 20 }), { qos: 1 });
    await patch('tw-hist', { desired: { speed: 35, mode: 'manual' } }, '"1"');
    await patch('tw-hist', { desired: { speed: null } }, '"2"');

    const { items } = (await history('tw-hist')).body;
    assert.deepEqual(
      items.map((e) => ({ section: e.section, actor: e.actor, version: e.version, changes: e.changes })),
      [
        { section: 'desired', actor: 'admin', version: 3, changes: [{ key: 'speed', old: 35, new: null }] },
        {
          section: 'desired',
          actor: 'admin',
          version: 2,
          changes: [
            { key: 'speed', old: 20, new: 35 },
            { key: 'mode', old: null, new: 'manual' },
          ],
        },
        { section: 'reported', actor: 'device', version: 1, changes: [{ key: 'speed', old: null, new: 20 }] },
        { section: 'desired', actor: 'admin', version: 1, changes: [{ key: 'speed', old: null, new: 20 }] },
      ],
    );
    const desiredOnly = (await history('tw-hist', '?section=desired')).body.items;
    assert.equal(desiredOnly.length, 3);
    assert.ok(desiredOnly.every((e) => e.section === 'desired'));
    const page = (await history('tw-hist', '?limit=2')).body.items;
    assert.equal(page.length, 2);
    const next = (await history('tw-hist', `?limit=2&before=${page[1]?.seq}`)).body.items;
    assert.deepEqual(
      next.map((e) => [e.section, e.version]),
      [
        ['reported', 1],
        ['desired', 1],
      ],
    );
  });

  test('twins survive a restart of the node', async () => {
    const { token } = await t.registerDevice('tw-keep');
    const client = await t.connectDevice('tw-keep', token);
    await client.publishAsync('things/tw-keep/twin/reported', JSON.stringify({ speed: 12 }), { qos: 1 });
    await patch('tw-keep', { desired: { speed: 24 } }, '"0"');
    await t.stop({ keepData: true });
    t = await startTestNode({ dataDir: t.config.dataDir }, clock);
    const { body } = await twin('tw-keep');
    assert.deepEqual(
      { version: body.version, reported: body.reported, desired: body.desired, delta: body.delta },
      { version: 1, reported: { speed: 12 }, desired: { speed: 24 }, delta: { speed: 24 } },
    );
  });
});
