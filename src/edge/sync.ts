import type { AgentEngine, AlarmService } from '../agents/index.js';
import { type CommandService, isFinished } from '../commands/index.js';
import type { BindingHealth } from '../gateway/index.js';
import { canonicalJson, type ModelCatalog } from '../model/index.js';
import type { Logger } from '../observability/index.js';
import type { DeviceRecord, DeviceRegistry } from '../registry/index.js';
import type { TwinService } from '../twin/index.js';
import { BindingHealthReport } from './binding-report.js';
import { HostProbe } from './host.js';
import { jsonRecord } from './json.js';
import type { Outbox } from './outbox.js';
import {
  CLOUD_INVOCATION_PREFIX,
  type CloudToEdge,
  type EdgeConfig,
  type EdgeToCloud,
  type GapReport,
  type ReconcileResult,
  type UplinkRecord,
} from './records.js';
import { UplinkSender } from './uplink.js';

export interface EdgeSyncOptions {
  /** Where the link goes: for the log only (the link itself is a port). */
  cloudUrl: string;
  edgeId: string;
  quotaBytes: number;
  policy: GapReport['policy'];
  drainRatePerSecond: number;
}

/** What the edge's end of the link tells the sync. */
export interface CloudLinkHandlers {
  onOpen(): void;
  onClose(reason: string): void;
  /** A JSON control frame from the cloud, parsed but not yet checked. */
  onMessage(message: unknown): void;
}

/**
 * The edge's end of the edge ↔ cloud link, reconnecting on its own: the node builds it from a
 * transport (a WebSocket today) and the sync drives it.
 */
export interface CloudLink {
  start(): void;
  readonly open: boolean;
  /** An uplink batch; false when the link is down. */
  sendBinary(frame: Buffer): boolean;
  sendJson(message: EdgeToCloud): boolean;
  /** Drops the connection now; it reconnects. */
  drop(): void;
  stop(): void;
}

/** Opens the link; `outboxEpoch` names the outbox's sequence to the cloud (see `Outbox.epoch`). */
export type CloudLinkFactory = (handlers: CloudLinkHandlers, outboxEpoch: string) => CloudLink;

export interface EdgeSyncParts {
  outbox: Outbox;
  link: CloudLinkFactory;
  registry: DeviceRegistry;
  models: ModelCatalog;
  agents: AgentEngine;
  alarms: AlarmService;
  twins: TwinService;
  commands: CommandService;
  logger: Logger;
  now(): number;
  /** The data directory: the disk the heartbeat reports. */
  dataDir: string;
  /** The health of the binding this edge runs for a device, reported to the cloud with each heartbeat. */
  bindingHealth?(device: DeviceRecord): BindingHealth | undefined;
}

export interface EdgeSync {
  /** After a local telemetry commit: wake the sender, apply the quota. */
  appended(): void;
  onDecision(decision: Record<string, unknown>): void;
  status(): { connected: boolean; appliedConfigVersion: number | null };
  /** Drops the link now (it reconnects with backoff): for tests of link loss. */
  dropLink(): void;
  /** Closes the link and waits for a configuration still being applied. */
  stop(): Promise<void>;
}

const HEARTBEAT_MS = 10_000;
const QUOTA_CHECK_MS = 1_000;

/**
 * The edge's side: feeds the outbox from everything the edge accepts, forwards it, reconciles to
 * the desired configuration the cloud sends, and reports heartbeats. Runs the same whether the
 * cloud is there or not: the outbox simply grows until the link returns.
 */
