import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { DomainError } from '../../../errors/index.js';
import { encodeCursor, parseTime, planTelemetryQuery } from '../../../telemetry/index.js';
import { type HttpApiContext, type TenantApi, tenantOf } from '../context.js';
import { ErrorBody, errorResponses, IdParam, Rejection, type TypeBoxTypeProvider } from '../schemas.js';

const EventParams = Type.Object({ id: Type.String(), name: Type.String() });
const StoredEvent = Type.Object({
  id: Type.Integer({ description: 'Arrival order' }),
  deviceId: Type.String(),
  name: Type.String({ description: "The event's name in the device's thing model" }),
  ts: Type.Integer({ description: "The device's timestamp, or the time of receipt" }),
  data: Type.Unknown({ description: "Shaped by the model's event data schema; null when the event carries none" }),
});

const IngestResult = Type.Object({
  acceptedSamples: Type.Integer(),
  acceptedValues: Type.Integer(),
  rejections: Type.Array(Rejection),
  error: Type.Optional(Type.String()),
  message: Type.Optional(Type.String()),
});

const QueryResult = Type.Object({
  deviceId: Type.String(),
  from: Type.Integer(),
  to: Type.Integer(),
  items: Type.Optional(Type.Array(Type.Object({ property: Type.String(), ts: Type.Integer(), value: Type.Unknown() }))),
  next: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  agg: Type.Optional(Type.String()),
  bucketMs: Type.Optional(Type.Integer()),
  series: Type.Optional(
    Type.Array(
      Type.Object({
        property: Type.String(),
        points: Type.Array(Type.Object({ ts: Type.Integer(), value: Type.Union([Type.Number(), Type.Null()]), count: Type.Integer() })),
      }),
    ),
  ),
});

