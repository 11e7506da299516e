/**
 * The load: one process, N MQTT.js connections (MQTT 3.1.1, one per device), QoS 1 telemetry
 * paced to an aggregate rate with a bounded in-flight window per connection. Started by
 * bench/ingest.ts with `fork` (config in BENCH_LOAD_CONFIG, results over IPC), so the load
 * never shares an event loop with the server it measures — only the machine's cores.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { LatencyHistogram } from './lib/histogram.js';
import type { ChildMessage, LoadConfig, LoadResult, ParentMessage } from './lib/protocol.js';

interface Connection {
  client: MqttClient;
  topic: string;
  inflight: number;
}

const PAYLOAD_VARIANTS = 256;
const DRAIN_TIMEOUT_MS = 10_000;
/** The schedule may run at most this far ahead of what could be sent; the rest counts as missed. */
const MAX_BACKLOG_SECONDS = 0.05;
/** Set once the run is over, so the connections we close ourselves are not reported as drops. */
let ending = false;

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) resolve();
    else process.send(message, () => resolve());
  });
}

/** Ten numeric properties, varied so that twins see changes as they would from real sensors. */
function payloads(): Buffer[] {
  return Array.from({ length: PAYLOAD_VARIANTS }, () => {
    const values: Record<string, number> = {};
    for (let p = 0; p < 10; p++) values[`p${p}`] = Math.round(Math.random() * 10_000) / 100;
    return Buffer.from(JSON.stringify(values));
  });
}

async function connectAll(config: LoadConfig): Promise<Connection[]> {
  const connections: Connection[] = new Array(config.devices.length);
  let next = 0;
  const worker = async () => {
    while (next < config.devices.length) {
      const index = next++;
      const device = config.devices[index]!;
      const client = await mqtt.connectAsync(config.mqttUrl, {
        protocolVersion: 4,
        clientId: device.id,
        username: device.id,
        password: device.token,
        clean: true,
        // A dropped connection is a benchmark failure, not something to hide by reconnecting.
        reconnectPeriod: 0,
        connectTimeout: 30_000,
        keepalive: 120,
      });
      connections[index] = { client, topic: `things/${device.id}/telemetry`, inflight: 0 };
      if ((index + 1) % 250 === 0) process.stderr.write(`[${config.label}] connected ${index + 1}/${config.devices.length}\n`);
    }
  };
  await Promise.all(Array.from({ length: config.connectConcurrency }, worker));
  return connections;
}

class Run {
  private readonly bodies = payloads();
  private cursor = 0;
  private scheduled = 0;
  private inflight = 0;
  private phase: 'warmup' | 'measure' | 'drain' = 'warmup';
  private readonly startedAt = performance.now();
  private measureStartedAt = 0;
  private measureEndedAt = 0;
  private readonly measured = new LatencyHistogram();
  private interval = new LatencyHistogram();
  private sentInWindow = 0;
  private behind = 0;
  private totalSent = 0;
  private totalAcked = 0;
  private readonly errors: string[] = [];

  constructor(
    private readonly config: LoadConfig,
    private readonly connections: Connection[],
  ) {}

  /** Publishes what the schedule owes, round-robin over connections with window room. */
  tick(): void {
    const now = performance.now();
    this.advancePhase(now);
    if (this.phase === 'drain') return;
    let owed = Math.floor((this.config.rate * (now - this.startedAt)) / 1000) - this.scheduled;
    const cap = Math.max(1, Math.ceil(this.config.rate * MAX_BACKLOG_SECONDS));
    if (owed > cap) {
      if (this.phase === 'measure') this.behind += owed - cap;
      this.scheduled += owed - cap;
      owed = cap;
    }
    while (owed > 0) {
      const connection = this.nextWithRoom();
      if (!connection) break;
      this.publish(connection, now);
      this.scheduled++;
      owed--;
    }
  }

  private nextWithRoom(): Connection | undefined {
    const { connections } = this;
    for (let scanned = 0; scanned < connections.length; scanned++) {
      const connection = connections[this.cursor]!;
      this.cursor = (this.cursor + 1) % connections.length;
      if (connection.inflight < this.config.inflight) return connection;
    }
    return undefined;
  }

