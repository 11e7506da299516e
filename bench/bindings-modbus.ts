/**
 * Modbus TCP polling benchmark (issue #11): 200 simulated PLCs (modbus-serial ServerTCP, one port
 * each, in a separate process so they do not share this process's CPU) × 50 registers, polled at
 * 1 s by the Modbus binding. Reports Modbus reads/s and registers/s, the poll jitter (how late a
 * round starts against its schedule) p50/p99, the read round trip p99 and the CPU the binding's
 * process used (% of one core).
 *
 *   node --import tsx bench/bindings-modbus.ts [--plcs 200] [--registers 50] [--interval 1000] [--duration 20]
 *
 * `runModbusBench(options)` is what `npm run bench:bindings` calls.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import type { DeviceMessage, DeviceUplink } from '../src/gateway/index.js';
import { compileThingModel, type ThingModel } from '../src/model/index.js';
import type { DeviceRecord } from '../src/registry/index.js';
import { ModbusPlc } from '../src/sim/modbus-plc.js';
import { ModbusBinding } from '../src/transport/modbus/index.js';
import { LatencyHistogram } from './lib/histogram.js';
import { positive } from './lib/options.js';
import { stopChild, track } from './lib/processes.js';

export interface ModbusBenchOptions {
  plcs?: number;
  registers?: number;
  intervalMs?: number;
  durationS?: number;
  /** Seconds polled before measuring (connections made, first rounds spread). */
  warmupS?: number;
}

