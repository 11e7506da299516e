/**
 * Issue 13, defect 5: a cloud node ignored SIGTERM for 16 minutes after a store-and-forward run
 * in which it was SIGKILLed and restarted, then its edge SIGKILLed in the middle of a drain.
 * The same run with real processes; then SIGTERM: the cloud exits, within its shutdown deadline
 * (plus a generous margin for a loaded machine), and when it had to give up waiting, its log
 * names the step it was waiting for.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type MqttClient } from 'mqtt';
import { PUMP_MODEL, tempDir } from './support/harness.js';
import { type Exit, type ProcessNode, startProcessNode } from './support/process-node.js';

const ADMIN_KEY = 'shutdown-test-admin-key-0123';
const SHUTDOWN_TIMEOUT_S = 5;
/** Only turns a hang into a failure; nothing here asserts how fast anything is. */
const WAIT_LIMIT_MS = 40_000;
/** A shutdown that waits for its work is fine; one that outlives its deadline by this much is the bug. */
const EXIT_MARGIN_MS = 30_000;
const EDGE_ID = 'site-stop';
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

interface EdgeView {
  appliedSeq: number;
  connected: boolean;
}

describe('a cloud node stops on SIGTERM after its edge died mid-drain (issue 13, defect 5)', { timeout: 240_000 }, () => {
  let cloud: ProcessNode | undefined;
  let edge: ProcessNode | undefined;
  const dirs: string[] = [];
  const clients: MqttClient[] = [];

  const startCloud = (dataDir: string, ports?: { httpPort: number; mqttPort: number }) =>
    startProcessNode({
      dataDir,
      adminKey: ADMIN_KEY,
      env: { THINGLOOP_SHUTDOWN_TIMEOUT: `${SHUTDOWN_TIMEOUT_S}s` },
      ...(ports ?? {}),
    });

  before(() => {
    dirs.push(tempDir('thingloop-stop-cloud-'), tempDir('thingloop-stop-edge-'));
  });
  after(async () => {
    await Promise.all(clients.map((client) => client.endAsync(true).catch(() => undefined)));
    await edge?.kill('SIGKILL');
    await cloud?.kill('SIGKILL');
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test('SIGKILL the cloud, restart it, SIGKILL the edge mid-drain, SIGTERM the cloud: it exits', async () => {
    const [cloudDir, edgeDir] = dirs as [string, string];
    cloud = await startCloud(cloudDir);
    await api(cloud, '/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL });
    const { token: edgeToken } = await api<{ token: string }>(cloud, '/api/v1/edges', { method: 'POST', body: { id: EDGE_ID } });
    const devices: { id: string; token: string }[] = [];
    for (let i = 0; i < 3; i++) {
      const id = `${EDGE_ID}-pump-${i}`;
      const created = await api<{ token: string }>(cloud, '/api/v1/devices', {
        method: 'POST',
        body: { id, model: 'pump', edge: EDGE_ID },
      });
      devices.push({ id, token: created.token });
    }
    // An agent on the edge decides while the cloud is away: decisions and desired changes travel up with the samples.
    await api(cloud, '/api/v1/agents', {
      method: 'POST',
      body: {
        id: 'edge-vibration-slowdown',
        mode: 'auto',
        perceive: { devices: { ids: devices.map((d) => d.id) } },
        judge: { when: 'vibration > 8', clear: 'vibration < 2' },
        act: { steps: [{ set: { property: 'speed', value: '10' } }] },
        deploy: { edges: [EDGE_ID] },
      },
    });
    // A paced drain keeps the drain going long enough to kill the edge inside it.
    edge = await startProcessNode({
      dataDir: edgeDir,
      adminKey: ADMIN_KEY,
      extraArgs: ['--role', 'edge', '--cloud', cloud.httpUrl, '--edge-id', EDGE_ID, '--token', edgeToken, '--drain-rate', '800'],
    });
    const edgeNode = edge;
    await waitFor('the edge to apply its configuration', async () => {
      const view = await api<{ desired: { version: number }; applied: { version: number | null } }>(
        cloud as ProcessNode,
        `/api/v1/edges/${EDGE_ID}/config`,
      );
      return view.applied.version === view.desired.version;
    });
    const markBefore = (await api<EdgeView>(cloud, `/api/v1/edges/${EDGE_ID}`)).appliedSeq;
    for (const device of devices) {
      clients.push(
        await mqtt.connectAsync(edgeNode.mqttUrl, {
          username: device.id,
          password: device.token,
          protocolVersion: 4,
          reconnectPeriod: 0,
          connectTimeout: 10_000,
        }),
      );
    }

    // The cloud dies; the edge stores and forwards: a backlog builds while it is away.
    const ports = { httpPort: cloud.httpPort, mqttPort: cloud.mqttPort };
    assert.equal((await cloud.kill('SIGKILL')).signal, 'SIGKILL');
    let backlog = 0;
    await Promise.all(
      clients.map(async (client, index) => {
        const device = devices[index] as { id: string };
        for (let seq = 0; seq < 800; seq += 40) {
          await Promise.all(
            Array.from({ length: 40 }, (_, i) =>
              client.publishAsync(
                `things/${device.id}/telemetry`,
                JSON.stringify({ ts: base + seq + i, vibration: seq % 200 < 100 ? 9 : 1, starts: seq + i }),
                {
                  qos: 1,
                },
              ),
            ),
          );
          backlog += 40;
        }
      }),
    );
    assert.ok(backlog >= 2400, `${backlog} samples queued at the edge`);
    cloud = await startCloud(cloudDir, ports);
    const restarted = cloud;

    // The edge dies in the middle of its drain.
    await waitFor('the drain to be under way', async () => {
      const view = await api<EdgeView>(restarted, `/api/v1/edges/${EDGE_ID}`);
      return view.appliedSeq >= markBefore + 400;
    });
    assert.equal((await edgeNode.kill('SIGKILL')).signal, 'SIGKILL');
    const dead = await waitFor('the cloud to see the edge gone', async () => {
      const view = await api<EdgeView>(restarted, `/api/v1/edges/${EDGE_ID}`);
      return view.connected ? undefined : view;
    });
    assert.ok(dead.appliedSeq < markBefore + backlog, `killed mid-drain: applied ${dead.appliedSeq - markBefore} of ${backlog}`);

    // SIGTERM: the cloud stops, waiting for its work but not past its deadline.
    restarted.child.kill('SIGTERM');
    const exit = await Promise.race([restarted.exited, sleep(SHUTDOWN_TIMEOUT_S * 1000 + EXIT_MARGIN_MS).then(() => undefined)]);
    const log = restarted.stdout() + restarted.stderr();
    assert.ok(exit, `the cloud was still running ${SHUTDOWN_TIMEOUT_S} s + ${EXIT_MARGIN_MS / 1000} s after SIGTERM:\n${log.slice(-4000)}`);
    const { code } = exit as Exit;
    if (code !== 0) {
      // Forced: the log names the step it was still waiting for.
      assert.match(log, /shutdown did not finish within \d+ ms: still waiting for \S/, log.slice(-4000));
    } else {
      assert.match(log, /"msg":"stopped"/, 'a clean stop says so');
    }
  });

  test('a shutdown that cannot finish in time logs the step it waited for and exits non-zero', async () => {
    const dataDir = tempDir('thingloop-stop-forced-');
    dirs.push(dataDir);
    const node = await startProcessNode({ dataDir, adminKey: ADMIN_KEY, env: { THINGLOOP_SHUTDOWN_TIMEOUT: '1s' } });
    try {
      const { token } = await api<{ token: string }>(node, '/api/v1/edges', { method: 'POST', body: { id: 'mute-edge' } });
      // An edge link whose peer never answers the WebSocket close: the HTTP server waits for it
      // (the library's close handshake allows it 30 s), longer than this node's 1 s deadline.
      const socket = connect(node.httpPort, '127.0.0.1');
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      socket.write(
        [
          'GET /api/v1/edges/mute-edge/link HTTP/1.1',
          `Host: 127.0.0.1:${node.httpPort}`,
          'Upgrade: websocket',
          'Connection: Upgrade',
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
          'Sec-WebSocket-Version: 13',
          `Authorization: Bearer ${token}`,
          '',
          '',
        ].join('\r\n'),
      );
      let answer = '';
      socket.setEncoding('latin1').on('data', (chunk: string) => {
        answer += chunk;
      });
      await waitFor('the link to open', async () => answer.includes('101 Switching Protocols'));
      await waitFor('the cloud to count the edge connected', async () => (await api<EdgeView>(node, '/api/v1/edges/mute-edge')).connected);
      node.child.kill('SIGTERM');
      const exit = await Promise.race([node.exited, sleep(1_000 + EXIT_MARGIN_MS).then(() => undefined)]);
      const log = node.stdout() + node.stderr();
      assert.ok(exit, `still running after SIGTERM:\n${log.slice(-4000)}`);
      assert.notEqual(exit.code, 0, 'a forced stop exits non-zero');
      assert.match(log, /still waiting for HTTP server \(requests in flight, WebSockets\)/);
      assert.match(log, /not run: [^"]*closing the database/);
      socket.destroy();
    } finally {
      await node.kill('SIGKILL');
    }
  });
});
