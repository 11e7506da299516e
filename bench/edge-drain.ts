/**
 * Edge drain: how fast an edge empties a large outbox backlog into the cloud, and how many bytes
 * one sample costs on the uplink.
 *
 * The backlog (1,000,000 telemetry records by default) is written through SqliteOutbox.append in
 * batches into a real edge data directory *before* the edge process starts: the same rows the
 * edge writes when it accepts telemetry, without spending minutes publishing them. Then a cloud
 * (`thingloop serve`) and the edge (`thingloop serve --role edge`) run as separate processes;
 * the edge reaches the cloud through a TCP proxy in this process that counts the bytes on the
 * link. The drain rate is measured from the cloud's applied mark (GET /api/v1/edges/{id}).
 *
 *   npm run bench:drain [-- --records 1000000 --devices 100]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as netConnect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { telemetryRecords } from '../src/edge/index.js';
import { openDatabase, SqliteOutbox } from '../src/store/sqlite/index.js';
import { positive } from './lib/options.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const ADMIN_KEY = 'bench-edge-drain-admin-key';
const EDGE_ID = 'bench-edge';
const TARGET = 50_000;

const flags = new Command()
  .name('bench:drain')
  .description('Drain rate of an edge outbox backlog into the cloud, and uplink bytes per sample (cloud and edge as processes)')
  .option('--records <n>', 'telemetry records in the backlog', positive, 1_000_000)
  .option('--devices <n>', 'devices the records are spread over', positive, 100)
  .parse()
  .opts<{ records: number; devices: number }>();
const RECORDS = flags.records;
const DEVICES = flags.devices;

const children = new Set<ChildProcess>();
const dirs: string[] = [];
const cleanup = () => {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function scratch(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

interface Node {
  child: ChildProcess;
  httpUrl: string;
}

/** `thingloop serve …` on loopback, port 0; resolves with its HTTP URL once it logged that it started. */
function serve(dataDir: string, extra: string[]): Promise<Node> {
  const args = [
    '--import',
    'tsx',
    'src/cli/main.ts',
    'serve',
    '--data-dir',
    dataDir,
    '--http-port',
    '0',
    '--mqtt-port',
    '0',
    '--coap-port',
    '0',
  ];
  args.push('--http-host', '127.0.0.1', '--mqtt-host', '127.0.0.1', ...extra);
  const child = spawn(process.execPath, args, {
    cwd: REPO,
    env: { ...process.env, THINGLOOP_ADMIN_KEY: ADMIN_KEY },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`thingloop serve ${extra.join(' ')} exited with ${code}`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; httpPort?: number; level?: number; err?: string };
        if (entry.msg?.endsWith('node started') && entry.httpPort) resolve({ child, httpUrl: `http://127.0.0.1:${entry.httpPort}` });
        else if ((entry.level ?? 0) >= 50) console.error(line);
      } catch {
        // not a log line
      }
    });
  });
}

