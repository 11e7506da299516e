import { boundForms, type WotForm } from '../gateway/index.js';
import type { DataSchema, ThingModel, ThingModelVersion } from '../model/index.js';
import type { BindingProtocol, DeviceRecord } from '../registry/index.js';

/** Where consumers reach this node. Absent members are not offered (the listener is off or unknown). */
export interface ThingEndpoints {
  /** The HTTP API's origin: `http://plant.example:8080`. */
  http: string;
  /** The broker's origin: `mqtt://plant.example:1883`. */
  mqtt?: string;
  /** The CoAP listener's origin: `coap://plant.example:5683`. */
  coap?: string;
}

/** A W3C WoT Thing Description 1.1 as JSON: the members Thingloop writes, each a JSON value. */
export interface ThingDescription {
  '@context': (string | Record<string, string>)[];
  '@type'?: string[];
  id: string;
  title: string;
  description: string;
  version: { instance: string; model?: string };
  created: string;
  modified: string;
  securityDefinitions: Record<string, Record<string, string>>;
  security: string[];
  properties: Record<string, Record<string, unknown>>;
  actions: Record<string, Record<string, unknown>>;
  events: Record<string, Record<string, unknown>>;
  forms: WotForm[];
  links: { href: string; rel: string; type?: string }[];
}

const TD_CONTEXT = 'https://www.w3.org/2022/wot/td/v1.1';

/** The binding templates' vocabularies for the terms forms use (W3C WoT Binding Templates). */
const VOCABULARIES: Record<string, string> = {
  htv: 'http://www.w3.org/2011/http#',
  mqv: 'http://www.example.org/mqtt-binding#',
};

/** Protocols whose forms come from the thing model (the node is their client); the others are the node's own listeners. */
const FIELDBUS: ReadonlySet<BindingProtocol> = new Set(['modbus-tcp', 'opcua', 'sparkplug-b']);

/**
 * Security per scheme. The HTTP API takes the admin key as a bearer token; the broker takes
 * username `$admin` with the admin key as its password. Modbus TCP has no security of its own
 * (nosec is what it is); OPC UA and Sparkplug brokers negotiate theirs (auto).
 */
const SECURITY: Record<string, Record<string, string>> = {
  bearer_sc: { scheme: 'bearer', in: 'header', name: 'Authorization', description: 'The admin key: Authorization: Bearer <key>' },
  mqtt_sc: { scheme: 'basic', in: 'auto', description: 'MQTT CONNECT with username "$admin" and the admin key as the password' },
  nosec_sc: { scheme: 'nosec', description: 'Modbus TCP has no authentication: reach the PLC only on a protected network' },
  auto_sc: { scheme: 'auto', description: "The protocol's own negotiation (OPC UA endpoint security, the broker's login)" },
};

const FIELDBUS_SECURITY: Record<string, string> = { 'modbus-tcp': 'nosec_sc', opcua: 'auto_sc', 'sparkplug-b': 'auto_sc' };

/** Members of a model affordance that stay out of the TD: its unfilled forms and Thing Model-only terms. */
function withoutModelTerms(affordance: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(affordance).filter(([key]) => key !== 'forms' && !key.startsWith('tm:')));
}

/** `urn:thingloop:device:{code}`: the code is the device's stable, resolvable identity. */
export function deviceUrn(device: DeviceRecord): string {
  return `urn:thingloop:device:${device.code.replace(/[^A-Za-z0-9._~:/@!$&'()*+,;=-]/g, (c) => encodeURIComponent(c))}`;
}

/** The model's own vocabularies (`{"modv": "…"}`), kept so its fieldbus terms stay defined. */
function contextOf(model: ThingModel): (string | Record<string, string>)[] {
  const prefixes: Record<string, string> = { ...VOCABULARIES };
  const declared = Array.isArray(model['@context']) ? model['@context'] : [model['@context']];
  for (const entry of declared) {
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) continue;
    for (const [prefix, iri] of Object.entries(entry)) if (typeof iri === 'string') prefixes[prefix] = iri;
  }
  return [TD_CONTEXT, prefixes];
}

function typesOf(model: ThingModel): string[] | undefined {
  const declared = model['@type'] === undefined ? [] : Array.isArray(model['@type']) ? model['@type'] : [model['@type']];
  const kept = declared.filter((type) => type !== 'tm:ThingModel');
  return kept.length > 0 ? kept : undefined;
}

const isWritable = (property: DataSchema): boolean => property.readOnly !== true;

/**
 * The Thing Description of one device: the model's properties, actions and events with their data
 * schemas and units, and a form for every way a consumer reaches them: the HTTP API (always), the
 * live WebSocket stream, the broker for MQTT devices, and the fieldbus forms of the model with the
 * device's binding parameters filled in. A CoAP device's resources are linked: the CoAP listener
 * answers the device itself, not consumers.
 */
