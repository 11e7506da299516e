import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Fleet, HttpProvisioner, pumpStation, seededRandom } from '../src/sim/index.js';
import { ADMIN_KEY, startTestNode, type TestNode } from './support/harness.js';
import { until as waitUntil } from './support/wait.js';

interface Latest {
  values: Record<string, { value: unknown; ts: number }>;
}

const until = <T>(what: string, probe: () => Promise<T | undefined> | T | undefined, deadlineMs = 20_000) =>
  waitUntil(what, probe, deadlineMs, 50);

describe('simulator: pump-station fleet against a node', () => {
  let t: TestNode;
  let fleet: Fleet;

  const latest = async (id: string) => {
    const { body } = await t.api<Latest>(`/api/v1/devices/${id}/latest`);
    const values: Record<string, number> = {};
    let ts = 0;
    for (const [key, { value, ts: at }] of Object.entries(body.values)) {
      if (typeof value === 'number') values[key] = value;
      ts = Math.max(ts, at);
    }
    return { values, ts };
  };

  before(async () => {
    t = await startTestNode();
    fleet = new Fleet({
      url: t.node.mqttUrl,
      scenario: pumpStation,
      // Two pumps and a valve: the NB-IoT tank of the station is the 4th device.
      devices: 3,
      provisioner: new HttpProvisioner(t.node.httpUrl, ADMIN_KEY),
      rate: 15,
      speedup: 60,
      random: seededRandom(7),
    });
    await fleet.start();
  });
  after(async () => {
    await fleet.stop();
    await t.stop();
  });

  test('devices are registered with their models and report', async () => {
    const { body } = await t.api<{ items: { id: string; model: string }[] }>('/api/v1/devices');
    assert.deepEqual(body.items.map((d) => [d.id, d.model]).sort(), [
      ['pump-0001', 'centrifugal-pump'],
      ['pump-0002', 'centrifugal-pump'],
      ['valve-0001', 'control-valve'],
    ]);
    for (const id of ['pump-0001', 'pump-0002', 'valve-0001']) {
      await until(`${id} reporting`, async () => ((await latest(id)).ts > 0 ? true : undefined));
    }
    const pump = await latest('pump-0001');
    for (const key of ['speed', 'flow', 'dischargePressure', 'power', 'bearingTemperature', 'vibration']) {
      assert.equal(typeof pump.values[key], 'number', key);
    }
    assert.equal(typeof (await latest('valve-0001')).values.position, 'number');
    const stats = fleet.stats();
    assert.equal(stats.devices, 3);
    assert.equal(stats.connected, 3);
    assert.ok(stats.reported > 0);
  });

  test('a lower desired speed makes the pump report lower speed and flow', async () => {
    const before = await until('pump-0001 reporting', async () => {
      const reading = await latest('pump-0001');
      return reading.values.speed !== undefined && reading.values.flow !== undefined ? reading : undefined;
    });
    assert.ok((before.values.speed ?? 0) > 50, `starts near 60%: ${before.values.speed}`);
    const { body: twin } = await t.api<{ version: number }>('/api/v1/devices/pump-0001/twin');
    const patched = await t.api('/api/v1/devices/pump-0001/twin', {
      method: 'PATCH',
      body: { desired: { speed: 20 }, version: twin.version },
    });
    assert.equal(patched.status, 200);
    const setAt = Date.now();

    const after = await until('pump-0001 slowing down', async () => {
      const reading = await latest('pump-0001');
      return reading.ts > setAt && (reading.values.speed ?? 100) <= 21 ? reading : undefined;
    });
    assert.ok((after.values.flow ?? Infinity) < (before.values.flow ?? 0) * 0.6, `flow ${before.values.flow} → ${after.values.flow}`);
    assert.ok((after.values.power ?? Infinity) < (before.values.power ?? 0), `power ${before.values.power} → ${after.values.power}`);
    assert.ok(fleet.stats().desiredApplied >= 1);

    // The twin closes the loop: reported speed (from telemetry) meets desired, so the delta empties.
    await until('empty delta', async () => {
      const { body } = await t.api<{ delta: Record<string, unknown>; reported: { speed?: number } }>('/api/v1/devices/pump-0001/twin');
      return body.reported.speed === 20 && Object.keys(body.delta).length === 0 ? true : undefined;
    });
  });

  test('bearing wear injected through the action raises vibration and bearing temperature over plant time', async () => {
    const baseline = await until('pump-0002 reporting', async () => {
      const reading = await latest('pump-0002');
      return reading.values.vibration !== undefined ? reading : undefined;
    });
    const injected = await t.api<{ status: string; output: unknown }>('/api/v1/devices/pump-0002/actions/injectFault?wait=5s', {
      method: 'POST',
      body: { input: { fault: 'bearing-wear' } },
    });
    assert.equal(injected.status, 200);
    assert.equal(injected.body.status, 'succeeded');
    assert.deepEqual(injected.body.output, { injected: 'bearing-wear' });

    const worn = await until('pump-0002 wearing', async () => {
      const reading = await latest('pump-0002');
      const vibration = reading.values.vibration ?? 0;
      const temperature = reading.values.bearingTemperature ?? 0;
      return vibration > (baseline.values.vibration ?? 0) + 1 && temperature > (baseline.values.bearingTemperature ?? 0) + 3
        ? reading
        : undefined;
    });
    assert.ok(worn.ts > baseline.ts);

    const bad = await t.api('/api/v1/devices/pump-0002/actions/injectFault', { method: 'POST', body: { input: { fault: 'gremlins' } } });
    assert.equal(bad.status, 400, 'the model refuses an unknown fault before the device sees it');
  });
});
