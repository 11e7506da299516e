import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DomainError } from '../../src/errors/index.js';
import {
  DEFAULT_RAW_LIMIT,
  encodeCursor,
  MAX_BUCKETS,
  MAX_RAW_LIMIT,
  type PlannedQuery,
  parseTime,
  planTelemetryQuery,
  type RawPosition,
  type TelemetryQueryParams,
} from '../../src/telemetry/index.js';
import { pumpModel } from './support.js';

const NOW = Date.UTC(2026, 2, 1, 12, 0, 0);
const HOUR = 3_600_000;
const model = pumpModel();

const plan = (params: TelemetryQueryParams): PlannedQuery => planTelemetryQuery(params, model, NOW);

function refused(params: TelemetryQueryParams): string {
  try {
    plan(params);
  } catch (error) {
    assert.ok(error instanceof DomainError, String(error));
    assert.equal(error.kind, 'invalid');
    return error.message;
  }
  assert.fail(`${JSON.stringify(params)} was accepted`);
}

function raw(params: TelemetryQueryParams) {
  const planned = plan(params);
  assert.equal(planned.kind, 'raw');
  return planned;
}

function aggregate(params: TelemetryQueryParams) {
  const planned = plan(params);
  assert.equal(planned.kind, 'aggregate');
  return planned;
}

describe('parseTime', () => {
  test('epoch milliseconds', () => {
    assert.equal(parseTime('1772366400000', NOW), 1772366400000);
    assert.equal(parseTime('0', NOW), 0);
  });

  test('relative to now', () => {
    assert.equal(parseTime('-1h', NOW), NOW - HOUR);
    assert.equal(parseTime('-30m', NOW), NOW - 30 * 60_000);
    assert.equal(parseTime('-7d', NOW), NOW - 7 * 24 * HOUR);
    assert.equal(parseTime('-15s', NOW), NOW - 15_000);
    assert.equal(parseTime('-1.5h', NOW), NOW - 1.5 * HOUR);
  });

  test('ISO 8601', () => {
    assert.equal(parseTime('2026-03-01T12:00:00Z', NOW), NOW);
    assert.equal(parseTime('2026-03-01T12:00:00.250Z', NOW), NOW + 250);
    assert.equal(parseTime('2026-03-01T13:00:00+01:00', NOW), NOW);
    assert.equal(parseTime('2026-03-01', NOW), Date.UTC(2026, 2, 1));
  });

  test('anything else is undefined', () => {
    for (const text of ['', 'yesterday', '-soon', '-1y', 'now', '12abc', '-']) {
      assert.equal(parseTime(text, NOW), undefined, JSON.stringify(text));
    }
  });
});

