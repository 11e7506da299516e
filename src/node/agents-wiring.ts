import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { AgentEngine, type AgentStore, AlarmService, type AlarmSink, type DecisionRecord, type PlantAccess } from '../agents/index.js';
import type { CommandService } from '../commands/index.js';
import { DomainError } from '../errors/index.js';
import type { Logger } from '../observability/index.js';
import type { DeviceRecord, DeviceRegistry } from '../registry/index.js';
import { SqliteAgentStore, SqliteAlarms, type SqliteDatabase } from '../store/sqlite/index.js';
import { type EmbeddedMqttBroker, thingTopics } from '../transport/mqtt/index.js';
import { parseAddressRange, postSigned, type WebhookRefusals } from '../transport/webhook/index.js';
import type { TwinService } from '../twin/index.js';
import { howToSet, type NodeConfig } from './config.js';

/** The plant as agents reach it: registry lookups, twins and commands. */
export function plantAccess(registry: DeviceRegistry, twins: TwinService, commands: CommandService): PlantAccess {
  // Peer lookups (joins across a group) are cached until the registry changes.
  let peers = new Map<string, DeviceRecord[]>();
  const forget = () => {
    peers = new Map();
  };
  for (const event of ['registered', 'updated', 'removed'] as const) registry.events.on(event, forget);
  return {
    device: (id) => registry.find(id),
    async peers(model, attribute, value) {
      const key = JSON.stringify([model, attribute, value]);
      let found = peers.get(key);
      if (!found) {
        found = [];
        for await (const page of registry.all(model ? { model } : {})) {
          found.push(...page.filter((device) => device.attributes[attribute] === value));
        }
        peers.set(key, found);
      }
      return found;
    },
    desired: async (device) => (await twins.get(device)).desired,
    reported: async (device) => {
      const twin = await twins.get(device);
      return Object.fromEntries(
        Object.entries(twin.reported).map(([key, value]) => [key, { value, ts: twin.metadata.reported[key]?.ts ?? 0 }]),
      );
    },
    setDesired: async (device, values, actor) => {
      await twins.setDesired(device, { values, expectedVersion: undefined, actor });
    },
    invoke: async (device, action, input, actor) => (await commands.invoke(device, { action, input, actor })).invocation,
  };
}

/** What the webhook sink reports a refused target to: the node's refusal metrics and its log. */
export interface WebhookReporting {
  refusals: WebhookRefusals;
  logger: Logger;
}

export function alarmSinks(config: NodeConfig, broker: () => EmbeddedMqttBroker, reporting: WebhookReporting): AlarmSink[] {
  const sinks: AlarmSink[] = [
    {
      name: 'mqtt',
      async deliver(alarm, event) {
        await broker().publish(
          thingTopics.alarms(alarm.deviceId),
          { event: event.event, alarm: { ...alarm, notifications: undefined } },
          { qos: 1 },
        );
        return { status: 'delivered', attempts: 1 };
      },
    },
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
    sinks.push({
      name: 'webhook',
      deliver: (alarm, event) => postSigned(options, { event: event.event, alarm: { ...alarm, notifications: undefined } }),
    });
  }
  return sinks;
}

export interface AgentParts {
  engine: AgentEngine;
  alarms: AlarmService;
}

export interface AgentPlacement {
  /** Whether this node runs agents for a device. */
  evaluates(device: DeviceRecord): boolean;
  /** Called after a decision is stored or updated (an edge forwards it to the cloud). */
  onDecision?(decision: DecisionRecord): void;
}

/** An agent store that also reports every stored decision. */
function reportingDecisions(store: AgentStore, onDecision: (decision: DecisionRecord) => void): AgentStore {
  return Object.assign(Object.create(store) as AgentStore, {
    async insertDecision(decision: DecisionRecord) {
      await store.insertDecision(decision);
      onDecision(decision);
    },
    async updateDecision(decision: DecisionRecord) {
      await store.updateDecision(decision);
      onDecision(decision);
    },
  });
}

export function createAgents(
  db: SqliteDatabase,
  plant: PlantAccess,
  sinks: AlarmSink[],
  now: () => number,
  logger: Logger,
  placement: AgentPlacement,
): AgentParts {
  const alarms = new AlarmService(new SqliteAlarms(db), sinks, now);
  const store: AgentStore = new SqliteAgentStore(db);
  const engine = new AgentEngine({
    evaluates: placement.evaluates,
    store: placement.onDecision ? reportingDecisions(store, placement.onDecision) : store,
    plant,
    alarms,
    now,
    onError: (error, context) => logger.error({ err: (error as Error).message, context }, 'agent evaluation failed'),
  });
  return { engine, alarms };
}

/**
 * Loads agent definitions from a directory. A file that does not parse or validate is reported
 * with every problem and skipped: one bad file must not keep the node from starting.
 */
export async function loadAgentFiles(engine: AgentEngine, directory: string, logger: Logger): Promise<string[]> {
  const loaded: string[] = [];
  let files: string[];
  try {
    files = readdirSync(directory)
      .filter((file) => ['.yaml', '.yml', '.json'].includes(extname(file)))
      .sort();
  } catch (error) {
    logger.error({ directory, err: (error as Error).message }, 'cannot read the agents directory (--agents-dir)');
    return loaded;
  }
  for (const file of files) {
    const path = join(directory, file);
    try {
      const text = readFileSync(path, 'utf8');
      const definition = extname(file) === '.json' ? JSON.parse(text) : parseYaml(text);
      const stored = await engine.put(definition, { create: false });
      loaded.push(stored.id);
    } catch (error) {
      const details = error instanceof DomainError ? error.details : undefined;
      logger.error({ file: path, err: (error as Error).message, problems: details }, 'agent definition skipped');
    }
  }
  return loaded;
}
