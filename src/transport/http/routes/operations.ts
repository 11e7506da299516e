import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { HttpApiContext } from '../context.js';
import type { TypeBoxTypeProvider } from '../schemas.js';

export const operationsRoutes: FastifyPluginAsync<{ context: HttpApiContext }> = async (fastify, { context }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const open = { access: 'public' } as const;
  app.get('/healthz', { config: open, schema: { hide: true } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { config: open, schema: { hide: true } }, async (_request, reply) => {
    const { ready, checks } = context.readiness();
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });

  // What a node runs and how busy it is helps an attacker: both need a key unless the operator opens them.
  app.get('/metrics', { config: { access: 'metrics' }, schema: { hide: true } }, async (_request, reply) => {
    reply.header('content-type', context.metricsRegistry.contentType);
    return context.metricsRegistry.metrics();
  });

  app.get('/api/v1/openapi.json', { config: { access: 'docs' }, schema: { hide: true } }, async () => app.swagger());

  app.get(
    '/api/v1/node',
    {
      config: { access: 'node:read' },
      schema: {
        summary: 'What this node is: role, version, ports, uptime',
        tags: ['operations'],
        response: { 200: Type.Object({}, { additionalProperties: true }) },
      },
    },
    async () => context.nodeInfo(),
  );
};
