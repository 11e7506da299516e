import { createServer, type Server } from 'node:net';
import { Aedes, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { Logger, TransportMetrics } from '../../observability/index.js';
import type { DeviceRecord, DeviceRegistry } from '../../registry/index.js';
import { type DeviceTopic, devicePublishAllowed, deviceSubscribeAllowed, topicMatches } from './topics.js';

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

export interface MqttBrokerOptions {
  port: number;
  host?: string;
  registry: DeviceRegistry;
  handleDeviceMessage: DeviceMessageHandler;
  sessions: SessionObserver;
  isAdminKey(secret: string): boolean;
  metrics: TransportMetrics;
  logger: Logger;
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
  private broker!: Aedes;
  private server!: Server;
  private boundPort = 0;

  constructor(private readonly options: MqttBrokerOptions) {}

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    const { options } = this;
    this.broker = await Aedes.createBroker({
      authenticate: (client, username, password, done) => {
        this.authenticate(client, username, password).then(
          (ok) => done(ok ? null : authError(4, 'bad device id or token'), ok),
          (error: Error) => done(authError(3, `server unavailable: ${error.message}`), false),
        );
      },
      authorizePublish: (client, packet, done) => this.authorizePublish(client, packet, done),
      authorizeSubscribe: (client, subscription, done) => done(null, this.authorizeSubscribe(client, subscription)),
    });
    this.broker.on('client', (client) => this.track(client, true));
    this.broker.on('clientDisconnect', (client) => this.track(client, false));
    this.broker.on('subscribe', (subscriptions, client) => this.onSubscribe(client, subscriptions));
    this.broker.on('unsubscribe', (filters, client) => {
      for (const filter of filters) this.subscriptions.get(client)?.delete(filter);
    });
    this.broker.on('clientError', (client, error) => options.logger.debug({ client: client.id, err: error.message }, 'mqtt client error'));
    this.server = createServer(this.broker.handle);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(options.port, options.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const address = this.server.address();
    this.boundPort = typeof address === 'object' && address ? address.port : options.port;
    options.registry.events.on('removed', (device) => this.disconnectDevice(device.id, 'device deleted'));
    options.registry.events.on('credentialRotated', (device) => this.disconnectDevice(device.id, 'token rotated'));
  }

  private async authenticate(client: Client, username: string | undefined, password: Buffer | undefined): Promise<boolean> {
    const secret = password?.toString('utf8') ?? '';
    if (username === ADMIN_USERNAME) {
      if (!this.options.isAdminKey(secret)) {
        this.options.metrics.authFailed('mqtt');
        return false;
      }
      this.principals.set(client, { kind: 'admin' });
      return true;
    }
    const device = username ? await this.options.registry.authenticate(username, secret) : undefined;
    if (!device) {
      this.options.metrics.authFailed('mqtt');
      this.options.logger.info({ client: client.id, username }, 'mqtt authentication refused');
      return false;
    }
    this.principals.set(client, { kind: 'device', device });
    return true;
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
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    await listenerClosed;
    await Promise.allSettled([...this.handling]);
  }
}
