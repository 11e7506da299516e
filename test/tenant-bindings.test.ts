/**
 * The listeners and pollers every tenant shares, with two tenants on one node: a CoAP device of
 * the same id in tenants A and B (each token reaches its own tenant's store, observations and
 * action fetches only), and a Modbus PLC device of the same id in A and B polled from two
 * simulated PLCs (each tenant's samples from its own PLC; deleting A's device leaves B's polled),
 * an OPC UA device of the same id in A and B at two pumps of one server (a write reaches its own
 * tenant's pump), and the Sparkplug B host serving the tenant `--sparkplug-tenant` names.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import type { Agent } from 'coap';
import { ModbusPlc } from '../src/sim/modbus-plc.js';
import { type OpcuaLine, opcuaPumpModel, startOpcuaLine } from '../src/sim/opcua-line.js';
import { closeAgent, coapAgent, coapObserve, coapRequest } from './support/coap.js';
import type { ApiInit } from './support/harness.js';
import { PUMP_MODEL, startTestNode, type TestNode, tempDir } from './support/harness.js';
import { TestEdgeNode } from './support/sparkplug.js';
import { until } from './support/wait.js';

const A = 'tenant-a';
const B = 'tenant-b';
const TENANTS = [A, B] as const;
const SAME_ID = 'tank-1';
const PLC_ID = 'plc-1';

/** One input register as the level: the PLC simulators of A and B hold different values in it. */
const LEVEL_PLC_MODEL = {
  '@context': ['https://www.w3.org/2022/wot/td/v1.1', { modv: 'https://www.w3.org/2019/wot/modbus#' }],
  '@type': 'tm:ThingModel',
  title: 'Level sensor on a PLC',
  properties: {
    level: {
      type: 'integer',
      minimum: 0,
      readOnly: true,
      forms: [
        {
          href: 'modbus+tcp://{{host}}:{{port}}/{{unitId}}/30001',
          op: ['readproperty'],
          'modv:entity': 'InputRegister',
          'modv:type': 'uint16',
        },
      ],
    },
  },
};

interface Latest {
  values: Record<string, { value: unknown; ts: number }>;
}
interface Samples {
  items: { value: unknown }[];
}
interface Health {
  protocol: string;
  state: string;
  errors: number;
}
interface Desired {
  version: number;
  desired: Record<string, unknown>;
}

