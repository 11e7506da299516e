/**
 * Issue #5, end to end with separate processes: a cloud (`thingloop serve`), edges
 * (`thingloop serve --role edge …`) and devices (MQTT.js clients here) that publish QoS 1 to the
 * edge. Links are cut by killing processes for real; afterwards the cloud must hold exactly the
 * samples the devices had acknowledged by the edge: per device, in order, no duplicates.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { type Cleanup, withCleanup } from './support/cleanup.js';
import { PUMP_MODEL, tempDir } from './support/harness.js';
import { type ProcessNode, startProcessNode } from './support/process-node.js';

const ADMIN_KEY = 'edge-test-admin-key-0123';
/** QoS 1 messages each device keeps in flight. */
const WINDOW = 32;
/** Only turns a hang into a failure; nothing here asserts how fast anything is. */
const WAIT_LIMIT_MS = 40_000;

interface Sample {
  vibration: number;
  starts: number;
}

interface Device {
  id: string;
  token: string;
  /** Next sequence number: ts = base + seq, so every sample of a device has a unique, increasing ts. */
  next: number;
  /** ts → values of every sample whose PUBACK came back from the edge. */
  acked: Map<number, Sample>;
}

interface EdgeView {
  id: string;
  appliedSeq: number;
  connected: boolean;
  lastContact: number | null;
  applyRate: number;
  drainRate: number;
  backlog: { records: number; bytes: number; oldestTs: number | null; ageMs: number } | null;
  heartbeat: { at: number; outbox: { records: number; lastSeq: number } } | null;
  gaps: { reports: number; dropped: number; last: { policy: string; total: number } | null };
}

interface GapRange {
  dropped: number;
  from: number;
  to: number;
}

interface ConfigView {
  desired: { version: number; devices: { record: { id: string } }[]; agents: { id: string }[] };
  applied: { version: number | null; results: { kind: string; id: string; status: string }[] };
}

/** The one cloud of this file: restarted (same data, same ports) by the tests that kill it. */
let cloud: ProcessNode;
let cloudDir: string;
const base = Date.now() - 1_800_000;

async function api<T>(node: ProcessNode, path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const response = await node.api<T>(path, { ...init, auth: ADMIN_KEY });
  assert.ok(
    response.status >= 200 && response.status < 300,
    `${init.method ?? 'GET'} ${path}: ${response.status} ${JSON.stringify(response.body)}`,
  );
  return response.body;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, limitMs = WAIT_LIMIT_MS): Promise<T> {
  const deadline = Date.now() + limitMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
}

function startCloud(): Promise<ProcessNode> {
  return startProcessNode({
    dataDir: cloudDir,
    adminKey: ADMIN_KEY,
    ...(cloud ? { httpPort: cloud.httpPort, mqttPort: cloud.mqttPort } : {}),
  });
}

/** SIGKILL the cloud, run `meanwhile`, start it again on the same data directory and ports. */
async function cloudOutage<T>(meanwhile: () => Promise<T>): Promise<{ result: T; downAt: number; upAt: number }> {
  const exit = await cloud.kill('SIGKILL');
  assert.equal(exit.signal, 'SIGKILL');
  const downAt = Date.now();
  const result = await meanwhile();
  const upAt = Date.now();
  cloud = await startCloud();
  return { result, downAt, upAt };
}

async function registerEdge(id: string): Promise<string> {
  const created = await api<{ edge: { id: string }; token: string }>(cloud, '/api/v1/edges', { method: 'POST', body: { id } });
  assert.equal(created.edge.id, id);
  assert.match(created.token, /\S{16,}/);
  const again = await cloud.api(`/api/v1/edges/${id}`, { auth: ADMIN_KEY });
  assert.equal(JSON.stringify(again.body).includes(created.token), false, 'the token is shown once, never again');
  return created.token;
}

