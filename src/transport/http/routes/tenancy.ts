import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { DomainError } from '../../../errors/index.js';
import {
  AUDIT_CSV_COLUMNS,
  auditCsvLine,
  MAX_AUDIT_PAGE,
  mayGrant,
  OidcSignInError,
  ROLES,
  type Role,
  TENANT_ID_PATTERN,
} from '../../../tenancy/index.js';
import { sendUnauthorized } from '../access.js';
import { actorOf, type HttpApiContext, tenantIdOf } from '../context.js';
import { ErrorBody, errorResponses, NoContent, type TypeBoxTypeProvider } from '../schemas.js';

const RoleName = Type.Union(
  ROLES.map((role) => Type.Literal(role)),
  {
    description:
      'platform-admin, tenant-admin, operator (act, approve, acknowledge), engineer (models, agents, bindings), viewer, integration',
  },
);
const Quotas = Type.Object(
  {
    devices: Type.Optional(Type.Integer({ minimum: 0, description: 'Devices registered at most' })),
    messagesPerSecond: Type.Optional(Type.Number({ minimum: 0, description: 'Device messages per second, all devices together' })),
    storedBytes: Type.Optional(Type.Integer({ minimum: 0, description: "Bytes the tenant's store may hold" })),
    agents: Type.Optional(Type.Integer({ minimum: 0, description: 'Agents defined at most' })),
  },
  { additionalProperties: false, description: 'Limits; a missing one is unlimited' },
);
const Tenant = Type.Object({
  id: Type.String(),
  name: Type.String(),
  quotas: Quotas,
  createdAt: Type.Integer(),
  updatedAt: Type.Integer(),
});
const TenantParams = Type.Object({ tenantId: Type.String({ pattern: TENANT_ID_PATTERN }) });
const KeyRecord = Type.Object({
  id: Type.String(),
  tenant: Type.String(),
  name: Type.String(),
  role: RoleName,
  userId: Type.Optional(Type.String()),
  createdBy: Type.String(),
  createdAt: Type.Integer(),
  expiresAt: Type.Optional(Type.Integer()),
  lastUsedAt: Type.Optional(Type.Integer()),
  revokedAt: Type.Optional(Type.Integer()),
});
const User = Type.Object({
  id: Type.String(),
  tenant: Type.String(),
  username: Type.String(),
  displayName: Type.Optional(Type.String()),
  role: RoleName,
  disabled: Type.Boolean(),
  external: Type.Optional(Type.Object({ issuer: Type.String(), subject: Type.String() })),
  createdAt: Type.Integer(),
  updatedAt: Type.Integer(),
  lastSignInAt: Type.Optional(Type.Integer()),
});
const Session = Type.Object({
  token: Type.String({ description: 'Bearer token of the session: shown once' }),
  expiresAt: Type.Integer(),
  user: User,
});
const Me = Type.Object({
  tenant: Type.String(),
  role: RoleName,
  actor: Type.String({ description: 'How records name this caller: admin, user:<name>, key:<name>' }),
  permissions: Type.Array(Type.String()),
});
const AuditEntry = Type.Object(
  {
    id: Type.Integer(),
    tenant: Type.String(),
    at: Type.Integer(),
    actor: Type.String(),
    action: Type.String(),
    resource: Type.String(),
    address: Type.String(),
    outcome: Type.String(),
    status: Type.Optional(Type.Integer()),
    detail: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: true },
);
const AuditQuery = Type.Object({
  from: Type.Optional(Type.Integer({ description: 'Epoch ms, inclusive' })),
  to: Type.Optional(Type.Integer({ description: 'Epoch ms, exclusive' })),
  actor: Type.Optional(Type.String({ maxLength: 200 })),
  action: Type.Optional(Type.String({ maxLength: 100 })),
  limit: Type.Integer({ minimum: 1, maximum: MAX_AUDIT_PAGE, default: 100 }),
  after: Type.Optional(Type.String({ maxLength: 100, description: 'The `next` cursor of the previous page' })),
});

