import type { EventBus } from '../bus/index.js';
import { type CommandService, type Invocation, parseActionResult } from '../commands/index.js';
import { DomainError } from '../errors/index.js';
import type { IngestEvents, IngestOutcome, IngestPipeline, Rejection } from '../ingest/index.js';
import type { CompiledThingModel } from '../model/index.js';
import type { Logger } from '../observability/index.js';
import type { DeviceRecord, DeviceRegistry, PresenceBook } from '../registry/index.js';
import type { DeviceEvent, JsonValue } from '../telemetry/index.js';
import type { TwinService, TwinView } from '../twin/index.js';
import {
  type BindingHealth,
  type BindingProtocol,
  DEFAULT_BINDING,
  type DesiredState,
  type DeviceBinding,
  type DeviceBindingConfig,
  type DeviceErrorNotice,
  type DeviceMessage,
  type DevicePayload,
  type DeviceUplink,
  type DownlinkRequest,
  isBindingProtocol,
  type MessageSource,
} from './contract.js';

/** The binding a device is reached by; records stored before bindings existed speak MQTT. */
export function bindingOf(device: DeviceRecord): DeviceBindingConfig {
  return (device as { binding?: DeviceBindingConfig }).binding ?? DEFAULT_BINDING;
}

export function protocolOf(device: DeviceRecord): BindingProtocol {
  return bindingOf(device).protocol;
}

/** The action frame a cloud forwards to the edge that serves the device. */
export interface ForwardedAction {
  type: 'invoke';
  id: string;
  deviceId: string;
  action: string;
  input: JsonValue | null;
  timeoutMs: number;
}

/**
 * How a cloud reaches devices an edge serves: through the edge's link. A port, so the gateway
 * knows nothing of the edge sync protocol.
 */
export interface EdgeRoute {
  isConnected(edgeId: string): boolean;
  /** False when the link is down. */
  forwardAction(edgeId: string, frame: ForwardedAction): boolean;
  /** The health of the binding the serving edge runs for the device, as the edge last reported it. */
  bindingHealth?(deviceId: string): BindingHealth | undefined;
}

/** Counts refusals without a device to blame, by protocol (`thingloop_refusals_total`). */
export interface BindingRefusals {
  bindingRefused(protocol: BindingProtocol, reason: string): void;
}

/**
 * The tenant's quotas on device messages (a port: the tenancy module's guard implements it). It
 * throws a DomainError (`too_many_requests`, `details.reason` quota_…) to refuse a message;
 * `grows`: telemetry and events, which add to the tenant's store.
 */
export interface MessageAdmission {
  admitMessage(grows: boolean): void;
}

/** How often a device is told that its messages are being refused by a quota: a flood must not become a flood of notices. */
const QUOTA_NOTICE_INTERVAL_MS = 1_000;

/** What handling a message gave: the routes that answer devices (HTTP) show it to them. */
export interface MessageOutcomes {
  telemetry: IngestOutcome;
  event: { event: DeviceEvent; id: number } | { rejection: Rejection };
  'twin-reported': undefined;
  'twin-get': undefined;
  'action-result': undefined;
  presence: undefined;
}

/** Where a push binding (HTTP) hands a device's messages when it must answer with the outcome. */
export interface DeviceInbox {
  accept<M extends DeviceMessage>(device: DeviceRecord, message: M, source: MessageSource): Promise<MessageOutcomes[M['kind']]>;
}

