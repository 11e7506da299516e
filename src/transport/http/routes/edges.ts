import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { OUTBOX_EPOCH_HEADER } from '../../../edge/index.js';
import { notFound } from '../../../errors/index.js';
import { type HttpApiContext, type TenantApi, tenantOf } from '../context.js';
import { AnyObject, ErrorBody, errorResponses, IdParam, NoContent, type TypeBoxTypeProvider } from '../schemas.js';

const EdgeBody = Type.Object(
  {},
  { additionalProperties: true, description: 'An edge with its link, backlog, gaps, capacity and configuration status' },
);

const GapReportBody = Type.Object({
  policy: Type.Union([Type.Literal('drop-oldest'), Type.Literal('downsample')]),
  at: Type.Integer({ description: 'When the edge applied the policy (ms since the epoch)' }),
  total: Type.Integer({ description: 'Records removed: telemetry samples and device events' }),
  events: Type.Optional(Type.Integer({ description: 'Device events among them (only when telemetry alone could not make room)' })),
  devices: Type.Record(
    Type.String(),
    Type.Object({
      dropped: Type.Integer({ description: 'Telemetry samples removed' }),
      events: Type.Optional(Type.Integer({ description: 'Device events removed' })),
      from: Type.Integer({ description: 'Oldest removed sample' }),
      to: Type.Integer({ description: 'Newest removed sample' }),
    }),
    { description: 'Per device id' },
  ),
});

