import { createHash } from 'node:crypto';
import { existsSync, statfsSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';
import type { AgentEngine, AlarmService } from '../agents/index.js';
import type { EventBus } from '../bus/index.js';
import { type CommandService, type InvocationStatus, isFinished } from '../commands/index.js';
import {
  CLOUD_INVOCATION_PREFIX,
  type CloudToEdge,
  decodeBatch,
  deviceIdOf,
  type EdgeConfig,
  type EdgeDirectory,
  type EdgeHeartbeat,
  type EdgeToCloud,
  type GapReport,
  type ReconcileResult,
  type UplinkRecord,
  UplinkSender,
} from '../edge/index.js';
import type { IngestEvents } from '../ingest/index.js';
import { canonicalJson, type ModelCatalog, type ThingModelVersion } from '../model/index.js';
import type { Logger, RefusalMetrics } from '../observability/index.js';
import type { DeviceRecord, DeviceRegistry } from '../registry/index.js';
import type { SqliteDevices, SqliteOutbox } from '../store/sqlite/index.js';
import type { JsonValue, TelemetrySample } from '../telemetry/index.js';
import { EdgeLinkClient } from '../transport/edge-link/index.js';
import type { TwinService } from '../twin/index.js';

const json = <T>(value: T) => JSON.parse(JSON.stringify(value)) as Record<string, JsonValue>;

// ---- cloud side --------------------------------------------------------------------------------

/** What the cloud's link route needs: one method per thing an edge can say. */
export interface EdgeLinkSession {
  send(message: CloudToEdge): void;
  close(code: number, reason: string): void;
}

export interface EdgeHubParts {
  edges: EdgeDirectory;
  registry: DeviceRegistry;
  devices: SqliteDevices;
  models: ModelCatalog;
  agents: AgentEngine;
  twins: TwinService;
  commands: CommandService;
  bus: EventBus<IngestEvents>;
  refusals: RefusalMetrics;
  logger: Logger;
  now(): number;
}

/**
 * The cloud's side of edge sync: applies uplink batches exactly once, acknowledges them, keeps
 * each edge's desired configuration versioned and pushes it when it changes.
 */
export class EdgeHub {
  private readonly sessions = new Map<string, EdgeLinkSession>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly pushTimers = new Map<string, NodeJS.Timeout>();
  private readonly applyStats = new Map<string, { at: number; records: number }[]>();
  /** Work started by a link frame or a timer; `stop` waits for it so nothing outlives the store. */
  private readonly inFlight = new Set<Promise<unknown>>();
  private stopped = false;

  constructor(private readonly parts: EdgeHubParts) {
    const { registry, twins } = parts;
    const touch = (device: DeviceRecord) => device.edge && this.schedulePush(device.edge);
    registry.events.on('registered', touch);
    registry.events.on('updated', touch);
    registry.events.on('removed', touch);
    registry.events.on('credentialRotated', touch);
    // A changed agent may change what an edge runs (deploy.edges): push now, not at the next heartbeat.
    parts.agents.events.on('definition.changed', () => this.configChanged());
    twins.events.on('desired.changed', (event) => {
      if (event.device.edge && !event.actor.startsWith('edge:')) this.schedulePush(event.device.edge);
    });
  }

  isConnected(edgeId: string): boolean {
    return this.sessions.has(edgeId);
  }

  /** Agents changed: every connected edge may need a new configuration. */
  private configChanged(): void {
    for (const edgeId of this.sessions.keys()) this.schedulePush(edgeId);
  }

  /** Closes every link and waits for the work in flight (node shutdown, before the store closes). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.pushTimers.values()) clearTimeout(timer);
    this.pushTimers.clear();
    for (const session of this.sessions.values()) session.close(1001, 'the cloud node is shutting down');
    this.sessions.clear();
    while (this.inFlight.size > 0 || this.chains.size > 0) {
      const pending = [...this.inFlight, ...this.chains.values()];
      this.chains.clear();
      await Promise.allSettled(pending);
    }
  }

  private track<T>(work: () => Promise<T>): Promise<T> {
    if (this.stopped) return Promise.reject(new Error('the cloud node is shutting down'));
    const running = work();
    this.inFlight.add(running);
    const forget = () => this.inFlight.delete(running);
    running.then(forget, forget);
    return running;
  }

  /** `outboxEpoch`: the sequence the edge's outbox numbers in (absent from older edges). */
  connected(edgeId: string, session: EdgeLinkSession, outboxEpoch?: string): Promise<void> {
    return this.track(() => this.open(edgeId, session, outboxEpoch));
  }

  private async open(edgeId: string, session: EdgeLinkSession, outboxEpoch: string | undefined): Promise<void> {
    this.sessions.get(edgeId)?.close(4000, 'replaced by a newer connection');
    this.sessions.set(edgeId, session);
    await this.parts.edges.update(edgeId, (edge) => {
      edge.lastContact = this.parts.now();
    });
    // The edge resumes after its last acknowledged record: tell it where the cloud stands.
    // A batch from the previous connection may still be applying: the mark sent must include it.
    await this.chains.get(edgeId)?.catch(() => undefined);
    let upTo = (await this.parts.edges.get(edgeId)).appliedSeq;
    if (outboxEpoch) {
      // A new outbox (new data directory) numbers from 1 again: without this its records would
      // be skipped as replays and trimmed at the edge, lost without a gap report.
      const resumed = await this.parts.edges.resumeUplink(edgeId, outboxEpoch);
      if (resumed.restarted) {
        this.parts.logger.warn(
          { edge: edgeId, previousMark: upTo },
          'the edge has a new outbox (new data directory): its sequence restarts at 1',
        );
      }
      upTo = resumed.appliedSeq;
    }
    session.send({ type: 'ack', upTo });
    await this.pushConfig(edgeId, true);
    // Actions that waited for this edge's devices can go now.
    for await (const page of this.parts.registry.all({ edge: edgeId })) {
      for (const device of page) await this.parts.commands.deviceAwake(device);
    }
  }

  /** Sends an action to the edge serving the device; false when the link is down. */
  forwardAction(edgeId: string, message: Extract<CloudToEdge, { type: 'invoke' }>): boolean {
    const session = this.sessions.get(edgeId);
    if (!session) return false;
    session.send(message);
    return true;
  }

  disconnected(edgeId: string, session: EdgeLinkSession): void {
    if (this.sessions.get(edgeId) === session) this.sessions.delete(edgeId);
  }

  forget(edgeId: string): void {
    this.sessions.get(edgeId)?.close(4403, 'edge deleted in the cloud');
    this.sessions.delete(edgeId);
    this.applyStats.delete(edgeId);
  }

  /** A binary frame: one uplink batch. Batches of one edge are applied strictly in order. */
  batch(edgeId: string, frame: Buffer): void {
    if (this.stopped) return;
    const previous = this.chains.get(edgeId) ?? Promise.resolve();
    const next = previous
      .then(() => this.applyBatch(edgeId, frame))
      .catch((error: Error) => {
        this.parts.logger.error({ edge: edgeId, err: error.message }, 'uplink batch refused');
        this.sessions.get(edgeId)?.send({ type: 'error', message: `batch refused: ${error.message}` });
      });
    this.chains.set(edgeId, next);
  }

  private async applyBatch(edgeId: string, frame: Buffer): Promise<void> {
    const { records } = decodeBatch(frame);
    // One registry lookup per device and batch, for the apply and for what follows the commit.
    const served = new Map<string, DeviceRecord>();
    const looked = new Set<string>();
    for (const { record } of records) {
      const deviceId = deviceIdOf(record);
      if (deviceId && !looked.has(deviceId)) {
        looked.add(deviceId);
        const device = await this.served(edgeId, deviceId);
        if (device) served.set(deviceId, device);
      }
    }
    const result = await this.parts.edges.applyUplink(edgeId, records, (id) => served.get(id)?.uid);
    if (result.skippedUnknownDevice > 0) {
      this.parts.logger.warn(
        { edge: edgeId, records: result.skippedUnknownDevice },
        'uplink records for devices this edge does not serve were skipped',
      );
    }
    if (result.skippedMalformed > 0) {
      this.parts.logger.warn({ edge: edgeId, records: result.skippedMalformed }, 'malformed uplink records were skipped');
      for (let i = 0; i < result.skippedMalformed; i++) this.parts.refusals.refused('edge-link', 'invalid_request');
    }
    this.sessions.get(edgeId)?.send({ type: 'ack', upTo: result.appliedUpTo });
    const now = this.parts.now();
    const stats = (this.applyStats.get(edgeId) ?? []).filter((s) => now - s.at < 10_000);
    stats.push({ at: now, records: result.applied.length });
    this.applyStats.set(edgeId, stats);
    await this.parts.edges.update(edgeId, (edge) => {
      edge.lastContact = now;
      edge.applyRate = stats.reduce((sum, s) => sum + s.records, 0) / 10;
    });
    await this.afterCommit(
      edgeId,
      result.applied.map((entry) => entry.record),
      served,
    );
  }

  /** The device, when this edge serves it: an edge's token speaks for its own devices only. */
  private async served(edgeId: string, deviceId: string): Promise<DeviceRecord | undefined> {
    const device = await this.parts.registry.find(deviceId);
    return device?.edge === edgeId ? device : undefined;
  }

  /** Consumers that do not share the transaction: live streams, cloud twins. */
  private async afterCommit(edgeId: string, records: UplinkRecord[], served: ReadonlyMap<string, DeviceRecord>): Promise<void> {
    const samples = new Map<DeviceRecord, TelemetrySample[]>();
    for (const record of records) {
      if (record.kind === 'telemetry') {
        const device = served.get(record.deviceId);
        if (!device) continue;
        const list = samples.get(device) ?? [];
        list.push({ deviceId: device.id, deviceUid: device.uid, ts: record.ts, values: record.values });
        samples.set(device, list);
      } else if (record.kind === 'event') {
        const device = served.get(record.deviceId);
        if (!device) continue;
        const { kind: _kind, ...event } = record;
        this.parts.bus.emit('event.accepted', { device, event: { ...event, deviceUid: device.uid }, source: 'edge' });
      } else if (record.kind === 'invocation') {
        const invocation = record.invocation as {
          deviceId?: string;
          idempotencyKey?: string;
          status: InvocationStatus;
          output?: JsonValue;
          error?: string;
          completedAt?: number;
        };
        const device = invocation.deviceId === undefined ? undefined : served.get(invocation.deviceId);
        if (device && invocation.idempotencyKey?.startsWith(CLOUD_INVOCATION_PREFIX)) {
          await this.parts.commands.completeRemotely(invocation.idempotencyKey.slice(CLOUD_INVOCATION_PREFIX.length), device, invocation);
        }
      } else if (record.kind === 'twin') {
        const device = served.get(record.deviceId);
        if (!device) continue;
        if (record.section === 'reported') {
          await this.parts.twins.report(device, record.values as Record<string, JsonValue>, record.ts, 'device');
        } else {
          await this.parts.twins.setDesired(device, {
            values: record.values,
            expectedVersion: undefined,
            actor: `edge:${edgeId}/${record.actor}`,
          });
        }
      }
    }
    for (const [device, list] of samples) this.parts.bus.emit('telemetry.accepted', { device, samples: list, source: 'edge' });
  }

  heartbeat(edgeId: string, heartbeat: EdgeHeartbeat): Promise<void> {
    return this.track(() => this.recordHeartbeat(edgeId, heartbeat));
  }

  private async recordHeartbeat(edgeId: string, heartbeat: EdgeHeartbeat): Promise<void> {
    await this.parts.edges.update(edgeId, (edge) => {
      edge.heartbeat = heartbeat;
      edge.lastContact = this.parts.now();
    });
    // Level-triggered safety net: a change no event announced (an agent deployed through the
    // API, say) still reaches the edge by its next heartbeat.
    this.schedulePush(edgeId);
  }

  applied(edgeId: string, version: number, results: ReconcileResult[]): Promise<void> {
    return this.track(() => this.recordApplied(edgeId, version, results));
  }

  private async recordApplied(edgeId: string, version: number, results: ReconcileResult[]): Promise<void> {
    await this.parts.edges.update(edgeId, (edge) => {
      edge.config.appliedVersion = version;
      edge.config.results = results;
      edge.lastContact = this.parts.now();
    });
  }

  private schedulePush(edgeId: string): void {
    if (this.pushTimers.has(edgeId) || this.stopped) return;
    const timer = setTimeout(() => {
      this.pushTimers.delete(edgeId);
      this.track(() => this.pushConfig(edgeId, false)).catch((error: Error) =>
        this.parts.logger.error({ edge: edgeId, err: error.message }, 'config push failed'),
      );
    }, 50);
    timer.unref();
    this.pushTimers.set(edgeId, timer);
  }

  /** The desired configuration of an edge, as a new version when its content changed. */
  async configFor(edgeId: string): Promise<EdgeConfig> {
    const { registry, devices, models, agents, twins } = this.parts;
    const served: DeviceRecord[] = [];
    for await (const page of registry.all({ edge: edgeId })) served.push(...page);
    const modelVersions = new Map<string, ThingModelVersion>();
    for (const device of served) {
      const key = `${device.model}@${device.modelVersion}`;
      if (!modelVersions.has(key)) modelVersions.set(key, await models.get(device.model, device.modelVersion));
    }
    const deviceEntries = await Promise.all(
      served.map(async (device) => {
        const { uid: _uid, ...record } = device;
        return { record: json(record), tokenHash: (await devices.tokenHash(device.id)) ?? '' };
      }),
    );
    const desired = await Promise.all(
      served.map(async (device) => {
        const twin = await twins.get(device);
        return {
          deviceId: device.id,
          values: twin.desired,
          setAt: Object.fromEntries(Object.entries(twin.metadata.desired).map(([key, meta]) => [key, meta.ts])),
        };
      }),
    );
    const content: Omit<EdgeConfig, 'version'> = {
      models: [...modelVersions.values()].map((m) => ({ id: m.id, version: m.version, document: json(m.document) })),
      devices: deviceEntries,
      agents: agents
        .list()
        .filter((agent) => agent.deploy?.edges.includes(edgeId))
        .map((agent) => json(agent)),
      desired: desired.filter((d) => Object.keys(d.values).length > 0),
    };
    const hash = createHash('sha256').update(canonicalJson(content)).digest('hex');
    return this.parts.edges.desiredConfig(edgeId, content, hash);
  }

  private async pushConfig(edgeId: string, always: boolean): Promise<void> {
    const session = this.sessions.get(edgeId);
    const config = await this.configFor(edgeId);
    // Compared with what the edge applied, not with the previous desired version: reading the
    // config through the API may already have moved the version without anything being pushed.
    const applied = (await this.parts.edges.get(edgeId)).config.appliedVersion;
    if (session && (always || config.version !== applied)) session.send({ type: 'config', config });
  }
}

// ---- edge side ---------------------------------------------------------------------------------

export interface EdgeSyncOptions {
  cloudUrl: string;
  edgeId: string;
  token: string;
  quotaBytes: number;
  policy: GapReport['policy'];
  drainRatePerSecond: number;
}

export interface EdgeSyncParts {
  outbox: SqliteOutbox;
  registry: DeviceRegistry;
  models: ModelCatalog;
  agents: AgentEngine;
  alarms: AlarmService;
  twins: TwinService;
  commands: CommandService;
  logger: Logger;
  now(): number;
  dataDir: string;
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

/** Accelerators the scheduler may place models on: device nodes present on this machine. */
function detectAccelerators(): string[] {
  const found: string[] = [];
  if (existsSync('/dev/nvidia0')) found.push('nvidia-gpu');
  if (existsSync('/dev/dri/renderD128')) found.push('gpu-render-node');
  if (existsSync('/dev/apex_0')) found.push('coral-tpu');
  return found;
}
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
  parts.alarms.events.on('changed', ({ alarm }) => enqueue([{ kind: 'alarm', alarm: json(alarm) }]));
  parts.commands.events.on('invocation.changed', (invocation) => {
    if (isFinished(invocation.status)) enqueue([{ kind: 'invocation', invocation: json(invocation) }]);
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

  const link = new EdgeLinkClient({
    cloudUrl: options.cloudUrl,
    edgeId: options.edgeId,
    token: options.token,
    outboxEpoch: outbox.epoch,
    onOpen: () => {
      resuming = true;
      linkWasUp = true;
      logger.info({ cloud: options.cloudUrl }, 'cloud link up');
      // The cloud learns the backlog (records, age) when the link returns, not up to 10 s later.
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
  });
  link.start();

  let lastCpu = process.cpuUsage();
  let lastAt = Date.now();
  const sendHeartbeat = () => {
    outbox
      .stats()
      .then((stats) => {
        const cpu = process.cpuUsage(lastCpu);
        const now = Date.now();
        const cpuPercent = ((cpu.user + cpu.system) / 1000 / Math.max(1, now - lastAt)) * 100;
        lastCpu = process.cpuUsage();
        lastAt = now;
        let disk = { freeBytes: 0, totalBytes: 0 };
        try {
          const fs = statfsSync(parts.dataDir);
          disk = { freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize };
        } catch {
          // statfs is unavailable on some platforms: report zeros rather than fail the heartbeat.
        }
        const message: EdgeToCloud = {
          type: 'heartbeat',
          heartbeat: {
            at: parts.now(),
            cpuPercent: Number(cpuPercent.toFixed(1)),
            memory: { usedBytes: totalmem() - freemem(), totalBytes: totalmem(), rssBytes: process.memoryUsage.rss() },
            disk,
            outbox: stats,
            accelerators: detectAccelerators(),
            drainRatePerSecond: sender.drainRate(),
          },
        };
        link.sendJson(message);
      })
      .catch((error: Error) => logger.error({ err: error.message }, 'heartbeat failed'));
  };
  const heartbeat = setInterval(sendHeartbeat, HEARTBEAT_MS);
  heartbeat.unref();

  return {
    appended,
    onDecision: (decision) => enqueue([{ kind: 'decision', decision: json(decision) }]),
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
