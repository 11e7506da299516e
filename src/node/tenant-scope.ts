import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type AgentEngine, type AlarmService, type AlarmSink, plantAccess } from '../agents/index.js';
import { EventBus } from '../bus/index.js';
import { CommandService } from '../commands/index.js';
import { EdgeDirectory, EdgeHub, eventRecord, telemetryRecords } from '../edge/index.js';
import { type CodecRegistry, type DeviceBinding, DeviceGateway } from '../gateway/index.js';
import { addressDevice, canonicalIpv6, type IdentityPlan } from '../identity/index.js';
import { type IngestEvents, IngestPipeline } from '../ingest/index.js';
import { ModelCatalog } from '../model/index.js';
import type { Logger, NodeMetrics } from '../observability/index.js';
import { type DeviceRecord, DeviceRegistry, PresenceBook } from '../registry/index.js';
import {
  databaseBytes,
  openDatabase,
  type SqliteDatabase,
  SqliteDeviceEvents,
  SqliteDevices,
  SqliteEdges,
  SqliteInvocations,
  SqliteModels,
  type SqliteOutbox,
  SqliteTelemetryStore,
  SqliteTwins,
} from '../store/sqlite/index.js';
import { TelemetryRetention, type TelemetrySample } from '../telemetry/index.js';
import { DEFAULT_TENANT, TenantQuotaGuard, type TenantQuotas } from '../tenancy/index.js';
import type { TenantApi } from '../transport/http/index.js';
import { TwinService } from '../twin/index.js';
import { createAgents } from './agents-wiring.js';
import type { NodeConfig } from './config.js';

const DEFAULT_ACTION_TIMEOUT_MS = 30_000;
/** How long an action waits for an offline (not sleepy) device. */
const DEFAULT_AWAKE_TTL_MS = 3_600_000;
/** How long actions and desired changes wait for a sleepy device's next window. */
const DEFAULT_SLEEPY_TTL_MS = 86_400_000;

/** What every tenant of a node shares: configuration, identity plan, metrics, codecs, alarm sinks, the log and the clock. */
export interface SharedParts {
  config: NodeConfig;
  identity: IdentityPlan;
  metrics: NodeMetrics;
  codecs: CodecRegistry;
  /** A tenant's alarm sinks (the MQTT one publishes in the tenant's mount). */
  sinks(tenant: string): AlarmSink[];
  logger: Logger;
  now(): number;
}

/** Edge role only: the outbox the tenant's data is queued in for the cloud, and where decisions go. */
export interface EdgeOutboxParts {
  outbox: SqliteOutbox;
  onDecision(decision: Record<string, unknown>): void;
}

/**
 * One tenant's running parts: its own database, registry, models, telemetry, twins, actions,
 * agents, alarms and (on a cloud) edges. Nothing here can reach another tenant's records: each
 * tenant's store is a database of its own.
 */
export interface TenantScope {
  id: string;
  db: SqliteDatabase;
  models: ModelCatalog;
  devices: SqliteDevices;
  registry: DeviceRegistry;
  telemetry: SqliteTelemetryStore;
  deviceEvents: SqliteDeviceEvents;
  bus: EventBus<IngestEvents>;
  presence: PresenceBook;
  twins: TwinService;
  commands: CommandService;
  gateway: DeviceGateway;
  agents: AgentEngine;
  alarms: AlarmService;
  edgeDirectory: EdgeDirectory | undefined;
  edgeHub: EdgeHub | undefined;
  retention: TelemetryRetention;
  /** The tenant's quotas as they apply now (`apply` when they change). */
  quotas: TenantQuotaGuard;
  /** The tenant as the HTTP routes use it. */
  api: TenantApi;
  /** Expired actions and desired changes, the agents' timers: run every second by the node. */
  expireDue(): Promise<void>;
  /** Serves the tenant's devices through the node's running bindings. */
  serve(bindings: DeviceBinding[]): Promise<void>;
  /** First half of a stop: no more input (retention, edge links, following the registry). */
  stopInputs(): Promise<void>;
  /** Second half, once the bindings have stopped: every write in memory reaches the database. */
  flushStores(): Promise<void>;
}

/** Where a tenant's database lives: the default tenant keeps the node's own file (single-tenant installs are unchanged). */
export function tenantDatabaseFile(dataDir: string, tenant: string): string {
  return tenant === DEFAULT_TENANT ? join(dataDir, 'thingloop.db') : join(dataDir, 'tenants', tenant, 'thingloop.db');
}

export function openTenantDatabase(config: NodeConfig, tenant: string): SqliteDatabase {
  const file = tenantDatabaseFile(config.dataDir, tenant);
  if (tenant !== DEFAULT_TENANT) mkdirSync(join(config.dataDir, 'tenants'), { recursive: true, mode: 0o700 });
  return openDatabase(file, { synchronous: config.durability });
}

/**
 * Identification codes and IPv6 addresses are unique across the node: another tenant's device of
 * the same id gets its own code (`{prefix}/{tenant}/{id}`) and address.
 */
function tenantAddressing(identity: IdentityPlan, tenant: string) {
  const qualified = (id: string) => (tenant === DEFAULT_TENANT ? id : `${tenant}/${id}`);
  return { address: (id: string, attempt: number) => addressDevice(identity, qualified(id), attempt), canonicalIpv6 };
}

export interface TenantScopeOptions {
  id: string;
  db: SqliteDatabase;
  shared: SharedParts;
  /** Clouds: actions for devices an edge serves go through that edge's link. */
  edges: boolean;
  /** Edge role: the outbox to the cloud. */
  edgeOutbox?: EdgeOutboxParts;
  /** The tenant's quotas at start (a cloud's tenants; none on an edge). */
  quotas?: TenantQuotas;
}

