/**
 * Hostile-load benchmark (issue #17): QoS 1 ingest of well-behaved devices while 1,000 hostile
 * connections hammer the same node, as a ratio to the same ingest without them, and the node's
 * RSS before and after. Four processes: this orchestrator, the node, the load generator and the
 * hostile clients (this file again, with --worker), so the attack does not share the measuring
 * process's event loop. They all share the machine's cores, which the figures state.
 *
 *   npm run bench:hostile -- --devices 200 --rate 5000 --duration 20 --hostile 1000
 */
import { fork } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import mqttPacket from 'mqtt-packet';
import { runLoad } from './lib/load.js';
import { positive } from './lib/options.js';
import { exitAsError, track } from './lib/processes.js';
import { parsePrometheus, total } from './lib/prometheus.js';
import type { LoadConfig, LoadResult } from './lib/protocol.js';
import { type Credentials, registerFleet, removeData, scrape, startNode, stopNode } from './lib/thingloop-node.js';

interface Options {
  devices: number;
  rate: number;
  duration: number;
  warmup: number;
  inflight: number;
  hostile: number;
  write: boolean;
  worker?: string;
}

function parseOptions(): Options {
  return new Command()
    .name('bench:hostile')
    .description('Ingest of well-behaved MQTT devices with and without 1,000 hostile connections against the same node')
    .option('--devices <n>', 'well-behaved devices = MQTT connections', positive, 200)
    .option('--rate <msgs/s>', 'target aggregate publish rate of the well-behaved devices', positive, 5_000)
    .option('--duration <s>', 'measured seconds per phase', positive, 20)
    .option('--warmup <s>', 'seconds of load before measuring', positive, 3)
    .option('--inflight <n>', 'unacknowledged QoS 1 publishes per connection', positive, 10)
    .option('--hostile <n>', 'hostile connections kept open at once', positive, 1_000)
    .option('--no-write', 'do not append the figures to docs/benchmarks.md')
    .option('--worker <json>', '(internal) run as the hostile clients with this configuration')
    .addHelpText('after', '\nExample:\n  npm run bench:hostile -- --devices 200 --rate 5000 --duration 20 --hostile 1000\n')
    .parse()
    .opts<Options>();
}

interface HostileConfig {
  mqttUrl: string;
  connections: number;
  /** A registered device whose credentials the oversized publishers use. */
  device: Credentials;
}

/** Partial CONNECTs that announce 200 MB, wrong passwords in a loop, and 100 MB publishes from a real device. */
function runHostileClients(config: HostileConfig): void {
  const url = new URL(config.mqttUrl);
  const port = Number(url.port);
  let attempts = 0;
  const third = Math.floor(config.connections / 3);
  const open = (kind: 'partial-connect' | 'wrong-credentials' | 'oversized-publish') => {
    attempts++;
    const socket: Socket = connect(port, url.hostname);
    socket.on('error', () => undefined);
    // Every hostile client comes back as soon as it is thrown off: the pressure never lets up.
    socket.on('close', () => setTimeout(() => open(kind), 50));
    socket.on('connect', () => {
      if (kind === 'partial-connect') {
        // CONNECT, remaining length 200 MB, then a few bytes and silence.
        socket.write(Buffer.from([0x10, 0x80, 0x84, 0xaf, 0x5f, 0x00, 0x04]));
      } else if (kind === 'wrong-credentials') {
        socket.write(
          mqttPacket.generate({
            cmd: 'connect',
            protocolId: 'MQTT',
            protocolVersion: 4,
            clean: true,
            clientId: `guess-${attempts}`,
            keepalive: 30,
            username: config.device.id,
            password: Buffer.from(`wrong-${attempts}`),
          }),
        );
      } else {
        socket.write(
          mqttPacket.generate({
            cmd: 'connect',
            protocolId: 'MQTT',
            protocolVersion: 4,
            clean: true,
            clientId: `oversized-${attempts}`,
            keepalive: 30,
            username: config.device.id,
            password: Buffer.from(config.device.token),
          }),
        );
        // A PUBLISH announcing 100 MB, sent after the CONNACK would arrive.
        setTimeout(() => {
          if (!socket.destroyed) socket.write(Buffer.from([0x32, 0x80, 0x80, 0x80, 0x30, 0x00, 0x10]));
        }, 100);
      }
    });
  };
  for (let i = 0; i < config.connections; i++)
    open(i < third ? 'partial-connect' : i < 2 * third ? 'wrong-credentials' : 'oversized-publish');
  setInterval(() => process.send?.({ attempts }), 1000);
}

function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : Number.NaN;
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
    connectConcurrency: 50,
    progressSeconds: 5,
  };
}

const refusalsBy = (text: string) => {
  const samples = parsePrometheus(text).filter((s) => s.name === 'thingloop_refusals_total');
  const byReason: Record<string, number> = {};
  for (const sample of samples) byReason[sample.labels.reason ?? '?'] = (byReason[sample.labels.reason ?? '?'] ?? 0) + sample.value;
  return byReason;
};

