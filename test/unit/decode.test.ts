import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type DecodeLimits, type DecodeResult, decodeEvent, decodeTelemetry } from '../../src/ingest/index.js';
import { compileThingModel, isShallowValue, isStorableString, MAX_VALUE_DEPTH } from '../../src/model/index.js';
import { pumpModel } from './support.js';

const NOW = Date.UTC(2026, 2, 1, 12, 0, 0);
const LIMITS: DecodeLimits = { maxPayloadBytes: 1024, maxSamplesPerMessage: 3, maxFutureSkewMs: 60_000 };
const model = pumpModel();

const decode = (payload: unknown, limits = LIMITS): DecodeResult =>
  decodeTelemetry(Buffer.isBuffer(payload) ? payload : Buffer.from(JSON.stringify(payload)), model, NOW, limits);

/** The timestamp a single sample `{ts, speed: 1}` is stored at, or the reason it is refused. */
function tsOutcome(ts: unknown): number | string {
  const result = decode({ ts, speed: 1 });
  if (result.samples.length === 1) {
    assert.deepEqual(result.rejections, []);
    return result.samples[0]?.ts as number;
  }
  assert.equal(result.samples.length, 0);
  assert.equal(result.rejections.length, 1);
  return result.rejections[0]?.reason as string;
}

