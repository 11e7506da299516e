/**
 * Action queue benchmark (issue #17, defect 3): sleepy devices with deep action queues on an
 * otherwise idle node (each as deep as a profile may allow, as many devices as `--queued` needs). Figures: the expiry sweep's time with nothing due, the node's CPU while
 * idle (the sweep runs every second), its RSS, and the latency of an API call meanwhile.
 * In process: the node, and a loop that queues through the command service (no HTTP per action).
 *
 *   npm run bench:queue -- --queued 60000 --idle 10
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { resolveConfig, startCloudNode } from '../src/node/index.js';
import { createLogger } from '../src/observability/index.js';
import { MAX_PENDING_ACTIONS_CEILING } from '../src/registry/index.js';
import { positive } from './lib/options.js';

interface Options {
  queued: number;
  idle: number;
}

const ADMIN_KEY = 'bench-admin-key-0123456789';
const MODEL = {
  '@context': 'https://www.w3.org/2022/wot/td/v1.1',
  '@type': 'tm:ThingModel',
  title: 'Queue bench meter',
  properties: { level: { type: 'number' } },
  actions: { read: { input: { type: 'object' } } },
};

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function main(): Promise<void> {
  const options = new Command()
    .name('bench:queue')
    .description('Idle node cost of one sleepy device with a deep action queue')
    .option('--queued <n>', 'actions queued in all', positive, 60_000)
    .option('--idle <s>', 'idle seconds measured', positive, 10)
    .parse()
    .opts<Options>();

  const dataDir = join(tmpdir(), `thingloop-bench-queue-${process.pid}`);
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
  try {
    const call = async (method: string, path: string, body?: unknown) => {
      const response = await fetch(`${node.httpUrl}/api/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      await response.arrayBuffer();
      return response.status;
    };
    await call('PUT', '/models/meter', MODEL);
    const queueStarted = performance.now();
    for (let queued = 0, n = 0; queued < options.queued; n++) {
      // Each device's bound is raised to the ceiling: the bench measures queues this deep on purpose.
      const { device } = await node.registry.register({
        id: `nb-deep-${n}`,
        model: 'meter',
        network: { profile: 'nbiot', maxPendingActions: MAX_PENDING_ACTIONS_CEILING },
      });
      const depth = Math.min(MAX_PENDING_ACTIONS_CEILING, options.queued - queued);
      for (let i = 0; i < depth; i++) await node.commands.invoke(device, { action: 'read', input: {}, actor: 'api' });
      queued += depth;
    }
    process.stderr.write(`[bench] ${options.queued} actions queued in ${((performance.now() - queueStarted) / 1000).toFixed(1)} s\n`);

    const sweeps: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      await node.commands.expireDue();
      sweeps.push(performance.now() - started);
    }

    // Idle: only the node's own timers run (the 1 s expiry sweep among them).
    const cpuBefore = process.cpuUsage();
    const idleStarted = performance.now();
    const latencies: number[] = [];
    while (performance.now() - idleStarted < options.idle * 1000) {
      const started = performance.now();
      await call('GET', '/devices/nb-deep-0');
      latencies.push(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const cpu = process.cpuUsage(cpuBefore);
    const wallMs = performance.now() - idleStarted;

    const figures = {
      queued: options.queued,
      expireDueMedianMs: Number(median(sweeps).toFixed(2)),
      idleCpuPercent: Number((((cpu.user + cpu.system) / 1000 / wallMs) * 100).toFixed(1)),
      apiMedianMs: Number(median(latencies).toFixed(1)),
      rssMb: Math.round(process.memoryUsage().rss / 1024 / 1024),
    };
    process.stdout.write(`${JSON.stringify(figures)}\n`);
  } finally {
    await node.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
