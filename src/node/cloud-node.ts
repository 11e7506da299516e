import type { FastifyInstance } from 'fastify';
import { AdminAccess, type AdminKeySetup, GuessingBrake, hashSecret, secretMatches } from '../access/index.js';
import { type AgentEngine, type AlarmService, loadAgentFiles } from '../agents/index.js';
import type { CommandService } from '../commands/index.js';
import { type EdgeDirectory, type EdgeSync, startEdgeSync } from '../edge/index.js';
import { BindingStartError, CodecRegistry, type RunningBindings, startBindings, TenantUplink } from '../gateway/index.js';
import { planIdentity } from '../identity/index.js';
import { ShutdownDeadlineError, ShutdownSteps } from '../lifecycle/index.js';
import type { ModelCatalog } from '../model/index.js';
import { createLogger, type Logger, NodeMetrics } from '../observability/index.js';
import { type DeviceRegistry, FleetDirectory } from '../registry/index.js';
import { type SqliteDatabase, SqliteOutbox, SqliteSettings, sqliteTenancyStores } from '../store/sqlite/index.js';
import { DEFAULT_TENANT, OidcSignIn, ROLE_PERMISSIONS, type Role, Tenancy } from '../tenancy/index.js';
import { type Clock, systemClock } from '../time/index.js';
import { EdgeLinkClient } from '../transport/edge-link/index.js';
import { buildHttpApi, StreamTickets } from '../transport/http/index.js';
import type { TwinService } from '../twin/index.js';
import { alarmSinks } from './agents-wiring.js';
import { createBindings, type NodeBindings } from './bindings.js';
import { howToSet, type NodeConfig, oidcRedirectUrl } from './config.js';
import { openTenantDatabase, type SharedParts, startTenantScope, type TenantScope } from './tenant-scope.js';
import { cloudTrust, mqttListenerOf, openNodeTls } from './tls.js';
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
  /** A tenant's parts (the fields above are the default tenant's). */
  tenant(id: string): TenantScope | undefined;
  /** Runs the expiry and retention sweeps now (they also run on timers); lets tests drive an injected clock. */
  sweep(): Promise<void>;
  /** Graceful: stop accepting, finish in-flight messages, flush every sample, close the database. */
  stop(): Promise<void>;
}

export class StartupError extends Error {}