describe('decodeTelemetry: timestamps', () => {
  test('no ts means the time of receipt', () => {
    assert.deepEqual(decode({ speed: 1 }).samples, [{ ts: NOW, values: { speed: 1 } }]);
  });

  test('integer epoch milliseconds are kept; fractions are refused', () => {
    assert.equal(tsOutcome(NOW - 1000), NOW - 1000);
    assert.equal(tsOutcome(NOW - 0.5), 'bad_timestamp');
    const rejection = decode({ ts: 1772366400000.5, speed: 1 }).rejections[0];
    assert.match(rejection?.message ?? '', /integer number of epoch milliseconds/);
    assert.equal(rejection?.value, 1772366400000.5);
  });

  test('ISO 8601 with a zone (Z, ±hh:mm, ±hhmm) or a bare date', () => {
    assert.equal(tsOutcome('2026-03-01T11:00:00Z'), NOW - 3_600_000);
    assert.equal(tsOutcome('2026-03-01T11:00:00.125Z'), NOW - 3_600_000 + 125);
    assert.equal(tsOutcome('2026-03-01T13:00:00+02:00'), NOW - 3_600_000);
    assert.equal(tsOutcome('2026-03-01T06:30:00-0500'), NOW - 30 * 60_000);
    assert.equal(tsOutcome('2026-03-01T11:00Z'), NOW - 3_600_000);
    assert.equal(tsOutcome('2026-03-01'), Date.UTC(2026, 2, 1));
  });

  test('a bare local time is refused: its zone is unknown', () => {
    for (const ts of ['2026-03-01T11:00:00', '2026-03-01T11:00', '2026-03-01 11:00:00Z', '2026-03-01 11:00:00']) {
      assert.equal(tsOutcome(ts), 'bad_timestamp', ts);
    }
    assert.match(decode({ ts: '2026-03-01T11:00:00', speed: 1 }).rejections[0]?.message ?? '', /with a zone/);
  });

  test('other spellings and types are refused', () => {
    for (const ts of ['yesterday', '1772366400000', '2026-13-45T00:00:00Z', true, null, { at: 1 }, [NOW]]) {
      assert.equal(tsOutcome(ts), 'bad_timestamp', JSON.stringify(ts));
    }
  });

  test('before 2000-01-01 is refused (an unset clock, or seconds instead of milliseconds)', () => {
    const y2k = Date.UTC(2000, 0, 1);
    assert.equal(tsOutcome(y2k), y2k);
    assert.equal(tsOutcome(y2k - 1), 'bad_timestamp');
    assert.equal(tsOutcome(0), 'bad_timestamp');
    assert.equal(tsOutcome(Math.floor(NOW / 1000)), 'bad_timestamp', 'epoch seconds');
    assert.equal(tsOutcome('1999-12-31T23:59:59Z'), 'bad_timestamp');
    assert.match(decode({ ts: 12, speed: 1 }).rejections[0]?.message ?? '', /before 2000-01-01/);
  });

  test('outside the range of dates (beyond ±8.64e15 ms) is refused, never thrown', () => {
    for (const ts of [
      1e300,
      -1e300,
      8.64e15 + 1,
      -8.64e15 - 1,
      2 ** 53,
      Number.MAX_VALUE,
      '+275760-09-14T00:00:00.001Z',
      '9999999-01-01',
    ]) {
      assert.equal(tsOutcome(ts), 'bad_timestamp', String(ts));
    }
    assert.match(decode({ ts: 1e300, speed: 1 }).rejections[0]?.message ?? '', /outside the range of dates/);
    // NaN and Infinity cannot come through JSON, but an already parsed body can hold them.
    for (const ts of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      assert.deepEqual(
        decodeTelemetry({ ts, speed: 1 }, model, NOW, LIMITS).rejections.map((r) => r.reason),
        ['bad_timestamp'],
        String(ts),
      );
    }
    // The latest date there is, with a skew that reaches it: kept, and its message never throws.
    const farFuture = decodeTelemetry(Buffer.from(JSON.stringify({ ts: 8.64e15, speed: 1 })), model, NOW, {
      ...LIMITS,
      maxFutureSkewMs: 8.64e15,
    });
    assert.equal(farFuture.samples[0]?.ts, 8.64e15);
  });

  test('in a batch, a poison timestamp costs only its own sample', () => {
    const result = decode([{ ts: 1e300, speed: 1 }, { speed: 2 }]);
    assert.deepEqual(result.samples, [{ ts: NOW, values: { speed: 2 } }]);
    assert.deepEqual(
      result.rejections.map((r) => [r.sample, r.reason, r.value]),
      [[0, 'bad_timestamp', 1e300]],
    );
  });

  test('the future is allowed only within the clock skew', () => {
    assert.equal(tsOutcome(NOW + LIMITS.maxFutureSkewMs), NOW + LIMITS.maxFutureSkewMs);
    assert.equal(tsOutcome(NOW + LIMITS.maxFutureSkewMs + 1), 'bad_timestamp');
    assert.equal(tsOutcome('2026-03-01T12:05:00Z'), 'bad_timestamp');
    assert.match(decode({ ts: NOW + 86_400_000, speed: 1 }).rejections[0]?.message ?? '', /future/);
    const lenient = decodeTelemetry(Buffer.from(JSON.stringify({ ts: NOW + 3_600_000, speed: 1 })), model, NOW, {
      ...LIMITS,
      maxFutureSkewMs: 7_200_000,
    });
    assert.equal(lenient.samples[0]?.ts, NOW + 3_600_000);
  });
});

