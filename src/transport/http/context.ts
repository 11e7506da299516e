import type { Duplex } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { GuessingBrake } from '../../access/index.js';
import type { AgentEngine, AlarmService } from '../../agents/index.js';
import type { EventBus } from '../../bus/index.js';
import type { CommandService } from '../../commands/index.js';
import type { EdgeConfig, EdgeDirectory, EdgeHeartbeat, ReconcileResult } from '../../edge/index.js';
import { DomainError } from '../../errors/index.js';
import type { BindingHealth, DeviceErrorNotice } from '../../gateway/index.js';
import type { IngestEvents } from '../../ingest/index.js';
import type { ModelCatalog } from '../../model/index.js';
import type { Logger, RefusalMetrics } from '../../observability/index.js';
import type { DeviceRecord, DeviceRegistry, Presence } from '../../registry/index.js';
import type { DeviceEventStore, TelemetryStore } from '../../telemetry/index.js';
import type { OidcSignIn, Role, Tenancy } from '../../tenancy/index.js';
import type { TwinService } from '../../twin/index.js';
import type { AuditedRequest, Identity, StreamTickets, TenantLookup } from './access.js';
import type { HttpBinding } from './binding.js';

/** The cloud's edge hub as the link route drives it. */
export interface EdgeLinkHandler {
  isConnected(edgeId: string): boolean;
  connected(
    edgeId: string,
    session: { send(message: unknown): void; close(code: number, reason: string): void },
    outboxEpoch?: string,
  ): Promise<void>;
  disconnected(edgeId: string, session: { send(message: unknown): void; close(code: number, reason: string): void }): void;
  /** The edge was deleted: close its link if it is up. */
  forget(edgeId: string): void;
  batch(edgeId: string, frame: Buffer): void;
  heartbeat(edgeId: string, heartbeat: EdgeHeartbeat): Promise<void>;
  applied(edgeId: string, version: number, results: ReconcileResult[]): Promise<void>;
  configFor(edgeId: string): Promise<EdgeConfig>;
}

/**
 * One tenant's parts as routes use them. Each tenant has its own store, so whatever a route reads
 * or writes through these belongs to the request's tenant and no other.
 */
export interface TenantApi {
  id: string;
  models: ModelCatalog;
  registry: DeviceRegistry;
  telemetry: TelemetryStore;
  deviceEvents: DeviceEventStore;
  bus: EventBus<IngestEvents>;
  twins: TwinService;
  commands: CommandService;
  agents: AgentEngine;
  alarms: AlarmService;
  /** Present on cloud nodes: the tenant's directory of edges and the hub their links connect to. */
  edges?: { directory: EdgeDirectory; hub: EdgeLinkHandler };
  presence(device: DeviceRecord): Promise<Presence>;
  /** The health of the binding that reaches the device (`GET /devices/{id}/binding`). */
  bindingHealth(device: DeviceRecord): BindingHealth;
  /** What a device sent that was refused, newest first (bounded, in memory). */
  recentErrors(deviceId: string): DeviceErrorNotice[];
}

/** What the HTTP API needs from the node; the node builds it, routes only read it. */
export interface HttpApiContext {
  /** The tenants this node serves; the access check admits a request only into a tenant that exists. */
  tenants: TenantLookup<TenantApi>;
  /** Tenants, people, keys, sessions and the audit trail (absent on an edge node, which has no people of its own). */
  tenancy?: {
    services: Pick<Tenancy, 'tenants' | 'users' | 'sessions' | 'keys' | 'audit'>;
    /** Starts serving a tenant just created: its store, its parts, its devices on the node's listeners. */
    openTenant(id: string): Promise<void>;
    /** OpenID Connect sign-in, when an issuer is configured. */
    oidc?: Pick<OidcSignIn, 'begin' | 'finish'>;
    permissionsOf(role: Role): string[];
  };
  /** A cloud serves edges (the edge routes and link); an edge node does not. */
  servesEdges: boolean;
  /** Where device requests (telemetry, events) go: the HTTP binding, which hands them to the gateway. */
  deviceMessages: Pick<HttpBinding, 'accept'>;
  /** Where consumers reach this node's other listeners (Thing Descriptions): the public host when set, and the bound ports. */
  publicEndpoints(): { host?: string; mqttPort?: number; coapPort?: number };
  isAdminKey(secret: string): boolean;
  /** Who may reach what beyond route declarations: keys and sessions, the guessing brake, stream tickets, public metrics/docs. */
  access: {
    identify(secret: string): Promise<Identity | undefined>;
    deviceTenant(deviceId: string, secret: string): Promise<string | undefined>;
    edgeTenant(edgeId: string, secret: string): Promise<string | undefined>;
    audit(entry: AuditedRequest): void;
    brake: GuessingBrake;
    tickets: StreamTickets;
    isMetricsToken(secret: string): boolean;
    publicMetrics: boolean;
    publicDocs: boolean;
  };
  refusals: RefusalMetrics & { authFailed(protocol: 'http'): void };
  /** Deadline for receiving a whole request (headers and body). */
  requestTimeoutMs: number;
  metricsRegistry: Registry;
  /** Ready means every part has started and none is shutting down. */
  readiness(): { ready: boolean; checks: Record<string, boolean> };
  logger: Logger;
  now(): number;
  maxPayloadBytes: number;
  /** Node-level facts reported by /api/v1/node (role, version, ports). */
  nodeInfo(): Record<string, unknown>;
  /** MQTT over WebSocket (`/mqtt`): hands each upgraded connection to the embedded broker; no route when absent. */
  mqttOverWebSocket?(stream: Duplex, address: string | undefined): void;
}

/** The tenant of the request's caller: a member's, a device's or an edge's. */
export function tenantIdOf(request: FastifyRequest): string | undefined {
  const principal = request.principal;
  return principal.kind === 'member' || principal.kind === 'device' || principal.kind === 'edge' ? principal.tenant : undefined;
}

/** The parts of the tenant the request acts in; the access check has made sure it exists. */
export function tenantOf(context: HttpApiContext, request: FastifyRequest): TenantApi {
  const id = tenantIdOf(request);
  const tenant = id === undefined ? undefined : context.tenants.get(id);
  if (!tenant) throw new DomainError('not_found', 'no tenant for this request: sign in or send a key');
  return tenant;
}

/** Who acted, as records show it: a member's actor, `device:<id>`, `edge:<id>`. */
export function actorOf(request: FastifyRequest): string {
  const principal = request.principal;
  if (principal.kind === 'member') return principal.actor;
  if (principal.kind === 'device') return `device:${principal.deviceId}`;
  if (principal.kind === 'edge') return `edge:${principal.edgeId}`;
  return 'anonymous';
}
