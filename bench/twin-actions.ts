/**
 * Twin and action benchmark (issue #3): a node in its own process, N devices (the SDK, real
 * MQTT) in a fleet process, and this orchestrator driving the HTTP API.
 *
 * 1. Actions: POST /api/v1/devices/{id}/actions/reset?wait=5s from `--concurrency` clients for
 *    `--duration` s; the device answers; round-trip latency and throughput.
 * 2. Desired state: PATCH /api/v1/devices/{id}/twin with If-Match from `--concurrency` clients;
 *    PATCH latency and throughput, PATCH → device delivery latency, and the devices' reported
 *    twin updates (each device reports the setpoint it applied).
 *
 *   npm run bench:twin -- --devices 1000 --duration 20 --concurrency 32
 */
import { Command } from 'commander';
import { FleetProcess, nowMs } from './lib/fleet-protocol.js';
import { LatencyHistogram, type LatencySummary } from './lib/histogram.js';
import { ACTUATOR_MODEL } from './lib/models.js';
import { positive } from './lib/options.js';
import { ProcSampler } from './lib/proc-stats.js';
import { type NodeProcess, registerFleet, removeData, startNode, stopNode } from './lib/thingloop-node.js';

interface Options {
  devices: number;
  duration: number;
  concurrency: number;
}

interface Phase {
  requests: number;
  failures: number;
  conflicts: number;
  perSecond: number;
  latency: LatencySummary;
  firstError?: string;
}