describe('shared bindings serve several tenants without crossing', () => {
  let t: TestNode;
  let coapPort: number;
  const agents: Agent[] = [];
  const plcs: ModbusPlc[] = [];
  const tokens: Record<string, string> = {};
  /** The admin key acting in a tenant. */
  const api = <T>(tenant: string, path: string, init: ApiInit = {}) =>
    t.api<T>(path, { ...init, headers: { ...init.headers, 'x-thingloop-tenant': tenant } });
  const agent = async () => {
    const created = await coapAgent();
    agents.push(created);
    return created;
  };

  before(async () => {
    t = await startTestNode({ modbusPollMs: 100 });
    assert.ok(t.node.coapPort);
    coapPort = t.node.coapPort;
    for (const tenant of TENANTS) {
      const created = await t.api('/api/v1/tenants', { method: 'POST', body: { id: tenant, name: tenant } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.ok((await api(tenant, '/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL })).status < 300);
      const registered = await api<{ token: string }>(tenant, '/api/v1/devices', {
        method: 'POST',
        body: { id: SAME_ID, model: 'pump', binding: { protocol: 'coap' } },
      });
      assert.equal(registered.status, 201, JSON.stringify(registered.body));
      tokens[tenant] = registered.body.token;
    }
  });

  after(async () => {
    await Promise.all(agents.map(closeAgent));
    await t.stop();
    for (const plc of plcs) await plc.close();
  });

  test('CoAP: each token reaches its own tenant: telemetry, health and errors land there only', async () => {
    const device = await agent();
    for (const [tenant, temperature] of [
      [A, 11],
      [B, 22],
    ] as const) {
      const answer = await coapRequest(device, coapPort, {
        method: 'POST',
        pathname: `/things/${SAME_ID}/telemetry`,
        token: tokens[tenant],
        payload: { temperature },
      });
      assert.equal(answer.code, '2.04', answer.text);
    }
    for (const [tenant, temperature] of [
      [A, 11],
      [B, 22],
    ] as const) {
      const page = await api<Samples>(tenant, `/api/v1/devices/${SAME_ID}/telemetry?property=temperature&from=0`);
      assert.equal(page.status, 200);
      assert.deepEqual(
        page.body.items.map((item) => item.value),
        [temperature],
        `${tenant} holds its own device's sample only`,
      );
    }
    // A malformed payload from A's device counts in A's health and errors, not in B's.
    const bad = await coapRequest(device, coapPort, {
      method: 'POST',
      pathname: `/things/${SAME_ID}/telemetry`,
      token: tokens[A],
      payload: Buffer.from('{not json'),
      contentFormat: 'application/json',
    });
    assert.equal(bad.code, '4.00');
    const healthA = await api<Health>(A, `/api/v1/devices/${SAME_ID}/binding`);
    const healthB = await api<Health>(B, `/api/v1/devices/${SAME_ID}/binding`);
    assert.equal(healthA.body.protocol, 'coap');
    assert.equal(healthA.body.state, 'connected');
    assert.equal(healthA.body.errors, 1);
    assert.equal(healthB.body.state, 'connected');
    assert.equal(healthB.body.errors, 0);
    const errorsB = await api<{ items: unknown[] }>(B, `/api/v1/devices/${SAME_ID}/errors`);
    assert.equal(errorsB.body.items.length, 0);
    // A wrong token is refused whichever tenant's device the id names.
    const wrong = await coapRequest(device, coapPort, {
      method: 'POST',
      pathname: `/things/${SAME_ID}/telemetry`,
      token: 'not-a-token',
      payload: { temperature: 1 },
    });
    assert.equal(wrong.code, '4.01');
  });

  test('CoAP: a desired change reaches the observer of its tenant only', async () => {
    const observations = {
      [A]: await coapObserve(await agent(), coapPort, `/things/${SAME_ID}/twin/desired`, tokens[A] as string),
      [B]: await coapObserve(await agent(), coapPort, `/things/${SAME_ID}/twin/desired`, tokens[B] as string),
    };
    for (const tenant of TENANTS) assert.equal(observations[tenant]?.first.code, '2.05');
    const write = async (tenant: string, speed: number) => {
      const twin = await api<Desired>(tenant, `/api/v1/devices/${SAME_ID}/twin`);
      const patched = await api(tenant, `/api/v1/devices/${SAME_ID}/twin`, {
        method: 'PATCH',
        body: { desired: { speed } },
        headers: { 'if-match': `"${twin.body.version}"` },
      });
      assert.equal(patched.status, 200, JSON.stringify(patched.body));
    };
    await write(A, 35);
    await write(B, 65);
    // Each observer's first notification is its own tenant's write: A's change never reached B's device.
    const nextA = (await observations[A]?.next()) as Desired;
    const nextB = (await observations[B]?.next()) as Desired;
    assert.equal(nextA.desired.speed, 35);
    assert.equal(nextB.desired.speed, 65);
  });

  test("CoAP: an invocation waits for its tenant's device; the other's fetch is empty", async () => {
    const device = await agent();
    const invoked = await api<{ id: string; status: string }>(B, `/api/v1/devices/${SAME_ID}/actions/reset`, {
      method: 'POST',
      body: { input: { reason: 'only b' } },
    });
    assert.ok(invoked.status < 300, JSON.stringify(invoked.body));
    const fetchedA = await coapRequest(device, coapPort, { pathname: `/things/${SAME_ID}/actions`, token: tokens[A] });
    assert.equal(fetchedA.code, '2.05');
    assert.deepEqual(fetchedA.body, []);
    const fetchedB = await until('the invocation handed to B', async () => {
      const answer = await coapRequest(device, coapPort, { pathname: `/things/${SAME_ID}/actions`, token: tokens[B] });
      const list = answer.body as { id: string }[];
      return list.length > 0 ? list : undefined;
    });
    assert.deepEqual(
      fetchedB.map((action) => action.id),
      [invoked.body.id],
    );
    assert.equal((await api(A, `/api/v1/invocations/${invoked.body.id}`)).status, 404, "B's invocation is not A's");
  });

  test('Modbus: a PLC device of one id in A and B: each polled from its own PLC, into its own tenant', async () => {
    const levels: Record<string, number> = { [A]: 111, [B]: 222 };
    const plcOf: Record<string, ModbusPlc> = {};
    for (const tenant of TENANTS) {
      const plc = await ModbusPlc.start();
      plcs.push(plc);
      plc.setValue(1, 'InputRegister', 0, 'uint16', levels[tenant] as number);
      plcOf[tenant] = plc;
      assert.ok((await api(tenant, '/api/v1/models/level-plc', { method: 'PUT', body: LEVEL_PLC_MODEL })).status < 300);
      const registered = await api(tenant, '/api/v1/devices', {
        method: 'POST',
        body: { id: PLC_ID, model: 'level-plc', binding: { protocol: 'modbus-tcp', host: '127.0.0.1', port: plc.port, unitId: 1 } },
      });
      assert.equal(registered.status, 201, JSON.stringify(registered.body));
    }
    for (const tenant of TENANTS) {
      const latest = await until(`${tenant}'s level stored`, async () => {
        const { body } = await api<Latest>(tenant, `/api/v1/devices/${PLC_ID}/latest`);
        return body.values?.level;
      });
      assert.equal(latest.value, levels[tenant]);
      const health = await api<Health>(tenant, `/api/v1/devices/${PLC_ID}/binding`);
      assert.equal(health.body.protocol, 'modbus-tcp');
      assert.equal(health.body.state, 'polling');
    }
    // Several rounds each, and never a sample of the other tenant's PLC.
    for (const tenant of TENANTS) {
      const samples = await until(`${tenant} polled a few rounds`, async () => {
        const { body } = await api<Samples>(tenant, `/api/v1/devices/${PLC_ID}/telemetry?property=level&from=0`);
        return body.items.length >= 3 ? body.items : undefined;
      });
      assert.ok(
        samples.every((sample) => sample.value === levels[tenant]),
        `${tenant}: ${JSON.stringify(samples)}`,
      );
    }

    // A's device deleted: A's PLC is no longer polled (its connection closes), B's still is.
    assert.equal((await api(A, `/api/v1/devices/${PLC_ID}`, { method: 'DELETE' })).status, 204);
    await until("A's PLC connection closed", () => (plcOf[A]?.clients === 0 ? true : undefined));
    const readsA = plcOf[A]?.requests.reads ?? 0;
    const readsB = plcOf[B]?.requests.reads ?? 0;
    await until("B's PLC still polled", () => ((plcOf[B]?.requests.reads ?? 0) >= readsB + 3 ? true : undefined));
    assert.equal(plcOf[A]?.requests.reads, readsA, "A's PLC is not read after its device was deleted");
    const healthB = await api<Health>(B, `/api/v1/devices/${PLC_ID}/binding`);
    assert.equal(healthB.body.state, 'polling');
    assert.equal((await api(A, `/api/v1/devices/${PLC_ID}`)).status, 404);
  });
});

describe('Sparkplug B serves the tenant --sparkplug-tenant names', () => {
  let t: TestNode;
  let edge: TestEdgeNode | undefined;
  const api = <T>(tenant: string, path: string, init: ApiInit = {}) =>
    t.api<T>(path, { ...init, headers: { ...init.headers, 'x-thingloop-tenant': tenant } });

  before(async () => {
    // The tenant is created after the node started: the host finds its registry when births come.
    t = await startTestNode({ sparkplugTenant: A });
    assert.equal((await t.api('/api/v1/tenants', { method: 'POST', body: { id: A, name: A } })).status, 201);
  });

  after(async () => {
    await edge?.close();
    await t.stop();
  });

  test("an edge node of tenant A on the embedded broker: its births register devices in A's registry only", async () => {
    assert.ok(
      (await api(A, '/api/v1/models/sparkplug-edge-node', { method: 'PUT', body: { title: 'edge node', properties: {} } })).status < 300,
    );
    const registered = await api<{ token: string }>(A, '/api/v1/devices', {
      method: 'POST',
      body: { id: 'plant1:gw1', model: 'sparkplug-edge-node', binding: { protocol: 'sparkplug-b', group: 'plant1', edgeNode: 'gw1' } },
    });
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    edge = new TestEdgeNode({
      url: t.node.mqttUrl,
      group: 'plant1',
      edgeNode: 'gw1',
      username: 'plant1:gw1',
      password: registered.body.token,
    });
    await edge.connect();
    await edge.nodeBirth([]);
    await edge.publish('DBIRTH', [{ name: 'Level', alias: 1, type: 'Float', value: 42.5 }], 'tank1');
    const path = `/api/v1/devices/${encodeURIComponent('plant1:gw1:tank1')}/latest`;
    const latest = await until("the tank's level in A", async () => {
      const { status, body } = await api<Latest>(A, path);
      return status === 200 ? body.values?.Level : undefined;
    });
    assert.equal(latest.value, 42.5);
    assert.equal((await t.api(path)).status, 404, 'nothing in the default tenant');
    const health = await api<Health>(A, `/api/v1/devices/${encodeURIComponent('plant1:gw1:tank1')}/binding`);
    assert.equal(health.body.protocol, 'sparkplug-b');
    assert.equal(health.body.state, 'connected');
  });
});

describe('OPC UA: a device of one id in A and B, at two pumps of one server', () => {
  const root = tempDir('thingloop-tenant-opcua-');
  let line: OpcuaLine;
  let t: TestNode;
  const PUMP_ID = 'line-pump';
  const pumpOf: Record<string, string> = { [A]: 'Pump1', [B]: 'Pump2' };
  const api = <T>(tenant: string, path: string, init: ApiInit = {}) =>
    t.api<T>(path, { ...init, headers: { ...init.headers, 'x-thingloop-tenant': tenant } });

  before(async () => {
    line = await startOpcuaLine({ port: 0, pumps: 2, pkiDir: join(root, 'line-pki'), trustAllClients: true, tickMs: 200 });
    t = await startTestNode({ dataDir: join(root, 'node') });
    for (const tenant of TENANTS) {
      assert.equal((await t.api('/api/v1/tenants', { method: 'POST', body: { id: tenant, name: tenant } })).status, 201);
      assert.ok((await api(tenant, '/api/v1/models/line2-pump', { method: 'PUT', body: opcuaPumpModel })).status < 300);
      const created = await api(tenant, '/api/v1/devices', {
        method: 'POST',
        body: { id: PUMP_ID, model: 'line2-pump', binding: { protocol: 'opcua', endpoint: line.endpointUrl, pump: pumpOf[tenant] } },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
    }
  });

  after(async () => {
    await t.stop({ keepData: true });
    await line.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it("monitors both; a desired write reaches its own tenant's pump; deleting A's leaves B's connected", async () => {
    for (const tenant of TENANTS) {
      await until(
        `${tenant}'s telemetry`,
        async () => {
          const { body } = await api<Samples>(tenant, `/api/v1/devices/${PUMP_ID}/telemetry?property=bearingTemperature`);
          return body.items?.length ? true : undefined;
        },
        20_000,
      );
    }
    const twin = await api<Desired>(A, `/api/v1/devices/${PUMP_ID}/twin`);
    const patched = await api(A, `/api/v1/devices/${PUMP_ID}/twin`, {
      method: 'PATCH',
      body: { desired: { speedSetpoint: 42.5 } },
      headers: { 'if-match': `"${twin.body.version}"` },
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    await until("A's setpoint on A's pump", () => (line.pump('Pump1').speedSetpoint === 42.5 ? true : undefined), 15_000);
    await until(
      "A's twin reports it",
      async () => {
        const { body } = await api<{ reported: Record<string, unknown> }>(A, `/api/v1/devices/${PUMP_ID}/twin`);
        return body.reported.speedSetpoint === 42.5 ? true : undefined;
      },
      15_000,
    );
    assert.notEqual(line.pump('Pump2').speedSetpoint, 42.5, "B's pump was not written");
    const twinB = await api<{ desired: Record<string, unknown>; reported: Record<string, unknown> }>(B, `/api/v1/devices/${PUMP_ID}/twin`);
    assert.equal(twinB.body.desired.speedSetpoint, undefined);
    assert.notEqual(twinB.body.reported.speedSetpoint, 42.5);

    assert.equal((await api(A, `/api/v1/devices/${PUMP_ID}`, { method: 'DELETE' })).status, 204);
    const before = await api<Samples>(B, `/api/v1/devices/${PUMP_ID}/telemetry?property=bearingTemperature&limit=1000`);
    const seen = before.body.items.length;
    await until(
      "B's pump still monitored",
      async () => {
        const { body } = await api<Samples>(B, `/api/v1/devices/${PUMP_ID}/telemetry?property=bearingTemperature&limit=1000`);
        return body.items.length > seen ? true : undefined;
      },
      20_000,
    );
    const health = await api<Health>(B, `/api/v1/devices/${PUMP_ID}/binding`);
    assert.equal(health.body.protocol, 'opcua');
    assert.equal(health.body.state, 'connected');
  });
});
