import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { HttpApiContext } from '../context.js';

export const operationsRoutes: FastifyPluginAsync<{ context: HttpApiContext }> = async (app, { context }) => {
  const open = { auth: 'public' };
  app.get('/healthz', { config: open, schema: { hide: true } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { config: open, schema: { hide: true } }, async (_request, reply) => {
    const { ready, checks } = context.readiness();
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });

  app.get('/metrics', { config: open, schema: { hide: true } }, async (_request, reply) => {
    reply.header('content-type', context.metricsRegistry.contentType);
    return context.metricsRegistry.metrics();
  });

  app.get('/api/v1/openapi.json', { config: open, schema: { hide: true } }, async () => app.swagger());

  app.get(
    '/api/v1/node',
    {
      schema: {
        summary: 'What this node is: role, version, ports, uptime',
        tags: ['operations'],
        response: { 200: Type.Object({}, { additionalProperties: true }) },
      },
    },
    async () => context.nodeInfo(),
  );
};