/** The PLC process: starts `count` PLCs with `registers` holding registers each and prints their ports. */
async function servePlcs(count: number, registers: number): Promise<void> {
  const plcs: ModbusPlc[] = [];
  for (let i = 0; i < count; i++) {
    const plc = await ModbusPlc.start();
    for (let r = 0; r < registers; r++) plc.unit(1).holdingRegisters.set(r, (i * 7 + r) & 0xffff);
    plcs.push(plc);
  }
  // Values change every second, as a plant's would.
  const timer = setInterval(() => {
    for (const plc of plcs) {
      const bank = plc.unit(1).holdingRegisters;
      bank.set(0, ((bank.get(0) ?? 0) + 1) & 0xffff);
    }
  }, 1_000);
  process.stdout.write(`${JSON.stringify({ ports: plcs.map((plc) => plc.port) })}\n`);
  const stop = async () => {
    clearInterval(timer);
    await Promise.all(plcs.map((plc) => plc.close()));
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

async function startPlcProcess(count: number, registers: number): Promise<{ child: ChildProcess; ports: number[] }> {
  const child = track(
    spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve-plcs', String(count), '--registers', String(registers)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    ),
  );
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  for await (const line of lines) {
    const parsed: unknown = JSON.parse(line);
    if (parsed !== null && typeof parsed === 'object' && 'ports' in parsed && Array.isArray(parsed.ports)) {
      return { child, ports: parsed.ports.filter((port): port is number => typeof port === 'number') };
    }
  }
  throw new Error('the PLC process ended before it listed its ports');
}

/** 50 registers: 40 uint16 and 5 float32 (2 registers each), contiguous, so one read covers them. */
function benchModel(registers: number): ThingModel {
  const properties: Record<string, Record<string, unknown>> = {};
  const floats = Math.floor(registers / 10);
  let address = 0;
  for (let i = 0; i < floats; i++, address += 2) {
    properties[`f${i}`] = {
      type: 'number',
      forms: [
        {
          href: `modbus+tcp://{{host}}:{{port}}/{{unitId}}/${address}`,
          'modv:entity': 'HoldingRegister',
          'modv:type': 'float32',
          'modv:zeroBasedAddressing': true,
        },
      ],
    };
  }
  for (let i = 0; address < registers; i++, address++) {
    properties[`r${i}`] = {
      type: 'number',
      forms: [
        {
          href: `modbus+tcp://{{host}}:{{port}}/{{unitId}}/${address}`,
          'modv:entity': 'HoldingRegister',
          'modv:scale': 0.1,
          'modv:zeroBasedAddressing': true,
        },
      ],
    };
  }
  return { title: 'bench PLC', properties };
}

function device(id: string, port: number): DeviceRecord {
  return {
    id,
    tenant: 'default',
    uid: port,
    name: id,
    model: 'bench-plc',
    modelVersion: 1,
    code: `bench/${id}`,
    ipv6: '::1',
    attributes: {},
    network: { profile: 'ethernet', reportIntervalMs: 1_000, keepAliveMs: 60_000, sleepy: false },
    binding: { protocol: 'modbus-tcp', host: '127.0.0.1', port, unitId: 1 },
    createdAt: 0,
    updatedAt: 0,
  };
}

export async function runModbusBench(options: ModbusBenchOptions = {}): Promise<Record<string, number | string>> {
  const plcs = options.plcs ?? 200;
  const registers = options.registers ?? 50;
  const intervalMs = options.intervalMs ?? 1_000;
  const durationS = options.durationS ?? 20;
  const warmupS = options.warmupS ?? 3;
  const { child, ports } = await startPlcProcess(plcs, registers);
  let measuring = false;
  const jitter = new LatencyHistogram();
  const roundTrip = new LatencyHistogram();
  let reads = 0;
  let rounds = 0;
  let failedRounds = 0;
  let telemetry = 0;
  let valuesUp = 0;
  const uplink: DeviceUplink = {
    async receive(_device: DeviceRecord, message: DeviceMessage) {
      if (!measuring || message.kind !== 'telemetry' || !('body' in message.payload)) return;
      telemetry++;
      const body = message.payload.body;
      if (body !== null && typeof body === 'object') valuesUp += Object.keys(body).length - 1;
    },
    reportError() {},
    refused() {},
    now: () => Date.now(),
  };
  const binding = new ModbusBinding({
    defaultPollingMs: intervalMs,
    onRound: (round) => {
      if (!measuring) return;
      rounds++;
      reads += round.reads;
      if (!round.ok) failedRounds++;
      jitter.record(Math.max(0, round.lateMs));
      roundTrip.record(round.durationMs);
    },
  });
  const model = compileThingModel({ id: 'bench-plc', version: 1, document: benchModel(registers), createdAt: 0 });
  try {
    await binding.start(uplink);
    for (const [index, port] of ports.entries()) await binding.attach({ device: device(`plc-${index}`, port), model });
    await new Promise((resolve) => setTimeout(resolve, warmupS * 1_000));
    measuring = true;
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, durationS * 1_000));
    measuring = false;
    const elapsedS = (performance.now() - started) / 1_000;
    const cpu = process.cpuUsage(cpuBefore);
    const cpuPercent = ((cpu.user + cpu.system) / 1_000 / (elapsedS * 1_000)) * 100;
    const jitterSummary = jitter.summary();
    const roundSummary = roundTrip.summary();
    const round = (value: number, digits = 1) => Number(value.toFixed(digits));
    return {
      plcs,
      registersPerPlc: registers,
      intervalMs,
      durationS: round(elapsedS),
      readsPerSecond: round(reads / elapsedS),
      registersPerSecond: round((rounds * registers) / elapsedS),
      roundsPerSecond: round(rounds / elapsedS),
      telemetryPerSecond: round(telemetry / elapsedS),
      valuesPerSecond: round(valuesUp / elapsedS),
      failedRounds,
      pollJitterP50Ms: round(jitterSummary.p50Ms, 2),
      pollJitterP99Ms: round(jitterSummary.p99Ms, 2),
      roundTripP99Ms: round(roundSummary.p99Ms, 2),
      cpuPercent: round(cpuPercent),
      openConnections: binding.connectionCount(),
    };
  } finally {
    await binding.stop();
    await stopChild(child, 5_000);
  }
}

const invokedDirectly = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (invokedDirectly) {
  const program = new Command()
    .name('bench-bindings-modbus')
    .description('poll simulated Modbus TCP PLCs with the Modbus binding and report reads/s, poll jitter and CPU')
    .option('--plcs <n>', 'simulated PLCs (one TCP port each)', positive, 200)
    .option('--registers <n>', 'holding registers per PLC', positive, 50)
    .option('--interval <ms>', 'poll interval', positive, 1_000)
    .option('--duration <s>', 'measured seconds', positive, 20)
    .option('--serve-plcs <n>', 'internal: run the PLC process with n PLCs', positive)
    .parse();
  const opts = program.opts<{ plcs: number; registers: number; interval: number; duration: number; servePlcs?: number }>();
  if (opts.servePlcs) await servePlcs(opts.servePlcs, opts.registers);
  else {
    const result = await runModbusBench({
      plcs: opts.plcs,
      registers: opts.registers,
      intervalMs: opts.interval,
      durationS: opts.duration,
    });
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  }
}