describe('decodeTelemetry: payloads', () => {
  test('the payload limit is in bytes, inclusive', () => {
    const body = (size: number) => {
      const text = JSON.stringify({ speed: 1, mode: 'auto', pad: '' });
      return Buffer.from(text.replace('"pad":""', `"pad":"${'x'.repeat(size - text.length)}"`));
    };
    assert.equal(body(1024).length, 1024);
    const atLimit = decode(body(1024));
    assert.equal(atLimit.samples.length, 1, 'exactly the limit is decoded');
    assert.deepEqual(
      atLimit.rejections.map((r) => [r.property, r.reason]),
      [['pad', 'unknown_property']],
    );
    const over = decode(body(1025));
    assert.deepEqual(over.samples, []);
    assert.equal(over.rejections.length, 1);
    assert.equal(over.rejections[0]?.reason, 'payload_too_large');
    assert.match(over.rejections[0]?.message ?? '', /1025 bytes; the limit is 1024/);
    // Multi-byte characters count as bytes, not characters.
    const wide = Buffer.from(JSON.stringify({ speed: 1, pad: 'é'.repeat(510) }));
    assert.ok(wide.length > 1024 && JSON.stringify({ speed: 1, pad: 'é'.repeat(510) }).length < 1024);
    assert.equal(decode(wide).rejections[0]?.reason, 'payload_too_large');
  });

  test('malformed JSON and empty payloads', () => {
    for (const payload of ['{"speed": 1', '', 'speed=1', '\u0000']) {
      const result = decode(Buffer.from(payload));
      assert.deepEqual(
        result.rejections.map((r) => r.reason),
        ['malformed_json'],
        JSON.stringify(payload),
      );
      assert.deepEqual(result.samples, []);
    }
  });

  test('a batch holds at most maxSamplesPerMessage samples', () => {
    const sample = (n: number) => ({ ts: NOW - n * 1000, speed: n });
    const full = decode([sample(1), sample(2), sample(3)]);
    assert.equal(full.samples.length, 3);
    assert.deepEqual(full.rejections, []);
    const tooMany = decode([sample(1), sample(2), sample(3), sample(4)]);
    assert.deepEqual(tooMany.samples, [], 'nothing of an oversized batch is kept');
    assert.deepEqual(
      tooMany.rejections.map((r) => r.reason),
      ['too_many_samples'],
    );
    assert.match(tooMany.rejections[0]?.message ?? '', /at most 3 samples; got 4/);
  });

  test('non-object samples and empty samples', () => {
    for (const payload of [42, 'speed', null, true]) {
      assert.deepEqual(
        decode(payload).rejections.map((r) => [r.reason, r.sample]),
        [['not_an_object', undefined]],
        JSON.stringify(payload),
      );
    }
    assert.deepEqual(
      decode({}).rejections.map((r) => r.reason),
      ['empty_sample'],
    );
    assert.deepEqual(
      decode({ ts: NOW }).rejections.map((r) => r.reason),
      ['empty_sample'],
    );
    assert.deepEqual(decode([]), { samples: [], rejections: [] });
  });
});

describe('decodeTelemetry: partial acceptance', () => {
  test('valid values survive their invalid neighbours, each refusal naming its property', () => {
    const result = decode({ ts: NOW - 1000, speed: 150, temperature: 21.5, starts: 2.5, running: true, mode: 'turbo', colour: 'red' });
    assert.deepEqual(result.samples, [{ ts: NOW - 1000, values: { temperature: 21.5, running: true } }]);
    assert.deepEqual(
      result.rejections.map((r) => [r.property, r.reason, r.value]),
      [
        ['speed', 'out_of_range', 150],
        ['starts', 'wrong_type', 2.5],
        ['mode', 'not_in_enum', 'turbo'],
        ['colour', 'unknown_property', undefined],
      ],
    );
    assert.ok(
      result.rejections.every((r) => r.sample === undefined),
      'a single sample has no index',
    );
    assert.match(result.rejections.find((r) => r.property === 'colour')?.message ?? '', /model "pump" v2 has no property "colour"/);
    assert.match(result.rejections.find((r) => r.property === 'speed')?.message ?? '', /^speed /);
  });

  test('a sample with only bad values yields its refusals and no sample (not an empty_sample)', () => {
    const result = decode({ speed: -1, colour: 'red' });
    assert.deepEqual(result.samples, []);
    assert.deepEqual(
      result.rejections.map((r) => r.reason),
      ['out_of_range', 'unknown_property'],
    );
  });

  test('in a batch, each refusal carries its sample index and good samples keep their own ts', () => {
    const result = decode([{ ts: NOW - 2000, speed: 1 }, { ts: 'noon', speed: 2 }, 'x']);
    assert.deepEqual(result.samples, [{ ts: NOW - 2000, values: { speed: 1 } }]);
    assert.deepEqual(
      result.rejections.map((r) => [r.sample, r.reason]),
      [
        [1, 'bad_timestamp'],
        [2, 'not_an_object'],
      ],
    );
    const mixed = decode([{ speed: 4 }, { ts: NOW - 1000, speed: 3, mode: 'turbo' }]);
    assert.deepEqual(mixed.samples, [
      { ts: NOW, values: { speed: 4 } },
      { ts: NOW - 1000, values: { speed: 3 } },
    ]);
    assert.deepEqual(
      mixed.rejections.map((r) => [r.sample, r.property, r.reason]),
      [[1, 'mode', 'not_in_enum']],
    );
  });

  test('an already parsed payload (not bytes) is validated the same way, NaN included', () => {
    const result = decodeTelemetry({ speed: Number.NaN, temperature: Number.POSITIVE_INFINITY, starts: 1 }, model, NOW, LIMITS);
    assert.deepEqual(result.samples, [{ ts: NOW, values: { starts: 1 } }]);
    assert.deepEqual(
      result.rejections.map((r) => [r.property, r.reason]),
      [
        ['speed', 'wrong_type'],
        ['temperature', 'wrong_type'],
      ],
    );
  });
});

