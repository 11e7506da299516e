/**
 * OPC UA monitored-items benchmark (issue #11): a node-opcua server in a separate process (so it
 * does not share this process's CPU) with `devices × items` Double variables that all change
 * every second; the OPC UA binding monitors every one of them at a 1 s sampling interval through
 * one session and subscription. Reports value notifications/s handed up as telemetry, telemetry
 * messages/s, the time to monitor everything, the binding process's CPU (% of one core) and
 * RSS, and the server process's CPU (a saturated server delivers fewer changes than expected).
 *
 *   node --import tsx bench/bindings-opcua.ts [--devices 100] [--items 100] [--interval 1000] [--duration 20]
 *
 * `runOpcuaBench(options)` is what `npm run bench:bindings` calls.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import type { DeviceMessage, DeviceUplink } from '../src/gateway/index.js';
import { compileThingModel, type ThingModel } from '../src/model/index.js';
import { createLogger } from '../src/observability/index.js';
import type { DeviceRecord } from '../src/registry/index.js';
import { OpcuaBinding } from '../src/transport/opcua/index.js';
import { positive } from './lib/options.js';
import { cpuPercent, readProc } from './lib/proc-stats.js';
import { stopChild, track } from './lib/processes.js';

export interface OpcuaBenchOptions {
  devices?: number;
  itemsPerDevice?: number;
  samplingIntervalMs?: number;
  durationS?: number;
  /** Seconds after everything is monitored before measuring (first notifications settle). */
  warmupS?: number;
}