const EXPIRY_SWEEP_MS = 1_000;
const HOUSEKEEPING_MS = 3_600_000;

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
    db = openTenantDatabase(config, DEFAULT_TENANT);
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
    const isEdge = config.role === 'edge';
    const outbox = isEdge ? new SqliteOutbox(db, now) : undefined;

    // Every tenant has its own store; the default tenant's is the node's own database.
    const tenants = new Map<string, TenantScope>();
    const metrics = new NodeMetrics(() => {
      let pending = 0;
      for (const tenant of tenants.values()) pending += tenant.telemetry.pendingSamples();
      return pending;
    });
    const tls = await openNodeTls(config, { metrics, logger });
    // One brake for HTTP and MQTT: a guesser gains nothing by switching listeners.
    const guessingBrake = new GuessingBrake({ burst: config.authFailureBurst, refillPerSecond: config.authFailureRefillPerSecond, now });
    // Bindings may register their own codecs (Sparkplug protobuf…) while they are created.
    const codecs = new CodecRegistry();
    const uplink = new TenantUplink((tenant) => tenants.get(tenant)?.gateway, metrics, now);
    let bindings: NodeBindings | undefined;
    const liveBroker = () => (bindings as NodeBindings).mqtt.broker;
    const sinks = alarmSinks(config, liveBroker, { refusals: metrics, logger: logger.child({ component: 'webhook' }) });
    const shared: SharedParts = { config, identity, metrics, codecs, sinks, logger, now };
    let edgeSync: EdgeSync | undefined;

    cleanups.push('closing the tenant databases', () => {
      for (const tenant of tenants.values()) if (tenant.db !== db) tenant.db.close();
    });
    cleanups.push('flushing stores (twins, agents, telemetry)', async () => {
      for (const tenant of tenants.values()) await tenant.flushStores();
    });
    const defaultTenant = await startTenantScope({
      id: DEFAULT_TENANT,
      db,
      shared,
      edges: !isEdge,
      ...(outbox ? { edgeOutbox: { outbox, onDecision: (decision) => edgeSync?.onDecision(decision) } } : {}),
    });
    tenants.set(DEFAULT_TENANT, defaultTenant);
    // Every tenant's devices, for the listeners they share.
    const fleet = new FleetDirectory();
    fleet.add(DEFAULT_TENANT, defaultTenant.registry);
    // People, keys, sessions and the audit trail live in the node's own database (a cloud's; an
    // edge has no people of its own: it is operated through its cloud).
    const tenancy = isEdge
      ? undefined
      : new Tenancy(sqliteTenancyStores(db), {
          now,
          refusals: metrics,
          onAuditWriteError: (error) => logger.error({ err: (error as Error).message }, 'audit trail write failed'),
        });
    if (tenancy) {
      defaultTenant.quotas.apply((await tenancy.tenants.ensureDefault()).quotas);
      // A tenant's quotas changed (PATCH /tenants/{id}): its running parts apply them from the next request.
      tenancy.tenants.events.on('changed', (tenant) => tenants.get(tenant.id)?.quotas.apply(tenant.quotas));
      const trail = tenancy;
      metrics.watchAuditTrail(() => trail.audit.stats());
      cleanups.push('audit trail (entries not yet written)', () => trail.audit.close());
    }
    const { registry, models, twins, commands, agents, alarms } = defaultTenant;
    if (config.agentsDir) {
      const loaded = await loadAgentFiles(agents, config.agentsDir, logger);
      logger.info({ directory: config.agentsDir, agents: loaded }, 'agent definitions loaded');
    }

    bindings = createBindings(config, {
      gateway: uplink,
      codecs,
      registry,
      fleet,
      models,
      tenantParts: (id) => tenants.get(id),
      isAdminKey: (secret) => admin.isAdminKey(secret),
      // MQTT logins with an API key (username `$key`); sessions are for people, not MQTT.
      identify: async (secret) => tenancy?.keys.authenticate(secret),
      brake: guessingBrake,
      ...(tls ? { tls: tls.mqtt } : {}),
      metrics,
      logger,
      now,
    });
    const nodeBindings = bindings;
    const mqtt = nodeBindings.mqtt;
    let running: RunningBindings;
    try {
      running = await startBindings(nodeBindings.all, uplink, logger);
    } catch (error) {
      if (error instanceof BindingStartError && error.protocol === 'mqtt') {
        const listener = mqttListenerOf(error.reason, config);
        throw portError(error.reason, listener.what, listener.port, listener.key);
      }
      if (error instanceof BindingStartError && error.protocol === 'coap') {
        throw portError(error.reason, 'CoAP', config.coapPort, 'coapPort');
      }
      throw error;
    }
    // Runs after every tenant stopped following (cleanups run in reverse): the bindings stop and
    // their messages in flight finish before the stores flush, so no report lands after the last flush.
    cleanups.push('device bindings (messages in flight)', () => running.stop());
    cleanups.push('tenant inputs (edge links, registry following, retention)', async () => {
      for (const tenant of tenants.values()) await tenant.stopInputs();
    });
    await defaultTenant.serve(nodeBindings.all);
    const openTenant = async (id: string): Promise<void> => {
      if (tenants.has(id)) return;
      const quotas = (await tenancy?.tenants.get(id))?.quotas;
      const db = openTenantDatabase(config, id);
      const scope = await startTenantScope({ id, db, shared, edges: !isEdge, ...(quotas ? { quotas } : {}) });
      tenants.set(id, scope);
      fleet.add(id, scope.registry);
      await scope.serve(nodeBindings.all);
    };
    for (const tenant of (await tenancy?.tenants.list()) ?? []) await openTenant(tenant.id);
    if (config.sparkplug && !tenants.has(config.sparkplugTenant)) {
      // Births are refused (registration_failed) until the tenant is created.
      logger.warn({ tenant: config.sparkplugTenant }, 'the Sparkplug tenant (--sparkplug-tenant) does not exist yet');
    }
    let oidc: OidcSignIn | undefined;
    const oidcSignIn = (): OidcSignIn => {
      if (!oidc) throw new StartupError('OpenID Connect sign-in is not ready yet');
      return oidc;
    };

    /** An edge's link to the cloud for one tenant: its outbox feeds the link, the cloud's configuration reconciles its parts. */
    const linkToCloud = (scope: TenantScope, scopeOutbox: SqliteOutbox, edgeId: string, token: string): EdgeSync => {
      const cloudUrl = config.cloudUrl as string;
      const sync = startEdgeSync(
        {
          cloudUrl,
          edgeId,
          quotaBytes: config.outboxQuotaBytes,
          policy: config.outboxPolicy,
          drainRatePerSecond: config.drainRate,
        },
        {
          outbox: scopeOutbox,
          link: (handlers, outboxEpoch) =>
            new EdgeLinkClient({ cloudUrl, edgeId, token, outboxEpoch, ca: cloudTrust(config), ...handlers }),
          registry: scope.registry,
          models: scope.models,
          agents: scope.agents,
          alarms: scope.alarms,
          twins: scope.twins,
          commands: scope.commands,
          logger: logger.child({ component: 'edge-sync', ...(scope.id === DEFAULT_TENANT ? {} : { tenant: scope.id }) }),
          now,
          dataDir: config.dataDir,
          bindingHealth: (device) => scope.gateway.health(device),
        },
      );
      scope.bus.on('event.accepted', () => sync.appended());
      scope.bus.on('telemetry.accepted', () => sync.appended());
      cleanups.push(`edge sync (cloud link, outbox feed${scope.id === DEFAULT_TENANT ? '' : ` of tenant ${scope.id}`})`, () => sync.stop());
      return sync;
    };
    if (outbox) {
      const { cloudUrl, edgeId, edgeToken } = config;
      if (!cloudUrl || !edgeId || !edgeToken) {
        throw new StartupError(
          `the edge role needs the cloud, its edge id and token: ${howToSet('cloudUrl')}, ${howToSet('edgeId')}, ${howToSet('edgeToken')}`,
        );
      }
      edgeSync = linkToCloud(defaultTenant, outbox, edgeId, edgeToken);
      // Further tenants on the same edge: each its own store, outbox and link, as separate as on the cloud.
      for (const link of config.edgeTenants) {
        if (tenants.has(link.tenant)) throw new StartupError(`tenant ${link.tenant} is named twice in ${howToSet('edgeTenants')}`);
        const tenantDb = openTenantDatabase(config, link.tenant);
        const tenantOutbox = new SqliteOutbox(tenantDb, now);
        let tenantSync: EdgeSync | undefined;
        const scope = await startTenantScope({
          id: link.tenant,
          db: tenantDb,
          shared,
          edges: false,
          edgeOutbox: { outbox: tenantOutbox, onDecision: (decision) => tenantSync?.onDecision(decision) },
        });
        tenants.set(link.tenant, scope);
        fleet.add(link.tenant, scope.registry);
        await scope.serve(nodeBindings.all);
        tenantSync = linkToCloud(scope, tenantOutbox, link.edgeId, link.token);
      }
    }

    let stopping = false;
    const startedAt = now();
    const metricsTokenHash = config.metricsToken === undefined ? undefined : hashSecret(config.metricsToken);
    /** The tenant whose device or edge holds this secret: ids repeat across tenants, secrets never do. */
    const holderTenant = async (check: (tenant: TenantScope) => Promise<boolean>): Promise<string | undefined> => {
      for (const tenant of tenants.values()) if (await check(tenant)) return tenant.id;
      return undefined;
    };
    const app = await buildHttpApi({
      tenants: { get: (id) => tenants.get(id)?.api },
      ...(tenancy
        ? {
            tenancy: {
              services: tenancy,
              openTenant,
              permissionsOf: (role: Role) => [...ROLE_PERMISSIONS[role]],
              ...(config.oidcIssuer
                ? { oidc: { begin: () => oidcSignIn().begin(), finish: (url: URL, state?: string) => oidcSignIn().finish(url, state) } }
                : {}),
            },
          }
        : {}),
      servesEdges: !isEdge,
      deviceMessages: nodeBindings.http,
      publicEndpoints: () => ({
        ...(config.publicHost ? { host: config.publicHost } : {}),
        mqttPort: mqtt.port,
        ...(nodeBindings.coap ? { coapPort: nodeBindings.coap.port } : {}),
      }),
      isAdminKey: (secret) => admin.isAdminKey(secret),
      access: {
        identify: async (secret) => tenancy?.authenticate(secret),
        deviceTenant: (deviceId, secret) =>
          holderTenant(async (tenant) => (await tenant.registry.authenticate(deviceId, secret)) !== undefined),
        edgeTenant: (edgeId, secret) =>
          holderTenant(async (tenant) => (await tenant.edgeDirectory?.authenticate(edgeId, secret)) !== undefined),
        audit: (entry) => {
          tenancy?.audit.record(entry);
        },
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
        ...(nodeBindings.coap ? { coapPort: nodeBindings.coap.port } : {}),
        connectedDevices: mqtt.broker.connectedDevices(),
        ingestQueueDepth: [...tenants.values()].reduce((sum, tenant) => sum + tenant.telemetry.pendingSamples(), 0),
      }),
      mqttOverWebSocket: (stream, address) => mqtt.broker.handleWebSocket(stream, address),
    });
    // HTTPS first: it hooks its close into the app's, which must happen before the app starts.
    const httpsPort = tls ? await tls.serveHttps(app) : undefined;
    const httpPort = config.plaintext ? await listenHttp(app, config) : 0;
    cleanups.push('HTTP server (requests in flight, WebSockets)', () => app.close());
    if (config.oidcIssuer && config.oidcClientId && config.oidcClientSecret) {
      const publicUrl = `${httpsPort ? 'https' : 'http'}://${config.publicHost ?? 'localhost'}:${httpsPort ?? httpPort}`;
      oidc = new OidcSignIn({
        issuer: new URL(config.oidcIssuer),
        clientId: config.oidcClientId,
        clientSecret: config.oidcClientSecret,
        redirectUri: oidcRedirectUrl(config, publicUrl),
        tenantClaim: config.oidcTenantClaim,
        roleClaim: config.oidcRoleClaim,
        now,
      });
    }

    // One sweep at a time, and shutdown waits for the one running: it writes to the store.
    let expirySweep: Promise<unknown> | undefined;
    const expireDue = () => Promise.all([...tenants.values()].map((tenant) => tenant.expireDue()));
    const expiryTimer = setInterval(() => {
      if (expirySweep) return;
      expirySweep = expireDue().finally(() => {
        expirySweep = undefined;
      });
    }, EXPIRY_SWEEP_MS);
    expiryTimer.unref();
    cleanups.push('expiry sweep', async () => {
      clearInterval(expiryTimer);
      await expirySweep;
    });

    // Ended sessions and audit entries past retention are deleted hourly; shutdown waits for a run in progress.
    let housekeeping: Promise<unknown> | undefined;
    const keepHouse = async () => {
      if (!tenancy) return;
      await tenancy.sessions.sweep();
      await tenancy.audit.prune(now() - config.auditRetentionMs);
    };
    const runHousekeeping = () => {
      housekeeping ??= keepHouse()
        .catch((error) => logger.error({ err: (error as Error).message }, 'tenancy housekeeping failed'))
        .finally(() => {
          housekeeping = undefined;
        });
      return housekeeping;
    };
    const housekeepingTimer = setInterval(runHousekeeping, HOUSEKEEPING_MS);
    housekeepingTimer.unref();
    cleanups.push('tenancy housekeeping (session sweep, audit retention)', async () => {
      clearInterval(housekeepingTimer);
      await housekeeping;
    });

    const hostFor = (host: string) => (host === '0.0.0.0' || host === '::' ? 'localhost' : host);
    logger.info(
      { role: config.role, httpPort, mqttPort: mqtt.port, httpsPort, mqttsPort: mqtt.tlsPort, dataDir: config.dataDir, version: VERSION },
      `${config.role} node started`,
    );
    return {
      httpPort,
      mqttPort: mqtt.port,
      coapPort: nodeBindings.coap?.port,
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
      ...(defaultTenant.edgeDirectory ? { edges: defaultTenant.edgeDirectory } : {}),
      tenant: (id) => tenants.get(id),
      async sweep() {
        await Promise.all(
          [...tenants.values()].flatMap((tenant) => [
            tenant.commands.expireDue(),
            tenant.twins.expireDue(),
            tenant.agents.tick(),
            tenant.retention.sweep(),
          ]),
        );
        await runHousekeeping();
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
