/**
 * Who may call a route, decided by the route fastify matched, never by string tests on the URL:
 * the router decodes `/%61pi/v1/devices` to the same route as `/api/v1/devices`, so only the
 * matched route's own declaration is safe to trust. Every route declares `config.access`; one
 * that does not is refused at registration, so a new route cannot forget.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GuessingBrake } from '../../access/index.js';
import type { RefusalMetrics } from '../../observability/index.js';
import { DEFAULT_TENANT, isPermission, type Permission, permits, type Role } from '../../tenancy/index.js';

/**
 * What a route needs, declared in its own options:
 * - `public`: anyone (health, the console's static files, sign-in).
 * - a permission (`devices:read`, `actions:invoke`…): a member of the tenant (a person's session,
 *   an API key, or the node's platform admin key) whose role grants it; see tenancy's policy table.
 *   With `devices: true` the token of the device named by the route's `:id` also opens it.
 * - `edge`: the token of the edge named by the route's `:id` (the edge link).
 * - `metrics`: the metrics token or a member with `metrics:read`; anyone when the node makes metrics public.
 * - `docs`: any member; anyone when the node makes the OpenAPI document public.
 * - `member`: any member of a tenant, whatever its role (who am I, sign out).
 */
export type RouteAccess = 'public' | 'edge' | 'metrics' | 'docs' | 'member' | Permission;

/** Someone in a tenant: a person signed in, an API key, or the platform admin key (acting in the tenant it names). */
export interface Member {
  kind: 'member';
  tenant: string;
  role: Role;
  /** Who acted, as records show it: `admin`, `user:<name>`, `key:<name>`. */
  actor: string;
  userId?: string;
  keyId?: string;
  sessionId?: string;
}

export type Principal =
  | { kind: 'anonymous' }
  | Member
  | { kind: 'device'; tenant: string; deviceId: string }
  | { kind: 'edge'; tenant: string; edgeId: string }
  | { kind: 'metrics-scraper' };

/** What a key or a session stands for; undefined when it stands for nothing (unknown, expired, revoked). */
export type Identity = Omit<Member, 'kind'>;

/** The tenant a request acts in: the node's parts for that tenant. */
export interface TenantLookup<T> {
  get(tenant: string): T | undefined;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
    /** The device named by the route's `:id` may call it with its own token. */
    devices?: boolean;
    /** A WebSocket route that browsers open: a single-use stream ticket may stand in for the bearer header. */
    acceptsStreamTicket?: boolean;
    /** Reads of this route are sensitive and recorded in the audit trail (every change is). */
    auditReads?: boolean;
  }
  interface FastifyRequest {
    principal: Principal;
  }
}

/** One entry of the audit trail, as the access layer sees a request. */
export interface AuditedRequest {
  tenant: string;
  at: number;
  actor: string;
  action: string;
  resource: string;
  address: string;
  status: number;
}

/** The header in which the platform admin names the tenant it acts in (default: `default`). */
export const TENANT_HEADER = 'x-thingloop-tenant';

export interface AccessOptions {
  isAdminKey(secret: string): boolean;
  /** A person's session or an API key; undefined when neither. */
  identify(secret: string): Promise<Identity | undefined>;
  /** The tenant whose device `deviceId` has this token, if any. */
  deviceTenant(deviceId: string, secret: string): Promise<string | undefined>;
  /** The tenant whose edge `edgeId` has this token, if any. */
  edgeTenant(edgeId: string, secret: string): Promise<string | undefined>;
  tenantExists(tenant: string): boolean;
  /** A bearer token that may read /metrics (for scrapers that should not hold the admin key). */
  isMetricsToken(secret: string): boolean;
  publicMetrics: boolean;
  publicDocs: boolean;
  brake: GuessingBrake;
  tickets: StreamTickets;
  metrics: RefusalMetrics & { authFailed(protocol: 'http'): void };
  /** Every change, and every read of a route marked `auditReads`, by a member. */
  audit(entry: AuditedRequest): void;
}

/** The bearer secret of a request: only the Authorization header (query strings end up in logs and histories). */
export function presentedSecret(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string' || !/^bearer /i.test(header)) return undefined;
  const secret = header.slice(7).trim();
  return secret.length > 0 ? secret : undefined;
}

export function sendUnauthorized(reply: FastifyReply, message: string): FastifyReply {
  return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthorized', message });
}

