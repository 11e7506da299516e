/**
 * A Sparkplug B edge node for tests, written the way field gateways are: MQTT.js and the Eclipse
 * Tahu payload library (`sparkplug-payload`, real protobuf), with NDEATH as its will and the seq
 * and bdSeq bookkeeping of spec v3.0. And a real Mosquitto broker on a free port.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, connect as tcpConnect } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { get } from 'sparkplug-payload';
import type { UMetric, UPayload } from 'sparkplug-payload/lib/sparkplugbpayload.js';

const codec = get('spBv1.0');
if (!codec) throw new Error('sparkplug-payload has no spBv1.0 codec');
export const sparkplug = codec;

export interface ReceivedCommand {
  topic: string;
  payload: UPayload;
}

export interface EdgeNodeOptions {
  url: string;
  group: string;
  edgeNode: string;
  username?: string;
  password?: string;
  /** The bdSeq of this session (the will carries it too). */
  bdSeq?: number;
}

export class TestEdgeNode {
  readonly commands: ReceivedCommand[] = [];
  client!: MqttClient;
  private seq = 0;
  readonly bdSeq: number;

  constructor(readonly options: EdgeNodeOptions) {
    this.bdSeq = options.bdSeq ?? 0;
  }

  topic(type: string, device?: string): string {
    return `spBv1.0/${this.options.group}/${type}/${this.options.edgeNode}${device !== undefined ? `/${device}` : ''}`;
  }

  async connect(): Promise<void> {
    const death = sparkplug.encodePayload({ timestamp: Date.now(), metrics: [{ name: 'bdSeq', type: 'Int64', value: this.bdSeq }] });
    this.client = await mqtt.connectAsync(this.options.url, {
      clientId: `edge-${this.options.group}-${this.options.edgeNode}-${Math.random().toString(16).slice(2, 8)}`,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      will: { topic: this.topic('NDEATH'), payload: Buffer.from(death), qos: 1, retain: false },
      ...(this.options.username !== undefined ? { username: this.options.username } : {}),
      ...(this.options.password !== undefined ? { password: this.options.password } : {}),
    });
    this.client.on('message', (topic, payload) => {
      // STATE (JSON) arrives here too when a test subscribes to it.
      if (topic.includes('/NCMD/') || topic.includes('/DCMD/')) this.commands.push({ topic, payload: sparkplug.decodePayload(payload) });
    });
    await this.client.subscribeAsync([this.topic('NCMD'), `spBv1.0/${this.options.group}/DCMD/${this.options.edgeNode}/+`], { qos: 0 });
  }

  private nextSeq(): number {
    const seq = this.seq;
    this.seq = (this.seq + 1) % 256;
    return seq;
  }

  /** Skips seq numbers, as lost messages would. */
  skip(count: number): void {
    this.seq = (this.seq + count) % 256;
  }

  async publish(type: string, metrics: UMetric[], device?: string, options: { seq?: number; timestamp?: number } = {}): Promise<void> {
    const seq = options.seq ?? this.nextSeq();
    const payload = sparkplug.encodePayload({ timestamp: options.timestamp ?? Date.now(), seq, metrics });
    await this.client.publishAsync(this.topic(type, device), Buffer.from(payload), { qos: 0 });
  }

  async nodeBirth(metrics: UMetric[]): Promise<void> {
    this.seq = 0;
    await this.publish('NBIRTH', [
      { name: 'bdSeq', type: 'Int64', value: this.bdSeq },
      { name: 'Node Control/Rebirth', type: 'Boolean', value: false },
      ...metrics,
    ]);
  }

  async raw(type: string, bytes: Buffer, device?: string): Promise<void> {
    await this.client.publishAsync(this.topic(type, device), bytes, { qos: 0 });
  }

  async death(): Promise<void> {
    const payload = sparkplug.encodePayload({ timestamp: Date.now(), metrics: [{ name: 'bdSeq', type: 'Int64', value: this.bdSeq }] });
    await this.client.publishAsync(this.topic('NDEATH'), Buffer.from(payload), { qos: 1 });
  }

  /** Ends the connection without DISCONNECT: the broker publishes the will (NDEATH). */
  drop(): void {
    this.client.stream.destroy();
  }

  async close(): Promise<void> {
    await this.client.endAsync(true).catch(() => undefined);
  }

  /** The commands received on `topic` whose metrics include `name`. */
  commandsFor(topic: string, name: string): UMetric[] {
    return this.commands.filter((c) => c.topic === topic).flatMap((c) => (c.payload.metrics ?? []).filter((m) => m.name === name));
  }
}

/** A port nothing listens on right now (the OS picks it; it is released before use). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface Mosquitto {
  url: string;
  port: number;
  stop(): Promise<void>;
}

const mosquittos = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of mosquittos) child.kill('SIGKILL');
});

function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Debian's mosquitto on a free loopback port (local-only mode, anonymous clients allowed). */
export async function startMosquitto(): Promise<Mosquitto> {
  const port = await freePort();
  const child = spawn('mosquitto', ['-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  mosquittos.add(child);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  while (!(await reachable(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`mosquitto did not start on ${port}: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      mosquittos.delete(child);
    },
  };
}