export const edgeRoutes: FastifyPluginAsync<{ context: HttpApiContext }> = async (fastify, { context }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['edges'];
  // Edges link to clouds only: an edge node has no edge routes.
  if (!context.servesEdges) return;
  const edgesOf = (request: FastifyRequest) => {
    const edges = tenantOf(context, request).edges;
    if (!edges) throw notFound('this node serves no edges');
    return edges;
  };

  const withStatus = async (edges: NonNullable<TenantApi['edges']>, id: string) => {
    const edge = await edges.directory.get(id);
    const outbox = edge.heartbeat?.outbox;
    return {
      ...edge,
      connected: edges.hub.isConnected(id),
      backlog: outbox
        ? {
            records: outbox.records,
            bytes: outbox.bytes,
            oldestTs: outbox.oldestTs,
            ageMs: outbox.oldestTs ? context.now() - outbox.oldestTs : 0,
          }
        : null,
      drainRate: edge.heartbeat?.drainRatePerSecond ?? 0,
    };
  };

  app.post(
    '/edges',
    {
      config: { access: 'edges:write' },
      schema: {
        summary: 'Register an edge node; returns its token once',
        tags,
        body: Type.Object({ id: Type.String(), name: Type.Optional(Type.String({ maxLength: 256 })) }, { additionalProperties: false }),
        response: { 201: Type.Object({ edge: EdgeBody, token: Type.String() }), ...errorResponses, 409: ErrorBody },
      },
    },
    async (request, reply) => reply.code(201).send(await edgesOf(request).directory.register(request.body)),
  );

  app.post(
    '/edges/:id/token',
    {
      config: { access: 'edges:write' },
      schema: {
        summary: 'Issue a new edge token (shown once)',
        tags,
        params: IdParam,
        response: { 200: Type.Object({ edge: EdgeBody, token: Type.String() }), 404: ErrorBody },
      },
    },
    async (request) => edgesOf(request).directory.rotateToken(request.params.id),
  );

  app.get(
    '/edges',
    {
      config: { access: 'edges:read' },
      schema: {
        summary: 'Edges with link state, backlog, drain rate, gaps and capacity',
        tags,
        response: { 200: Type.Object({ items: Type.Array(EdgeBody) }) },
      },
    },
    async (request) => {
      const edges = edgesOf(request);
      return { items: await Promise.all((await edges.directory.list()).map((edge) => withStatus(edges, edge.id))) };
    },
  );

  app.get(
    '/edges/:id',
    {
      config: { access: 'edges:read' },
      schema: { summary: 'One edge with its status', tags, params: IdParam, response: { 200: EdgeBody, 404: ErrorBody } },
    },
    async (request) => withStatus(edgesOf(request), request.params.id),
  );

  app.delete(
    '/edges/:id',
    {
      config: { access: 'edges:write' },
      schema: {
        summary: 'Decommission an edge: its token stops working and its link closes; refused (409) while devices are attached to it',
        tags,
        params: IdParam,
        response: { 204: NoContent, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (request, reply) => {
      const edges = edgesOf(request);
      const { id } = request.params;
      const served: string[] = [];
      for await (const page of tenantOf(context, request).registry.all({ edge: id })) served.push(...page.map((device) => device.id));
      await edges.directory.remove(id, served);
      edges.hub.forget(id);
      return reply.code(204).send();
    },
  );

  app.get(
    '/edges/:id/config',
    {
      config: { access: 'edges:read' },
      schema: {
        summary: "The edge's desired configuration (devices, models, agents, desired values) next to what it last applied",
        tags,
        params: IdParam,
        response: { 200: Type.Object({ desired: AnyObject, applied: AnyObject }), 404: ErrorBody },
      },
    },
    async (request) => {
      const edges = edgesOf(request);
      const { id } = request.params;
      const config = await edges.hub.configFor(id);
      const edge = await edges.directory.get(id);
      // Credential hashes stay between the cloud and the edge.
      const desired = { ...config, devices: config.devices.map((d) => ({ record: d.record })) };
      return { desired, applied: { version: edge.config.appliedVersion, results: edge.config.results } };
    },
  );

  app.get(
    '/edges/:id/gaps',
    {
      config: { access: 'edges:read' },
      schema: {
        summary: 'Gap reports of an edge, newest first: telemetry its full outbox dropped or thinned, per device with the time range',
        tags,
        params: IdParam,
        querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }) }),
        response: { 200: Type.Object({ items: Type.Array(GapReportBody) }), 404: ErrorBody },
      },
    },
    async (request) => {
      const edges = edgesOf(request);
      const { id } = request.params;
      return { items: await edges.directory.gaps(id, request.query.limit) };
    },
  );

  app.route({
    method: 'GET',
    url: '/edges/:id/link',
    config: { access: 'edge' },
    schema: {
      summary: 'WebSocket for the edge ↔ cloud link (the edge connects with Authorization: Bearer <edge token>)',
      description:
        'Binary frames from the edge are uplink batches (a JSON header line, then gzipped JSON records with sequence numbers); text frames carry heartbeats and configuration results. The cloud answers with {"type":"ack","upTo":N} and pushes {"type":"config"} documents.',
      tags,
      params: IdParam,
      response: { 101: Type.Null({ description: 'Switching Protocols: the WebSocket opens' }), 401: ErrorBody, 426: ErrorBody },
    },
    // The access check has authenticated the edge named by :id before either handler runs.
    handler: async (_request, reply) => {
      return reply
        .code(426)
        .header('upgrade', 'websocket')
        .send({ error: 'invalid', message: 'this endpoint is a WebSocket for edge nodes: connect with an Upgrade: websocket request' });
    },
    wsHandler: (socket, request) => {
      const { id } = request.params;
      const edges = edgesOf(request);
      const session = {
        send: (message: unknown) => {
          if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message));
        },
        close: (code: number, reason: string) => socket.close(code, reason),
      };
      // Frames that arrive while the edge is being authenticated wait for it.
      const epochHeader = request.headers[OUTBOX_EPOCH_HEADER];
      const outboxEpoch = typeof epochHeader === 'string' && epochHeader.length > 0 ? epochHeader.slice(0, 100) : undefined;
      const ready = edges.hub.connected(id, session, outboxEpoch);
      ready.catch((error: Error) => socket.close(1011, error.message.slice(0, 120)));
      socket.on('message', (data: Buffer, isBinary: boolean) => {
        ready
          .then(async () => {
            if (isBinary) return edges.hub.batch(id, data);
            const message = JSON.parse(data.toString()) as { type: string; heartbeat?: never; version?: number; results?: never };
            if (message.type === 'heartbeat' && message.heartbeat) await edges.hub.heartbeat(id, message.heartbeat);
            if (message.type === 'applied' && typeof message.version === 'number')
              await edges.hub.applied(id, message.version, message.results ?? []);
          })
          .catch((error: Error) => context.logger.warn({ edge: id, err: error.message }, 'edge link frame refused'));
      });
      socket.on('close', () => edges.hub.disconnected(id, session));
    },
  });
};
