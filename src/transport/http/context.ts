import type { Duplex } from 'node:stream';
import type { Registry } from 'prom-client';
import type { GuessingBrake } from '../../access/index.js';
import type { AgentEngine, AlarmService } from '../../agents/index.js';
import type { EventBus } from '../../bus/index.js';
import type { CommandService } from '../../commands/index.js';
import type { EdgeConfig, EdgeDirectory, EdgeHeartbeat, ReconcileResult } from '../../edge/index.js';
import type { BindingHealth, DeviceErrorNotice } from '../../gateway/index.js';
import type { IngestEvents } from '../../ingest/index.js';
import type { ModelCatalog } from '../../model/index.js';
import type { Logger, RefusalMetrics } from '../../observability/index.js';
import type { DeviceRecord, DeviceRegistry, Presence } from '../../registry/index.js';
import type { DeviceEventStore, TelemetryStore } from '../../telemetry/index.js';
import type { TwinService } from '../../twin/index.js';
import type { StreamTickets } from './access.js';
import type { HttpBinding } from './binding.js';

/** The cloud's edge hub as the link route drives it. */
export interface EdgeLinkHandler {
  isConnected(edgeId: string): boolean;
  connected(
    edgeId: string,
    session: { send(message: unknown): void; close(code: number, reason: string): void },
    outboxEpoch?: string,
  ): Promise<void>;
  disconnected(edgeId: string, session: { send(message: unknown): void; close(code: number, reason: string): void }): void;
  /** The edge was deleted: close its link if it is up. */
  forget(edgeId: string): void;
  batch(edgeId: string, frame: Buffer): void;
  heartbeat(edgeId: string, heartbeat: EdgeHeartbeat): Promise<void>;
  applied(edgeId: string, version: number, results: ReconcileResult[]): Promise<void>;
  configFor(edgeId: string): Promise<EdgeConfig>;
}

/** What the HTTP API needs from the node; the node builds it, routes only read it. */
export interface HttpApiContext {
  models: ModelCatalog;
  registry: DeviceRegistry;
  /** Where device requests (telemetry, events) go: the HTTP binding, which hands them to the gateway. */
  deviceMessages: Pick<HttpBinding, 'accept'>;
  telemetry: TelemetryStore;
  deviceEvents: DeviceEventStore;
  bus: EventBus<IngestEvents>;
  twins: TwinService;
  commands: CommandService;
  agents: AgentEngine;
  alarms: AlarmService;
  /** Present on cloud nodes: the directory of edges and the hub their links connect to. */
  edges?: { directory: EdgeDirectory; hub: EdgeLinkHandler };
  presence(device: DeviceRecord): Promise<Presence>;
  /** The health of the binding that reaches the device (`GET /devices/{id}/binding`). */
  bindingHealth(device: DeviceRecord): BindingHealth;
  /** Where consumers reach this node's other listeners (Thing Descriptions): the public host when set, and the bound ports. */
  publicEndpoints(): { host?: string; mqttPort?: number; coapPort?: number };
  /** What a device sent that was refused, newest first (bounded, in memory). */
  recentErrors(deviceId: string): DeviceErrorNotice[];
  isAdminKey(secret: string): boolean;
  /** Who may reach what beyond route declarations: the guessing brake, stream tickets, public metrics/docs. */
  access: {
    brake: GuessingBrake;
    tickets: StreamTickets;
    isMetricsToken(secret: string): boolean;
    publicMetrics: boolean;
    publicDocs: boolean;
  };
  refusals: RefusalMetrics & { authFailed(protocol: 'http'): void };
  /** Deadline for receiving a whole request (headers and body). */
  requestTimeoutMs: number;
  metricsRegistry: Registry;
  /** Ready means every part has started and none is shutting down. */
  readiness(): { ready: boolean; checks: Record<string, boolean> };
  logger: Logger;
  now(): number;
  maxPayloadBytes: number;
  /** Node-level facts reported by /api/v1/node (role, version, ports). */
  nodeInfo(): Record<string, unknown>;
  /** MQTT over WebSocket (`/mqtt`): hands each upgraded connection to the embedded broker; no route when absent. */
  mqttOverWebSocket?(stream: Duplex, address: string | undefined): void;
}