/** Builds a tenant's parts on its database and attaches its devices to the node's bindings. */
export async function startTenantScope(options: TenantScopeOptions): Promise<TenantScope> {
  const { id, db, shared, edgeOutbox } = options;
  const { metrics, logger: nodeLogger, now } = shared;
  const logger = id === DEFAULT_TENANT ? nodeLogger : nodeLogger.child({ tenant: id });
  const isEdge = shared.config.role === 'edge';
  const outbox = edgeOutbox?.outbox;

  const models = new ModelCatalog(new SqliteModels(db), now);
  const devices = new SqliteDevices(db, id);
  const edgeDirectory = options.edges ? new EdgeDirectory(new SqliteEdges(db), now) : undefined;
  const quotas = new TenantQuotaGuard({
    tenant: id,
    quotas: options.quotas ?? {},
    storedBytes: () => databaseBytes(db),
    refusals: metrics,
    now,
  });
  const registry = new DeviceRegistry(
    devices,
    models,
    tenantAddressing(shared.identity, id),
    now,
    async (edgeId) => (await edgeDirectory?.find(edgeId)) !== undefined,
    quotas,
  );
  const telemetry = new SqliteTelemetryStore(db, metrics, {
    maxBatchSamples: 5_000,
    // On an edge a sample is stored and queued for the cloud in one transaction.
    ...(outbox ? { alsoInTransaction: (samples: TelemetrySample[]) => outbox.insertRows(telemetryRecords(samples)) } : {}),
  });
  // On an edge an event is stored and queued for the cloud in one transaction, like a sample.
  const deviceEvents = new SqliteDeviceEvents(db, outbox ? { alsoInTransaction: (event) => outbox.insertRows([eventRecord(event)]) } : {});

  const bus = new EventBus<IngestEvents>((error, event) => logger.error({ err: error, event }, 'bus listener failed'));
  const modelOf = (device: DeviceRecord) => models.compiled(device.model, device.modelVersion);
  const ingest = new IngestPipeline({
    decode: (bytes, contentType) => shared.codecs.decode(bytes, contentType),
    store: telemetry,
    events: deviceEvents,
    bus,
    metrics,
    now,
    modelOf,
    limits: {
      maxPayloadBytes: shared.config.maxPayloadBytes,
      maxSamplesPerMessage: shared.config.maxSamplesPerMessage,
      maxFutureSkewMs: shared.config.maxClockSkewMs,
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
        if (actor === 'cloud') metrics.refused('edge-link', 'queue_full');
        else if (!actor.startsWith('agent')) metrics.refused('http', 'queue_full');
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
    admission: quotas,
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
  await twins.resumePending((deviceId) => registry.find(deviceId));
  const plant = plantAccess(registry, twins, commands);
  const { engine: agents, alarms } = createAgents(db, plant, shared.sinks(id), now, logger.child({ component: 'agents' }), {
    // The cloud leaves devices served by an edge to the agents running on that edge.
    evaluates: (device) => isEdge || device.edge === undefined,
    admitAgent: (current) => quotas.admitAgents(current),
    ...(edgeOutbox ? { onDecision: (decision) => edgeOutbox.onDecision(decision as unknown as Record<string, unknown>) } : {}),
  });
  await agents.start();

  bus.on('telemetry.accepted', (event) => {
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

  const retention = new TelemetryRetention({
    samples: telemetry,
    events: deviceEvents,
    liveDeviceUids: async () => devices.liveUids(),
    retentionMs: shared.config.retentionMs,
    now,
    swept: (removed) => logger.info(removed, 'retention removed old telemetry and events'),
    failed: (error) => logger.error({ err: error.message }, 'retention sweep failed'),
  });
  retention.start();

  const hub = edgeHub;
  const api: TenantApi = {
    id,
    models,
    registry,
    telemetry,
    deviceEvents,
    bus,
    twins,
    commands,
    agents,
    alarms,
    ...(edgeDirectory && hub ? { edges: { directory: edgeDirectory, hub } } : {}),
    recentErrors: (deviceId) => gateway.recentErrors(deviceId),
    bindingHealth: (device) => gateway.health(device),
    presence: async (device) => {
      const fallback = presence.lastSeen(device.id) === null ? await telemetry.lastSampleAt(device.uid) : null;
      return presence.of(device, now(), fallback);
    },
  };

  return {
    id,
    db,
    models,
    devices,
    registry,
    telemetry,
    deviceEvents,
    bus,
    presence,
    twins,
    commands,
    gateway,
    agents,
    alarms,
    edgeDirectory,
    edgeHub,
    retention,
    quotas,
    api,
    async expireDue() {
      // allSettled, not all: shutdown must wait for every part, also after one failed.
      const outcomes = await Promise.allSettled([
        commands.expireDue(),
        twins.expireDue(),
        twins.flush(),
        agents.tick().then(() => agents.flush()),
      ]);
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected') logger.error({ err: (outcome.reason as Error).message }, 'expiry sweep failed');
      }
    },
    serve: (bindings) => gateway.serve(bindings),
    async stopInputs() {
      await retention.stop();
      // No new frames, then the batches and pushes in flight finish before the store closes.
      await hub?.stop();
      await gateway.stop();
    },
    async flushStores() {
      await twins.flush();
      await agents.idle();
      await agents.flush();
      await telemetry.flush();
    },
  };
}
