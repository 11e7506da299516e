import { describe, expect, it } from 'vitest';
import { formatDuration, maxPoints, parseDurationMs, RANGES, rangeById, telemetryQuery } from './timeRange';

const NOW = 1_700_000_000_000;

describe('time ranges', () => {
  it('live asks for raw samples of the last 10 minutes', () => {
    const q = telemetryQuery('live', NOW, ['speed', 'flow']);
    expect(q.get('from')).toBe(String(NOW - 600_000));
    expect(q.get('to')).toBe(String(NOW + 1));
    expect(q.get('agg')).toBeNull();
    expect(q.get('bucket')).toBeNull();
    expect(q.get('limit')).toBe('10000');
    expect(q.get('property')).toBe('speed,flow');
  });

  it.each([
    ['1h', 3_600_000, '15s', 241],
    ['24h', 86_400_000, '5m', 289],
    ['7d', 604_800_000, '30m', 337],
  ] as const)('%s averages over %d ms in %s buckets (at most %d points)', (id, span, bucket, points) => {
    const q = telemetryQuery(id, NOW, ['speed']);
    expect(q.get('from')).toBe(String(NOW - span));
    expect(q.get('agg')).toBe('avg');
    expect(q.get('bucket')).toBe(bucket);
    expect(q.get('limit')).toBeNull();
    expect(maxPoints(id)).toBe(points);
  });

  it('keeps every aggregated range within a few hundred points', () => {
    for (const range of RANGES.filter((r) => r.bucket)) {
      expect(range.spanMs / parseDurationMs(range.bucket as string)).toBeLessThanOrEqual(400);
    }
  });

  it('omits property when none is given and falls back to live for unknown ids', () => {
    expect(telemetryQuery('1h', NOW, []).has('property')).toBe(false);
    expect(rangeById('nope' as never).id).toBe('live');
  });

  it('parses and formats durations', () => {
    expect(parseDurationMs('15s')).toBe(15_000);
    expect(parseDurationMs('5m')).toBe(300_000);
    expect(parseDurationMs('2h')).toBe(7_200_000);
    expect(parseDurationMs('1d')).toBe(86_400_000);
    expect(() => parseDurationMs('soon')).toThrow(/not a duration/);
    expect(formatDuration(300_000)).toBe('5 min');
    expect(formatDuration(7_200_000)).toBe('2 h');
    expect(formatDuration(15_000)).toBe('15 s');
  });
});
