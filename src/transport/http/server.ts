import helmet from '@fastify/helmet';
import swagger from '@fastify/swagger';
import websocket from '@fastify/websocket';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { DomainError, type ErrorKind } from '../../errors/index.js';
import { isQuotaRefusal, QUOTA_REASONS } from '../../tenancy/index.js';
import { enforceRouteAccess } from './access.js';
import type { HttpApiContext } from './context.js';
import { jsonBodyProblem } from './json-body.js';
import { actionRoutes } from './routes/actions.js';
import { agentRoutes } from './routes/agents.js';
import { deviceRoutes } from './routes/devices.js';
import { edgeRoutes } from './routes/edges.js';
import { modelRoutes } from './routes/models.js';
import { mqttWebSocketRoutes } from './routes/mqtt-websocket.js';
import { operationsRoutes } from './routes/operations.js';
import { telemetryRoutes } from './routes/telemetry.js';
import { tenancyRoutes } from './routes/tenancy.js';
import { twinRoutes } from './routes/twins.js';

const STATUS_BY_KIND: Record<ErrorKind, number> = {
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  too_many_requests: 429,
  unavailable: 503,
};

const KIND_BY_STATUS: Record<number, ErrorKind> = Object.fromEntries(
  Object.entries(STATUS_BY_KIND).map(([kind, status]) => [status, kind as ErrorKind]),
);

/** Type coercion is for query strings and path parameters, which arrive as text; bodies are JSON and validated as sent. */
function validatorCompilers() {
  const base = { allErrors: true, removeAdditional: false, useDefaults: true, allowUnionTypes: true, strict: false } as const;
  const strictBodies = addFormats.default(new Ajv({ ...base, coerceTypes: false }));
  const coercingText = addFormats.default(new Ajv({ ...base, coerceTypes: 'array' }));
  return ({ schema, httpPart }: { schema: object; httpPart?: string }) =>
    (httpPart === 'body' ? strictBodies : coercingText).compile(schema);
}

