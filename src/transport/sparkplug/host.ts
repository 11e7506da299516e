import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { BindingHealth, DesiredState, DeviceBinding, DeviceMessage, DeviceUplink, DownlinkRequest } from '../../gateway/index.js';
import type { ModelCatalog } from '../../model/index.js';
import type { Logger } from '../../observability/index.js';
import {
  DEVICE_ID_PATTERN,
  type DeviceBindingConfig,
  type DeviceRecord,
  type DeviceRegistry,
  type FleetDeviceRef,
} from '../../registry/index.js';
import type { JsonValue } from '../../telemetry/index.js';
import {
  BD_SEQ_METRIC,
  type BirthCertificate,
  type BirthScope,
  modelIdFor,
  REBIRTH_METRIC,
  readBirth,
  readMetrics,
  writeOf,
} from './births.js';
import {
  decodeSparkplugPayload,
  encodeCommandPayload,
  type MetricWrite,
  metricValue,
  SparkplugDataType,
  type SparkplugPayload,
} from './payload.js';
import { parseSparkplugTopic, type SparkplugTopic, sparkplugDeviceIds, sparkplugTopics } from './topics.js';

const PROTOCOL = 'sparkplug-b' as const;

/** Where the host application connects: the node's own broker (with an internal credential) or an external one. */
export interface SparkplugBrokerEndpoint {
  url: string;
  username?: string;
  password?: string;
  /** False only for the node's own MQTTS listener on loopback (see HostCredential.endpoint). */
  verifyServer?: boolean;
}

export interface SparkplugHostOptions {
  /** The Sparkplug Host Application id: `spBv1.0/STATE/{hostId}`. */
  hostId: string;
  /** Read at start: the embedded broker's port is known only once it listens. */
  broker: () => SparkplugBrokerEndpoint;
  /**
   * The one tenant whose devices the host serves (`--sparkplug-tenant`, the default tenant unless set):
   * births carry no credentials that could say a tenant, so every edge node on the broker is one
   * tenant's. Devices of other tenants are none of its business, whatever their id.
   */
  tenant: string;
  /**
   * Where the tenant's Sparkplug topics live on the broker: '' on an external broker and for the
   * default tenant; the tenant's mount (`$tenant/{tenant}/`) on the embedded broker, whose edge
   * nodes of that tenant publish inside it.
   */
  topicPrefix?: string;
  /** That tenant's registry and models: births register devices and their derived models there. */
  registry: Pick<DeviceRegistry, 'find' | 'register' | 'patch'>;
  models: Pick<ModelCatalog, 'put'>;
  logger: Logger;
  /** How long a rebirth request holds before the same edge node is asked again. */
  rebirthHoldMs?: number;
  /** How long start waits for the first connection before it carries on (and keeps retrying). */
  connectWaitMs?: number;
  reconnectPeriodMs?: number;
  /** Messages one edge node may have waiting; beyond them its messages are dropped and counted. */
  maxQueuedPerEdgeNode?: number;
  /** How long a device has to report a written value before the write counts as not confirmed. */
  confirmWithinMs?: number;
  /** How long a command publish may take. */
  publishTimeoutMs?: number;
}

/** A node or device this host has seen born, with what it is waiting to confirm. */
interface BornThing {
  deviceId: string;
  certificate?: BirthCertificate;
  online: boolean;
  /** Written metrics (by property) waiting for a DATA message that carries them. */
  pendingWrites: Map<string, PendingWrite>;
  /** A desired state that arrived while the thing was dead: written at its next birth. */
  waitingDesired?: DesiredState;
}

/** A metric write waiting for the device to report the written value. */
interface PendingWrite {
  value: string | number | boolean;
  datatype: number;
  since: number;
}

/** Whether a reported value is the written one (a Float travels as 32 bits). */
export function confirms(write: Pick<PendingWrite, 'value' | 'datatype'>, reported: JsonValue): boolean {
  if (write.datatype === SparkplugDataType.Float && typeof write.value === 'number' && typeof reported === 'number') {
    return Math.fround(write.value) === Math.fround(reported);
  }
  return write.value === reported;
}

