import type { CompiledThingModel } from '../model/index.js';
import type { BindingProtocol, DeviceRecord, FleetDeviceRef } from '../registry/index.js';
import type { JsonValue } from '../telemetry/index.js';

/**
 * The device binding contract. Every protocol a device can speak (MQTT, HTTP, CoAP, Modbus TCP,
 * OPC UA, Sparkplug B) is a binding: it turns its protocol into `DeviceMessage`s for the gateway
 * (which hands them to ingest, the twin and commands) and takes the same `DownlinkRequest`s back.
 * Modelled on node-wot's ProtocolClient/ProtocolServer and Home Assistant's integration contract:
 * nothing above this line knows which protocol a device speaks.
 */

// Protocol-neutral binding types live with the device records that carry them (the registry);
// re-exported here so the gateway's face keeps offering them.
export {
  BINDING_PROTOCOLS,
  type BindingParameter,
  type BindingProtocol,
  DEFAULT_BINDING,
  type DeviceBindingConfig,
  isBindingProtocol,
} from '../registry/index.js';

/**
 * What a device sent. Bytes are decoded by the codec registered for their content type (JSON when
 * none is given); a binding that reads structured values itself (a register map, an OPC UA
 * variant, a Sparkplug metric) hands over the decoded body.
 */
export type DevicePayload = { bytes: Buffer; contentType?: string } | { body: unknown };

/** Uplink: the same messages whatever the protocol. */
export type DeviceMessage =
  /** `{"ts"?, ...values}` or a batch of them, as on `things/{id}/telemetry`. */
  | { kind: 'telemetry'; payload: DevicePayload }
  | { kind: 'event'; name: string; payload: DevicePayload }
  | { kind: 'twin-reported'; payload: DevicePayload }
  /** The device asks for its desired state (answered with a `desired` downlink). */
  | { kind: 'twin-get' }
  /** `{"id", "output"}` or `{"id", "error"}`. */
  | { kind: 'action-result'; action: string; payload: DevicePayload }
  /**
   * Session and reachability changes: `online`/`offline` for sessions and fieldbus peers,
   * `uplink` for any traffic (a sleepy device's window opens), `listening` when the device can
   * hear downlink again (queued desired changes and actions are delivered).
   */
  | { kind: 'presence'; state: 'online' | 'offline' | 'uplink' | 'listening' };

/** Which listener or poller a message came through: a label on metrics and on ingest events. */
export type MessageSource = BindingProtocol | 'edge';

/** The desired state a device gets (retained on MQTT, observed on CoAP, written to a PLC). */
export interface DesiredState {
  version: number;
  desired: Record<string, JsonValue>;
  delta: Record<string, JsonValue>;
  ts: number;
}

export interface DeviceErrorNotice {
  ts: number;
  source: 'telemetry' | 'event' | 'twin' | 'action' | 'binding';
  rejections: { reason: string; message: string; property?: string }[];
}

/** Downlink: the same requests whatever the protocol. */
export type DownlinkRequest =
  | { kind: 'desired'; state: DesiredState }
  | { kind: 'invoke'; id: string; action: string; input: JsonValue | undefined; timeoutMs: number }
  | { kind: 'errors'; notice: DeviceErrorNotice };

/** `GET /api/v1/devices/{id}/binding`. */
export interface BindingHealth {
  protocol: BindingProtocol;
  /** connected: a live session or link; polling: the node reads it on a schedule; unreachable: reads or the session fail; idle: nothing heard yet. */
  state: 'connected' | 'polling' | 'unreachable' | 'idle';
  lastGoodReadTs: number | null;
  /** Failed reads, writes and refused frames since the binding attached. */
  errors: number;
  /** Round trip of the last good read (fieldbus) or null where the device pushes. */
  latencyMs: number | null;
  lastError?: { ts: number; message: string };
}

/** What a binding hands uplink to: the gateway. */
export interface DeviceUplink {
  /** Resolves once the message is durable (telemetry stored, event stored, result recorded). */
  receive(device: DeviceRecord, message: DeviceMessage, source: MessageSource): Promise<void>;
  /**
   * A binding-level problem (a PLC exception, a Bad status, an unknown alias, a refused topic) for
   * the device's error list. It may return a promise that settles once the notice has gone out to
   * the device (never rejects): the MQTT broker waits for it before it closes a refused connection.
   */
  reportError(device: DeviceRecord, message: string, reason?: string): void | Promise<void>;
  /**
   * Counts a refusal or fault that has no device to blame (a malformed frame, an unknown client, an
   * unreachable peer): `thingloop_refusals_total{listener: protocol, reason}` in `/metrics`.
   */
  refused(protocol: BindingProtocol, reason: string): void;
  now(): number;
}

/** A device this node serves through a binding, with the compiled model its forms come from. */
export interface AttachedDevice {
  device: DeviceRecord;
  model: CompiledThingModel;
}

/**
 * One protocol. Servers (MQTT, HTTP, CoAP) are reached by devices; clients (Modbus, OPC UA) reach
 * devices and are told which ones through attach/detach. A downlink request is only delivered to
 * the binding of the device's protocol.
 */
export interface DeviceBinding {
  readonly protocol: BindingProtocol;
  start(uplink: DeviceUplink): Promise<void>;
  /** Stops listening or polling; messages in flight finish first. */
  stop(): Promise<void>;
  /** The node serves this device now (registered, loaded at start, its model or binding changed). */
  attach?(attached: AttachedDevice): Promise<void>;
  /**
   * The device was deleted or moved to another protocol or node. Named by tenant and id: one
   * binding serves every tenant, and two tenants' devices of one id are two devices.
   */
  detach?(device: FleetDeviceRef): Promise<void>;
  /** Whether a downlink of this kind reaches the device now (an action is queued otherwise). */
  reachable(device: DeviceRecord, request: DownlinkRequest): boolean;
  /** Delivers a downlink; rejects when it could not (the gateway reports it). */
  deliver(device: DeviceRecord, request: DownlinkRequest): Promise<void>;
  health(device: DeviceRecord): BindingHealth | undefined;
}
