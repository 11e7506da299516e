import type { Registry } from 'prom-client';
import type { AgentEngine, AlarmService } from '../../agents/index.js';
import type { EventBus } from '../../bus/index.js';
import type { CommandService } from '../../commands/index.js';
import type { IngestEvents, IngestPipeline } from '../../ingest/index.js';
import type { ModelCatalog } from '../../model/index.js';
import type { Logger } from '../../observability/index.js';
import type { DeviceRecord, DeviceRegistry, Presence } from '../../registry/index.js';
import type { TelemetryStore } from '../../telemetry/index.js';
import type { TwinService } from '../../twin/index.js';

/** What the HTTP API needs from the node; the node builds it, routes only read it. */
export interface HttpApiContext {
  models: ModelCatalog;
  registry: DeviceRegistry;
  ingest: IngestPipeline;
  telemetry: TelemetryStore;
  bus: EventBus<IngestEvents>;
  twins: TwinService;
  commands: CommandService;
  agents: AgentEngine;
  alarms: AlarmService;
  presence(device: DeviceRecord): Promise<Presence>;
  isAdminKey(secret: string): boolean;
  metricsRegistry: Registry;
  /** Ready means every part has started and none is shutting down. */
  readiness(): { ready: boolean; checks: Record<string, boolean> };
  logger: Logger;
  now(): number;
  maxPayloadBytes: number;
  /** Node-level facts reported by /api/v1/node (role, version, ports). */
  nodeInfo(): Record<string, unknown>;
  onAuthFailure(): void;
}