interface EdgeNodeSession {
  group: string;
  edgeNode: string;
  node: BornThing;
  devices: Map<string, BornThing>;
  bdSeq?: number;
  /** The seq the next message must carry; undefined until an NBIRTH (or when unchecked). */
  nextSeq?: number;
  born: boolean;
  rebirthRequestedAt?: number;
  /** Messages of one edge node are handled in order, one at a time; other edge nodes are not held up. */
  chain: Promise<void>;
  queued: number;
}

interface DeviceStats {
  lastGoodReadTs: number | null;
  errors: number;
  lastError?: { ts: number; message: string };
}

/** The STATE payload (spec 7.5): `{"online", "timestamp"}`, retained, QoS 1. */
export function statePayload(online: boolean, timestamp: number): string {
  return JSON.stringify({ online, timestamp });
}

function parseState(payload: Buffer): { online: boolean; timestamp: number } | undefined {
  try {
    const body: unknown = JSON.parse(payload.toString('utf8'));
    if (typeof body !== 'object' || body === null) return undefined;
    const { online, timestamp } = body as Record<string, unknown>;
    return typeof online === 'boolean' && typeof timestamp === 'number' ? { online, timestamp } : undefined;
  } catch {
    return undefined;
  }
}

/** The number a bdSeq metric carries (Int64 or UInt64 by the spec; any integer type is accepted). */
function bdSeqOf(payload: SparkplugPayload): number | undefined {
  const metric = payload.metrics.find((m) => m.name === BD_SEQ_METRIC);
  if (!metric) return undefined;
  const read = metricValue(metric, metric.datatype ?? SparkplugDataType.Int64);
  return 'value' in read && typeof read.value === 'number' ? read.value : undefined;
}

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([work, limit]).finally(() => clearTimeout(timer));
}

/**
 * A Sparkplug B v3.0 Host Application as a device binding. It announces itself on
 * `spBv1.0/STATE/{hostId}`, turns births into registered devices with derived thing models,
 * DATA into telemetry, deaths into presence, and desired writes and actions into NCMD/DCMD.
 * Sparkplug has no command acknowledgement: a write counts as delivered once published, an
 * action as succeeded then, and the next DATA carrying a written metric confirms it as the
 * device's reported value.
 */
export class SparkplugHost implements DeviceBinding {
  readonly protocol = PROTOCOL;
  private client: MqttClient | undefined;
  private uplink: DeviceUplink | undefined;
  private readonly sessions = new Map<string, EdgeNodeSession>();
  /** Platform device id → where it lives. */
  private readonly addresses = new Map<string, { session: string; device?: string }>();
  private readonly stats = new Map<string, DeviceStats>();
  private connected = false;
  private stopping = false;
  /** The timestamp of this connection's STATE birth and will (the spec wants them equal). */
  private stateTs = 0;
  private birthPublished = false;
  /** Resolves start once the first connection has announced itself. */
  private announced: (() => void) | undefined;
  private readonly rebirthHoldMs: number;
  private readonly maxQueued: number;
  private readonly publishTimeoutMs: number;
  private readonly confirmWithinMs: number;

  constructor(private readonly options: SparkplugHostOptions) {
    this.rebirthHoldMs = options.rebirthHoldMs ?? 5_000;
    this.maxQueued = options.maxQueuedPerEdgeNode ?? 1_000;
    this.publishTimeoutMs = options.publishTimeoutMs ?? 10_000;
    this.confirmWithinMs = options.confirmWithinMs ?? 30_000;
  }

  get hostId(): string {
    return this.options.hostId;
  }

  /** Whether the host holds a session with its broker. */
  get isConnected(): boolean {
    return this.connected;
  }

