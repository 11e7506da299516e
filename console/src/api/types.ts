export interface Device {
  id: string;
  name: string;
  model: string;
  modelVersion: number;
  code: string;
  ipv6: string;
  attributes: Record<string, string | number | boolean | null>;
  createdAt: number;
  updatedAt: number;
}

export interface DevicePage {
  items: Device[];
  total: number;
  next: string | null;
}

export interface Presence {
  deviceId: string;
  status: 'online' | 'asleep' | 'offline' | 'unknown' | string;
  connected: boolean;
  lastSeen: number | null;
  nextWindowExpected: number | null;
  network: {
    profile?: string;
    reportIntervalMs?: number;
    keepAliveMs?: number;
    sleepy?: boolean;
    psmPeriodMs?: number;
    edrxCycleMs?: number;
  };
}

export interface ModelSummary {
  id: string;
  title: string;
  latestVersion: number;
  updatedAt: number;
}

export interface DataSchema {
  type?: string;
  title?: string;
  description?: string;
  unit?: string;
  minimum?: number;
  maximum?: number;
  enum?: unknown[];
  readOnly?: boolean;
  writeOnly?: boolean;
  default?: unknown;
  properties?: Record<string, DataSchema>;
  required?: string[];
  items?: DataSchema;
  [key: string]: unknown;
}

export interface ThingModelDocument {
  title?: string;
  description?: string;
  properties?: Record<string, DataSchema>;
  actions?: Record<string, { title?: string; description?: string; input?: DataSchema; output?: DataSchema }>;
  events?: Record<string, { title?: string; description?: string; data?: DataSchema }>;
  [key: string]: unknown;
}

export interface ModelVersion {
  id: string;
  version: number;
  createdAt: number;
  document: ThingModelDocument;
}

export interface Twin {
  deviceId: string;
  version: number;
  reportedVersion: number;
  reported: Record<string, unknown>;
  desired: Record<string, unknown>;
  delta: Record<string, unknown>;
  metadata: { reported: Record<string, unknown>; desired: Record<string, unknown> };
  pendingDelivery: { version: number; keys: string[]; queuedAt: number; expiresAt: number }[];
}

export interface Invocation {
  id: string;
  deviceId: string;
  action: string;
  input: unknown;
  status: 'queued' | 'delivered' | 'succeeded' | 'failed' | 'expired';
  output?: unknown;
  error?: string;
  createdAt: number;
  completedAt?: number;
  note?: string;
}

export interface TelemetryRaw {
  deviceId: string;
  from: number;
  to: number;
  items: { property: string; ts: number; value: unknown }[];
  next: string | null;
}

export interface TelemetryAggregate {
  deviceId: string;
  from: number;
  to: number;
  agg: string;
  bucketMs: number;
  series: { property: string; points: { ts: number; value: number | null; count: number }[] }[];
}

export interface Latest {
  deviceId: string;
  values: Record<string, { value: unknown; ts: number }>;
}

export interface StreamMessage {
  deviceId: string;
  ts: number;
  values: Record<string, unknown>;
}

export type PresenceStatus = 'online' | 'asleep' | 'offline' | 'unknown';

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

export type AgentMode = 'auto' | 'approve' | 'shadow';

/** An agent definition as the node returns it (see src/agents/definition.ts); only what the console reads is typed. */
export interface AgentDefinition {
  id: string;
  name?: string;
  description?: string;
  mode?: AgentMode;
  enabled?: boolean;
  perceive: { devices: { ids?: string[]; model?: string; attributes?: Record<string, string | number | boolean> }; [key: string]: unknown };
  judge: { when?: string; clear?: string; for?: string; [key: string]: unknown };
  act?: { steps: unknown[] };
  alarm?: { type?: string; severity: string; [key: string]: unknown };
  approval?: { expiresIn: string };
  [key: string]: unknown;
}

export interface AgentList {
  items: AgentDefinition[];
  killSwitchEngaged: boolean;
}

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export type DecisionOutcome = 'executed' | 'refused' | 'shadow' | 'awaiting-approval' | 'rejected' | 'expired' | 'failed';

export interface PlannedAction {
  kind: 'set' | 'invoke';
  deviceId: string;
  property?: string;
  value?: JsonValue;
  previous?: JsonValue | null;
  action?: string;
  input?: Record<string, JsonValue>;
  invocationId?: string;
  error?: string;
}

