import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { DomainError } from '../../../errors/index.js';
import { BINDING_PROTOCOLS, type DeviceRecord, NETWORK_KINDS, type PresenceStatus } from '../../../registry/index.js';
import { deviceThingDescription } from '../../../wot/index.js';
import { type HttpApiContext, tenantOf } from '../context.js';
import {
  AnyObject,
  AttributeValue,
  BindingInput,
  Device,
  DeviceId,
  ErrorBody,
  errorResponses,
  IdParam,
  NetworkInput,
  NoContent,
  Rejection,
  type TypeBoxTypeProvider,
} from '../schemas.js';

const WithToken = Type.Object({ device: Device, token: Type.String({ description: 'Device token: shown once, stored hashed' }) });
const PresenceCounts = Type.Object(
  {
    online: Type.Integer({ description: 'Devices reachable now: a live session, or an uplink within the expected interval' }),
    asleep: Type.Integer({ description: 'Sleepy devices between wake windows that have not missed one' }),
    offline: Type.Integer({ description: 'Devices silent for longer than their network profile allows' }),
    unknown: Type.Integer({ description: 'Devices never seen' }),
  },
  { description: 'Devices per presence status right now' },
);

const PresenceSplit = (description: string) =>
  Type.Composite([Type.Object({ total: Type.Integer({ description: 'Devices in this group' }) }), PresenceCounts], { description });

const BindingHealthBody = Type.Object({
  protocol: Type.Union(BINDING_PROTOCOLS.map((protocol) => Type.Literal(protocol))),
  state: Type.Union((['connected', 'polling', 'unreachable', 'idle'] as const).map((state) => Type.Literal(state))),
  lastGoodReadTs: Type.Union([Type.Integer(), Type.Null()], { description: 'Epoch ms of the last good read or message; null when none' }),
  errors: Type.Integer({ description: 'Failed reads, writes and refused frames since the binding attached' }),
  latencyMs: Type.Union([Type.Number(), Type.Null()], { description: 'Round trip of the last good read; null where the device pushes' }),
  lastError: Type.Optional(Type.Object({ ts: Type.Integer(), message: Type.String() })),
});

// The TD is a document of its own standard (validated against the W3C schema in the tests): only its frame is declared here.
const ThingDescriptionBody = Type.Object(
  {
    '@context': Type.Array(Type.Unknown()),
    id: Type.String({ description: 'urn:thingloop:device:{identification code}' }),
    title: Type.String(),
    securityDefinitions: AnyObject,
    security: Type.Array(Type.String()),
    properties: AnyObject,
    actions: AnyObject,
    events: AnyObject,
  },
  { additionalProperties: true, description: 'A W3C WoT Thing Description 1.1 (application/td+json)' },
);

// A host name or address with an optional port: what the Host header must be before it is put in a URL.
const HOST_HEADER = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

/** The host name of a Host header (`plant:8080`, `[fd00::1]:8080`), for the other listeners' URLs. */
function hostOf(hostHeader: string): string {
  const bracketed = /^\[[^\]]+\]/.exec(hostHeader);
  if (bracketed) return bracketed[0];
  return hostHeader.split(':')[0] || 'localhost';
}

type PresenceTally = Record<PresenceStatus, number> & { total: number };
const noDevices = (): Record<PresenceStatus, number> => ({ online: 0, asleep: 0, offline: 0, unknown: 0 });

