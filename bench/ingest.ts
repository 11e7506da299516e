/**
 * Ingest benchmark: how many QoS 1 telemetry messages a Thingloop node accepts (stored
 * durably before the PUBACK) and how fast it acknowledges them, next to a private Mosquitto
 * under the same load. Three processes: this orchestrator, the node, the load generator.
 *
 *   npm run bench:ingest -- --devices 1000 --rate 20000 --duration 30
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Command } from 'commander';
import { runLoad } from './lib/load.js';
import { findMosquitto, startMosquitto, stopMosquitto, subscribe } from './lib/mosquitto.js';
import { positive } from './lib/options.js';
import { ProcSampler, type ProcWindow } from './lib/proc-stats.js';
import { histogram, histogramDelta, parsePrometheus, type Sample, total } from './lib/prometheus.js';
import type { LoadConfig, LoadResult } from './lib/protocol.js';
import { type TargetFigures, type ThingloopExtras, table } from './lib/report.js';
import {
  type Credentials,
  type NodeProcess,
  PROPERTY_COUNT,
  registerFleet,
  removeData,
  scrape,
  startNode,
  stopNode,
} from './lib/thingloop-node.js';

interface Options {
  devices: number;
  rate: number;
  duration: number;
  warmup: number;
  inflight: number;
  skipMosquitto: boolean;
  connectConcurrency: number;
  registerConcurrency: number;
  progress: number;
  cpuProf?: string;
  keepData: boolean;
  results: string;
}

function parseOptions(): Options {
  return new Command()
    .name('bench:ingest')
    .description('Ingest benchmark: Thingloop node (separate process) under MQTT QoS 1 load from a separate generator, vs. Mosquitto')
    .option('--devices <n>', 'devices = MQTT connections', positive, 1000)
    .option('--rate <msgs/s>', 'target aggregate publish rate', positive, 20_000)
    .option('--duration <s>', 'measured seconds (after warm-up)', positive, 30)
    .option('--warmup <s>', 'seconds of load before measuring', positive, 5)
    .option('--inflight <n>', 'unacknowledged QoS 1 publishes per connection', positive, 10)
    .option('--skip-mosquitto', 'do not run the Mosquitto comparison', false)
    .option('--connect-concurrency <n>', 'MQTT connections opened at once', positive, 50)
    .option('--register-concurrency <n>', 'device registrations in flight', positive, 16)
    .option('--progress <s>', 'seconds between progress lines', positive, 5)
    .option('--cpu-prof <dir>', 'run the node with --cpu-prof, writing the V8 profile into <dir>')
    .option('--keep-data', "keep the node's temporary data directory", false)
    .option('--results <dir>', 'where the JSON result goes', fileURLToPath(new URL('results/', import.meta.url)))
    .addHelpText('after', '\nExample:\n  npm run bench:ingest -- --devices 1000 --rate 20000 --duration 30\n')
    .parse()
    .opts<Options>();
}

function loadConfig(options: Options, label: string, mqttUrl: string, devices: Credentials[]): LoadConfig {
  return {
    label,
    mqttUrl,
    devices,
    rate: options.rate,
    warmupSeconds: options.warmup,
    durationSeconds: options.duration,
    inflight: options.inflight,
    connectConcurrency: options.connectConcurrency,
    progressSeconds: options.progress,
  };
}

/** Samples both the server and the generator, windowed on the generator's measure phase. */
async function measuredLoad(config: LoadConfig, serverPid: number, onWindow: { start?(): Promise<void>; end?(): Promise<void> } = {}) {
  const server = new ProcSampler(serverPid);
  let generator: ProcSampler | undefined;
  let serverWindow: ProcWindow | undefined;
  let generatorWindow: ProcWindow | undefined;
  server.begin();
  const load = await runLoad(config, {
    spawned: (pid) => {
      generator = new ProcSampler(pid);
      generator.begin();
    },
    connected: (seconds) => {
      process.stderr.write(`[${config.label}] ${config.devices.length} connections up in ${seconds.toFixed(1)} s\n`);
    },
    measureStart: async () => {
      server.mark();
      generator?.mark();
      await onWindow.start?.();
    },
    measureEnd: async () => {
      serverWindow = server.window();
      generatorWindow = generator?.window();
      await onWindow.end?.();
    },
  });
  server.stop();
  generator?.stop();
  const empty: ProcWindow = { cpuAvgPercent: 0, cpuPeakPercent: 0, rssPeakBytes: 0, rssEndBytes: 0 };
  return { load, server: serverWindow ?? empty, generator: generatorWindow ?? empty };
}

function countRows(dataDir: string): number | null {
  try {
    const db = new Database(join(dataDir, 'thingloop.db'), { readonly: true });
    const row = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM telemetry').get();
    db.close();
    return row?.n ?? null;
  } catch (error) {
    process.stderr.write(`[thingloop] could not count stored rows: ${(error as Error).message}\n`);
    return null;
  }
}