describe('planTelemetryQuery', () => {
  test('defaults: raw, every property in model order, the last 24 hours, the default limit', () => {
    const planned = raw({});
    assert.deepEqual(planned, {
      kind: 'raw',
      properties: ['speed', 'temperature', 'starts', 'running', 'mode'],
      from: NOW + 1 - 24 * HOUR,
      to: NOW + 1,
      limit: DEFAULT_RAW_LIMIT,
    });
  });

  test('from and to in any accepted spelling; from defaults to 24 hours before to', () => {
    const planned = raw({ from: '-2h', to: '2026-03-01T11:00:00Z' });
    assert.equal(planned.from, NOW - 2 * HOUR);
    assert.equal(planned.to, NOW - HOUR);
    const onlyTo = raw({ to: String(NOW - HOUR) });
    assert.equal(onlyTo.from, NOW - HOUR - 24 * HOUR);
    assert.match(refused({ from: 'soon' }), /"from" must be epoch ms, ISO 8601 or relative like -1h; got "soon"/);
    assert.match(refused({ to: 'later' }), /"to" must be/);
    assert.match(refused({ from: String(NOW), to: String(NOW) }), /"from" must be before "to"/);
    assert.match(refused({ from: '-1h', to: '-2h' }), /before/);
  });

  test('properties: one, comma-separated or repeated; empty entries ignored; unknown names refused with the valid ones', () => {
    assert.deepEqual(raw({ property: 'speed' }).properties, ['speed']);
    assert.deepEqual(raw({ property: 'speed,mode' }).properties, ['speed', 'mode']);
    assert.deepEqual(raw({ property: ['mode', 'speed,running'] }).properties, ['mode', 'speed', 'running']);
    assert.deepEqual(raw({ property: 'speed,,' }).properties, ['speed']);
    const message = refused({ property: 'speed,colour' });
    assert.match(message, /model "pump" has no property "colour"; it has: speed, temperature, starts, running, mode/);
  });

  test('limit: 1 to the maximum, integers only', () => {
    assert.equal(raw({ limit: '1' }).limit, 1);
    assert.equal(raw({ limit: MAX_RAW_LIMIT }).limit, MAX_RAW_LIMIT);
    assert.equal(raw({ limit: 250 }).limit, 250);
    for (const limit of ['0', '-5', String(MAX_RAW_LIMIT + 1), '1.5', 'ten', '']) {
      assert.match(refused({ limit }), new RegExp(`limit must be an integer from 1 to ${MAX_RAW_LIMIT}`), limit);
    }
  });

  test('a cursor from encodeCursor round-trips into the resume position', () => {
    const position: RawPosition = { ts: NOW - 5000, seq: 17, property: 'speed' };
    const cursor = encodeCursor(position);
    assert.match(cursor, /^[A-Za-z0-9_-]+$/, 'URL-safe');
    assert.deepEqual(raw({ cursor }).after, position);
    assert.equal(raw({}).after, undefined);
    const other = encodeCursor({ ts: 0, seq: 0, property: 'mode' });
    assert.notEqual(other, cursor);
    assert.deepEqual(raw({ cursor: other }).after, { ts: 0, seq: 0, property: 'mode' });
  });

  test('a cursor the API did not issue is refused', () => {
    const garbage = [
      'not-a-cursor',
      Buffer.from('{"ts":1}').toString('base64url'),
      Buffer.from('["1", 2, "speed"]').toString('base64url'),
      Buffer.from('[1, 2]').toString('base64url'),
      Buffer.from('null').toString('base64url'),
      '!!!',
    ];
    for (const cursor of garbage) {
      assert.match(refused({ cursor }), /cursor is not one this API returned/, cursor);
    }
  });

  test('aggregates: agg alone buckets by 1m, bucket alone averages, all numeric properties by default', () => {
    assert.deepEqual(aggregate({ agg: 'max', from: '-1h' }), {
      kind: 'aggregate',
      properties: ['speed', 'temperature', 'starts'],
      from: NOW - HOUR,
      to: NOW + 1,
      fn: 'max',
      bucketMs: 60_000,
    });
    const bucketOnly = aggregate({ bucket: '10s', property: 'speed', from: '-1h' });
    assert.equal(bucketOnly.fn, 'avg');
    assert.equal(bucketOnly.bucketMs, 10_000);
    assert.deepEqual(bucketOnly.properties, ['speed']);
    for (const fn of ['avg', 'min', 'max', 'count', 'first', 'last', 'sum']) assert.equal(aggregate({ agg: fn }).fn, fn);
  });

  test('aggregates: bad function or bucket, too many buckets, non-numeric properties', () => {
    assert.match(refused({ agg: 'median' }), /agg must be one of avg, min, max, count, first, last, sum/);
    assert.match(refused({ agg: 'avg', bucket: 'fortnight' }), /bucket must be a duration like 10s, 1m or 1h; got "fortnight"/);
    assert.match(refused({ agg: 'avg', bucket: '0s' }), /bucket must be a duration/);
    // Exactly MAX_BUCKETS buckets is fine, one more is not.
    const from = String(NOW - MAX_BUCKETS * 1000);
    assert.equal(aggregate({ agg: 'avg', bucket: '1s', from, to: String(NOW) }).bucketMs, 1000);
    assert.match(
      refused({ agg: 'avg', bucket: '1s', from: String(NOW - MAX_BUCKETS * 1000 - 1000), to: String(NOW) }),
      new RegExp(`more than ${MAX_BUCKETS} buckets of 1s`),
    );
    assert.match(refused({ agg: 'avg', property: 'mode,speed' }), /agg=avg needs numeric properties; not numeric: mode/);
    assert.match(refused({ agg: 'sum', property: 'running' }), /not numeric: running/);
    assert.deepEqual(aggregate({ agg: 'count', property: 'mode,running' }).properties, ['mode', 'running']);
  });
});
