/**
 * CoAP telemetry benchmark (issue #11): many CoAP devices (the `coap` package's client, one UDP
 * socket each) POST confirmable telemetry to a node, each waiting for its 2.04 (sent once the
 * sample is committed) before the next. Reports messages/s, the POST → 2.04 round trip p50/p99
 * and the process's RSS. Clients and node share this process (and its CPU).
 *
 *   node --import tsx bench/bindings-coap.ts [--clients 50] [--duration 10]
 *
 * `runCoapBench(options)` is what `npm run bench:bindings` calls.
 */
import { createSocket } from 'node:dgram';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, type IncomingMessage } from 'coap';
import { Command } from 'commander';
import { resolveConfig, startCloudNode } from '../src/node/index.js';
import { createLogger } from '../src/observability/index.js';
import { LatencyHistogram } from './lib/histogram.js';
import { positive } from './lib/options.js';

export interface CoapBenchOptions {
  clients?: number;
  durationS?: number;
}

const ADMIN_KEY = 'bench-admin-key-0123456789';
const MODEL = {
  '@context': 'https://www.w3.org/2022/wot/td/v1.1',
  '@type': 'tm:ThingModel',
  title: 'CoAP bench tank',
  properties: { level: { type: 'number', minimum: 0, maximum: 100 }, temperature: { type: 'number' } },
};

function post(agent: Agent, port: number, path: string, token: string, body: Buffer): Promise<string> {
  // The device token travels in CoAP option 65003 (see README, Device bindings: CoAP).
  const options: Record<string, Buffer | string> = { '65003': Buffer.from(token), 'Content-Format': 'application/json' };
  return new Promise((resolve, reject) => {
    const req = agent.request({ hostname: '127.0.0.1', port, method: 'POST', pathname: path, confirmable: true, options });
    req.on('response', (res: IncomingMessage) => resolve(res.code));
    req.on('error', reject);
    req.on('timeout', reject);
    req.end(body);
  });
}

export async function runCoapBench(options: CoapBenchOptions = {}): Promise<Record<string, number | string>> {
  const clients = options.clients ?? 50;
  const durationS = options.durationS ?? 10;
  const dataDir = join(tmpdir(), `thingloop-bench-coap-${process.pid}`);
  const { config } = resolveConfig({ env: {} });
  const node = await startCloudNode(
    {
      ...config,
      dataDir,
      httpPort: 0,
      httpHost: '127.0.0.1',
      mqttPort: 0,
      mqttHost: '127.0.0.1',
      coapPort: 0,
      coapHost: '127.0.0.1',
      adminKey: ADMIN_KEY,
      logLevel: 'silent',
    },
    { logger: createLogger({ level: 'silent' }) },
  );
  const sockets: ReturnType<typeof createSocket>[] = [];
  try {
    const port = node.coapPort;
    if (port === undefined) throw new Error('the node runs no CoAP listener');
    await node.models.put('coap-bench-tank', MODEL);
    const devices: { id: string; token: string; agent: Agent }[] = [];
    for (let i = 0; i < clients; i++) {
      const id = `coap-bench-${i}`;
      const { token } = await node.registry.register({ id, model: 'coap-bench-tank', binding: { protocol: 'coap' } });
      const socket = createSocket('udp4');
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
      sockets.push(socket);
      devices.push({ id, token, agent: new Agent({ type: 'udp4', socket }) });
    }
    const histogram = new LatencyHistogram();
    let sent = 0;
    let failed = 0;
    const started = performance.now();
    const deadline = started + durationS * 1000;
    await Promise.all(
      devices.map(async (device, index) => {
        let level = index % 100;
        while (performance.now() < deadline) {
          level = (level + 1) % 100;
          const body = Buffer.from(JSON.stringify({ level, temperature: 15 + (level % 10) }));
          const at = performance.now();
          try {
            const code = await post(device.agent, port, `/things/${device.id}/telemetry`, device.token, body);
            if (code === '2.04') {
              histogram.record(performance.now() - at);
              sent++;
            } else failed++;
          } catch {
            failed++;
          }
        }
      }),
    );
    const wallS = (performance.now() - started) / 1000;
    for (const device of devices) device.agent.close();
    return {
      clients,
      durationS: Number(wallS.toFixed(1)),
      messagesPerSecond: Math.round(sent / wallS),
      p50Ms: Number(histogram.quantile(0.5).toFixed(1)),
      p99Ms: Number(histogram.quantile(0.99).toFixed(1)),
      failed,
      rssMb: Math.round(process.memoryUsage().rss / 1024 / 1024),
      note: 'confirmable POSTs, one in flight per client, 2.04 after commit; clients share the node process',
    };
  } finally {
    await Promise.all(sockets.map((socket) => new Promise<void>((resolve) => socket.close(() => resolve()))));
    await node.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const invokedDirectly = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (invokedDirectly) {
  const program = new Command()
    .name('bench-bindings-coap')
    .description('CoAP telemetry messages/s and POST → 2.04 p99 from many confirmable clients')
    .option('--clients <n>', 'CoAP devices, one UDP socket each', positive, 50)
    .option('--duration <s>', 'measured seconds', positive, 10)
    .parse();
  const opts = program.opts<{ clients: number; duration: number }>();
  const result = await runCoapBench({ clients: opts.clients, durationS: opts.duration });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
