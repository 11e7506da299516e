import { createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Aedes, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { GuessingBrake } from '../../access/index.js';
import type { Logger, TransportMetrics } from '../../observability/index.js';
import type { DeviceRecord, DeviceRegistry } from '../../registry/index.js';
import { ADMIN_OWNER, ClientIdBook, type ClientIdOwner, deviceOwner } from './client-ids.js';
import { type FixedHeader, guardPacketSizes, type PacketSizeLimits } from './packet-guard.js';
import { sparkplugForwardAllowed, sparkplugPublishAllowed, sparkplugSubscribeAllowed } from './sparkplug-acl.js';
import { type DeviceTopic, devicePublishAllowed, deviceSubscribeAllowed, thingTopics, topicMatches } from './topics.js';

/** The MQTT username that authenticates with the admin key (integrations, benchmarks). */
export const ADMIN_USERNAME = '$admin';

type Principal = { kind: 'device'; device: DeviceRecord } | { kind: 'admin' };

/**
 * What the broker does with a device's message, supplied by the node. The returned promise
 * gates the PUBACK: a QoS 1 message is acknowledged only once its handler has finished.
 */
export type DeviceMessageHandler = (device: DeviceRecord, topic: DeviceTopic, payload: Buffer) => Promise<void>;

/** Session facts the node turns into presence and wake-up delivery. */
export interface SessionObserver {
  opened(device: DeviceRecord): void;
  closed(device: DeviceRecord): void;
  /** The device subscribed to filters under its prefix (it can hear downlink now). */
  subscribed(device: DeviceRecord, filters: string[]): void;
  /** Any publish from the device, before it is handled. */
  uplink(device: DeviceRecord): void;
}

/** What the broker accepts from a connection before and after it authenticates. */
export interface MqttLimits {
  /** The ingest payload limit: a PUBLISH may announce it plus its topic, and no more. */
  maxPayloadBytes: number;
  /** The largest CONNECT (remaining length). */
  maxConnectBytes: number;
  /** The largest SUBSCRIBE, UNSUBSCRIBE or other control packet. */
  maxControlPacketBytes: number;
  /** Connections not yet authenticated; a socket beyond them is closed at once. */
  maxUnauthenticated: number;
  /** How long a connection may take from opening to a successful login. */
  connectTimeoutMs: number;
  /** How long an address the guessing brake holds waits for its refusal. */
  brakedRefusalDelayMs: number;
}

export const DEFAULT_MQTT_LIMITS: MqttLimits = {
  maxPayloadBytes: 256 * 1024,
  maxConnectBytes: 64 * 1024,
  maxControlPacketBytes: 64 * 1024,
  maxUnauthenticated: 1_000,
  connectTimeoutMs: 10_000,
  brakedRefusalDelayMs: 1_000,
};

/** Room for a PUBLISH's topic (length-prefixed) and packet id next to its payload. */
const PUBLISH_ENVELOPE_BYTES = 2 + 1024 + 2;

export function packetSizeLimits(limits: MqttLimits): PacketSizeLimits {
  return {
    connect: limits.maxConnectBytes,
    publish: limits.maxPayloadBytes + PUBLISH_ENVELOPE_BYTES,
    other: limits.maxControlPacketBytes,
  };
}

export interface MqttBrokerOptions {
  port: number;
  host?: string;
  registry: DeviceRegistry;
  handleDeviceMessage: DeviceMessageHandler;
  sessions: SessionObserver;
  isAdminKey(secret: string): boolean;
  /** Shared with the HTTP API: failed logins from one address spend one budget. */
  brake: Pick<GuessingBrake, 'retryAfterMs' | 'failed'>;
  limits?: Partial<MqttLimits>;
  metrics: TransportMetrics;
  logger: Logger;
}

/** One accepted socket, from before its login to its close. */
interface Connection {
  socket: Socket;
  address: string;
  closed: boolean;
  /** Closes it if it has not authenticated in time. */
  deadline: NodeJS.Timeout;
  /** The client, once it has claimed its client id. */
  client?: Client;
}

/** Why a login was refused, as CONNACK return code and message. */
interface Refusal {
  returnCode: 2 | 3 | 4 | 5;
  message: string;
}

function ownerOf(principal: Principal): ClientIdOwner {
  return principal.kind === 'admin' ? ADMIN_OWNER : deviceOwner(principal.device.id);
}

function authError(returnCode: number, message: string): AuthenticateError {
  const error = new Error(message) as AuthenticateError;
  error.returnCode = returnCode;
  return error;
}

/**
 * The embedded broker (Aedes, MQTT 3.1.1). Authentication is device id + token, the ACL keeps
 * each device under `things/{id}/`, and device messages are handled inside `authorizePublish`,
 * so the PUBACK of a QoS 1 telemetry message goes out only after its samples are committed.
 */
export class EmbeddedMqttBroker {
  private readonly principals = new WeakMap<Client, Principal>();
  private readonly sessions = new Map<string, Set<Client>>();
  private readonly subscriptions = new WeakMap<Client, Set<string>>();
  /** Device messages being handled: `stop` waits for them, since they write to the store. */
  private readonly handling = new Set<Promise<void>>();
  /** By the stream the broker reads (an Aedes client's `conn`). */
  private readonly connections = new WeakMap<object, Connection>();
  private readonly unauthenticated = new Set<Connection>();
  private readonly clientIds = new ClientIdBook<Client>();
  private readonly limits: MqttLimits;
  private broker!: Aedes;
  private server!: Server;
  private boundPort = 0;

  constructor(private readonly options: MqttBrokerOptions) {
    this.limits = { ...DEFAULT_MQTT_LIMITS, ...options.limits };
  }

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    const { options } = this;
    this.broker = await Aedes.createBroker({
      // A backstop only: the broker's own deadline (connectTimeoutMs) covers the whole login and counts it.
      connectTimeout: this.limits.connectTimeoutMs * 2,
      authenticate: (client, username, password, done) => {
        this.authenticate(client, username, password).then(
          (refusal) => done(refusal ? authError(refusal.returnCode, refusal.message) : null, !refusal),
          (error: Error) => done(authError(3, `server unavailable: ${error.message}`), false),
        );
      },
      authorizePublish: (client, packet, done) => this.authorizePublish(client, packet, done),
      authorizeSubscribe: (client, subscription, done) => done(null, this.authorizeSubscribe(client, subscription)),
      // A device hears only its own topics, also from a persistent session stored under a
      // client id that once belonged to another device.
      authorizeForward: (client, packet) => {
        const principal = this.principals.get(client);
        if (principal?.kind === 'admin') return packet;
        if (!principal) return null;
        const ownTopic = packet.topic.startsWith(thingTopics.prefix(principal.device.id));
        return ownTopic || sparkplugForwardAllowed(principal.device, packet.topic) ? packet : null;
      },
    });
    this.broker.on('client', (client) => this.track(client, true));
    this.broker.on('clientDisconnect', (client) => this.track(client, false));
    this.broker.on('subscribe', (subscriptions, client) => this.onSubscribe(client, subscriptions));
    this.broker.on('unsubscribe', (filters, client) => {
      for (const filter of filters) this.subscriptions.get(client)?.delete(filter);
    });
    this.broker.on('clientError', (client, error) => options.logger.debug({ client: client.id, err: error.message }, 'mqtt client error'));
    const packetLimits = packetSizeLimits(this.limits);
    this.server = createServer((socket) => this.accept(socket, packetLimits));
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(options.port, options.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const address = this.server.address();
    this.boundPort = typeof address === 'object' && address ? address.port : options.port;
    options.registry.events.on('removed', (device) => {
      this.disconnectDevice(device.id, 'device deleted');
      this.clientIds.forgetOwner(deviceOwner(device.id));
    });
    options.registry.events.on('credentialRotated', (device) => this.disconnectDevice(device.id, 'token rotated'));
  }

  /** A new socket: refused at once beyond the unauthenticated cap, otherwise guarded and handed to Aedes. */
  private accept(socket: Socket, packetLimits: PacketSizeLimits): void {
    const { metrics, logger } = this.options;
    const address = socket.remoteAddress;
    // Gone before it could be read: nothing to serve.
    if (address === undefined) {
      socket.destroy();
      return;
    }
    if (this.unauthenticated.size >= this.limits.maxUnauthenticated) {
      metrics.refused('mqtt', 'too_many_unauthenticated');
      logger.debug({ address }, 'mqtt connection refused: too many connections have not authenticated');
      socket.destroy();
      return;
    }
    const connection: Connection = {
      socket,
      address,
      closed: false,
      deadline: setTimeout(() => {
        metrics.refused('mqtt', 'connect_timeout');
        logger.debug({ address }, 'mqtt connection closed: no login in time');
        socket.destroy();
      }, this.limits.connectTimeoutMs),
    };
    this.unauthenticated.add(connection);
    socket.once('close', () => {
      connection.closed = true;
      clearTimeout(connection.deadline);
      this.unauthenticated.delete(connection);
      if (connection.client) this.clientIds.release(connection.client.id, connection.client);
    });
    const conn = guardPacketSizes(socket, packetLimits, (header: FixedHeader) => {
      metrics.refused('mqtt', 'packet_too_large');
      logger.info(
        { address, packetType: header.type, announcedBytes: header.remainingLength },
        'mqtt packet over the size limit: connection closed',
      );
    });
    this.connections.set(conn, connection);
    this.broker.handle(conn);
  }

  /** Undefined when the login is accepted. */
  private async authenticate(client: Client, username: string | undefined, password: Buffer | undefined): Promise<Refusal | undefined> {
    const { metrics, logger, brake } = this.options;
    const connection = this.connections.get(client.conn);
    if (!connection) return { returnCode: 3, message: 'connection not accepted by the broker' };
    const { address } = connection;
    if (brake.retryAfterMs(address) > 0) {
      metrics.refused('mqtt', 'rate_limited');
      logger.debug({ address }, 'mqtt login refused: too many failed logins from this address');
      // Refused without looking at the credentials (the answer would still be an oracle), and
      // slowly, so a guesser that waits for answers gets few of them.
      await sleep(this.limits.brakedRefusalDelayMs, undefined, { ref: false });
      return { returnCode: 3, message: 'too many failed logins from this address: retry later' };
    }
    const principal = await this.principalFor(username, password);
    if (!principal) {
      brake.failed(address);
      metrics.authFailed('mqtt');
      // Never the username or password as given: a device that swaps them would log its token.
      const registered = username !== undefined && username !== ADMIN_USERNAME && (await this.options.registry.find(username));
      logger.info(
        { address, clientIdLength: client.id.length, ...(registered ? { device: registered.id } : {}) },
        'mqtt authentication refused',
      );
      return { returnCode: 4, message: 'bad device id or token' };
    }
    // Closed while the credentials were checked: claiming its id now would outlive it.
    if (connection.closed) return { returnCode: 3, message: 'connection closed during login' };
    if (!this.clientIds.claim(client.id, ownerOf(principal), client, !client.clean)) {
      metrics.refused('mqtt', 'client_id_taken');
      logger.warn(
        { address, ...(principal.kind === 'device' ? { device: principal.device.id } : { admin: true }), clientId: client.id },
        'mqtt login refused: the client id belongs to another device',
      );
      return { returnCode: 2, message: 'client id in use by another device' };
    }
    connection.client = client;
    clearTimeout(connection.deadline);
    this.unauthenticated.delete(connection);
    this.principals.set(client, principal);
    return undefined;
  }

  private async principalFor(username: string | undefined, password: Buffer | undefined): Promise<Principal | undefined> {
    const secret = password?.toString('utf8') ?? '';
    if (username === ADMIN_USERNAME) return this.options.isAdminKey(secret) ? { kind: 'admin' } : undefined;
    const device = username ? await this.options.registry.authenticate(username, secret) : undefined;
    return device ? { kind: 'device', device } : undefined;
  }

  private authorizePublish(client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void): void {
    // Internal publishes (errors, desired state, action requests) come without a client.
    if (!client) {
      done(null);
      return;
    }
    const principal = this.principals.get(client);
    if (!principal) {
      done(new Error('not authenticated'));
      return;
    }
    if (principal.kind === 'admin') {
      done(null);
      return;
    }
    // A Sparkplug B edge node's own births, deaths and data: read by the host application, a subscriber.
    if (sparkplugPublishAllowed(principal.device, packet.topic)) {
      done(null);
      return;
    }
    const topic = devicePublishAllowed(principal.device.id, packet.topic);
    if (!topic) {
      this.options.metrics.aclDenied('publish');
      this.options.logger.warn({ device: principal.device.id, topic: packet.topic }, "mqtt publish outside the device's topics refused");
      // MQTT 3.1.1 has no negative PUBACK: the connection is closed, as AWS IoT and others do.
      done(new Error(`device ${principal.device.id} may not publish to ${packet.topic}`));
      return;
    }
    const deviceId = principal.device.id;
    // The registry cache holds the current record, so a model migration applies to the next message.
    const handled = this.options.registry
      .find(deviceId)
      .then((record) => {
        if (!record) throw new Error(`device ${deviceId} no longer exists`);
        this.options.sessions.uplink(record);
        return this.options.handleDeviceMessage(record, topic, packet.payload as Buffer);
      })
      .then(
        () => done(null),
        // Not handled (e.g. not stored), so not acknowledged: the device keeps the message and resends it.
        (error: Error) => {
          this.options.logger.error({ device: deviceId, topic: packet.topic, err: error.message }, 'device message could not be handled');
          done(error);
        },
      );
    this.handling.add(handled);
    handled.finally(() => this.handling.delete(handled));
  }

  private authorizeSubscribe(client: Client, subscription: Subscription): Subscription | null {
    const principal = this.principals.get(client);
    if (principal?.kind === 'admin') return subscription;
    if (principal && deviceSubscribeAllowed(principal.device.id, subscription.topic)) return subscription;
    if (principal && sparkplugSubscribeAllowed(principal.device, subscription.topic)) return subscription;
    this.options.metrics.aclDenied('subscribe');
    this.options.logger.warn({ client: client.id, filter: subscription.topic }, "mqtt subscription outside the device's topics refused");
    return null;
  }

  private onSubscribe(client: Client, subscriptions: Subscription[]): void {
    const principal = this.principals.get(client);
    if (principal?.kind !== 'device') return;
    // Refused subscriptions arrive with qos 128 and are not listening.
    const filters = subscriptions.filter((s) => (s.qos as number) !== 128).map((s) => s.topic);
    if (filters.length === 0) return;
    let set = this.subscriptions.get(client);
    if (!set) {
      set = new Set();
      this.subscriptions.set(client, set);
    }
    for (const filter of filters) set.add(filter);
    this.options.sessions.subscribed(principal.device, filters);
  }

  private track(client: Client, connected: boolean): void {
    const principal = this.principals.get(client);
    if (principal?.kind !== 'device') return;
    const id = principal.device.id;
    let set = this.sessions.get(id);
    if (connected) {
      if (!set) {
        set = new Set();
        this.sessions.set(id, set);
      }
      set.add(client);
      this.options.sessions.opened(principal.device);
    } else if (set) {
      set.delete(client);
      if (set.size === 0) {
        this.sessions.delete(id);
        this.options.sessions.closed(principal.device);
      }
    }
    this.options.metrics.setConnectedDevices(this.sessions.size);
  }

  connectedDevices(): number {
    return this.sessions.size;
  }

  isConnected(deviceId: string): boolean {
    return this.sessions.has(deviceId);
  }

  /** True when a live session of the device subscribes to a filter matching `topic`. */
  isListening(deviceId: string, topic: string): boolean {
    for (const client of this.sessions.get(deviceId) ?? []) {
      for (const filter of this.subscriptions.get(client) ?? []) {
        if (topicMatches(filter, topic)) return true;
      }
    }
    return false;
  }

  private disconnectDevice(deviceId: string, why: string): void {
    for (const client of this.sessions.get(deviceId) ?? []) {
      this.options.logger.info({ device: deviceId, why }, 'closing mqtt session');
      client.close();
    }
  }

  /** Publishes from the platform (QoS 1 by default); resolves once the broker has routed it. */
  publish(topic: string, payload: unknown, options: { retain?: boolean; qos?: 0 | 1 } = {}): Promise<void> {
    const body = payload === null ? Buffer.alloc(0) : Buffer.from(JSON.stringify(payload));
    return new Promise((resolve, reject) => {
      this.broker.publish(
        { cmd: 'publish', topic, payload: body, qos: options.qos ?? 1, retain: options.retain ?? false, dup: false },
        (error) => (error ? reject(error) : resolve()),
      );
    });
  }

  async stop(): Promise<void> {
    // Stop accepting first; the listener's close completes only once the broker has ended
    // every session, so both are awaited together.
    const listenerClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // The broker knows only logged-in clients: the connections still logging in are ended here.
    for (const connection of this.unauthenticated) connection.socket.destroy();
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    await listenerClosed;
    await Promise.allSettled([...this.handling]);
  }
}
