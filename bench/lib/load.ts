/** Runs bench/load-generator.ts as its own process and relays its phases to the caller. */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { exitAsError, track } from './processes.js';
import type { ChildMessage, LoadConfig, LoadResult, ParentMessage } from './protocol.js';

export interface LoadHooks {
  /** The generator's pid, to sample its CPU: it shares the machine with the server. */
  spawned?(pid: number): void;
  /** After every connection is up, before any publish (e.g. to reset counters). */
  connected?(seconds: number): Promise<void> | void;
  measureStart?(): Promise<void> | void;
  measureEnd?(): Promise<void> | void;
}

const GENERATOR = fileURLToPath(new URL('../load-generator.ts', import.meta.url));

export async function runLoad(config: LoadConfig, hooks: LoadHooks = {}): Promise<LoadResult> {
  const child = track(
    fork(GENERATOR, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, BENCH_LOAD_CONFIG: JSON.stringify(config) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  hooks.spawned?.(child.pid as number);
  const result = new Promise<LoadResult>((resolve, reject) => {
    const pending: Promise<void>[] = [];
    child.on('message', (message: ChildMessage) => {
      switch (message.type) {
        case 'connected':
          Promise.resolve(hooks.connected?.(message.seconds)).then(() => child.send({ type: 'go' } satisfies ParentMessage), reject);
          break;
        case 'measure-start':
          pending.push(Promise.resolve(hooks.measureStart?.()));
          break;
        case 'measure-end':
          pending.push(Promise.resolve(hooks.measureEnd?.()));
          break;
        case 'result':
          Promise.all(pending).then(() => resolve(message.result), reject);
          break;
        case 'failed':
          reject(new Error(`load generator failed: ${message.message}`));
          break;
      }
    });
  });
  return Promise.race([result, exitAsError(child, 'the load generator')]);
}
