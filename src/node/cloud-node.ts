import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { AdminAccess, type AdminKeySetup } from '../access/index.js';
import { EventBus } from '../bus/index.js';
import { addressDevice, canonicalIpv6, planIdentity } from '../identity/index.js';
import { type IngestEvents, IngestPipeline } from '../ingest/index.js';
import { ModelCatalog } from '../model/index.js';
import { createLogger, type Logger, NodeMetrics } from '../observability/index.js';
import { DeviceRegistry } from '../registry/index.js';
import {
  openDatabase,
  type SqliteDatabase,
  SqliteDevices,
  SqliteModels,
  SqliteSettings,
  SqliteTelemetryStore,
} from '../store/sqlite/index.js';
import { type Clock, systemClock } from '../time/index.js';
import { buildHttpApi } from '../transport/http/index.js';
import { EmbeddedMqttBroker } from '../transport/mqtt/index.js';
import { howToSet, type NodeConfig } from './config.js';
import { VERSION } from './version.js';

export interface NodeOptions {
  clock?: Clock;
  logger?: Logger;
}

export interface RunningNode {
  httpPort: number;
  mqttPort: number;
  httpUrl: string;
  mqttUrl: string;
  adminKey: AdminKeySetup;
  logger: Logger;
  registry: DeviceRegistry;
  models: ModelCatalog;
  /** Graceful: stop accepting, finish in-flight messages, flush every sample, close the database. */
  stop(): Promise<void>;
}

export class StartupError extends Error {}

const RETENTION_SWEEP_MS = 3_600_000;

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
  const cleanups: (() => Promise<void> | void)[] = [
    () => {
      db.close();
    },
  ];
  const cleanUp = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  };

  try {
    const admin = new AdminAccess(new SqliteSettings(db));
    const adminKey = await admin.setUp(config.adminKey);
    const models = new ModelCatalog(new SqliteModels(db), now);
    const devices = new SqliteDevices(db);
    const registry = new DeviceRegistry(
      devices,
      models,
      {
        address: (id, attempt) => addressDevice(identity, id, attempt),
        canonicalIpv6,
      },
      now,
    );

    let telemetry: SqliteTelemetryStore | undefined;
    const metrics = new NodeMetrics(() => telemetry?.pendingSamples() ?? 0);
    telemetry = new SqliteTelemetryStore(db, metrics);
    const store = telemetry;
    cleanups.push(() => store.flush());

    const bus = new EventBus<IngestEvents>((error, event) => logger.error({ err: error, event }, 'bus listener failed'));
    const ingest = new IngestPipeline({
      store,
      bus,
      metrics,
      now,
      modelOf: (device) => models.compiled(device.model, device.modelVersion),
      limits: {
        maxPayloadBytes: config.maxPayloadBytes,
        maxSamplesPerMessage: config.maxSamplesPerMessage,
        maxFutureSkewMs: config.maxClockSkewMs,
      },
    });

    const broker = new EmbeddedMqttBroker({
      port: config.mqttPort,
      host: config.mqttHost,
      registry,
      ingest,
      isAdminKey: (secret) => admin.isAdminKey(secret),
      metrics,
      logger: logger.child({ component: 'mqtt' }),
      now,
    });
    try {
      await broker.start();
    } catch (error) {
      throw portError(error, 'MQTT', config.mqttPort, 'mqttPort');
    }
    cleanups.push(() => broker.stop());
    bus.on('telemetry.rejected', (event) => broker.publishRejections(event.device.id, 'telemetry', event.rejections));

    let stopping = false;
    const startedAt = now();
    const app = await buildHttpApi({
      models,
      registry,
      ingest,
      telemetry: store,
      bus,
      isAdminKey: (secret) => admin.isAdminKey(secret),
      metricsRegistry: metrics.registry,
      readiness: () => {
        const checks = { database: db.open, mqtt: broker.port > 0, accepting: !stopping };
        return { ready: Object.values(checks).every(Boolean), checks };
      },
      logger,
      now,
      maxPayloadBytes: config.maxPayloadBytes,
      nodeInfo: () => ({
        role: 'cloud',
        version: VERSION,
        startedAt,
        uptimeMs: now() - startedAt,
        mqttPort: broker.port,
        connectedDevices: broker.connectedDevices(),
        ingestQueueDepth: store.pendingSamples(),
      }),
      onAuthFailure: () => metrics.authFailed('http'),
    });
    const httpPort = await listenHttp(app, config);
    cleanups.push(() => app.close());

    const sweep = async () => {
      const removed = await store.prune(now() - config.retentionMs, async () => devices.liveUids());
      if (removed > 0) logger.info({ removed }, 'retention removed old telemetry');
    };
    const sweepTimer = setInterval(
      () => sweep().catch((error: Error) => logger.error({ err: error }, 'retention sweep failed')),
      RETENTION_SWEEP_MS,
    );
    sweepTimer.unref();
    cleanups.push(() => clearInterval(sweepTimer));

    const hostFor = (host: string) => (host === '0.0.0.0' || host === '::' ? 'localhost' : host);
    logger.info({ httpPort, mqttPort: broker.port, dataDir: config.dataDir, version: VERSION }, 'cloud node started');
    return {
      httpPort,
      mqttPort: broker.port,
      httpUrl: `http://${hostFor(config.httpHost)}:${httpPort}`,
      mqttUrl: `mqtt://${hostFor(config.mqttHost)}:${broker.port}`,
      adminKey,
      logger,
      registry,
      models,
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
