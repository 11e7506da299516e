import { createHash } from 'node:crypto';
import type { AgentEngine } from '../agents/index.js';
import type { EventBus } from '../bus/index.js';
import type { CommandService, InvocationStatus } from '../commands/index.js';
import type { BindingHealth } from '../gateway/index.js';
import type { IngestEvents } from '../ingest/index.js';
import { canonicalJson, type ModelCatalog, type ThingModelVersion } from '../model/index.js';
import type { Logger, RefusalMetrics } from '../observability/index.js';
import type { DeviceRecord, DeviceRegistry, DeviceRepository } from '../registry/index.js';
import type { JsonValue, TelemetrySample } from '../telemetry/index.js';
import type { TwinService } from '../twin/index.js';
import type { EdgeDirectory } from './directory.js';
import { jsonRecord } from './json.js';
import {
  bindingHealthOf,
  CLOUD_INVOCATION_PREFIX,
  type CloudToEdge,
  deviceIdOf,
  type EdgeConfig,
  type EdgeHeartbeat,
  type ReconcileResult,
  type UplinkRecord,
} from './records.js';
import { decodeBatch } from './uplink.js';

/**
 * One edge's open link as the hub sees it: the node's HTTP transport builds it from the
 * WebSocket the edge connected with.
 */
export interface EdgeLinkSession {
  send(message: CloudToEdge): void;
  close(code: number, reason: string): void;
}

/** Where the hub reads device credentials: the registry's storage port, as far as it needs it. */
export type DeviceCredentials = Pick<DeviceRepository, 'tokenHash'>;

export interface EdgeHubParts {
  edges: EdgeDirectory;
  registry: DeviceRegistry;
  /** Device token hashes travel with the devices an edge serves, so the edge can authenticate them. */
  credentials: DeviceCredentials;
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
  /** Per device, the health of the binding its edge runs for it, as the edge's last heartbeat said. */
  private readonly bindings = new Map<string, { edgeId: string; health: BindingHealth }>();
  /** Work started by a link frame or a timer; `stop` waits for it so nothing outlives the store. */
  private readonly inFlight = new Set<Promise<unknown>>();
  private stopped = false;

  constructor(private readonly parts: EdgeHubParts) {
    const { registry, twins } = parts;
    const touch = (device: DeviceRecord) => device.edge && this.schedulePush(device.edge);
    // A device deleted or moved to another edge (or to the cloud) no longer has the old edge's figures.
    const moved = (device: DeviceRecord) => {
      if (this.bindings.get(device.id)?.edgeId !== device.edge) this.bindings.delete(device.id);
    };
    registry.events.on('registered', touch);
    registry.events.on('updated', touch);
    registry.events.on('updated', moved);
    registry.events.on('removed', touch);
    registry.events.on('removed', (device) => this.bindings.delete(device.id));
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

  /**
   * The health of the binding an edge runs for one of its devices, as of that edge's last
   * heartbeat; undefined when the device is not served by an edge or its edge has not said yet.
   * After the link drops it keeps the last figures (their `lastGoodReadTs` ages).
   */
  edgeBindingHealth(deviceId: string): BindingHealth | undefined {
    return this.bindings.get(deviceId)?.health;
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
    for (const [deviceId, entry] of this.bindings) if (entry.edgeId === edgeId) this.bindings.delete(deviceId);
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
    // Binding figures are kept in memory only: they are stale by the next heartbeat anyway, and a
    // large site's list does not belong in the edge's stored record. What is no object (a broken
    // edge's) is stored as it came, as before.
    let figures = heartbeat;
    if (typeof heartbeat === 'object' && heartbeat !== null && Object.hasOwn(heartbeat, 'bindings')) {
      const { bindings, ...rest } = heartbeat;
      figures = rest;
      await this.recordBindings(edgeId, bindings);
    }
    await this.parts.edges.update(edgeId, (edge) => {
      edge.heartbeat = figures;
      edge.lastContact = this.parts.now();
    });
    // Level-triggered safety net: a change no event announced (an agent deployed through the
    // API, say) still reaches the edge by its next heartbeat.
    this.schedulePush(edgeId);
  }

  /**
   * Takes what the edge says about its bindings: only for devices it serves (an edge's token
   * speaks for its own devices only), and only entries of the right shape (the others are counted
   * as refusals, and the device has no figures until a good one comes). A heartbeat carries what
   * changed and a share of the rest (see BindingHealthReport): devices it leaves out keep theirs.
   */
  private async recordBindings(edgeId: string, reported: unknown): Promise<void> {
    const isMap = typeof reported === 'object' && reported !== null && !Array.isArray(reported);
    const entries = isMap ? reported : {};
    const fresh = new Map<string, BindingHealth>();
    const refused: string[] = [];
    let malformed = isMap ? 0 : 1;
    for (const [deviceId, entry] of Object.entries(entries)) {
      if (!(await this.served(edgeId, deviceId))) continue;
      const health = bindingHealthOf(entry);
      if (health) fresh.set(deviceId, health);
      else {
        malformed++;
        refused.push(deviceId);
      }
    }
    for (const deviceId of refused) this.bindings.delete(deviceId);
    for (const [deviceId, health] of fresh) this.bindings.set(deviceId, { edgeId, health });
    if (malformed > 0) {
      this.parts.logger.warn({ edge: edgeId, entries: malformed }, 'malformed binding health in a heartbeat was skipped');
      for (let i = 0; i < malformed; i++) this.parts.refusals.refused('edge-link', 'invalid_request');
    }
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
    const { registry, credentials, models, agents, twins } = this.parts;
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
        return { record: jsonRecord(record), tokenHash: (await credentials.tokenHash(device.id)) ?? '' };
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
      models: [...modelVersions.values()].map((m) => ({ id: m.id, version: m.version, document: jsonRecord(m.document) })),
      devices: deviceEntries,
      agents: agents
        .list()
        .filter((agent) => agent.deploy?.edges.includes(edgeId))
        .map((agent) => jsonRecord(agent)),
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