  private publish(connection: Connection, sentAt: number): void {
    const body = this.bodies[this.totalSent % PAYLOAD_VARIANTS]!;
    connection.inflight++;
    this.inflight++;
    this.totalSent++;
    if (this.phase === 'measure') this.sentInWindow++;
    connection.client.publish(connection.topic, body, { qos: 1 }, (error) => {
      connection.inflight--;
      this.inflight--;
      if (error) {
        if (this.errors.length < 20) this.errors.push(error.message);
        return;
      }
      this.totalAcked++;
      const latency = performance.now() - sentAt;
      this.interval.record(latency);
      if (this.phase === 'measure') this.measured.record(latency);
    });
  }

  private advancePhase(now: number): void {
    const { config } = this;
    if (this.phase === 'warmup' && now - this.startedAt >= config.warmupSeconds * 1000) {
      this.phase = 'measure';
      this.measureStartedAt = now;
      void send({ type: 'measure-start' });
    } else if (this.phase === 'measure' && now - this.measureStartedAt >= config.durationSeconds * 1000) {
      this.phase = 'drain';
      this.measureEndedAt = now;
      void send({ type: 'measure-end' });
    }
  }

  get done(): boolean {
    return this.phase === 'drain';
  }

  get pending(): number {
    return this.inflight;
  }

  progress(seconds: number): string {
    const summary = this.interval.summary();
    this.interval = new LatencyHistogram();
    const elapsed = ((performance.now() - this.startedAt) / 1000).toFixed(0).padStart(3);
    return (
      `[${this.config.label}] ${elapsed}s ${this.phase.padEnd(7)} acked ${Math.round(summary.count / seconds).toLocaleString('en-US')}/s` +
      `  p50 ${summary.p50Ms.toFixed(1)} ms  p99 ${summary.p99Ms.toFixed(1)} ms  in flight ${this.inflight}  behind ${this.behind}\n`
    );
  }

  result(connectSeconds: number): LoadResult {
    const measuredSeconds = (this.measureEndedAt - this.measureStartedAt) / 1000;
    const latency = this.measured.summary();
    return {
      label: this.config.label,
      connectSeconds,
      measuredSeconds,
      sent: this.sentInWindow,
      acked: latency.count,
      ackedPerSecond: measuredSeconds > 0 ? latency.count / measuredSeconds : 0,
      behindSchedule: this.behind,
      latency,
      totalSent: this.totalSent,
      totalAcked: this.totalAcked,
      unackedAtEnd: this.inflight,
      errors: this.errors,
    };
  }
}

function waitForGo(): Promise<void> {
  return new Promise((resolve) => {
    process.on('message', (message: ParentMessage) => {
      if (message.type === 'go') resolve();
    });
  });
}

async function drain(run: Run): Promise<void> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  while (run.pending > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
}

async function main(): Promise<void> {
  const config = JSON.parse(process.env.BENCH_LOAD_CONFIG ?? 'null') as LoadConfig | null;
  if (!config) throw new Error('BENCH_LOAD_CONFIG is not set: this script is started by bench/ingest.ts');
  const connectStarted = performance.now();
  const connections = await connectAll(config);
  const connectSeconds = (performance.now() - connectStarted) / 1000;
  for (const { client } of connections) {
    client.on('close', () => {
      if (!ending) process.stderr.write(`[${config.label}] a connection closed by the server\n`);
    });
  }
  await send({ type: 'connected', seconds: connectSeconds });
  await waitForGo();

  const run = new Run(config, connections);
  // 1 ms is the finest timer Node offers; the schedule is computed from the clock, so late
  // ticks publish more rather than drift.
  const pacer = setInterval(() => run.tick(), 1);
  const reporter = setInterval(() => process.stderr.write(run.progress(config.progressSeconds)), config.progressSeconds * 1000);
  while (!run.done) await new Promise((resolve) => setTimeout(resolve, 50));
  clearInterval(pacer);
  await drain(run);
  clearInterval(reporter);
  const result = run.result(connectSeconds);
  ending = true;
  for (const { client } of connections) client.end(true);
  await send({ type: 'result', result });
  process.exit(0);
}

main().catch(async (error: Error) => {
  process.stderr.write(`load generator: ${error.stack ?? error.message}\n`);
  await send({ type: 'failed', message: error.message });
  process.exit(1);
});
