import mqtt, { type MqttClient } from 'mqtt';
import { get } from 'sparkplug-payload';
import type { UMetric, UPayload } from 'sparkplug-payload/lib/sparkplugbpayload.js';

/**
 * A simulated Sparkplug B edge node for the demo: a tank farm gateway with tanks behind it, on
 * MQTT.js and the Eclipse Tahu payload library, as field gateways are built. It keeps the spec
 * v3.0 rules an edge node must (NDEATH as will with the session's bdSeq, seq 0–255 over every
 * message, DATA by alias, a rebirth on `Node Control/Rebirth`), and its tanks react to commands:
 * the inlet valve setpoint moves the level, `Device Control/Flush` empties a tank.
 */

const codec = get('spBv1.0');

export interface SparkplugEdgeNodeOptions {
  url: string;
  group: string;
  edgeNode: string;
  /** On Thingloop's broker: the edge node's device id (`{group}:{edgeNode}`) and token. */
  username?: string;
  password?: string;
  tanks?: number;
  /** Time between DDATA messages. */
  intervalMs?: number;
  /** Plant seconds per real second. */
  speedup?: number;
}

interface Tank {
  name: string;
  level: number;
  temperature: number;
  inletValve: number;
}

/** Aliases are fixed per metric, as a gateway configured once keeps them. */
const ALIAS = { uptime: 1, level: 10, temperature: 11, inletValve: 12, flush: 13 } as const;

export interface SparkplugEdgeNodeStats {
  births: number;
  data: number;
  commands: number;
}

export class SimulatedSparkplugEdgeNode {
  private client: MqttClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  private bdSeq = 0;
  private readonly startedAt = Date.now();
  private readonly tanks: Tank[];
  readonly stats: SparkplugEdgeNodeStats = { births: 0, data: 0, commands: 0 };

  constructor(private readonly options: SparkplugEdgeNodeOptions) {
    this.tanks = Array.from({ length: options.tanks ?? 2 }, (_, i) => ({
      name: `tank-${i + 1}`,
      level: 40 + i * 10,
      temperature: 18 + i,
      inletValve: 50,
    }));
  }

  /** The platform device ids of the node and its tanks. */
  deviceIds(): string[] {
    const { group, edgeNode } = this.options;
    return [`${group}:${edgeNode}`, ...this.tanks.map((tank) => `${group}:${edgeNode}:${tank.name}`)];
  }

  private topic(type: string, device?: string): string {
    return `spBv1.0/${this.options.group}/${type}/${this.options.edgeNode}${device !== undefined ? `/${device}` : ''}`;
  }

  private encode(payload: UPayload): Buffer {
    if (!codec) throw new Error('sparkplug-payload has no spBv1.0 codec');
    return Buffer.from(codec.encodePayload(payload));
  }

  private nextSeq(): number {
    const seq = this.seq;
    this.seq = (this.seq + 1) % 256;
    return seq;
  }

  private deathPayload(): Buffer {
    return this.encode({ timestamp: Date.now(), metrics: [{ name: 'bdSeq', type: 'Int64', value: this.bdSeq }] });
  }

  async start(): Promise<void> {
    const { url, username, password } = this.options;
    this.client = await mqtt.connectAsync(url, {
      clientId: `sim-sparkplug-${this.options.group}-${this.options.edgeNode}`.slice(0, 64),
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      will: { topic: this.topic('NDEATH'), payload: this.deathPayload(), qos: 1, retain: false },
      ...(username !== undefined ? { username } : {}),
      ...(password !== undefined ? { password } : {}),
    });
    this.client.on('message', (topic, payload) => {
      this.command(topic, payload).catch(() => undefined);
    });
    await this.client.subscribeAsync([this.topic('NCMD'), `${this.topic('DCMD')}/+`], { qos: 0 });
    await this.birth();
    const interval = this.options.intervalMs ?? 1_000;
    this.timer = setInterval(() => {
      this.tick(interval / 1000).catch(() => undefined);
    }, interval);
  }