async function api<T>(node: Node, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${node.httpUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

/** A TCP proxy that counts bytes each way: edge → cloud (up) and cloud → edge (down). */
function countingProxy(target: URL): Promise<{ server: Server; port: number; bytes: { up: number; down: number } }> {
  const bytes = { up: 0, down: 0 };
  const server = createServer((inbound) => {
    const outbound = netConnect(Number(target.port), target.hostname);
    inbound.on('data', (chunk: Buffer) => {
      bytes.up += chunk.length;
    });
    outbound.on('data', (chunk: Buffer) => {
      bytes.down += chunk.length;
    });
    inbound.pipe(outbound).on('error', () => inbound.destroy());
    outbound.pipe(inbound).on('error', () => outbound.destroy());
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve({ server, port: typeof address === 'object' && address ? address.port : 0, bytes });
    }),
  );
}

async function main() {
  console.log(`edge drain: ${RECORDS.toLocaleString('en')} telemetry records from ${DEVICES} devices`);
  const cloud = await serve(scratch('thingloop-drain-cloud-'), ['--log-level', 'info']);
  await api(cloud, 'PUT', '/api/v1/models/meter', {
    '@type': 'tm:ThingModel',
    title: 'Meter',
    properties: {
      power: { type: 'number', minimum: 0, maximum: 100_000, unit: 'W' },
      voltage: { type: 'number', minimum: 0, maximum: 1000, unit: 'V' },
      energy: { type: 'integer', minimum: 0 },
    },
  });
  const { token } = await api<{ token: string }>(cloud, 'POST', '/api/v1/edges', { id: EDGE_ID });
  const ids: string[] = [];
  for (let d = 0; d < DEVICES; d++) {
    const id = `meter-${d}`;
    await api(cloud, 'POST', '/api/v1/devices', { id, model: 'meter', edge: EDGE_ID });
    ids.push(id);
  }

  // The backlog, written the way the edge writes it, before the edge starts.
  const edgeDir = scratch('thingloop-drain-edge-');
  const buildStart = performance.now();
  {
    const db = openDatabase(join(edgeDir, 'thingloop.db'));
    const outbox = new SqliteOutbox(db, Date.now);
    const base = Date.now() - 3_600_000;
    const BATCH = 10_000;
    for (let written = 0; written < RECORDS; written += BATCH) {
      const samples = [];
      for (let i = written; i < Math.min(RECORDS, written + BATCH); i++) {
        const deviceId = ids[i % DEVICES] as string;
        samples.push({
          deviceId,
          deviceUid: 0,
          ts: base + Math.floor(i / DEVICES),
          values: { power: (i % 5000) + 0.5, voltage: 230.1, energy: i },
        });
      }
      await outbox.append(telemetryRecords(samples));
    }
    const stats = await outbox.stats();
    db.close();
    console.log(
      `backlog: ${stats.records.toLocaleString('en')} records, ${(stats.bytes / 1e6).toFixed(1)} MB of payload, built in ${((performance.now() - buildStart) / 1000).toFixed(1)} s`,
    );
  }

  const proxy = await countingProxy(new URL(cloud.httpUrl));
  const edgeStart = performance.now();
  const edge = await serve(edgeDir, [
    '--role',
    'edge',
    '--cloud',
    `http://127.0.0.1:${proxy.port}`,
    '--edge-id',
    EDGE_ID,
    '--token',
    token,
    '--log-level',
    'info',
  ]);
  const edgeUp = performance.now();
  let first: { at: number; seq: number } | undefined;
  let applied = 0;
  const samples: { at: number; seq: number }[] = [];
  const deadline = Date.now() + 15 * 60_000;
  while (applied < RECORDS) {
    if (Date.now() > deadline) throw new Error(`drain stalled at ${applied} of ${RECORDS}`);
    applied = (await api<{ appliedSeq: number }>(cloud, 'GET', `/api/v1/edges/${EDGE_ID}`)).appliedSeq;
    const at = performance.now();
    if (applied > 0 && !first) first = { at, seq: applied };
    samples.push({ at, seq: applied });
    if (applied < RECORDS) await sleep(100);
  }
  const end = performance.now();
  const startedAt = first ?? { at: edgeUp, seq: 0 };
  const drainSeconds = (end - startedAt.at) / 1000;
  const rate = (RECORDS - startedAt.seq) / drainSeconds;
  const wholeRate = RECORDS / ((end - edgeStart) / 1000);
  // Peak over a 2 s window of the applied mark.
  let peak = 0;
  for (const s of samples) {
    const later = samples.find((t) => t.at - s.at >= 2000);
    if (later) peak = Math.max(peak, (later.seq - s.seq) / ((later.at - s.at) / 1000));
  }

  let stored = 0;
  for (const id of ids) {
    const query = new URLSearchParams({ property: 'energy', from: String(Date.now() - 7_200_000), agg: 'count', bucket: '1d' });
    const result = await api<{ series: { points: { value: number | null }[] }[] }>(
      cloud,
      'GET',
      `/api/v1/devices/${id}/telemetry?${query}`,
    );
    stored += (result.series[0]?.points ?? []).reduce((sum, p) => sum + (p.value ?? 0), 0);
  }
  const upBytes = proxy.bytes.up;
  console.log(
    `drained:  ${RECORDS.toLocaleString('en')} records in ${drainSeconds.toFixed(1)} s after the first batch (edge start to done ${((end - edgeStart) / 1000).toFixed(1)} s)`,
  );
  console.log(
    `rate:     ${Math.round(rate).toLocaleString('en')} records/s (peak 2 s window ${Math.round(peak).toLocaleString('en')}, incl. edge start-up ${Math.round(wholeRate).toLocaleString('en')}); target ≥ ${TARGET.toLocaleString('en')}: ${rate >= TARGET ? 'met' : 'NOT met'}`,
  );
  console.log(
    `uplink:   ${(upBytes / 1e6).toFixed(1)} MB edge → cloud on the wire = ${(upBytes / RECORDS).toFixed(1)} bytes/sample; ${(proxy.bytes.down / 1e3).toFixed(0)} kB cloud → edge`,
  );
  console.log(`cloud:    ${stored.toLocaleString('en')} samples stored (${stored === RECORDS ? 'all' : 'MISMATCH'})`);
  edge.child.kill('SIGKILL');
  cloud.child.kill('SIGKILL');
  proxy.server.close();
  if (stored !== RECORDS) process.exitCode = 1;
}

main()
  .catch((error: Error) => {
    console.error(error.message);
    process.exitCode = 1;
  })
  .finally(() => {
    cleanup();
    children.clear();
  });
