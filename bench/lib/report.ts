/** The figures table and the JSON record of a run. */
import type { LatencySummary } from './histogram.js';
import type { ProcWindow } from './proc-stats.js';
import type { LoadResult } from './protocol.js';

export interface ThingloopExtras {
  serverAcceptedPerSecond: number;
  samplesStored: number;
  valuesStored: number;
  expectedValues: number;
  countersMatch: boolean;
  rowsInDatabase: number | null;
  batches: number;
  samplesPerBatch: number;
  batchMeanMs: number;
  batchP99UpperMs: number;
  eventLoopLagMs: { p50: number; p99: number; max: number };
  logLines: string[];
}

export interface TargetFigures {
  target: 'thingloop' | 'mosquitto';
  load: LoadResult;
  server: ProcWindow;
  generator: ProcWindow;
  thingloop?: ThingloopExtras;
  mosquitto?: { delivered: number; deliveredPerSecond: number };
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => `${n.toFixed(1)} ms`;
const mib = (bytes: number) => `${(bytes / 1048576).toFixed(0)} MiB`;
const pct = (n: number) => `${n.toFixed(0)} %`;

/** Every acknowledged message must be a row; an unacked one may be stored too (its ack was lost on close). */
function rowsCheck(rows: number | null, load: LoadResult): string {
  if (rows === null) return 'n/a';
  const ok = rows >= load.totalAcked && rows <= load.totalSent;
  return `${int(rows)} / ${int(load.totalAcked)} ${ok ? 'OK' : 'LOSS'}`;
}

function rows(figures: TargetFigures): [string, string][] {
  const { load, server, generator } = figures;
  const l: LatencySummary = load.latency;
  const out: [string, string][] = [
    ['accepted (acked) msgs/s', int(load.ackedPerSecond)],
    ['samples/s (1 per msg)', int(load.ackedPerSecond)],
    ['values/s (10 per msg)', int(load.ackedPerSecond * 10)],
    ['ack latency p50', ms(l.p50Ms)],
    ['ack latency p99', ms(l.p99Ms)],
    ['ack latency p99.9', ms(l.p999Ms)],
    ['ack latency max', ms(l.maxMs)],
    ['behind schedule (msgs)', int(load.behindSchedule)],
    ['server RSS peak', mib(server.rssPeakBytes)],
    ['server CPU avg (peak)', `${pct(server.cpuAvgPercent)} (${pct(server.cpuPeakPercent)})`],
    ['load generator CPU avg', pct(generator.cpuAvgPercent)],
  ];
  if (figures.thingloop) {
    const t = figures.thingloop;
    out.push(
      ['stored values / expected', `${int(t.valuesStored)} / ${int(t.expectedValues)} ${t.countersMatch ? 'OK' : 'MISMATCH'}`],
      ['rows in telemetry / acked msgs', rowsCheck(t.rowsInDatabase, load)],
      ['batches (samples/batch)', `${int(t.batches)} (${t.samplesPerBatch.toFixed(0)})`],
      ['batch commit mean (p99 ≤)', `${ms(t.batchMeanMs)} (${ms(t.batchP99UpperMs)})`],
      ['event-loop lag p50/p99/max', `${ms(t.eventLoopLagMs.p50)} / ${ms(t.eventLoopLagMs.p99)} / ${ms(t.eventLoopLagMs.max)}`],
    );
  }
  if (figures.mosquitto) out.push(['subscriber received msgs/s', int(figures.mosquitto.deliveredPerSecond)]);
  return out;
}

export function table(runs: TargetFigures[]): string {
  const labels = new Map<string, string[]>();
  for (const run of runs) {
    for (const [label, value] of rows(run)) {
      const values = labels.get(label) ?? runs.map(() => '');
      values[runs.indexOf(run)] = value;
      labels.set(label, values);
    }
  }
  const header = ['', ...runs.map((r) => r.target)];
  const body = [...labels].map(([label, values]) => [label, ...values]);
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) =>
    `| ${row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...body.map(line),
  ].join('\n');
}
