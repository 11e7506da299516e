import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { parse as parseYaml } from 'yaml';
import { AgentDefinitionSchema, type AlarmQuery, type DecisionOutcome, VerificationSchema } from '../../../agents/index.js';
import { DomainError, invalid } from '../../../errors/index.js';
import { parseTime } from '../../../telemetry/index.js';
import { actorOf, type HttpApiContext, tenantOf } from '../context.js';
import { AnyObject, ErrorBody, errorResponses, IdParam, NoContent, type TypeBoxTypeProvider } from '../schemas.js';

const Mode = Type.Union([Type.Literal('auto'), Type.Literal('approve'), Type.Literal('shadow')]);
const Decision = Type.Object(
  { verification: Type.Optional(VerificationSchema) },
  { additionalProperties: true, description: 'A decision record: inputs, judgment, actions, safety checks, outcome, verification' },
);
const AlarmBody = Type.Object(
  {},
  { additionalProperties: true, description: 'An alarm with its lifecycle history and notification outcomes' },
);
const ALARM_STATES = ['active', 'acknowledged', 'cleared', 'open', 'all'] as const;
const Note = Type.Optional(Type.Object({ note: Type.Optional(Type.String({ maxLength: 1000 })) }, { additionalProperties: false }));

export const agentRoutes: FastifyPluginAsync<{ context: HttpApiContext }> = async (fastify, { context }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['agents'];

  // Agent definitions may be written in YAML, as they are in files.
  app.addContentTypeParser(['application/yaml', 'application/x-yaml', 'text/yaml'], { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, parseYaml(body as string));
    } catch (error) {
      done(new DomainError('invalid', `the body is not valid YAML: ${(error as Error).message}`), undefined);
    }
  });

  const definitionBody = {
    ...AgentDefinitionSchema,
    description: 'An agent definition (JSON, or YAML with content-type application/yaml); every problem is listed when invalid',
  };
  // Validation happens in the engine (it lists expression and duration problems too), so the
  // route schema documents the shape without rejecting first with a partial list: these routes
  // skip Fastify's validation (which would also coerce types and, on PUT, demand the `id` that
  // the URL already gives).
  const documented = Type.Unsafe<unknown>(definitionBody);
  const engineValidates = { validatorCompiler: () => () => true };
  // Decision records are sent as stored, not re-shaped by the documented schema: a record an edge
  // forwarded is kept as the edge wrote it, and one field the schema does not expect must not fail
  // a whole decision log (the serializer throws on a type it cannot convert).
  const asStored = { serializerCompiler: () => (data: unknown) => JSON.stringify(data) };

  app.get(
    '/agents',
    {
      config: { access: 'agents:read' },
      schema: {
        summary: 'List agents',
        tags,
        response: { 200: Type.Object({ items: Type.Array(AnyObject), killSwitchEngaged: Type.Boolean() }) },
      },
    },
    async (request) => ({
      items: tenantOf(context, request).agents.list(),
      killSwitchEngaged: tenantOf(context, request).agents.killSwitchEngaged,
    }),
  );

  app.post(
    '/agents',
    {
      config: { access: 'agents:write' },
      ...engineValidates,
      schema: { summary: 'Create an agent', tags, body: documented, response: { 201: AnyObject, ...errorResponses, 409: ErrorBody } },
    },
    async (request, reply) => reply.code(201).send(await tenantOf(context, request).agents.put(request.body, { create: true })),
  );

  app.get(
    '/agents/kill-switch',
    {
      config: { access: 'agents:read' },
      schema: { summary: 'Whether the global kill switch is engaged', tags, response: { 200: Type.Object({ engaged: Type.Boolean() }) } },
    },
    async (request) => ({
      engaged: tenantOf(context, request).agents.killSwitchEngaged,
    }),
  );

  app.put(
    '/agents/kill-switch',
    {
      config: { access: 'agents:halt' },
      schema: {
        summary: 'Engage or release the global kill switch: while engaged no agent sends anything (refusals are recorded)',
        tags,
        body: Type.Object({ engaged: Type.Boolean() }, { additionalProperties: false }),
        response: { 200: Type.Object({ engaged: Type.Boolean() }) },
      },
    },
    async (request) => {
      await tenantOf(context, request).agents.setGlobalKill(request.body.engaged);
      return { engaged: tenantOf(context, request).agents.killSwitchEngaged };
    },
  );

  app.get(
    '/agents/:id',
    {
      config: { access: 'agents:read' },
      schema: { summary: 'Read an agent definition', tags, params: IdParam, response: { 200: AnyObject, 404: ErrorBody } },
    },
    async (request) => tenantOf(context, request).agents.get(request.params.id),
  );

  app.put(
    '/agents/:id',
    {
      config: { access: 'agents:write' },
      ...engineValidates,
      schema: {
        summary: 'Replace an agent definition',
        tags,
        params: IdParam,
        body: documented,
        response: { 200: AnyObject, ...errorResponses },
      },
    },
    async (request) => {
      const { id } = request.params;
      // Not validated before the engine sees it: any JSON (or YAML) value.
      const { body } = request;
      if (body && typeof body === 'object' && 'id' in body && body.id !== undefined && body.id !== id)
        throw invalid(`the body's id "${String(body.id)}" differs from the URL's "${id}"`);
      tenantOf(context, request).agents.get(id);
      return tenantOf(context, request).agents.put({ ...(body ?? {}), id }, { create: false });
    },
  );

  app.delete(
    '/agents/:id',
    {
      config: { access: 'agents:write' },
      schema: { summary: 'Delete an agent and its state', tags, params: IdParam, response: { 204: NoContent, 404: ErrorBody } },
    },
    async (request, reply) => {
      await tenantOf(context, request).agents.remove(request.params.id);
      return reply.code(204).send();
    },
  );

  app.put(
    '/agents/:id/mode',
    {
      config: { access: 'agents:write' },
      schema: {
        summary: 'Switch mode: auto (act), approve (queue for an operator), shadow (record only)',
        tags,
        params: IdParam,
        body: Type.Object({ mode: Mode }, { additionalProperties: false }),
        response: { 200: AnyObject, 404: ErrorBody },
      },
    },
    async (request) => tenantOf(context, request).agents.setMode(request.params.id, request.body.mode),
  );

  app.put(
    '/agents/:id/enabled',
    {
      config: { access: 'agents:write' },
      schema: {
        summary: "The agent's own kill switch: disabled agents still judge and record, but never act",
        tags,
        params: IdParam,
        body: Type.Object({ enabled: Type.Boolean() }, { additionalProperties: false }),
        response: { 200: AnyObject, 404: ErrorBody },
      },
    },
    async (request) => tenantOf(context, request).agents.setEnabled(request.params.id, request.body.enabled),
  );

  const decisionQuery = Type.Object({
    device: Type.Optional(Type.String()),
    outcome: Type.Optional(Type.String()),
    from: Type.Optional(Type.String({ description: 'Epoch ms, ISO 8601 or relative like -1h' })),
    to: Type.Optional(Type.String()),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  });

  app.get(
    '/agents/:id/decisions',
    {
      config: { access: 'agents:read' },
      ...asStored,
      schema: {
        summary: "An agent's decision records, newest first, filterable by device, outcome and time",
        tags,
        params: IdParam,
        querystring: decisionQuery,
        response: { 200: Type.Object({ items: Type.Array(Decision) }), ...errorResponses },
      },
    },
    async (request) => {
      const { id } = request.params;
      tenantOf(context, request).agents.get(id);
      const q = request.query;
      const time = (name: string, text: string | undefined) => {
        if (text === undefined) return undefined;
        const value = parseTime(text, context.now());
        if (value === undefined) throw invalid(`${name} must be epoch ms, ISO 8601 or relative like -1h`);
        return value;
      };
      const items = await tenantOf(context, request).agents.decisions({
        agentId: id,
        limit: q.limit,
        ...(q.device ? { deviceId: q.device } : {}),
        ...(q.outcome ? { outcome: q.outcome as DecisionOutcome } : {}),
        ...(q.from ? { from: time('from', q.from) } : {}),
        ...(q.to ? { to: time('to', q.to) } : {}),
      });
      return { items };
    },
  );

  app.get(
    '/decisions/:id',
    {
      config: { access: 'agents:read' },
      ...asStored,
      schema: { summary: 'One decision record in full', tags, params: IdParam, response: { 200: Decision, 404: ErrorBody } },
    },
    async (request) => tenantOf(context, request).agents.decision(request.params.id),
  );

  app.get(
    '/approvals',
    {
      config: { access: 'agents:read' },
      ...asStored,
      schema: {
        summary: 'Decisions waiting for an operator (agents in approve mode)',
        tags: ['approvals'],
        response: { 200: Type.Object({ items: Type.Array(Decision) }) },
      },
    },
    async (request) => ({ items: await tenantOf(context, request).agents.pendingApprovals() }),
  );

  app.post(
    '/approvals/:id/approve',
    {
      config: { access: 'decisions:approve' },
      ...asStored,
      schema: {
        summary: 'Approve a pending decision: the safety envelope is checked again, then it is executed',
        tags: ['approvals'],
        params: IdParam,
        body: Note,
        response: { 200: Decision, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (request) => tenantOf(context, request).agents.approve(request.params.id, actorOf(request), request.body?.note),
  );

  app.post(
    '/approvals/:id/reject',
    {
      config: { access: 'decisions:approve' },
      ...asStored,
      schema: {
        summary: 'Reject a pending decision',
        tags: ['approvals'],
        params: IdParam,
        body: Note,
        response: { 200: Decision, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (request) => tenantOf(context, request).agents.reject(request.params.id, actorOf(request), request.body?.note),
  );

  app.get(
    '/alarms',
    {
      config: { access: 'alarms:read' },
      schema: {
        summary: 'Alarms: open ones by default (state=active|acknowledged|cleared|open|all), newest first',
        tags: ['alarms'],
        querystring: Type.Object({
          state: Type.String({ default: 'open' }),
          device: Type.Optional(Type.String()),
          agent: Type.Optional(Type.String()),
          limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
          before: Type.Optional(Type.Integer({ description: 'raisedAt of the last item of the previous page' })),
        }),
        response: { 200: Type.Object({ items: Type.Array(AlarmBody) }), ...errorResponses },
      },
    },
    async (request) => {
      const q = request.query;
      const state = ALARM_STATES.find((known) => known === q.state);
      if (state === undefined) throw invalid('state must be active, acknowledged, cleared, open or all');
      const query: AlarmQuery = {
        limit: q.limit,
        ...(state !== 'all' ? { state } : {}),
        ...(q.device ? { deviceId: q.device } : {}),
        ...(q.agent ? { agentId: q.agent } : {}),
        ...(q.before !== undefined ? { before: q.before } : {}),
      };
      return { items: await tenantOf(context, request).alarms.list(query) };
    },
  );

  app.get(
    '/alarms/:id',
    {
      config: { access: 'alarms:read' },
      schema: { summary: 'One alarm with its history', tags: ['alarms'], params: IdParam, response: { 200: AlarmBody, 404: ErrorBody } },
    },
    async (request) => tenantOf(context, request).alarms.get(request.params.id),
  );

  app.post(
    '/alarms/:id/acknowledge',
    {
      config: { access: 'alarms:ack' },
      schema: {
        summary: 'Acknowledge an active alarm',
        tags: ['alarms'],
        params: IdParam,
        body: Note,
        response: { 200: AlarmBody, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (request) => tenantOf(context, request).alarms.acknowledge(request.params.id, actorOf(request), request.body?.note),
  );

  app.post(
    '/alarms/:id/clear',
    {
      config: { access: 'alarms:ack' },
      schema: {
        summary: 'Clear an alarm',
        tags: ['alarms'],
        params: IdParam,
        body: Note,
        response: { 200: AlarmBody, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (request) => tenantOf(context, request).alarms.clear(request.params.id, actorOf(request), request.body?.note),
  );
};
