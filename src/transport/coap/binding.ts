import type { AddressInfo } from 'node:net';
import { type CoapPacket, type IncomingMessage, ObserveWriteStream, type OutgoingMessage } from 'coap';
import type { GuessingBrake } from '../../access/index.js';
import { DomainError } from '../../errors/index.js';
import type {
  BindingHealth,
  DesiredState,
  DeviceBinding,
  DeviceErrorNotice,
  DeviceMessage,
  DevicePayload,
  DeviceUplink,
  DownlinkRequest,
} from '../../gateway/index.js';
import type { Logger } from '../../observability/index.js';
import { type DeviceRecord, type FleetDeviceRef, type FleetDirectory, fleetKey, PRESENCE_GRACE } from '../../registry/index.js';
import { CoapListener, type EarlyRefusal, type ListenerLimits } from './listener.js';
import { ActionMailbox, type PendingAction } from './mailbox.js';
import {
  CODE_OF_ERROR,
  type CoapResource,
  contentTypeOf,
  isJsonContent,
  pathSegments,
  presentedToken,
  type RawOption,
  routeOf,
  TOKEN_OPTION,
} from './requests.js';

export interface CoapLimits extends ListenerLimits {
  /** Each uplink's durable write (and each credential check) gets this long before the device is told 5.03. */
  requestTimeoutMs: number;
  /**
   * How long after a sleepy device's uplink, or any device's fetch of `things/{id}/actions`, new
   * invocations count as reachable: they wait in the binding for the device's next fetch.
   */
  listenWindowMs: number;
  /** A fetch of an empty action list waits this long for invocations the wake-up is delivering. */
  fetchWaitMs: number;
  maxObserversPerDevice: number;
  maxObservers: number;
  /** Requests being handled at once; beyond it devices get 5.03 and retry. */
  maxInFlight: number;
  /** Invocations held per device for fetching. */
  maxPendingPerDevice: number;
  /** Error notices kept per device for `GET things/{id}/errors`. */
  noticesKept: number;
}

export const DEFAULT_COAP_LIMITS: CoapLimits = {
  maxPayloadBytes: 256 * 1024,
  uploadBudgetBytes: 32 * 1024 * 1024,
  uploadIdleMs: 60_000,
  piggybackReplyMs: 250,
  requestTimeoutMs: 15_000,
  listenWindowMs: 30_000,
  fetchWaitMs: 250,
  maxObserversPerDevice: 8,
  maxObservers: 100_000,
  maxInFlight: 10_000,
  maxPendingPerDevice: 1_000,
  noticesKept: 10,
};

/** The largest datagram read: the payload limit plus room for a header and options, within what UDP carries. */
const DATAGRAM_OVERHEAD_BYTES = 1024;
const MAX_UDP_PAYLOAD = 65_507;

export interface CoapBindingOptions {
  port: number;
  host?: string;
  /** Every tenant's devices: a token says whose device it is (ids repeat across tenants, tokens never do). */
  fleet: Pick<FleetDirectory, 'authenticate' | 'anyWithId'>;
  /** Shared with the node's other listeners: failed logins from one address spend one budget. */
  brake: Pick<GuessingBrake, 'retryAfterMs' | 'failed'>;
  limits?: Partial<CoapLimits>;
  logger: Logger;
}

type ObservedResource = 'twin-desired' | 'actions' | 'errors';

interface Observation {
  resource: ObservedResource;
  stream: ObserveWriteStream;
  /** The desired version this observer last got (twin-desired only): repeats are not sent. */
  version?: number;
}

interface DeviceLine {
  lastHeard: number | null;
  lastGood: number | null;
  /** When the device last fetched its actions (it polls: invocations may wait for it). */
  lastFetch: number | null;
  errors: number;
  lastError?: { ts: number; message: string };
  notices: DeviceErrorNotice[];
}

/** An answer to a device: a CoAP code and a JSON body (errors carry `{"error": reason, "message"}`). */
interface Answer {
  code: string;
  body?: unknown;
}

class RequestTimeout extends Error {}