export const telemetryRoutes: FastifyPluginAsync<{ context: HttpApiContext }> = async (fastify, { context }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['telemetry'];
  /** The device a message is for (the access check has let the caller act for it) and the raw body. */
  const deviceMessage = async (tenant: TenantApi, request: { params: { id: string }; body: unknown }) => {
    const device = await tenant.registry.get(request.params.id);
    return { device, body: Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0) };
  };

  // Telemetry bodies reach the gateway (through the HTTP binding) as bytes, so malformed JSON
  // gets the same reason code and counter as on MQTT instead of a generic parser error.
  await app.register(async (bytes) => {
    const raw = bytes.withTypeProvider<TypeBoxTypeProvider>();
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser(
      ['application/json', 'text/plain', 'application/octet-stream'],
      { parseAs: 'buffer' },
      (_request, body, done) => done(null, body),
    );
    raw.post(
      '/devices/:id/telemetry',
      {
        config: { access: 'telemetry:write', devices: true },
        // Generous here: the pipeline enforces the configured limit and counts refusals.
        bodyLimit: context.maxPayloadBytes * 16,
        schema: {
          summary: 'Report telemetry: one sample object of property values (optional `ts`) or an array of samples',
          description:
            "Every value is validated against the device's thing model. Valid values are stored even when others in the same message are refused; refusals are listed with a machine-readable reason. 200 when anything was stored, 400 when nothing was.",
          tags,
          params: IdParam,
          response: { 200: IngestResult, 400: IngestResult, 401: ErrorBody, 404: ErrorBody },
        },
      },
      async (request, reply) => {
        const { device, body } = await deviceMessage(tenantOf(context, request), request);
        const outcome = await context.deviceMessages.accept(device, { kind: 'telemetry', payload: { bytes: body } });
        if (outcome.acceptedSamples === 0) {
          return reply.code(400).send({ ...outcome, error: 'invalid', message: 'no value was stored; see rejections' });
        }
        return outcome;
      },
    );

    raw.post(
      '/devices/:id/events/:name',
      {
        config: { access: 'telemetry:write', devices: true },
        bodyLimit: context.maxPayloadBytes * 16,
        schema: {
          summary: 'Report a device event named in its thing model: {"data": …, "ts": …} (both optional)',
          description:
            "The data is validated against the event's data schema. The same as publishing to `things/{id}/events/{name}` over MQTT. 201 with the stored event, 400 with the reason when refused.",
          tags,
          params: EventParams,
          response: {
            201: StoredEvent,
            400: Type.Object({ error: Type.String(), message: Type.String(), rejection: Rejection }),
            401: ErrorBody,
            404: ErrorBody,
          },
        },
      },
      async (request, reply) => {
        const { device, body } = await deviceMessage(tenantOf(context, request), request);
        const outcome = await context.deviceMessages.accept(device, { kind: 'event', name: request.params.name, payload: { bytes: body } });
        if ('rejection' in outcome) {
          return reply.code(400).send({ error: 'invalid', message: outcome.rejection.message, rejection: outcome.rejection });
        }
        const { deviceUid: _uid, ...event } = outcome.event;
        return reply.code(201).send({ id: outcome.id, ...event });
      },
    );
  });

  app.get(
    '/devices/:id/events',
    {
      config: { access: 'telemetry:read' },
      schema: {
        summary: "A device's events, newest first (paginated with `cursor`)",
        tags,
        params: IdParam,
        querystring: Type.Object({
          name: Type.Optional(
            Type.Union([Type.String(), Type.Array(Type.String())], { description: 'Only these events (repeat or comma-separate)' }),
          ),
          from: Type.Optional(Type.String({ description: 'Epoch ms, ISO 8601, or relative like -7d (default: no lower bound)' })),
          to: Type.Optional(
            Type.String({
              description: 'Exclusive (default: no upper bound, so events stamped slightly ahead of this clock are listed too)',
            }),
          ),
          limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
          cursor: Type.Optional(Type.String({ description: 'The `next` value of the previous page' })),
        }),
        response: {
          200: Type.Object({ deviceId: Type.String(), items: Type.Array(StoredEvent), next: Type.Union([Type.String(), Type.Null()]) }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      const { query } = request;
      const device = await tenantOf(context, request).registry.get(id);
      const now = context.now();
      const time = (text: string | undefined, fallback: number, field: string) => {
        if (text === undefined) return fallback;
        const parsed = parseTime(text, now);
        if (parsed === undefined)
          throw new DomainError('invalid', `${field} "${text}" is not epoch ms, ISO 8601 or a relative time like -1h`);
        return parsed;
      };
      // Unbounded by default: the cursor pages through all of it, newest first.
      const to = time(query.to, Number.MAX_SAFE_INTEGER, 'to');
      const from = time(query.from, 0, 'from');
      const before = query.cursor === undefined ? undefined : Number(query.cursor);
      if (before !== undefined && !Number.isSafeInteger(before))
        throw new DomainError('invalid', 'cursor must be the `next` value of a previous page');
      const names = [query.name ?? []]
        .flat()
        .flatMap((n) => n.split(','))
        .filter((n) => n.length > 0);
      const page = await tenantOf(context, request).deviceEvents.list({
        deviceUid: device.uid,
        names,
        from,
        to,
        limit: query.limit,
        ...(before !== undefined ? { before } : {}),
      });
      return { deviceId: id, items: page.items, next: page.next === undefined ? null : String(page.next) };
    },
  );

  app.get(
    '/devices/:id/telemetry',
    {
      config: { access: 'telemetry:read' },
      schema: {
        summary: 'Query telemetry: raw values (paginated) or, with agg/bucket, bucketed aggregates',
        tags,
        params: IdParam,
        querystring: Type.Object({
          property: Type.Optional(
            Type.Union([Type.String(), Type.Array(Type.String())], { description: 'One or more (repeat or comma-separate); default all' }),
          ),
          from: Type.Optional(Type.String({ description: 'Epoch ms, ISO 8601, or relative like -1h (default: to - 24h)' })),
          to: Type.Optional(Type.String({ description: 'Exclusive; default now' })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
          cursor: Type.Optional(Type.String({ description: 'The `next` value of the previous page' })),
          agg: Type.Optional(Type.String({ enum: ['avg', 'min', 'max', 'count', 'first', 'last', 'sum'] })),
          bucket: Type.Optional(Type.String({ description: 'Bucket width like 10s, 1m, 1h (default 1m)' })),
        }),
        response: { 200: QueryResult, ...errorResponses },
      },
    },
    async (request) => {
      const { id } = request.params;
      const device = await tenantOf(context, request).registry.get(id);
      const model = await tenantOf(context, request).models.compiled(device.model, device.modelVersion);
      const plan = planTelemetryQuery(request.query, model, context.now());
      if (plan.kind === 'aggregate') {
        const series = await tenantOf(context, request).telemetry.aggregate({ deviceUid: device.uid, ...plan });
        return { deviceId: id, from: plan.from, to: plan.to, agg: plan.fn, bucketMs: plan.bucketMs, series };
      }
      const page = await tenantOf(context, request).telemetry.raw({ deviceUid: device.uid, ...plan });
      return { deviceId: id, from: plan.from, to: plan.to, items: page.items, next: page.next ? encodeCursor(page.next) : null };
    },
  );

  app.get(
    '/devices/:id/latest',
    {
      config: { access: 'telemetry:read' },
      schema: {
        summary: 'The last value of every property, with its time',
        tags,
        params: IdParam,
        response: {
          200: Type.Object({
            deviceId: Type.String(),
            values: Type.Record(Type.String(), Type.Object({ value: Type.Unknown(), ts: Type.Integer() })),
          }),
          404: ErrorBody,
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      const device = await tenantOf(context, request).registry.get(id);
      const model = await tenantOf(context, request).models.compiled(device.model, device.modelVersion);
      const latest = await tenantOf(context, request).telemetry.latest(device.uid, [...model.properties.keys()]);
      return { deviceId: id, values: Object.fromEntries(latest.map((v) => [v.property, { value: v.value, ts: v.ts }])) };
    },
  );

  app.post(
    '/stream-tickets',
    {
      config: { access: 'telemetry:read' },
      schema: {
        summary: 'A single-use ticket (30 s) for opening a WebSocket stream from a browser, which cannot send an Authorization header',
        tags,
        response: { 201: Type.Object({ ticket: Type.String(), expiresAt: Type.Integer() }), 401: ErrorBody },
      },
    },
    async (request, reply) => reply.code(201).send(context.access.tickets.issue(request.principal)),
  );

  // Declared as a plain route with a wsHandler so it appears in the OpenAPI document
  // (@fastify/websocket hides `websocket: true` routes); a GET without upgrade gets 426.
  app.route({
    method: 'GET',
    url: '/devices/:id/stream',
    config: { access: 'telemetry:read', devices: true, acceptsStreamTicket: true },
    schema: {
      summary: "WebSocket: live stream of the device's accepted telemetry, one JSON message per sample",
      description:
        'Upgrade to WebSocket. Authenticate with the Authorization header or, from a browser, `?ticket=<stream ticket>` (POST /api/v1/stream-tickets; single use, 30 s). Messages: `{"deviceId","ts","values"}`. Close codes: 4401 unauthorized, 4404 unknown device, 1013 consumer too slow.',
      tags,
      params: IdParam,
      response: { 101: Type.Null({ description: 'Switching Protocols: the WebSocket opens' }), 426: ErrorBody },
    },
    handler: async (_request, reply) =>
      reply
        .code(426)
        .header('upgrade', 'websocket')
        .send({ error: 'invalid', message: 'this endpoint is a WebSocket: connect with an Upgrade: websocket request' }),
    wsHandler: (socket, request) => {
      const { id } = request.params;
      let unsubscribe: (() => void) | undefined;
      socket.on('close', () => unsubscribe?.());
      const subscribe = async () => {
        await tenantOf(context, request).registry.get(id);
        if (socket.readyState !== socket.OPEN) return;
        unsubscribe = tenantOf(context, request).bus.on('telemetry.accepted', (event) => {
          if (event.device.id !== id) return;
          // A consumer that cannot keep up is cut off rather than buffered without bound.
          if (socket.bufferedAmount > 4 * 1024 * 1024) {
            socket.close(1013, 'too slow: reconnect and read faster');
            return;
          }
          for (const sample of event.samples) socket.send(JSON.stringify({ deviceId: id, ts: sample.ts, values: sample.values }));
        });
        socket.send(JSON.stringify({ subscribed: id }));
      };
      subscribe().catch((error: Error) =>
        socket.close(error instanceof DomainError && error.kind === 'not_found' ? 4404 : 1011, error.message.slice(0, 120)),
      );
    },
  });
};
