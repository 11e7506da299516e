/**
 * The simulated pump station PLC (thingloop sim --modbus-port) read through the Modbus binding with
 * the example models: readings come from the pump physics, a desired speed and start/stop reach the
 * pumps, and a bearing fault shows in the PLC's registers.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { DeviceMessage, DeviceUplink } from '../src/gateway/index.js';
import { compileThingModel, type ThingModel } from '../src/model/index.js';
import type { DeviceRecord } from '../src/registry/index.js';
import { PLC_MODELS, type PlcDeviceSpec, type PlcStation, startPlcStation } from '../src/sim/modbus-station.js';
import { seededRandom } from '../src/sim/physics.js';
import { ModbusBinding } from '../src/transport/modbus/index.js';
import { until } from './support/wait.js';

type Body = Record<string, unknown>;

function record(spec: PlcDeviceSpec): DeviceRecord {
  return {
    id: spec.id,
    tenant: 'default',
    uid: 1,
    name: spec.name,
    model: spec.model,
    modelVersion: 1,
    code: `test/${spec.id}`,
    ipv6: '::1',
    attributes: spec.attributes,
    network: { profile: 'ethernet', reportIntervalMs: 1_000, keepAliveMs: 60_000, sleepy: false },
    binding: spec.binding,
    createdAt: 0,
    updatedAt: 0,
  };
}

const modelOf = (id: string) => {
  const document = JSON.parse(readFileSync(new URL(`../examples/models/${id}.json`, import.meta.url), 'utf8')) as ThingModel;
  return compileThingModel({ id, version: 1, document, createdAt: 0 });
};

describe('simulated pump station PLC through the Modbus binding', () => {
  let station: PlcStation;
  let binding: ModbusBinding;
  const messages: { device: string; message: DeviceMessage }[] = [];
  const errors: string[] = [];
  const uplink: DeviceUplink = {
    async receive(device, message) {
      messages.push({ device: device.id, message });
    },
    reportError(device, message) {
      errors.push(`${device.id}: ${message}`);
    },
    refused() {},
    now: () => Date.now(),
  };
  const telemetry = (id: string): Body[] =>
    messages.flatMap(({ device, message }) =>
      device === id && message.kind === 'telemetry' && 'body' in message.payload ? [message.payload.body as Body] : [],
    );
  const latest = (id: string) => telemetry(id).at(-1);

  before(async () => {
    station = await startPlcStation({ port: 0, speedup: 60, tickMs: 50, random: seededRandom(3) });
    binding = new ModbusBinding({ defaultPollingMs: 100 });
    await binding.start(uplink);
    for (const spec of station.devices) await binding.attach({ device: record(spec), model: modelOf(spec.model) });
  });

  after(async () => {
    await binding.stop();
    await station.stop();
  });

  test('the example models are the ones the simulator registers', () => {
    for (const [id, document] of Object.entries(PLC_MODELS)) {
      assert.deepEqual(JSON.parse(readFileSync(new URL(`../examples/models/${id}.json`, import.meta.url), 'utf8')), document);
    }
  });

  test('pumps and the valve are read from one PLC over one connection', async () => {
    const pump = await until('pump telemetry', () => latest('plc-pump-01'));
    for (const name of ['speed', 'flow', 'dischargePressure', 'power', 'bearingTemperature', 'vibration', 'running'])
      assert.ok(name in pump, name);
    assert.equal(pump.running, true);
    assert.ok(typeof pump.speed === 'number' && pump.speed > 50 && pump.speed <= 100);
    assert.ok(typeof pump.bearingTemperature === 'number' && pump.bearingTemperature > 25 && pump.bearingTemperature < 120);
    const valve = await until('valve telemetry', () => latest('plc-valve-01'));
    assert.equal(valve.position, 50);
    assert.equal(station.plc.clients, 1);
    assert.deepEqual(errors, []);
  });

  test('a desired speed and stop/start reach the pump', async () => {
    const device = record(station.devices[0] as PlcDeviceSpec);
    const delta = { speed: 40 };
    await binding.deliver(device, { kind: 'desired', state: { version: 2, desired: delta, delta, ts: Date.now() } });
    assert.equal(station.pump(device.id).speedSetpoint, 40);
    await until('speed at the setpoint', () => (latest(device.id)?.speed === 40 ? true : undefined), 10_000);
    await binding.deliver(device, { kind: 'invoke', id: 'stop-1', action: 'stop', input: null, timeoutMs: 5_000 });
    assert.equal(station.pump(device.id).running, false);
    await binding.deliver(device, { kind: 'invoke', id: 'start-1', action: 'start', input: null, timeoutMs: 5_000 });
    assert.equal(station.pump(device.id).running, true);
    const results = messages.flatMap(({ message }) =>
      message.kind === 'action-result' && 'body' in message.payload ? [message.payload.body] : [],
    );
    assert.deepEqual(results, [
      { id: 'stop-1', output: { running: false } },
      { id: 'start-1', output: { running: true } },
    ]);
    assert.deepEqual(errors, []);
  });

  test('a bearing fault heats the bearing in the PLC registers', async () => {
    const id = 'plc-pump-02';
    const before = await until('pump 2 telemetry', () => latest(id));
    station.injectFault(id, 'bearing-wear');
    // At 60× the wear grows ~0.1 per real second; the bearing heats well past its healthy level.
    await until(
      'a hot bearing',
      () => {
        const now = latest(id);
        return typeof now?.bearingTemperature === 'number' && now.bearingTemperature > Number(before.bearingTemperature) + 10
          ? true
          : undefined;
      },
      20_000,
    );
  });
});
