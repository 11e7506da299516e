/** What the orchestrator (bench/ingest.ts) and the load generator tell each other over IPC. */
import type { LatencySummary } from './histogram.js';

export interface LoadConfig {
  label: string;
  mqttUrl: string;
  devices: { id: string; token: string }[];
  /** Target aggregate publish rate, messages per second. */
  rate: number;
  warmupSeconds: number;
  durationSeconds: number;
  /** Unacknowledged QoS 1 publishes allowed per connection. */
  inflight: number;
  /** Connections opened at once while connecting. */
  connectConcurrency: number;
  progressSeconds: number;
}

export interface LoadResult {
  label: string;
  connectSeconds: number;
  /** Measured window only (after warm-up). */
  measuredSeconds: number;
  sent: number;
  acked: number;
  ackedPerSecond: number;
  /** Messages the schedule asked for but no connection had window room: the target was not met. */
  behindSchedule: number;
  latency: LatencySummary;
  /** Over the whole run (warm-up included), for checking the server's counters. */
  totalSent: number;
  totalAcked: number;
  unackedAtEnd: number;
  errors: string[];
}

export type ChildMessage =
  | { type: 'connected'; seconds: number }
  | { type: 'measure-start' }
  | { type: 'measure-end' }
  | { type: 'result'; result: LoadResult }
  | { type: 'failed'; message: string };

export type ParentMessage = { type: 'go' };
