/** IPC between a benchmark and bench/sdk-fleet.ts, and the helper that starts the fleet. */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LatencySummary } from './histogram.js';
import { exitAsError, track } from './processes.js';

export interface FleetConfig {
  mqttUrl: string;
  devices: { id: string; token: string }[];
  connectConcurrency: number;
}

export interface FleetLoop {
  type: 'loop';
  /** Aggregate `temp` samples per second over the fleet. */
  rate: number;
  warmupSeconds: number;
  seconds: number;
}

export type FleetOrder = FleetLoop | { type: 'config'; config: FleetConfig } | { type: 'report' } | { type: 'stop' };

export type FleetMessage =
  | { type: 'connected'; seconds: number }
  | { type: 'loop-result'; latency: LatencySummary; open: number }
  | { type: 'report'; desiredArrivals: [number, number][]; reported: number; actions: number }
  | { type: 'failed'; message: string };

/** Wall-clock milliseconds with sub-ms resolution, comparable across processes on one machine. */
export const nowMs = () => performance.timeOrigin + performance.now();

const FLEET = fileURLToPath(new URL('../sdk-fleet.ts', import.meta.url));

export class FleetProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly connectSeconds: number,
  ) {}

  static async start(config: FleetConfig): Promise<FleetProcess> {
    const child = track(
      fork(FLEET, [], {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    );
    // Over IPC, not the environment: 10,000 credentials exceed what exec accepts (E2BIG).
    child.send({ type: 'config', config } satisfies FleetOrder);
    const message = await Promise.race([FleetProcess.next(child, 'connected'), exitAsError(child, 'the device fleet')]);
    return new FleetProcess(child, message.seconds);
  }

  private static next<T extends FleetMessage['type']>(child: ChildProcess, type: T): Promise<Extract<FleetMessage, { type: T }>> {
    return new Promise((resolve, reject) => {
      const listener = (message: FleetMessage) => {
        if (message.type === 'failed') reject(new Error(`device fleet failed: ${message.message}`));
        else if (message.type === type) resolve(message as Extract<FleetMessage, { type: T }>);
        else return;
        child.off('message', listener);
      };
      child.on('message', listener);
    });
  }

  async ask<T extends FleetMessage['type']>(order: FleetOrder, answer: T): Promise<Extract<FleetMessage, { type: T }>> {
    const reply = FleetProcess.next(this.child, answer);
    this.child.send(order);
    return Promise.race([reply, exitAsError(this.child, 'the device fleet')]);
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null) return resolve();
      const force = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      this.child.once('exit', () => {
        clearTimeout(force);
        resolve();
      });
      this.child.send({ type: 'stop' } satisfies FleetOrder);
    });
  }
}
