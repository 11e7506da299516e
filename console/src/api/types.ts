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