export function startEdgeSync(options: EdgeSyncOptions, parts: EdgeSyncParts): EdgeSync {
  const { outbox, logger } = parts;
  let appliedConfigVersion: number | null = null;
  // The cloud's first ack on a new connection says where it stands; the sender resumes after it.
  let resuming = false;
  let linkWasUp = false;
  let reconciling: Promise<void> = Promise.resolve();
  // After stop no forwarding, quota or reconcile work starts: a late ack or config frame, or a
  // quota timer, must not reach a store that is about to close.
  let stopped = false;
  let lastQuotaCheck = 0;
  const sender = new UplinkSender(
    outbox,
    { sendBinary: (frame) => link.sendBinary(frame) },
    { batchRecords: 2000, batchBytes: 1024 * 1024, maxInFlight: 4, drainRatePerSecond: options.drainRatePerSecond, now: parts.now },
    (error) => logger.error({ err: (error as Error).message }, 'uplink failed'),
  );
  // Still queued after stop (the broker and agents stop later and their records must not be
  // lost); only the forwarding and quota work stops.
  const enqueue = (records: UplinkRecord[]) => {
    outbox
      .append(records)
      .then(() => appended())
      .catch((error: Error) => logger.error({ err: error.message }, 'outbox append failed'));
  };
  let trailingQuotaCheck: NodeJS.Timeout | undefined;
  const appended = () => {
    if (stopped) return;
    const now = parts.now();
    if (now - lastQuotaCheck < QUOTA_CHECK_MS) {
      // Throttled, but never skipped: what arrived since the last check is checked once more.
      if (!trailingQuotaCheck) {
        trailingQuotaCheck = setTimeout(
          () => {
            trailingQuotaCheck = undefined;
            appended();
          },
          QUOTA_CHECK_MS - (now - lastQuotaCheck),
        );
        trailingQuotaCheck.unref();
      }
    } else {
      lastQuotaCheck = now;
      outbox
        .enforceQuota(options.quotaBytes, options.policy, now)
        .then(
          (gap) => gap && logger.warn({ dropped: gap.total, policy: gap.policy }, 'outbox full: telemetry dropped and reported as a gap'),
        )
        .catch((error: Error) => logger.error({ err: error.message }, 'outbox quota check failed'));
    }
    sender.notify();
  };

  parts.twins.events.on('reported.changed', (event) => {
    if (event.actor !== 'device') return;
    const values = Object.fromEntries(event.changes.map((c) => [c.key, c.new]));
    enqueue([{ kind: 'twin', deviceId: event.device.id, ts: parts.now(), section: 'reported', values, actor: 'device' }]);
  });
  parts.twins.events.on('desired.changed', (event) => {
    // Desired values that came from the cloud are not echoed back.
    if (event.actor === 'cloud') return;
    const values = Object.fromEntries(event.changes.map((c) => [c.key, c.new]));
    enqueue([{ kind: 'twin', deviceId: event.device.id, ts: parts.now(), section: 'desired', values, actor: event.actor }]);
  });
  parts.alarms.events.on('changed', ({ alarm }) => enqueue([{ kind: 'alarm', alarm: jsonRecord(alarm) }]));
  parts.commands.events.on('invocation.changed', (invocation) => {
    if (isFinished(invocation.status)) enqueue([{ kind: 'invocation', invocation: jsonRecord(invocation) }]);
  });

  const reconcile = async (config: EdgeConfig): Promise<ReconcileResult[]> => {
    const results: ReconcileResult[] = [];
    const attempt = async (kind: ReconcileResult['kind'], id: string, work: () => Promise<'applied' | 'unchanged'>) => {
      try {
        results.push({ kind, id, status: await work() });
      } catch (error) {
        // One failed item never blocks the others.
        results.push({ kind, id, status: 'failed', reason: (error as Error).message });
      }
    };
    for (const model of config.models) {
      await attempt('model', `${model.id}@${model.version}`, () =>
        parts.models.adopt({ id: model.id, version: model.version, document: model.document as never, createdAt: parts.now() }),
      );
    }
    const wanted = new Set<string>();
    for (const entry of config.devices) {
      const record = entry.record as unknown as Omit<DeviceRecord, 'uid'>;
      wanted.add(record.id);
      await attempt('device', record.id, () => parts.registry.adopt(record, entry.tokenHash));
    }
    const local: DeviceRecord[] = [];
    for await (const page of parts.registry.all({ edge: options.edgeId })) local.push(...page);
    for (const device of local) {
      if (!wanted.has(device.id)) {
        await attempt('removal', device.id, async () => {
          await parts.registry.remove(device.id);
          return 'applied';
        });
      }
    }
    const agentIds = new Set<string>();
    for (const definition of config.agents) {
      const id = String(definition.id);
      agentIds.add(id);
      await attempt('agent', id, async () => {
        const current = parts.agents.list().find((a) => a.id === id);
        if (current && canonicalJson(current) === canonicalJson(definition)) return 'unchanged';
        await parts.agents.put(definition, { create: false });
        return 'applied';
      });
    }
    for (const agent of parts.agents.list()) {
      if (!agentIds.has(agent.id)) {
        await attempt('removal', `agent:${agent.id}`, async () => {
          await parts.agents.remove(agent.id);
          return 'applied';
        });
      }
    }
    for (const entry of config.desired) {
      await attempt('desired', entry.deviceId, async () => {
        const device = await parts.registry.get(entry.deviceId);
        const twin = await parts.twins.get(device);
        // Conflict rule: per key, the newer write wins (cloud time vs the edge's local write time).
        const newer = Object.fromEntries(
          Object.entries(entry.values).filter(([key]) => (entry.setAt[key] ?? 0) > (twin.metadata.desired[key]?.ts ?? -1)),
        );
        if (Object.keys(newer).length === 0) return 'unchanged';
        await parts.twins.setDesired(device, { values: newer, expectedVersion: undefined, actor: 'cloud' });
        return 'applied';
      });
    }
    return results;
  };

  const runForwardedAction = async (frame: Extract<CloudToEdge, { type: 'invoke' }>) => {
    const idempotencyKey = `${CLOUD_INVOCATION_PREFIX}${frame.id}`;
    try {
      const device = await parts.registry.get(frame.deviceId);
      await parts.commands.invoke(device, {
        action: frame.action,
        input: frame.input,
        idempotencyKey,
        timeoutMs: frame.timeoutMs,
        actor: 'cloud',
      });
    } catch (error) {
      // The cloud's invocation must not wait for its TTL when the edge cannot run it at all.
      enqueue([
        { kind: 'invocation', invocation: { idempotencyKey, status: 'failed', error: (error as Error).message, completedAt: parts.now() } },
      ]);
    }
  };

  const host = new HostProbe(parts.dataDir);
  const { bindingHealth } = parts;
  const bindingReport = new BindingHealthReport();
  /** Per device this edge serves for the cloud, its binding's health (devices with none are left out). */
  const bindingFigures = async (): Promise<Map<string, BindingHealth>> => {
    const figures = new Map<string, BindingHealth>();
    if (!bindingHealth) return figures;
    for await (const page of parts.registry.all({ edge: options.edgeId })) {
      for (const device of page) {
        const health = bindingHealth(device);
        if (health) figures.set(device.id, health);
      }
    }
    return figures;
  };

  const link = parts.link(
    {
      onOpen: () => {
        resuming = true;
        linkWasUp = true;
        logger.info({ cloud: options.cloudUrl }, 'cloud link up');
        // The cloud learns the backlog (records, age) when the link returns, not up to 10 s later.
        bindingReport.reset();
        sendHeartbeat();
      },
      onClose: (reason) => {
        // Warn once when an open link is lost; failed reconnect attempts are only debug noise.
        if (linkWasUp) logger.warn({ reason }, 'cloud link down; the edge keeps operating and queues for the cloud');
        else logger.debug({ reason }, 'cloud still unreachable; retrying with backoff');
        linkWasUp = false;
        sender.linkDown();
      },
      onMessage: (message) => {
        if (stopped) return;
        const frame = message as CloudToEdge;
        if (frame.type === 'ack') {
          const resume = resuming;
          resuming = false;
          sender
            .acknowledged(frame.upTo)
            .then(async () => {
              if (!resume) return;
              // Before the drain starts, the full-outbox policy applies to what the cloud does not
              // have: a quick reconnect must not skip it (the periodic check is throttled).
              await sender.resumedAt(frame.upTo);
              await outbox.enforceQuota(options.quotaBytes, options.policy, parts.now());
              if (!stopped) sender.linkUp();
            })
            .catch((error: Error) => logger.error({ err: error.message }, 'trimming the outbox failed'));
        } else if (frame.type === 'invoke') {
          runForwardedAction(frame).catch((error: Error) => logger.error({ err: error.message }, 'forwarded action failed'));
        } else if (frame.type === 'config') {
          // One reconcile at a time: the cloud may push again (after a reconnect or heartbeat)
          // while the previous document is still being applied, and two concurrent applies would
          // insert the same model version or device twice.
          reconciling = reconciling
            .then(() => reconcile(frame.config))
            .then((results) => {
              appliedConfigVersion = frame.config.version;
              const failed = results.filter((r) => r.status === 'failed');
              if (failed.length > 0) logger.warn({ version: frame.config.version, failed }, 'some configuration items failed');
              link.sendJson({ type: 'applied', version: frame.config.version, results } satisfies EdgeToCloud);
            })
            .catch((error: Error) => logger.error({ err: error.message }, 'reconciling the configuration failed'));
        } else if (frame.type === 'error') {
          logger.error({ message: frame.message }, 'the cloud refused an uplink frame');
        }
      },
    },
    outbox.epoch,
  );
  link.start();

  const sendHeartbeat = () => {
    Promise.all([outbox.stats(), bindingFigures()])
      .then(([stats, figures]) => {
        const { cpuPercent, memory, disk, accelerators } = host.sample();
        const bindings = bindingReport.next(figures);
        const message: EdgeToCloud = {
          type: 'heartbeat',
          heartbeat: {
            at: parts.now(),
            cpuPercent,
            memory,
            disk,
            outbox: stats,
            accelerators,
            drainRatePerSecond: sender.drainRate(),
            ...(bindingHealth ? { bindings } : {}),
          },
        };
        if (link.sendJson(message)) bindingReport.sentAt(bindings, parts.now());
      })
      .catch((error: Error) => logger.error({ err: error.message }, 'heartbeat failed'));
  };
  const heartbeat = setInterval(sendHeartbeat, HEARTBEAT_MS);
  heartbeat.unref();

  return {
    appended,
    onDecision: (decision) => enqueue([{ kind: 'decision', decision: jsonRecord(decision) }]),
    status: () => ({ connected: link.open, appliedConfigVersion }),
    dropLink: () => link.drop(),
    stop: async () => {
      stopped = true;
      clearInterval(heartbeat);
      clearTimeout(trailingQuotaCheck);
      sender.stop();
      link.stop();
      await reconciling;
    },
  };
}