/** The server process: `devices × items` variables `ns=1;s=Bench.d{n}.v{i}`, all changing every second. */
async function serveVariables(devices: number, items: number): Promise<void> {
  const opcua = await import('node-opcua');
  const pki = mkdtempSync(join(tmpdir(), 'opcua-bench-server-'));
  const certificates = new opcua.OPCUACertificateManager({ rootFolder: pki, automaticallyAcceptUnknownCertificate: true });
  await certificates.initialize();
  const server = new opcua.OPCUAServer({
    port: 0,
    resourcePath: '/UA/Bench',
    serverCertificateManager: certificates,
    certificateFile: join(pki, 'own', 'certs', 'server_certificate.pem'),
    privateKeyFile: join(pki, 'own', 'private', 'private_key.pem'),
    serverCapabilities: {
      maxMonitoredItemsPerSubscription: devices * items + 100,
      maxMonitoredItems: devices * items + 100,
      operationLimits: { maxMonitoredItemsPerCall: 10_000, maxNodesPerRead: 10_000 },
    },
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  if (!addressSpace) throw new Error('no address space');
  const namespace = addressSpace.getOwnNamespace();
  const values = new Float64Array(devices * items);
  for (let d = 0; d < devices; d++) {
    const folder = namespace.addObject({ organizedBy: addressSpace.rootFolder.objects, browseName: `d${d}`, nodeId: `s=Bench.d${d}` });
    for (let i = 0; i < items; i++) {
      const index = d * items + i;
      values[index] = index;
      namespace.addVariable({
        componentOf: folder,
        browseName: `v${i}`,
        nodeId: `s=Bench.d${d}.v${i}`,
        dataType: 'Double',
        minimumSamplingInterval: 100,
        value: { get: () => new opcua.Variant({ dataType: opcua.DataType.Double, value: values[index] ?? 0 }) },
      });
    }
  }
  const timer = setInterval(() => {
    for (let index = 0; index < values.length; index++) values[index] = (values[index] ?? 0) + 1;
  }, 1_000);
  await server.start();
  process.stdout.write(`${JSON.stringify({ port: server.endpoints[0]?.port })}\n`);
  const stop = async () => {
    clearInterval(timer);
    await server.shutdown(0);
    rmSync(pki, { recursive: true, force: true });
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

async function startServerProcess(devices: number, items: number): Promise<{ child: ChildProcess; port: number }> {
  const child = track(
    spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve', '--devices', String(devices), '--items', String(items)],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    ),
  );
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  for await (const line of lines) {
    if (!line.startsWith('{')) continue;
    const parsed: unknown = JSON.parse(line);
    if (parsed !== null && typeof parsed === 'object' && 'port' in parsed && typeof parsed.port === 'number')
      return { child, port: parsed.port };
  }
  throw new Error('the OPC UA server process ended before it said its port');
}

/** One model for every device: `items` properties whose node ids take the device's `{{device}}`. */
function benchModel(items: number, samplingIntervalMs: number): ThingModel {
  const properties: Record<string, Record<string, unknown>> = {};
  for (let i = 0; i < items; i++) {
    properties[`v${i}`] = {
      type: 'number',
      readOnly: true,
      forms: [{ href: '{{endpoint}}', 'opcua:nodeId': `ns=1;s=Bench.{{device}}.v${i}`, 'opcua:samplingInterval': samplingIntervalMs }],
    };
  }
  return { title: 'bench OPC UA device', properties };
}

function device(index: number, endpoint: string): DeviceRecord {
  const id = `opcua-${index}`;
  return {
    id,
    tenant: 'default',
    uid: index + 1,
    name: id,
    model: 'bench-opcua',
    modelVersion: 1,
    code: `bench/${id}`,
    ipv6: '::1',
    attributes: {},
    network: { profile: 'ethernet', reportIntervalMs: 1_000, keepAliveMs: 60_000, sleepy: false },
    binding: { protocol: 'opcua', endpoint, device: `d${index}` },
    createdAt: 0,
    updatedAt: 0,
  };
}

export async function runOpcuaBench(options: OpcuaBenchOptions = {}): Promise<Record<string, number | string>> {
  const devices = options.devices ?? 100;
  const items = options.itemsPerDevice ?? 100;
  const samplingIntervalMs = options.samplingIntervalMs ?? 1_000;
  const durationS = options.durationS ?? 20;
  const warmupS = options.warmupS ?? 3;
  const { child, port } = await startServerProcess(devices, items);
  const endpoint = `opc.tcp://127.0.0.1:${port}/UA/Bench`;
  const dataDir = mkdtempSync(join(tmpdir(), 'opcua-bench-client-'));
  let measuring = false;
  let notifications = 0;
  let telemetry = 0;
  const seen = new Set<string>();
  const uplink: DeviceUplink = {
    async receive(record: DeviceRecord, message: DeviceMessage) {
      if (message.kind !== 'telemetry' || !('body' in message.payload)) return;
      const body = message.payload.body;
      let values = 0;
      for (const sample of Array.isArray(body) ? body : [body]) {
        if (sample !== null && typeof sample === 'object') values += Object.keys(sample).length - 1;
      }
      if (!measuring) {
        if (values > 0) seen.add(record.id);
        return;
      }
      telemetry++;
      notifications += values;
    },
    reportError(record, message) {
      process.stderr.write(`error on ${record.id}: ${message}\n`);
    },
    refused() {},
    now: () => Date.now(),
  };
  const binding = new OpcuaBinding({ dataDir, logger: createLogger({ level: 'warn' }), requestTimeoutMs: 30_000 });
  const model = compileThingModel({ id: 'bench-opcua', version: 1, document: benchModel(items, samplingIntervalMs), createdAt: 0 });
  try {
    await binding.start(uplink);
    const monitorStarted = performance.now();
    for (let index = 0; index < devices; index++) await binding.attach({ device: device(index, endpoint), model });
    // Every device has handed up a first value: all its items are monitored.
    while (seen.size < devices) {
      if (performance.now() - monitorStarted > 300_000) throw new Error(`only ${seen.size} of ${devices} devices reported within 300 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const monitorS = (performance.now() - monitorStarted) / 1_000;
    await new Promise((resolve) => setTimeout(resolve, warmupS * 1_000));
    measuring = true;
    const cpuBefore = process.cpuUsage();
    const serverBefore = child.pid === undefined ? undefined : readProc(child.pid);
    const started = performance.now();
    let rssPeak = process.memoryUsage().rss;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }, 500);
    await new Promise((resolve) => setTimeout(resolve, durationS * 1_000));
    clearInterval(sampler);
    measuring = false;
    const elapsedS = (performance.now() - started) / 1_000;
    const cpu = process.cpuUsage(cpuBefore);
    const serverAfter = child.pid === undefined ? undefined : readProc(child.pid);
    const round = (value: number, digits = 1) => Number(value.toFixed(digits));
    const health = binding.health(device(0, endpoint));
    return {
      monitoredItems: devices * items,
      devices,
      samplingIntervalMs,
      durationS: round(elapsedS),
      monitorAllS: round(monitorS),
      notificationsPerSecond: round(notifications / elapsedS),
      expectedPerSecond: round((devices * items * 1_000) / Math.max(samplingIntervalMs, 1_000)),
      telemetryPerSecond: round(telemetry / elapsedS),
      cpuPercent: round(((cpu.user + cpu.system) / 1_000 / (elapsedS * 1_000)) * 100),
      rssMiB: round(rssPeak / 2 ** 20),
      // The server samples every item each second: when it saturates, fewer values change per second.
      serverCpuPercent: serverBefore && serverAfter ? round(cpuPercent(serverBefore, serverAfter)) : 'n/a',
      readLatencyMs: health?.latencyMs ?? 'n/a',
      sessionState: health?.state ?? 'n/a',
    };
  } finally {
    await binding.stop();
    await stopChild(child, 5_000);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const invokedDirectly = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (invokedDirectly) {
  const program = new Command()
    .name('bench-bindings-opcua')
    .description('monitor 10,000 OPC UA items at 1 s through the OPC UA binding and report notifications/s, CPU and RSS')
    .option('--devices <n>', 'devices (one monitored-item group each)', positive, 100)
    .option('--items <n>', 'monitored items per device', positive, 100)
    .option('--interval <ms>', 'sampling interval', positive, 1_000)
    .option('--duration <s>', 'measured seconds', positive, 20)
    .option('--serve', 'internal: run the server process')
    .parse();
  const opts = program.opts<{ devices: number; items: number; interval: number; duration: number; serve?: boolean }>();
  if (opts.serve) await serveVariables(opts.devices, opts.items);
  else {
    const result = await runOpcuaBench({
      devices: opts.devices,
      itemsPerDevice: opts.items,
      samplingIntervalMs: opts.interval,
      durationS: opts.duration,
    });
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    process.exit(0);
  }
}
