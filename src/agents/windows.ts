import type { WindowSpec } from './definition.js';

/** Window state is plain JSON so it survives a restart. */
export type WindowState =
  | { kind: 'sliding'; points: [number, number][] }
  | { kind: 'count'; values: number[] }
  | { kind: 'tumbling'; bucketStart: number | null; values: number[]; closed: number | null };

export function newWindow(spec: WindowSpec): WindowState {
  if (spec.kind === 'sliding') return { kind: 'sliding', points: [] };
  if (spec.kind === 'count') return { kind: 'count', values: [] };
  return { kind: 'tumbling', bucketStart: null, values: [], closed: null };
}

export function aggregate(values: number[], agg: WindowSpec['agg']): number | null {
  if (values.length === 0) return agg === 'count' ? 0 : null;
  switch (agg) {
    case 'avg':
      return values.reduce((a, b) => a + b, 0) / values.length;
    case 'sum':
      return values.reduce((a, b) => a + b, 0);
    case 'min':
      return Math.min(...values);
    case 'max':
      return Math.max(...values);
    case 'count':
      return values.length;
    case 'first':
      return values[0] as number;
    case 'last':
      return values[values.length - 1] as number;
    case 'delta':
      return (values[values.length - 1] as number) - (values[0] as number);
  }
}

/** Adds a reading taken at `ts` (data time) and returns the new state. */
export function pushWindow(
  state: WindowState,
  spec: WindowSpec,
  size: { ms?: number; count?: number },
  ts: number,
  value: number,
): WindowState {
  switch (state.kind) {
    case 'sliding': {
      const horizon = ts - (size.ms ?? 0);
      return { kind: 'sliding', points: [...state.points.filter(([t]) => t > horizon), [ts, value]] };
    }
    case 'count':
      return { kind: 'count', values: [...state.values, value].slice(-(size.count ?? 1)) };
    case 'tumbling': {
      const width = size.ms ?? 1;
      const bucket = Math.floor(ts / width) * width;
      if (state.bucketStart === null || bucket === state.bucketStart)
        return { ...state, bucketStart: bucket, values: [...state.values, value] };
      if (bucket < state.bucketStart) return state; // late data for a closed bucket is ignored
      return { kind: 'tumbling', bucketStart: bucket, values: [value], closed: aggregate(state.values, spec.agg) };
    }
  }
}

/** The window's value: the aggregate now (sliding, count) or of the last closed bucket (tumbling). */
export function windowValue(state: WindowState, spec: WindowSpec): number | null {
  if (state.kind === 'sliding')
    return aggregate(
      state.points.map(([, v]) => v),
      spec.agg,
    );
  if (state.kind === 'count') return aggregate(state.values, spec.agg);
  return state.closed;
}