async function main(): Promise<void> {
  const options = parseOptions();
  if (options.worker) {
    runHostileClients(JSON.parse(options.worker) as HostileConfig);
    return;
  }
  const node = await startNode();
  try {
    const fleet = await registerFleet(node, options.devices + 1, 16);
    const [attacker, ...devices] = fleet as [Credentials, ...Credentials[]];
    const rssStart = rssMiB(node.pid);

    process.stderr.write('[bench] phase 1: well-behaved devices alone\n');
    const quiet: LoadResult = await runLoad(loadConfig(options, 'alone', node.mqttUrl, devices));
    const rssBefore = rssMiB(node.pid);

    process.stderr.write(`[bench] phase 2: the same with ${options.hostile} hostile connections\n`);
    const worker = track(
      fork(
        fileURLToPath(import.meta.url),
        ['--worker', JSON.stringify({ mqttUrl: node.mqttUrl, connections: options.hostile, device: attacker })],
        {
          execArgv: ['--import', 'tsx'],
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        },
      ),
    );
    let attempts = 0;
    worker.on('message', (message: { attempts: number }) => {
      attempts = message.attempts;
    });
    void exitAsError(worker, 'the hostile clients').catch((error: Error) => process.stderr.write(`${error.message}\n`));
    // Let the attack build up to its full size before the devices start.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const attemptsAtStart = attempts;
    const attacked: LoadResult = await runLoad(loadConfig(options, 'under attack', node.mqttUrl, devices));
    const rssUnderAttack = rssMiB(node.pid);
    const attemptsDuring = attempts - attemptsAtStart;
    worker.kill('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    const rssAfter = rssMiB(node.pid);
    const metricsText = await scrape(node);
    const refusals = refusalsBy(metricsText);
    const stored = total(parsePrometheus(metricsText), 'thingloop_samples_stored_total');

    const ratio = attacked.ackedPerSecond / quiet.ackedPerSecond;
    const lines = [
      '',
      `## Hostile load (bench:hostile), ${new Date().toISOString().slice(0, 10)}`,
      '',
      `${cpus().length} cores, Node ${process.version}. One node process (\`thingloop serve\`, defaults), the load generator, and the hostile clients in a fourth process, all on this machine: the attack's CPU comes out of the same cores the node uses. Well-behaved: ${devices.length} MQTT devices, QoS 1, 10-property samples, target ${options.rate} msg/s, ${options.inflight} in flight per connection, ${options.duration} s measured after ${options.warmup} s warm-up. Hostile: ${options.hostile} connections kept open (a third partial CONNECTs announcing 200 MB, a third wrong passwords, a third a real device's CONNECT followed by a PUBLISH announcing 100 MB), each reconnecting 50 ms after it is thrown off; all from 127.0.0.1, so the guessing brake applies to the whole attack after its first 20 failures.`,
      '',
      '| phase | acknowledged msg/s | p50 ms | p99 ms | node RSS MiB |',
      '| --- | ---: | ---: | ---: | ---: |',
      `| alone | ${quiet.ackedPerSecond.toFixed(0)} | ${quiet.latency.p50Ms.toFixed(1)} | ${quiet.latency.p99Ms.toFixed(1)} | ${rssBefore.toFixed(0)} |`,
      `| under attack | ${attacked.ackedPerSecond.toFixed(0)} | ${attacked.latency.p50Ms.toFixed(1)} | ${attacked.latency.p99Ms.toFixed(1)} | ${rssUnderAttack.toFixed(0)} |`,
      '',
      `Ratio under attack / alone: **${ratio.toFixed(2)}** (goal ≥ 0.8). Node RSS: ${rssStart.toFixed(0)} MiB after start-up, ${rssBefore.toFixed(0)} MiB after the quiet phase, ${rssUnderAttack.toFixed(0)} MiB at the end of the attack, ${rssAfter.toFixed(0)} MiB 12 s after it stopped. Hostile connection attempts during the measured phase: ${attemptsDuring.toLocaleString('en-US')}. Refusals counted by the node: ${Object.entries(
        refusals,
      )
        .map(([reason, count]) => `${reason} ${count.toLocaleString('en-US')}`)
        .join(
          ', ',
        )}. Samples stored in all: ${stored.toLocaleString('en-US')}; unacknowledged at the end of each phase: ${quiet.unackedAtEnd} and ${attacked.unackedAtEnd}.`,
      '',
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (options.write) appendFileSync(fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url)), lines.join('\n'));
  } finally {
    await stopNode(node);
    removeData(node);
  }
}

main().then(
  () => {
    if (!parseOptions().worker) process.exit(0);
  },
  (error: Error) => {
    process.stderr.write(`bench:hostile failed: ${error.stack ?? error.message}\n`);
    process.exit(1);
  },
);
