/**
 * HTTP transport: the REST API under /api/v1 (fastify, schema-first routes that also generate
 * the OpenAPI document), health and readiness, Prometheus metrics and live WebSocket streams.
 */

export type { HttpApiContext } from './context.js';
export { buildHttpApi } from './server.js';
