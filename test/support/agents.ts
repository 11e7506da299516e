/**
 * Helpers for agent tests: thing models for a small plant, devices that report over real MQTT,
 * and typed readers for decisions, twins, invocations and alarms.
 */
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import type { AgentDefinition, Alarm, DecisionRecord } from '../../src/agents/index.js';
import type { TestNode } from './harness.js';

export const AGENT_PUMP_MODEL = {
  '@context': 'https://www.w3.org/2022/wot/td/v1.1',
  '@type': 'tm:ThingModel',
  title: 'Agent test pump',
  properties: {
    speed: { type: 'number', unit: 'percent', minimum: 0, maximum: 100 },
    temperature: { type: 'number', unit: 'Cel', minimum: -40, maximum: 300, readOnly: true },
    pressure: { type: 'number', unit: 'bar', minimum: 0, maximum: 50, readOnly: true },
    target: { type: 'number', description: 'A setpoint suggested by the device (lets tests choose what an agent writes)', readOnly: true },
  },
  actions: { stop: { output: { type: 'object', properties: { running: { type: 'boolean' } } } } },
};

export const AGENT_VALVE_MODEL = {
  '@context': 'https://www.w3.org/2022/wot/td/v1.1',
  '@type': 'tm:ThingModel',
  title: 'Agent test valve',
  properties: { position: { type: 'number', unit: 'percent', minimum: 0, maximum: 100 } },
};

export interface TwinBody {
  version: number;
  desired: Record<string, unknown>;
  reported: Record<string, unknown>;
}

export interface InvocationBody {
  id: string;
  action: string;
  status: string;
  actor?: string;
}

export async function putModels(t: TestNode): Promise<void> {
  for (const [id, document] of [
    ['agent-pump', AGENT_PUMP_MODEL],
    ['agent-valve', AGENT_VALVE_MODEL],
  ] as const) {
    const { status } = await t.api(`/api/v1/models/${id}`, { method: 'PUT', body: document });
    assert.ok(status === 200 || status === 201, `model ${id}: ${status}`);
  }
}

export interface PlantDevice {
  id: string;
  token: string;
  client: MqttClient;
  /** Publishes one reading (QoS 1, stamped by the node's clock) and waits until agents evaluated it. */
  send(values: Record<string, unknown>): Promise<void>;
}

export async function plantDevice(
  t: TestNode,
  id: string,
  options: { model?: string; attributes?: Record<string, string | number | boolean>; network?: Record<string, unknown> } = {},
): Promise<PlantDevice> {
  const { token } = await t.registerDevice(id, options.model ?? 'agent-pump', {
    ...(options.attributes ? { attributes: options.attributes } : {}),
    ...(options.network ? { network: options.network } : {}),
  });
  return connectPlantDevice(t, id, token);
}

export async function connectPlantDevice(t: TestNode, id: string, token: string): Promise<PlantDevice> {
  const client = await t.connectDevice(id, token);
  return {
    id,
    token,
    client,
    async send(values) {
      await client.publishAsync(`things/${id}/telemetry`, JSON.stringify(values), { qos: 1 });
      await t.node.agents.idle();
    },
  };
}

export async function createAgent(t: TestNode, definition: Record<string, unknown>): Promise<AgentDefinition> {
  const { status, body } = await t.api<AgentDefinition>('/api/v1/agents', { method: 'POST', body: definition });
  assert.equal(status, 201, JSON.stringify(body));
  return body;
}

export async function decisionsOf(t: TestNode, agentId: string, query = ''): Promise<DecisionRecord[]> {
  const { status, body } = await t.api<{ items: DecisionRecord[] }>(`/api/v1/agents/${agentId}/decisions${query}`);
  assert.equal(status, 200, JSON.stringify(body));
  return body.items;
}

export async function decisionById(t: TestNode, id: string): Promise<DecisionRecord> {
  const { status, body } = await t.api<DecisionRecord>(`/api/v1/decisions/${id}`);
  assert.equal(status, 200, JSON.stringify(body));
  return body;
}

/** The one decision an agent has made for a device since `count` earlier ones. */
export async function onlyNewDecision(t: TestNode, agentId: string, deviceId: string, before: number): Promise<DecisionRecord> {
  const items = await decisionsOf(t, agentId, `?device=${deviceId}`);
  assert.equal(items.length, before + 1, `expected exactly one new decision, got ${items.length - before}`);
  return items[0] as DecisionRecord;
}

export async function twinOf(t: TestNode, id: string): Promise<TwinBody> {
  const { status, body } = await t.api<TwinBody>(`/api/v1/devices/${id}/twin`);
  assert.equal(status, 200);
  return body;
}

export async function invocationsOf(t: TestNode, id: string): Promise<InvocationBody[]> {
  const { status, body } = await t.api<{ items: InvocationBody[] }>(`/api/v1/devices/${id}/invocations`);
  assert.equal(status, 200);
  return body.items;
}

export async function setDesired(t: TestNode, id: string, desired: Record<string, unknown>): Promise<void> {
  const { version } = await twinOf(t, id);
  const { status, body } = await t.api(`/api/v1/devices/${id}/twin`, { method: 'PATCH', body: { desired, version } });
  assert.equal(status, 200, JSON.stringify(body));
}

export async function alarmById(t: TestNode, id: string): Promise<Alarm> {
  const { status, body } = await t.api<Alarm>(`/api/v1/alarms/${id}`);
  assert.equal(status, 200, JSON.stringify(body));
  return body;
}

export async function alarmsOf(t: TestNode, query: string): Promise<Alarm[]> {
  const { status, body } = await t.api<{ items: Alarm[] }>(`/api/v1/alarms${query}`);
  assert.equal(status, 200, JSON.stringify(body));
  return body.items;
}