async function registerDevices(edgeId: string, count: number): Promise<Device[]> {
  const devices: Device[] = [];
  for (let i = 0; i < count; i++) {
    const id = `${edgeId}-pump-${i}`;
    const created = await api<{ token: string; device: { edge?: string } }>(cloud, '/api/v1/devices', {
      method: 'POST',
      body: { id, model: 'pump', edge: edgeId },
    });
    assert.equal(created.device.edge, edgeId);
    devices.push({ id, token: created.token, next: 0, acked: new Map() });
  }
  return devices;
}

async function startEdge(edgeId: string, token: string, dataDir: string, extra: string[], cleanup: Cleanup, mqttPort?: number) {
  const args = ['--role', 'edge', '--cloud', cloud.httpUrl, '--edge-id', edgeId, '--token', token, ...extra];
  const node = await startProcessNode({
    dataDir,
    adminKey: ADMIN_KEY,
    extraArgs: args,
    ...(mqttPort ? { mqttPort } : {}),
  });
  cleanup.push(() => node.kill('SIGKILL').then(() => undefined));
  return node;
}

/** The edge applied a config holding these devices (and agents), every item without failure. */
async function configApplied(edgeId: string, devices: Device[], agents: string[] = []): Promise<ConfigView> {
  return waitFor(`edge ${edgeId} to apply its configuration`, async () => {
    const view = await api<ConfigView>(cloud, `/api/v1/edges/${edgeId}/config`);
    if (view.applied.version !== view.desired.version) return undefined;
    const ok = (kind: string, id: string) => view.applied.results.some((r) => r.kind === kind && r.id === id && r.status !== 'failed');
    if (!devices.every((d) => ok('device', d.id)) || !agents.every((a) => ok('agent', a))) return undefined;
    return view;
  });
}

async function connect(node: ProcessNode, device: Device): Promise<MqttClient> {
  return mqtt.connectAsync(node.mqttUrl, {
    username: device.id,
    password: device.token,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
  });
}

/**
 * Publishes QoS 1 telemetry from every device, WINDOW in flight each, until `stop()` (or until
 * `perDevice` samples each were sent), then waits for every outstanding PUBACK. `values(seq)`
 * gives each sample's values.
 */
function publish(clients: { device: Device; client: MqttClient }[], values: (seq: number) => Sample, perDevice = Number.POSITIVE_INFINITY) {
  let stopped = false;
  let acked = 0;
  const done = clients.map(
    ({ device, client }) =>
      new Promise<void>((resolve, reject) => {
        let inFlight = 0;
        let sent = 0;
        client.once('close', () => reject(new Error(`${device.id}: the edge closed the connection`)));
        const sendNext = () => {
          if (stopped || sent >= perDevice) {
            if (inFlight === 0) resolve();
            return;
          }
          const seq = device.next++;
          const ts = base + seq;
          const sample = values(seq);
          inFlight++;
          sent++;
          client.publish(`things/${device.id}/telemetry`, JSON.stringify({ ts, ...sample }), { qos: 1 }, (error) => {
            inFlight--;
            if (error) return reject(error);
            device.acked.set(ts, sample);
            acked++;
            sendNext();
          });
        };
        for (let i = 0; i < WINDOW; i++) sendNext();
      }),
  );
  return {
    acked: () => acked,
    stop: async () => {
      stopped = true;
      await Promise.all(done);
    },
    finished: () => Promise.all(done).then(() => undefined),
  };
}

/** Every `starts` sample of a device in the cloud, in the order the API returns it (pages followed). */
async function cloudSamples(deviceId: string, upTo: number): Promise<{ ts: number; starts: number }[]> {
  const out: { ts: number; starts: number }[] = [];
  let cursor: string | null = null;
  do {
    const query = new URLSearchParams({ property: 'starts', from: String(base), to: String(base + upTo + 1), limit: '5000' });
    if (cursor) query.set('cursor', cursor);
    const page = await api<{ items: { ts: number; value: number }[]; next: string | null }>(
      cloud,
      `/api/v1/devices/${deviceId}/telemetry?${query}`,
    );
    for (const item of page.items) out.push({ ts: item.ts, starts: item.value });
    cursor = page.next;
  } while (cursor);
  return out;
}

