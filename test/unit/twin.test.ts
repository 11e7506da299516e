import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { applyDesired, applyReported, deltaOf, emptyTwin, viewOf } from '../../src/twin/index.js';

describe('twin: deltaOf', () => {
  test('lists desired keys whose reported value differs or is missing', () => {
    assert.deepEqual(deltaOf({ desired: { a: 1, b: 'x', c: true }, reported: { a: 1, b: 'y' } }), { b: 'x', c: true });
  });
  test('compares structured values deeply and ignores reported-only keys', () => {
    assert.deepEqual(deltaOf({ desired: { cfg: { k: [1, 2] } }, reported: { cfg: { k: [1, 2] }, extra: 5 } }), {});
    assert.deepEqual(deltaOf({ desired: { cfg: { k: [1, 2] } }, reported: { cfg: { k: [2, 1] } } }), { cfg: { k: [1, 2] } });
  });
  test('1 and "1" differ', () => {
    assert.deepEqual(deltaOf({ desired: { a: 1 }, reported: { a: '1' } }), { a: 1 });
  });
});

describe('twin: applyDesired', () => {
  test('sets values with who and when, returns changes and bumps the version once per real change', () => {
    const twin = emptyTwin('d');
    const changes = applyDesired(twin, { a: 1, b: 2 }, 'api', 100);
    assert.deepEqual(changes, [
      { key: 'a', old: null, new: 1 },
      { key: 'b', old: null, new: 2 },
    ]);
    assert.equal(twin.version, 1);
    assert.deepEqual(twin.metadata.desired, { a: { ts: 100, by: 'api' }, b: { ts: 100, by: 'api' } });

    assert.deepEqual(applyDesired(twin, { a: 1 }, 'agent:x', 200), [], 'an unchanged value is no change');
    assert.equal(twin.version, 1);
    assert.deepEqual(twin.metadata.desired.a, { ts: 100, by: 'api' });

    assert.deepEqual(applyDesired(twin, { a: 3, b: 2 }, 'agent:x', 300), [{ key: 'a', old: 1, new: 3 }]);
    assert.equal(twin.version, 2);
    assert.deepEqual(twin.metadata.desired.a, { ts: 300, by: 'agent:x' });
  });
  test('null removes a key and its metadata; removing an absent key changes nothing', () => {
    const twin = emptyTwin('d');
    applyDesired(twin, { a: 1 }, 'api', 1);
    assert.deepEqual(applyDesired(twin, { a: null }, 'api', 2), [{ key: 'a', old: 1, new: null }]);
    assert.deepEqual(twin.desired, {});
    assert.deepEqual(twin.metadata.desired, {});
    assert.deepEqual(applyDesired(twin, { a: null }, 'api', 3), []);
    assert.equal(twin.version, 2);
  });
});

describe('twin: applyReported', () => {
  test('records values and a timestamp per key; counts reported versions', () => {
    const twin = emptyTwin('d');
    assert.deepEqual(applyReported(twin, { a: 1, b: true }, 10), [
      { key: 'a', old: null, new: 1 },
      { key: 'b', old: null, new: true },
    ]);
    assert.equal(twin.reportedVersion, 1);
    assert.equal(twin.version, 0, 'reports never move the desired version');
    assert.deepEqual(twin.metadata.reported, { a: { ts: 10 }, b: { ts: 10 } });
  });
  test('an unchanged value refreshes its timestamp without a change', () => {
    const twin = emptyTwin('d');
    applyReported(twin, { a: 1 }, 10);
    assert.deepEqual(applyReported(twin, { a: 1 }, 20), []);
    assert.equal(twin.reportedVersion, 1);
    assert.deepEqual(twin.metadata.reported.a, { ts: 20 });
  });
  test('an older report never overwrites a newer value, key by key', () => {
    const twin = emptyTwin('d');
    applyReported(twin, { a: 1 }, 50);
    applyReported(twin, { b: 1 }, 10);
    assert.deepEqual(applyReported(twin, { a: 0, b: 2 }, 30), [{ key: 'b', old: 1, new: 2 }]);
    assert.deepEqual(twin.reported, { a: 1, b: 2 });
    assert.deepEqual(twin.metadata.reported, { a: { ts: 50 }, b: { ts: 30 } });
  });
});

describe('twin: viewOf', () => {
  test('adds the delta and summarises pending deliveries without their values', () => {
    const twin = emptyTwin('d');
    applyDesired(twin, { a: 2 }, 'api', 1);
    applyReported(twin, { a: 1 }, 1);
    twin.pending.push({ version: 1, values: { a: 2 }, previous: { a: null }, queuedAt: 1, expiresAt: 10 });
    const view = viewOf(twin);
    assert.deepEqual(view.delta, { a: 2 });
    assert.deepEqual(view.pendingDelivery, [{ version: 1, keys: ['a'], queuedAt: 1, expiresAt: 10 }]);
    assert.equal('pending' in view, false);
  });
});