export interface GatewayDependencies {
  /** A cloud serves the devices without an edge; an edge serves every device in its registry. */
  role: 'cloud' | 'edge';
  registry: Pick<DeviceRegistry, 'find' | 'all' | 'events'>;
  modelOf(device: DeviceRecord): Promise<CompiledThingModel>;
  ingest: Pick<IngestPipeline, 'acceptTelemetry' | 'acceptEvent' | 'checkTwinReport' | 'readBody'>;
  bus: EventBus<IngestEvents>;
  twins: Pick<TwinService, 'get' | 'report' | 'delivered' | 'forget' | 'events'>;
  commands: Pick<CommandService, 'result' | 'deviceAwake'>;
  presence: PresenceBook;
  refusals: BindingRefusals;
  /** Clouds only: actions for devices an edge serves go through its link. */
  edgeRoute?: EdgeRoute;
  /** The tenant's quotas on telemetry, events and twin reports; none when absent. */
  admission?: MessageAdmission;
  logger: Logger;
  now(): number;
}

/** Thrown by `start` when a binding could not start (a port in use…), naming the binding. */
export class BindingStartError extends Error {
  constructor(
    readonly protocol: BindingProtocol,
    readonly reason: unknown,
  ) {
    super(`the ${protocol} binding could not start: ${reason instanceof Error ? reason.message : String(reason)}`);
  }
}

const RECENT_ERRORS_KEPT = 50;

/** Bindings that were started together and stop together. */
export interface RunningBindings {
  /** Stops them, last started first; each lets its messages in flight finish. */
  stop(): Promise<void>;
}

/**
 * Starts the bindings in order, each handing its uplink to `uplink`; if one cannot start, those
 * already running are stopped and the error names the binding.
 */
export async function startBindings(bindings: DeviceBinding[], uplink: DeviceUplink, logger: Logger): Promise<RunningBindings> {
  const started: DeviceBinding[] = [];
  const stop = async () => {
    for (const binding of started.splice(0).reverse()) {
      await binding.stop().catch((error: Error) => logger.error({ protocol: binding.protocol, err: error.message }, 'binding stop failed'));
    }
  };
  for (const binding of bindings) {
    try {
      await binding.start(uplink);
    } catch (error) {
      await stop();
      throw new BindingStartError(binding.protocol, error);
    }
    started.push(binding);
  }
  return { stop };
}

/** The state a device gets on `things/{id}/twin/desired` and the like (key order as devices saw it before). */
export function desiredStateOf(twin: TwinView, now: number): DesiredState {
  return { version: twin.version, desired: twin.desired, delta: twin.delta, ts: now };
}

/** The refusal reason an admission error carries (`details.reason`), or a generic one. */
function reasonOf(error: unknown): string {
  const details = error instanceof DomainError && typeof error.details === 'object' && error.details !== null ? error.details : undefined;
  const reason: unknown = details ? Reflect.get(details, 'reason') : undefined;
  return typeof reason === 'string' ? reason : 'quota';
}

function payloadOf(payload: DevicePayload): Buffer | unknown {
  return 'bytes' in payload ? payload.bytes : payload.body;
}

/** The content type of bytes (a decoded body has none: it skips decoding). */
function contentTypeOf(payload: DevicePayload): string | undefined {
  return 'bytes' in payload ? payload.contentType : undefined;
}

/**
 * The gateway: every binding hands it `DeviceMessage`s, which it turns into ingest, twin and
 * command calls; every downlink (desired state, action, error notice) goes from here to the
 * binding of the device's protocol, or on a cloud to the edge that serves the device. It also
 * keeps what each device sent that was refused (GET /devices/{id}/errors) and tells the
 * fieldbus bindings which devices this node serves.
 */
export class DeviceGateway implements DeviceUplink, DeviceInbox {
  private readonly bindings = new Map<BindingProtocol, DeviceBinding>();
  private ownBindings: RunningBindings | undefined;
  private readonly recent = new Map<string, DeviceErrorNotice[]>();
  /** When each device was last told that a quota refused its message. */
  private readonly quotaNoticeAt = new Map<string, number>();
  /** The protocol each device is attached to (client bindings only). */
  private readonly attached = new Map<string, BindingProtocol>();
  /** Attach and detach run one after another per device, in the order the registry changed. */
  private readonly lifecycle = new Map<string, Promise<void>>();
  private readonly unsubscribe: (() => void)[] = [];