export async function buildHttpApi(context: HttpApiContext): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: context.logger.child({ component: 'http' }) as FastifyBaseLogger,
    // Per-request logs would drown the node's log at device rates; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 4 * 1024 * 1024,
    // A body trickled in slowly holds a socket and delays shutdown: the whole request has a deadline.
    requestTimeout: context.requestTimeoutMs,
    // Node checks the deadline on a timer (30 s by default): check often enough that a short deadline holds.
    http: {
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(context.requestTimeoutMs / 2))),
      headersTimeout: Math.min(60_000, context.requestTimeoutMs),
    },
    // What Node refuses before fastify routes (a deadline passed, a malformed request line) is answered as
    // fastify would, in the house's error shape, and counted like every other refusal.
    clientErrorHandler: (error: Error & { code?: string }, socket) => {
      if (error.code === 'ECONNRESET' || socket.destroyed) return;
      const timedOut = error.code === 'ERR_HTTP_REQUEST_TIMEOUT';
      const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
      context.refusals.refused('http', timedOut ? 'request_timeout' : tooLarge ? 'body_too_large' : 'invalid_request');
      const [status, text, body] = timedOut
        ? [408, 'Request Timeout', { error: 'invalid', message: 'the request did not arrive in time: send it whole' }]
        : tooLarge
          ? [431, 'Request Header Fields Too Large', { error: 'too_large', message: 'the request headers are too large' }]
          : [400, 'Bad Request', { error: 'invalid', message: 'the request is not valid HTTP' }];
      const json = JSON.stringify(body);
      if (socket.writable) {
        socket.write(
          `HTTP/1.1 ${status} ${text}\r\nContent-Length: ${Buffer.byteLength(json)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${json}`,
        );
      }
      socket.destroy(error);
    },
    // A path the router cannot decode (/%zz) never reaches a route or its hooks: answer 400 here, and
    // close an upgrade's socket ourselves, since no WebSocket hook will.
    frameworkErrors: (error, request, reply) => {
      context.refusals.refused('http', 'invalid_request');
      const body = JSON.stringify({ error: 'invalid', message: `the request cannot be routed: ${error.message}` });
      reply.hijack();
      if (request.raw.headers.upgrade) reply.raw.once('finish', () => request.raw.socket.destroy());
      reply.raw.writeHead(400, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) }).end(body);
    },
    // The caller's address, for the guessing brake, is the socket's: X-Forwarded-For is not trusted by default.
    trustProxy: false,
  });
  app.setValidatorCompiler(validatorCompilers());
  // Before the access check: @fastify/websocket's own onRequest hook must see an upgrade first, so
  // that an upgrade the access check refuses has its socket closed after the 401.
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } });
  enforceRouteAccess(app, {
    isAdminKey: context.isAdminKey,
    identify: context.access.identify,
    deviceTenant: context.access.deviceTenant,
    edgeTenant: context.access.edgeTenant,
    tenantExists: (tenant) => context.tenants.get(tenant) !== undefined,
    audit: context.access.audit,
    isMetricsToken: context.access.isMetricsToken,
    publicMetrics: context.access.publicMetrics,
    publicDocs: context.access.publicDocs,
    brake: context.access.brake,
    tickets: context.access.tickets,
    metrics: context.refusals,
  });

  const defaultJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    defaultJson(request, body.toString(), (error: Error | null, parsed?: unknown) => {
      if (error) return done(error, undefined);
      const problem = jsonBodyProblem(parsed);
      if (problem) {
        context.refusals.refused('http', 'invalid_request');
        return done(new DomainError('invalid', `request body refused: ${problem}`), undefined);
      }
      done(null, parsed);
    });
  });

  await app.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        // React and uPlot set style attributes; no inline script is ever allowed.
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
      },
    },
    referrerPolicy: { policy: 'no-referrer' },
    // The console is plain HTTP on trials: HSTS belongs to whoever terminates TLS.
    strictTransportSecurity: false,
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Thingloop API',
        version: '1',
        description:
          'Terminal–edge–cloud IoT platform: tenants, people, API keys and the audit trail; thing models; the device registry and its bindings (MQTT, HTTP, CoAP, Modbus TCP, OPC UA, Sparkplug B); telemetry and events; digital twins (reported, desired, delta); actions; closed-loop agents with approvals, alarms and decision records; edges and their links. Every operation names the permission it needs; the caller acts in its own tenant.',
      },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description:
              'An API key or a session token (its role must grant the permission the operation names), the platform admin key (with the x-thingloop-tenant header to act in a tenant other than default), or a device token where noted',
          },
        },
      },
      security: [{ bearer: [] }],
    },
    // The router captures a value that contains slashes (an identification code) only as a wildcard;
    // the document names it, as OpenAPI needs every path parameter to have a name.
    transform: ({ schema, url }) => {
      if (!url.endsWith('/*') || !schema) return { schema, url };
      const params = schema.params as { properties?: Record<string, unknown> } | undefined;
      const wildcard = params?.properties?.['*'];
      return {
        schema: { ...schema, params: { type: 'object', properties: { ref: wildcard ?? { type: 'string' } }, required: ['ref'] } },
        url: `${url.slice(0, -1)}:ref`,
      };
    },
  });

  app.setErrorHandler((error: Error & { statusCode?: number; validation?: unknown; code?: string }, request, reply) => {
    if (error instanceof DomainError) {
      if (isQuotaRefusal(error)) {
        // Device messages are counted by the gateway, on whichever listener they came; creations here.
        const { reason } = error.details;
        if (reason === QUOTA_REASONS.devices || reason === QUOTA_REASONS.agents) context.refusals.refused('http', reason);
        const retryAfter: unknown = Reflect.get(error.details, 'retryAfterSeconds');
        if (typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter));
      }
      return reply.code(STATUS_BY_KIND[error.kind]).send({ error: error.kind, message: error.message, details: error.details });
    }
    if (error.validation) {
      context.refusals.refused('http', 'invalid_request');
      return reply.code(400).send({ error: 'invalid', message: `request is invalid: ${error.message}`, details: error.validation });
    }
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    // Refused before a route could read the request: malformed or oversized bodies, bad content types.
    if (status === 413) context.refusals.refused('http', 'body_too_large');
    else if (status >= 400 && status < 500) context.refusals.refused('http', 'invalid_request');
    if (status === 500) request.log.error({ err: error }, 'request failed');
    return reply.code(status).send({
      error: KIND_BY_STATUS[status] ?? (status === 500 ? 'internal' : 'invalid'),
      message: status === 500 ? 'internal error; the node log has the details' : error.message,
    });
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send({ error: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}; see /api/v1/openapi.json` }),
  );

  await app.register(operationsRoutes, { context });
  await app.register(modelRoutes, { context, prefix: '/api/v1' });
  await app.register(deviceRoutes, { context, prefix: '/api/v1' });
  await app.register(telemetryRoutes, { context, prefix: '/api/v1' });
  await app.register(twinRoutes, { context, prefix: '/api/v1' });
  await app.register(actionRoutes, { context, prefix: '/api/v1' });
  await app.register(agentRoutes, { context, prefix: '/api/v1' });
  await app.register(edgeRoutes, { context, prefix: '/api/v1' });
  await app.register(tenancyRoutes, { context, prefix: '/api/v1' });
  await app.register(mqttWebSocketRoutes, { context });
  await app.register((await import('./console.js')).consoleRoutes);
  return app;
}