export interface Verification {
  expect: string;
  deadline: number;
  status: 'pending' | 'verified' | 'failed';
  attempts: number;
  checkedAt?: number;
  followUp: string[];
}

export interface DecisionRecord {
  id: string;
  agentId: string;
  deviceId: string;
  ts: number;
  mode: AgentMode;
  trigger: 'condition' | 'missing-data';
  inputs: {
    values: Record<string, { value: JsonValue; ts: number }>;
    windows: Record<string, number | null>;
    detectors: Record<string, { flagged: boolean; score: number | null }>;
    related: Record<string, string | null>;
  };
  judgment: { condition?: string; detectorsFlagged: string[]; summary: string };
  actions: PlannedAction[];
  safety: { passed: string[]; refused?: string };
  outcome: DecisionOutcome;
  approval?: { expiresAt: number; decidedBy?: string; decidedAt?: number; verdict?: 'approved' | 'rejected' | 'expired' };
  verification?: Verification;
  alarmId?: string;
}

export type AlarmState = 'active' | 'acknowledged' | 'cleared';

export interface AlarmHistoryEntry {
  ts: number;
  event: 'raised' | 'repeated' | 'escalated' | 'acknowledged' | 'cleared';
  severity: string;
  by?: string;
  note?: string;
}

export interface Alarm {
  id: string;
  agentId: string;
  deviceId: string;
  type: string;
  severity: 'critical' | 'major' | 'minor' | 'warning' | string;
  state: AlarmState;
  message: string;
  count: number;
  raisedAt: number;
  lastRaisedAt: number;
  decisionId?: string;
  acknowledgedAt?: number;
  acknowledgedBy?: string;
  clearedAt?: number;
  clearedBy?: string;
  history: AlarmHistoryEntry[];
  notifications: { sink: string; event: string; ts: number; status: 'delivered' | 'failed'; attempts: number; error?: string }[];
}

/** What an edge reports about itself every few seconds (see src/edge/records.ts). */
export interface EdgeHeartbeat {
  at: number;
  cpuPercent: number;
  memory: { usedBytes: number; totalBytes: number; rssBytes: number };
  disk: { freeBytes: number; totalBytes: number };
  outbox: { records: number; bytes: number; oldestTs: number | null; lastSeq: number; dropped: number };
  accelerators: string[];
  drainRatePerSecond: number;
}

export interface GapReport {
  policy: 'drop-oldest' | 'downsample' | string;
  at: number;
  devices: Record<string, { dropped: number; from: number; to: number }>;
  total: number;
}

export interface ReconcileResult {
  kind: 'model' | 'device' | 'agent' | 'desired' | 'removal' | string;
  id: string;
  status: 'applied' | 'unchanged' | 'failed' | string;
  reason?: string;
}

/** GET /api/v1/edges items: the edge record with its link state and backlog. */
export interface EdgeStatus {
  id: string;
  name: string;
  createdAt: number;
  appliedSeq: number;
  lastContact: number | null;
  heartbeat: EdgeHeartbeat | null;
  gaps: { reports: number; dropped: number; last: GapReport | null };
  config: { desiredVersion: number; desiredHash?: string | null; appliedVersion: number | null; results: ReconcileResult[] };
  applyRate: number;
  connected: boolean;
  backlog: { records: number; bytes: number; oldestTs: number | null; ageMs: number } | null;
  drainRate: number;
}

/** GET /api/v1/edges/{id}/config: what the cloud wants the edge to run next to what it applied. */
export interface EdgeConfigView {
  desired: {
    version: number;
    models: { id: string; version: number }[];
    devices: { record: { id: string; name?: string; model?: string; [key: string]: unknown } }[];
    agents: { id: string; name?: string; [key: string]: unknown }[];
    desired: { deviceId: string; values: Record<string, unknown>; setAt: Record<string, number> }[];
  };
  applied: { version: number | null; results: ReconcileResult[] };
}

/** One refusal in what a device sent (see the ingest pipeline's reason codes). */
export interface Rejection {
  reason: string;
  message: string;
  property?: string;
  sample?: number;
  value?: unknown;
}

/** GET /api/v1/devices/{id}/errors items: one refused message (or part of one), newest first. */
export interface DeviceErrorReport {
  ts: number;
  source: 'telemetry' | 'twin' | 'action' | string;
  rejections: Rejection[];
}
