/**
 * The demo's heterogeneous loop in this process: a real cloud node with the example agents, the
 * demo's edge site-1, and the simulated site (SDK pumps on MQTT, the pump station's Modbus TCP PLC
 * on modbus-serial, line 2 on a node-opcua server, street lights on the cloud's broker). Every
 * protocol reaches the cloud; the bearing fault on a pump behind the PLC makes the edge's
 * protection agent write the PLC's setpoint registers, and the plant's answer, read back by
 * polling, verifies the decision. Outcomes are asserted, not timings: each wait is a poll with a
 * generous deadline.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { DecisionRecord } from '../src/agents/index.js';
import { DEMO_EDGE, demoSummary, type RunningDemo, startDemo } from '../src/cli/demo.js';
import { createLogger } from '../src/observability/index.js';
import { seededRandom } from '../src/sim/index.js';
import { VALVE_UNIT } from '../src/sim/modbus-station.js';
import { decisionsOf } from './support/agents.js';
import { ADMIN_KEY, startTestNode, type TestNode, tempDir } from './support/harness.js';
import { callApi } from './support/http.js';
import { until } from './support/wait.js';

interface Latest {
  values: Record<string, { value: unknown; ts: number }>;
}
interface DeviceList {
  items: { id: string; edge?: string; binding: { protocol: string } }[];
}
interface HealthBody {
  protocol: string;
  state: string;
  lastGoodReadTs: number | null;
  errors: number;
  latencyMs: number | null;
}

const EXAMPLE_AGENTS = fileURLToPath(new URL('../examples/agents', import.meta.url));

/**
 * The example agents with the bearing loops' one-minute hold cut to 5 s: plant time runs 120×
 * here, the nodes' clocks do not, and the bearing has settled long before.
 */
function exampleAgentsWithShortHold(): string {
  const dir = tempDir('thingloop-agents-');
  for (const file of readdirSync(EXAMPLE_AGENTS)) {
    writeFileSync(join(dir, file), readFileSync(join(EXAMPLE_AGENTS, file), 'utf8').replace('holdFor: 60s', 'holdFor: 5s'));
  }
  return dir;
}
/** Only turns a hang into a failure. */
const LIMIT_MS = 90_000;
const PLC_PUMP = 'plc-pump-02';

