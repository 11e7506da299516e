import type { DetectorSpec } from './definition.js';

/** Streaming detector state: plain JSON, so detectors resume where they were after a restart. */
export type DetectorState =
  | { kind: 'zscore'; n: number; mean: number; variance: number }
  | { kind: 'rate'; lastTs: number | null; lastValue: number | null }
  | { kind: 'stuck'; value: number | null; run: number }
  | { kind: 'flatline'; points: [number, number][] }
  | { kind: 'missing'; lastTs: number | null }
  | { kind: 'band'; n: number; mean: number; m2: number };

export interface DetectorVerdict {
  state: DetectorState;
  flagged: boolean;
  /** What was seen, for the decision record: z-score, rate, run length… */
  score: number | null;
}

export function newDetector(spec: DetectorSpec): DetectorState {
  switch (spec.kind) {
    case 'zscore':
      return { kind: 'zscore', n: 0, mean: 0, variance: 0 };
    case 'rate':
      return { kind: 'rate', lastTs: null, lastValue: null };
    case 'stuck':
      return { kind: 'stuck', value: null, run: 0 };
    case 'flatline':
      return { kind: 'flatline', points: [] };
    case 'missing':
      return { kind: 'missing', lastTs: null };
    case 'band':
      return { kind: 'band', n: 0, mean: 0, m2: 0 };
  }
}

/** Feeds one reading (data time `ts`) to a detector. */
export function observe(spec: DetectorSpec & { windowMs?: number }, state: DetectorState, ts: number, value: number): DetectorVerdict {
  switch (state.kind) {
    case 'zscore': {
      // EWMA mean and variance: O(1) memory, adapts to slow drift, flags sudden deviation.
      const alpha = spec.alpha ?? 0.1;
      const std = Math.sqrt(state.variance);
      const z = state.n > 0 && std > 0 ? Math.abs(value - state.mean) / std : 0;
      const flagged = state.n >= (spec.warmup ?? 20) && z > (spec.threshold ?? 3);
      const diff = value - state.mean;
      const mean = state.n === 0 ? value : state.mean + alpha * diff;
      const variance = state.n === 0 ? 0 : (1 - alpha) * (state.variance + alpha * diff * diff);
      return { state: { kind: 'zscore', n: state.n + 1, mean, variance }, flagged, score: Number(z.toFixed(3)) };
    }
    case 'rate': {
      const dt = state.lastTs === null ? 0 : (ts - state.lastTs) / 1000;
      const rate = dt > 0 && state.lastValue !== null ? (value - state.lastValue) / dt : 0;
      return {
        state: { kind: 'rate', lastTs: ts, lastValue: value },
        flagged: Math.abs(rate) > (spec.maxPerSecond ?? Infinity),
        score: Number(rate.toFixed(4)),
      };
    }
    case 'stuck': {
      const run = state.value === value ? state.run + 1 : 1;
      return { state: { kind: 'stuck', value, run }, flagged: run >= (spec.samples ?? 10), score: run };
    }
    case 'flatline': {
      const windowMs = spec.windowMs ?? 60_000;
      const horizon = ts - windowMs;
      // The last reading at or before the window's start is kept as its anchor: the value then
      // held into the window, and it shows the window is covered (readings every windowMs / N
      // would otherwise never span a full window).
      const anchor = state.points.filter(([t]) => t <= horizon).at(-1);
      const points = [...(anchor ? [anchor] : []), ...state.points.filter(([t]) => t > horizon), [ts, value] as [number, number]];
      const values = points.map(([, v]) => v);
      const spread = Math.max(...values) - Math.min(...values);
      // Judge only once the window is full: two equal readings are not a flatline.
      const covered = points.length > 1 && ts - (points[0] as [number, number])[0] >= windowMs;
      return {
        state: { kind: 'flatline', points },
        flagged: covered && spread <= (spec.epsilon ?? 1e-6),
        score: Number(spread.toFixed(6)),
      };
    }
    case 'missing':
      return { state: { kind: 'missing', lastTs: ts }, flagged: false, score: 0 };
    case 'band': {
      // Welford while learning; the learned baseline is then frozen.
      const warmup = spec.warmup ?? 100;
      if (state.n < warmup) {
        const n = state.n + 1;
        const delta = value - state.mean;
        const mean = state.mean + delta / n;
        return { state: { kind: 'band', n, mean, m2: state.m2 + delta * (value - mean) }, flagged: false, score: null };
      }
      const std = Math.sqrt(state.m2 / Math.max(1, state.n - 1));
      const distance = std > 0 ? Math.abs(value - state.mean) / std : value === state.mean ? 0 : Infinity;
      return { state, flagged: distance > (spec.margin ?? 4), score: Number.isFinite(distance) ? Number(distance.toFixed(3)) : null };
    }
  }
}

/** Clock-driven check for detectors that flag on silence: missing data. */
export function silence(spec: DetectorSpec, state: DetectorState, now: number, expectedIntervalMs: number): boolean {
  if (state.kind !== 'missing' || state.lastTs === null) return false;
  return now - state.lastTs > (spec.factor ?? 2) * expectedIntervalMs;
}