function unauthorizedMessage(access: Exclude<RouteAccess, 'public'>, devices: boolean): string {
  if (access === 'edge') return 'send "Authorization: Bearer <edge token>"';
  if (access === 'metrics') return 'metrics need the metrics token or a key: send "Authorization: Bearer <token>"';
  if (access === 'docs') return 'the API document needs a key: send "Authorization: Bearer <key>"';
  if (access === 'member') return 'sign in (POST /api/v1/sessions) or send "Authorization: Bearer <key>"';
  return devices
    ? `send "Authorization: Bearer <device token>", or a key or session with the ${access} permission`
    : `this endpoint needs a key or session with the ${access} permission: send "Authorization: Bearer <key>"`;
}

/** The route's `:id`, which names the device or edge a `device`/`edge` route acts for. */
function routeId(request: FastifyRequest): string | undefined {
  const params = request.params as Record<string, unknown> | undefined;
  return typeof params?.id === 'string' ? params.id : undefined;
}

/** The tenant of the request: a member's own; the platform admin's is the one it names in the tenant header. */
function requestedTenant(request: FastifyRequest): string | undefined {
  const header = request.headers[TENANT_HEADER];
  return typeof header === 'string' && header.length > 0 ? header : undefined;
}

type Decision = { principal: Principal } | { refuse: 401 } | { refuse: 403 | 404; message: string };

/** Decides who the caller is for the route it reached, and whether it may call it. */
async function decide(
  request: FastifyRequest,
  access: Exclude<RouteAccess, 'public'>,
  options: AccessOptions,
  secret: string,
): Promise<Decision> {
  const id = routeId(request);
  const devices = request.routeOptions.config.devices === true;
  if (access === 'edge') {
    const tenant = id === undefined ? undefined : await options.edgeTenant(id, secret);
    return tenant !== undefined && id !== undefined ? { principal: { kind: 'edge', tenant, edgeId: id } } : { refuse: 401 };
  }
  if (access === 'metrics' && options.isMetricsToken(secret)) return { principal: { kind: 'metrics-scraper' } };
  let member: Member | undefined;
  if (options.isAdminKey(secret)) {
    member = { kind: 'member', tenant: requestedTenant(request) ?? DEFAULT_TENANT, role: 'platform-admin', actor: 'admin' };
  } else {
    const identity = await options.identify(secret);
    if (identity) member = { kind: 'member', ...identity };
  }
  if (!member) {
    if (devices && id !== undefined) {
      const tenant = await options.deviceTenant(id, secret);
      if (tenant !== undefined) return { principal: { kind: 'device', tenant, deviceId: id } };
    }
    return { refuse: 401 };
  }
  const named = requestedTenant(request);
  if (named !== undefined && named !== member.tenant) {
    return {
      refuse: 403,
      message: `this key acts in tenant "${member.tenant}" only: drop the ${TENANT_HEADER} header or use a key of "${named}"`,
    };
  }
  if (!options.tenantExists(member.tenant)) {
    return { refuse: 404, message: `no tenant "${member.tenant}": create it with POST /api/v1/tenants` };
  }
  if (access === 'metrics' && !permits(member.role, 'metrics:read')) return { refuse: 403, message: 'this role may not read metrics' };
  if (access !== 'metrics' && access !== 'docs' && access !== 'member' && !permits(member.role, access)) {
    return { refuse: 403, message: `the ${member.role} role does not have the ${access} permission this endpoint needs` };
  }
  return { principal: member };
}

