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

/**
 * - `public`: anyone (health, the console's static files).
 * - `admin`: the admin key.
 * - `device`: the token of the device named by the route's `:id`, or the admin key.
 * - `edge`: the token of the edge named by the route's `:id` (the edge link).
 * - `metrics`: the admin key or the metrics token; anyone when the node makes metrics public.
 * - `docs`: the admin key; anyone when the node makes the OpenAPI document public.
 */
export type RouteAccess = 'public' | 'admin' | 'device' | 'edge' | 'metrics' | 'docs';

export type Principal =
  | { kind: 'anonymous' }
  | { kind: 'admin' }
  | { kind: 'device'; deviceId: string }
  | { kind: 'edge'; edgeId: string }
  | { kind: 'metrics-scraper' };

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
    /** A WebSocket route that browsers open: a single-use stream ticket may stand in for the bearer header. */
    acceptsStreamTicket?: boolean;
  }
  interface FastifyRequest {
    principal: Principal;
  }
}

export interface AccessOptions {
  isAdminKey(secret: string): boolean;
  isDeviceToken(deviceId: string, secret: string): Promise<boolean>;
  isEdgeToken(edgeId: string, secret: string): Promise<boolean>;
  /** A bearer token that may read /metrics (for scrapers that should not hold the admin key). */
  isMetricsToken(secret: string): boolean;
  publicMetrics: boolean;
  publicDocs: boolean;
  brake: GuessingBrake;
  tickets: StreamTickets;
  metrics: RefusalMetrics & { authFailed(protocol: 'http'): void };
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

const MESSAGES: Record<Exclude<RouteAccess, 'public'>, string> = {
  admin: 'this endpoint needs the admin key: send "Authorization: Bearer <admin key>"',
  device: 'send "Authorization: Bearer <device token>" (or the admin key)',
  edge: 'send "Authorization: Bearer <edge token>"',
  metrics: 'metrics need the metrics token or the admin key: send "Authorization: Bearer <token>"',
  docs: 'the API document needs the admin key: send "Authorization: Bearer <admin key>"',
};

/** The route's `:id`, which names the device or edge a `device`/`edge` route acts for. */
function routeId(request: FastifyRequest): string | undefined {
  const params = request.params as Record<string, unknown> | undefined;
  return typeof params?.id === 'string' ? params.id : undefined;
}

/** Decides who the caller is for the route it reached; undefined means refused. */
async function principalFor(request: FastifyRequest, access: Exclude<RouteAccess, 'public'>, options: AccessOptions, secret: string) {
  if (options.isAdminKey(secret)) return { kind: 'admin' } as const;
  const id = routeId(request);
  if (access === 'device' && id !== undefined && (await options.isDeviceToken(id, secret)))
    return { kind: 'device', deviceId: id } as const;
  if (access === 'edge' && id !== undefined && (await options.isEdgeToken(id, secret))) return { kind: 'edge', edgeId: id } as const;
  if (access === 'metrics' && options.isMetricsToken(secret)) {
    return { kind: 'metrics-scraper' } as const;
  }
  return undefined;
}

/** Registers the access check on `app`: before anything else runs for a request, and on every route added. */
export function enforceRouteAccess(app: FastifyInstance, options: AccessOptions): void {
  // Set in onRequest for every request; declared up front so requests keep one shape.
  app.decorateRequest('principal', null as never);
  app.addHook('onRoute', (route) => {
    if (!route.config?.access) {
      throw new Error(
        `route ${String(route.method)} ${route.url} declares no access (config.access): every route must say who may call it`,
      );
    }
  });
  app.addHook('onRequest', async (request, reply) => {
    request.principal = { kind: 'anonymous' };
    // No route matched: the not-found handler answers and nothing is read or written.
    if (request.is404) return;
    const access = request.routeOptions.config.access;
    if (access === undefined) return reply.code(403).send({ error: 'forbidden', message: 'this route declares no access' });
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
      // A device's ticket opens only its own stream; the admin's opens any.
      if (principal && (principal.kind !== 'device' || principal.deviceId === routeId(request))) {
        request.principal = principal;
        return;
      }
      options.brake.failed(address);
      options.metrics.authFailed('http');
      return sendUnauthorized(reply, 'the stream ticket is unknown, used or expired: ask POST /api/v1/stream-tickets for a new one');
    }

    const secret = presentedSecret(request);
    const principal = secret === undefined ? undefined : await principalFor(request, access, options, secret);
    if (principal) {
      request.principal = principal;
      return;
    }
    // Only a wrong secret spends the address's budget: a browser that has no key yet is not guessing.
    if (secret !== undefined) options.brake.failed(address);
    options.metrics.authFailed('http');
    return sendUnauthorized(reply, MESSAGES[access]);
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
