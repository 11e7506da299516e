import { isDeepStrictEqual } from 'node:util';
import { EventBus } from '../bus/index.js';
import { conflict, invalid } from '../errors/index.js';
import type { CompiledThingModel } from '../model/index.js';
import type { DeviceRecord } from '../registry/index.js';
import type { JsonValue } from '../telemetry/index.js';
import { formatDuration } from '../time/index.js';
import { applyDesired, applyReported, emptyTwin, type KeyChange, type TwinState, type TwinView, viewOf } from './twin.js';

export type TwinActor = string;

export interface TwinHistoryEntry {
  deviceId: string;
  ts: number;
  section: 'desired' | 'reported';
  /** Who or what changed it: `api`, `device`, `agent:<id>`, `system`. */
  actor: TwinActor;
  version: number;
  changes: KeyChange[];
  reason?: string;
}

/** Storage port for twins and their history. */
export interface TwinRepository {
  load(deviceUid: number): Promise<TwinState | undefined>;
  saveMany(twins: { deviceUid: number; twin: TwinState }[]): Promise<void>;
  appendHistory(deviceUid: number, entry: TwinHistoryEntry): Promise<void>;
  history(
    deviceUid: number,
    query: { limit: number; before?: number; section?: 'desired' | 'reported' },
  ): Promise<(TwinHistoryEntry & { seq: number })[]>;
  delete(deviceUid: number): Promise<void>;
  /** Twins holding desired changes still waiting for a sleepy device. */
  withPendingDelivery(): Promise<TwinState[]>;
}

export type TwinEvents = {
  /** Desired state changed (or a pending change expired): the device must be told. */
  'desired.changed': { device: DeviceRecord; twin: TwinView; changes: KeyChange[]; actor: TwinActor };
  /** Without the twin's view: building one per telemetry sample cost ~2 % of ingest CPU; `get` reads it. */
  'reported.changed': { device: DeviceRecord; changes: KeyChange[]; actor: TwinActor };
};

export interface TwinDependencies {
  repository: TwinRepository;
  modelOf(device: DeviceRecord): Promise<CompiledThingModel>;
  now(): number;
  /** How long a desired change waits for a sleepy device before it is withdrawn. */
  defaultDeliveryTtlMs: number;
}

export interface DesiredWrite {
  values: Record<string, JsonValue | null>;
  /** The version the writer last saw; a different current version is a conflict. */
  expectedVersion: number | undefined;
  actor: TwinActor;
  /** For sleepy devices: how long the change may wait for a wake window. */
  ttlMs?: number;
}

/**
 * Device twins. Twins live in memory once touched; desired writes and device twin reports are
 * saved at once, telemetry-driven reported values in a batch each second (they are also in
 * the telemetry store, so a crash loses nothing that cannot be rebuilt).
 */
export class TwinService {
  readonly events = new EventBus<TwinEvents>();
  private readonly twins = new Map<number, TwinState>();
  private readonly loading = new Map<number, Promise<TwinState>>();
  private readonly dirty = new Set<number>();
  private readonly devices = new Map<number, DeviceRecord>();

  constructor(private readonly deps: TwinDependencies) {}

  private async twinOf(device: DeviceRecord): Promise<TwinState> {
    this.devices.set(device.uid, device);
    const cached = this.twins.get(device.uid);
    if (cached) return cached;
    let pending = this.loading.get(device.uid);
    if (!pending) {
      pending = this.deps.repository.load(device.uid).then((stored) => {
        const twin = stored ?? emptyTwin(device.id);
        this.twins.set(device.uid, twin);
        this.loading.delete(device.uid);
        return twin;
      });
      this.loading.set(device.uid, pending);
    }
    return pending;
  }

  /**
   * Loads twins whose desired changes still wait for a sleepy device, so they expire on time
   * after a restart even if nothing else touches those twins.
   */
  async resumePending(find: (deviceId: string) => Promise<DeviceRecord | undefined>): Promise<number> {
    let resumed = 0;
    for (const twin of await this.deps.repository.withPendingDelivery()) {
      const device = await find(twin.deviceId);
      if (!device || this.twins.has(device.uid)) continue;
      this.twins.set(device.uid, twin);
      this.devices.set(device.uid, device);
      resumed++;
    }
    return resumed;
  }

  async get(device: DeviceRecord): Promise<TwinView> {
    return viewOf(await this.twinOf(device));
  }

