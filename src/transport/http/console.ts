import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from './schemas.js';

/** console/dist from src/transport/http (tsx) and from dist/transport/http (built): both are three levels below the package root. */
export const DEFAULT_CONSOLE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../console/dist');

/**
 * The web console: the built single-page app at `/`, its hashed assets cached for good, and every
 * other non-API GET answered with index.html so deep links (/devices/pump-0001) load the app.
 * Absent a build (console/dist missing) nothing is served and the API works as before.
 */
export const consoleRoutes: FastifyPluginAsync<{ root?: string }> = async (fastify, options) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const root = options.root ?? DEFAULT_CONSOLE_ROOT;
  if (!existsSync(join(root, 'index.html'))) {
    app.log.warn({ root }, 'web console not built (run `npm run build:console`); serving the API only');
    return;
  }
  // serve: false: the plugin's own routes would declare no access; these two routes do.
  // cacheControl: false: otherwise sendFile replaces the routes' cache-control with max-age=0.
  await app.register(fastifyStatic, { root, serve: false, cacheControl: false });
  const open = { access: 'public' } as const;
  app.get('/assets/*', { config: open, schema: { hide: true, params: Type.Object({ '*': Type.String() }) } }, (request, reply) =>
    reply.header('cache-control', 'public, max-age=31536000, immutable').sendFile(`assets/${request.params['*']}`),
  );
  const isApi = (url: string) => url.startsWith('/api/') || url === '/api' || url === '/metrics' || url.startsWith('/metrics?');
  app.get('/*', { config: open, schema: { hide: true } }, (request, reply) => {
    if (isApi(request.url)) return reply.callNotFound();
    return reply.header('cache-control', 'no-cache').type('text/html; charset=utf-8').sendFile('index.html');
  });
  app.get('/', { config: open, schema: { hide: true } }, (_request, reply) =>
    reply.header('cache-control', 'no-cache').type('text/html; charset=utf-8').sendFile('index.html'),
  );
};