/** Registers the access check on `app`: before anything else runs for a request, and on every route added. */
export function enforceRouteAccess(app: FastifyInstance, options: AccessOptions): void {
  // Set in onRequest for every request; declared up front so requests keep one shape.
  app.decorateRequest('principal', null as never);
  app.addHook('onRoute', (route) => {
    const access = route.config?.access;
    if (!access) {
      throw new Error(
        `route ${String(route.method)} ${route.url} declares no access (config.access): every route must say who may call it`,
      );
    }
    if (!['public', 'edge', 'metrics', 'docs', 'member'].includes(access) && !isPermission(access)) {
      throw new Error(`route ${String(route.method)} ${route.url} declares an unknown access "${access}"`);
    }
  });
  app.addHook('onRequest', async (request, reply) => {
    request.principal = { kind: 'anonymous' };
    // No route matched: the not-found handler answers and nothing is read or written.
    if (request.is404) return;
    const access = request.routeOptions.config.access;
    if (access === undefined) return reply.code(403).send({ error: 'forbidden', message: 'this route declares no access' });
    const devices = request.routeOptions.config.devices === true;
    if (access === 'public' || (access === 'metrics' && options.publicMetrics) || (access === 'docs' && options.publicDocs)) return;

    const address = request.ip;
    const retryAfterMs = options.brake.retryAfterMs(address);
    if (retryAfterMs > 0) {
      options.metrics.refused('http', 'rate_limited');
      return reply
        .code(429)
        .header('retry-after', String(Math.ceil(retryAfterMs / 1000)))
        .send({ error: 'too_many_requests', message: 'too many failed logins from this address: wait and retry with the right key' });
    }

    const ticket = request.routeOptions.config.acceptsStreamTicket ? ticketOf(request) : undefined;
    if (ticket !== undefined) {
      const principal = options.tickets.redeem(ticket);
      // A device's ticket opens only its own stream; a member's opens any of its tenant's.
      if (principal && (principal.kind !== 'device' || (devices && principal.deviceId === routeId(request)))) {
        request.principal = principal;
        return;
      }
      options.brake.failed(address);
      options.metrics.authFailed('http');
      return sendUnauthorized(reply, 'the stream ticket is unknown, used or expired: ask POST /api/v1/stream-tickets for a new one');
    }

    const secret = presentedSecret(request);
    const decision: Decision = secret === undefined ? { refuse: 401 } : await decide(request, access, options, secret);
    if ('principal' in decision) {
      request.principal = decision.principal;
      return;
    }
    if (decision.refuse !== 401) {
      options.metrics.refused('http', 'forbidden');
      return reply.code(decision.refuse).send({ error: decision.refuse === 403 ? 'forbidden' : 'not_found', message: decision.message });
    }
    // Only a wrong secret spends the address's budget: a browser that has no key yet is not guessing.
    if (secret !== undefined) options.brake.failed(address);
    options.metrics.authFailed('http');
    return sendUnauthorized(reply, unauthorizedMessage(access, request.routeOptions.config.devices === true));
  });
  // Who changed what, and who read what is sensitive: recorded after the answer, never delaying it.
  app.addHook('onResponse', async (request, reply) => {
    const principal = request.principal;
    if (principal?.kind !== 'member') return;
    const config = request.routeOptions.config;
    if (request.method === 'GET' && !config.auditReads) return;
    if (request.method === 'HEAD' || request.method === 'OPTIONS') return;
    options.audit({
      tenant: principal.tenant,
      at: Date.now(),
      actor: principal.actor,
      action: `${request.method} ${request.routeOptions.url ?? request.url}`,
      resource: request.url.split('?')[0] ?? request.url,
      address: request.ip,
      status: reply.statusCode,
    });
  });
}

function ticketOf(request: FastifyRequest): string | undefined {
  const query = request.query as Record<string, unknown> | undefined;
  return typeof query?.ticket === 'string' ? query.ticket : undefined;
}

export interface StreamTicket {
  ticket: string;
  expiresAt: number;
}

/**
 * Single-use, short-lived tickets for browser WebSockets, which cannot set an Authorization
 * header: the console trades its key (in a header) for a ticket and opens the socket with it,
 * so no long-lived secret ever appears in a URL.
 */
export class StreamTickets {
  private readonly open = new Map<string, { principal: Principal; expiresAt: number }>();

  constructor(
    private readonly now: () => number,
    private readonly ttlMs = 30_000,
    private readonly maxOpen = 10_000,
  ) {}

  issue(principal: Principal): StreamTicket {
    this.dropExpired();
    if (this.open.size >= this.maxOpen) {
      const oldest = this.open.keys().next().value;
      if (oldest !== undefined) this.open.delete(oldest);
    }
    const ticket = randomBytes(24).toString('base64url');
    const expiresAt = this.now() + this.ttlMs;
    this.open.set(ticket, { principal, expiresAt });
    return { ticket, expiresAt };
  }

  /** The ticket's principal, once: a second use or a late one gets nothing. */
  redeem(ticket: string): Principal | undefined {
    const entry = this.open.get(ticket);
    if (!entry) return undefined;
    this.open.delete(ticket);
    return entry.expiresAt > this.now() ? entry.principal : undefined;
  }

  private dropExpired(): void {
    const now = this.now();
    for (const [ticket, entry] of this.open) {
      if (entry.expiresAt <= now) this.open.delete(ticket);
    }
  }
}
