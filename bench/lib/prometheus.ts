/** Just enough of the Prometheus text format to read counters and one histogram. */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = LINE.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(LABEL)) labels[key as string] = value as string;
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

/** Sum of every series of a metric (all label combinations). */
export function total(samples: Sample[], name: string): number {
  return samples.filter((s) => s.name === name).reduce((sum, s) => sum + s.value, 0);
}

export interface HistogramSummary {
  count: number;
  sum: number;
  meanSeconds: number;
  /** Upper bucket bound containing the 99th percentile (Prometheus-style estimate). */
  p99UpperSeconds: number;
  buckets: { le: string; count: number }[];
}

export function histogram(samples: Sample[], name: string): HistogramSummary {
  const buckets = samples.filter((s) => s.name === `${name}_bucket`).map((s) => ({ le: s.labels.le ?? '+Inf', count: s.value }));
  const count = total(samples, `${name}_count`);
  const sum = total(samples, `${name}_sum`);
  const rank = count * 0.99;
  const p99 = buckets.find((b) => b.count >= rank)?.le ?? '+Inf';
  return { count, sum, meanSeconds: count > 0 ? sum / count : 0, p99UpperSeconds: Number(p99), buckets };
}

/** Subtracts a histogram read earlier, so the result covers only the measured window. */
export function histogramDelta(after: HistogramSummary, before: HistogramSummary): HistogramSummary {
  const count = after.count - before.count;
  const sum = after.sum - before.sum;
  const buckets = after.buckets.map((b) => ({ le: b.le, count: b.count - (before.buckets.find((x) => x.le === b.le)?.count ?? 0) }));
  const p99 = buckets.find((b) => b.count >= count * 0.99)?.le ?? '+Inf';
  return { count, sum, meanSeconds: count > 0 ? sum / count : 0, p99UpperSeconds: Number(p99), buckets };
}