  private tankMetrics(tank: Tank, withDefinitions: boolean): UMetric[] {
    const metric = (
      name: string,
      alias: number,
      type: UMetric['type'],
      value: UMetric['value'],
      properties?: UMetric['properties'],
    ): UMetric =>
      withDefinitions ? { name, alias, type, value, ...(properties ? { properties } : {}) } : ({ alias, type, value } as UMetric);
    const percent = {
      engUnit: { type: 'String', value: '%' },
      engLow: { type: 'Float', value: 0 },
      engHigh: { type: 'Float', value: 100 },
    } as const;
    return [
      metric('Level', ALIAS.level, 'Float', Math.round(tank.level * 100) / 100, withDefinitions ? { ...percent } : undefined),
      metric(
        'Temperature',
        ALIAS.temperature,
        'Float',
        Math.round(tank.temperature * 100) / 100,
        withDefinitions ? { engUnit: { type: 'String', value: 'Cel' } } : undefined,
      ),
      metric('Inlet Valve', ALIAS.inletValve, 'Float', tank.inletValve, withDefinitions ? { ...percent } : undefined),
      ...(withDefinitions ? [metric('Device Control/Flush', ALIAS.flush, 'Boolean', false)] : []),
    ];
  }

  /** NBIRTH then a DBIRTH per tank (seq restarts at 0 with the NBIRTH). */
  private async birth(): Promise<void> {
    const client = this.client;
    if (!client) return;
    this.seq = 0;
    await client.publishAsync(
      this.topic('NBIRTH'),
      this.encode({
        timestamp: Date.now(),
        seq: this.nextSeq(),
        metrics: [
          { name: 'bdSeq', type: 'Int64', value: this.bdSeq },
          { name: 'Node Control/Rebirth', type: 'Boolean', value: false },
          { name: 'Uptime', alias: ALIAS.uptime, type: 'UInt32', value: Math.floor((Date.now() - this.startedAt) / 1000) },
        ],
      }),
      { qos: 0 },
    );
    for (const tank of this.tanks) {
      await client.publishAsync(
        this.topic('DBIRTH', tank.name),
        this.encode({ timestamp: Date.now(), seq: this.nextSeq(), metrics: this.tankMetrics(tank, true) }),
        { qos: 0 },
      );
    }
    this.stats.births++;
  }

  private async tick(seconds: number): Promise<void> {
    const client = this.client;
    if (!client?.connected) return;
    const dt = seconds * (this.options.speedup ?? 1);
    for (const tank of this.tanks) {
      // Inflow follows the valve, outflow the level (a tank drains faster when full).
      const inflow = (tank.inletValve / 100) * 0.8;
      const outflow = (tank.level / 100) * 0.6;
      tank.level = Math.min(100, Math.max(0, tank.level + (inflow - outflow) * dt));
      tank.temperature += (Math.random() - 0.5) * 0.05 * dt;
      await client.publishAsync(
        this.topic('DDATA', tank.name),
        this.encode({ timestamp: Date.now(), seq: this.nextSeq(), metrics: this.tankMetrics(tank, false) }),
        { qos: 0 },
      );
      this.stats.data++;
    }
  }

  private async command(topic: string, bytes: Buffer): Promise<void> {
    if (!codec) return;
    const payload = codec.decodePayload(bytes);
    this.stats.commands++;
    if (topic === this.topic('NCMD')) {
      if ((payload.metrics ?? []).some((m) => m.name === 'Node Control/Rebirth' && m.value === true)) await this.birth();
      return;
    }
    const tank = this.tanks.find((t) => topic === this.topic('DCMD', t.name));
    if (!tank) return;
    for (const metric of payload.metrics ?? []) {
      const alias = metric.alias === undefined || metric.alias === null ? undefined : Number(metric.alias);
      if ((metric.name === 'Inlet Valve' || alias === ALIAS.inletValve) && typeof metric.value === 'number') {
        tank.inletValve = Math.min(100, Math.max(0, metric.value));
      } else if ((metric.name === 'Device Control/Flush' || alias === ALIAS.flush) && metric.value === true) {
        tank.level = 0;
      }
    }
    // Report at once: the host takes the written metric coming back as the write's confirmation.
    await this.client?.publishAsync(
      this.topic('DDATA', tank.name),
      this.encode({ timestamp: Date.now(), seq: this.nextSeq(), metrics: this.tankMetrics(tank, false) }),
      { qos: 0 },
    );
  }

  /** A clean stop: the node says it is going (NDEATH) before it disconnects. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const client = this.client;
    if (!client) return;
    if (client.connected) await client.publishAsync(this.topic('NDEATH'), this.deathPayload(), { qos: 1 }).catch(() => undefined);
    await client.endAsync().catch(() => undefined);
    this.bdSeq = (this.bdSeq + 1) % 256;
  }
}
