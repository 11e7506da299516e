import { describe, expect, it } from 'vitest';
import { appendSample, emptySeries, fromAggregate, fromRaw } from './series';

describe('chart series', () => {
  it('groups raw items per property in time order, seconds on x, numbers only', () => {
    const map = fromRaw(
      {
        deviceId: 'p',
        from: 0,
        to: 10_000,
        next: null,
        items: [
          { property: 'speed', ts: 3000, value: 30 },
          { property: 'speed', ts: 1000, value: 10 },
          { property: 'running', ts: 1000, value: true },
          { property: 'flow', ts: 2000, value: 'n/a' },
        ],
      },
      ['speed', 'flow'],
    );
    expect(map.speed).toEqual({ xs: [1, 3], ys: [10, 30] });
    expect(map.flow).toEqual({ xs: [], ys: [] });
    expect(map.running).toBeUndefined();
  });

  it('keeps empty buckets as gaps', () => {
    const map = fromAggregate(
      {
        deviceId: 'p',
        from: 0,
        to: 0,
        agg: 'avg',
        bucketMs: 1000,
        series: [
          {
            property: 'speed',
            points: [
              { ts: 2000, value: null, count: 0 },
              { ts: 1000, value: 5, count: 2 },
            ],
          },
        ],
      },
      ['speed'],
    );
    expect(map.speed).toEqual({ xs: [1, 2], ys: [5, null] });
  });

  it('appends live samples, slides the window and caps the points', () => {
    let map = emptySeries(['speed']);
    for (let i = 0; i < 10; i++) map = appendSample(map, i * 1000, { speed: i, running: true }, 5000, 100);
    expect(map.speed?.xs).toEqual([4, 5, 6, 7, 8, 9]);
    map = appendSample(map, 9500, { speed: 1 }, 60_000, 3);
    expect(map.speed?.xs).toEqual([8, 9, 9.5]);
  });

  it('inserts a late sample in order', () => {
    let map = emptySeries(['t']);
    map = appendSample(map, 1000, { t: 1 }, 60_000, 100);
    map = appendSample(map, 3000, { t: 3 }, 60_000, 100);
    map = appendSample(map, 2000, { t: 2 }, 60_000, 100);
    expect(map.t).toEqual({ xs: [1, 2, 3], ys: [1, 2, 3] });
  });
});
