import { describe, expect, test } from 'vitest';
import type { BindingHealth, Device } from '../api/types';
import { bindingFacts, bindingParameters, bindingPath, formatLatency } from './bindingHealth';

const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);

const device = (binding: Device['binding']): Device => ({
  id: 'plc-7',
  tenant: 'default',
  name: 'PLC 7',
  model: 'pump',
  modelVersion: 1,
  code: '88.100.1/plc-7',
  ipv6: 'fd00::7',
  attributes: {},
  network: { profile: 'ethernet', reportIntervalMs: 10_000, keepAliveMs: 60_000, sleepy: false },
  binding,
  createdAt: NOW,
  updatedAt: NOW,
});

describe('binding health on the device page', () => {
  test('a polled PLC shows its protocol, addressing, state, last good read, poll latency and errors', () => {
    const health: BindingHealth = {
      protocol: 'modbus-tcp',
      state: 'polling',
      lastGoodReadTs: NOW - 3_000,
      errors: 2,
      latencyMs: 4.25,
      lastError: { ts: NOW - 60_000, message: 'IllegalDataAddress at 40010' },
    };
    const facts = bindingFacts(device({ protocol: 'modbus-tcp', host: '10.0.0.7', port: 502, unitId: 1 }), health, NOW);
    expect(Object.fromEntries(facts.map((f) => [f.label, f.text]))).toMatchObject({
      Protocol: 'modbus-tcp',
      Addressing: 'host=10.0.0.7, port=502, unitId=1',
      State: 'polling (the node reads it on a schedule)',
      'Poll latency': '4.3 ms',
      Errors: '2',
      'Last error': 'IllegalDataAddress at 40010 (1 min ago)',
    });
    expect(facts.find((f) => f.label === 'Last good read')?.text).toMatch(/\(3 s ago\)$/);
  });

  test('a device that pushes and was never heard shows idle, never, and no latency', () => {
    const facts = bindingFacts(
      device({ protocol: 'mqtt' }),
      { protocol: 'mqtt', state: 'idle', lastGoodReadTs: null, errors: 0, latencyMs: null },
      NOW,
    );
    expect(facts.map((f) => f.text)).toEqual(['mqtt', '—', 'idle (nothing heard yet)', 'never', '— (the device pushes)', '0']);
  });

  test('latencies and paths read well', () => {
    expect(formatLatency(0.2)).toBe('< 1 ms');
    expect(formatLatency(250.4)).toBe('250 ms');
    expect(bindingParameters(device({ protocol: 'opcua', endpoint: 'opc.tcp://line2:4840' }))).toBe('endpoint=opc.tcp://line2:4840');
    expect(bindingPath('grp:node 1')).toBe('/api/v1/devices/grp%3Anode%201/binding');
  });
});
