/**
 * TLS benchmark: the cost of encryption on one node, in the same run.
 * 1. QoS 1 ingest throughput over MQTTS vs plaintext MQTT (same node, same fleet, same load; the
 *    ratio is the figure), from a separate load-generator process as in bench:ingest.
 * 2. Connection set-up rate: mTLS logins (client certificate, no token) per second, next to TLS
 *    with a token and plaintext with a token, each connection opened, CONNACKed and closed.
 * Figures printed and appended to docs/benchmarks.md (--no-write to skip).
 *
 *   npm run bench:tls -- --devices 200 --rate 20000 --duration 15 --connections 1000
 */
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import mqtt from 'mqtt';
import { DevCertificateAuthority } from '../src/transport/tls/index.js';
import { runLoad } from './lib/load.js';
import { positive } from './lib/options.js';
import { freePort } from './lib/processes.js';
import type { LoadConfig, LoadResult } from './lib/protocol.js';
import { type Credentials, type NodeProcess, registerFleet, removeData, startNode, stopNode } from './lib/thingloop-node.js';

interface Options {
  devices: number;
  rate: number;
  duration: number;
  warmup: number;
  inflight: number;
  connections: number;
  concurrency: number;
  write: boolean;
}

const options = new Command()
  .name('bench:tls')
  .description('Ingest over MQTTS vs plaintext MQTT (ratio) and the mTLS connection set-up rate, appended to docs/benchmarks.md')
  .option('--devices <n>', 'devices = MQTT connections of the ingest load', positive, 200)
  .option(
    '--rate <msgs/s>',
    'target aggregate publish rate (above what the node sustains, so both runs measure capacity)',
    positive,
    20_000,
  )
  .option('--duration <s>', 'measured seconds per ingest run', positive, 15)
  .option('--warmup <s>', 'seconds of load before measuring', positive, 3)
  .option('--inflight <n>', 'unacknowledged QoS 1 publishes per connection', positive, 10)
  .option('--connections <n>', 'connections opened per set-up run', positive, 1_000)
  .option('--concurrency <n>', 'connections being set up at once', positive, 20)
  .option('--no-write', 'do not append the figures to docs/benchmarks.md')
  .parse()
  .opts<Options>();

