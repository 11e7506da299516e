import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { type Invocation, isFinished } from '../../../commands/index.js';
import { DomainError } from '../../../errors/index.js';
import { parseDuration } from '../../../time/index.js';
import { actorOf, type HttpApiContext, tenantOf } from '../context.js';
import { AnyJson, ErrorBody, errorResponses, IdParam, type TypeBoxTypeProvider } from '../schemas.js';

const InvocationStatus = Type.Union((['queued', 'delivered', 'succeeded', 'failed', 'expired'] as const).map((s) => Type.Literal(s)));

const InvocationBody = Type.Object({
  id: Type.String(),
  deviceId: Type.String(),
  action: Type.String(),
  input: Type.Unknown(),
  status: InvocationStatus,
  output: Type.Optional(Type.Unknown()),
  error: Type.Optional(Type.String()),
  idempotencyKey: Type.Optional(Type.String()),
  actor: Type.String(),
  createdAt: Type.Integer(),
  deliveredAt: Type.Optional(Type.Integer()),
  completedAt: Type.Optional(Type.Integer()),
  expiresAt: Type.Integer(),
  timeoutMs: Type.Integer(),
  note: Type.Optional(Type.String()),
  replayed: Type.Optional(Type.Boolean()),
});

const MAX_WAIT_MS = 60_000;

function durationParam(name: string, text: string | undefined, max?: number): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) throw new DomainError('invalid', `${name} must be a duration like 5s or 2m; got ${text}`);
  if (max !== undefined && ms > max) throw new DomainError('invalid', `${name} may be at most ${max / 1000}s`);
  return ms;
}

export const actionRoutes: FastifyPluginAsync<{ context: HttpApiContext }> = async (fastify, { context }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['actions'];

  app.post(
    '/devices/:id/actions/:action',
    {
      config: { access: 'actions:invoke' },
      schema: {
        summary: 'Invoke a device action; ?wait=5s answers with the output when the device replies in time',
        description:
          'The input is validated against the model. The device gets `{"id","input"}` on things/{id}/actions/{name} and answers on …/result. Status: queued → delivered → succeeded | failed | expired. The same Idempotency-Key (header or `idempotencyKey`) never runs twice: the first invocation is returned. 202 while not finished, 200 when finished.',
        tags,
        params: Type.Object({ id: Type.String(), action: Type.String() }),
        querystring: Type.Object({ wait: Type.Optional(Type.String({ description: 'Wait up to this long for the result (max 60s)' })) }),
        body: Type.Optional(
          Type.Object(
            {
              input: Type.Optional(AnyJson),
              idempotencyKey: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
              timeout: Type.Optional(Type.String({ description: 'How long the device has to answer once delivered (default 30s)' })),
              ttl: Type.Optional(Type.String({ description: 'How long it may wait for an unreachable device (default 1h, sleepy 24h)' })),
            },
            { additionalProperties: false },
          ),
        ),
        response: { 200: InvocationBody, 202: InvocationBody, ...errorResponses, 429: ErrorBody },
      },
    },
    async (request, reply) => {
      const { id, action } = request.params;
      const body = request.body ?? {};
      const wait = durationParam('wait', request.query.wait, MAX_WAIT_MS);
      const headerKey = request.headers['idempotency-key'];
      const device = await tenantOf(context, request).registry.get(id);
      const outcome = await tenantOf(context, request).commands.invoke(device, {
        action,
        input: body.input,
        idempotencyKey: (typeof headerKey === 'string' ? headerKey : undefined) ?? body.idempotencyKey,
        timeoutMs: durationParam('timeout', body.timeout),
        ttlMs: durationParam('ttl', body.ttl),
        actor: actorOf(request),
      });
      let invocation: Invocation = outcome.invocation;
      if (wait !== undefined && !isFinished(invocation.status))
        invocation = await tenantOf(context, request).commands.waitFor(invocation.id, wait);
      const response = {
        ...invocation,
        replayed: outcome.replayed,
        ...(outcome.note && invocation.status === 'queued' ? { note: outcome.note } : {}),
      };
      return reply.code(isFinished(invocation.status) ? 200 : 202).send(response);
    },
  );

  app.get(
    '/invocations/:invocationId',
    {
      config: { access: 'actions:read' },
      schema: {
        summary: 'One action invocation',
        tags,
        params: Type.Object({ invocationId: Type.String() }),
        response: { 200: InvocationBody, 404: ErrorBody },
      },
    },
    async (request) => tenantOf(context, request).commands.get(request.params.invocationId),
  );

  app.get(
    '/devices/:id/invocations',
    {
      config: { access: 'actions:read' },
      schema: {
        summary: "A device's action history, newest first",
        tags,
        params: IdParam,
        querystring: Type.Object({
          limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
          before: Type.Optional(Type.Integer({ description: 'createdAt of the last item of the previous page' })),
          status: Type.Optional(InvocationStatus),
        }),
        response: { 200: Type.Object({ items: Type.Array(InvocationBody) }), 404: ErrorBody },
      },
    },
    async (request) => {
      const device = await tenantOf(context, request).registry.get(request.params.id);
      return { items: await tenantOf(context, request).commands.list(device, request.query) };
    },
  );
};
