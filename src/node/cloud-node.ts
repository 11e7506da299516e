import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { AdminAccess, type AdminKeySetup, GuessingBrake, hashSecret, secretMatches } from '../access/index.js';
import { type AgentEngine, type AlarmService, loadAgentFiles, plantAccess } from '../agents/index.js';
import { EventBus } from '../bus/index.js';
import { CommandService } from '../commands/index.js';
import { EdgeDirectory, EdgeHub, type EdgeSync, eventRecord, startEdgeSync, telemetryRecords } from '../edge/index.js';
import { BindingStartError, CodecRegistry, DeviceGateway } from '../gateway/index.js';
import { addressDevice, canonicalIpv6, planIdentity } from '../identity/index.js';
import { type IngestEvents, IngestPipeline } from '../ingest/index.js';
import { ShutdownDeadlineError, ShutdownSteps } from '../lifecycle/index.js';
import { ModelCatalog } from '../model/index.js';
import { createLogger, type Logger, NodeMetrics } from '../observability/index.js';
import { type DeviceRecord, DeviceRegistry, PresenceBook } from '../registry/index.js';
import {
  openDatabase,
  type SqliteDatabase,
  SqliteDeviceEvents,
  SqliteDevices,
  SqliteEdges,
  SqliteInvocations,
  SqliteModels,
  SqliteOutbox,
  SqliteSettings,
  SqliteTelemetryStore,
  SqliteTwins,
} from '../store/sqlite/index.js';
import { TelemetryRetention, type TelemetrySample } from '../telemetry/index.js';
import { type Clock, systemClock } from '../time/index.js';
import { EdgeLinkClient } from '../transport/edge-link/index.js';
import { buildHttpApi, StreamTickets } from '../transport/http/index.js';
import { TwinService } from '../twin/index.js';
import { alarmSinks, createAgents } from './agents-wiring.js';
import { createBindings } from './bindings.js';
import { howToSet, type NodeConfig } from './config.js';
import { cloudTrust, openNodeTls } from './tls.js';
import { VERSION } from './version.js';

export interface NodeOptions {
  clock?: Clock;
  logger?: Logger;
}

export interface RunningNode {
  httpPort: number;
  mqttPort: number;
  /** The CoAP listener's UDP port; undefined when CoAP is off. */
  coapPort: number | undefined;
  httpUrl: string;
  mqttUrl: string;
  /** MQTT over TLS and HTTPS ports (undefined when TLS is off) and their URLs. */
  mqttsPort: number | undefined;
  httpsPort: number | undefined;
  mqttsUrl: string | undefined;
  httpsUrl: string | undefined;
  adminKey: AdminKeySetup;
  logger: Logger;
  registry: DeviceRegistry;
  models: ModelCatalog;
  twins: TwinService;
  commands: CommandService;
  agents: AgentEngine;
  alarms: AlarmService;
  /** Cloud nodes: the directory of edges. */
  edges?: EdgeDirectory;
  /** Runs the expiry and retention sweeps now (they also run on timers); lets tests drive an injected clock. */
  sweep(): Promise<void>;
  /** Graceful: stop accepting, finish in-flight messages, flush every sample, close the database. */
  stop(): Promise<void>;
}

export class StartupError extends Error {}

const EXPIRY_SWEEP_MS = 1_000;
const DEFAULT_ACTION_TIMEOUT_MS = 30_000;
/** How long an action waits for an offline (not sleepy) device. */
const DEFAULT_AWAKE_TTL_MS = 3_600_000;
/** How long actions and desired changes wait for a sleepy device's next window. */
const DEFAULT_SLEEPY_TTL_MS = 86_400_000;

async function listenHttp(app: FastifyInstance, config: NodeConfig): Promise<number> {
  try {
    await app.listen({ port: config.httpPort, host: config.httpHost });
  } catch (error) {
    throw portError(error, 'HTTP', config.httpPort, 'httpPort');
  }
  const address = app.server.address();
  return typeof address === 'object' && address ? address.port : config.httpPort;
}

