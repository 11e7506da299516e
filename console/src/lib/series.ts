import type { TelemetryAggregate, TelemetryRaw } from '../api/types';

/** Per-property series in uPlot's shape: seconds on x, numbers (or gaps) on y. */
export interface Series {
  xs: number[];
  ys: (number | null)[];
}

export type SeriesMap = Record<string, Series>;

export function emptySeries(properties: string[]): SeriesMap {
  return Object.fromEntries(properties.map((p) => [p, { xs: [], ys: [] }]));
}

export function fromRaw(result: TelemetryRaw, properties: string[]): SeriesMap {
  const map = emptySeries(properties);
  const sorted = [...result.items].sort((a, b) => a.ts - b.ts);
  for (const item of sorted) {
    const series = map[item.property];
    if (!series || typeof item.value !== 'number') continue;
    series.xs.push(item.ts / 1000);
    series.ys.push(item.value);
  }
  return map;
}

export function fromAggregate(result: TelemetryAggregate, properties: string[]): SeriesMap {
  const map = emptySeries(properties);
  for (const entry of result.series) {
    const series = map[entry.property];
    if (!series) continue;
    for (const point of [...entry.points].sort((a, b) => a.ts - b.ts)) {
      series.xs.push(point.ts / 1000);
      series.ys.push(point.value);
    }
  }
  return map;
}

/** Appends one live sample (numbers only) and drops points older than `windowMs` before it. */
export function appendSample(map: SeriesMap, ts: number, values: Record<string, unknown>, windowMs: number, maxPoints: number): SeriesMap {
  const next: SeriesMap = { ...map };
  for (const [property, value] of Object.entries(values)) {
    const current = map[property];
    if (!current || typeof value !== 'number') continue;
    const x = ts / 1000;
    const last = current.xs.at(-1);
    let xs = [...current.xs];
    let ys = [...current.ys];
    if (last !== undefined && x < last) {
      // Late sample: insert in order so uPlot's x stays sorted.
      const at = xs.findIndex((v) => v > x);
      xs.splice(at, 0, x);
      ys.splice(at, 0, value);
    } else {
      xs.push(x);
      ys.push(value);
    }
    const cutoff = x - windowMs / 1000;
    let drop = 0;
    while (drop < xs.length && (xs[drop] as number) < cutoff) drop++;
    drop = Math.max(drop, xs.length - maxPoints);
    if (drop > 0) {
      xs = xs.slice(drop);
      ys = ys.slice(drop);
    }
    next[property] = { xs, ys };
  }
  return next;
}
