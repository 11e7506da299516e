/**
 * The node under test: `thingloop serve` in its own process (as users run it), on free ports,
 * with a throw-away data directory, driven through its public HTTP API.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { exitAsError, freePort, stopChild, track, waitFor } from './processes.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

export const MODEL_ID = 'bench-sensor';
export const PROPERTY_COUNT = 10;

/** Ten numeric properties with ranges, so every value goes through a real validator. */
export function benchModel() {
  const properties: Record<string, { type: 'number'; minimum: number; maximum: number; unit: string }> = {};
  for (let p = 0; p < PROPERTY_COUNT; p++) properties[`p${p}`] = { type: 'number', minimum: 0, maximum: 1000, unit: 'unit' };
  return { '@type': 'tm:ThingModel', title: 'Benchmark sensor (10 numeric properties)', properties };
}

export interface NodeProcess {
  child: ChildProcess;
  pid: number;
  httpUrl: string;
  mqttUrl: string;
  adminKey: string;
  dataDir: string;
  /** Warn/error log lines the node printed (it runs with --log-level warn). */
  logLines: string[];
}

export interface StartOptions {
  /** Directory for a V8 CPU profile of the node (written when it exits), or none. */
  cpuProfDir?: string;
}

function forwardLines(stream: NodeJS.ReadableStream | null, sink: (line: string) => void): void {
  if (stream) createInterface({ input: stream }).on('line', sink);
}

export async function startNode(options: StartOptions = {}): Promise<NodeProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'thingloop-bench-'));
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const adminKey = `bench_${randomBytes(24).toString('base64url')}`;
  const profile = options.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`] : [];
  const args = [...profile, '--import', 'tsx', 'src/cli/main.ts', 'serve'];
  args.push('--http-port', String(httpPort), '--mqtt-port', String(mqttPort), '--http-host', '127.0.0.1', '--mqtt-host', '127.0.0.1');
  args.push('--coap-port', '0', '--coap-host', '127.0.0.1');
  args.push('--data-dir', dataDir, '--log-level', 'warn');
  const child = track(
    spawn(process.execPath, args, { cwd: REPO, env: { ...process.env, THINGLOOP_ADMIN_KEY: adminKey }, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  const logLines: string[] = [];
  forwardLines(child.stdout, (line) => {
    logLines.push(line);
    if (logLines.length > 200) logLines.splice(20, 1);
    if (logLines.length <= 5) process.stderr.write(`[node] ${line}\n`);
  });
  // Deprecation warnings of dependencies are noise here; anything else is shown.
  forwardLines(child.stderr, (line) => {
    if (!/Deprecation|trace-warnings/.test(line)) process.stderr.write(`[node] ${line}\n`);
  });
  child.once('exit', (code, signal) => {
    if (code !== 0)
      process.stderr.write(`[node] exited (code ${code}, signal ${signal}); last log lines:\n${logLines.slice(-10).join('\n')}\n`);
  });
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  const ready = waitFor(async () => (await fetch(`${httpUrl}/readyz`)).ok, 60_000, 'the Thingloop node to be ready');
  await Promise.race([ready, exitAsError(child, 'the Thingloop node')]);
  return { child, pid: child.pid as number, httpUrl, mqttUrl: `mqtt://127.0.0.1:${mqttPort}`, adminKey, dataDir, logLines };
}

export async function api<T>(node: NodeProcess, method: string, path: string, body: unknown): Promise<T> {
  const response = await fetch(`${node.httpUrl}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${node.adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

export type Credentials = { id: string; token: string };

/** Registers the model (the 10-property sensor by default) and `count` devices, `concurrency` requests at a time. */
export async function registerFleet(
  node: NodeProcess,
  count: number,
  concurrency: number,
  model: { id: string; document: unknown } = { id: MODEL_ID, document: benchModel() },
): Promise<Credentials[]> {
  await api(node, 'PUT', `/models/${model.id}`, model.document);
  const fleet: Credentials[] = new Array(count);
  let next = 0;
  let done = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < count) {
      const index = next++;
      const id = `bench-${String(index).padStart(6, '0')}`;
      const { token } = await api<{ token: string }>(node, 'POST', '/devices', { id, model: model.id });
      fleet[index] = { id, token };
      if (++done % 250 === 0 || done === count) process.stderr.write(`\r[setup] registered ${done}/${count} devices`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  process.stderr.write(` in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  return fleet;
}

export async function scrape(node: NodeProcess): Promise<string> {
  // /metrics needs a key since issue #17: the bench holds the admin key.
  const response = await fetch(`${node.httpUrl}/metrics`, { headers: { authorization: `Bearer ${node.adminKey}` } });
  if (!response.ok) throw new Error(`/metrics: HTTP ${response.status}`);
  return response.text();
}

/** Graceful stop (flushes telemetry); returns the CPU profile written, if one was asked for. */
export async function stopNode(node: NodeProcess, cpuProfDir?: string): Promise<string | undefined> {
  const code = await stopChild(node.child);
  if (code !== 0) process.stderr.write(`[node] exited with code ${code}\n`);
  if (!cpuProfDir) return undefined;
  const profiles = readdirSync(cpuProfDir).filter((f) => f.endsWith('.cpuprofile') && f.includes(`.${node.pid}.`));
  return profiles[0] ? join(cpuProfDir, profiles[0]) : undefined;
}

export function removeData(node: NodeProcess): void {
  rmSync(node.dataDir, { recursive: true, force: true });
}
