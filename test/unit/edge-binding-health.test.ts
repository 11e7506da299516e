/**
 * Binding health on the edge link: the edge reports what changed first and the rest in turn within
 * a heartbeat's budget; the cloud keeps well-formed entries field by field and refuses the others.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BindingHealthReport, bindingHealthOf, MAX_BINDING_FIGURES_BYTES } from '../../src/edge/index.js';
import type { BindingHealth } from '../../src/gateway/index.js';

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

describe('the binding health an edge reports per heartbeat', () => {
  const polling = (errors: number): BindingHealth => ({
    protocol: 'modbus-tcp',
    state: 'polling',
    lastGoodReadTs: 1_700_000_000_000,
    errors,
    latencyMs: 2,
  });
  const site = (count: number, errors = 0) =>
    new Map(Array.from({ length: count }, (_, i) => [`plc-${String(i).padStart(5, '0')}`, polling(errors)]));

  test('a small site sends every device each time', () => {
    const report = new BindingHealthReport();
    const figures = site(20);
    for (let beat = 0; beat < 3; beat++) {
      const chosen = report.next(figures);
      assert.equal(Object.keys(chosen).length, 20);
      report.sentAt(chosen, beat);
    }
  });

  test('a large site stays within the budget, sends changes first and every device in turn', () => {
    const report = new BindingHealthReport();
    const figures = site(5_000);
    const seen = new Set<string>();
    let beats = 0;
    while (seen.size < figures.size) {
      const chosen = report.next(figures);
      assert.ok(JSON.stringify(chosen).length <= MAX_BINDING_FIGURES_BYTES, 'within the heartbeat budget');
      assert.ok(Object.keys(chosen).length > 0);
      for (const id of Object.keys(chosen)) seen.add(id);
      report.sentAt(chosen, ++beats);
      assert.ok(beats < 100, 'every device is reached');
    }
    // One device changes: the next heartbeat carries it, whichever devices are due for a refresh.
    figures.set('plc-04999', polling(1));
    figures.set('plc-02500', polling(7));
    const next = report.next(figures);
    assert.deepEqual(next['plc-04999'], polling(1));
    assert.deepEqual(next['plc-02500'], polling(7));
  });

  test('a heartbeat that did not leave the edge is not counted as sent; a new link starts over', () => {
    const report = new BindingHealthReport(600);
    const figures = site(40);
    const first = report.next(figures);
    assert.deepEqual(report.next(figures), first, 'nothing was marked sent');
    report.sentAt(first, 1);
    const second = report.next(figures);
    assert.notDeepEqual(Object.keys(second), Object.keys(first), 'the next turn goes to the others');
    report.reset();
    assert.deepEqual(Object.keys(report.next(figures)), Object.keys(first), 'after a reset every device counts as changed again');
  });
});