describe('demo: heterogeneous devices in one loop', () => {
  let t: TestNode;
  let demo: RunningDemo;
  const agentsDir = exampleAgentsWithShortHold();

  const latestTs = async (id: string) => {
    const { body } = await t.api<Latest>(`/api/v1/devices/${id}/latest`);
    return Math.max(0, ...Object.values(body.values ?? {}).map((entry) => entry.ts));
  };
  const reported = async (id: string, key: string): Promise<number | undefined> => {
    const value = (await t.api<Latest>(`/api/v1/devices/${id}/latest`)).body.values?.[key]?.value;
    return typeof value === 'number' ? value : undefined;
  };

  before(async () => {
    t = await startTestNode({ agentsDir });
    demo = await startDemo(t.node, t.config, {
      // Two SDK pumps and their valve; the PLC and line 2 come in addition.
      pumpDevices: 3,
      lights: 1,
      // Plant time fast enough that a worn bearing heats, and cools once slowed, within a minute.
      speedup: 120,
      rate: 15,
      random: seededRandom(11),
      nodeOptions: { logger: createLogger({ level: 'silent' }) },
    });
    await demo.site.line;
  });
  after(async () => {
    await demo?.stop();
    await t?.stop();
    rmSync(agentsDir, { recursive: true, force: true });
  });

  test('devices of every protocol are registered where the demo says, and their telemetry reaches the cloud', async () => {
    const expected: Record<string, string[]> = {
      mqtt: ['light-0001', 'pump-0001', 'pump-0002', 'valve-0001'],
      'modbus-tcp': ['plc-pump-01', 'plc-pump-02', 'plc-valve-01'],
      opcua: ['line2-pump-01', 'line2-pump-02', 'line2-pump-03'],
      coap: ['coap-tank-01'],
    };
    for (const [protocol, ids] of Object.entries(expected)) {
      const { status, body } = await t.api<DeviceList>(`/api/v1/devices?protocol=${protocol}`);
      assert.equal(status, 200);
      assert.deepEqual(body.items.map((device) => device.id).sort(), ids, protocol);
      for (const device of body.items) {
        assert.equal(device.binding.protocol, protocol);
        assert.equal(device.edge, device.id.startsWith('light-') ? undefined : DEMO_EDGE, device.id);
      }
    }
    const listed = new Map(demo.site.devices().map((device) => [device.id, device.protocol]));
    for (const [protocol, ids] of Object.entries(expected)) for (const id of ids) assert.equal(listed.get(id), protocol, id);

    for (const id of ['pump-0001', 'light-0001', 'plc-pump-01', 'plc-valve-01', 'line2-pump-01', 'coap-tank-01']) {
      await until(`telemetry of ${id} in the cloud`, async () => ((await latestTs(id)) > 0 ? true : undefined), LIMIT_MS, 250);
    }
    for (const key of ['speed', 'flow', 'bearingTemperature', 'vibration']) {
      assert.equal(typeof (await reported('plc-pump-01', key)), 'number', `plc-pump-01 ${key}`);
      assert.equal(typeof (await reported('line2-pump-01', key)), 'number', `line2-pump-01 ${key}`);
    }
    for (const key of ['level', 'battery']) assert.equal(typeof (await reported('coap-tank-01', key)), 'number', `coap-tank-01 ${key}`);
    assert.ok((demo.site.coapTank?.stats.acknowledged ?? 0) > 0, 'the edge answered the sleepy sensor 2.04');

    // The tank farm's Sparkplug B gateway talks to the cloud's broker: its birth registers the tanks there.
    const sparkplugIds = demo.site.sparkplug.deviceIds().sort();
    const born = await until(
      'the Sparkplug B tanks registered by their birth',
      async () => {
        const { body } = await t.api<DeviceList>('/api/v1/devices?protocol=sparkplug-b');
        const ids = body.items.map((device) => device.id).sort();
        return sparkplugIds.every((id) => ids.includes(id)) ? body.items : undefined;
      },
      LIMIT_MS,
      250,
    );
    for (const device of born) assert.equal(device.edge, undefined, `${device.id} is served by the cloud`);
    for (const id of sparkplugIds) assert.equal(listed.get(id), 'sparkplug-b', id);
    const tank = sparkplugIds.find((id) => id.split(':').length === 3) ?? assert.fail('a tank behind the gateway');
    await until(`telemetry of ${tank} in the cloud`, async () => ((await latestTs(tank)) > 0 ? true : undefined), LIMIT_MS, 250);

    const summary = demoSummary(t.node, demo, t.config, [], 30_000).join('\n');
    for (const text of [
      'modbus-tcp',
      'opcua',
      'coap-tank-01',
      'plc-pump-01',
      'line2-pump-01',
      '/devices?protocol=modbus-tcp',
      '/binding',
      '/td',
    ])
      assert.ok(summary.includes(text), `the summary names ${text}`);
  });

  test("the cloud shows a PLC pump's binding polling, with the last good read the edge reported", async () => {
    const health = await until(
      'the edge reporting the PLC pump polled',
      async () => {
        const { body } = await t.api<HealthBody>(`/api/v1/devices/${PLC_PUMP}/binding`);
        return body.state === 'polling' && typeof body.lastGoodReadTs === 'number' ? body : undefined;
      },
      LIMIT_MS,
      250,
    );
    assert.equal(health.protocol, 'modbus-tcp');
    assert.ok((health.lastGoodReadTs ?? 0) > 0);
    // The edge, which polls the PLC, says the same on its own API.
    const { body: onEdge } = await callApi<HealthBody>(demo.edge.httpUrl, `/api/v1/devices/${PLC_PUMP}/binding`, {}, ADMIN_KEY);
    assert.equal(onEdge.state, 'polling');
  });

  test('a worn bearing behind the PLC: the agent writes the PLC, polling reads the effect back, the decision is verified', async () => {
    const speedBefore = await until(`${PLC_PUMP} reporting its speed`, () => reported(PLC_PUMP, 'speed'), LIMIT_MS, 250);
    assert.ok(speedBefore > 60, `${PLC_PUMP} runs at 70 % (${speedBefore})`);
    demo.site.injectFault(PLC_PUMP, 'bearing-wear');

    const decision = await until(
      `the protection agent acting on ${PLC_PUMP}`,
      async () =>
        (await decisionsOf(t, 'plc-pump-bearing-protection', `?device=${PLC_PUMP}`)).find((d: DecisionRecord) => d.outcome !== 'refused'),
      LIMIT_MS * 2,
      500,
    );
    assert.equal(decision.outcome, 'executed', JSON.stringify(decision.safety));
    assert.deepEqual(decision.inputs.related, { valve: 'plc-valve-01' });
    const [slow, open] = decision.actions;
    assert.deepEqual([slow?.deviceId, slow?.property], [PLC_PUMP, 'speed']);
    const newSpeed = typeof slow?.value === 'number' ? slow.value : Number.NaN;
    assert.ok(newSpeed < speedBefore && newSpeed >= 30, `new speed ${slow?.value}`);
    assert.deepEqual([open?.deviceId, open?.property, open?.value], ['plc-valve-01', 'position', 100]);

    // The PLC holds the written setpoints (0.1 % per count), so its program drives the plant with them.
    const unit = Number(PLC_PUMP.slice(-2));
    await until(
      'the speed setpoint written to the PLC',
      () => (demo.site.plc.plc.unit(unit).holdingRegisters.get(0) === Math.round(newSpeed * 10) ? true : undefined),
      LIMIT_MS,
      100,
    );
    await until(
      'the valve setpoint written to the PLC',
      () => (demo.site.plc.plc.unit(VALVE_UNIT).holdingRegisters.get(0) === 1000 ? true : undefined),
      LIMIT_MS,
      100,
    );
    // Polling reads the effect back: the actual speed and opening in the input registers follow.
    await until(
      `${PLC_PUMP} slowing down, read from the PLC`,
      async () => {
        const speed = await reported(PLC_PUMP, 'speed');
        return speed !== undefined && speed <= newSpeed + 1 ? speed : undefined;
      },
      LIMIT_MS,
      250,
    );
    await until(
      'plc-valve-01 opening, read from the PLC',
      async () => {
        const position = await reported('plc-valve-01', 'position');
        return position !== undefined && position > 90 ? position : undefined;
      },
      LIMIT_MS,
      250,
    );
    const verified = await until(
      'the decision verified',
      async () => {
        const { body } = await t.api<DecisionRecord>(`/api/v1/decisions/${decision.id}`);
        return body.verification?.status === 'pending' || body.verification?.status === 'holding' ? undefined : body;
      },
      LIMIT_MS * 2,
      500,
    );
    assert.equal(verified.verification?.status, 'verified', JSON.stringify(verified.verification));
    assert.equal(verified.verification?.holdForMs, 5_000, 'the bearing stayed cooler for the whole hold');
  });
});