  async setDesired(device: DeviceRecord, write: DesiredWrite): Promise<TwinView> {
    const model = await this.deps.modelOf(device);
    const problems: { property: string; reason: string; message: string }[] = [];
    for (const [key, value] of Object.entries(write.values)) {
      const property = model.properties.get(key);
      if (!property) {
        problems.push({
          property: key,
          reason: 'unknown_property',
          message: `model "${model.id}" v${model.version} has no property "${key}"`,
        });
      } else if (!property.writable) {
        problems.push({ property: key, reason: 'read_only', message: `${key} is readOnly in the model: it can be reported, not desired` });
      } else if (value !== null) {
        const problem = property.check(value);
        if (problem) problems.push({ property: key, reason: problem.reason, message: `${key} ${problem.message}` });
      }
    }
    if (problems.length > 0) throw invalid(`desired state refused: ${problems.map((p) => p.message).join('; ')}`, problems);

    const twin = await this.twinOf(device);
    if (write.expectedVersion !== undefined && write.expectedVersion !== twin.version) {
      throw conflict(
        `twin of "${device.id}" is at version ${twin.version}, not ${write.expectedVersion}: read it again and reapply your change`,
        {
          currentVersion: twin.version,
        },
      );
    }
    const previous = Object.fromEntries(Object.keys(write.values).map((key) => [key, twin.desired[key] ?? null]));
    const at = this.deps.now();
    const changes = applyDesired(twin, write.values, write.actor, at);
    if (changes.length === 0) return viewOf(twin);
    if (device.network.sleepy) {
      const changed = Object.fromEntries(changes.map((c) => [c.key, c.new as JsonValue]));
      twin.pending.push({
        version: twin.version,
        values: changed,
        previous: Object.fromEntries(changes.map((c) => [c.key, previous[c.key] ?? null])),
        queuedAt: at,
        expiresAt: at + (write.ttlMs ?? this.deps.defaultDeliveryTtlMs),
      });
    }
    await this.persist(device, twin, { section: 'desired', actor: write.actor, changes });
    const view = viewOf(twin);
    this.events.emit('desired.changed', { device, twin: view, changes, actor: write.actor });
    return view;
  }

  /** Values the device reported: from telemetry (batched save) or its twin/reported topic (saved now). */
  async report(device: DeviceRecord, values: Record<string, JsonValue>, ts: number, actor: 'telemetry' | 'device'): Promise<KeyChange[]> {
    const twin = await this.twinOf(device);
    const changes = applyReported(twin, values, ts);
    if (changes.length === 0) return changes;
    if (actor === 'device') {
      await this.persist(device, twin, { section: 'reported', actor, changes });
    } else {
      this.dirty.add(device.uid);
    }
    this.events.emit('reported.changed', { device, changes, actor });
    return changes;
  }

  /** The device is awake and listening: its pending desired changes count as delivered. */
  async delivered(device: DeviceRecord): Promise<void> {
    const twin = this.twins.get(device.uid) ?? (device.network.sleepy ? await this.twinOf(device) : undefined);
    if (!twin || twin.pending.length === 0) return;
    twin.pending = [];
    await this.deps.repository.saveMany([{ deviceUid: device.uid, twin }]);
  }

  /** Withdraws desired changes whose device did not wake in time; returns how many expired. */
  async expireDue(): Promise<number> {
    const now = this.deps.now();
    let expired = 0;
    for (const [uid, twin] of this.twins) {
      const due = twin.pending.filter((p) => p.expiresAt <= now);
      if (due.length === 0) continue;
      const device = this.devices.get(uid);
      if (!device) continue;
      const queued = twin.pending;
      twin.pending = twin.pending.filter((p) => p.expiresAt > now);
      for (const entry of due) {
        // Withdraw only what still holds the expired value (null: a removal); later writes win.
        const revert: Record<string, JsonValue | null> = {};
        for (const [key, value] of Object.entries(entry.values)) {
          if (isDeepStrictEqual(twin.desired[key] ?? null, value)) {
            revert[key] = entry.previous[key] ?? null;
          } else {
            // A later pending change replaced this value; if that one is withdrawn too, it must
            // revert past this withdrawn value, to what stood before it.
            const later = queued.find((p) => p.version > entry.version && key in p.values);
            if (later) later.previous[key] = entry.previous[key] ?? null;
          }
        }
        const changes = applyDesired(twin, revert, 'system', now);
        const reason = `device asleep: not delivered within ${formatDuration(entry.expiresAt - entry.queuedAt)} (queued as version ${entry.version})`;
        await this.persist(device, twin, { section: 'desired', actor: 'system', changes, reason });
        if (changes.length > 0) this.events.emit('desired.changed', { device, twin: viewOf(twin), changes, actor: 'system' });
        expired++;
      }
    }
    return expired;
  }

  private async persist(
    device: DeviceRecord,
    twin: TwinState,
    entry: { section: 'desired' | 'reported'; actor: TwinActor; changes: KeyChange[]; reason?: string },
  ): Promise<void> {
    this.dirty.delete(device.uid);
    await this.deps.repository.saveMany([{ deviceUid: device.uid, twin }]);
    const version = entry.section === 'desired' ? twin.version : twin.reportedVersion;
    await this.deps.repository.appendHistory(device.uid, { deviceId: device.id, ts: this.deps.now(), version, ...entry });
  }

  async history(device: DeviceRecord, query: { limit: number; before?: number; section?: 'desired' | 'reported' }) {
    return this.deps.repository.history(device.uid, query);
  }

  /** Saves twins whose reported state changed through telemetry since the last flush. */
  async flush(): Promise<void> {
    if (this.dirty.size === 0) return;
    const batch = [...this.dirty].flatMap((uid) => {
      const twin = this.twins.get(uid);
      return twin ? [{ deviceUid: uid, twin }] : [];
    });
    this.dirty.clear();
    await this.deps.repository.saveMany(batch);
  }

  async forget(device: DeviceRecord): Promise<void> {
    this.twins.delete(device.uid);
    this.dirty.delete(device.uid);
    this.devices.delete(device.uid);
    await this.deps.repository.delete(device.uid);
  }
}
