import {
  AgentEngine,
  type AgentPlacement,
  AlarmService,
  type AlarmSink,
  type PlantAccess,
  placedStore,
  postingSink,
  publishingSink,
} from '../agents/index.js';
import type { Logger } from '../observability/index.js';
import { SqliteAgentStore, SqliteAlarms, type SqliteDatabase } from '../store/sqlite/index.js';
import { type EmbeddedMqttBroker, thingTopics } from '../transport/mqtt/index.js';
import { parseAddressRange, postSigned, type WebhookRefusals } from '../transport/webhook/index.js';
import { howToSet, type NodeConfig } from './config.js';

/** What the webhook sink reports a refused target to: the node's refusal metrics and its log. */
export interface WebhookReporting {
  refusals: WebhookRefusals;
  logger: Logger;
}

/**
 * A tenant's alarm sinks on this node's transports: its broker's alarm topic (in the tenant's
 * mount), and the webhook when one is set.
 */
export function alarmSinks(
  config: NodeConfig,
  broker: () => EmbeddedMqttBroker,
  reporting: WebhookReporting,
): (tenant: string) => AlarmSink[] {
  return (tenant) => tenantAlarmSinks(config, broker, reporting, tenant);
}

function tenantAlarmSinks(config: NodeConfig, broker: () => EmbeddedMqttBroker, reporting: WebhookReporting, tenant: string): AlarmSink[] {
  const sinks: AlarmSink[] = [
    publishingSink('mqtt', (deviceId, notice) => broker().publish(thingTopics.alarms(deviceId), notice, { tenant, qos: 1 })),
  ];
  if (config.alarmWebhook) {
    const { logger } = reporting;
    const options = {
      url: config.alarmWebhook,
      secret: config.alarmWebhookSecret ?? '',
      allow: config.webhookAllow.map(parseAddressRange),
      refusals: reporting.refusals,
      log: {
        warn: (details: Record<string, unknown>, message: string) =>
          logger.warn({ ...details, setting: howToSet('webhookAllow') }, `alarm ${message}`),
      },
    };
    sinks.push(postingSink('webhook', (notice) => postSigned(options, notice)));
  }
  return sinks;
}

export interface AgentParts {
  engine: AgentEngine;
  alarms: AlarmService;
}

/** The agent engine and alarms on this node's SQLite store. */
export function createAgents(
  db: SqliteDatabase,
  plant: PlantAccess,
  sinks: AlarmSink[],
  now: () => number,
  logger: Logger,
  placement: AgentPlacement & { admitAgent?(current: number): void },
): AgentParts {
  const alarms = new AlarmService(new SqliteAlarms(db), sinks, now);
  const engine = new AgentEngine({
    evaluates: placement.evaluates,
    ...(placement.admitAgent ? { admitAgent: placement.admitAgent } : {}),
    store: placedStore(new SqliteAgentStore(db), placement),
    plant,
    alarms,
    now,
    onError: (error, context) => logger.error({ err: (error as Error).message, context }, 'agent evaluation failed'),
  });
  return { engine, alarms };
}