async function cloudCount(device: Device): Promise<number> {
  const query = new URLSearchParams({
    property: 'starts',
    from: String(base),
    to: String(base + device.next + 1),
    agg: 'count',
    bucket: '1h',
  });
  const result = await api<{ series: { points: { count: number; value: number | null }[] }[] }>(
    cloud,
    `/api/v1/devices/${device.id}/telemetry?${query}`,
  );
  return (result.series[0]?.points ?? []).reduce((sum, p) => sum + (p.value ?? 0), 0);
}

async function drained(devices: Device[], expected: (d: Device) => number = (d) => d.acked.size): Promise<void> {
  await waitFor('the cloud to hold every forwarded sample', async () => {
    for (const device of devices) if ((await cloudCount(device)) < expected(device)) return false;
    return true;
  });
}

/** The cloud holds exactly what the edge acknowledged: same samples, ascending, none twice. */
async function assertExactlyAcked(devices: Device[]): Promise<number> {
  let total = 0;
  for (const device of devices) {
    const stored = await cloudSamples(device.id, device.next);
    const expected = [...device.acked.entries()].sort(([a], [b]) => a - b).map(([ts, sample]) => ({ ts, starts: sample.starts }));
    assert.ok(expected.length > 0, `${device.id} had samples acknowledged`);
    for (let i = 1; i < stored.length; i++) {
      assert.ok(
        (stored[i] as { ts: number }).ts > (stored[i - 1] as { ts: number }).ts,
        `${device.id}: ts ascending, never twice (index ${i})`,
      );
    }
    if (stored.length !== expected.length || !stored.every((s, i) => s.ts === expected[i]?.ts && s.starts === expected[i]?.starts)) {
      const have = new Set(stored.map((s) => s.ts));
      const missing = expected.filter((e) => !have.has(e.ts)).length;
      assert.fail(`${device.id}: cloud holds ${stored.length} samples, ${expected.length} were acknowledged, ${missing} missing`);
    }
    total += expected.length;
  }
  return total;
}

async function edgeView(edgeId: string): Promise<EdgeView> {
  return api<EdgeView>(cloud, `/api/v1/edges/${edgeId}`);
}