export function deviceThingDescription(device: DeviceRecord, model: ThingModelVersion, endpoints: ThingEndpoints): ThingDescription {
  const document = model.document;
  const id = encodeURIComponent(device.id);
  const api = `${endpoints.http}/api/v1/devices/${id}`;
  const stream = `${endpoints.http.replace(/^http/, 'ws')}/api/v1/devices/${id}/stream`;
  const protocol = device.binding.protocol;
  const mqtt = protocol === 'mqtt' ? endpoints.mqtt : undefined;
  const topic = (suffix: string) => `things/${device.id}/${suffix}`;
  const mqttForm = (suffix: string, op: string): WotForm => ({
    href: `${mqtt}/${topic(suffix)}`,
    op,
    contentType: 'application/json',
    'mqv:filter': topic(suffix),
    'mqv:controlPacket': 'subscribe',
    security: ['mqtt_sc'],
  });

  const fieldbus = FIELDBUS.has(protocol) ? boundForms(document, device.binding).forms : [];
  const fieldbusForms = (kind: 'property' | 'action' | 'event', name: string): WotForm[] =>
    fieldbus
      .filter((bound) => bound.kind === kind && bound.name === name)
      .map((bound) => ({ ...bound.form, security: [FIELDBUS_SECURITY[protocol] ?? 'auto_sc'] }));

  const properties: ThingDescription['properties'] = {};
  for (const [name, property] of Object.entries(document.properties ?? {})) {
    const forms: WotForm[] = [
      { href: `${api}/twin`, op: 'readproperty', contentType: 'application/json', 'htv:methodName': 'GET' },
      ...(isWritable(property)
        ? [{ href: `${api}/twin`, op: 'writeproperty', contentType: 'application/json', 'htv:methodName': 'PATCH' }]
        : []),
      { href: stream, op: 'observeproperty', contentType: 'application/json' },
      ...(mqtt ? [mqttForm('telemetry', 'observeproperty')] : []),
      ...fieldbusForms('property', name),
    ];
    properties[name] = { ...withoutModelTerms(property), observable: true, forms };
  }

  const actions: ThingDescription['actions'] = {};
  for (const [name, action] of Object.entries(document.actions ?? {})) {
    const forms: WotForm[] = [
      {
        href: `${api}/actions/${encodeURIComponent(name)}`,
        op: 'invokeaction',
        contentType: 'application/json',
        'htv:methodName': 'POST',
      },
      ...fieldbusForms('action', name),
    ];
    actions[name] = { ...withoutModelTerms(action), forms };
  }

  const events: ThingDescription['events'] = {};
  for (const [name, event] of Object.entries(document.events ?? {})) {
    const forms: WotForm[] = [
      // The stored events, newest first: a consumer polls with ?from= (the API has no long poll).
      {
        href: `${api}/events?name=${encodeURIComponent(name)}`,
        op: 'subscribeevent',
        contentType: 'application/json',
        'htv:methodName': 'GET',
      },
      ...(mqtt ? [mqttForm(`events/${name}`, 'subscribeevent')] : []),
      ...fieldbusForms('event', name),
    ];
    events[name] = { ...withoutModelTerms(event), forms };
  }

  const links: ThingDescription['links'] = [
    {
      href: `${endpoints.http}/api/v1/models/${encodeURIComponent(model.id)}?version=${model.version}`,
      rel: 'type',
      type: 'application/tm+json',
    },
  ];
  if (protocol === 'coap' && endpoints.coap) {
    // The device's own resources on the CoAP listener (authenticated by its token), for its firmware and its operators.
    const coap = `${endpoints.coap}/things/${id}`;
    links.push(
      { href: `${coap}/telemetry`, rel: 'device-telemetry', type: 'application/json' },
      ...Object.keys(document.events ?? {}).map((name) => ({
        href: `${coap}/events/${encodeURIComponent(name)}`,
        rel: 'device-event',
        type: 'application/json',
      })),
      { href: `${coap}/twin/reported`, rel: 'device-twin-reported', type: 'application/json' },
      { href: `${coap}/twin/desired`, rel: 'device-twin-desired', type: 'application/json' },
      { href: `${coap}/actions`, rel: 'device-actions', type: 'application/json' },
      ...Object.keys(document.actions ?? {}).map((name) => ({
        href: `${coap}/actions/${encodeURIComponent(name)}/result`,
        rel: 'device-action-result',
        type: 'application/json',
      })),
    );
  }

  const used = new Set([
    'bearer_sc',
    ...(mqtt ? ['mqtt_sc'] : []),
    ...(fieldbus.length > 0 ? [FIELDBUS_SECURITY[protocol] ?? 'auto_sc'] : []),
  ]);
  const types = typesOf(document);
  return {
    '@context': contextOf(document),
    ...(types ? { '@type': types } : {}),
    id: deviceUrn(device),
    title: device.name,
    description: `${document.title} (thing model ${model.id} v${model.version}), reached over ${protocol}`,
    version: {
      instance: `${model.id} v${model.version}`,
      ...(typeof document.version?.model === 'string' ? { model: document.version.model } : {}),
    },
    created: new Date(device.createdAt).toISOString(),
    modified: new Date(device.updatedAt).toISOString(),
    securityDefinitions: Object.fromEntries(Object.entries(SECURITY).filter(([name]) => used.has(name))),
    security: ['bearer_sc'],
    properties,
    actions,
    events,
    forms: [
      { href: `${api}/twin`, op: 'readallproperties', contentType: 'application/json', 'htv:methodName': 'GET' },
      { href: stream, op: 'observeallproperties', contentType: 'application/json' },
      ...(mqtt ? [mqttForm('telemetry', 'observeallproperties')] : []),
    ],
    links,
  };
}