function loadConfig(label: string, mqttUrl: string, devices: Credentials[]): LoadConfig {
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

interface SetupRun {
  label: string;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
}

/** Opens `count` connections, `concurrency` at a time; each is done at its CONNACK and closed. */
async function setupRate(label: string, count: number, connect: (index: number) => Promise<mqtt.MqttClient>): Promise<SetupRun> {
  const times: number[] = [];
  let failed = 0;
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < count) {
      const index = next++;
      const at = performance.now();
      try {
        const client = await connect(index);
        times.push(performance.now() - at);
        await client.endAsync(true);
      } catch {
        failed += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? 0;
  process.stderr.write(`[setup] ${label}: ${(times.length / seconds).toFixed(0)} connections/s, ${failed} failed\n`);
  return { label, perSecond: times.length / seconds, p50Ms: at(0.5), p99Ms: at(0.99), failed };
}

async function main(): Promise<void> {
  const pkiDir = mkdtempSync(join(tmpdir(), 'thingloop-bench-tls-'));
  const ca = await DevCertificateAuthority.create({ days: 2 });
  const server = await ca.issueServer(['localhost', '127.0.0.1'], { days: 2 });
  const file = (name: string, text: string) => {
    const path = join(pkiDir, name);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };
  const caPath = file('ca.pem', ca.certificatePem);
  const mqttsPort = await freePort();
  // The node is `thingloop serve` in its own process; TLS comes in through its environment, and the
  // load generator trusts the dev CA through NODE_EXTRA_CA_CERTS (both inherit this environment).
  Object.assign(process.env, {
    THINGLOOP_TLS_CERT: file('server.pem', server.certificatePem),
    THINGLOOP_TLS_KEY: file('server-key.pem', server.privateKeyPem),
    THINGLOOP_TLS_CA: caPath,
    THINGLOOP_MQTTS_PORT: String(mqttsPort),
    THINGLOOP_HTTPS_PORT: String(await freePort()),
    NODE_EXTRA_CA_CERTS: caPath,
  });
  let node: NodeProcess | undefined;
  try {
    node = await startNode();
    const started = node;
    const fleet = await registerFleet(started, options.devices, 16);
    const mqttsUrl = `mqtts://127.0.0.1:${mqttsPort}`;
    process.stderr.write('[ingest] plaintext MQTT\n');
    const plain: LoadResult = await runLoad(loadConfig('mqtt', started.mqttUrl, fleet));
    process.stderr.write('[ingest] MQTT over TLS\n');
    const secure: LoadResult = await runLoad(loadConfig('mqtts', mqttsUrl, fleet));

    // One client certificate per device of the fleet (ECDSA P-256, like `thingloop certs dev`).
    const certificates = await Promise.all(fleet.map((device) => ca.issueDevice(device.id, { days: 2 })));
    const base = { reconnectPeriod: 0, protocolVersion: 4 as const, connectTimeout: 30_000 };
    const device = (index: number) => fleet[index % fleet.length] as Credentials;
    const setups = [
      await setupRate('plaintext, token', options.connections, (i) =>
        mqtt.connectAsync(started.mqttUrl, { ...base, clientId: `setup-plain-${i}`, username: device(i).id, password: device(i).token }),
      ),
      await setupRate('TLS, token', options.connections, (i) =>
        mqtt.connectAsync(mqttsUrl, {
          ...base,
          ca: ca.certificatePem,
          clientId: `setup-tls-${i}`,
          username: device(i).id,
          password: device(i).token,
        }),
      ),
      await setupRate('mTLS, client certificate', options.connections, (i) => {
        const issued = certificates[i % certificates.length];
        return mqtt.connectAsync(mqttsUrl, {
          ...base,
          ca: ca.certificatePem,
          cert: issued?.certificatePem,
          key: issued?.privateKeyPem,
          clientId: `setup-mtls-${i}`,
        });
      }),
    ];

    const ratio = secure.ackedPerSecond / plain.ackedPerSecond;
    const row = (r: LoadResult) =>
      `| ${r.label} | ${r.ackedPerSecond.toFixed(0)} | ${r.latency.p50Ms.toFixed(1)} | ${r.latency.p99Ms.toFixed(1)} | ${r.unackedAtEnd} |`;
    const lines = [
      '',
      `## TLS (bench:tls), ${new Date().toISOString().slice(0, 10)}`,
      '',
      `${cpus().length} cores, Node ${process.version}. One node process (\`thingloop serve\` with --tls-cert/--tls-key/--tls-ca, a dev CA's ECDSA P-256 certificates, TLS 1.3), the load generator in a second process and the set-up clients in this one, all on this machine. Ingest: ${fleet.length} MQTT devices, QoS 1, 10-property samples, target ${options.rate} msg/s (above capacity), ${options.inflight} in flight per connection, ${options.duration} s measured after ${options.warmup} s warm-up; plaintext first, then MQTTS, on the same node and fleet.`,
      '',
      '| listener | acknowledged msg/s | p50 ms | p99 ms | unacked at end |',
      '| --- | ---: | ---: | ---: | ---: |',
      row(plain),
      row(secure),
      '',
      `Throughput over TLS / plaintext: **${ratio.toFixed(2)}**.`,
      '',
      `Connection set-up: ${options.connections} connections per run, ${options.concurrency} at a time, each done at its CONNACK and then closed (the client's handshake work runs on the same cores).`,
      '',
      '| login | connections/s | p50 ms | p99 ms | failed |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...setups.map((s) => `| ${s.label} | ${s.perSecond.toFixed(0)} | ${s.p50Ms.toFixed(1)} | ${s.p99Ms.toFixed(1)} | ${s.failed} |`),
      '',
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (options.write) appendFileSync(fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url)), lines.join('\n'));
  } finally {
    if (node) {
      await stopNode(node);
      removeData(node);
    }
    rmSync(pkiDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    process.stderr.write(`bench:tls failed: ${error.stack ?? error.message}\n`);
    process.exit(1);
  },
);
