/**
 * Starts real nodes for tests: a temporary data directory, port 0 for HTTP and MQTT (1883 is
 * taken on dev and CI machines), a known admin key and a silent logger.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { type NodeConfig, type RunningNode, resolveConfig, startCloudNode } from '../../src/node/index.js';
import { createLogger } from '../../src/observability/index.js';
import type { DeviceRecord } from '../../src/registry/index.js';
import type { Clock } from '../../src/time/index.js';
import { type ApiInit, callApi } from './http.js';

export const ADMIN_KEY = 'test-admin-key-0123456789';

export const PUMP_MODEL = {
  '@context': 'https://www.w3.org/2022/wot/td/v1.1',
  '@type': 'tm:ThingModel',
  title: 'Centrifugal pump',
  properties: {
    speed: { type: 'number', unit: 'percent', minimum: 0, maximum: 100 },
    temperature: { type: 'number', unit: 'Cel', minimum: -40, maximum: 200, readOnly: true },
    vibration: { type: 'number', unit: 'mm/s', minimum: 0 },
    running: { type: 'boolean' },
    mode: { type: 'string', enum: ['auto', 'manual', 'maintenance'] },
    starts: { type: 'integer', minimum: 0 },
  },
  actions: { reset: { input: { type: 'object', properties: { reason: { type: 'string' } } } } },
  events: {
    overheat: {
      data: { type: 'object', properties: { temperature: { type: 'number', minimum: -40, maximum: 400 } }, required: ['temperature'] },
    },
    doorOpened: {},
  },
};

export function tempDir(prefix = 'thingloop-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function testConfig(overrides: Partial<NodeConfig> = {}): NodeConfig {
  const { config } = resolveConfig({ env: {} });
  return {
    ...config,
    // Only made when not given: a restart on an existing dataDir must not leak an empty one.
    dataDir: overrides.dataDir ?? tempDir(),
    httpPort: 0,
    httpHost: '127.0.0.1',
    mqttPort: 0,
    mqttHost: '127.0.0.1',
    coapPort: 0,
    coapHost: '127.0.0.1',
    adminKey: ADMIN_KEY,
    logLevel: 'silent',
    // Suites that try wrong keys on purpose would trip the guessing brake; its own tests lower this.
    authFailureBurst: 1_000_000,
    ...overrides,
  };
}

export type JsonObject = Record<string, unknown>;

export type { ApiInit } from './http.js';

export interface TestNode {
  node: RunningNode;
  config: NodeConfig;
  /** Fetch against the node's HTTP API with the admin key (unless `auth` says otherwise). */
  api<T = JsonObject>(path: string, init?: ApiInit): Promise<{ status: number; body: T }>;
  registerDevice(id: string, model?: string, extra?: Record<string, unknown>): Promise<{ token: string; device: DeviceRecord }>;
  connectDevice(id: string, token: string, options?: mqtt.IClientOptions): Promise<MqttClient>;
  stop(options?: { keepData?: boolean }): Promise<void>;
}

export async function startTestNode(overrides: Partial<NodeConfig> = {}, clock?: Clock): Promise<TestNode> {
  const config = testConfig(overrides);
  const node = await startCloudNode(config, { clock, logger: createLogger({ level: 'silent' }) });
  const clients: MqttClient[] = [];
  const api = <T = JsonObject>(path: string, init: ApiInit = {}) => callApi<T>(node.httpUrl, path, init, ADMIN_KEY);

  return {
    node,
    config,
    api,
    async registerDevice(id, model = 'pump', extra = {}) {
      const existing = await api(`/api/v1/models/${model}`);
      if (existing.status === 404 && model === 'pump') await api('/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL });
      const created = await api<{ token: string; device: DeviceRecord }>('/api/v1/devices', {
        method: 'POST',
        body: { id, model, ...extra },
      });
      if (created.status !== 201) throw new Error(`registering ${id} failed: ${JSON.stringify(created.body)}`);
      return created.body;
    },
    async connectDevice(id, token, options = {}) {
      const client = await mqtt.connectAsync(node.mqttUrl, {
        username: id,
        password: token,
        protocolVersion: 4,
        reconnectPeriod: 0,
        ...options,
      });
      clients.push(client);
      return client;
    },
    async stop(options = {}) {
      await Promise.all(clients.map((client) => client.endAsync(true).catch(() => undefined)));
      await node.stop();
      if (!options.keepData) rmSync(config.dataDir, { recursive: true, force: true });
    },
  };
}

/** Resolves with the next message on `topic` (or rejects after `ms`). */
export function nextMessage<T = JsonObject>(client: MqttClient, topic: string, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      reject(new Error(`no message on ${topic} within ${ms} ms`));
    }, ms);
    const onMessage = (received: string, payload: Buffer) => {
      if (received !== topic) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve(JSON.parse(payload.toString()) as T);
    };
    client.on('message', onMessage);
  });
}
