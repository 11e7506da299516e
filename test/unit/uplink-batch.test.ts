/** The cloud reads an edge's batch frames: well-formed ones round-trip, hostile ones are refused whole. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { decodeBatch, encodeBatch, MAX_BATCH_INFLATED_BYTES, malformedRecord } from '../../src/edge/index.js';

const header = (first: unknown, last: unknown) => Buffer.from(`${JSON.stringify({ type: 'batch', first, last })}\n`);

describe('uplink batch frames', () => {
  test('a batch round-trips', () => {
    const records = [
      { seq: 1, record: { kind: 'telemetry' as const, deviceId: 'p-1', ts: 1, values: { speed: 1 } } },
      { seq: 2, record: { kind: 'telemetry' as const, deviceId: 'p-1', ts: 2, values: { speed: 2 } } },
    ];
    assert.deepEqual(decodeBatch(encodeBatch(records)), { first: 1, last: 2, records });
  });

  test('a gzip bomb is refused without inflating it whole', () => {
    const bomb = gzipSync(Buffer.alloc(MAX_BATCH_INFLATED_BYTES + 1024 * 1024, 0x20));
    assert.ok(bomb.length < 64 * 1024, 'the bomb fits in one link frame');
    assert.throws(() => decodeBatch(Buffer.concat([header(1, 1), bomb])), /gzip of at most/);
  });

  test('headers without sequence numbers and bodies that are not sequenced records are refused', () => {
    const body = gzipSync(Buffer.from('[]'));
    assert.throws(() => decodeBatch(Buffer.concat([header('1', 2), body])), /sequence numbers/);
    assert.throws(() => decodeBatch(Buffer.concat([header(1e300, 2), body])), /sequence numbers/);
    for (const text of ['{}', '[1]', '[{"seq":1}]', '[{"seq":"1","record":{"kind":"telemetry"}}]', '[{"seq":1,"record":null}]']) {
      assert.throws(() => decodeBatch(Buffer.concat([header(1, 1), gzipSync(Buffer.from(text))])), /array of \{seq, record\}/, text);
    }
    assert.throws(() => decodeBatch(Buffer.concat([header(1, 1), Buffer.from('not gzip')])), /gzip/);
  });

  test('records missing what their kind needs are named, whole ones pass', () => {
    const now = Date.now();
    const whole = [
      { kind: 'telemetry', deviceId: 'p', ts: now, values: { speed: 1 } },
      { kind: 'twin', deviceId: 'p', ts: now, section: 'desired', values: { speed: null }, actor: 'api' },
      { kind: 'event', deviceId: 'p', name: 'overheat', ts: now, data: null },
      {
        kind: 'invocation',
        invocation: {
          id: 'i',
          deviceId: 'p',
          action: 'reset',
          input: null,
          status: 'succeeded',
          actor: 'api',
          createdAt: now,
          expiresAt: now,
          timeoutMs: 0,
        },
      },
      { kind: 'alarm', alarm: { id: 'a', agentId: 'g', deviceId: 'p', type: 'hot', state: 'active', raisedAt: now } },
      { kind: 'decision', decision: { id: 'd', agentId: 'g', deviceId: 'p', ts: now, outcome: 'executed' } },
      { kind: 'gap', gap: { policy: 'drop-oldest', at: now, devices: { p: { dropped: 3, from: now - 10, to: now } }, total: 3 } },
    ];
    for (const record of whole) assert.equal(malformedRecord(record), undefined, record.kind);
    const broken: [unknown, RegExp][] = [
      [{ kind: 'telemetry', deviceId: 'p', ts: now, values: null }, /values/],
      [{ kind: 'gap', gap: { at: now, total: 1 } }, /policy/],
      [{ kind: 'invocation', invocation: { id: 'i', deviceId: 'p', status: 'succeeded', createdAt: now } }, /action/],
      [{ kind: 'alarm', alarm: 'x' }, /alarm as an object/],
      [{ kind: 'gap', gap: { policy: 'downsample', at: now, devices: { p: -5 }, total: 1 } }, /devices/],
      [
        { kind: 'invocation', invocation: { id: 'i', deviceId: 'p', action: 'reset', status: 'succeeded', createdAt: now } },
        /input|actor|expiresAt/,
      ],
      [{ kind: 'telemetry', deviceId: 'p', ts: 1e300, values: {} }, /ts/],
      [{ kind: 'teleport' }, /unknown record kind/],
      [null, /object/],
    ];
    for (const [record, reason] of broken) assert.match(String(malformedRecord(record)), reason, JSON.stringify(record));
  });
});
