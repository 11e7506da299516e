import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  AMBIENT_C,
  clearPumpFaults,
  daylight,
  injectPumpFault,
  newPump,
  type PumpState,
  readPump,
  stepPump,
  stepTank,
  stepValve,
  TANK_HEIGHT_M,
} from '../../src/sim/index.js';

/** A random source that always returns the midpoint: noise() is then exactly 0. */
const still = () => 0.5;

function run(state: PumpState, seconds: number, dt = 1): PumpState {
  let current = state;
  for (let t = 0; t < seconds; t += dt) current = stepPump(current, dt);
  return current;
}

describe('pump physics', () => {
  test('a new pump is at thermal equilibrium: stepping changes nothing but time', () => {
    const pump = newPump(60);
    const later = run(pump, 100);
    assert.equal(later.speed, 60);
    assert.ok(Math.abs(later.bearingTemperature - pump.bearingTemperature) < 1e-9);
    assert.equal(later.t, 100);
  });

  test('speed slews toward the setpoint at a bounded rate and never overshoots', () => {
    const pump = { ...newPump(60), speedSetpoint: 20 };
    const oneSecond = stepPump(pump, 1);
    assert.ok(oneSecond.speed < 60 && oneSecond.speed > 20, `${oneSecond.speed}`);
    const settled = run(pump, 60);
    assert.equal(settled.speed, 20);
    assert.equal(stepPump(settled, 1000).speed, 20);
  });

  test('a lower speed means lower flow, pressure and power, and a cooler bearing over time', () => {
    const fast = newPump(80);
    const slow = run({ ...fast, speedSetpoint: 30 }, 600);
    const a = readPump(fast, still);
    const b = readPump(slow, still);
    assert.ok(a && b);
    assert.ok(b.flow < a.flow && b.dischargePressure < a.dischargePressure && b.power < a.power && b.speed < a.speed);
    assert.ok(b.bearingTemperature < a.bearingTemperature);
    assert.equal(b.flow, 36, 'flow is proportional to speed: 120 m³/h at 100%');
  });

  test('a stopped pump spins down to zero and cools toward ambient', () => {
    const stopped = run({ ...newPump(70), running: false }, 1800);
    assert.equal(stopped.speed, 0);
    assert.ok(stopped.bearingTemperature - AMBIENT_C < 1, `${stopped.bearingTemperature}`);
    assert.equal(readPump(stopped, still)?.flow, 0);
  });

  test('bearing wear grows with plant time and raises vibration and bearing temperature', () => {
    const healthy = newPump(70);
    const worn = run(injectPumpFault(healthy, 'bearing-wear'), 300);
    assert.ok(Math.abs(worn.wear - 0.5) < 1e-9, `wear ${worn.wear}`);
    const before = readPump(run(healthy, 300), still);
    const after = readPump(worn, still);
    assert.ok(before && after);
    assert.ok(after.vibration >= before.vibration + 2.9, `${before.vibration} → ${after.vibration}`);
    assert.ok(after.bearingTemperature > before.bearingTemperature + 10, `${before.bearingTemperature} → ${after.bearingTemperature}`);
    assert.equal(run(worn, 10_000).wear, 1, 'wear saturates at 1');
  });

  test('a fault with a duration ends; clearing faults keeps the wear already done', () => {
    const limited = run(injectPumpFault(newPump(70), 'bearing-wear', 60), 300);
    assert.ok(Math.abs(limited.wear - 0.1) < 1e-9, `wear ${limited.wear}`);
    const cleared = clearPumpFaults(limited);
    assert.deepEqual(cleared.faults, {});
    assert.equal(cleared.wear, limited.wear);
  });

  test('sensor faults distort readings, not the pump', () => {
    const pump = newPump(70);
    assert.equal(readPump(injectPumpFault(pump, 'dropout'), still), undefined);

    const stuck = run(injectPumpFault({ ...pump, speedSetpoint: 10 }, 'stuck-sensor'), 600);
    assert.equal(readPump(stuck, still)?.bearingTemperature, Number(pump.bearingTemperature.toFixed(2)));
    assert.ok(stuck.bearingTemperature < pump.bearingTemperature - 5, 'the bearing itself cooled');

    const drifting = run(injectPumpFault(pump, 'drift'), 100);
    assert.ok(Math.abs(drifting.sensorDrift - 5) < 1e-9);
    assert.ok(Math.abs((readPump(drifting, still)?.bearingTemperature ?? 0) - (pump.bearingTemperature + 5)) < 0.01);

    const cavitating = readPump(injectPumpFault(pump, 'cavitation'), still);
    const normal = readPump(pump, still);
    assert.ok(cavitating && normal);
    assert.ok(cavitating.flow < normal.flow && cavitating.vibration > normal.vibration);
  });
});

describe('valve and tank physics', () => {
  test('a valve moves toward its setpoint at 10 %/s without overshoot', () => {
    const valve = { positionSetpoint: 80, position: 50 };
    assert.equal(stepValve(valve, 1).position, 60);
    assert.equal(stepValve(valve, 10).position, 80);
    assert.equal(stepValve({ positionSetpoint: 0, position: 5 }, 1).position, 0);
  });

  test('a tank fills with inflow above outflow, drains with the valve open and stays within its walls', () => {
    const half = { level: 2.5 };
    assert.ok(stepTank(half, 200, 0, 60).level > 2.5, 'closed valve: it fills');
    assert.ok(stepTank(half, 0, 100, 60).level < 2.5, 'no inflow, open valve: it drains');
    assert.equal(stepTank({ level: 4.99 }, 10_000, 0, 3600).level, TANK_HEIGHT_M);
    assert.equal(stepTank({ level: 0.01 }, 0, 100, 3600).level, 0);
    assert.equal(stepTank({ level: 0 }, 0, 100, 60).level, 0, 'an empty tank has no outflow');
  });

  test('daylight is zero at night and peaks at noon of the compressed day', () => {
    assert.equal(daylight(0, 600), 0);
    assert.ok(Math.abs(daylight(150, 600) - 20_000) < 1e-6);
    assert.equal(daylight(450, 600), 0);
  });
});