function thingloopExtras(load: LoadResult, before: Sample[], after: Sample[], final: Sample[], node: NodeProcess): ThingloopExtras {
  const delta = (name: string) => total(after, name) - total(before, name);
  const batch = histogramDelta(histogram(after, 'thingloop_batch_write_seconds'), histogram(before, 'thingloop_batch_write_seconds'));
  const lag = (name: string) => total(after, `thingloop_nodejs_eventloop_lag_${name}_seconds`) * 1000;
  const valuesStored = total(final, 'thingloop_values_stored_total');
  const expectedValues = load.totalAcked * PROPERTY_COUNT;
  return {
    serverAcceptedPerSecond: delta('thingloop_messages_accepted_total') / load.measuredSeconds,
    samplesStored: total(final, 'thingloop_samples_stored_total'),
    valuesStored,
    expectedValues,
    // Unacked messages may still have been stored (the ack was lost on close), hence ≥ on that side.
    countersMatch: valuesStored >= expectedValues && valuesStored <= load.totalSent * PROPERTY_COUNT,
    rowsInDatabase: null,
    batches: batch.count,
    samplesPerBatch: batch.count > 0 ? delta('thingloop_samples_stored_total') / batch.count : 0,
    batchMeanMs: batch.meanSeconds * 1000,
    batchP99UpperMs: batch.p99UpperSeconds * 1000,
    eventLoopLagMs: { p50: lag('p50'), p99: lag('p99'), max: lag('max') },
    logLines: node.logLines.slice(0, 20),
  };
}

async function benchThingloop(options: Options): Promise<TargetFigures> {
  process.stderr.write('[thingloop] starting the node\n');
  if (options.cpuProf) mkdirSync(options.cpuProf, { recursive: true });
  const node = await startNode({ cpuProfDir: options.cpuProf });
  try {
    const fleet = await registerFleet(node, options.devices, options.registerConcurrency);
    let before: Sample[] = [];
    let after: Sample[] = [];
    // Scraping also resets the event-loop delay histogram, so the lag figures cover the window.
    const figures = await measuredLoad(loadConfig(options, 'thingloop', node.mqttUrl, fleet), node.pid, {
      start: async () => {
        before = parsePrometheus(await scrape(node));
      },
      end: async () => {
        after = parsePrometheus(await scrape(node));
      },
    });
    const final = parsePrometheus(await scrape(node));
    const extras = thingloopExtras(figures.load, before, after, final, node);
    const profile = await stopNode(node, options.cpuProf);
    if (profile) process.stderr.write(`[thingloop] CPU profile: ${profile}\n`);
    extras.rowsInDatabase = countRows(node.dataDir);
    return { target: 'thingloop', ...figures, thingloop: extras };
  } finally {
    await stopNode(node);
    if (!options.keepData) removeData(node);
  }
}

async function benchMosquitto(options: Options, binary: string): Promise<TargetFigures> {
  process.stderr.write(`[mosquitto] starting a private ${binary}\n`);
  const broker = await startMosquitto(binary);
  try {
    const subscriber = await subscribe(broker.url);
    // Mosquitto here accepts anyone: the credentials only keep the load identical.
    const fleet = Array.from({ length: options.devices }, (_, i) => ({ id: `bench-${String(i).padStart(6, '0')}`, token: 'unused' }));
    let atStart = 0;
    let atEnd = 0;
    const figures = await measuredLoad(loadConfig(options, 'mosquitto', broker.url, fleet), broker.pid, {
      start: async () => {
        atStart = subscriber.received();
      },
      end: async () => {
        atEnd = subscriber.received();
      },
    });
    await subscriber.client.endAsync();
    const delivered = atEnd - atStart;
    return { target: 'mosquitto', ...figures, mosquitto: { delivered, deliveredPerSecond: delivered / figures.load.measuredSeconds } };
  } finally {
    await stopMosquitto(broker);
  }
}

function machine() {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 1073741824) * 10) / 10,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
}

function writeResult(options: Options, runs: TargetFigures[]): string {
  mkdirSync(options.results, { recursive: true });
  const file = join(options.results, `ingest-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const [thingloop, mosquitto] = runs;
  const ratio = thingloop && mosquitto ? thingloop.load.ackedPerSecond / mosquitto.load.ackedPerSecond : null;
  const { cpuProf: _profileDir, ...settings } = options;
  writeFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), machine: machine(), settings, ratio, runs }, null, 2)}\n`);
  return file;
}

async function main(): Promise<void> {
  const options = parseOptions();
  const m = machine();
  process.stderr.write(`machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, Node ${m.node}\n`);
  const runs = [await benchThingloop(options)];
  const mosquitto = findMosquitto();
  if (!options.skipMosquitto && mosquitto) runs.push(await benchMosquitto(options, mosquitto));
  else if (!options.skipMosquitto) process.stderr.write('[mosquitto] no mosquitto binary found: comparison skipped\n');

  const target = `${options.devices} devices, target ${options.rate.toLocaleString('en-US')} msgs/s, ${options.inflight} in flight/connection, ${options.duration} s measured after ${options.warmup} s warm-up`;
  process.stdout.write(`\nIngest benchmark — ${target}\n\n${table(runs)}\n`);
  const [thingloop, reference] = runs;
  if (thingloop && reference) {
    const ratio = thingloop.load.ackedPerSecond / reference.load.ackedPerSecond;
    process.stdout.write(`\nThingloop / Mosquitto accepted msgs/s: ${ratio.toFixed(2)}\n`);
  }
  for (const run of runs)
    if (run.load.errors.length > 0) process.stdout.write(`\n${run.target} publish errors: ${run.load.errors.join('; ')}\n`);
  process.stdout.write(`\nresult: ${writeResult(options, runs)}\n`);
}

main().catch((error: Error) => {
  process.stderr.write(`bench:ingest: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
