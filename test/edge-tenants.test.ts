/**
 * Two tenants share one cloud node and one edge node: each tenant registers the edge (same id)
 * and a device of the same id behind it; the edge serves both over two links, and each device's
 * data reaches only its own tenant on the cloud, and each tenant's desired state only its own device.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type RunningNode, startCloudNode } from '../src/node/index.js';
import { createLogger } from '../src/observability/index.js';
import { type JsonObject, PUMP_MODEL, startTestNode, type TestNode, tempDir, testConfig } from './support/harness.js';
import { callApi } from './support/http.js';
import { until } from './support/wait.js';

const EDGE_ID = 'site-1';
const SYNC_LIMIT_MS = 20_000;

describe('one edge, two tenants', () => {
  let cloud: TestNode;
  let edge: RunningNode;
  let acmeKey: string;
  const tokens: Record<string, string> = {};
  const edgeDir = tempDir('thingloop-edge-tenants-');
  const acme = <T = JsonObject>(path: string, init: Parameters<TestNode['api']>[1] = {}) => cloud.api<T>(path, { ...init, auth: acmeKey });

  before(async () => {
    cloud = await startTestNode();
    const tenant = await cloud.api<{ adminKey: string }>('/api/v1/tenants', { method: 'POST', body: { id: 'acme' } });
    assert.equal(tenant.status, 201);
    acmeKey = tenant.body.adminKey;
    const edges: Record<string, string> = {};
    for (const [name, call] of [
      ['default', cloud.api.bind(cloud)],
      ['acme', acme],
    ] as const) {
      assert.equal((await call('/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL })).status, 201);
      const registered = await call<{ token: string }>('/api/v1/edges', { method: 'POST', body: { id: EDGE_ID } });
      assert.equal(registered.status, 201, JSON.stringify(registered.body));
      edges[name] = registered.body.token;
      const device = await call<{ token: string }>('/api/v1/devices', {
        method: 'POST',
        body: { id: 'pump-0001', model: 'pump', edge: EDGE_ID, name: `${name} pump` },
      });
      assert.equal(device.status, 201, JSON.stringify(device.body));
      tokens[name] = device.body.token;
    }
    edge = await startCloudNode(
      testConfig({
        dataDir: join(edgeDir, 'edge'),
        role: 'edge',
        cloudUrl: cloud.node.httpUrl,
        edgeId: EDGE_ID,
        edgeToken: edges.default,
        edgeTenants: [{ tenant: 'acme', edgeId: EDGE_ID, token: edges.acme as string }],
      }),
      { logger: createLogger({ level: 'silent' }) },
    );
  });
  after(async () => {
    await edge?.stop();
    await cloud?.stop();
    rmSync(edgeDir, { recursive: true, force: true });
  });

  test("each tenant's device arrives on the edge in its own tenant, with its own record", async () => {
    const ours = await until(
      'acme pump on the edge',
      async () => (await edge.tenant('acme')?.registry.find('pump-0001')) ?? undefined,
      SYNC_LIMIT_MS,
    );
    const theirs = await until('default pump on the edge', async () => (await edge.registry.find('pump-0001')) ?? undefined, SYNC_LIMIT_MS);
    assert.equal(ours.name, 'acme pump');
    assert.equal(ours.tenant, 'acme');
    assert.equal(theirs.name, 'default pump');
    assert.equal(theirs.tenant, 'default');
  });

  test("a device's data goes through the edge to its own tenant on the cloud, never the other's", async () => {
    for (const [name, speed] of [
      ['acme', 71],
      ['default', 13],
    ] as const) {
      const sent = await callApi<JsonObject>(
        edge.httpUrl,
        '/api/v1/devices/pump-0001/telemetry',
        {
          method: 'POST',
          body: { speed },
        },
        tokens[name] as string,
      );
      assert.equal(sent.status, 200, JSON.stringify(sent.body));
    }
    const speedOf = async (call: typeof acme) => {
      const latest = await call<{ values?: Record<string, { value: unknown }> }>('/api/v1/devices/pump-0001/latest');
      return latest.body.values?.speed?.value;
    };
    assert.equal(await until('acme speed on the cloud', () => speedOf(acme), SYNC_LIMIT_MS), 71);
    assert.equal(await until('default speed on the cloud', () => speedOf(cloud.api.bind(cloud)), SYNC_LIMIT_MS), 13);
  });

  test("a tenant's desired state reaches only its own device on the edge", async () => {
    const set = await acme('/api/v1/devices/pump-0001/twin', { method: 'PATCH', body: { desired: { speed: 55 }, version: 0 } });
    assert.ok(set.status === 200 || set.status === 202, JSON.stringify(set.body));
    const desiredOn = async (tenant: string) => {
      const scope = edge.tenant(tenant);
      const device = await scope?.registry.find('pump-0001');
      return device && scope ? (await scope.twins.get(device)).desired.speed : undefined;
    };
    assert.equal(await until('desired on acme pump at the edge', () => desiredOn('acme'), SYNC_LIMIT_MS), 55);
    assert.equal(await desiredOn('default'), undefined, "the default tenant's pump of the same id got nothing");
  });
});
