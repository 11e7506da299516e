/**
 * What the node's HTTP API returns, as the console reads it. Domain records come straight from the
 * server's modules (type-only imports, erased at build); only what the API adds, drops or reshapes
 * on the way to JSON is written here.
 */
import type { AgentDefinition } from '../../../src/agents/index.js';
import type { Invocation as InvocationRecord } from '../../../src/commands/index.js';
import type { EdgeConfig, EdgeRecord, GapReport, OutboxStats } from '../../../src/edge/index.js';
import type { ThingModel, ThingModelVersion } from '../../../src/model/index.js';
import type {
  DeviceRecord,
  DevicePage as DeviceRecordPage,
  NetworkProfile,
  Presence as PresenceState,
  PresenceStatus,
} from '../../../src/registry/index.js';
import type {
  AggregateFunction,
  AggregateSeries,
  DeviceEventPage as DeviceEventRecordPage,
  RawPage,
  StoredValue,
  TelemetrySample,
} from '../../../src/telemetry/index.js';

export type {
  AgentDefinition,
  AgentMode,
  Alarm,
  AlarmHistoryEntry,
  AlarmState,
  DecisionOutcome,
  DecisionRecord,
  PlannedAction,
  Verification,
} from '../../../src/agents/index.js';
export type { EdgeHeartbeat, GapReport, ReconcileResult } from '../../../src/edge/index.js';
export type { BindingHealth } from '../../../src/gateway/index.js';
export type { DeviceErrorReport, Rejection } from '../../../src/ingest/index.js';
export type { DataSchema, ModelSummary } from '../../../src/model/index.js';
export type { PresenceStatus } from '../../../src/registry/index.js';
export type { JsonValue, StoredDeviceEvent } from '../../../src/telemetry/index.js';
export type { TwinView as Twin } from '../../../src/twin/index.js';

/** A device as the API shows it: the internal surrogate number stays on the node. */
export type Device = Omit<DeviceRecord, 'uid'>;

export type DevicePage = Omit<DeviceRecordPage, 'items'> & { items: Device[] };

/** GET /api/v1/devices/{id}/presence: the presence with the device id and its network profile. */
export type Presence = PresenceState & { deviceId: string; network: NetworkProfile };

export type ThingModelDocument = ThingModel;

export type ModelVersion = ThingModelVersion;

/** An invocation with what the action endpoint adds: a note on why it is queued, and whether it was a replay. */
export type Invocation = InvocationRecord & { note?: string; replayed?: boolean };

/** GET …/telemetry without agg: a page of raw values; the position to resume at travels as an opaque cursor. */
export type TelemetryRaw = Omit<RawPage, 'next'> & { deviceId: string; from: number; to: number; next: string | null };

/** GET …/telemetry with agg/bucket: one series of buckets per property. */
export interface TelemetryAggregate {
  deviceId: string;
  from: number;
  to: number;
  agg: AggregateFunction;
  bucketMs: number;
  series: AggregateSeries[];
}

export interface Latest {
  deviceId: string;
  values: Record<string, Pick<StoredValue, 'value' | 'ts'>>;
}

/** GET …/events: a page of stored events, newest first; the position to continue at travels as a string cursor. */
export type DeviceEventPage = Omit<DeviceEventRecordPage, 'next'> & { deviceId: string; next: string | null };

/** One message of a device's live telemetry stream. */
export type StreamMessage = Omit<TelemetrySample, 'deviceUid'>;

export type PresenceCounts = Record<PresenceStatus, number>;

/** A group of devices (those behind one edge, or those on the cloud directly) split by presence. */
export interface PresenceSplit extends PresenceCounts {
  total: number;
}

export interface DeviceSummary {
  total: number;
  byModel: Record<string, number>;
  byPresence: PresenceCounts;
  /** Per edge id; an edge that serves no device is absent. */
  byEdge: Record<string, PresenceSplit>;
  /** Devices with no edge. */
  direct: PresenceSplit;
}

export interface AgentList {
  items: AgentDefinition[];
  killSwitchEngaged: boolean;
}

/** GET /api/v1/edges items: the edge record with its link state and backlog. */
export type EdgeStatus = EdgeRecord & {
  connected: boolean;
  /** From the last heartbeat's outbox, with the age of the oldest record; null before the first heartbeat. */
  backlog: (Pick<OutboxStats, 'records' | 'bytes' | 'oldestTs'> & { ageMs: number }) | null;
  drainRate: number;
};

/** GET /api/v1/edges/{id}/gaps: the edge's gap reports, newest first. */
export interface EdgeGaps {
  items: GapReport[];
}

/** GET /api/v1/edges/{id}/config: what the cloud wants the edge to run (credential hashes left out) next to what it applied. */
export interface EdgeConfigView {
  desired: Omit<EdgeConfig, 'devices'> & { devices: Omit<EdgeConfig['devices'][number], 'tokenHash'>[] };
  applied: { version: EdgeRecord['config']['appliedVersion']; results: EdgeRecord['config']['results'] };
}