  constructor(private readonly deps: GatewayDependencies) {}

  now(): number {
    return this.deps.now();
  }

  /** Starts every binding (in order) with this gateway as their uplink, then serves the devices through them. */
  async start(bindings: DeviceBinding[]): Promise<void> {
    const started = await startBindings(bindings, this, this.deps.logger);
    this.ownBindings = started;
    await this.serve(bindings);
  }

  /**
   * Serves this gateway's devices through bindings that are already running: on a node with
   * several tenants the listeners are shared, and each tenant's gateway attaches its own devices.
   */
  async serve(bindings: DeviceBinding[]): Promise<void> {
    for (const binding of bindings) {
      if (this.bindings.has(binding.protocol)) throw new Error(`two bindings for ${binding.protocol}`);
      this.bindings.set(binding.protocol, binding);
    }
    this.follow();
    if (bindings.some((binding) => binding.attach)) {
      for await (const page of this.deps.registry.all()) {
        for (const device of page) if (this.serves(device)) this.changed(device);
      }
    }
  }

  /** Stops following the registry and, if this gateway started them, the bindings (last started first). */
  async stop(): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off();
    await Promise.allSettled([...this.lifecycle.values()]);
    await this.ownBindings?.stop();
    this.ownBindings = undefined;
  }

  binding(protocol: BindingProtocol): DeviceBinding | undefined {
    return this.bindings.get(protocol);
  }

  /** Whether this node serves the device (and not an edge on its behalf). */
  serves(device: DeviceRecord): boolean {
    return this.deps.role === 'edge' || device.edge === undefined;
  }

  // --- uplink ----------------------------------------------------------------------------------

  async receive(device: DeviceRecord, message: DeviceMessage, source: MessageSource): Promise<void> {
    await this.accept(device, message, source);
  }

  accept<M extends DeviceMessage>(device: DeviceRecord, message: M, source: MessageSource): Promise<MessageOutcomes[M['kind']]>;
  async accept(device: DeviceRecord, message: DeviceMessage, source: MessageSource): Promise<MessageOutcomes[DeviceMessage['kind']]> {
    const { ingest, presence } = this.deps;
    if (message.kind === 'telemetry' || message.kind === 'event' || message.kind === 'twin-reported') this.admit(device, message, source);
    switch (message.kind) {
      case 'telemetry':
        return ingest.acceptTelemetry(device, payloadOf(message.payload), source, contentTypeOf(message.payload));
      case 'event':
        // Stored (and on an edge queued for the cloud) before the device is answered.
        return ingest.acceptEvent(device, message.name, payloadOf(message.payload), source, contentTypeOf(message.payload));
      case 'twin-reported':
        await this.twinReported(device, message.payload);
        return undefined;
      case 'twin-get':
        await this.sendDesired(device, await this.deps.twins.get(device), isBindingProtocol(source) ? source : protocolOf(device));
        return undefined;
      case 'action-result':
        await this.actionResult(device, message.action, message.payload);
        return undefined;
      case 'presence':
        // Synchronous up to the wake: presence is current before the message that follows is handled.
        if (message.state === 'online') presence.opened(device.id, this.now());
        else if (message.state === 'offline') presence.closed(device.id, this.now());
        else if (message.state === 'uplink') {
          presence.uplink(device.id, this.now());
          if (device.network.sleepy) this.wakeLogged(device);
        } else this.wakeLogged(device);
        return undefined;
    }
  }

  /**
   * Applies the tenant's quotas to a device message. A refusal is counted on the listener it came
   * in on (HTTP counts its own as it answers 429), the device is told on its errors (at most once
   * a second), and the error is thrown for the binding to answer: HTTP 429, CoAP 4.29, MQTT drops
   * the message and acknowledges it.
   */
  private admit(device: DeviceRecord, message: DeviceMessage, source: MessageSource): void {
    try {
      this.deps.admission?.admitMessage(message.kind !== 'twin-reported');
    } catch (error) {
      const reason = reasonOf(error);
      if (source !== 'http' && source !== 'edge') this.deps.refusals.bindingRefused(source, reason);
      const at = this.now();
      const told = this.quotaNoticeAt.get(device.id);
      if (told === undefined || at - told >= QUOTA_NOTICE_INTERVAL_MS) {
        this.quotaNoticeAt.set(device.id, at);
        const notice = message.kind === 'twin-reported' ? 'twin' : message.kind === 'event' ? 'event' : 'telemetry';
        this.reportErrors(device, notice, [{ reason, message: (error as Error).message }]).catch(() => undefined);
      }
      throw error;
    }
  }

  reportError(device: DeviceRecord, message: string, reason = 'binding_error'): Promise<void> {
    return this.reportErrors(device, 'binding', [{ reason, message }]).catch(() => undefined);
  }

  refused(protocol: BindingProtocol, reason: string): void {
    this.deps.refusals.bindingRefused(protocol, reason);
  }

  /** What the device sent that was refused, newest first (the last 50 since the node started). */
  recentErrors(deviceId: string): DeviceErrorNotice[] {
    return this.recent.get(deviceId) ?? [];
  }

  private async twinReported(device: DeviceRecord, payload: DevicePayload): Promise<void> {
    const { values, rejections } = await this.deps.ingest.checkTwinReport(device, payloadOf(payload), contentTypeOf(payload));
    if (Object.keys(values).length > 0) await this.deps.twins.report(device, values, this.now(), 'device');
    if (rejections.length > 0) await this.reportErrors(device, 'twin', rejections);
  }

  private async actionResult(device: DeviceRecord, action: string, payload: DevicePayload): Promise<void> {
    const parsed = this.deps.ingest.readBody(payloadOf(payload), contentTypeOf(payload));
    if (!('body' in parsed)) {
      await this.reportErrors(device, 'action', [parsed]);
      return;
    }
    const result = parseActionResult(parsed.body);
    if (typeof result === 'string') {
      await this.reportErrors(device, 'action', [{ reason: 'invalid_value', message: result }]);
      return;
    }
    const problem = await this.deps.commands.result(device, action, result);
    if (problem) await this.reportErrors(device, 'action', [{ reason: 'invalid_value', message: problem }]);
  }

  /** Remembered for operators and sent to the device (on MQTT, where devices of every protocol may listen, and on its own binding). */
  async reportErrors(
    device: DeviceRecord,
    source: DeviceErrorNotice['source'],
    rejections: DeviceErrorNotice['rejections'],
  ): Promise<void> {
    const notice: DeviceErrorNotice = { ts: this.now(), source, rejections };
    const list = this.recent.get(device.id) ?? [];
    list.unshift(notice);
    if (list.length > RECENT_ERRORS_KEPT) list.length = RECENT_ERRORS_KEPT;
    this.recent.set(device.id, list);
    const request: DownlinkRequest = { kind: 'errors', notice };
    await Promise.all(
      this.announceTargets(device).map((binding) =>
        binding
          .deliver(device, request)
          .catch((error: Error) =>
            this.deps.logger.warn(
              { device: device.id, protocol: binding.protocol, err: error.message },
              'could not deliver an error notice',
            ),
          ),
      ),
    );
  }

  // --- downlink --------------------------------------------------------------------------------

  /**
   * The bindings that get desired state and error notices: MQTT for every device (retained, as
   * devices mix HTTP and MQTT) and the device's own binding when this node serves it.
   */
  private announceTargets(device: DeviceRecord): DeviceBinding[] {
    const targets: DeviceBinding[] = [];
    const mqtt = this.bindings.get('mqtt');
    if (mqtt) targets.push(mqtt);
    const own = this.bindings.get(protocolOf(device));
    if (own && own !== mqtt && this.serves(device)) targets.push(own);
    return targets;
  }

  private async sendDesired(device: DeviceRecord, twin: TwinView, protocol: BindingProtocol): Promise<void> {
    const binding = this.bindings.get(protocol);
    if (!binding) throw new Error(`no ${protocol} binding runs on this node`);
    await binding.deliver(device, { kind: 'desired', state: desiredStateOf(twin, this.now()) });
  }

  /** The desired state changed: every binding that announces it gets the new state. */
  async desiredChanged(device: DeviceRecord, twin: TwinView): Promise<void> {
    const request: DownlinkRequest = { kind: 'desired', state: desiredStateOf(twin, this.now()) };
    const outcomes = await Promise.allSettled(this.announceTargets(device).map((binding) => binding.deliver(device, request)));
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected') {
        const message = (outcome.reason as Error).message;
        this.deps.logger.error({ device: device.id, err: message }, 'desired publish failed');
      }
    }
  }

  /** The device can hear downlink again: deliver what waited for it. */
  private async wake(device: DeviceRecord): Promise<void> {
    const twin = await this.deps.twins.get(device);
    const request: DownlinkRequest = { kind: 'desired', state: desiredStateOf(twin, this.now()) };
    const hearing = this.announceTargets(device).filter((binding) => binding.reachable(device, request));
    if (hearing.length > 0) {
      // A retained message already reached a fresh subscriber; a device that kept its session
      // (or only polls) needs the desired state sent again.
      if (twin.pendingDelivery.length > 0) await Promise.all(hearing.map((binding) => binding.deliver(device, request)));
      await this.deps.twins.delivered(device);
    }
    await this.deps.commands.deviceAwake(device);
  }

  private wakeLogged(device: DeviceRecord): void {
    this.wake(device).catch((error: Error) => this.deps.logger.error({ device: device.id, err: error.message }, 'delivery on wake failed'));
  }

  /**
   * The binding an action goes out on now: the device's own when it reaches the device, else MQTT
   * when the device listens there (devices mix: an HTTP device may also hold an MQTT session).
   */
  private actionBinding(device: DeviceRecord, request: DownlinkRequest): DeviceBinding | undefined {
    const own = this.bindings.get(protocolOf(device));
    if (own?.reachable(device, request)) return own;
    const mqtt = this.bindings.get('mqtt');
    return mqtt && mqtt !== own && mqtt.reachable(device, request) ? mqtt : undefined;
  }

  /** Whether an action reaches the device now (otherwise it waits in the queue). */
  async actionReachable(deviceId: string, action: string): Promise<boolean> {
    const device = await this.deps.registry.find(deviceId);
    if (!device) return false;
    const { edgeRoute } = this.deps;
    if (device.edge && edgeRoute) return edgeRoute.isConnected(device.edge);
    return this.actionBinding(device, { kind: 'invoke', id: '', action, input: undefined, timeoutMs: 0 }) !== undefined;
  }

  /** Sends an action to the device's binding, or to the edge that serves it; rejects when it cannot. */
  async sendAction(invocation: Invocation): Promise<void> {
    const { id, deviceId, action, input, timeoutMs } = invocation;
    const device = await this.deps.registry.find(deviceId);
    if (!device) throw new Error(`device ${deviceId} no longer exists`);
    const { edgeRoute } = this.deps;
    if (device.edge && edgeRoute) {
      if (!edgeRoute.forwardAction(device.edge, { type: 'invoke', id, deviceId, action, input, timeoutMs })) {
        throw new Error(`edge ${device.edge} is not connected`);
      }
      return;
    }
    const request: DownlinkRequest = { kind: 'invoke', id, action, input, timeoutMs };
    const protocol = protocolOf(device);
    // Not reachable any more (a session closed in between): the own binding says why it cannot.
    const binding = this.actionBinding(device, request) ?? this.bindings.get(protocol);
    if (!binding) throw new Error(`no ${protocol} binding runs on this node`);
    await binding.deliver(device, request);
  }

  /** `GET /api/v1/devices/{id}/binding`: the binding's own report, or idle when it has none. */
  health(device: DeviceRecord): BindingHealth {
    const protocol = protocolOf(device);
    const idle: BindingHealth = { protocol, state: 'idle', lastGoodReadTs: null, errors: 0, latencyMs: null };
    // A device an edge serves is reached by that edge's binding, not by this node's.
    const { edgeRoute } = this.deps;
    if (device.edge && edgeRoute) return edgeRoute.bindingHealth?.(device.id) ?? idle;
    return this.bindings.get(protocol)?.health(device) ?? idle;
  }

  // --- which devices the client bindings serve ---------------------------------------------------

  private follow(): void {
    const { registry, bus, twins, logger } = this.deps;
    this.unsubscribe.push(
      bus.on('telemetry.rejected', (event) => {
        this.reportErrors(event.device, 'telemetry', event.rejections).catch(() => undefined);
      }),
      bus.on('event.rejected', (event) => {
        this.reportErrors(event.device, 'event', [event.rejection]).catch(() => undefined);
      }),
      twins.events.on('desired.changed', (event) => {
        this.desiredChanged(event.device, event.twin).catch((error: Error) =>
          logger.error({ err: error.message }, 'desired publish failed'),
        );
      }),
      registry.events.on('registered', (device) => this.changed(device)),
      registry.events.on('updated', (device) => this.changed(device)),
      registry.events.on('removed', (device) => {
        this.deps.presence.forget(device.id);
        // A device registered later under the same id starts clean.
        this.recent.delete(device.id);
        this.quotaNoticeAt.delete(device.id);
        this.schedule(device.id, () => this.detach(device, protocolOf(device)));
        twins.forget(device).catch((error: Error) => logger.error({ err: error.message }, 'cleaning up a deleted device failed'));
      }),
    );
  }

  /** A device was registered, loaded or changed: attached to its client binding if this node serves it, detached elsewhere. */
  private changed(device: DeviceRecord): void {
    this.schedule(device.id, async () => {
      const binding = this.bindings.get(protocolOf(device));
      const wanted = this.serves(device) && binding?.attach ? binding : undefined;
      const current = this.attached.get(device.id);
      if (current !== undefined && current !== wanted?.protocol) await this.detach(device);
      if (!wanted?.attach) return;
      const model = await this.deps.modelOf(device);
      await wanted.attach({ device, model });
      this.attached.set(device.id, wanted.protocol);
    });
  }

  /** `fallback`: the binding that may hold state for the device without having attached it (a deleted push device). */
  private async detach(device: DeviceRecord, fallback?: BindingProtocol): Promise<void> {
    // `attached` is this gateway's, so this tenant's: keyed by id alone; the binding is shared and is told the tenant.
    const protocol = this.attached.get(device.id) ?? fallback;
    if (protocol === undefined) return;
    this.attached.delete(device.id);
    await this.bindings.get(protocol)?.detach?.({ tenant: device.tenant, id: device.id });
  }

  private schedule(deviceId: string, step: () => Promise<void>): void {
    const previous = this.lifecycle.get(deviceId) ?? Promise.resolve();
    const next = previous
      .then(step)
      .catch((error: Error) => {
        this.deps.logger.error({ device: deviceId, err: error.message }, 'attaching the device to its binding failed');
        this.deps.registry
          .find(deviceId)
          .then((device) => {
            if (device) this.reportError(device, `the binding could not take the device: ${error.message}`, 'attach_failed');
          })
          .catch(() => undefined);
      })
      .finally(() => {
        if (this.lifecycle.get(deviceId) === next) this.lifecycle.delete(deviceId);
      });
    this.lifecycle.set(deviceId, next);
  }
}
