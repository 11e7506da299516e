/**
 * The closed loop end to end: a simulated pump station reports over real MQTT, the example
 * bearing-protection agent (loaded as YAML through the API) sees a worn bearing heat up, slows
 * the pump and opens the station's valve, the plant responds, and the decision is verified.
 * Outcomes are asserted, not timings: every wait is a poll with a generous deadline.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { AgentDefinition, DecisionRecord } from '../src/agents/index.js';
import { Fleet, HttpProvisioner, pumpStation, seededRandom } from '../src/sim/index.js';
import { decisionsOf, twinOf } from './support/agents.js';
import { ADMIN_KEY, startTestNode, type TestNode } from './support/harness.js';
import { until } from './support/wait.js';

interface Latest {
  values: Record<string, { value: unknown; ts: number }>;
}

const EXAMPLE = new URL('../examples/agents/pump-bearing-protection.yaml', import.meta.url);

describe('end to end: pump-bearing-protection against the simulated pump station', () => {
  let t: TestNode;
  let fleet: Fleet;

  const reported = async (id: string, key: string): Promise<number | undefined> => {
    const { body } = await t.api<Latest>(`/api/v1/devices/${id}/latest`);
    const value = body.values?.[key]?.value;
    return typeof value === 'number' ? value : undefined;
  };

  before(async () => {
    t = await startTestNode();
    fleet = new Fleet({
      url: t.node.mqttUrl,
      scenario: pumpStation,
      // Two pumps and their station's valve (the NB-IoT tank would be the 4th device).
      devices: 3,
      provisioner: new HttpProvisioner(t.node.httpUrl, ADMIN_KEY),
      rate: 15,
      speedup: 120,
      random: seededRandom(11),
    });
    await fleet.start();
  });
  after(async () => {
    await fleet.stop();
    await t.stop();
  });

  test('bearing wear → slower pump and open valve → the bearing cools → verified', async () => {
    const created = await t.api<AgentDefinition>('/api/v1/agents', {
      method: 'POST',
      // The example's one-minute hold cut to 5 s: plant time runs 120× here, the node's clock does not.
      raw: readFileSync(EXAMPLE, 'utf8').replace('holdFor: 60s', 'holdFor: 5s'),
      headers: { 'content-type': 'application/yaml' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.id, 'pump-bearing-protection');

    const pump = 'pump-0002';
    const speedBefore = await until(`${pump} reporting its speed`, () => reported(pump, 'speed'), 20_000);
    assert.ok(speedBefore > 60, `pump-0002 runs at 70 % (${speedBefore})`);
    assert.equal((await twinOf(t, pump)).desired.speed, undefined);
    assert.equal((await twinOf(t, 'valve-0001')).desired.position, undefined);

    fleet.plant.injectFault(pump, 'bearing-wear');

    const decision = await until(
      'the agent acting on pump-0002',
      async () => (await decisionsOf(t, 'pump-bearing-protection', `?device=${pump}`)).find((d) => d.outcome !== 'refused'),
      60_000,
    );
    assert.equal(decision.outcome, 'executed', JSON.stringify(decision.safety));
    assert.equal(decision.trigger, 'condition');
    assert.ok((decision.inputs.windows.bearingAvg ?? 0) > 80, `bearingAvg at the decision: ${decision.inputs.windows.bearingAvg}`);
    assert.deepEqual(decision.inputs.related, { valve: 'valve-0001' });
    const [slow, open] = decision.actions;
    assert.equal(slow?.deviceId, pump);
    assert.equal(slow?.property, 'speed');
    const newSpeed = typeof slow?.value === 'number' ? slow.value : Number.NaN;
    assert.ok(newSpeed < speedBefore && newSpeed >= 30, `new speed ${slow?.value}`);
    assert.deepEqual([open?.deviceId, open?.property, open?.value], ['valve-0001', 'position', 100]);
    assert.ok(decision.alarmId, 'the decision raised an alarm');

    // The twins carry the new setpoints, and the plant follows them.
    assert.equal((await twinOf(t, pump)).desired.speed, newSpeed);
    assert.equal((await twinOf(t, 'valve-0001')).desired.position, 100);
    await until(
      `${pump} slowing down`,
      async () => {
        const speed = await reported(pump, 'speed');
        return speed !== undefined && speed <= newSpeed + 1 ? speed : undefined;
      },
      30_000,
    );
    await until(
      'valve-0001 opening',
      async () => {
        const position = await reported('valve-0001', 'position');
        return position !== undefined && position > 90 ? position : undefined;
      },
      30_000,
    );

    const verified = await until(
      'the decision verified',
      async () => {
        const { body } = await t.api<DecisionRecord>(`/api/v1/decisions/${decision.id}`);
        return body.verification?.status === 'pending' || body.verification?.status === 'holding' ? undefined : body;
      },
      60_000,
    );
    assert.equal(verified.verification?.status, 'verified', JSON.stringify(verified.verification));
    assert.equal(verified.verification?.expect, 'bearingTemperature < atDecision.bearingTemperature - 2');
    assert.equal(verified.verification?.holdForMs, 5_000, 'the bearing stayed cooler for the whole hold');
    assert.ok(verified.verification?.watch, 'and is watched after verification');
  });
});
