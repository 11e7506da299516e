/** Reads one counter (summed over its labels) from Prometheus text. */
export function counterValue(text: string, name: string): number | undefined {
  let total: number | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const value = Number(match[3]);
    if (Number.isFinite(value)) total = (total ?? 0) + value;
  }
  return total;
}

export interface CounterSample {
  at: number;
  value: number;
}

/** Per-second rate between two samples of a counter; undefined until there are two, or after a reset. */
export function ratePerSecond(previous: CounterSample | undefined, current: CounterSample): number | undefined {
  if (!previous || current.at <= previous.at || current.value < previous.value) return undefined;
  return (current.value - previous.value) / ((current.at - previous.at) / 1000);
}
