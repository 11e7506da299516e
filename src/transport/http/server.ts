import swagger from '@fastify/swagger';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import { DomainError, type ErrorKind } from '../../errors/index.js';
import type { HttpApiContext } from './context.js';
import { actionRoutes } from './routes/actions.js';
import { agentRoutes } from './routes/agents.js';
import { deviceRoutes } from './routes/devices.js';
import { edgeRoutes } from './routes/edges.js';
import { modelRoutes } from './routes/models.js';
import { operationsRoutes } from './routes/operations.js';
import { telemetryRoutes } from './routes/telemetry.js';
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

/** The bearer secret of a request: `Authorization: Bearer …`, or `?key=` where headers cannot be set (browser WebSockets). */
export function presentedSecret(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header?.startsWith('Bearer ')) return header.slice(7).trim();
  const query = request.query as Record<string, unknown> | undefined;
  return typeof query?.key === 'string' ? query.key : undefined;
}

export function sendUnauthorized(reply: FastifyReply, message: string): FastifyReply {
  return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthorized', message });
}

export async function buildHttpApi(context: HttpApiContext): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: context.logger.child({ component: 'http' }) as FastifyBaseLogger,
    // Per-request logs would drown the node's log at device rates; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 4 * 1024 * 1024,
    ajv: { customOptions: { allErrors: true, removeAdditional: false, coerceTypes: 'array', allowUnionTypes: true } },
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'Thingloop API', version: '1', description: 'Terminal–edge–cloud IoT platform: registry, thing models, telemetry.' },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Admin key, or a device token where noted' } },
      },
      security: [{ bearer: [] }],
    },
  });
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } });

  app.setErrorHandler((error: Error & { statusCode?: number; validation?: unknown; code?: string }, request, reply) => {
    if (error instanceof DomainError) {
      return reply.code(STATUS_BY_KIND[error.kind]).send({ error: error.kind, message: error.message, details: error.details });
    }
    if (error.validation) {
      return reply.code(400).send({ error: 'invalid', message: `request is invalid: ${error.message}`, details: error.validation });
    }
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
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

  // Admin routes: everything under /api/v1 unless a route says `config: { auth: 'device-or-admin' | 'public' }`.
  app.addHook('onRequest', async (request, reply) => {
    const auth = (request.routeOptions.config as { auth?: string } | undefined)?.auth;
    if (!request.url.startsWith('/api/v1/') || auth === 'public' || auth === 'device-or-admin') return;
    const secret = presentedSecret(request);
    if (!secret || !context.isAdminKey(secret)) {
      context.onAuthFailure();
      return sendUnauthorized(reply, 'this endpoint needs the admin key: send "Authorization: Bearer <admin key>"');
    }
  });

  await app.register(operationsRoutes, { context });
  await app.register(modelRoutes, { context, prefix: '/api/v1' });
  await app.register(deviceRoutes, { context, prefix: '/api/v1' });
  await app.register(telemetryRoutes, { context, prefix: '/api/v1' });
  await app.register(twinRoutes, { context, prefix: '/api/v1' });
  await app.register(actionRoutes, { context, prefix: '/api/v1' });
  await app.register(agentRoutes, { context, prefix: '/api/v1' });
  await app.register(edgeRoutes, { context, prefix: '/api/v1' });
  await app.register((await import('./console.js')).consoleRoutes);
  return app;
}