  async start(uplink: DeviceUplink): Promise<void> {
    this.uplink = uplink;
    const endpoint = this.options.broker();
    const stateTopic = this.mounted(sparkplugTopics.state(this.options.hostId));
    this.stateTs = uplink.now();
    const clientOptions: IClientOptions = {
      clientId: `thingloop-host-${this.options.hostId}`.slice(0, 64),
      // Spec 7.5: a host application connects with a clean session and its STATE death as will.
      clean: true,
      protocolVersion: 4,
      reconnectPeriod: this.options.reconnectPeriodMs ?? 2_000,
      connectTimeout: 10_000,
      will: { topic: stateTopic, payload: Buffer.from(statePayload(false, this.stateTs)), qos: 1, retain: true },
      ...(endpoint.username !== undefined ? { username: endpoint.username } : {}),
      ...(endpoint.password !== undefined ? { password: endpoint.password } : {}),
      ...(endpoint.verifyServer === false ? { rejectUnauthorized: false } : {}),
    };
    const client = mqtt.connect(endpoint.url, clientOptions);
    this.client = client;
    client.on('reconnect', () => {
      // Every connection announces itself with a newer timestamp; its will carries the same one.
      this.stateTs = Math.max(this.stateTs + 1, uplink.now());
      if (client.options.will) client.options.will.payload = Buffer.from(statePayload(false, this.stateTs));
    });
    client.on('connect', () => {
      this.online(client).catch((error: Error) => {
        this.options.logger.error({ err: error.message }, 'sparkplug host could not announce itself');
      });
    });
    client.on('close', () => this.lostBroker());
    client.on('error', (error) =>
      this.options.logger.warn({ err: error.message, url: endpoint.url }, 'sparkplug host broker connection error'),
    );
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    const wait = this.options.connectWaitMs ?? 5_000;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.options.logger.warn({ url: endpoint.url }, 'sparkplug host not connected yet: it keeps retrying');
        this.announced = undefined;
        resolve();
      }, wait);
      this.announced = () => {
        clearTimeout(timer);
        this.announced = undefined;
        resolve();
      };
    });
  }

  /** On every connection: STATE subscription, STATE birth (retained), then the edge nodes' topics (spec 7.5). */
  private async online(client: MqttClient): Promise<void> {
    this.birthPublished = false;
    const stateTopic = this.mounted(sparkplugTopics.state(this.options.hostId));
    await client.subscribeAsync(stateTopic, { qos: 1 });
    await client.publishAsync(stateTopic, statePayload(true, this.stateTs), { qos: 1, retain: true });
    this.birthPublished = true;
    await client.subscribeAsync(
      ['NBIRTH', 'NDEATH', 'NDATA']
        .map((type) => this.mounted(`spBv1.0/+/${type}/+`))
        .concat(['DBIRTH', 'DDEATH', 'DDATA'].map((type) => this.mounted(`spBv1.0/+/${type}/+/+`))),
      { qos: 0 },
    );
    this.connected = true;
    this.options.logger.info({ hostId: this.options.hostId }, 'sparkplug host online');
    this.announced?.();
  }

  /** Without the broker every edge node's state is unknown: each must be born again (a rebirth is asked for on its next message). */
  private lostBroker(): void {
    if (!this.connected) return;
    this.connected = false;
    this.birthPublished = false;
    this.options.logger.warn({ hostId: this.options.hostId }, 'sparkplug host lost its broker');
    for (const session of this.sessions.values()) {
      this.die(session, false).catch((error: Error) =>
        this.options.logger.error({ err: error.message }, 'sparkplug presence update failed'),
      );
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const client = this.client;
    if (!client) return;
    await Promise.allSettled([...this.sessions.values()].map((session) => session.chain));
    if (client.connected) {
      // Spec 7.5: a host that disconnects on purpose publishes its STATE death first.
      await withTimeout(
        client.publishAsync(this.mounted(sparkplugTopics.state(this.options.hostId)), statePayload(false, this.stateTs), {
          qos: 1,
          retain: true,
        }),
        this.publishTimeoutMs,
        'STATE death',
      ).catch((error: Error) => this.options.logger.warn({ err: error.message }, 'sparkplug host could not publish its STATE death'));
    }
    await client.endAsync(!client.connected).catch(() => undefined);
    this.connected = false;
  }

  // --- uplink ----------------------------------------------------------------------------------

  private onMessage(topic: string, payload: Buffer): void {
    const uplink = this.uplink;
    if (!uplink || this.stopping) return;
    const prefix = this.options.topicPrefix ?? '';
    const parsed = topic.startsWith(prefix) ? parseSparkplugTopic(topic.slice(prefix.length)) : undefined;
    if (!parsed) {
      uplink.refused(PROTOCOL, 'invalid_topic');
      return;
    }
    if (parsed.kind === 'state') {
      this.onState(parsed.hostId, payload);
      return;
    }
    if (parsed.type === 'NCMD' || parsed.type === 'DCMD') return;
    const key = `${parsed.group}/${parsed.edgeNode}`;
    let session = this.sessions.get(key);
    if (!session) {
      session = {
        group: parsed.group,
        edgeNode: parsed.edgeNode,
        node: { deviceId: sparkplugDeviceIds.edgeNode(parsed.group, parsed.edgeNode), online: false, pendingWrites: new Map() },
        devices: new Map(),
        born: false,
        chain: Promise.resolve(),
        queued: 0,
      };
      this.sessions.set(key, session);
    }
    if (session.queued >= this.maxQueued) {
      uplink.refused(PROTOCOL, 'overloaded');
      return;
    }
    const current = session;
    current.queued++;
    current.chain = current.chain
      .then(() => this.handle(current, parsed, payload))
      .catch((error: Error) => this.options.logger.error({ topic, err: error.message }, 'sparkplug message could not be handled'))
      .finally(() => {
        current.queued--;
      });
  }

  private onState(hostId: string, payload: Buffer): void {
    if (hostId !== this.options.hostId) return;
    const state = parseState(payload);
    const client = this.client;
    // Someone (a stale will, another process with our id) says we are offline while we are not: say otherwise.
    if (state && !state.online && this.birthPublished && client?.connected) {
      client
        .publishAsync(this.mounted(sparkplugTopics.state(this.options.hostId)), statePayload(true, this.stateTs), { qos: 1, retain: true })
        .catch((error: Error) => this.options.logger.warn({ err: error.message }, 'sparkplug host could not restate its STATE'));
    }
  }

  private async handle(session: EdgeNodeSession, topic: Exclude<SparkplugTopic, { kind: 'state' }>, bytes: Buffer): Promise<void> {
    const uplink = this.uplink;
    if (!uplink) return;
    let payload: SparkplugPayload;
    try {
      payload = decodeSparkplugPayload(bytes);
    } catch (error) {
      uplink.refused(PROTOCOL, 'invalid_payload');
      const subject = topic.kind === 'device' ? session.devices.get(topic.device)?.deviceId : session.node.deviceId;
      const device = subject ? await this.options.registry.find(subject) : undefined;
      const message = `${topic.type} payload is not Sparkplug B protobuf (${(error as Error).message}): dropped`;
      if (device?.binding.protocol === PROTOCOL) this.fault(device, message, 'invalid_payload');
      else this.options.logger.info({ group: session.group, edgeNode: session.edgeNode, type: topic.type }, message);
      return;
    }
    switch (topic.type) {
      case 'NBIRTH':
        await this.nodeBirth(session, payload);
        return;
      case 'NDEATH':
        await this.nodeDeath(session, payload);
        return;
      case 'NDATA':
        if (!(await this.inSequence(session, payload, topic.type))) return;
        await this.data(session.node, payload);
        return;
      case 'DBIRTH':
        if (!(await this.inSequence(session, payload, topic.type))) return;
        await this.deviceBirth(session, topic.device, payload);
        return;
      case 'DDEATH': {
        if (!(await this.inSequence(session, payload, topic.type))) return;
        const thing = session.devices.get(topic.device);
        if (thing) await this.thingDied(thing);
        return;
      }
      case 'DDATA': {
        if (!(await this.inSequence(session, payload, topic.type))) return;
        const thing = session.devices.get(topic.device);
        if (!thing?.certificate) {
          uplink.refused(PROTOCOL, 'not_born');
          await this.requestRebirth(session, `DDATA from device "${topic.device}" that has no DBIRTH`);
          return;
        }
        await this.data(thing, payload);
        return;
      }
    }
  }

  /**
   * Checks the message's seq (0–255, one per message after the NBIRTH). A message from an edge
   * node this host has not seen born, or a gap, asks for a rebirth; a gap's message is still
   * used (its values are valid), the unborn one is not.
   */
  private async inSequence(session: EdgeNodeSession, payload: SparkplugPayload, type: string): Promise<boolean> {
    const uplink = this.uplink;
    if (!uplink) return false;
    if (!session.born) {
      uplink.refused(PROTOCOL, 'not_born');
      await this.requestRebirth(session, `${type} before an NBIRTH`);
      return false;
    }
    const expected = session.nextSeq;
    if (payload.seq === undefined || expected === undefined) return true;
    session.nextSeq = (payload.seq + 1) % 256;
    if (payload.seq === expected) return true;
    uplink.refused(PROTOCOL, 'seq_gap');
    const device = await this.options.registry.find(session.node.deviceId);
    const message = `seq gap: expected ${expected}, ${type} carried ${payload.seq}: rebirth requested`;
    if (device) this.fault(device, message, 'seq_gap');
    await this.requestRebirth(session, message);
    return true;
  }

  private async nodeBirth(session: EdgeNodeSession, payload: SparkplugPayload): Promise<void> {
    const uplink = this.uplink;
    if (!uplink) return;
    // A new NBIRTH voids every earlier DBIRTH of the node (spec 7.1): devices must be born again.
    for (const thing of session.devices.values()) thing.certificate = undefined;
    const scope: BirthScope = { group: session.group, edgeNode: session.edgeNode };
    const device = await this.born(session.node, scope, payload);
    if (!device) return;
    session.bdSeq = bdSeqOf(payload);
    session.nextSeq = payload.seq !== undefined ? (payload.seq + 1) % 256 : undefined;
    session.born = true;
    session.rebirthRequestedAt = undefined;
    if (session.bdSeq === undefined)
      this.fault(device, 'NBIRTH without a bdSeq metric: its NDEATH cannot be told from a stale one', 'invalid_birth');
  }

  private async deviceBirth(session: EdgeNodeSession, name: string, payload: SparkplugPayload): Promise<void> {
    let thing = session.devices.get(name);
    if (!thing) {
      thing = { deviceId: sparkplugDeviceIds.device(session.group, session.edgeNode, name), online: false, pendingWrites: new Map() };
      session.devices.set(name, thing);
    }
    await this.born(thing, { group: session.group, edgeNode: session.edgeNode, device: name }, payload);
  }

  /** A birth: the model derived and stored, the device registered or updated, online, its values stored. */
  private async born(thing: BornThing, scope: BirthScope, payload: SparkplugPayload): Promise<DeviceRecord | undefined> {
    const uplink = this.uplink;
    if (!uplink) return undefined;
    if (!DEVICE_ID_PATTERN.test(thing.deviceId)) {
      uplink.refused(PROTOCOL, 'invalid_id');
      this.options.logger.warn({ device: thing.deviceId }, 'sparkplug birth refused: the ids do not make a valid device id');
      return undefined;
    }
    const { certificate, problems } = readBirth(scope, payload);
    const device = await this.register(thing.deviceId, scope, certificate);
    if (!device) return undefined;
    thing.certificate = certificate;
    thing.online = true;
    this.addresses.set(thing.deviceId, {
      session: `${scope.group}/${scope.edgeNode}`,
      ...(scope.device !== undefined ? { device: scope.device } : {}),
    });
    for (const problem of problems) {
      uplink.refused(PROTOCOL, 'invalid_birth');
      this.fault(device, problem, 'invalid_birth');
    }
    await uplink.receive(device, { kind: 'presence', state: 'online' }, PROTOCOL);
    await this.store(device, certificate, payload);
    // Writes that waited for the birth, then anything else queued for the device.
    const waiting = thing.waitingDesired;
    thing.waitingDesired = undefined;
    if (waiting) await this.writeDesired(device, thing, waiting).catch((error: Error) => this.fault(device, error.message, 'write_failed'));
    await uplink.receive(device, { kind: 'presence', state: 'listening' }, PROTOCOL);
    return device;
  }

  private async register(id: string, scope: BirthScope, certificate: BirthCertificate): Promise<DeviceRecord | undefined> {
    const uplink = this.uplink;
    if (!uplink) return undefined;
    const { registry, models, logger } = this.options;
    const binding: DeviceBindingConfig = {
      protocol: PROTOCOL,
      group: scope.group,
      edgeNode: scope.edgeNode,
      ...(scope.device !== undefined ? { device: scope.device } : {}),
    };
    try {
      const modelId = modelIdFor(scope);
      const { model } = await models.put(modelId, certificate.model);
      const existing = await registry.find(id);
      if (!existing) return (await registry.register({ id, model: modelId, modelVersion: model.version, binding })).device;
      const claimed = existing.binding;
      // "a:b:c" is group a, node b, device c, or group "a:b" and node c: only the registered reading counts.
      const same = claimed.protocol === PROTOCOL && claimed.group === scope.group && claimed.edgeNode === scope.edgeNode;
      if (!same || (claimed.device !== undefined && claimed.device !== scope.device)) {
        uplink.refused(PROTOCOL, 'id_taken');
        const from = `${scope.group}/${scope.edgeNode}${scope.device !== undefined ? `/${scope.device}` : ''}`;
        this.fault(existing, `a Sparkplug B birth from ${from} claims this device id, which is bound otherwise: ignored`, 'id_taken');
        return undefined;
      }
      if (existing.model === modelId && existing.modelVersion === model.version && claimed.device === binding.device) return existing;
      // Parameters an operator added to the binding are kept.
      return await registry.patch(id, { model: modelId, modelVersion: model.version, binding: { ...claimed, ...binding } });
    } catch (error) {
      uplink.refused(PROTOCOL, 'registration_failed');
      logger.warn({ device: id, err: (error as Error).message }, 'sparkplug birth could not register its device');
      return undefined;
    }
  }

  /** Telemetry from a birth or DATA message; problems on the device's errors, counted. */
  private async store(device: DeviceRecord, certificate: BirthCertificate, payload: SparkplugPayload): Promise<Map<string, JsonValue>> {
    const uplink = this.uplink;
    if (!uplink) return new Map();
    const { samples, values, problems } = readMetrics(certificate, payload, uplink.now());
    for (const problem of problems) {
      uplink.refused(PROTOCOL, problem.reason);
      this.fault(device, problem.message, problem.reason);
    }
    if (samples.length > 0) {
      const message: DeviceMessage = { kind: 'telemetry', payload: { body: samples.length === 1 ? samples[0] : samples } };
      await uplink.receive(device, message, PROTOCOL);
      this.statsOf(device.id).lastGoodReadTs = uplink.now();
    }
    return values;
  }

  private async data(thing: BornThing, payload: SparkplugPayload): Promise<void> {
    const uplink = this.uplink;
    const certificate = thing.certificate;
    if (!uplink || !certificate) return;
    const device = await this.options.registry.find(thing.deviceId);
    if (!device) return;
    const values = await this.store(device, certificate, payload);
    // No acknowledgement in Sparkplug: the written value reported back confirms the write. DATA
    // sent before the command arrived still carries the old value, so only a late one is a failure.
    const confirmed: Record<string, JsonValue> = {};
    const now = uplink.now();
    for (const [property, value] of values) {
      const pending = thing.pendingWrites.get(property);
      if (!pending) continue;
      if (confirms(pending, value)) {
        thing.pendingWrites.delete(property);
        confirmed[property] = value;
      } else if (now - pending.since > this.confirmWithinMs) {
        thing.pendingWrites.delete(property);
        this.fault(
          device,
          `the write ${property} = ${JSON.stringify(pending.value)} was not confirmed: the device still reports ${JSON.stringify(value)}`,
          'write_unconfirmed',
        );
      }
    }
    if (Object.keys(confirmed).length > 0) await uplink.receive(device, { kind: 'twin-reported', payload: { body: confirmed } }, PROTOCOL);
  }

  private async nodeDeath(session: EdgeNodeSession, payload: SparkplugPayload): Promise<void> {
    const bdSeq = bdSeqOf(payload);
    // A will from an earlier session (delivered late) must not kill the current one.
    if (session.born && session.bdSeq !== undefined && bdSeq !== undefined && bdSeq !== session.bdSeq) {
      this.uplink?.refused(PROTOCOL, 'stale_death');
      this.options.logger.info({ group: session.group, edgeNode: session.edgeNode, bdSeq, current: session.bdSeq }, 'stale NDEATH ignored');
      return;
    }
    await this.die(session, true);
  }

  /** The node and its devices are offline until the next NBIRTH. */
  private async die(session: EdgeNodeSession, told: boolean): Promise<void> {
    session.born = false;
    session.nextSeq = undefined;
    for (const thing of session.devices.values()) await this.thingDied(thing).catch(() => undefined);
    await this.thingDied(session.node).catch(() => undefined);
    if (!told) session.bdSeq = undefined;
  }

  private async thingDied(thing: BornThing): Promise<void> {
    thing.certificate = undefined;
    thing.pendingWrites.clear();
    if (!thing.online) return;
    thing.online = false;
    const device = await this.options.registry.find(thing.deviceId);
    if (device && this.uplink) await this.uplink.receive(device, { kind: 'presence', state: 'offline' }, PROTOCOL);
  }

  private async requestRebirth(session: EdgeNodeSession, why: string): Promise<void> {
    const uplink = this.uplink;
    const client = this.client;
    if (!uplink || !client?.connected) return;
    const now = uplink.now();
    if (session.rebirthRequestedAt !== undefined && now - session.rebirthRequestedAt < this.rebirthHoldMs) return;
    session.rebirthRequestedAt = now;
    const write: MetricWrite = { name: REBIRTH_METRIC, datatype: SparkplugDataType.Boolean, value: true };
    this.options.logger.info({ group: session.group, edgeNode: session.edgeNode, why }, 'sparkplug rebirth requested');
    await withTimeout(
      client.publishAsync(
        this.mounted(sparkplugTopics.edgeNode('NCMD', session.group, session.edgeNode)),
        Buffer.from(encodeCommandPayload([write], now)),
        {
          qos: 0,
        },
      ),
      this.publishTimeoutMs,
      'rebirth request',
    ).catch((error: Error) => this.options.logger.warn({ err: error.message }, 'sparkplug rebirth request failed'));
  }

  // --- downlink --------------------------------------------------------------------------------

  /** A Sparkplug topic or filter where the tenant's edge nodes use it on the broker. */
  private mounted(topic: string): string {
    return `${this.options.topicPrefix ?? ''}${topic}`;
  }

  /** The tenant's devices only: the addresses are by id, and ids repeat across tenants. */
  private serves(device: FleetDeviceRef): boolean {
    return device.tenant === this.options.tenant;
  }

  private thingOf(device: FleetDeviceRef): { session: EdgeNodeSession; thing: BornThing; device?: string } | undefined {
    if (!this.serves(device)) return undefined;
    const address = this.addresses.get(device.id);
    const session = address ? this.sessions.get(address.session) : undefined;
    if (!address || !session) return undefined;
    const thing = address.device !== undefined ? session.devices.get(address.device) : session.node;
    return thing ? { session, thing, ...(address.device !== undefined ? { device: address.device } : {}) } : undefined;
  }

  reachable(device: DeviceRecord, request: DownlinkRequest): boolean {
    // Sparkplug has no channel for error notices: they stay on the device's error list.
    if (request.kind === 'errors') return false;
    const found = this.thingOf(device);
    return this.connected && found?.session.born === true && found.thing.online && found.thing.certificate !== undefined;
  }

  async deliver(device: DeviceRecord, request: DownlinkRequest): Promise<void> {
    if (request.kind === 'errors') return;
    const found = this.thingOf(device);
    if (request.kind === 'desired') {
      if (!found || !this.reachable(device, request)) {
        // Written when the device is next born (a dead edge node hears nothing).
        if (found) found.thing.waitingDesired = request.state;
        return;
      }
      await this.writeDesired(device, found.thing, request.state);
      return;
    }
    if (!found || !this.reachable(device, request)) throw new Error(`${device.id} is not online on Sparkplug B (no birth since its death)`);
    const definition = found.thing.certificate?.byAffordance.get(request.action);
    if (definition?.affordance?.kind !== 'action')
      throw new Error(`the birth of ${device.id} has no control metric for action "${request.action}"`);
    const write = writeOf(definition, request.input === undefined || request.input === null ? true : request.input);
    if ('problem' in write) throw new Error(write.problem);
    await this.command(
      found.session,
      found.device,
      [write],
      Math.min(request.timeoutMs > 0 ? request.timeoutMs : this.publishTimeoutMs, this.publishTimeoutMs),
    );
    const uplink = this.uplink;
    // Recorded as delivered before delivery: the result may follow at once.
    uplink
      ?.receive(
        device,
        {
          kind: 'action-result',
          action: request.action,
          payload: { body: { id: request.id, output: { metric: write.name, value: write.value } } },
        },
        PROTOCOL,
      )
      .catch((error: Error) => this.options.logger.warn({ device: device.id, err: error.message }, 'sparkplug action result not recorded'));
  }

  private async writeDesired(device: DeviceRecord, thing: BornThing, state: DesiredState): Promise<void> {
    const certificate = thing.certificate;
    const found = this.thingOf(device);
    if (!certificate || !found) return;
    const writes: MetricWrite[] = [];
    const problems: string[] = [];
    for (const [property, value] of Object.entries(state.delta)) {
      if (value === null) continue;
      const definition = certificate.byAffordance.get(property);
      if (definition?.affordance?.kind !== 'property') {
        problems.push(`desired "${property}" has no metric in the birth of ${device.id}`);
        continue;
      }
      const write = writeOf(definition, value);
      if ('problem' in write) problems.push(write.problem);
      else writes.push(write);
    }
    if (writes.length === 0 && problems.length > 0) throw new Error(problems.join('; '));
    for (const problem of problems) this.fault(device, problem, 'write_refused');
    if (writes.length === 0) return;
    await this.command(found.session, found.device, writes, this.publishTimeoutMs);
    for (const write of writes) {
      const property = certificate.byName.get(write.name)?.affordance?.name;
      if (property !== undefined)
        thing.pendingWrites.set(property, { value: write.value, datatype: write.datatype, since: this.uplink?.now() ?? Date.now() });
    }
  }

  /** An NCMD (the node) or DCMD (a device) with metric writes, QoS 0 as the spec has commands. */
  private async command(session: EdgeNodeSession, device: string | undefined, writes: MetricWrite[], timeoutMs: number): Promise<void> {
    const client = this.client;
    if (!client?.connected) throw new Error('the Sparkplug host is not connected to its broker');
    const topic =
      device !== undefined
        ? sparkplugTopics.device('DCMD', session.group, session.edgeNode, device)
        : sparkplugTopics.edgeNode('NCMD', session.group, session.edgeNode);
    const bytes = Buffer.from(encodeCommandPayload(writes, this.uplink?.now() ?? Date.now()));
    await withTimeout(
      client.publishAsync(this.mounted(topic), bytes, { qos: 0 }),
      timeoutMs,
      `${device !== undefined ? 'DCMD' : 'NCMD'} publish`,
    );
  }

  // --- health ----------------------------------------------------------------------------------

  private statsOf(deviceId: string): DeviceStats {
    let stats = this.stats.get(deviceId);
    if (!stats) {
      stats = { lastGoodReadTs: null, errors: 0 };
      this.stats.set(deviceId, stats);
    }
    return stats;
  }

  /** A device's fault: on its error list (through the gateway) and in its binding health. */
  private fault(device: DeviceRecord, message: string, reason: string): void {
    const stats = this.statsOf(device.id);
    stats.errors++;
    stats.lastError = { ts: this.uplink?.now() ?? Date.now(), message };
    this.uplink?.reportError(device, message, reason);
  }

  async attach(): Promise<void> {
    // Devices are learnt from births; nothing to open per device.
  }

  async detach(device: FleetDeviceRef): Promise<void> {
    if (this.serves(device)) this.stats.delete(device.id);
  }

  health(device: DeviceRecord): BindingHealth {
    const stats = this.serves(device) ? this.stats.get(device.id) : undefined;
    const found = this.thingOf(device);
    const state: BindingHealth['state'] = !found
      ? stats
        ? 'unreachable'
        : 'idle'
      : this.connected && found.thing.online && found.session.born
        ? 'connected'
        : 'unreachable';
    return {
      protocol: PROTOCOL,
      state,
      lastGoodReadTs: stats?.lastGoodReadTs ?? null,
      errors: stats?.errors ?? 0,
      latencyMs: null,
      ...(stats?.lastError ? { lastError: stats.lastError } : {}),
    };
  }
}
