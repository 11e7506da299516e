import { createServer, type Server } from 'node:net';
import { Aedes, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { IngestPipeline, Rejection } from '../../ingest/index.js';
import type { Logger, TransportMetrics } from '../../observability/index.js';
import type { DeviceRecord, DeviceRegistry } from '../../registry/index.js';
import { devicePublishAllowed, deviceSubscribeAllowed, parseDeviceTopic, thingTopics } from './topics.js';

/** The MQTT username that authenticates with the admin key (integrations, benchmarks). */
export const ADMIN_USERNAME = '$admin';

type Principal = { kind: 'device'; device: DeviceRecord } | { kind: 'admin' };

export interface MqttBrokerOptions {
  port: number;
  host?: string;
  registry: DeviceRegistry;
  ingest: IngestPipeline;
  isAdminKey(secret: string): boolean;
  metrics: TransportMetrics;
  logger: Logger;
  now(): number;
}

function authError(returnCode: number, message: string): AuthenticateError {
  const error = new Error(message) as AuthenticateError;
  error.returnCode = returnCode;
  return error;
}

/**
 * The embedded broker (Aedes, MQTT 3.1.1). Authentication is device id + token, the ACL keeps
 * each device under `things/{id}/`, and telemetry is ingested inside `authorizePublish`, so
 * the PUBACK of a QoS 1 message goes out only after its samples are committed.
 */
export class EmbeddedMqttBroker {
  private readonly principals = new WeakMap<Client, Principal>();
  private readonly sessions = new Map<string, Set<Client>>();
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
    const refusal = this.publishRefusal(client, packet);
    if (refusal !== undefined) {
      done(refusal);
      return;
    }
    const principal = client && this.principals.get(client);
    if (principal?.kind !== 'device' || parseDeviceTopic(packet.topic)?.kind !== 'telemetry') {
      done(null);
      return;
    }
    const deviceId = principal.device.id;
    // The registry cache holds the current record, so a model migration applies to the next message.
    this.options.registry
      .find(deviceId)
      .then((record) => {
        if (!record) throw new Error(`device ${deviceId} no longer exists`);
        return this.options.ingest.acceptTelemetry(record, packet.payload as Buffer, 'mqtt');
      })
      .then(
        () => done(null),
        // Not stored, so not acknowledged: the device keeps the message and resends it.
        (error: Error) => {
          this.options.logger.error({ device: deviceId, err: error.message }, 'telemetry could not be stored');
          done(error);
        },
      );
  }

  /** Why a publish is refused, or undefined when it may proceed. */
  private publishRefusal(client: Client | null, packet: PublishPacket): Error | undefined {
    // Internal publishes (errors, desired state) come without a client.
    if (!client) return undefined;
    const principal = this.principals.get(client);
    if (!principal) return new Error('not authenticated');
    if (principal.kind === 'admin') return undefined;
    if (devicePublishAllowed(principal.device.id, packet.topic)) return undefined;
    this.options.metrics.aclDenied('publish');
    this.options.logger.warn({ device: principal.device.id, topic: packet.topic }, "mqtt publish outside the device's topics refused");
    // MQTT 3.1.1 has no negative PUBACK: the connection is closed, as AWS IoT and others do.
    return new Error(`device ${principal.device.id} may not publish to ${packet.topic}`);
  }

  private authorizeSubscribe(client: Client, subscription: Subscription): Subscription | null {
    const principal = this.principals.get(client);
    if (principal?.kind === 'admin') return subscription;
    if (principal && deviceSubscribeAllowed(principal.device.id, subscription.topic)) return subscription;
    this.options.metrics.aclDenied('subscribe');
    this.options.logger.warn({ client: client.id, filter: subscription.topic }, "mqtt subscription outside the device's topics refused");
    return null;
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
    } else if (set) {
      set.delete(client);
      if (set.size === 0) this.sessions.delete(id);
    }
    this.options.metrics.setConnectedDevices(this.sessions.size);
  }

  connectedDevices(): number {
    return this.sessions.size;
  }

  isConnected(deviceId: string): boolean {
    return this.sessions.has(deviceId);
  }

  private disconnectDevice(deviceId: string, why: string): void {
    for (const client of this.sessions.get(deviceId) ?? []) {
      this.options.logger.info({ device: deviceId, why }, 'closing mqtt session');
      client.close();
    }
  }

  /** Tells a device what was wrong with what it sent. */
  publishRejections(deviceId: string, source: string, rejections: Rejection[]): void {
    const payload = JSON.stringify({ ts: this.options.now(), source, rejections });
    this.broker.publish(
      { cmd: 'publish', topic: thingTopics.errors(deviceId), payload: Buffer.from(payload), qos: 0, retain: false, dup: false },
      () => {},
    );
  }

  async stop(): Promise<void> {
    // Stop accepting first; the listener's close completes only once the broker has ended
    // every session, so both are awaited together.
    const listenerClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    await listenerClosed;
  }
}
