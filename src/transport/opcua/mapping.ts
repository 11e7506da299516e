import { type BoundForm, boundForms, type DeviceBindingConfig } from '../../gateway/index.js';
import type { CompiledThingModel, ThingModel } from '../../model/index.js';
import { parseBuiltInType } from './values.js';

/**
 * How a device's thing model maps to an OPC UA server, read from its WoT forms (node-wot's OPC UA
 * binding vocabulary) with the device's binding parameters filled in. Pure: no session here.
 *
 *   property: {"href": "{{endpoint}}", "opcua:nodeId": "ns=1;s=Line2.Pump1.Temperature", "opcua:samplingInterval": 1000}
 *   action:   {"href": "{{endpoint}}", "opcua:objectId": "ns=1;s=Line2.Pump1", "opcua:methodId": "ns=1;s=Line2.Pump1.Stop"}
 */

export const SECURITY_MODES = ['None', 'Sign', 'SignAndEncrypt'] as const;
export type SecurityModeName = (typeof SECURITY_MODES)[number];

/** Policies node-opcua 2.182 speaks; the short names as in the OPC UA policy URIs. */
export const SECURITY_POLICIES = [
  'None',
  'Basic128Rsa15',
  'Basic256',
  'Basic256Sha256',
  'Aes128_Sha256_RsaOaep',
  'Aes256_Sha256_RsaPss',
] as const;
export type SecurityPolicyName = (typeof SECURITY_POLICIES)[number];

export const DEFAULT_SAMPLING_INTERVAL_MS = 1000;
export const DEFAULT_PUBLISHING_INTERVAL_MS = 1000;

/** One server connection: devices with the same endpoint and security share its session. */
export interface OpcuaEndpoint {
  url: string;
  securityMode: SecurityModeName;
  securityPolicy: SecurityPolicyName;
  publishingIntervalMs: number;
}

export interface OpcuaPropertyPoint {
  property: string;
  nodeId: string;
  samplingIntervalMs: number;
  /** From `opcua:dataType` when the model says; otherwise the server's DataType is read before the first write. */
  dataType?: number;
  writable: boolean;
}

export interface OpcuaMethodPoint {
  action: string;
  objectId: string;
  methodId: string;
}

export interface OpcuaDeviceMapping {
  endpoint: OpcuaEndpoint;
  properties: OpcuaPropertyPoint[];
  actions: OpcuaMethodPoint[];
  /** Forms that could not be used, each with why; the device's error list shows them. */
  problems: string[];
}

export function endpointKey(endpoint: OpcuaEndpoint): string {
  return `${endpoint.url}|${endpoint.securityMode}|${endpoint.securityPolicy}|${endpoint.publishingIntervalMs}`;
}

// ns=1;s=…, nsu=urn:…;i=…, i=85, g=…, b=… (Part 6, 5.3.1.10).
const NODE_ID = /^(?:(?:ns=\d+|nsu=[^;]+);)?[isgb]=.+$/s;

export function isNodeId(text: unknown): text is string {
  return typeof text === 'string' && NODE_ID.test(text);
}

function positiveNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

function pick<T extends string>(value: unknown, allowed: readonly T[], fallback: T): T | undefined {
  if (value === undefined) return fallback;
  return allowed.find((name) => typeof value === 'string' && name.toLowerCase() === value.toLowerCase());
}

/** The endpoint and security of a device's binding parameters, or why they cannot be used. */
export function readEndpoint(binding: DeviceBindingConfig): OpcuaEndpoint | { problem: string } {
  const url = binding.endpoint;
  if (typeof url !== 'string' || !/^opc\.tcp:\/\/[^/\s]+/i.test(url)) {
    return { problem: 'the binding needs "endpoint": "opc.tcp://host:port/path"' };
  }
  const securityMode = pick(binding.securityMode, SECURITY_MODES, 'None');
  if (!securityMode) return { problem: `"securityMode" must be one of ${SECURITY_MODES.join(', ')}` };
  const securityPolicy = pick(binding.securityPolicy, SECURITY_POLICIES, securityMode === 'None' ? 'None' : 'Basic256Sha256');
  if (!securityPolicy) return { problem: `"securityPolicy" must be one of ${SECURITY_POLICIES.join(', ')}` };
  if ((securityMode === 'None') !== (securityPolicy === 'None')) {
    return { problem: `securityMode ${securityMode} does not go with securityPolicy ${securityPolicy}` };
  }
  const publishing = binding.publishingInterval === undefined ? DEFAULT_PUBLISHING_INTERVAL_MS : positiveNumber(binding.publishingInterval);
  if (publishing === undefined) return { problem: '"publishingInterval" must be a number of milliseconds' };
  return { url, securityMode, securityPolicy, publishingIntervalMs: publishing };
}

