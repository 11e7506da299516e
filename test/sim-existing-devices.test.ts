/**
 * `thingloop sim` against a node that already has devices of its ids (issue 13, defect 3): the
 * real CLI process against a real node. By default it refuses and names them; `--reuse` takes
 * over only what an earlier sim registered; `--replace` deletes and re-creates.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { pumpStation, SIM_MARK } from '../src/sim/index.js';
import { ADMIN_KEY, startTestNode, type TestNode } from './support/harness.js';
import { type CliProcess, runCli, spawnCli } from './support/process-node.js';
import { until } from './support/wait.js';

const SIM_IDS = ['pump-0001', 'pump-0002', 'valve-0001'];

describe('thingloop sim with devices the node already has', () => {
  let t: TestNode;
  /** pump-0001 as another system (the demo, a real pump) runs it: registered without the simulator. */
  let othersPump: MqttClient;
  let othersToken: string;

  const simArgs = (...more: string[]) => [
    'sim',
    '--scenario',
    'pump-station',
    // Two pumps and a valve.
    '--devices',
    '3',
    '--url',
    t.node.mqttUrl,
    '--api',
    t.node.httpUrl,
    '--admin-key',
    ADMIN_KEY,
    '--speedup',
    '60',
    '--rate',
    '15',
    ...more,
  ];

  const deviceIds = async () => {
    const { body } = await t.api<{ items: { id: string }[] }>('/api/v1/devices');
    return body.items.map((device) => device.id).sort();
  };

  const reporting = (id: string, since: number) =>
    until(
      `${id} reporting`,
      async () => {
        const { body } = await t.api<{ values: Record<string, { ts: number }> }>(`/api/v1/devices/${id}/latest`);
        return Object.values(body.values).some(({ ts }) => ts > since) ? true : undefined;
      },
      30_000,
      100,
    );

  /** Runs the simulator until it says it is running, then stops it as Ctrl-C would. */
  const runSimUntilRunning = async (...more: string[]): Promise<{ stderr: string; code: number | null }> => {
    const sim: CliProcess = spawnCli({ args: simArgs(...more) });
    try {
      await sim.waitForOutput('stderr', /running with 3 devices/);
      const started = Date.now() - 1;
      for (const id of SIM_IDS) await reporting(id, started);
    } finally {
      await sim.kill('SIGTERM');
    }
    const exit = await sim.exited;
    return { stderr: sim.stderr(), code: exit.code };
  };

  before(async () => {
    t = await startTestNode();
    for (const [id, document] of Object.entries(pumpStation.models)) {
      const put = await t.api(`/api/v1/models/${id}`, { method: 'PUT', body: document });
      assert.ok(put.status < 300, `model ${id}: ${JSON.stringify(put.body)}`);
    }
    ({ token: othersToken } = await t.registerDevice('pump-0001', 'centrifugal-pump', { name: 'Pump 1 (the demo)' }));
    othersPump = await t.connectDevice('pump-0001', othersToken);
  });
  after(async () => {
    await t.stop();
  });

  test('by default it registers nothing, names the existing ids, says how to proceed and exits non-zero', async () => {
    const result = await runCli({ args: simArgs() });
    assert.notEqual(result.code, 0, result.stderr);
    assert.match(result.stderr, /already has 1 of the simulated devices: pump-0001\b/);
    assert.match(result.stderr, /--reuse/);
    assert.match(result.stderr, /--replace/);
    // Nothing was taken over or added: the other system's pump is still connected with its token.
    assert.deepEqual(await deviceIds(), ['pump-0001']);
    assert.equal(othersPump.connected, true);
    const again = await t.connectDevice('pump-0001', othersToken);
    assert.equal(again.connected, true);
    await again.endAsync();
  });

  test('--reuse refuses a device the simulator did not register', async () => {
    const result = await runCli({ args: simArgs('--reuse') });
    assert.notEqual(result.code, 0, result.stderr);
    assert.match(result.stderr, /--reuse takes over only devices thingloop sim registered/);
    assert.match(result.stderr, /pump-0001/);
    assert.deepEqual(await deviceIds(), ['pump-0001']);
    assert.equal(othersPump.connected, true);
  });

  test('--reuse and --replace together are refused', async () => {
    const result = await runCli({ args: simArgs('--reuse', '--replace') });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /exclude each other/);
  });

  test('--replace deletes and re-creates the existing device, says so, and the fleet runs', async () => {
    const result = await runSimUntilRunning('--replace');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /replacing 1 existing devices.*pump-0001/);
    assert.deepEqual(await deviceIds(), SIM_IDS);
    const { body } = await t.api<{ name: string; attributes: Record<string, unknown> }>('/api/v1/devices/pump-0001');
    assert.equal(body.attributes[SIM_MARK.attribute], SIM_MARK.value, 're-created by the simulator');
    // The other system's credential went with the old device.
    await until('the old session dropped', () => (othersPump.connected ? undefined : true));
    await assert.rejects(t.connectDevice('pump-0001', othersToken, { connectTimeout: 5_000 }));
  });

  test('a second run is refused by default and --reuse takes over the devices the first one registered', async () => {
    const refused = await runCli({ args: simArgs() });
    assert.notEqual(refused.code, 0, refused.stderr);
    assert.match(refused.stderr, /already has 3 of the simulated devices: pump-0001, pump-0002, valve-0001/);

    const reused = await runSimUntilRunning('--reuse');
    assert.equal(reused.code, 0, reused.stderr);
    assert.match(reused.stderr, /reusing 3 devices an earlier thingloop sim registered: issuing them new tokens/);
    assert.deepEqual(await deviceIds(), SIM_IDS);
  });
});
