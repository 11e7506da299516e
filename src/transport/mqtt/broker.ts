import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket, Server as TlsServer } from 'node:tls';
import { Aedes, type AedesPublishPacket, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { GuessingBrake } from '../../access/index.js';
import type { Logger, TransportMetrics } from '../../observability/index.js';
import type { DeviceRecord } from '../../registry/index.js';
import { DEFAULT_TENANT, type Permission, permits, type Role } from '../../tenancy/index.js';
import type { ClientCertificate } from '../tls/index.js';
import { ADMIN_OWNER, ClientIdBook, type ClientIdOwner, deviceOwner, integrationOwner } from './client-ids.js';
import { type FixedHeader, guardPacketSizes, type PacketSizeLimits } from './packet-guard.js';
import { sparkplugForwardAllowed, sparkplugPublishAllowed, sparkplugSubscribeAllowed } from './sparkplug-acl.js';
import { mountTopic, TENANT_MOUNT_ROOT, tenantMount, tenantOfTopic, tenantRelative, unmountTopic } from './tenant-mount.js';
import {
  type DeviceTopic,
  devicePublishAllowed,
  deviceSubscribeAllowed,
  parseDeviceTopic,
  parseDownlinkTopic,
  thingTopics,
  topicMatches,
} from './topics.js';

/**
 * The MQTT username that authenticates with the admin key: the platform admin, in the default
 * tenant's topics, who also reaches every other tenant's mount (`$tenant/{tenant}/…`).
 */
export const ADMIN_USERNAME = '$admin';

/** The MQTT username of an integration: its API key is the password, and says its tenant and role. */
export const KEY_USERNAME = '$key';

/** Whom an API key speaks for: its tenant, its role, and who acts (for the log). */
export interface MqttMember {
  tenant: string;
  role: Role;
  actor: string;
}

/**
 * Every tenant's devices as the broker sees them (the node's FleetDirectory): ids repeat across
 * tenants, secrets never do, so a login's secret says the tenant; after that every lookup names it.
 */
export interface MqttFleet {
  /** Every tenant's registry events (the records carry their tenant). */
  readonly events: { on(name: 'removed' | 'credentialRotated', listener: (device: DeviceRecord) => void): unknown };
  authenticate(id: string, secret: string): Promise<DeviceRecord | undefined>;
  find(tenant: string, id: string): Promise<DeviceRecord | undefined>;
  /** Devices of this id in any tenant: for log lines and refusal reasons, never for access. */
  anyWithId(id: string): Promise<DeviceRecord[]>;
}

type Principal = { kind: 'device'; device: DeviceRecord } | { kind: 'admin' } | { kind: 'integration'; member: MqttMember };

/** The tenant whose topics a principal speaks in (the platform admin: the default tenant's, and any mount it names). */
function tenantOf(principal: Principal): string {
  if (principal.kind === 'device') return principal.device.tenant;
  return principal.kind === 'integration' ? principal.member.tenant : DEFAULT_TENANT;
}

/** Sessions and subscriptions are the device of one tenant: ids repeat across tenants. */
function deviceKey(tenant: string, deviceId: string): string {
  return `${tenant}/${deviceId}`;
}

/** An UNSUBSCRIBE as the packet parser hands it over. */
function isUnsubscribe(packet: unknown): packet is { cmd: 'unsubscribe'; unsubscriptions: string[] } {
  if (typeof packet !== 'object' || packet === null) return false;
  return Reflect.get(packet, 'cmd') === 'unsubscribe' && Array.isArray(Reflect.get(packet, 'unsubscriptions'));
}

/**
 * What the broker does with a device's message, supplied by the node. The returned promise
 * gates the PUBACK: a QoS 1 message is acknowledged only once its handler has finished.
 */
export type DeviceMessageHandler = (device: DeviceRecord, topic: DeviceTopic, payload: Buffer) => Promise<void>;

/**
 * Tells a device why the ACL refused it (a publish or subscription outside its topics): the
 * node lists it in the device's recent errors and sends it on `things/{id}/errors`. Settles once
 * the notice has gone out (never rejects); a refused publish's connection closes only then.
 */
export type AclRefusalNotice = (device: DeviceRecord, message: string) => Promise<void>;

/** How long a refused publish's connection waits for its notice to go out before it closes anyway. */
const ACL_NOTICE_DEADLINE_MS = 2_000;

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

/** The listener a connection came in on: plaintext TCP, TLS, or a WebSocket on the HTTP(S) server. */
export type MqttListener = 'mqtt' | 'mqtts' | 'mqtt-ws';

/** MQTT over TLS: a second port feeding the same broker, with the same guards and limits. */
export interface MqttTlsListener {
  port: number;
  host?: string;
  /**
   * Makes the TLS server (secure defaults, the node's reloading context, a client certificate
   * asked for when a device CA is configured); the broker feeds it the sockets it accepted.
   */
  createServer(): TlsServer;
  /** Reads what the client certificate of a finished handshake says. */
  clientCertificate(socket: TLSSocket): ClientCertificate;
  /** When the TLS server closes (it stops following certificate reloads). */
  closed?(server: TlsServer): void;
}

export interface MqttBrokerOptions {
  port: number;
  host?: string;
  /** Listen for plaintext MQTT on `port` (default true; off leaves only TLS and WebSocket). */
  plaintext?: boolean;
  tls?: MqttTlsListener;
  /**
   * Every tenant's devices: a login's secret says the tenant (ids repeat across tenants); a
   * client certificate's subject O names it (no O: the default tenant).
   */
  fleet: MqttFleet;
  handleDeviceMessage: DeviceMessageHandler;
  sessions: SessionObserver;
  noticeAclRefusal: AclRefusalNotice;
  isAdminKey(secret: string): boolean;
  /** An integration's API key (username `$key`): its tenant and role, or undefined. */
  identify(secret: string): Promise<MqttMember | undefined>;
  /** Shared with the HTTP API: failed logins from one address spend one budget. */
  brake: Pick<GuessingBrake, 'retryAfterMs' | 'failed'>;
  limits?: Partial<MqttLimits>;
  metrics: TransportMetrics;
  logger: Logger;
}

/** One accepted socket, from before its login to its close. */
interface Connection {
  socket: Duplex;
  address: string;
  listener: MqttListener;
  /** What a TLS client's certificate says (`none` on plaintext and WebSocket listeners). */
  certificate: ClientCertificate;
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
  if (principal.kind === 'device') return deviceOwner(principal.device.tenant, principal.device.id);
  return principal.kind === 'integration' ? integrationOwner(principal.member.tenant, principal.member.actor) : ADMIN_OWNER;
}

/** Who a principal is, for the log (never a secret). */
function describe(principal: Principal): Record<string, string | boolean> {
  if (principal.kind === 'device') return { device: principal.device.id, tenant: principal.device.tenant };
  return principal.kind === 'integration' ? { integration: principal.member.actor, tenant: principal.member.tenant } : { admin: true };
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
 * Several tenants share it: a non-default tenant's topics and client ids are mounted under
 * `$tenant/{tenant}/` (rewritten on the way in, stripped on the way out; see tenant-mount.ts).
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
  private server: Server | undefined;
  private boundPort = 0;
  private tlsListener: Server | undefined;
  private tlsServer: TlsServer | undefined;
  /** Sockets in their TLS handshake, by remote address and port: the handshake ends on the TLS socket. */
  private readonly handshaking = new Map<string, Connection>();
  private boundTlsPort: number | undefined;

  constructor(private readonly options: MqttBrokerOptions) {
    this.limits = { ...DEFAULT_MQTT_LIMITS, ...options.limits };
  }

  /** The plaintext port; 0 when plaintext MQTT is off. */
  get port(): number {
    return this.boundPort;
  }

  /** The MQTT over TLS port; undefined when TLS is off. */
  get tlsPort(): number | undefined {
    return this.boundTlsPort;
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
      authorizeForward: (client, packet) => this.authorizeForward(client, packet),
    });
    this.broker.on('client', (client) => this.track(client, true));
    this.broker.on('clientDisconnect', (client) => this.track(client, false));
    this.broker.on('subscribe', (subscriptions, client) => this.onSubscribe(client, subscriptions));
    this.broker.on('unsubscribe', (filters, client) => {
      const principal = this.principals.get(client);
      if (principal?.kind !== 'device') return;
      for (const filter of filters) {
        const inner = tenantRelative(principal.device.tenant, filter);
        if (inner !== undefined) this.subscriptions.get(client)?.delete(inner);
      }
    });
    this.broker.on('clientError', (client, error) => options.logger.debug({ client: client.id, err: error.message }, 'mqtt client error'));
    const packetLimits = packetSizeLimits(this.limits);
    if (options.plaintext !== false) {
      this.server = createServer((socket) => this.accept(socket, socket.remoteAddress, 'mqtt', packetLimits));
      this.boundPort = await listen(this.server, options.port, options.host);
    }
    if (options.tls) {
      try {
        await this.startTls(options.tls, packetLimits);
      } catch (error) {
        // Nothing half-started outlives a failed start: the plaintext port and the broker close again.
        const plain = this.server;
        if (plain) await new Promise<void>((resolve) => plain.close(() => resolve()));
        await new Promise<void>((resolve) => this.broker.close(() => resolve()));
        throw error;
      }
    }
    options.fleet.events.on('removed', (device) => {
      this.disconnectDevice(device.tenant, device.id, 'device deleted');
      this.clientIds.forgetOwner(deviceOwner(device.tenant, device.id));
    });
    options.fleet.events.on('credentialRotated', (device) => this.disconnectDevice(device.tenant, device.id, 'token rotated'));
  }

  /**
   * The TLS port is a plain TCP listener whose sockets pass the same admission as plaintext ones
   * (the unauthenticated cap, the login deadline, which then also covers the handshake) before
   * they are handed to the TLS server; a finished handshake joins the same path into Aedes.
   */
  private async startTls(tls: MqttTlsListener, packetLimits: PacketSizeLimits): Promise<void> {
    const { metrics, logger } = this.options;
    const tlsServer = tls.createServer();
    this.tlsServer = tlsServer;
    tlsServer.on('secureConnection', (socket: TLSSocket) => {
      const key = `${socket.remoteAddress}|${socket.remotePort}`;
      const connection = this.handshaking.get(key);
      this.handshaking.delete(key);
      if (!connection || connection.closed) {
        socket.destroy();
        return;
      }
      connection.socket = socket;
      connection.certificate = tls.clientCertificate(socket);
      if (connection.certificate.kind === 'refused') {
        logger.info(
          { address: connection.address, reason: connection.certificate.reason, subject: connection.certificate.subject },
          `mqtts client certificate refused: ${connection.certificate.message}`,
        );
      }
      this.handToBroker(connection, packetLimits);
    });
    tlsServer.on('tlsClientError', (error: Error & { code?: string }, socket: TLSSocket) => {
      metrics.refused('mqtts', 'tls_handshake_failed');
      logger.debug({ address: socket.remoteAddress, err: error.message, code: error.code }, 'mqtts handshake failed');
      socket.destroy();
    });
    this.tlsListener = createServer((socket) => {
      const connection = this.admit(socket, socket.remoteAddress, 'mqtts');
      if (!connection) return;
      const key = `${socket.remoteAddress}|${socket.remotePort}`;
      this.handshaking.set(key, connection);
      socket.once('close', () => {
        if (this.handshaking.get(key) === connection) this.handshaking.delete(key);
      });
      tlsServer.emit('connection', socket);
    });
    this.boundTlsPort = await listen(this.tlsListener, tls.port, tls.host);
  }

  /**
   * MQTT over WebSocket: the HTTP(S) server's `/mqtt` route hands each upgraded connection here,
   * as a byte stream, with the peer's address. Same admission, guard and login as TCP.
   */
  handleWebSocket(stream: Duplex, address: string | undefined): void {
    const connection = this.admit(stream, address, 'mqtt-ws');
    if (connection) this.handToBroker(connection, packetSizeLimits(this.limits));
  }

  /** A new socket: refused at once beyond the unauthenticated cap, otherwise guarded and handed to Aedes. */
  private accept(socket: Socket, address: string | undefined, listener: MqttListener, packetLimits: PacketSizeLimits): void {
    const connection = this.admit(socket, address, listener);
    if (connection) this.handToBroker(connection, packetLimits);
  }

  /** The unauthenticated cap and the login deadline, for every listener; undefined when refused. */
  private admit(socket: Duplex, address: string | undefined, listener: MqttListener): Connection | undefined {
    const { metrics, logger } = this.options;
    // Gone before it could be read: nothing to serve.
    if (address === undefined) {
      socket.destroy();
      return undefined;
    }
    if (this.unauthenticated.size >= this.limits.maxUnauthenticated) {
      metrics.refused(listener, 'too_many_unauthenticated');
      logger.debug({ address, listener }, 'mqtt connection refused: too many connections have not authenticated');
      socket.destroy();
      return undefined;
    }
    const connection: Connection = {
      socket,
      address,
      listener,
      certificate: { kind: 'none' },
      closed: false,
      deadline: setTimeout(() => {
        metrics.refused(listener, 'connect_timeout');
        logger.debug({ address, listener }, 'mqtt connection closed: no login in time');
        connection.socket.destroy();
      }, this.limits.connectTimeoutMs),
    };
    this.unauthenticated.add(connection);
    socket.once('close', () => {
      connection.closed = true;
      clearTimeout(connection.deadline);
      this.unauthenticated.delete(connection);
      if (connection.client) this.clientIds.release(connection.client.id, connection.client);
    });
    return connection;
  }

  private handToBroker(connection: Connection, packetLimits: PacketSizeLimits): void {
    const { metrics, logger } = this.options;
    const conn = guardPacketSizes(connection.socket, packetLimits, (header: FixedHeader) => {
      metrics.refused(connection.listener, 'packet_too_large');
      logger.info(
        { address: connection.address, listener: connection.listener, packetType: header.type, announcedBytes: header.remainingLength },
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
    const { address, certificate, listener } = connection;
    // A certificate that fails verification closes the door, token or not: a revoked device must not slip in with its token.
    if (certificate.kind === 'refused') {
      metrics.refused(listener, certificate.reason);
      return { returnCode: 5, message: certificate.message };
    }
    if (brake.retryAfterMs(address) > 0) {
      metrics.refused(listener, 'rate_limited');
      logger.debug({ address }, 'mqtt login refused: too many failed logins from this address');
      // Refused without looking at the credentials (the answer would still be an oracle), and
      // slowly, so a guesser that waits for answers gets few of them.
      await sleep(this.limits.brakedRefusalDelayMs, undefined, { ref: false });
      return { returnCode: 3, message: 'too many failed logins from this address: retry later' };
    }
    const byCertificate = certificate.kind === 'verified' && (!username || username === certificate.deviceId);
    const principal = byCertificate ? await this.certificatePrincipal(connection) : await this.principalFor(username, password);
    if (principal && 'refused' in principal) return principal.refused;
    if (!principal) {
      brake.failed(address);
      metrics.authFailed('mqtt');
      // Never the username or password as given: a device that swaps them would log its token.
      const registered =
        username !== undefined && username !== ADMIN_USERNAME && username !== KEY_USERNAME
          ? await this.options.fleet.anyWithId(username)
          : [];
      logger.info(
        { address, clientIdLength: client.id.length, ...(registered.length > 0 ? { device: username } : {}) },
        username === KEY_USERNAME ? 'mqtt authentication refused: unknown API key' : 'mqtt authentication refused',
      );
      return { returnCode: 4, message: username === KEY_USERNAME ? 'bad API key' : 'bad device id or token' };
    }
    // Closed while the credentials were checked: claiming its id now would outlive it.
    if (connection.closed) return { returnCode: 3, message: 'connection closed during login' };
    if (principal.kind !== 'admin') {
      // A client id that looks mounted would claim a client id of another tenant's session.
      if (client.id.startsWith(`${TENANT_MOUNT_ROOT}/`)) {
        metrics.refused(listener, 'client_id_taken');
        logger.warn(
          { address, ...describe(principal), clientId: client.id },
          `mqtt login refused: client ids starting with ${TENANT_MOUNT_ROOT}/ are the broker's`,
        );
        return { returnCode: 2, message: `client ids starting with ${TENANT_MOUNT_ROOT}/ are reserved` };
      }
      // Client ids are scoped by tenant like topics: two tenants' pump-0001 may both use their id.
      client.id = `${tenantMount(tenantOf(principal))}${client.id}`;
    }
    if (!this.clientIds.claim(client.id, ownerOf(principal), client, !client.clean)) {
      metrics.refused(listener, 'client_id_taken');
      logger.warn({ address, ...describe(principal), clientId: client.id }, 'mqtt login refused: the client id belongs to another device');
      return { returnCode: 2, message: 'client id in use by another device' };
    }
    connection.client = client;
    clearTimeout(connection.deadline);
    this.unauthenticated.delete(connection);
    this.principals.set(client, principal);
    this.mountUnsubscribes(client, tenantOf(principal));
    return undefined;
  }

  /**
   * Aedes has no hook for UNSUBSCRIBE: a mounted tenant's filters are mounted as the parser
   * hands the packet over, so they name the subscriptions `authorizeSubscribe` mounted. (A packet
   * parsed before the login finished is left as sent: it can only miss, never reach another tenant.)
   */
  private mountUnsubscribes(client: Client, tenant: string): void {
    if (tenantMount(tenant) === '') return;
    const parser: unknown = Reflect.get(client, '_parser');
    if (!(parser instanceof EventEmitter)) {
      this.options.logger.error(
        { tenant },
        "mqtt: the broker's packet parser is not reachable; unsubscribes of this session will not apply",
      );
      return;
    }
    parser.prependListener('packet', (packet: unknown) => {
      if (!isUnsubscribe(packet)) return;
      packet.unsubscriptions = packet.unsubscriptions.map((filter) => {
        const inner = tenantRelative(tenant, filter);
        return inner === undefined ? filter : mountTopic(tenant, inner);
      });
    });
  }

  /**
   * A verified client certificate logs in the device its subject CN names, when that device is
   * registered in the tenant its subject O names (no O: the default tenant).
   */
  private async certificatePrincipal(connection: Connection): Promise<Principal | { refused: Refusal } | undefined> {
    const { certificate, listener, address } = connection;
    if (certificate.kind !== 'verified') return undefined;
    const { metrics, logger } = this.options;
    const device = await this.options.fleet.find(certificate.tenant, certificate.deviceId);
    if (device) return { kind: 'device', device };
    if ((await this.options.fleet.anyWithId(certificate.deviceId)).length > 0) {
      metrics.refused(listener, 'certificate_wrong_tenant');
      logger.warn(
        { address, device: certificate.deviceId, certificateTenant: certificate.tenant },
        "mqtts certificate login refused: the certificate's organisation (O) is not the device's tenant",
      );
      // Answered like an unknown device: the holder learns nothing about other tenants' ids.
      return { refused: { returnCode: 4, message: `no device ${certificate.deviceId} is registered` } };
    }
    metrics.refused(listener, 'certificate_unknown_device');
    logger.info({ address, device: certificate.deviceId }, 'mqtts certificate login refused: no such device is registered');
    return { refused: { returnCode: 4, message: `no device ${certificate.deviceId} is registered` } };
  }

  private async principalFor(username: string | undefined, password: Buffer | undefined): Promise<Principal | undefined> {
    const secret = password?.toString('utf8') ?? '';
    if (username === ADMIN_USERNAME) return this.options.isAdminKey(secret) ? { kind: 'admin' } : undefined;
    if (username === KEY_USERNAME) {
      const member = secret === '' ? undefined : await this.options.identify(secret);
      return member ? { kind: 'integration', member } : undefined;
    }
    const device = username ? await this.options.fleet.authenticate(username, secret) : undefined;
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
    switch (principal.kind) {
      case 'device':
        this.devicePublish(principal.device, packet, done);
        return;
      case 'admin':
        this.adminPublish(client, packet, done);
        return;
      case 'integration':
        this.integrationPublish(client, principal.member, packet, done);
        return;
    }
  }

  private devicePublish(device: DeviceRecord, packet: PublishPacket, done: (error?: Error | null) => void): void {
    const relative = tenantRelative(device.tenant, packet.topic);
    // A Sparkplug B edge node's own births, deaths and data: read by the host application, a subscriber.
    if (relative !== undefined && sparkplugPublishAllowed(device, relative)) {
      packet.topic = mountTopic(device.tenant, relative);
      done(null);
      return;
    }
    const topic = relative === undefined ? undefined : devicePublishAllowed(device.id, relative);
    if (!topic || relative === undefined) {
      this.options.metrics.aclDenied('publish');
      this.options.logger.warn({ device: device.id, topic: packet.topic }, "mqtt publish outside the device's topics refused");
      // MQTT 3.1.1 has no negative PUBACK: the connection is closed, as AWS IoT and others do, but
      // only once the reason is on its way to the device's errors topic (its error list keeps it
      // for a device that was not listening). Aedes writes a QoS 0 notice to the socket before
      // the publish settles, and closing after that keeps the order on the wire.
      const message =
        `publish to ${packet.topic} refused: a device publishes only its own telemetry, events, ` +
        `twin reports and action results under ${thingTopics.prefix(device.id)}; the connection is closed`;
      const told = Promise.race([
        this.options.noticeAclRefusal(device, message).catch(() => undefined),
        sleep(ACL_NOTICE_DEADLINE_MS, undefined, { ref: false }),
      ]).then(() => done(new Error(`device ${device.id} may not publish to ${packet.topic}`)));
      this.handling.add(told);
      told.finally(() => this.handling.delete(told));
      return;
    }
    // Subscribers of the device's tenant (its integrations) hear it in their mount.
    packet.topic = mountTopic(device.tenant, relative);
    this.handleUplink(device.tenant, topic, packet, done, () => {
      throw new Error(`device ${device.id} no longer exists`);
    });
  }

  /**
   * The platform admin publishes anywhere (the default tenant's topics, or another tenant's
   * mount); on a device's own topics (telemetry, events, reports) its message is the device's,
   * validated and stored before it is acknowledged, and refused when there is no such device.
   */
  private adminPublish(client: Client, packet: PublishPacket, done: (error?: Error | null) => void): void {
    const { tenant, topic } = tenantOfTopic(packet.topic);
    const uplink = parseDeviceTopic(topic);
    if (!uplink) {
      done(null);
      return;
    }
    packet.topic = mountTopic(tenant, topic);
    this.handleUplink(tenant, uplink, packet, done, () =>
      this.refusePublish(client, { admin: true }, packet, `no device ${uplink.deviceId} in tenant ${tenant}`),
    );
  }

  /**
   * An integration (an API key) publishes only on its tenant's device topics, and only what its
   * role permits: a device's telemetry, events and reports (telemetry:write: handled like the
   * device's own message), its desired state (twins:write), its actions (actions:invoke).
   */
  private integrationPublish(client: Client, member: MqttMember, packet: PublishPacket, done: (error?: Error | null) => void): void {
    const who = { integration: member.actor, tenant: member.tenant };
    const topic = tenantRelative(member.tenant, packet.topic);
    const uplink = topic === undefined ? undefined : parseDeviceTopic(topic);
    const downlink = topic === undefined || uplink ? undefined : parseDownlinkTopic(topic);
    const needs: Permission | undefined = uplink
      ? 'telemetry:write'
      : downlink?.kind === 'desired'
        ? 'twins:write'
        : downlink
          ? 'actions:invoke'
          : undefined;
    if (topic === undefined || needs === undefined) {
      done(this.refusePublish(client, who, packet, 'integrations publish only on device topics (telemetry, events, twin, actions)'));
      return;
    }
    if (!permits(member.role, needs)) {
      done(this.refusePublish(client, who, packet, `role ${member.role} lacks ${needs}`));
      return;
    }
    packet.topic = mountTopic(member.tenant, topic);
    const missing = () => this.refusePublish(client, who, packet, `no device ${(uplink ?? downlink)?.deviceId} in tenant ${member.tenant}`);
    if (uplink) {
      this.handleUplink(member.tenant, uplink, packet, done, missing);
      return;
    }
    // Desired state and action requests go to the device as published (as the admin's always have).
    const deviceId = downlink?.deviceId ?? '';
    const checked = this.options.fleet.find(member.tenant, deviceId).then(
      (device) => done(device ? null : missing()),
      (error: Error) => done(error),
    );
    this.handling.add(checked);
    checked.finally(() => this.handling.delete(checked));
  }

  /**
   * Counts and logs a publish refused to an integration or the admin, and gives the error that
   * closes its connection (MQTT 3.1.1 has no negative PUBACK).
   */
  private refusePublish(client: Client, who: Record<string, string | boolean>, packet: PublishPacket, reason: string): Error {
    const listener = this.connections.get(client.conn)?.listener ?? 'mqtt';
    this.options.metrics.aclDenied('publish');
    this.options.metrics.refused(listener, 'forbidden');
    this.options.logger.warn({ ...who, topic: packet.topic, reason }, `mqtt publish refused: ${reason}`);
    return new Error(`publish to ${packet.topic} refused: ${reason}`);
  }

  /**
   * A device message, from the device or on its behalf: the PUBACK waits for its handler.
   * `missing` answers when the device is not (or no longer) in the tenant: it returns the
   * refusal, or throws to report a failure.
   */
  private handleUplink(
    tenant: string,
    topic: DeviceTopic,
    packet: PublishPacket,
    done: (error?: Error | null) => void,
    missing: () => Error,
  ): void {
    const { deviceId } = topic;
    // The registry cache holds the current record, so a model migration applies to the next message.
    const handled = this.options.fleet
      .find(tenant, deviceId)
      .then(async (record) => {
        if (!record) return missing();
        this.options.sessions.uplink(record);
        await this.options.handleDeviceMessage(record, topic, packet.payload as Buffer);
        return null;
      })
      .then(
        (refusal) => done(refusal),
        // Not handled (e.g. not stored), so not acknowledged: the sender keeps the message and resends it.
        (error: Error) => {
          this.options.logger.error(
            { device: deviceId, tenant, topic: packet.topic, err: error.message },
            'device message could not be handled',
          );
          done(error);
        },
      );
    this.handling.add(handled);
    handled.finally(() => this.handling.delete(handled));
  }

  private authorizeSubscribe(client: Client, subscription: Subscription): Subscription | null {
    const principal = this.principals.get(client);
    if (principal?.kind === 'admin') return subscription;
    const tenant = principal ? tenantOf(principal) : DEFAULT_TENANT;
    const filter = principal ? tenantRelative(tenant, subscription.topic) : undefined;
    let allowed = false;
    if (principal?.kind === 'device' && filter !== undefined) {
      allowed = deviceSubscribeAllowed(principal.device.id, filter) || sparkplugSubscribeAllowed(principal.device, filter);
    } else if (principal?.kind === 'integration' && filter !== undefined) {
      allowed = permits(principal.member.role, 'telemetry:read');
    }
    if (!principal || !allowed || filter === undefined) {
      this.options.metrics.aclDenied('subscribe');
      if (principal?.kind === 'integration')
        this.options.metrics.refused(this.connections.get(client.conn)?.listener ?? 'mqtt', 'forbidden');
      this.options.logger.warn(
        { client: client.id, filter: subscription.topic, ...(principal ? describe(principal) : {}) },
        principal?.kind === 'integration'
          ? `mqtt subscription refused: outside the tenant's topics or role ${principal.member.role} lacks telemetry:read`
          : "mqtt subscription outside the device's topics refused",
      );
      // The SUBACK says 0x80 (failure) for this filter; the device's error list says why.
      if (principal?.kind === 'device') {
        const { device } = principal;
        this.options
          .noticeAclRefusal(
            device,
            `subscription to ${subscription.topic} refused (SUBACK 0x80): a device subscribes only under ${thingTopics.prefix(device.id)}`,
          )
          .catch(() => undefined);
      }
      return null;
    }
    // Mounted in place: Aedes reads this object for the retained messages it sends and the session it stores.
    subscription.topic = mountTopic(tenant, filter);
    return subscription;
  }

  /**
   * What a session hears: the platform admin everything it subscribed to; anyone else only what
   * lies in its tenant's mount (stripped of it), and a device only its own topics, also from a
   * persistent session stored under a client id that once belonged to another device.
   *
   * The mount is stripped in place: Aedes 1.2 hands this hook a packet of the session's own (a
   * copy per subscription, per retained message, per queued message), and for a persistent
   * session's queue it writes that object and ignores the one returned. The tenant test checks
   * that the admin, on the same message, still sees the mounted topic.
   */
  private authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    const principal = this.principals.get(client);
    if (principal?.kind === 'admin') return packet;
    if (!principal) return null;
    const topic = unmountTopic(tenantOf(principal), packet.topic);
    if (topic === undefined) return null;
    if (principal.kind === 'device') {
      const own = topic.startsWith(thingTopics.prefix(principal.device.id)) || sparkplugForwardAllowed(principal.device, topic);
      if (!own) return null;
    }
    packet.topic = topic;
    return packet;
  }

  private onSubscribe(client: Client, subscriptions: Subscription[]): void {
    const principal = this.principals.get(client);
    if (principal?.kind !== 'device') return;
    // Refused subscriptions arrive with qos 128 and are not listening; the rest arrive mounted.
    const filters = subscriptions
      .filter((s) => (s.qos as number) !== 128)
      .map((s) => tenantRelative(principal.device.tenant, s.topic))
      .filter((filter): filter is string => filter !== undefined);
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
    const key = deviceKey(principal.device.tenant, principal.device.id);
    let set = this.sessions.get(key);
    if (connected) {
      if (!set) {
        set = new Set();
        this.sessions.set(key, set);
      }
      set.add(client);
      this.options.sessions.opened(principal.device);
    } else if (set) {
      set.delete(client);
      if (set.size === 0) {
        this.sessions.delete(key);
        this.options.sessions.closed(principal.device);
      }
    }
    this.options.metrics.setConnectedDevices(this.sessions.size);
  }

  connectedDevices(): number {
    return this.sessions.size;
  }

  isConnected(tenant: string, deviceId: string): boolean {
    return this.sessions.has(deviceKey(tenant, deviceId));
  }

  /** True when a live session of the tenant's device subscribes to a filter matching `topic` (as the device sees it). */
  isListening(tenant: string, deviceId: string, topic: string): boolean {
    for (const client of this.sessions.get(deviceKey(tenant, deviceId)) ?? []) {
      for (const filter of this.subscriptions.get(client) ?? []) {
        if (topicMatches(filter, topic)) return true;
      }
    }
    return false;
  }

  private disconnectDevice(tenant: string, deviceId: string, why: string): void {
    for (const client of this.sessions.get(deviceKey(tenant, deviceId)) ?? []) {
      this.options.logger.info({ device: deviceId, tenant, why }, 'closing mqtt session');
      client.close();
    }
  }

  /**
   * Publishes from the platform (QoS 1 by default) on a topic of `tenant` (default: the default
   * tenant's), mounted where that tenant's clients hear it; resolves once the broker has routed it.
   */
  publish(topic: string, payload: unknown, options: { tenant?: string; retain?: boolean; qos?: 0 | 1 } = {}): Promise<void> {
    const body = payload === null ? Buffer.alloc(0) : Buffer.from(JSON.stringify(payload));
    const mounted = mountTopic(options.tenant ?? DEFAULT_TENANT, topic);
    return new Promise((resolve, reject) => {
      this.broker.publish(
        { cmd: 'publish', topic: mounted, payload: body, qos: options.qos ?? 1, retain: options.retain ?? false, dup: false },
        (error) => (error ? reject(error) : resolve()),
      );
    });
  }

  async stop(): Promise<void> {
    // Stop accepting first; the listeners' close completes only once the broker has ended
    // every session, so both are awaited together.
    const listenersClosed = Promise.all(
      [this.server, this.tlsListener].map((server) => (server ? new Promise<void>((resolve) => server.close(() => resolve())) : undefined)),
    );
    if (this.tlsServer) this.options.tls?.closed?.(this.tlsServer);
    // The broker knows only logged-in clients: the connections still logging in (or in their TLS handshake) are ended here.
    for (const connection of this.unauthenticated) connection.socket.destroy();
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    await listenersClosed;
    await Promise.allSettled([...this.handling]);
  }
}

/** Listens and resolves with the bound port (0 picks a free one). */
async function listen(server: Server, port: number, host: string | undefined): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return typeof address === 'object' && address ? address.port : port;
}