export const deviceRoutes: FastifyPluginAsync<{ context: HttpApiContext }> = async (fastify, { context }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['devices'];

  app.post(
    '/devices',
    {
      config: { access: 'devices:write' },
      schema: {
        summary: 'Register a device; returns its token once',
        tags,
        body: Type.Object(
          {
            id: Type.Optional(DeviceId),
            name: Type.Optional(Type.String({ maxLength: 256 })),
            model: Type.String({ description: 'Thing model id' }),
            modelVersion: Type.Optional(Type.Integer({ minimum: 1, description: 'Defaults to the latest version' })),
            attributes: Type.Optional(Type.Record(Type.String(), AttributeValue)),
            network: Type.Optional(NetworkInput),
            edge: Type.Optional(Type.String({ description: 'Serve the device from this edge node (POST /api/v1/edges first)' })),
            binding: Type.Optional(BindingInput),
          },
          { additionalProperties: false },
        ),
        response: { 201: WithToken, ...errorResponses, 409: ErrorBody },
      },
    },
    async (request, reply) => {
      const registered = await tenantOf(context, request).registry.register(request.body);
      return reply.code(201).header('location', `/api/v1/devices/${registered.device.id}`).send(registered);
    },
  );

  app.get(
    '/devices',
    {
      config: { access: 'devices:read' },
      schema: {
        summary:
          'List devices, ordered by id, paginated with `after`; filter by model, edge, network profile, binding protocol or presence status',
        tags,
        querystring: Type.Object({
          model: Type.Optional(Type.String()),
          edge: Type.Optional(Type.String({ description: 'Devices served by this edge' })),
          network: Type.Optional(Type.String({ description: `Network profile: ${NETWORK_KINDS.join(', ')}` })),
          protocol: Type.Optional(
            Type.Union(
              BINDING_PROTOCOLS.map((protocol) => Type.Literal(protocol)),
              { description: 'Devices reached by this binding protocol' },
            ),
          ),
          status: Type.Optional(
            Type.Union(
              (['online', 'asleep', 'offline', 'unknown'] as const).map((s) => Type.Literal(s)),
              { description: 'Presence right now' },
            ),
          ),
          after: Type.Optional(Type.String({ description: 'The `next` value of the previous page' })),
          limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
        }),
        response: {
          200: Type.Object({ items: Type.Array(Device), total: Type.Integer(), next: Type.Union([Type.String(), Type.Null()]) }),
        },
      },
    },
    async (request) => {
      const { status, ...query } = request.query;
      if (!status) return tenantOf(context, request).registry.list(query);
      // Presence is computed, not stored: walk the (otherwise filtered) fleet in id order and keep
      // the devices in that state. Fine for tens of thousands of devices.
      const matching: DeviceRecord[] = [];
      const { model, edge, network, protocol } = query;
      for await (const page of tenantOf(context, request).registry.all({
        ...(model ? { model } : {}),
        ...(edge ? { edge } : {}),
        ...(network ? { network } : {}),
        ...(protocol ? { protocol } : {}),
      })) {
        const presences = await Promise.all(page.map((device) => tenantOf(context, request).presence(device)));
        page.forEach((device, index) => {
          if (presences[index]?.status === status) matching.push(device);
        });
      }
      const { after } = query;
      const start = after ? matching.findIndex((device) => device.id > after) : 0;
      const items = start < 0 ? [] : matching.slice(start, start + query.limit);
      const last = items.at(-1);
      const more = start >= 0 && start + query.limit < matching.length;
      return { items, total: matching.length, next: more && last ? last.id : null };
    },
  );

  app.get(
    '/devices/:id/errors',
    {
      config: { access: 'devices:read' },
      schema: {
        summary: 'What the device sent that was refused, newest first (the last 50, kept in memory since the node started)',
        tags,
        params: IdParam,
        response: {
          200: Type.Object({
            items: Type.Array(Type.Object({ ts: Type.Integer(), source: Type.String(), rejections: Type.Array(Rejection) })),
          }),
          404: ErrorBody,
        },
      },
    },
    async (request) => {
      const device = await tenantOf(context, request).registry.get(request.params.id);
      return { items: tenantOf(context, request).recentErrors(device.id) };
    },
  );

  // Declared before /devices/:id so that "summary" is never read as a device id.
  app.get(
    '/devices/summary',
    {
      config: { access: 'devices:read' },
      schema: {
        summary: 'Fleet summary: device count, devices per model and per presence status, and the presence split per edge',
        tags,
        response: {
          200: Type.Object({
            total: Type.Integer({ description: 'Every registered device' }),
            byModel: Type.Record(Type.String(), Type.Integer(), { description: 'Devices per thing model id' }),
            byPresence: PresenceCounts,
            byEdge: Type.Record(Type.String(), PresenceSplit('The devices this edge serves, split by presence'), {
              description: 'Per edge id, the devices that edge serves; an edge serving no device is absent',
            }),
            direct: PresenceSplit('The devices served directly by this node (no edge), split by presence'),
          }),
        },
      },
    },
    async (request) => {
      const tenant = tenantOf(context, request);
      // Maps, not plain objects: an edge or model id such as "constructor" must not read an inherited property.
      const byModel = new Map<string, number>();
      const byPresence = noDevices();
      const byEdge = new Map<string, PresenceTally>();
      const direct: PresenceTally = { total: 0, ...noDevices() };
      let total = 0;
      for await (const page of tenant.registry.all()) {
        const presences = await Promise.all(page.map((device) => tenant.presence(device)));
        page.forEach((device, index) => {
          total++;
          byModel.set(device.model, (byModel.get(device.model) ?? 0) + 1);
          const status = presences[index]?.status ?? 'unknown';
          byPresence[status]++;
          let served = direct;
          if (device.edge !== undefined) {
            served = byEdge.get(device.edge) ?? { total: 0, ...noDevices() };
            byEdge.set(device.edge, served);
          }
          served.total++;
          served[status]++;
        });
      }
      return { total, byModel: Object.fromEntries(byModel), byPresence, byEdge: Object.fromEntries(byEdge), direct };
    },
  );

  app.get(
    '/devices/:id',
    {
      config: { access: 'devices:read' },
      schema: { summary: 'Read a device', tags, params: IdParam, response: { 200: Device, 404: ErrorBody } },
    },
    async (request) => tenantOf(context, request).registry.get(request.params.id),
  );

  app.get(
    '/devices/:id/binding',
    {
      config: { access: 'devices:read' },
      schema: {
        summary: 'The health of the binding that reaches the device: state, last good read, errors, poll latency',
        description:
          'connected: a live session or link; polling: the node reads the device on a schedule; unreachable: reads or the session fail; idle: nothing heard yet. `errors` counts failed reads, writes and refused frames since the binding attached; `latencyMs` is the round trip of the last good read (fieldbus) or null where the device pushes.',
        tags,
        params: IdParam,
        response: { 200: BindingHealthBody, 404: ErrorBody },
      },
    },
    async (request) => tenantOf(context, request).bindingHealth(await tenantOf(context, request).registry.get(request.params.id)),
  );

  app.get(
    '/devices/:id/td',
    {
      config: { access: 'devices:read' },
      schema: {
        summary: 'The W3C WoT Thing Description (1.1) of the device, with a form for every way it is reached',
        description:
          "Properties, actions and events of the device's thing model with their data schemas and units. Forms: the HTTP API (readproperty: the twin; writeproperty: PATCH of the desired state; invokeaction: the actions route; subscribeevent: the stored events), the WebSocket stream (observeproperty), the broker for MQTT devices (observeproperty, subscribeevent) and the model's fieldbus forms (Modbus TCP, OPC UA, Sparkplug B) with the device's binding parameters filled in. A CoAP device's own resources are links. Hosts: --public-host, else the host this request was sent to.",
        tags,
        params: IdParam,
        response: { 200: ThingDescriptionBody, 400: ErrorBody, 404: ErrorBody },
      },
    },
    async (request, reply) => {
      const device = await tenantOf(context, request).registry.get(request.params.id);
      const model = await tenantOf(context, request).models.get(device.model, device.modelVersion);
      // The forms point where this request came to: the consumer has just shown it can reach that.
      // An HTTP/1.0 request may come without a Host header, whatever fastify's type says.
      const hostHeader: string | undefined = request.host;
      if (!hostHeader || !HOST_HEADER.test(hostHeader)) {
        const problem = hostHeader
          ? `the Host header ${JSON.stringify(hostHeader.slice(0, 80))} is not a host name with an optional port`
          : 'send a Host header';
        context.refusals.refused('http', 'invalid_request');
        throw new DomainError('invalid', `${problem}: the Thing Description's forms are built from it`);
      }
      const listeners = context.publicEndpoints();
      const host = listeners.host ?? hostOf(hostHeader);
      const td = deviceThingDescription(device, model, {
        http: `${request.protocol}://${hostHeader}`,
        ...(listeners.mqttPort !== undefined ? { mqtt: `mqtt://${host}:${listeners.mqttPort}` } : {}),
        ...(listeners.coapPort !== undefined ? { coap: `coap://${host}:${listeners.coapPort}` } : {}),
      });
      return reply.type('application/td+json').send(td);
    },
  );

  app.patch(
    '/devices/:id',
    {
      config: { access: 'devices:write' },
      schema: {
        summary: 'Rename, change attributes (null removes one), migrate to another model version or change the binding',
        tags,
        params: IdParam,
        body: Type.Object(
          {
            name: Type.Optional(Type.String({ maxLength: 256 })),
            attributes: Type.Optional(Type.Record(Type.String(), AttributeValue)),
            model: Type.Optional(Type.String()),
            modelVersion: Type.Optional(Type.Integer({ minimum: 1 })),
            network: Type.Optional(NetworkInput),
            binding: Type.Optional(BindingInput),
          },
          { additionalProperties: false },
        ),
        response: { 200: Device, ...errorResponses },
      },
    },
    async (request) => tenantOf(context, request).registry.patch(request.params.id, request.body),
  );

  app.delete(
    '/devices/:id',
    {
      config: { access: 'devices:write' },
      schema: {
        summary: 'Delete a device: revokes its credential and drops its live sessions',
        tags,
        params: IdParam,
        response: { 204: NoContent, 404: ErrorBody },
      },
    },
    async (request, reply) => {
      await tenantOf(context, request).registry.remove(request.params.id);
      return reply.code(204).send();
    },
  );

  app.post(
    '/devices/:id/token',
    {
      config: { access: 'devices:write' },
      schema: {
        summary: 'Issue a new device token; the old one stops working and live sessions are dropped',
        tags,
        params: IdParam,
        response: { 200: WithToken, 404: ErrorBody },
      },
    },
    async (request) => tenantOf(context, request).registry.rotateToken(request.params.id),
  );

  app.get(
    '/resolve/*',
    {
      config: { access: 'devices:read' },
      schema: {
        summary: 'Resolve an identification code (e.g. 88.100.1/pump-0001) or an IPv6 address to its device',
        tags: ['identity'],
        params: Type.Object({
          '*': Type.String({ description: 'An identification code (88.100.1/pump-0001: may contain "/") or an IPv6 address' }),
        }),
        response: { 200: Device, 404: ErrorBody },
      },
    },
    async (request) => tenantOf(context, request).registry.resolve(decodeURIComponent(request.params['*'])),
  );
};
