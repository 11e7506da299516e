/**
 * Modbus TCP end to end through a real node: a device registered over the REST API with a
 * modbus-tcp binding is polled from the simulated pump station PLC (modbus-serial ServerTCP); its
 * telemetry, twin, desired writes, actions, errors, health and refusal metrics go through the
 * gateway like any other device's.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { ModbusPlc } from '../src/sim/modbus-plc.js';
import { type PlcStation, startPlcStation } from '../src/sim/modbus-station.js';
import { seededRandom } from '../src/sim/physics.js';
import { startTestNode, type TestNode } from './support/harness.js';
import { until } from './support/wait.js';

interface Latest {
  values: Record<string, { value: unknown; ts: number }>;
}
interface TwinBody {
  version: number;
  desired: Record<string, unknown>;
  reported: Record<string, unknown>;
}
interface InvocationBody {
  id: string;
  status: string;
  output?: unknown;
  error?: string;
}
interface HealthBody {
  protocol: string;
  state: string;
  lastGoodReadTs: number | null;
  errors: number;
  latencyMs: number | null;
}
interface ErrorsBody {
  items: { source: string; rejections: { reason: string; message: string }[] }[];
}

const exampleModel = (id: string): unknown => JSON.parse(readFileSync(new URL(`../examples/models/${id}.json`, import.meta.url), 'utf8'));

describe('modbus-tcp devices on a node', () => {
  let t: TestNode;
  let station: PlcStation;

  const latest = async (id: string) => (await t.api<Latest>(`/api/v1/devices/${id}/latest`)).body.values ?? {};
  const register = (id: string, unitId: number, model = 'pump-plc') =>
    t.api(`/api/v1/devices`, {
      method: 'POST',
      body: { id, model, binding: { protocol: 'modbus-tcp', host: '127.0.0.1', port: station.port, unitId } },
    });

  before(async () => {
    station = await startPlcStation({ port: 0, speedup: 30, tickMs: 100, random: seededRandom(11) });
    t = await startTestNode();
    for (const id of ['pump-plc', 'valve-plc'])
      assert.equal((await t.api(`/api/v1/models/${id}`, { method: 'PUT', body: exampleModel(id) })).status < 300, true);
    assert.equal((await register('plc-pump-01', 1)).status, 201);
    assert.equal((await register('plc-valve-01', 100, 'valve-plc')).status, 201);
  });

  after(async () => {
    await t.stop();
    await station.stop();
  });

  test('registered over the API, a PLC device is polled: telemetry, presence and health', async () => {
    const values = await until(
      'PLC telemetry stored',
      async () => {
        const now = await latest('plc-pump-01');
        return 'bearingTemperature' in now && 'running' in now ? now : undefined;
      },
      15_000,
    );
    assert.equal(values.running?.value, true);
    assert.equal(typeof values.flow?.value, 'number');
    const valve = await until('valve telemetry', async () => (await latest('plc-valve-01')).position);
    assert.equal(valve.value, 50);
    const listed = await t.api<{ items: { id: string }[] }>('/api/v1/devices?protocol=modbus-tcp');
    assert.deepEqual(listed.body.items.map((item) => item.id).sort(), ['plc-pump-01', 'plc-valve-01']);
    const health = await t.api<HealthBody>('/api/v1/devices/plc-pump-01/binding');
    assert.equal(health.status, 200);
    assert.equal(health.body.protocol, 'modbus-tcp');
    assert.equal(health.body.state, 'polling');
    assert.equal(typeof health.body.lastGoodReadTs, 'number');
    assert.equal(typeof health.body.latencyMs, 'number');
    assert.equal(station.plc.clients, 1);
  });

  test('a desired speed reaches the PLC, is read back and reported; an action writes the run coil', async () => {
    const twin = await t.api<TwinBody>('/api/v1/devices/plc-pump-01/twin');
    const patched = await t.api<TwinBody>('/api/v1/devices/plc-pump-01/twin', {
      method: 'PATCH',
      body: { desired: { speed: 45 } },
      headers: { 'if-match': `"${twin.body.version}"` },
    });
    assert.equal(patched.status, 200);
    await until('the setpoint in the PLC', () => (station.pump('plc-pump-01').speedSetpoint === 45 ? true : undefined), 10_000);
    await until(
      'the write confirmed in the twin',
      async () => {
        const { body } = await t.api<TwinBody>('/api/v1/devices/plc-pump-01/twin');
        return body.reported.speed === 45 ? true : undefined;
      },
      10_000,
    );

    const stopped = await t.api<InvocationBody>('/api/v1/devices/plc-pump-01/actions/stop?wait=5s', { method: 'POST', body: {} });
    assert.equal(stopped.body.status, 'succeeded', JSON.stringify(stopped.body));
    assert.deepEqual(stopped.body.output, { running: false });
    assert.equal(station.pump('plc-pump-01').running, false);
    const started = await t.api<InvocationBody>('/api/v1/devices/plc-pump-01/actions/start?wait=5s', { method: 'POST', body: {} });
    assert.deepEqual(started.body.output, { running: true });
    assert.equal(station.pump('plc-pump-01').running, true);
  });

  test('a unit the PLC does not have: exceptions on the device errors, counted in /metrics', async () => {
    assert.equal((await register('plc-ghost', 42)).status, 201);
    const errors = await until(
      'exception errors',
      async () => {
        const { body } = await t.api<ErrorsBody>('/api/v1/devices/plc-ghost/errors');
        const rejections = (body.items ?? []).flatMap((item) => item.rejections);
        return rejections.some((rejection) => rejection.reason === 'modbus_illegal_data_address') ? rejections : undefined;
      },
      10_000,
    );
    assert.ok(errors.some((rejection) => /IllegalDataAddress \(exception code 2\)/.test(rejection.message)));
    const metrics = (await t.api<string>('/metrics')).body;
    assert.match(metrics, /thingloop_refusals_total\{listener="modbus-tcp",reason="modbus_illegal_data_address"\} [1-9]/);
    // The other devices behind the same PLC are not held up.
    const before = (await latest('plc-pump-01')).flow?.ts ?? 0;
    await until('fresh pump readings', async () => (((await latest('plc-pump-01')).flow?.ts ?? 0) > before ? true : undefined), 10_000);
  });

  test('a desired change made while the PLC is unreachable is written when it answers again', async () => {
    // A port that was free a moment ago: the PLC is down when the device is registered.
    const probe = await ModbusPlc.start();
    const port = probe.port;
    await probe.close();
    const created = await t.api('/api/v1/devices', {
      method: 'POST',
      body: { id: 'plc-late', model: 'valve-plc', binding: { protocol: 'modbus-tcp', host: '127.0.0.1', port, unitId: 100 } },
    });
    assert.equal(created.status, 201);
    await until('unreachable', async () => {
      const { body } = await t.api<HealthBody>('/api/v1/devices/plc-late/binding');
      return body.state === 'unreachable' ? true : undefined;
    });
    const twin = await t.api<TwinBody>('/api/v1/devices/plc-late/twin');
    const patched = await t.api('/api/v1/devices/plc-late/twin', {
      method: 'PATCH',
      body: { desired: { position: 80 } },
      headers: { 'if-match': `"${twin.body.version}"` },
    });
    assert.equal(patched.status, 200);
    const late = await ModbusPlc.start({ port });
    try {
      late.unit(100).holdingRegisters.set(0, 500);
      late.unit(100).inputRegisters.set(0, 500);
      // The binding retries with backoff (1 s, 2 s, …): it finds the PLC and writes the waiting value.
      await until('the waiting setpoint written', () => (late.unit(100).holdingRegisters.get(0) === 800 ? true : undefined), 15_000);
      await until(
        'confirmed in the twin',
        async () => {
          const { body } = await t.api<TwinBody>('/api/v1/devices/plc-late/twin');
          return body.reported.position === 80 ? true : undefined;
        },
        10_000,
      );
    } finally {
      assert.equal((await t.api('/api/v1/devices/plc-late', { method: 'DELETE' })).status, 204);
      await late.close();
    }
  });

  test('a deleted device is no longer polled', async () => {
    assert.equal((await t.api('/api/v1/devices/plc-ghost', { method: 'DELETE' })).status, 204);
    assert.equal((await t.api('/api/v1/devices/plc-ghost/binding')).status, 404);
  });
});