function affordanceTerm(model: ThingModel, kind: BoundForm['kind'], name: string, term: string): unknown {
  const group = kind === 'property' ? model.properties : kind === 'action' ? model.actions : model.events;
  const affordance: unknown = group?.[name];
  return affordance !== null && typeof affordance === 'object' ? (affordance as Record<string, unknown>)[term] : undefined;
}

function sameEndpoint(href: string, url: string): boolean {
  return href.replace(/\/+$/, '').toLowerCase() === url.replace(/\/+$/, '').toLowerCase();
}

/** The OPC UA points of a device: its model's `opc.tcp:` forms, placeholders filled from its binding. */
export function readDeviceMapping(model: CompiledThingModel, binding: DeviceBindingConfig): OpcuaDeviceMapping | { problem: string } {
  const endpoint = readEndpoint(binding);
  if ('problem' in endpoint) return endpoint;
  const { forms, problems: formProblems } = boundForms(model.document, binding);
  const problems = formProblems.map((problem) => `${problem.path}: ${problem.message}`);
  const properties: OpcuaPropertyPoint[] = [];
  const actions: OpcuaMethodPoint[] = [];
  const seen = new Set<string>();
  const modelSampling = positiveNumber(model.document['opcua:samplingInterval']);
  const bindingSampling = positiveNumber(binding.samplingInterval);
  for (const { kind, name, form } of forms) {
    const where = `${kind} ${name}`;
    if (seen.has(`${kind}/${name}`)) continue;
    // One session per device: a form naming another server would need a second one.
    if (!sameEndpoint(form.href, endpoint.url)) {
      problems.push(`${where}: form href ${form.href} is not the device's endpoint ${endpoint.url} (use "{{endpoint}}")`);
      continue;
    }
    if (kind === 'property') {
      const compiled = model.properties.get(name);
      const nodeId = form['opcua:nodeId'];
      if (!compiled) continue;
      if (!isNodeId(nodeId)) {
        problems.push(`${where}: "opcua:nodeId" must be a NodeId such as ns=1;s=Pump1.Temperature`);
        continue;
      }
      const declaredType = form['opcua:dataType'];
      const dataType = declaredType === undefined ? undefined : parseBuiltInType(declaredType);
      if (declaredType !== undefined && dataType === undefined) {
        problems.push(
          `${where}: "opcua:dataType" ${JSON.stringify(declaredType)} is not an OPC UA built-in type (Double, Float, Int16, Boolean…)`,
        );
        continue;
      }
      const ops = form.op === undefined ? undefined : Array.isArray(form.op) ? form.op : [form.op];
      const samplingIntervalMs =
        positiveNumber(form['opcua:samplingInterval']) ??
        positiveNumber(affordanceTerm(model.document, kind, name, 'opcua:samplingInterval')) ??
        modelSampling ??
        bindingSampling ??
        DEFAULT_SAMPLING_INTERVAL_MS;
      properties.push({
        property: name,
        nodeId,
        samplingIntervalMs,
        writable: compiled.writable && (ops === undefined || ops.includes('writeproperty')),
        ...(dataType === undefined ? {} : { dataType }),
      });
      seen.add(`${kind}/${name}`);
    } else if (kind === 'action') {
      const objectId = form['opcua:objectId'];
      const methodId = form['opcua:methodId'];
      if (!isNodeId(objectId) || !isNodeId(methodId)) {
        problems.push(`${where}: an OPC UA method form needs "opcua:objectId" and "opcua:methodId" NodeIds`);
        continue;
      }
      actions.push({ action: name, objectId, methodId });
      seen.add(`${kind}/${name}`);
    }
  }
  return { endpoint, properties, actions, problems };
}
