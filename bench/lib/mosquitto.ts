/**
 * A private Mosquitto (never the system one on 1883) as the reference broker: same load,
 * one QoS 1 subscriber on `things/+/telemetry` standing in for the platform's consumer.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { exitAsError, freePort, stopChild, track, waitFor } from './processes.js';

const CANDIDATES = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/local/bin/mosquitto'];

export function findMosquitto(): string | undefined {
  return CANDIDATES.find((path) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export interface MosquittoProcess {
  child: ChildProcess;
  pid: number;
  url: string;
  dir: string;
}

export async function startMosquitto(binary: string): Promise<MosquittoProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'thingloop-bench-mosquitto-'));
  const port = await freePort();
  const config = join(dir, 'mosquitto.conf');
  // No persistence (nothing to compare with SQLite's durability, said plainly in the report),
  // and queues large enough that a momentarily slow subscriber does not drop messages.
  writeFileSync(
    config,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'max_queued_messages 1000000',
      'max_inflight_messages 100',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      '',
    ].join('\n'),
  );
  const child = track(spawn(binary, ['-c', config], { stdio: ['ignore', 'inherit', 'inherit'] }));
  const url = `mqtt://127.0.0.1:${port}`;
  const up = waitFor(
    async () => {
      const probe = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 1000 });
      await probe.endAsync();
      return true;
    },
    15_000,
    'mosquitto to listen',
  );
  await Promise.race([up, exitAsError(child, 'mosquitto')]);
  return { child, pid: child.pid as number, url, dir };
}

export interface Subscriber {
  client: MqttClient;
  received(): number;
}

export async function subscribe(url: string): Promise<Subscriber> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 4, clientId: 'bench-subscriber', clean: true, reconnectPeriod: 0 });
  let count = 0;
  client.on('message', () => {
    count++;
  });
  await client.subscribeAsync('things/+/telemetry', { qos: 1 });
  return { client, received: () => count };
}

export async function stopMosquitto(broker: MosquittoProcess): Promise<void> {
  await stopChild(broker.child, 5_000);
  rmSync(broker.dir, { recursive: true, force: true });
}
