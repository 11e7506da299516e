import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { DomainError } from '../../../errors/index.js';
import { parseDuration } from '../../../time/index.js';
import { actorOf, type HttpApiContext, tenantOf } from '../context.js';
import { AnyJson, AnyObject, ErrorBody, errorResponses, IdParam, type TypeBoxTypeProvider } from '../schemas.js';

const Twin = Type.Object({
  deviceId: Type.String(),
  version: Type.Integer({ description: 'Desired-state version: quote it in If-Match (or `version`) when writing' }),
  reportedVersion: Type.Integer(),
  reported: AnyObject,
  desired: AnyObject,
  delta: AnyObject,
  metadata: Type.Object({ reported: AnyObject, desired: AnyObject }),
  pendingDelivery: Type.Array(
    Type.Object({ version: Type.Integer(), keys: Type.Array(Type.String()), queuedAt: Type.Integer(), expiresAt: Type.Integer() }),
    { description: 'Desired changes waiting for a sleepy device to wake' },
  ),
});

/** `If-Match: 3`, `If-Match: "3"` or `W/"3"` all mean version 3. */
function versionFromIfMatch(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const match = /^(?:W\/)?"?(\d+)"?$/.exec(header.trim());
  if (!match) throw new DomainError('invalid', `If-Match must be the twin version (e.g. If-Match: "3"); got ${header}`);
  return Number(match[1]);
}

export const twinRoutes: FastifyPluginAsync<{ context: HttpApiContext }> = async (fastify, { context }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['twins'];

  app.get(
    '/devices/:id/twin',
    {
      config: { access: 'twins:read' },
      schema: {
        summary: 'The device twin: reported, desired, delta, per-key metadata, version',
        tags,
        params: IdParam,
        response: { 200: Twin, 404: ErrorBody },
      },
    },
    async (request, reply) => {
      const device = await tenantOf(context, request).registry.get(request.params.id);
      const twin = await tenantOf(context, request).twins.get(device);
      return reply.header('etag', `"${twin.version}"`).send(twin);
    },
  );

  app.patch(
    '/devices/:id/twin',
    {
      config: { access: 'twins:write' },
      schema: {
        summary: 'Change desired state (null removes a key); needs the current version',
        description:
          'Send the version you last read as `If-Match: "N"` or as `version` in the body; a stale version is refused with 409 so no update is lost. Values are validated against the model: the property must exist, be writable (not readOnly) and be in range.',
        tags,
        params: IdParam,
        body: Type.Object(
          {
            desired: Type.Record(Type.String(), AnyJson),
            version: Type.Optional(Type.Integer({ minimum: 0 })),
            ttl: Type.Optional(Type.String({ description: 'Sleepy devices: how long the change may wait for a wake window (e.g. 6h)' })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Twin, ...errorResponses, 409: ErrorBody, 428: ErrorBody },
      },
    },
    async (request, reply) => {
      const device = await tenantOf(context, request).registry.get(request.params.id);
      const { body } = request;
      const expectedVersion = versionFromIfMatch(request.headers['if-match']) ?? body.version;
      if (expectedVersion === undefined) {
        const current = await tenantOf(context, request).twins.get(device);
        return reply.code(428).send({
          error: 'invalid',
          message: `send the version you are changing: If-Match: "${current.version}" (or "version": ${current.version} in the body)`,
          details: { currentVersion: current.version },
        });
      }
      let ttlMs: number | undefined;
      if (body.ttl !== undefined) {
        ttlMs = parseDuration(body.ttl);
        if (!ttlMs) throw new DomainError('invalid', `ttl must be a duration like 30m or 6h; got ${body.ttl}`);
      }
      const twin = await tenantOf(context, request).twins.setDesired(device, {
        values: body.desired,
        expectedVersion,
        actor: actorOf(request),
        ttlMs,
      });
      return reply.header('etag', `"${twin.version}"`).send(twin);
    },
  );

  app.get(
    '/devices/:id/twin/history',
    {
      config: { access: 'twins:read' },
      schema: {
        summary: 'Every twin change, newest first: who changed what, old → new',
        description:
          'Desired changes and device twin reports; reported values that arrive as telemetry are in the telemetry store instead.',
        tags,
        params: IdParam,
        querystring: Type.Object({
          limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
          before: Type.Optional(Type.Integer({ description: 'The `seq` of the last entry of the previous page' })),
          section: Type.Optional(Type.Union([Type.Literal('desired'), Type.Literal('reported')])),
        }),
        response: { 200: Type.Object({ items: Type.Array(AnyObject) }), 404: ErrorBody },
      },
    },
    async (request) => {
      const device = await tenantOf(context, request).registry.get(request.params.id);
      return { items: await tenantOf(context, request).twins.history(device, request.query) };
    },
  );

  app.get(
    '/devices/:id/presence',
    {
      config: { access: 'devices:read' },
      schema: {
        summary: 'online / asleep / offline / unknown, from sessions, last uplink and the network profile',
        tags: ['devices'],
        params: IdParam,
        response: {
          200: Type.Object({
            deviceId: Type.String(),
            status: Type.String(),
            connected: Type.Boolean(),
            lastSeen: Type.Union([Type.Integer(), Type.Null()]),
            nextWindowExpected: Type.Union([Type.Integer(), Type.Null()]),
            network: AnyObject,
          }),
          404: ErrorBody,
        },
      },
    },
    async (request) => {
      const device = await tenantOf(context, request).registry.get(request.params.id);
      return { deviceId: device.id, ...(await tenantOf(context, request).presence(device)), network: device.network };
    },
  );
};