/** The session cookie-less OIDC round trip: the state the browser started is kept in a short-lived cookie. */
const OIDC_STATE_COOKIE = 'thingloop_oidc_state';

function cookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return decodeURIComponent(value.join('='));
  }
  return undefined;
}

/**
 * Tenants, people, keys, sessions and the audit trail. Routes act in the caller's own tenant
 * (the platform admin in the one its tenant header names); nothing here lists another tenant's
 * people or keys.
 */
export const tenancyRoutes: FastifyPluginAsync<{ context: HttpApiContext }> = async (fastify, { context }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const tenancy = context.tenancy;
  if (!tenancy) return;
  const { tenants, keys, users, sessions, audit } = tenancy.services;
  const callerTenant = (request: Parameters<typeof tenantIdOf>[0]): string => {
    const id = tenantIdOf(request);
    if (id === undefined) throw new DomainError('unauthorized', 'sign in or send a key');
    return id;
  };
  const callerRole = (request: Parameters<typeof tenantIdOf>[0]): Role =>
    request.principal.kind === 'member' ? request.principal.role : 'viewer';
  const grantable = (request: Parameters<typeof tenantIdOf>[0], role: Role) => {
    if (!mayGrant(callerRole(request), role)) {
      throw new DomainError('forbidden', `a ${callerRole(request)} may not hand out the ${role} role`);
    }
  };

  app.post(
    '/tenants',
    {
      config: { access: 'tenants:write' },
      schema: {
        summary: "Create a tenant; the answer carries its tenant admin's API key (shown once)",
        tags: ['tenancy'],
        body: Type.Object(
          {
            id: Type.String({ pattern: TENANT_ID_PATTERN }),
            name: Type.Optional(Type.String({ maxLength: 200 })),
            quotas: Type.Optional(Quotas),
          },
          { additionalProperties: false },
        ),
        response: { 201: Type.Composite([Tenant, Type.Object({ adminKey: Type.String() })]), ...errorResponses, 409: ErrorBody },
      },
    },
    async (request, reply) => {
      const tenant = await tenants.create(request.body);
      await tenancy.openTenant(tenant.id);
      const issued = await keys.issue({ tenant: tenant.id, role: 'tenant-admin', name: 'tenant-admin', createdBy: actorOf(request) });
      return reply.code(201).send({ ...tenant, adminKey: issued.key });
    },
  );

  app.get(
    '/tenants',
    {
      config: { access: 'tenants:read' },
      schema: { summary: 'Tenants of this node', tags: ['tenancy'], response: { 200: Type.Object({ items: Type.Array(Tenant) }) } },
    },
    async () => ({ items: await tenants.list() }),
  );

  app.get(
    '/tenants/:tenantId',
    {
      config: { access: 'tenants:read' },
      schema: { summary: 'A tenant and its quotas', tags: ['tenancy'], params: TenantParams, response: { 200: Tenant, 404: ErrorBody } },
    },
    async (request) => tenants.require(request.params.tenantId),
  );

  app.patch(
    '/tenants/:tenantId',
    {
      config: { access: 'tenants:write' },
      schema: {
        summary: "Change a tenant's name or quotas",
        tags: ['tenancy'],
        params: TenantParams,
        body: Type.Object(
          { name: Type.Optional(Type.String({ maxLength: 200 })), quotas: Type.Optional(Quotas) },
          { additionalProperties: false },
        ),
        response: { 200: Tenant, ...errorResponses },
      },
    },
    async (request) => tenants.update(request.params.tenantId, request.body),
  );

  app.get(
    '/me',
    {
      config: { access: 'member' },
      schema: { summary: 'Who the caller is: tenant, role, permissions', tags: ['tenancy'], response: { 200: Me } },
    },
    async (request) => {
      const principal = request.principal;
      if (principal.kind !== 'member') throw new DomainError('unauthorized', 'sign in or send a key');
      return { tenant: principal.tenant, role: principal.role, actor: principal.actor, permissions: tenancy.permissionsOf(principal.role) };
    },
  );

  app.post(
    '/keys',
    {
      config: { access: 'keys:write' },
      schema: {
        summary: 'Issue an API key with a role (shown once, stored hashed)',
        tags: ['tenancy'],
        body: Type.Object(
          {
            role: RoleName,
            name: Type.Optional(Type.String({ maxLength: 64 })),
            userId: Type.Optional(Type.String({ maxLength: 100 })),
            expiresAt: Type.Optional(Type.Integer({ description: 'Epoch ms; never when left out' })),
          },
          { additionalProperties: false },
        ),
        response: { 201: Type.Composite([KeyRecord, Type.Object({ key: Type.String() })]), ...errorResponses, 409: ErrorBody },
      },
    },
    async (request, reply) => {
      const tenant = callerTenant(request);
      grantable(request, request.body.role);
      const issued = await keys.issue({
        tenant,
        role: request.body.role,
        name: request.body.name ?? `${request.body.role}-${Date.now().toString(36)}`,
        createdBy: actorOf(request),
        ...(request.body.userId !== undefined ? { userId: request.body.userId } : {}),
        ...(request.body.expiresAt !== undefined ? { expiresAt: request.body.expiresAt } : {}),
      });
      return reply.code(201).send({ ...issued.record, key: issued.key });
    },
  );

  app.get(
    '/keys',
    {
      config: { access: 'keys:read', auditReads: true },
      schema: {
        summary: "The tenant's API keys (never their secrets), with last use and expiry",
        tags: ['tenancy'],
        response: { 200: Type.Object({ items: Type.Array(KeyRecord) }) },
      },
    },
    async (request) => ({ items: await keys.list(callerTenant(request)) }),
  );

  app.delete(
    '/keys/:keyId',
    {
      config: { access: 'keys:write' },
      schema: {
        summary: 'Revoke an API key',
        tags: ['tenancy'],
        params: Type.Object({ keyId: Type.String({ maxLength: 100 }) }),
        response: { 204: NoContent, 404: ErrorBody },
      },
    },
    async (request, reply) => {
      await keys.revoke(callerTenant(request), request.params.keyId);
      return reply.code(204).send();
    },
  );

  app.post(
    '/users',
    {
      config: { access: 'users:write' },
      schema: {
        summary: 'Create a person who signs in with a password',
        tags: ['tenancy'],
        body: Type.Object(
          {
            username: Type.String({ maxLength: 128 }),
            password: Type.String({ minLength: 12, maxLength: 1024 }),
            role: RoleName,
            displayName: Type.Optional(Type.String({ maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
        response: { 201: User, ...errorResponses, 409: ErrorBody },
      },
    },
    async (request, reply) => {
      grantable(request, request.body.role);
      return reply.code(201).send(await users.create({ ...request.body, tenant: callerTenant(request) }));
    },
  );

  app.get(
    '/users',
    {
      config: { access: 'users:read', auditReads: true },
      schema: { summary: "The tenant's people", tags: ['tenancy'], response: { 200: Type.Object({ items: Type.Array(User) }) } },
    },
    async (request) => ({ items: await users.list(callerTenant(request)) }),
  );

  app.patch(
    '/users/:userId',
    {
      config: { access: 'users:write' },
      schema: {
        summary: "Change a person's role, name, or disable them (their sessions end)",
        tags: ['tenancy'],
        params: Type.Object({ userId: Type.String({ maxLength: 100 }) }),
        body: Type.Object(
          {
            role: Type.Optional(RoleName),
            displayName: Type.Optional(Type.String({ maxLength: 200 })),
            disabled: Type.Optional(Type.Boolean()),
          },
          { additionalProperties: false },
        ),
        response: { 200: User, ...errorResponses },
      },
    },
    async (request) => {
      if (request.body.role !== undefined) grantable(request, request.body.role);
      return users.update(callerTenant(request), request.params.userId, request.body);
    },
  );

  app.delete(
    '/users/:userId',
    {
      config: { access: 'users:write' },
      schema: {
        summary: 'Delete a person (their sessions and keys stop working)',
        tags: ['tenancy'],
        params: Type.Object({ userId: Type.String({ maxLength: 100 }) }),
        response: { 204: NoContent, 404: ErrorBody },
      },
    },
    async (request, reply) => {
      await users.delete(callerTenant(request), request.params.userId);
      return reply.code(204).send();
    },
  );

  app.post(
    '/sessions',
    {
      config: { access: 'public' },
      schema: {
        summary: 'Sign in with a username and password; the token is the bearer of the session',
        tags: ['tenancy'],
        security: [],
        body: Type.Object(
          {
            tenant: Type.Optional(Type.String({ pattern: TENANT_ID_PATTERN, description: 'default when left out' })),
            username: Type.String({ maxLength: 128 }),
            password: Type.String({ maxLength: 1024 }),
          },
          { additionalProperties: false },
        ),
        response: { 201: Session, 401: ErrorBody, 429: ErrorBody },
      },
    },
    async (request, reply) => {
      const address = request.ip;
      const wait = context.access.brake.retryAfterMs(address);
      if (wait > 0) {
        context.refusals.refused('http', 'rate_limited');
        return reply
          .code(429)
          .header('retry-after', String(Math.ceil(wait / 1000)))
          .send({ error: 'too_many_requests', message: 'too many failed sign-ins from this address: wait and retry' });
      }
      try {
        const signedIn = await sessions.signIn(request.body.tenant ?? 'default', request.body.username, request.body.password, address);
        audit.record({
          tenant: signedIn.user.tenant,
          at: Date.now(),
          actor: `user:${signedIn.user.username}`,
          action: 'session.sign-in',
          resource: `users/${signedIn.user.id}`,
          address,
          status: 201,
        });
        return reply.code(201).send({ token: signedIn.token, expiresAt: signedIn.expiresAt, user: signedIn.user });
      } catch (error) {
        if (!(error instanceof DomainError) || (error.kind !== 'unauthorized' && error.kind !== 'not_found')) throw error;
        context.access.brake.failed(address);
        context.refusals.authFailed('http');
        return sendUnauthorized(reply, 'unknown user or wrong password (or the user is disabled)');
      }
    },
  );

  app.delete(
    '/sessions/current',
    {
      config: { access: 'member' },
      schema: { summary: 'Sign out: the session token stops working', tags: ['tenancy'], response: { 204: NoContent } },
    },
    async (request, reply) => {
      const header = request.headers.authorization ?? '';
      await sessions.signOut(header.slice(7).trim());
      return reply.code(204).send();
    },
  );

  app.get(
    '/audit',
    {
      config: { access: 'audit:read', auditReads: true },
      schema: {
        summary: "The tenant's audit trail, newest first: who changed what (and read what is sensitive), from where",
        tags: ['tenancy'],
        querystring: AuditQuery,
        response: { 200: Type.Object({ entries: Type.Array(AuditEntry), next: Type.Optional(Type.String()) }), ...errorResponses },
      },
    },
    async (request) => {
      await audit.flush();
      return audit.query({ ...request.query, tenant: callerTenant(request) });
    },
  );

  app.get(
    '/audit/export',
    {
      config: { access: 'audit:read', auditReads: true },
      schema: {
        summary: 'Export the audit trail as NDJSON (default) or CSV, newest first',
        tags: ['tenancy'],
        querystring: Type.Object({
          from: Type.Optional(Type.Integer()),
          to: Type.Optional(Type.Integer()),
          actor: Type.Optional(Type.String({ maxLength: 200 })),
          action: Type.Optional(Type.String({ maxLength: 100 })),
          format: Type.Union([Type.Literal('ndjson'), Type.Literal('csv')], { default: 'ndjson' }),
        }),
        response: { 200: Type.String({ description: 'NDJSON or CSV' }) },
      },
    },
    async (request, reply) => {
      await audit.flush();
      const { format, ...filter } = request.query;
      const tenant = callerTenant(request);
      const lines: string[] = format === 'csv' ? [AUDIT_CSV_COLUMNS.join(',')] : [];
      let after: string | undefined;
      // Page by page: an export never holds more than the lines it writes.
      do {
        const page = await audit.query({ ...filter, tenant, limit: MAX_AUDIT_PAGE, ...(after ? { after } : {}) });
        for (const entry of page.entries) lines.push(format === 'csv' ? auditCsvLine(entry) : JSON.stringify(entry));
        after = page.next;
      } while (after);
      return reply
        .header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson')
        .header('content-disposition', `attachment; filename="audit-${tenant}.${format === 'csv' ? 'csv' : 'ndjson'}"`)
        .send(`${lines.join('\n')}\n`);
    },
  );

  const oidc = tenancy.oidc;
  app.get(
    '/auth/oidc',
    {
      config: { access: 'public' },
      schema: {
        summary: 'Whether this node offers OpenID Connect sign-in (the console shows its button only then)',
        tags: ['tenancy'],
        security: [],
        response: { 200: Type.Object({ enabled: Type.Boolean() }) },
      },
    },
    async () => ({ enabled: oidc !== undefined }),
  );

  app.get(
    '/auth/oidc/login',
    {
      config: { access: 'public' },
      schema: {
        summary: 'Sign in with OpenID Connect: redirects to the configured issuer',
        tags: ['tenancy'],
        security: [],
        response: { 302: NoContent, 404: ErrorBody },
      },
    },
    async (_request, reply) => {
      if (!oidc) throw new DomainError('not_found', 'OpenID Connect sign-in is not configured on this node (set --oidc-issuer)');
      const { url, state } = await oidc.begin();
      return reply
        .header(
          'set-cookie',
          `${OIDC_STATE_COOKIE}=${encodeURIComponent(state)}; Path=/api/v1/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=600`,
        )
        .redirect(url.toString(), 302);
    },
  );

  app.get(
    '/auth/oidc/callback',
    {
      config: { access: 'public' },
      schema: {
        summary: 'OpenID Connect callback: opens a session and sends the browser to the console with it',
        tags: ['tenancy'],
        security: [],
        querystring: Type.Object({}, { additionalProperties: true }),
        response: { 302: NoContent, 401: ErrorBody, 404: ErrorBody },
      },
    },
    async (request, reply) => {
      if (!oidc) throw new DomainError('not_found', 'OpenID Connect sign-in is not configured on this node (set --oidc-issuer)');
      const url = new URL(request.url, 'http://callback.invalid');
      try {
        const identity = await oidc.finish(url, cookie(request.headers.cookie, OIDC_STATE_COOKIE));
        const user = await users.ensureExternalUser(identity.tenant, identity.subject, {
          issuer: identity.issuer,
          username: identity.username,
          role: identity.role,
          ...(identity.displayName !== undefined ? { displayName: identity.displayName } : {}),
        });
        const signedIn = await sessions.open(user, request.ip);
        audit.record({
          tenant: user.tenant,
          at: Date.now(),
          actor: `user:${user.username}`,
          action: 'session.sign-in.oidc',
          resource: `users/${user.id}`,
          address: request.ip,
          status: 302,
        });
        // In the fragment: never sent to a server, never in a log; the console takes it and clears it.
        return reply
          .header('set-cookie', `${OIDC_STATE_COOKIE}=; Path=/api/v1/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0`)
          .redirect(`/#session=${encodeURIComponent(signedIn.token)}`, 302);
      } catch (error) {
        if (error instanceof OidcSignInError) {
          context.refusals.authFailed('http');
          return sendUnauthorized(reply, error.message);
        }
        throw error;
      }
    },
  );
};
