/**
 * HTTP transport: the REST API under /api/v1 (fastify, schema-first routes that also generate
 * the OpenAPI document), health and readiness, Prometheus metrics and live WebSocket streams.
 * Every route declares who may call it (access.ts); the matched route decides, never the URL text.
 */

export {
  type AuditedRequest,
  type Identity,
  type Member,
  type Principal,
  type RouteAccess,
  StreamTickets,
  TENANT_HEADER,
} from './access.js';
export { HttpBinding } from './binding.js';
export { actorOf, type HttpApiContext, type TenantApi, tenantIdOf, tenantOf } from './context.js';
export { type FollowedTlsContext, type HttpsListener, type HttpsListenerOptions, serveHttps } from './https.js';
export { jsonBodyProblem, MAX_JSON_DEPTH } from './json-body.js';
export { buildHttpApi } from './server.js';
