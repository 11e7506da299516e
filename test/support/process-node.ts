/**
 * Runs the real `thingloop` CLI as a child process (through tsx, from the sources), for tests
 * of what only a whole process shows: exit codes, signals, stderr, restarts on the same data.
 * Every child is tracked and killed when the test process exits, even after a failed test.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type ApiInit, callApi } from './http.js';

/** The repository root: the child runs `src/cli/main.ts` relative to it. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const CLI_ARGS = ['--import', 'tsx', 'src/cli/main.ts'];

/** Long enough for a cold tsx start on a loaded 2-core machine; only guards against hangs. */
const START_LIMIT_MS = 30_000;

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  /** Arguments after `thingloop`, e.g. ['serve', '--data-dir', dir]. */
  args: string[];
  /** THINGLOOP_* variables for the child; inherited THINGLOOP_* variables are removed first. */
  env?: Record<string, string>;
}

/** The parent's environment without THINGLOOP_* (so a developer's shell cannot change a test). */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('THINGLOOP_')) env[name] = value;
  }
  return { ...env, ...extra };
}

export interface CliProcess {
  child: ChildProcess;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** Settles when the process has exited (never rejects). */
  exited: Promise<Exit>;
  /** Sends a signal (when still running) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<Exit>;
  /** The first match of `pattern` in the output so far or to come; rejects if the process ends without one. */
  waitForOutput(stream: 'stdout' | 'stderr', pattern: RegExp): Promise<RegExpMatchArray>;
}

export function spawnCli(options: SpawnOptions): CliProcess {
  const child = spawn(process.execPath, [...CLI_ARGS, ...options.args], {
    cwd: REPO_ROOT,
    env: childEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<Exit>((resolve) => {
    child.once('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    waitForOutput(stream, pattern) {
      const text = () => (stream === 'stdout' ? out : err);
      const source = stream === 'stdout' ? child.stdout : child.stderr;
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = text().match(pattern);
          if (!match) return false;
          source?.off('data', onData);
          resolve(match);
          return true;
        };
        // Registered after the collector above, so the text already holds this chunk.
        const onData = () => check();
        if (check()) return;
        source?.on('data', onData);
        exited.then(() => {
          if (!check()) reject(new Error(`the process exited without ${pattern} on ${stream}:\n${text()}`));
        });
      });
    },
  };
}

/** Runs the CLI to completion (help, start-up failures): its exit and its output. */
export async function runCli(options: SpawnOptions): Promise<Exit & { stdout: string; stderr: string }> {
  const cli = spawnCli(options);
  const limit = setTimeout(() => cli.child.kill('SIGKILL'), START_LIMIT_MS);
  try {
    const exit = await cli.exited;
    return { ...exit, stdout: cli.stdout(), stderr: cli.stderr() };
  } finally {
    clearTimeout(limit);
  }
}

export interface ApiResponse<T> {
  status: number;
  body: T;
}

export interface ProcessNode extends CliProcess {
  httpPort: number;
  mqttPort: number;
  httpUrl: string;
  mqttUrl: string;
  /** fetch against the node's HTTP API; `auth` is the bearer secret (none when undefined). */
  api<T = Record<string, unknown>>(path: string, init?: { method?: string; body?: unknown; auth?: string }): Promise<ApiResponse<T>>;
}

export interface NodeSpawnOptions {
  dataDir: string;
  /** THINGLOOP_ADMIN_KEY for the child; undefined starts it without one. */
  adminKey?: string;
  /** More arguments for `serve`. */
  extraArgs?: string[];
  /** Listen on these ports instead of 0 (e.g. to restart a node where its peers expect it). */
  httpPort?: number;
  mqttPort?: number;
  env?: Record<string, string>;
}

interface StartedLine {
  msg: string;
  httpPort: number;
  mqttPort: number;
}

function startedLine(line: string): StartedLine | undefined {
  try {
    const entry = JSON.parse(line) as Partial<StartedLine>;
    if (
      (entry.msg === 'cloud node started' || entry.msg === 'edge node started') &&
      typeof entry.httpPort === 'number' &&
      typeof entry.mqttPort === 'number'
    ) {
      return entry as StartedLine;
    }
  } catch {
    // not a JSON log line
  }
  return undefined;
}

/**
 * `thingloop serve` on loopback with port 0 for HTTP and MQTT (unless told otherwise); resolves
 * once the node has logged "cloud node started" or "edge node started" (and so knows its ports),
 * rejects if it exits first.
 */
export async function startProcessNode(options: NodeSpawnOptions): Promise<ProcessNode> {
  const env: Record<string, string> = { ...options.env };
  if (options.adminKey !== undefined) env.THINGLOOP_ADMIN_KEY = options.adminKey;
  const cli = spawnCli({
    args: [
      'serve',
      '--data-dir',
      options.dataDir,
      '--http-port',
      String(options.httpPort ?? 0),
      '--mqtt-port',
      String(options.mqttPort ?? 0),
      '--http-host',
      '127.0.0.1',
      '--mqtt-host',
      '127.0.0.1',
      // CoAP's default port would be shared by every node a test starts.
      '--coap-port',
      '0',
      '--coap-host',
      '127.0.0.1',
      ...(options.extraArgs ?? []),
    ],
    env,
  });
  let started: StartedLine;
  try {
    started = await new Promise<StartedLine>((resolve, reject) => {
      let buffered = '';
      const onData = (chunk: string) => {
        buffered += chunk;
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines) {
          const found = startedLine(line);
          if (found) {
            done();
            resolve(found);
            return;
          }
        }
      };
      const onExit = () => {
        done();
        reject(new Error(`thingloop serve exited before it started\nstdout:\n${cli.stdout()}\nstderr:\n${cli.stderr()}`));
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`thingloop serve did not start within ${START_LIMIT_MS} ms\nstderr:\n${cli.stderr()}`));
      }, START_LIMIT_MS);
      const done = () => {
        clearTimeout(timer);
        cli.child.stdout?.off('data', onData);
        cli.child.off('close', onExit);
      };
      cli.child.stdout?.on('data', onData);
      cli.child.once('close', onExit);
    });
  } catch (error) {
    await cli.kill('SIGKILL');
    throw error;
  }
  const httpUrl = `http://127.0.0.1:${started.httpPort}`;
  return {
    ...cli,
    httpPort: started.httpPort,
    mqttPort: started.mqttPort,
    httpUrl,
    mqttUrl: `mqtt://127.0.0.1:${started.mqttPort}`,
    api: <T>(path: string, init: Pick<ApiInit, 'method' | 'body' | 'auth'> = {}) => callApi<T>(httpUrl, path, init, null),
  };
}
