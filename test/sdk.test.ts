import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { StartupError } from '../src/node/index.js';
import { type DesiredUpdate, type Json, ThingloopDevice } from '../src/sdk/index.js';
import { startTestNode, type TestNode, tempDir } from './support/harness.js';
import { until as waitUntil } from './support/wait.js';

interface InvocationBody {
  id: string;
  status: string;
  output?: unknown;
  error?: string;
}
interface Stored {
  items: { property: string; ts: number; value: unknown }[];
}

/** A port nothing listens on right now (the OS picks it; it is released before use). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const until = <T>(what: string, probe: () => Promise<T | undefined> | T | undefined, deadlineMs = 10_000) =>
  waitUntil(what, probe, deadlineMs);

const fastReconnect = { minMs: 50, maxMs: 200 };

describe('device SDK against a live node', () => {
  let t: TestNode;
  const devices: ThingloopDevice[] = [];

  const connect = async (id: string, token: string) => {
    const device = await ThingloopDevice.connect({ url: t.node.mqttUrl, deviceId: id, token, reconnect: fastReconnect });
    device.on('error', () => {});
    devices.push(device);
    return device;
  };

  before(async () => {
    t = await startTestNode();
  });
  after(async () => {
    await Promise.all(devices.map((d) => d.close()));
    await t.stop();
  });

  test('connect with a wrong token or an unknown device rejects', async () => {
    await t.registerDevice('sdk-auth');
    await assert.rejects(
      ThingloopDevice.connect({ url: t.node.mqttUrl, deviceId: 'sdk-auth', token: 'tld_wrong' }),
      (error: Error & { code?: number }) => {
        assert.ok(error.code === 4 || error.code === 5, `code ${error.code}`);
        return true;
      },
    );
    await assert.rejects(ThingloopDevice.connect({ url: t.node.mqttUrl, deviceId: 'nobody', token: 'tld_wrong' }));
  });

  test('report() sends samples with their timestamps and flush() resolves once all are acknowledged', async () => {
    const { token } = await t.registerDevice('sdk-report');
    const device = await connect('sdk-report', token);
    const base = Date.now() - 60_000;
    for (let i = 0; i < 50; i++) device.report({ vibration: i }, base + i * 100);
    await device.flush();
    assert.deepEqual(
      { sent: device.stats.sent, acknowledged: device.stats.acknowledged, buffered: device.stats.buffered, dropped: device.stats.dropped },
      { sent: 50, acknowledged: 50, buffered: 0, dropped: 0 },
    );
    const stored = await t.api<Stored>(`/api/v1/devices/sdk-report/telemetry?property=vibration&from=${base}&to=${base + 10_000}`);
    assert.deepEqual(
      stored.body.items.map((i) => [i.ts, i.value]),
      Array.from({ length: 50 }, (_, i) => [base + i * 100, i]),
    );
  });

  test('onDesired receives desired state, live and retained on connect', async () => {
    const { token } = await t.registerDevice('sdk-desired');
    await t.api('/api/v1/devices/sdk-desired/twin', { method: 'PATCH', body: { desired: { speed: 25 }, version: 0 } });
    const device = new ThingloopDevice({ url: t.node.mqttUrl, deviceId: 'sdk-desired', token, reconnect: fastReconnect });
    device.on('error', () => {});
    devices.push(device);
    const updates: DesiredUpdate[] = [];
    device.onDesired((update) => updates.push(update));
    const retained = await until('retained desired', () => updates[0]);
    assert.deepEqual(
      { version: retained.version, desired: retained.desired, delta: retained.delta },
      { version: 1, desired: { speed: 25 }, delta: { speed: 25 } },
    );

    await device.reportTwin({ speed: 25 });
    await t.api('/api/v1/devices/sdk-desired/twin', { method: 'PATCH', body: { desired: { mode: 'manual' }, version: 1 } });
    const live = await until('live desired', () => updates[1]);
    assert.deepEqual(
      { version: live.version, desired: live.desired, delta: live.delta },
      { version: 2, desired: { speed: 25, mode: 'manual' }, delta: { mode: 'manual' } },
    );

    await device.requestDesired();
    const asked = await until('requested desired', () => updates[2]);
    assert.equal(asked.version, 2);
  });

  test('handle() answers actions: a returned value succeeds, a thrown error fails with its message', async () => {
    const { token } = await t.registerDevice('sdk-actions');
    const device = await connect('sdk-actions', token);
    const calls: Json[] = [];
    device.handle<{ reason?: string }, Json>('reset', (input, context) => {
      calls.push(input as Json);
      if (input?.reason === 'explode') throw new Error('cannot reset while running');
      return { reset: true, reason: input?.reason ?? null, invocation: context.invocationId };
    });
    const ok = await t.api<InvocationBody>('/api/v1/devices/sdk-actions/actions/reset?wait=5s', {
      method: 'POST',
      body: { input: { reason: 'maintenance' } },
    });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.status, 'succeeded');
    assert.deepEqual(ok.body.output, { reset: true, reason: 'maintenance', invocation: ok.body.id });

    const failed = await t.api<InvocationBody>('/api/v1/devices/sdk-actions/actions/reset?wait=5s', {
      method: 'POST',
      body: { input: { reason: 'explode' } },
    });
    assert.equal(failed.status, 200);
    assert.equal(failed.body.status, 'failed');
    assert.equal(failed.body.error, 'cannot reset while running');
    assert.deepEqual(calls, [{ reason: 'maintenance' }, { reason: 'explode' }]);
  });

  test('an action without a handler fails with a message naming it', async () => {
    const created = await t.api('/api/v1/models/sdk-valve', {
      method: 'PUT',
      body: { '@context': 'https://www.w3.org/2022/wot/td/v1.1', '@type': 'tm:ThingModel', title: 'Valve', actions: { close: {} } },
    });
    assert.ok(created.status < 300, JSON.stringify(created.body));
    const { token } = await t.registerDevice('sdk-nohandler', 'sdk-valve');
    await connect('sdk-nohandler', token);
    const result = await t.api<InvocationBody>('/api/v1/devices/sdk-nohandler/actions/close?wait=5s', { method: 'POST', body: {} });
    assert.equal(result.body.status, 'failed');
    assert.match(result.body.error ?? '', /no handler for action "close"/);
  });
});

describe('device SDK while the node is away', () => {
  let port: number;
  let dataDir: string;
  let t: TestNode | undefined;
  const devices: ThingloopDevice[] = [];

  before(async () => {
    port = await freePort();
    dataDir = tempDir();
  });
  after(async () => {
    await Promise.all(devices.map((d) => d.close()));
    await t?.stop();
  });

  /**
   * Starts a node on the chosen port. Before any device depends on that port (`mayMove`), a port
   * another process took since it was picked is replaced by a new free one.
   */
  const restart = async (mayMove = false): Promise<TestNode> => {
    for (let attempt = 0; ; attempt++) {
      try {
        t = await startTestNode({ dataDir, mqttPort: port });
        return t;
      } catch (error) {
        if (!mayMove || !(error instanceof StartupError) || attempt >= 5) throw error;
        port = await freePort();
      }
    }
  };
  const stopKeepingData = async () => {
    await t?.stop({ keepData: true });
    t = undefined;
  };

  test('samples reported while the broker is unreachable are buffered and each is stored exactly once after it returns', async () => {
    const first = await restart(true);
    const { token } = await first.registerDevice('sdk-offline');
    // No `error` listener on purpose: refused reconnects while the node is away must not crash the process.
    const device = await ThingloopDevice.connect({ url: first.node.mqttUrl, deviceId: 'sdk-offline', token, reconnect: fastReconnect });
    devices.push(device);
    const base = Date.now() - 120_000;
    let n = 0;
    const report = () => {
      device.report({ vibration: n }, base + n * 10);
      n++;
    };
    for (let i = 0; i < 20; i++) report();
    await device.flush();

    const disconnected = new Promise<void>((resolve) => device.once('disconnect', () => resolve()));
    // Some samples are in flight as the node goes away.
    for (let i = 0; i < 20; i++) report();
    await stopKeepingData();
    await disconnected;
    assert.equal(device.connected, false);
    for (let i = 0; i < 60; i++) report();
    assert.ok(device.stats.buffered >= 60, `buffered ${device.stats.buffered}`);
    assert.equal(device.stats.dropped, 0);

    const second = await restart();
    const reconnected = await until('reconnect', () => (device.connected ? true : undefined));
    assert.ok(reconnected);
    await device.flush();
    assert.equal(device.stats.buffered, 0);
    assert.ok(device.stats.reconnects >= 1);

    const stored = await second.api<Stored>(
      `/api/v1/devices/sdk-offline/telemetry?property=vibration&from=${base}&to=${base + 10_000}&limit=1000`,
    );
    assert.deepEqual(
      stored.body.items.map((i) => [i.ts, i.value]),
      Array.from({ length: n }, (_, i) => [base + i * 10, i]),
    );
  });

  test('the buffer is bounded: beyond it the oldest samples are dropped and counted', async () => {
    const node = t ?? (await restart(true));
    const { token } = await node.registerDevice('sdk-bounded');
    await stopKeepingData();

    // The device starts while the node is down: everything waits in its buffer.
    const device = new ThingloopDevice({
      url: `mqtt://127.0.0.1:${port}`,
      deviceId: 'sdk-bounded',
      token,
      maxBufferedSamples: 5,
      reconnect: fastReconnect,
    });
    device.on('error', () => {});
    devices.push(device);
    const base = Date.now() - 60_000;
    for (let i = 0; i < 8; i++) device.report({ vibration: i }, base + i);
    assert.deepEqual({ buffered: device.stats.buffered, dropped: device.stats.dropped }, { buffered: 5, dropped: 3 });

    const back = await restart();
    await until('connected', () => (device.connected ? true : undefined));
    await device.flush();
    const stored = await back.api<Stored>(`/api/v1/devices/sdk-bounded/telemetry?property=vibration&from=${base}&to=${base + 100}`);
    assert.deepEqual(
      stored.body.items.map((i) => i.value),
      [3, 4, 5, 6, 7],
    );
  });

  test('a connected device whose samples are in flight does not count them as dropped', async () => {
    const node = t ?? (await restart(true));
    const { token } = await node.registerDevice('sdk-inflight');
    const device = await ThingloopDevice.connect({ url: node.node.mqttUrl, deviceId: 'sdk-inflight', token, maxBufferedSamples: 3 });
    device.on('error', () => {});
    devices.push(device);
    const base = Date.now() - 30_000;
    for (let i = 0; i < 10; i++) device.report({ vibration: i }, base + i);
    const dropped = device.stats.dropped;
    await device.flush();
    const stored = await node.api<Stored>(`/api/v1/devices/sdk-inflight/telemetry?property=vibration&from=${base}&to=${base + 100}`);
    const kept = stored.body.items.map((i) => i.value as number);
    assert.equal(kept.length + dropped, 10, `stored ${JSON.stringify(kept)} with ${dropped} counted as dropped`);
    assert.deepEqual(
      kept,
      kept.slice().sort((a, b) => a - b),
    );
    assert.equal(kept.at(-1), 9, 'the newest sample is never the one dropped');
  });
});