/** Request codes as method names (RFC 7252 §12.1.1, RFC 8132). */
const METHOD_OF_CODE: Record<string, string> = {
  '0.01': 'GET',
  '0.02': 'POST',
  '0.03': 'PUT',
  '0.04': 'DELETE',
  '0.05': 'FETCH',
  '0.06': 'PATCH',
  '0.07': 'iPATCH',
};

const answerError = (code: string, reason: string, message: string): Answer => ({ code, body: { error: reason, message } });

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RequestTimeout(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

function actionView(action: PendingAction) {
  return { id: action.id, action: action.action, input: action.input, deadline: action.deadline };
}

/**
 * CoAP (RFC 7252, Observe RFC 7641, block-wise RFC 7959) as a device binding: constrained and
 * NB-IoT devices reach `coap://node/things/{id}/…` with their token (option 65003 or `?t=`).
 * Uplinks are answered 2.04 once durable; desired state is observed; invocations wait here for
 * the device to observe or fetch them. No DTLS: no maintained DTLS server exists for Node.
 */
export class CoapBinding implements DeviceBinding {
  readonly protocol = 'coap' as const;
  private readonly limits: CoapLimits;
  private listener: CoapListener | undefined;
  private uplink: DeviceUplink | undefined;
  private boundPort = 0;
  // Every per-device map (lines, observations, waiters, the mailbox) is keyed by tenant and id
  // (fleetKey): one listener serves every tenant, and two tenants' devices of one id are two devices.
  private readonly devices = new Map<string, DeviceLine>();
  private readonly observations = new Map<string, Map<string, Observation>>();
  private observationCount = 0;
  /** GETs of the desired state waiting for the gateway's answer to their twin-get. */
  private readonly desiredWaiters = new Map<string, Set<(state: DesiredState) => void>>();
  /** Fetches of an empty action list waiting for a delivery. */
  private readonly fetchWaiters = new Map<string, Set<() => void>>();
  private readonly mailbox: ActionMailbox;
  private readonly handling = new Set<Promise<void>>();

  constructor(private readonly options: CoapBindingOptions) {
    this.limits = { ...DEFAULT_COAP_LIMITS, ...options.limits };
    this.mailbox = new ActionMailbox(this.limits.maxPendingPerDevice);
  }

  /** The UDP port the binding listens on (the bound one when 0 was asked for). */
  get port(): number {
    return this.boundPort;
  }

  async start(uplink: DeviceUplink): Promise<void> {
    this.uplink = uplink;
    const maxDatagram = Math.min(MAX_UDP_PAYLOAD, this.limits.maxPayloadBytes + DATAGRAM_OVERHEAD_BYTES);
    const listener = new CoapListener(
      {
        admit: (address, bytes) => this.admit(address, bytes, maxDatagram),
        authorizeUpload: (packet, rsinfo) => this.authorizeUpload(packet, rsinfo),
        malformed: (address, why) => {
          uplink.refused('coap', 'malformed_packet');
          this.options.logger.debug({ address, why }, 'coap datagram dropped');
        },
      },
      this.limits,
      () => uplink.now(),
    );
    listener.on('request', (req: IncomingMessage, res: OutgoingMessage | ObserveWriteStream) => this.track(req, res));
    listener.on('error', (error: Error) => this.options.logger.error({ err: error.message }, 'coap socket error'));
    this.boundPort = await listener.open(this.options.port, this.options.host);
    this.listener = listener;
    this.options.logger.info({ port: this.boundPort }, 'coap listening');
  }

  async stop(): Promise<void> {
    const listener = this.listener;
    this.listener = undefined;
    if (!listener) return;
    await listener.shut();
    for (const observations of this.observations.values()) for (const observation of observations.values()) observation.stream.destroy();
    this.observations.clear();
    this.observationCount = 0;
    for (const waiters of this.fetchWaiters.values()) for (const wake of waiters) wake();
    await Promise.allSettled([...this.handling]);
  }

  async detach(device: FleetDeviceRef): Promise<void> {
    const owner = fleetKey(device);
    this.devices.delete(owner);
    this.mailbox.forget(owner);
    for (const observation of this.observations.get(owner)?.values() ?? []) observation.stream.destroy();
  }

  reachable(device: DeviceRecord, request: DownlinkRequest): boolean {
    const owner = fleetKey(device);
    switch (request.kind) {
      case 'desired':
        return this.observes(owner, 'twin-desired') || (this.desiredWaiters.get(owner)?.size ?? 0) > 0;
      case 'invoke':
        return this.observes(owner, 'actions') || this.listening(device, this.uplink?.now() ?? Date.now());
      case 'errors':
        return this.observes(owner, 'errors');
    }
  }

  async deliver(device: DeviceRecord, request: DownlinkRequest): Promise<void> {
    const now = this.uplink?.now() ?? Date.now();
    const owner = fleetKey(device);
    switch (request.kind) {
      case 'desired': {
        for (const resolve of this.desiredWaiters.get(owner) ?? []) resolve(request.state);
        for (const observation of this.observationsOf(owner, 'twin-desired')) {
          if (observation.version === request.state.version) continue;
          observation.version = request.state.version;
          this.notify(owner, observation, request.state);
        }
        // No observer: the state waits in the twin (as for a disconnected MQTT device) until the device asks.
        return;
      }
      case 'invoke': {
        const pending: PendingAction = {
          id: request.id,
          action: request.action,
          input: request.input ?? null,
          deadline: now + request.timeoutMs,
        };
        if (!this.mailbox.put(owner, pending, now)) {
          throw new Error(`${this.limits.maxPendingPerDevice} invocations already wait for ${device.id} to fetch them`);
        }
        const list = this.mailbox.pending(owner, now).map(actionView);
        for (const observation of this.observationsOf(owner, 'actions')) this.notify(owner, observation, list);
        for (const wake of this.fetchWaiters.get(owner) ?? []) wake();
        return;
      }
      case 'errors': {
        const line = this.line(device);
        line.notices.unshift(request.notice);
        if (line.notices.length > this.limits.noticesKept) line.notices.length = this.limits.noticesKept;
        for (const observation of this.observationsOf(owner, 'errors')) this.notify(owner, observation, request.notice);
        return;
      }
    }
  }

  health(device: DeviceRecord): BindingHealth {
    const line = this.devices.get(fleetKey(device));
    const now = this.uplink?.now() ?? Date.now();
    const heardFor = device.network.sleepy ? this.limits.listenWindowMs : device.network.reportIntervalMs * (1 + PRESENCE_GRACE);
    const connected =
      this.observationsOf(fleetKey(device)).length > 0 ||
      (line?.lastHeard !== null && line?.lastHeard !== undefined && now - line.lastHeard <= heardFor);
    return {
      protocol: 'coap',
      state: connected ? 'connected' : 'idle',
      lastGoodReadTs: line?.lastGood ?? null,
      errors: line?.errors ?? 0,
      latencyMs: null,
      ...(line?.lastError ? { lastError: line.lastError } : {}),
    };
  }

  /** Invocations waiting for devices to fetch them (all devices). */
  pendingActions(): number {
    return this.mailbox.size();
  }

  // --- admission -------------------------------------------------------------------------------

  private admit(address: string, bytes: number, maxDatagram: number): boolean {
    const uplink = this.uplink;
    if (!uplink) return false;
    // A braked address is dropped unread: answering a flood (possibly from a spoofed address) would amplify it.
    if (this.options.brake.retryAfterMs(address) > 0) {
      uplink.refused('coap', 'rate_limited');
      return false;
    }
    if (bytes > maxDatagram) {
      uplink.refused('coap', 'packet_too_large');
      this.options.logger.debug({ address, bytes }, 'coap datagram over the size limit dropped');
      return false;
    }
    if (this.handling.size >= this.limits.maxInFlight) {
      uplink.refused('coap', 'busy');
      return false;
    }
    return true;
  }

  /** A block-wise upload starts only with good credentials: strangers cannot make the node hold blocks. */
  private async authorizeUpload(packet: CoapPacket, rsinfo: AddressInfo): Promise<EarlyRefusal | undefined> {
    const options: readonly RawOption[] = packet.options ?? [];
    const route = routeOf(METHOD_OF_CODE[packet.code ?? ''], pathSegments(options));
    // Uploads go to device resources only: anything else is refused before a block is kept.
    if (!('deviceId' in route)) return route;
    const outcome = await this.authenticate(route.deviceId, options, rsinfo.address);
    return 'refusal' in outcome ? outcome.refusal : undefined;
  }

  private async authenticate(
    deviceId: string,
    options: readonly RawOption[],
    address: string,
  ): Promise<{ device: DeviceRecord } | { refusal: EarlyRefusal }> {
    const uplink = this.uplink;
    if (!uplink) return { refusal: { code: '5.03', reason: 'unavailable', message: 'the node is stopping' } };
    const presented = presentedToken(options);
    if (!presented) {
      this.options.brake.failed(address);
      uplink.refused('coap', 'no_token');
      return {
        refusal: {
          code: '4.01',
          reason: 'no_token',
          message: `a device token is needed: CoAP option ${TOKEN_OPTION} or the query parameter t=<token>`,
        },
      };
    }
    const device = await withTimeout(
      this.options.fleet.authenticate(deviceId, presented.token),
      this.limits.requestTimeoutMs,
      'the credential check',
    );
    if (device) return { device };
    this.options.brake.failed(address);
    // Whether the id exists in some tenant only picks the refusal's reason; the answer is the same.
    const known = (await this.options.fleet.anyWithId(deviceId).catch(() => [])).length > 0;
    uplink.refused('coap', known ? 'bad_token' : 'unknown_device');
    this.options.logger.info({ address, ...(known ? { device: deviceId } : {}) }, 'coap request refused: bad device id or token');
    return { refusal: { code: '4.01', reason: 'unauthorized', message: 'bad device id or token' } };
  }

  // --- requests --------------------------------------------------------------------------------

  private track(req: IncomingMessage, res: OutgoingMessage | ObserveWriteStream): void {
    const handled = this.handle(req, res).catch((error: Error) => {
      this.options.logger.error({ err: error.message, url: req.url }, 'coap request failed');
      this.answer(res, answerError('5.00', 'internal_error', 'the request could not be handled'));
    });
    this.handling.add(handled);
    handled.finally(() => this.handling.delete(handled));
  }

  private async handle(req: IncomingMessage, res: OutgoingMessage | ObserveWriteStream): Promise<void> {
    const uplink = this.uplink;
    if (!uplink) return;
    const early = this.listener?.refusalFor(req.rsinfo);
    if (early) {
      if (early.code !== '4.01') uplink.refused('coap', early.reason);
      this.answer(res, answerError(early.code, early.reason, early.message));
      return;
    }
    const options: readonly RawOption[] = req._packet.options ?? [];
    const route = routeOf(req.method, pathSegments(options));
    if (!('deviceId' in route)) {
      uplink.refused('coap', route.reason);
      this.answer(res, answerError(route.code, route.reason, route.message));
      return;
    }
    let outcome: Awaited<ReturnType<CoapBinding['authenticate']>>;
    try {
      outcome = await this.authenticate(route.deviceId, options, req.rsinfo.address);
    } catch (error) {
      uplink.refused('coap', 'unavailable');
      this.answer(res, answerError('5.03', 'unavailable', `credentials could not be checked: ${(error as Error).message}`));
      return;
    }
    if ('refusal' in outcome) {
      this.answer(res, answerError(outcome.refusal.code, outcome.refusal.reason, outcome.refusal.message));
      return;
    }
    const { device } = outcome;
    const line = this.line(device);
    line.lastHeard = uplink.now();
    try {
      const answer = await this.serve(device, route.resource, req, res);
      if (answer) this.answer(res, answer);
    } catch (error) {
      const answer = this.failure(device, error);
      this.answer(res, answer);
    }
  }

  /** Serves an authenticated request; undefined when the answer went out already (an observation). */
  private async serve(
    device: DeviceRecord,
    resource: CoapResource,
    req: IncomingMessage,
    res: OutgoingMessage | ObserveWriteStream,
  ): Promise<Answer | undefined> {
    const observe = req.headers.Observe;
    if (observe === 1) this.unobserve(fleetKey(device), this.observationKey(req));
    const presence = this.send(device, { kind: 'presence', state: 'uplink' });
    switch (resource.kind) {
      case 'telemetry':
      case 'event':
      case 'twin-reported':
      case 'action-result': {
        const payload = this.payloadOf(device, resource, req);
        if ('code' in payload) {
          await presence;
          return payload;
        }
        if (resource.kind === 'action-result') this.answered(device, payload);
        const message: DeviceMessage =
          resource.kind === 'event'
            ? { kind: 'event', name: resource.name, payload }
            : resource.kind === 'action-result'
              ? { kind: 'action-result', action: resource.action, payload }
              : { kind: resource.kind, payload };
        await Promise.all([presence, this.send(device, message)]);
        this.line(device).lastGood = this.uplink?.now() ?? Date.now();
        return { code: '2.04' };
      }
      case 'twin-desired': {
        await presence;
        if (observe === 0 && res instanceof ObserveWriteStream) {
          const observation = this.observe(device, req, res, 'twin-desired');
          if (!observation) return answerError('5.03', 'too_many_observers', 'too many observations: retry later');
          const state = await this.desiredNow(device);
          // The gateway's answer to the twin-get reached this observer already (as its first notification) unless another delivery raced it.
          if (observation.version !== state.version) {
            observation.version = state.version;
            this.notify(fleetKey(device), observation, state);
          }
          this.line(device).lastGood = this.uplink?.now() ?? Date.now();
          return undefined;
        }
        const state = await this.desiredNow(device);
        this.line(device).lastGood = this.uplink?.now() ?? Date.now();
        return { code: '2.05', body: state };
      }
      case 'actions': {
        const line = this.line(device);
        line.lastFetch = this.uplink?.now() ?? Date.now();
        await presence;
        const observation = observe === 0 && res instanceof ObserveWriteStream ? this.observe(device, req, res, 'actions') : undefined;
        await this.send(device, { kind: 'presence', state: 'listening' });
        if (observation) {
          this.notify(
            fleetKey(device),
            observation,
            this.mailbox.pending(fleetKey(device), this.uplink?.now() ?? Date.now()).map(actionView),
          );
          return undefined;
        }
        await this.deliveriesSettled(fleetKey(device));
        return { code: '2.05', body: this.mailbox.pending(fleetKey(device), this.uplink?.now() ?? Date.now()).map(actionView) };
      }
      case 'errors': {
        await presence;
        const notices = this.line(device).notices;
        if (observe === 0 && res instanceof ObserveWriteStream) {
          const observation = this.observe(device, req, res, 'errors');
          if (observation) {
            this.notify(fleetKey(device), observation, notices);
            return undefined;
          }
        }
        return { code: '2.05', body: notices };
      }
    }
  }

  /** The request's payload for the gateway, or the answer that refuses it. */
  private payloadOf(device: DeviceRecord, resource: CoapResource, req: IncomingMessage): DevicePayload | Answer {
    const bytes = req.payload ?? Buffer.alloc(0);
    if (bytes.length > this.limits.maxPayloadBytes) {
      return this.deviceFault(
        device,
        '4.13',
        'payload_too_large',
        `payload is ${bytes.length} bytes; the limit is ${this.limits.maxPayloadBytes}`,
      );
    }
    const contentType = contentTypeOf(req.headers['Content-Format']);
    if (!isJsonContent(contentType)) return contentType === undefined ? { bytes } : { bytes, contentType };
    if (bytes.length === 0) {
      // An event without data is allowed (an event with no data schema), as on MQTT.
      if (resource.kind === 'event') return { bytes };
      return this.deviceFault(device, '4.00', 'malformed_json', `${resource.kind} needs a JSON payload`);
    }
    let body: unknown;
    try {
      body = JSON.parse(bytes.toString('utf8'));
    } catch (error) {
      return this.deviceFault(device, '4.00', 'malformed_json', `payload is not JSON: ${(error as Error).message}`);
    }
    if (resource.kind === 'telemetry' && (body === null || typeof body !== 'object')) {
      return this.deviceFault(device, '4.00', 'not_an_object', 'telemetry is a JSON object {"ts"?, ...values} or an array of them');
    }
    return { body };
  }

  /** A device's bad request: answered with the reason, put on its error list and counted in its health. */
  private deviceFault(device: DeviceRecord, code: string, reason: string, message: string): Answer {
    this.uplink?.reportError(device, message, reason);
    this.noteError(device, message);
    return answerError(code, reason, message);
  }

  private failure(device: DeviceRecord, error: unknown): Answer {
    const message = error instanceof Error ? error.message : String(error);
    this.noteError(device, message);
    if (error instanceof DomainError) return answerError(CODE_OF_ERROR[error.kind] ?? '5.00', error.kind, message);
    if (error instanceof RequestTimeout) {
      this.options.logger.warn({ device: device.id, err: message }, 'coap request timed out');
      return answerError('5.03', 'timeout', `${message}: retry`);
    }
    this.options.logger.error({ device: device.id, err: message }, 'coap device message could not be handled');
    return answerError('5.00', 'not_stored', 'the message could not be stored: retry');
  }

  private noteError(device: DeviceRecord, message: string): void {
    const line = this.line(device);
    line.errors++;
    line.lastError = { ts: this.uplink?.now() ?? Date.now(), message };
  }

  private send(device: DeviceRecord, message: DeviceMessage): Promise<void> {
    const uplink = this.uplink;
    if (!uplink) return Promise.reject(new Error('the coap binding is stopped'));
    return withTimeout(uplink.receive(device, message, 'coap'), this.limits.requestTimeoutMs, `handling ${message.kind}`);
  }

  /** The device's desired state, through the gateway (a twin-get answered with a `desired` delivery). */
  private async desiredNow(device: DeviceRecord): Promise<DesiredState> {
    const owner = fleetKey(device);
    let resolveState: (state: DesiredState) => void = () => undefined;
    const delivered = new Promise<DesiredState>((resolve) => {
      resolveState = resolve;
    });
    let waiters = this.desiredWaiters.get(owner);
    if (!waiters) {
      waiters = new Set();
      this.desiredWaiters.set(owner, waiters);
    }
    waiters.add(resolveState);
    try {
      // Listening lets the gateway mark pending desired changes delivered (and send them here).
      await this.send(device, { kind: 'presence', state: 'listening' });
      await this.send(device, { kind: 'twin-get' });
      return await withTimeout(delivered, this.limits.requestTimeoutMs, 'the desired state');
    } finally {
      waiters.delete(resolveState);
      if (waiters.size === 0) this.desiredWaiters.delete(owner);
    }
  }

  /**
   * The gateway wakes a device without waiting: invocations it delivers for a fetch may land a
   * moment after the fetch arrived. An empty list waits briefly for the first of them.
   */
  private async deliveriesSettled(owner: string): Promise<void> {
    if (this.mailbox.pending(owner, this.uplink?.now() ?? Date.now()).length > 0) return;
    let wake: () => void = () => undefined;
    const landed = new Promise<void>((resolve) => {
      wake = resolve;
    });
    let waiters = this.fetchWaiters.get(owner);
    if (!waiters) {
      waiters = new Set();
      this.fetchWaiters.set(owner, waiters);
    }
    waiters.add(wake);
    const timer = setTimeout(wake, this.limits.fetchWaitMs);
    try {
      await landed;
      // Invocations of one wake-up are delivered one after another: let the rest of them land too.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      clearTimeout(timer);
      waiters.delete(wake);
      if (waiters.size === 0) this.fetchWaiters.delete(owner);
    }
  }

  private answered(device: DeviceRecord, payload: DevicePayload): void {
    if (!('body' in payload)) return;
    const body = payload.body;
    if (body !== null && typeof body === 'object' && 'id' in body && typeof body.id === 'string')
      this.mailbox.answered(fleetKey(device), body.id);
  }

  private listening(device: DeviceRecord, now: number): boolean {
    const line = this.devices.get(fleetKey(device));
    if (!line) return false;
    const within = (ts: number | null) => ts !== null && now - ts <= this.limits.listenWindowMs;
    return within(line.lastFetch) || (device.network.sleepy && within(line.lastHeard));
  }

  // --- observations ----------------------------------------------------------------------------

  private observationKey(req: IncomingMessage): string {
    return `${req.rsinfo.address}:${req.rsinfo.port}/${req._packet.token?.toString('hex') ?? ''}`;
  }

  /** `owner`: the device's fleet key. */
  private observes(owner: string, resource: ObservedResource): boolean {
    return this.observationsOf(owner, resource).length > 0;
  }

  private observationsOf(owner: string, resource?: ObservedResource): Observation[] {
    const all = this.observations.get(owner);
    if (!all) return [];
    return [...all.values()].filter((observation) => resource === undefined || observation.resource === resource);
  }

  private observe(
    device: DeviceRecord,
    req: IncomingMessage,
    stream: ObserveWriteStream,
    resource: ObservedResource,
  ): Observation | undefined {
    const key = this.observationKey(req);
    const owner = fleetKey(device);
    // The same token from the same endpoint re-registers (RFC 7641 §4.1): the old stream is replaced.
    this.unobserve(owner, key);
    let all = this.observations.get(owner);
    if ((all?.size ?? 0) >= this.limits.maxObserversPerDevice || this.observationCount >= this.limits.maxObservers) {
      this.uplink?.refused('coap', 'too_many_observers');
      return undefined;
    }
    if (!all) {
      all = new Map();
      this.observations.set(owner, all);
    }
    const observation: Observation = { resource, stream };
    all.set(key, observation);
    this.observationCount++;
    stream.setOption('Content-Format', 'application/json');
    const end = () => this.unobserve(owner, key, observation);
    stream.once('finish', end);
    stream.once('close', end);
    stream.on('error', end);
    return observation;
  }

  private unobserve(owner: string, key: string, only?: Observation): void {
    const all = this.observations.get(owner);
    const observation = all?.get(key);
    if (!all || !observation || (only && observation !== only)) return;
    all.delete(key);
    this.observationCount--;
    if (all.size === 0) this.observations.delete(owner);
    if (!observation.stream.writableEnded) observation.stream.end();
  }

  private notify(owner: string, observation: Observation, body: unknown): void {
    if (observation.stream.destroyed || observation.stream.writableEnded) return;
    try {
      observation.stream.write(Buffer.from(JSON.stringify(body)));
    } catch (error) {
      this.options.logger.debug({ device: owner, err: (error as Error).message }, 'coap notification failed');
    }
  }

  // --- answers ---------------------------------------------------------------------------------

  private answer(res: OutgoingMessage | ObserveWriteStream, answer: Answer): void {
    try {
      if (res instanceof ObserveWriteStream) {
        if (res.writableEnded || res.destroyed) return;
        res.statusCode = answer.code;
        if (answer.body !== undefined) res.setOption('Content-Format', 'application/json');
        res.end(answer.body === undefined ? undefined : Buffer.from(JSON.stringify(answer.body)));
        return;
      }
      res.code = answer.code;
      if (answer.body !== undefined) res.setOption('Content-Format', 'application/json');
      res.end(answer.body === undefined ? undefined : Buffer.from(JSON.stringify(answer.body)));
    } catch (error) {
      this.options.logger.debug({ err: (error as Error).message }, 'coap answer could not be sent');
    }
  }

  private line(device: DeviceRecord): DeviceLine {
    let line = this.devices.get(fleetKey(device));
    if (!line) {
      line = { lastHeard: null, lastGood: null, lastFetch: null, errors: 0, notices: [] };
      this.devices.set(fleetKey(device), line);
    }
    return line;
  }
}
