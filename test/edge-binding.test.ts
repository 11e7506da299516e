/**
 * Device bindings across the edge link, with a real cloud node and a real edge node in this
 * process: a device registered in the cloud for an edge arrives there with its binding (and a
 * changed binding follows), and the edge reports the health of the bindings it runs so the
 * cloud's `GET /api/v1/devices/{id}/binding` shows the edge's figures.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type RunningNode, startCloudNode } from '../src/node/index.js';
import { createLogger } from '../src/observability/index.js';
import { ADMIN_KEY, PUMP_MODEL, startTestNode, type TestNode, tempDir, testConfig } from './support/harness.js';
import { callApi } from './support/http.js';
import { until } from './support/wait.js';

const EDGE_ID = 'site-fieldbus';
/** Only turns a hang into a failure: the edge learns its devices on the cloud's next push. */
const SYNC_LIMIT_MS = 20_000;

describe('device bindings across the edge link', () => {
  let cloud: TestNode;
  let edge: RunningNode;
  const edgeDir = tempDir('thingloop-edge-binding-');

  before(async () => {
    cloud = await startTestNode();
    await cloud.api('/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL });
    const created = await cloud.api<{ token: string }>('/api/v1/edges', { method: 'POST', body: { id: EDGE_ID } });
    assert.equal(created.status, 201);
    edge = await startCloudNode(
      testConfig({
        dataDir: join(edgeDir, 'edge'),
        role: 'edge',
        cloudUrl: cloud.node.httpUrl,
        edgeId: EDGE_ID,
        edgeToken: created.body.token,
      }),
      { logger: createLogger({ level: 'silent' }) },
    );
  });
  after(async () => {
    await edge?.stop();
    await cloud?.stop();
    rmSync(edgeDir, { recursive: true, force: true });
  });

  const onEdge = (path: string) => callApi<Record<string, unknown>>(edge.httpUrl, path, {}, ADMIN_KEY);

  test('a device registered in the cloud for an edge arrives there with the same binding; a changed binding follows', async () => {
    const binding = { protocol: 'modbus-tcp', host: '127.0.0.1', port: 502, unitId: 1 };
    const registered = await cloud.api<{ device: { binding: unknown; edge?: string } }>('/api/v1/devices', {
      method: 'POST',
      body: { id: 'plc-pump-1', model: 'pump', edge: EDGE_ID, binding },
    });
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    assert.deepEqual(registered.body.device.binding, binding);

    const arrived = await until('the device on the edge', async () => (await edge.registry.find('plc-pump-1')) ?? undefined, SYNC_LIMIT_MS);
    assert.deepEqual(arrived.binding, binding);
    assert.equal(arrived.edge, EDGE_ID);
    const read = await onEdge('/api/v1/devices/plc-pump-1');
    assert.equal(read.status, 200);
    assert.deepEqual(read.body.binding, binding, "the edge's own API shows it too");

    const moved = { protocol: 'modbus-tcp', host: '127.0.0.1', port: 1502, unitId: 7 };
    const patched = await cloud.api('/api/v1/devices/plc-pump-1', { method: 'PATCH', body: { binding: moved } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const changed = await until(
      'the changed binding on the edge',
      async () => {
        const device = await edge.registry.find('plc-pump-1');
        return device?.binding.port === 1502 ? device : undefined;
      },
      SYNC_LIMIT_MS,
    );
    assert.deepEqual(changed.binding, moved);
  });
});
