/** The cloud reads the binding health an edge reports: well-formed entries are kept field by field, others refused. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bindingHealthOf } from '../../src/edge/index.js';

const good = {
  protocol: 'opcua',
  state: 'connected',
  lastGoodReadTs: 1_700_000_000_000,
  errors: 2,
  latencyMs: 3.5,
  lastError: { ts: 1_700_000_000_001, message: 'BadNodeIdUnknown' },
};

describe('binding health from an edge', () => {
  test('a well-formed entry is kept, without fields the shape does not have', () => {
    assert.deepEqual(bindingHealthOf({ ...good, injected: '<script>' }), good);
    const quiet = { protocol: 'modbus-tcp', state: 'idle', lastGoodReadTs: null, errors: 0, latencyMs: null };
    assert.deepEqual(bindingHealthOf(quiet), quiet);
  });

  test('a long error message is cut, not stored whole', () => {
    const health = bindingHealthOf({ ...good, lastError: { ts: 1, message: 'x'.repeat(10_000) } });
    assert.equal(health?.lastError?.message.length, 500);
  });

  test('anything else is refused', () => {
    const broken: unknown[] = [
      null,
      'connected',
      [good],
      { ...good, protocol: 'zigbee' },
      { ...good, state: 'asleep' },
      { ...good, lastGoodReadTs: '2026-12-02' },
      { ...good, lastGoodReadTs: 1.5 },
      { ...good, errors: -1 },
      { ...good, errors: 1e300 },
      { ...good, latencyMs: -3 },
      { ...good, latencyMs: Number.NaN },
      { ...good, lastError: 'boom' },
      { ...good, lastError: { ts: 1 } },
      { protocol: 'mqtt', state: 'idle' },
    ];
    for (const entry of broken) assert.equal(bindingHealthOf(entry), undefined, JSON.stringify(entry));
  });
});