/** Runs `call` from `concurrency` workers for `seconds`; each call returns ok, conflict or an error text. */
async function drive(seconds: number, concurrency: number, call: (worker: number) => Promise<true | 'conflict' | string>): Promise<Phase> {
  const histogram = new LatencyHistogram();
  let failures = 0;
  let conflicts = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        const outcome = await call(worker).catch((error: Error) => error.message);
        if (outcome === true) histogram.record(performance.now() - t0);
        else if (outcome === 'conflict') conflicts++;
        else {
          failures++;
          firstError ??= outcome;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const latency = histogram.summary();
  return {
    requests: latency.count,
    failures,
    conflicts,
    perSecond: latency.count / elapsed,
    latency,
    ...(firstError ? { firstError } : {}),
  };
}

function headers(node: NodeProcess, extra: Record<string, string> = {}): Record<string, string> {
  return { authorization: `Bearer ${node.adminKey}`, ...extra };
}

const fmt = (l: LatencySummary) => `p50 ${l.p50Ms.toFixed(1)} ms, p99 ${l.p99Ms.toFixed(1)} ms, max ${l.maxMs.toFixed(1)} ms`;

async function main(): Promise<void> {
  const options = new Command()
    .name('bench:twin')
    .description('Twin (desired PATCH, reported) and action round-trip benchmark with N SDK devices over MQTT')
    .option('--devices <n>', 'simulated devices (SDK connections)', positive, 1000)
    .option('--duration <s>', 'seconds per phase', positive, 20)
    .option('--concurrency <n>', 'HTTP requests in flight', positive, 32)
    .parse()
    .opts<Options>();

  const node = await startNode();
  const sampler = new ProcSampler(node.pid);
  let fleet: FleetProcess | undefined;
  try {
    const devices = await registerFleet(node, options.devices, 16, ACTUATOR_MODEL);
    fleet = await FleetProcess.start({ mqttUrl: node.mqttUrl, devices, connectConcurrency: 50 });
    process.stderr.write(`[fleet] ${options.devices} SDK devices connected in ${fleet.connectSeconds.toFixed(1)} s\n`);
    const pick = () => devices[Math.floor(Math.random() * devices.length)]!.id;

    // 1. Actions with ?wait=5s.
    sampler.begin();
    sampler.mark();
    const actions = await drive(options.duration, options.concurrency, async () => {
      const response = await fetch(`${node.httpUrl}/api/v1/devices/${pick()}/actions/reset?wait=5s`, {
        method: 'POST',
        headers: headers(node, { 'content-type': 'application/json' }),
        body: '{}',
      });
      const body = (await response.json()) as { status?: string; message?: string };
      return response.status === 200 && body.status === 'succeeded' ? true : `HTTP ${response.status} ${body.status ?? body.message}`;
    });
    const actionCpu = sampler.window();

    // 2. Desired PATCHes with If-Match; each device is owned by one worker, so its version is known.
    const versions = new Map<string, number>();
    const sentAt = new Map<number, number>();
    let nextSetpoint = 1;
    sampler.mark();
    const patches = await drive(options.duration, options.concurrency, async (worker) => {
      const mine = devices.filter((_, i) => i % options.concurrency === worker);
      const id = mine[Math.floor(Math.random() * mine.length)]!.id;
      let version = versions.get(id);
      if (version === undefined) {
        const twin = await fetch(`${node.httpUrl}/api/v1/devices/${id}/twin`, { headers: headers(node) });
        version = ((await twin.json()) as { version: number }).version;
      }
      const setpoint = nextSetpoint++;
      sentAt.set(setpoint, nowMs());
      const response = await fetch(`${node.httpUrl}/api/v1/devices/${id}/twin`, {
        method: 'PATCH',
        headers: headers(node, { 'content-type': 'application/json', 'if-match': `"${version}"` }),
        body: JSON.stringify({ desired: { setpoint } }),
      });
      const body = (await response.json()) as { version?: number; message?: string };
      if (response.status === 409) {
        versions.delete(id);
        return 'conflict';
      }
      if (response.status !== 200 || body.version === undefined) return `HTTP ${response.status} ${body.message}`;
      versions.set(id, body.version);
      return true;
    });
    const patchCpu = sampler.window();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const report = await fleet.ask({ type: 'report' }, 'report');
    const delivery = new LatencyHistogram();
    for (const [setpoint, at] of report.desiredArrivals) {
      const sent = sentAt.get(setpoint);
      if (sent !== undefined) delivery.record(at - sent);
    }
    sampler.stop();

    const lines = [
      `Twin and action benchmark — ${options.devices} SDK devices over MQTT, ${options.concurrency} HTTP requests in flight, ${options.duration} s per phase`,
      '',
      '| measure | figure |',
      '| --- | ---: |',
      `| action round trips/s (POST …/actions/reset?wait=5s → device → 200) | ${actions.perSecond.toFixed(0)} |`,
      `| action round trip | ${fmt(actions.latency)} |`,
      `| action failures | ${actions.failures}${actions.firstError ? ` (${actions.firstError})` : ''} |`,
      `| actions answered by devices | ${report.actions} |`,
      `| server CPU during actions (avg / peak) | ${actionCpu.cpuAvgPercent.toFixed(0)} % / ${actionCpu.cpuPeakPercent.toFixed(0)} % |`,
      `| desired PATCHes/s (If-Match) | ${patches.perSecond.toFixed(0)} |`,
      `| PATCH latency | ${fmt(patches.latency)} |`,
      `| PATCH conflicts (409) / failures | ${patches.conflicts} / ${patches.failures}${patches.firstError ? ` (${patches.firstError})` : ''} |`,
      `| PATCH → desired at the device | ${fmt(delivery.summary())} (${delivery.count} of ${patches.requests} seen) |`,
      `| reported twin updates (device → node, QoS 1 acked) | ${report.reported} (${(report.reported / options.duration).toFixed(0)}/s) |`,
      `| server CPU during PATCHes (avg / peak) | ${patchCpu.cpuAvgPercent.toFixed(0)} % / ${patchCpu.cpuPeakPercent.toFixed(0)} % |`,
      `| server RSS peak | ${(patchCpu.rssPeakBytes / 1048576).toFixed(0)} MiB |`,
    ];
    process.stdout.write(`\n${lines.join('\n')}\n`);
  } finally {
    await fleet?.stop();
    await stopNode(node);
    removeData(node);
  }
}

main().catch((error: Error) => {
  process.stderr.write(`bench:twin: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