describe('decodeEvent: timestamps', () => {
  const events = compileThingModel({
    id: 'door',
    version: 1,
    createdAt: 0,
    document: { title: 'Door', events: { opened: {}, note: { data: { type: 'string' } } } },
  });
  const event = (body: unknown) => decodeEvent('opened', Buffer.from(JSON.stringify(body)), events, NOW, LIMITS);

  test('a ts outside the range of dates is a bad_timestamp refusal, not an exception', () => {
    for (const ts of [1e300, -1e300, '+275760-09-14T00:00:00.001Z', '9999999-01-01']) {
      const decoded = event({ ts });
      assert.ok('rejection' in decoded, String(ts));
      assert.equal(decoded.rejection.reason, 'bad_timestamp');
      assert.equal(decoded.rejection.event, 'opened');
    }
    assert.deepEqual(event({ ts: NOW - 1 }), { event: { name: 'opened', ts: NOW - 1, data: null } });
  });
});

describe('values that cannot be stored exactly', () => {
  const sensor = compileThingModel({
    id: 'sensor',
    version: 1,
    createdAt: 0,
    document: {
      title: 'Sensor',
      properties: {
        count: { type: 'integer' },
        reading: { type: 'number' },
        label: { type: 'string' },
        tags: { type: 'array', items: { type: 'integer' } },
        position: { type: 'object', properties: { x: { type: 'integer' } } },
      },
      events: { any: {}, note: { data: { type: 'string' } } },
    },
  });
  const values = (sample: Record<string, unknown>) => decodeTelemetry(sample, sensor, NOW, LIMITS);
  const reasons = (result: DecodeResult) => result.rejections.map((r) => [r.property, r.reason]);

  test('isStorableString refuses U+0000 and unpaired surrogates, keeps pairs and other control characters', () => {
    for (const text of ['\u0000', 'a\u0000b', '\ud800', 'a\ud800b', '\udc00', '\udfffa', '\udc00\ud800', 'x\ud83d']) {
      assert.equal(isStorableString(text), false, JSON.stringify(text));
    }
    for (const text of ['', 'plain', '\ud83d\ude00', 'é\u0001\t\n\u007f', '\uffff', '\ud83d\ude00\ud83d\ude00']) {
      assert.equal(isStorableString(text), true, JSON.stringify(text));
    }
  });

  test('an integer beyond ±(2^53 - 1) is out_of_range, at any depth; a number keeps its double', () => {
    const result = values({
      count: 2 ** 53 + 2,
      reading: 2 ** 60,
      tags: [1, -(2 ** 53)],
      position: { x: 2 ** 53 },
    });
    assert.deepEqual(result.samples, [{ ts: NOW, values: { reading: 2 ** 60 } }]);
    assert.deepEqual(reasons(result), [
      ['count', 'out_of_range'],
      ['tags', 'out_of_range'],
      ['position', 'out_of_range'],
    ]);
    assert.match(result.rejections[0]?.message ?? '', /^count must be a safe integer/);
    assert.match(result.rejections[1]?.message ?? '', /^tags \/1 must be a safe integer/);
    const edge = values({ count: 2 ** 53 - 1, tags: [-(2 ** 53 - 1)], position: { x: 0 } });
    assert.deepEqual(edge.rejections, []);
  });

  test('a string with U+0000 or a lone surrogate is bad_string, in a value or a key, at any depth', () => {
    const result = values({ label: 'a\u0000', reading: 1 });
    assert.deepEqual(result.samples, [{ ts: NOW, values: { reading: 1 } }]);
    assert.deepEqual(reasons(result), [['label', 'bad_string']]);
    assert.deepEqual(reasons(values({ label: '\udc00' })), [['label', 'bad_string']]);
    assert.deepEqual(reasons(values({ position: { x: 1, '\ud800': 1 } })), [['position', 'bad_string']]);
    // Before the schema: the string is refused for what it is, not for the type it should have been.
    assert.deepEqual(reasons(values({ count: '\u0000' })), [['count', 'bad_string']]);
    // Through JSON the same: the escapes decode to the characters refused.
    const wire = decodeTelemetry(Buffer.from('{"label": "\\ud800x", "reading": 2}'), sensor, NOW, LIMITS);
    assert.deepEqual(reasons(wire), [['label', 'bad_string']]);
  });

  test('a value nested deeper than MAX_VALUE_DEPTH is refused without recursion and without being echoed', () => {
    const nested = (depth: number): unknown => {
      let value: unknown = 1;
      for (let level = 0; level < depth; level++) value = [value];
      return value;
    };
    assert.equal(isShallowValue(nested(MAX_VALUE_DEPTH)), true);
    assert.equal(isShallowValue(nested(MAX_VALUE_DEPTH + 1)), false);
    assert.deepEqual(values({ position: { x: 1, deep: nested(MAX_VALUE_DEPTH - 1) } }).rejections, []);
    const deep = decodeTelemetry(Buffer.from(`{"position": ${'['.repeat(100_000)}${']'.repeat(100_000)}, "reading": 3}`), sensor, NOW, {
      ...LIMITS,
      maxPayloadBytes: 1_000_000,
    });
    assert.deepEqual(deep.samples, [{ ts: NOW, values: { reading: 3 } }]);
    assert.deepEqual(
      deep.rejections.map((r) => [r.property, r.reason, r.value]),
      [['position', 'invalid_value', undefined]],
    );
    assert.match(deep.rejections[0]?.message ?? '', /deeper than 64 levels/);
    const deepTs = decodeTelemetry({ ts: nested(100_000), reading: 1 }, sensor, NOW, LIMITS);
    assert.deepEqual(
      deepTs.rejections.map((r) => [r.reason, 'value' in r]),
      [['bad_timestamp', false]],
    );
    const event = decodeEvent('any', { data: nested(100_000) }, sensor, NOW, LIMITS);
    assert.ok('rejection' in event);
    assert.deepEqual([event.rejection.reason, 'value' in event.rejection], ['invalid_value', false]);
  });

  test('event data is checked the same, also for an event without a data schema', () => {
    const note = decodeEvent('note', { data: 'x\u0000' }, sensor, NOW, LIMITS);
    assert.ok('rejection' in note);
    assert.equal(note.rejection.reason, 'bad_string');
    const free = decodeEvent('any', { data: { nested: ['\ud800'] } }, sensor, NOW, LIMITS);
    assert.ok('rejection' in free);
    assert.equal(free.rejection.reason, 'bad_string');
    assert.match(free.rejection.message, /\/nested\/0/);
    const nan = decodeEvent('any', { data: { level: Number.NaN } }, sensor, NOW, LIMITS);
    assert.ok('rejection' in nan);
    assert.equal(nan.rejection.reason, 'wrong_type');
    assert.ok('event' in decodeEvent('any', { data: { text: 'ok \ud83d\ude00' } }, sensor, NOW, LIMITS));
  });
});