function portError(error: unknown, what: string, port: number, key: keyof NodeConfig): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE')
    return new StartupError(`${what} port ${port} is already in use: choose another with ${howToSet(key)} (0 picks a free port)`);
  if (code === 'EACCES') return new StartupError(`${what} port ${port} needs privileges: choose a port above 1023 with ${howToSet(key)}`);
  return error as Error;
}

/** Builds and starts a cloud node: the only place the modules are wired together. */
export async function startCloudNode(config: NodeConfig, options: NodeOptions = {}): Promise<RunningNode> {
  const clock = options.clock ?? systemClock;
  const now = () => clock.now();
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const identity = planIdentity(config.codePrefix, config.ipv6Prefix);

  let db: SqliteDatabase;
  try {
    db = openDatabase(join(config.dataDir, 'thingloop.db'), { synchronous: config.durability });
  } catch (error) {
    throw new StartupError(
      `cannot open the data directory ${config.dataDir}: ${(error as Error).message} (set it with ${howToSet('dataDir')})`,
    );
  }
  const cleanups = new ShutdownSteps();
  cleanups.push('closing the database', () => {
    db.close();
  });
  const cleanUp = async () => {
    try {
      await cleanups.run(config.shutdownTimeoutMs, (step) => logger.debug({ step }, 'shutdown step'));
    } catch (error) {
      if (error instanceof ShutdownDeadlineError)
        logger.error({ waitingFor: error.waitingFor, notRun: error.notRun, deadlineMs: error.deadlineMs }, error.message);
      throw error;
    }
  };

  try {
    const admin = new AdminAccess(new SqliteSettings(db));
    const adminKey = await admin.setUp(config.adminKey);
    const models = new ModelCatalog(new SqliteModels(db), now);
    const devices = new SqliteDevices(db);
    const isEdge = config.role === 'edge';
    const edgeDirectory = isEdge ? undefined : new EdgeDirectory(new SqliteEdges(db), now);
    const outbox = isEdge ? new SqliteOutbox(db, now) : undefined;
    const registry = new DeviceRegistry(
      devices,
      models,
      {
        address: (id, attempt) => addressDevice(identity, id, attempt),
        canonicalIpv6,
      },
      now,
      async (edgeId) => (await edgeDirectory?.find(edgeId)) !== undefined,
    );

    let telemetry: SqliteTelemetryStore | undefined;
    const metrics = new NodeMetrics(() => telemetry?.pendingSamples() ?? 0);
    const tls = await openNodeTls(config, { metrics, logger });
    // One brake for HTTP and MQTT: a guesser gains nothing by switching listeners.
    const guessingBrake = new GuessingBrake({ burst: config.authFailureBurst, refillPerSecond: config.authFailureRefillPerSecond, now });
    telemetry = new SqliteTelemetryStore(db, metrics, {
      maxBatchSamples: 5_000,
      // On an edge a sample is stored and queued for the cloud in one transaction.
      ...(outbox ? { alsoInTransaction: (samples: TelemetrySample[]) => outbox.insertRows(telemetryRecords(samples)) } : {}),
    });
    const store = telemetry;
    cleanups.push('telemetry store flush', () => store.flush());
    // On an edge an event is stored and queued for the cloud in one transaction, like a sample.
    const deviceEvents = new SqliteDeviceEvents(
      db,
      outbox ? { alsoInTransaction: (event) => outbox.insertRows([eventRecord(event)]) } : {},
    );

    const bus = new EventBus<IngestEvents>((error, event) => logger.error({ err: error, event }, 'bus listener failed'));
    const modelOf = (device: DeviceRecord) => models.compiled(device.model, device.modelVersion);
    // Bindings may register their own codecs (Sparkplug protobuf…) while they are created.
    const codecs = new CodecRegistry();
    const ingest = new IngestPipeline({
      decode: (bytes, contentType) => codecs.decode(bytes, contentType),
      store,
      events: deviceEvents,
      bus,
      metrics,
      now,
      modelOf,
      limits: {
        maxPayloadBytes: config.maxPayloadBytes,
        maxSamplesPerMessage: config.maxSamplesPerMessage,
        maxFutureSkewMs: config.maxClockSkewMs,
      },
    });

    const presence = new PresenceBook();
    const twins = new TwinService({ repository: new SqliteTwins(db), modelOf, now, defaultDeliveryTtlMs: DEFAULT_SLEEPY_TTL_MS });
    let edgeHub: EdgeHub | undefined;
    const commands: CommandService = new CommandService({
      repository: new SqliteInvocations(db),
      modelOf,
      now,
      defaultTimeoutMs: DEFAULT_ACTION_TIMEOUT_MS,
      queueTtlMs: { awake: DEFAULT_AWAKE_TTL_MS, sleepy: DEFAULT_SLEEPY_TTL_MS },
      lastSeen: (deviceId) => presence.lastSeen(deviceId),
      metrics: {
        // Counted by the listener the request came in on; an agent's refusal is no request (its
        // decision records the failed action instead).
        queueFull: (actor) => {
          if (actor === 'api') metrics.refused('http', 'queue_full');
          else if (actor === 'cloud') metrics.refused('edge-link', 'queue_full');
        },
      },
      // The gateway routes actions: to the device's binding, or to the edge that serves it.
      channel: {
        reachable: (deviceId, action) => gateway.actionReachable(deviceId, action),
        send: (invocation) => gateway.sendAction(invocation),
      },
    });
    const gateway: DeviceGateway = new DeviceGateway({
      role: isEdge ? 'edge' : 'cloud',
      registry,
      modelOf,
      ingest,
      bus,
      twins,
      commands,
      presence,
      refusals: metrics,
      ...(edgeDirectory
        ? {
            edgeRoute: {
              isConnected: (edgeId: string) => edgeHub?.isConnected(edgeId) ?? false,
              forwardAction: (edgeId: string, frame) => edgeHub?.forwardAction(edgeId, frame) ?? false,
              bindingHealth: (deviceId: string) => edgeHub?.edgeBindingHealth(deviceId),
            },
          }
        : {}),
      logger: logger.child({ component: 'gateway' }),
      now,
    });
    const bindings = createBindings(config, {
      gateway,
      codecs,
      registry,
      models,
      isAdminKey: (secret) => admin.isAdminKey(secret),
      brake: guessingBrake,
      ...(tls ? { tls: tls.mqtt } : {}),
      metrics,
      logger,
      now,
    });
    const mqtt = bindings.mqtt;
    const liveBroker = () => mqtt.broker;
    await twins.resumePending((deviceId) => registry.find(deviceId));
    const plant = plantAccess(registry, twins, commands);
    let edgeSync: EdgeSync | undefined;
    const sinks = alarmSinks(config, liveBroker, { refusals: metrics, logger: logger.child({ component: 'webhook' }) });
    const { engine: agents, alarms } = createAgents(db, plant, sinks, now, logger.child({ component: 'agents' }), {
      // The cloud leaves devices served by an edge to the agents running on that edge.
      evaluates: (device) => isEdge || device.edge === undefined,
      ...(isEdge ? { onDecision: (decision) => edgeSync?.onDecision(decision as unknown as Record<string, unknown>) } : {}),
    });
    await agents.start();
    if (config.agentsDir) {
      const loaded = await loadAgentFiles(agents, config.agentsDir, logger);
      logger.info({ directory: config.agentsDir, agents: loaded }, 'agent definitions loaded');
    }
    cleanups.push('agents (evaluations in progress, decisions)', async () => {
      await agents.idle();
      await agents.flush();
    });

    // Cleanups run in reverse: the bindings stop (and their messages in flight finish) before the
    // twins flush, so no report lands after the last flush.
    cleanups.push('twins flush', () => twins.flush());
    cleanups.push('device bindings (messages in flight)', () => gateway.stop());
    try {
      await gateway.start(bindings.all);
    } catch (error) {
      if (error instanceof BindingStartError && error.protocol === 'mqtt') {
        throw portError(error.reason, 'MQTT', config.mqttPort, 'mqttPort');
      }
      if (error instanceof BindingStartError && error.protocol === 'coap') {
        throw portError(error.reason, 'CoAP', config.coapPort, 'coapPort');
      }
      throw error;
    }

    bus.on('event.accepted', () => edgeSync?.appended());
    bus.on('telemetry.accepted', (event) => {
      edgeSync?.appended();
      agents.onTelemetry(event.device, event.samples);
      for (const sample of event.samples) {
        twins
          .report(event.device, sample.values, sample.ts, 'telemetry')
          .catch((error: Error) => logger.error({ err: error.message }, 'twin update failed'));
      }
    });

    edgeHub = edgeDirectory
      ? new EdgeHub({
          edges: edgeDirectory,
          refusals: metrics,
          commands,
          registry,
          credentials: devices,
          models,
          agents,
          twins,
          bus,
          logger: logger.child({ component: 'edges' }),
          now,
        })
      : undefined;
    const hub = edgeHub;
    // Runs after the HTTP server closed (cleanups run in reverse): no new frames, then the
    // batches and pushes in flight finish before the store closes.
    if (hub) cleanups.push('edge hub (uplink batches and pushes in flight)', () => hub.stop());
    if (outbox) {
      const { cloudUrl, edgeId, edgeToken } = config;
      if (!cloudUrl || !edgeId || !edgeToken) {
        throw new StartupError(
          `the edge role needs the cloud, its edge id and token: ${howToSet('cloudUrl')}, ${howToSet('edgeId')}, ${howToSet('edgeToken')}`,
        );
      }
      edgeSync = startEdgeSync(
        {
          cloudUrl,
          edgeId,
          quotaBytes: config.outboxQuotaBytes,
          policy: config.outboxPolicy,
          drainRatePerSecond: config.drainRate,
        },
        {
          outbox,
          link: (handlers, outboxEpoch) =>
            new EdgeLinkClient({ cloudUrl, edgeId, token: edgeToken, outboxEpoch, ca: cloudTrust(config), ...handlers }),
          registry,
          models,
          agents,
          alarms,
          twins,
          commands,
          logger: logger.child({ component: 'edge-sync' }),
          now,
          dataDir: config.dataDir,
          bindingHealth: (device) => gateway.health(device),
        },
      );
      const sync = edgeSync;
      cleanups.push('edge sync (cloud link, outbox feed)', () => sync.stop());
    }

    let stopping = false;
    const startedAt = now();
    const metricsTokenHash = config.metricsToken === undefined ? undefined : hashSecret(config.metricsToken);
    const app = await buildHttpApi({
      models,
      registry,
      deviceMessages: bindings.http,
      telemetry: store,
      deviceEvents,
      bus,
      twins,
      commands,
      agents,
      alarms,
      ...(edgeDirectory && edgeHub ? { edges: { directory: edgeDirectory, hub: edgeHub } } : {}),
      recentErrors: (deviceId) => gateway.recentErrors(deviceId),
      bindingHealth: (device) => gateway.health(device),
      publicEndpoints: () => ({
        ...(config.publicHost ? { host: config.publicHost } : {}),
        mqttPort: mqtt.port,
        ...(bindings.coap ? { coapPort: bindings.coap.port } : {}),
      }),
      presence: async (device) => {
        const fallback = presence.lastSeen(device.id) === null ? await store.lastSampleAt(device.uid) : null;
        return presence.of(device, now(), fallback);
      },
      isAdminKey: (secret) => admin.isAdminKey(secret),
      access: {
        brake: guessingBrake,
        tickets: new StreamTickets(now),
        isMetricsToken: (secret) => metricsTokenHash !== undefined && secretMatches(secret, metricsTokenHash),
        publicMetrics: config.publicMetrics,
        publicDocs: config.publicApiDocs,
      },
      refusals: metrics,
      requestTimeoutMs: config.httpRequestTimeoutMs,
      metricsRegistry: metrics.registry,
      readiness: () => {
        const checks = { database: db.open, mqtt: mqtt.port > 0 || (mqtt.tlsPort ?? 0) > 0, accepting: !stopping };
        return { ready: Object.values(checks).every(Boolean), checks };
      },
      logger,
      now,
      maxPayloadBytes: config.maxPayloadBytes,
      nodeInfo: () => ({
        role: config.role,
        ...(edgeSync ? { edge: { id: config.edgeId, cloud: config.cloudUrl, ...edgeSync.status() } } : {}),
        version: VERSION,
        startedAt,
        uptimeMs: now() - startedAt,
        mqttPort: mqtt.port,
        ...(mqtt.tlsPort ? { mqttsPort: mqtt.tlsPort } : {}),
        ...(bindings.coap ? { coapPort: bindings.coap.port } : {}),
        connectedDevices: mqtt.broker.connectedDevices(),
        ingestQueueDepth: store.pendingSamples(),
      }),
      mqttOverWebSocket: (stream, address) => mqtt.broker.handleWebSocket(stream, address),
    });
    // HTTPS first: it hooks its close into the app's, which must happen before the app starts.
    const httpsPort = tls ? await tls.serveHttps(app) : undefined;
    const httpPort = config.plaintext ? await listenHttp(app, config) : 0;
    cleanups.push('HTTP server (requests in flight, WebSockets)', () => app.close());

    // One sweep at a time, and shutdown waits for the one running: it writes to the store.
    let expirySweep: Promise<unknown> | undefined;
    const expiryTimer = setInterval(() => {
      if (expirySweep) return;
      // allSettled, not all: shutdown must wait for every part, also after one failed.
      expirySweep = Promise.allSettled([commands.expireDue(), twins.expireDue(), twins.flush(), agents.tick().then(() => agents.flush())])
        .then((outcomes) => {
          for (const outcome of outcomes) {
            if (outcome.status === 'rejected') logger.error({ err: (outcome.reason as Error).message }, 'expiry sweep failed');
          }
        })
        .finally(() => {
          expirySweep = undefined;
        });
    }, EXPIRY_SWEEP_MS);
    expiryTimer.unref();
    cleanups.push('expiry sweep', async () => {
      clearInterval(expiryTimer);
      await expirySweep;
    });

    const retention = new TelemetryRetention({
      samples: store,
      events: deviceEvents,
      liveDeviceUids: async () => devices.liveUids(),
      retentionMs: config.retentionMs,
      now,
      swept: (removed) => logger.info(removed, 'retention removed old telemetry and events'),
      failed: (error) => logger.error({ err: error.message }, 'retention sweep failed'),
    });
    retention.start();
    cleanups.push('retention sweep', () => retention.stop());

    const hostFor = (host: string) => (host === '0.0.0.0' || host === '::' ? 'localhost' : host);
    logger.info(
      { role: config.role, httpPort, mqttPort: mqtt.port, httpsPort, mqttsPort: mqtt.tlsPort, dataDir: config.dataDir, version: VERSION },
      `${config.role} node started`,
    );
    return {
      httpPort,
      mqttPort: mqtt.port,
      coapPort: bindings.coap?.port,
      httpUrl:
        config.plaintext || !httpsPort
          ? `http://${hostFor(config.httpHost)}:${httpPort}`
          : `https://${hostFor(config.httpHost)}:${httpsPort}`,
      mqttUrl: `mqtt://${hostFor(config.mqttHost)}:${mqtt.port}`,
      mqttsPort: mqtt.tlsPort,
      httpsPort,
      mqttsUrl: mqtt.tlsPort ? `mqtts://${hostFor(config.mqttHost)}:${mqtt.tlsPort}` : undefined,
      httpsUrl: httpsPort ? `https://${hostFor(config.httpHost)}:${httpsPort}` : undefined,
      adminKey,
      logger,
      registry,
      models,
      twins,
      commands,
      agents,
      alarms,
      ...(edgeDirectory ? { edges: edgeDirectory } : {}),
      async sweep() {
        await Promise.all([commands.expireDue(), twins.expireDue(), agents.tick(), retention.sweep()]);
      },
      async stop() {
        if (stopping) return;
        stopping = true;
        logger.info('stopping: closing listeners, flushing telemetry, closing the database');
        await cleanUp();
        logger.info('stopped');
      },
    };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}
