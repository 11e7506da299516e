import { type Static, type TSchema, Type } from '@sinclair/typebox';
import type { FastifyTypeProvider } from 'fastify';
import { BINDING_PROTOCOLS, type BindingParameter, type BindingProtocol, NETWORK_KINDS } from '../../registry/index.js';
import type { JsonValue } from '../../telemetry/index.js';

/**
 * Types a route's params, querystring, body, headers and replies from its schemas: a route
 * plugin calls `fastify.withTypeProvider<TypeBoxTypeProvider>()` and registers on what it returns.
 * These schemas are @sinclair/typebox 0.34; @fastify/type-provider-typebox 6 infers from typebox 1.x
 * and reads them only as plain JSON Schema (a Type.Unsafe becomes unknown, a union built with map
 * becomes never), so the provider is its 0.34 form: the same two lines over 0.34's Static.
 */
export interface TypeBoxTypeProvider extends FastifyTypeProvider {
  validator: this['schema'] extends TSchema ? Static<this['schema']> : unknown;
  serializer: this['schema'] extends TSchema ? Static<this['schema']> : unknown;
}

/** The one error body every endpoint returns: a kind, a sentence, and details to act on. */
export const ErrorBody = Type.Object({
  error: Type.String({ description: 'invalid | not_found | conflict | unauthorized | forbidden | too_large | unavailable' }),
  message: Type.String(),
  details: Type.Optional(Type.Unknown()),
});

export const AnyObject = Type.Object({}, { additionalProperties: true });

/** Any JSON value in a body: the schema is `{}`, as Type.Unknown() writes it, and the value is typed as the JSON it is. */
export const AnyJson = Type.Unsafe<JsonValue>({});

export const DeviceId = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$', description: 'Platform device id' });

// One JSON-Schema type list, not a union: with type coercion on, a union's first member (string)
// would swallow 2, true and null as "2", "true" and "".
export const AttributeValue = Type.Unsafe<string | number | boolean | null>({ type: ['string', 'number', 'boolean', 'null'] });

export const NetworkKind = Type.Union(
  NETWORK_KINDS.map((kind) => Type.Literal(kind)),
  { description: 'Bearer profile' },
);

const DurationInput = Type.Unsafe<string | number>({ type: ['string', 'number'], description: 'Duration like 30s, 1h, or ms' });

export const NetworkInput = Type.Object(
  {
    profile: NetworkKind,
    reportInterval: Type.Optional(DurationInput),
    keepAlive: Type.Optional(DurationInput),
    sleepy: Type.Optional(Type.Boolean()),
    psmPeriod: Type.Optional(DurationInput),
    edrxCycle: Type.Optional(DurationInput),
  },
  { additionalProperties: false },
);

export const Network = Type.Object({
  profile: Type.String(),
  reportIntervalMs: Type.Integer(),
  keepAliveMs: Type.Integer(),
  sleepy: Type.Boolean(),
  psmPeriodMs: Type.Optional(Type.Integer()),
  edrxCycleMs: Type.Optional(Type.Integer()),
});

const BINDING_SHAPE =
  'modbus-tcp: host, port (502), unitId (1); opcua: endpoint (opc.tcp://…); sparkplug-b: group, edgeNode; mqtt, http, coap: none. ' +
  'Any other parameter (at most 32, names [A-Za-z_][A-Za-z0-9_]*, values a string of at most 256 characters, a finite number or a boolean) fills a {{placeholder}} in the thing model forms';

/**
 * `binding` in a registration or patch. Loose on purpose: the registry checks it and lists every
 * problem at once, which a schema error (the first one only) would not.
 */
export const BindingInput = Type.Object(
  { protocol: Type.String({ description: `One of ${BINDING_PROTOCOLS.join(', ')}` }) },
  {
    additionalProperties: Type.Unsafe<unknown>({ description: 'A binding parameter: string, finite number or boolean' }),
    description: `How the device is reached: its protocol and addressing parameters. ${BINDING_SHAPE}`,
  },
);

export const Binding = Type.Object(
  { protocol: Type.Unsafe<BindingProtocol>({ type: 'string', enum: [...BINDING_PROTOCOLS] }) },
  {
    additionalProperties: Type.Unsafe<BindingParameter>({ type: ['string', 'number', 'boolean'] }),
    description: 'How the device is reached: its protocol and addressing parameters (defaults filled in)',
  },
);

export const Device = Type.Object({
  id: Type.String(),
  name: Type.String(),
  model: Type.String(),
  modelVersion: Type.Integer(),
  code: Type.String({ description: 'Identification code, {prefix}/{id}' }),
  ipv6: Type.String({ description: 'Stable IPv6 address in the site /64' }),
  attributes: Type.Record(Type.String(), AttributeValue),
  network: Network,
  binding: Binding,
  edge: Type.Optional(Type.String({ description: 'The edge node serving this device' })),
  createdAt: Type.Integer(),
  updatedAt: Type.Integer(),
});
export type DeviceBody = Static<typeof Device>;

export const Rejection = Type.Object({
  reason: Type.String(),
  message: Type.String(),
  property: Type.Optional(Type.String()),
  event: Type.Optional(Type.String()),
  sample: Type.Optional(Type.Integer()),
  value: Type.Optional(Type.Unknown()),
});

/** `:id` in a path: a device, edge, agent, alarm or approval id. */
export const IdParam = Type.Object({ id: Type.String() });

/** A 204: documented as `{"type":"null"}` as Type.Null() writes it, sent as no body at all (`reply.send()`). */
export const NoContent = Type.Unsafe<undefined>({ type: 'null' });

export const errorResponses = {
  400: ErrorBody,
  401: ErrorBody,
  404: ErrorBody,
};