/** Gap reports waiting in an edge's outbox, read from its database file (read-only beside WAL). */
function queuedGapReports(dataDir: string): number {
  const db = new Database(join(dataDir, 'thingloop.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare<[], { n: number }>("SELECT count(*) AS n FROM outbox WHERE kind = 'gap'").get()?.n ?? 0;
  } finally {
    db.close();
  }
}

function scratch(cleanup: Cleanup, prefix: string): string {
  const dir = tempDir(prefix);
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function connectAll(node: ProcessNode, devices: Device[], cleanup: Cleanup) {
  const clients = await Promise.all(devices.map(async (device) => ({ device, client: await connect(node, device) })));
  cleanup.push(() => Promise.all(clients.map(({ client }) => client.endAsync(true).catch(() => undefined))).then(() => undefined));
  return clients;
}

const calm = (seq: number): Sample => ({ vibration: 1, starts: seq });

describe('edge ↔ cloud sync across real process kills (issue #5)', { timeout: 240_000 }, () => {
  before(async () => {
    cloudDir = tempDir('thingloop-edge-cloud-');
    cloud = await startCloud();
    await api(cloud, '/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL });
  });
  after(async () => {
    await cloud?.kill('SIGKILL');
    rmSync(cloudDir, { recursive: true, force: true });
  });

  test('an edge gets its devices and agent from the cloud, keeps operating through a cloud outage, and the cloud ends with exactly the acknowledged samples and the edge decisions', () =>
    withCleanup(async (cleanup) => {
      const edgeId = 'site-a';
      const token = await registerEdge(edgeId);
      const list = await api<{ items: EdgeView[] }>(cloud, '/api/v1/edges');
      assert.ok(list.items.some((e) => e.id === edgeId && e.connected === false && e.lastContact === null));
      const devices = await registerDevices(edgeId, 3);
      const agentId = 'edge-vibration-slowdown';
      await api(cloud, '/api/v1/agents', {
        method: 'POST',
        body: {
          id: agentId,
          mode: 'auto',
          perceive: { devices: { ids: devices.map((d) => d.id) } },
          judge: { when: 'vibration > 8', clear: 'vibration < 2' },
          act: { steps: [{ set: { property: 'speed', value: '10' } }] },
          deploy: { edges: [edgeId] },
        },
      });

      const edge = await startEdge(edgeId, token, scratch(cleanup, 'thingloop-edge-a-'), [], cleanup);
      const config = await configApplied(edgeId, devices, [agentId]);
      assert.deepEqual(config.desired.devices.map((d) => d.record.id).sort(), devices.map((d) => d.id).sort());
      assert.deepEqual(
        config.desired.agents.map((a) => a.id),
        [agentId],
      );
      const linked = await edgeView(edgeId);
      assert.equal(linked.connected, true);
      assert.ok(linked.lastContact !== null && linked.lastContact > 0);

      // Devices connect to the EDGE broker with the tokens the cloud issued.
      const clients = await connectAll(edge, devices, cleanup);
      let outage = false;
      const load = publish(clients, (seq) => ({ vibration: outage ? 9 : 1, starts: seq }));
      await waitFor('load through the edge', async () => load.acked() >= 1000);

      const { downAt, upAt } = await cloudOutage(async () => {
        outage = true;
        const at = load.acked();
        await waitFor('load while the cloud is down', async () => load.acked() >= at + 1000);
        await load.stop();
        // A device event taken by the edge while the cloud is away travels up with the samples.
        const { device, client } = clients[0] as (typeof clients)[number];
        await client.publishAsync(`things/${device.id}/events/overheat`, JSON.stringify({ data: { temperature: 150 } }), { qos: 1 });
        return undefined;
      });

      // The edge decided while the cloud was gone; the records follow the telemetry up.
      const reconnected = await waitFor('the edge to reconnect', async () => {
        const view = await edgeView(edgeId);
        return view.connected && view.heartbeat && view.heartbeat.at >= upAt ? view : undefined;
      });
      assert.ok(reconnected.backlog, 'the heartbeat sent on reconnection carries the backlog');
      assert.ok(reconnected.lastContact !== null && reconnected.lastContact >= upAt);

      await drained(devices);
      const total = await assertExactlyAcked(devices);
      assert.ok(total >= 2000, `${total} samples checked`);
      const outageSamples = devices.reduce((n, d) => n + [...d.acked.values()].filter((s) => s.vibration === 9).length, 0);
      assert.ok(outageSamples > 0, 'samples were acknowledged by the edge while the cloud was down');

      const firstDevice = (devices[0] as Device).id;
      const events = await waitFor('the edge event in the cloud', async () => {
        const page = await api<{ items: { name: string; ts: number; data: unknown }[] }>(cloud, `/api/v1/devices/${firstDevice}/events`);
        return page.items.length > 0 ? page.items : undefined;
      });
      assert.equal(events.length, 1, 'the event arrived once');
      assert.deepEqual(events[0]?.data, { temperature: 150 });
      assert.ok((events[0]?.ts ?? 0) >= downAt && (events[0]?.ts ?? 0) <= upAt, 'stamped at the edge while the cloud was down');

      const decisions = await waitFor('edge decisions in the cloud', async () => {
        const body = await api<{ items: { id: string; deviceId: string; ts: number; outcome: string }[] }>(
          cloud,
          `/api/v1/agents/${agentId}/decisions?limit=100`,
        );
        return body.items.length >= devices.length ? body.items : undefined;
      });
      for (const device of devices) {
        const mine = decisions.filter((d) => d.deviceId === device.id);
        assert.ok(mine.length >= 1, `a decision for ${device.id}`);
        assert.ok(
          mine.some((d) => d.ts >= downAt && d.ts <= upAt),
          `${device.id}: decided at the edge while the cloud was down (${JSON.stringify(mine)})`,
        );
      }

      // Status per edge: link, contact, backlog from heartbeats, drain rate, gaps.
      const status = await edgeView(edgeId);
      assert.equal(status.connected, true);
      assert.ok(status.applyRate > 0, 'the cloud measured the drain');
      assert.equal(typeof status.drainRate, 'number');
      assert.deepEqual(status.gaps, { reports: 0, dropped: 0, last: null });
      assert.ok(status.appliedSeq >= total, `applied mark ${status.appliedSeq} covers the ${total} samples`);
    }));

  test('SIGKILL of the edge in the middle of a drain: after a restart on the same data the cloud holds exactly the acknowledged samples', () =>
    withCleanup(async (cleanup) => {
      const edgeId = 'site-b';
      const token = await registerEdge(edgeId);
      const devices = await registerDevices(edgeId, 3);
      const dataDir = scratch(cleanup, 'thingloop-edge-b-');
      // A paced drain (records/s) keeps the drain going long enough to kill the edge inside it.
      const first = await startEdge(edgeId, token, dataDir, ['--drain-rate', '800'], cleanup);
      await configApplied(edgeId, devices);
      const markBefore = (await edgeView(edgeId)).appliedSeq;
      const clients = await connectAll(first, devices, cleanup);
      // The backlog builds while the cloud is down.
      await cloudOutage(async () => {
        await publish(clients, calm, 800).finished();
      });
      const backlog = devices.reduce((n, d) => n + d.acked.size, 0);
      assert.ok(backlog >= 2400, `${backlog} samples queued at the edge`);
      const atKill = await waitFor('the drain to be under way', async () => {
        const view = await edgeView(edgeId);
        return view.appliedSeq >= markBefore + 400 ? view : undefined;
      });
      assert.equal((await first.kill('SIGKILL')).signal, 'SIGKILL');
      const dead = await waitFor('the cloud to see the edge gone', async () => {
        const view = await edgeView(edgeId);
        return view.connected ? undefined : view;
      });
      assert.ok(dead.appliedSeq < markBefore + backlog, `killed mid-drain: applied ${dead.appliedSeq - markBefore} of ${backlog}`);
      assert.ok(atKill.backlog && atKill.backlog.records > 0, 'the reconnection heartbeat reported the backlog');
      assert.ok(atKill.backlog.ageMs > 0);
      let short = 0;
      for (const device of devices) short += device.acked.size - (await cloudCount(device));
      assert.ok(short > 0, `${short} acknowledged samples were still at the edge when it died`);

      const second = await startEdge(edgeId, token, dataDir, [], cleanup);
      await drained(devices);
      assert.equal(await assertExactlyAcked(devices), backlog);
      // The restarted edge takes new telemetry from the same devices and forwards it too.
      const again = await connectAll(second, devices, cleanup);
      await publish(again, calm, 50).finished();
      await drained(devices);
      assert.equal(await assertExactlyAcked(devices), backlog + 150);
    }));

  test('SIGKILL of the cloud in the middle of applying a backlog: after a restart the cloud holds exactly the acknowledged samples', () =>
    withCleanup(async (cleanup) => {
      const edgeId = 'site-c';
      const token = await registerEdge(edgeId);
      const devices = await registerDevices(edgeId, 3);
      // Publishing outpaces the paced drain, so a backlog builds with the cloud connected.
      const edge = await startEdge(edgeId, token, scratch(cleanup, 'thingloop-edge-c-'), ['--drain-rate', '500'], cleanup);
      await configApplied(edgeId, devices);
      const markBefore = (await edgeView(edgeId)).appliedSeq;
      const clients = await connectAll(edge, devices, cleanup);
      await publish(clients, calm, 1000).finished();
      const total = devices.reduce((n, d) => n + d.acked.size, 0);
      await waitFor('the drain to be under way', async () => (await edgeView(edgeId)).appliedSeq > markBefore);
      const { downAt } = await cloudOutage(async () => undefined);
      assert.ok(downAt > 0);
      let short = 0;
      for (const device of devices) short += device.acked.size - (await cloudCount(device));
      assert.ok(short > 0, `the cloud was killed with ${short} of ${total} samples still to apply`);
      await drained(devices);
      assert.equal(await assertExactlyAcked(devices), total);
    }));

  for (const policy of ['drop-oldest', 'downsample'] as const) {
    test(`a full outbox (${policy}) thins telemetry and the cloud reports the gap exactly`, () =>
      withCleanup(async (cleanup) => {
        const edgeId = `site-${policy}`;
        const token = await registerEdge(edgeId);
        const devices = await registerDevices(edgeId, 2);
        const edgeDir = scratch(cleanup, 'thingloop-edge-d-');
        const edge = await startEdge(edgeId, token, edgeDir, ['--outbox-quota', '48KiB', '--outbox-policy', policy], cleanup);
        await configApplied(edgeId, devices);
        const clients = await connectAll(edge, devices, cleanup);
        await cloudOutage(async () => {
          await publish(clients, calm, 1500).finished();
          // The policy runs in the background (throttled): keep the cloud away until the edge has
          // applied it, i.e. a gap report is queued in its outbox.
          await waitFor('the edge to apply its full-outbox policy', async () => queuedGapReports(edgeDir) > 0);
        });
        const acked = devices.reduce((n, d) => n + d.acked.size, 0);
        const view = await waitFor('the gap report and the rest of the backlog', async () => {
          const current = await edgeView(edgeId);
          if (current.gaps.reports < 1) return undefined;
          let missing = 0;
          for (const device of devices) missing += device.acked.size - (await cloudCount(device));
          return missing === current.gaps.dropped ? current : undefined;
        });
        assert.ok(view.gaps.dropped > 0 && view.gaps.dropped < acked, `${view.gaps.dropped} of ${acked} dropped`);
        assert.equal(view.gaps.last?.policy, policy);
        // The reports say exactly which device lost how many samples, and when they were taken.
        const reports = await api<{ items: { policy: string; total: number; devices: Record<string, GapRange> }[] }>(
          cloud,
          `/api/v1/edges/${edgeId}/gaps`,
        );
        assert.equal(reports.items.length, view.gaps.reports);
        for (const device of devices) {
          const kept = new Set((await cloudSamples(device.id, device.next)).map((s) => s.ts));
          const lost = [...device.acked.keys()].filter((ts) => !kept.has(ts));
          const mine = reports.items.flatMap((r) => (r.devices[device.id] ? [r.devices[device.id] as GapRange] : []));
          assert.equal(
            mine.reduce((sum, r) => sum + r.dropped, 0),
            lost.length,
            `${device.id}: the reports count exactly the samples it lost`,
          );
          assert.ok(
            lost.every((ts) => mine.some((r) => ts >= r.from && ts <= r.to)),
            `${device.id}: every lost sample lies in a reported range`,
          );
        }
        for (const device of devices) {
          const stored = await cloudSamples(device.id, device.next);
          assert.ok(stored.length > 0);
          const expected = new Map([...device.acked].map(([ts, sample]) => [ts, sample.starts]));
          for (let i = 0; i < stored.length; i++) {
            const sample = stored[i] as { ts: number; starts: number };
            assert.equal(expected.get(sample.ts), sample.starts, `${device.id}: stored ts ${sample.ts} was acknowledged with that value`);
            if (i > 0) assert.ok(sample.ts > (stored[i - 1] as { ts: number }).ts, `${device.id}: ascending, never twice`);
          }
          const kept = new Set(stored.map((s) => s.ts));
          const missing = [...device.acked.keys()].filter((ts) => !kept.has(ts));
          assert.ok(missing.length > 0, `${device.id} lost samples to the quota`);
          const oldestKept = Math.min(...kept);
          const newestMissing = Math.max(...missing);
          if (policy === 'drop-oldest') assert.ok(newestMissing < oldestKept, `${device.id}: only the oldest samples were dropped`);
          else assert.ok(oldestKept < newestMissing, `${device.id}: older samples were thinned, not cut off`);
        }
      }));
  }
});
