/**
 * The Thingloop device SDK (`thingloop/device`): what a device (or a simulator) needs to talk to
 * a Thingloop node over MQTT 3.1.1: report telemetry (buffered while offline, bounded, resent
 * in order after a reconnect), follow desired state, answer actions, report twin state.
 * It imports no platform code: devices depend on the topic contract, not on the server.
 */
import { EventEmitter } from 'node:events';
import mqtt, { type MqttClient } from 'mqtt';

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

export interface DeviceOptions {
  /** mqtt://host:port of the node (or edge) broker. */
  url: string;
  deviceId: string;
  token: string;
  /** Most samples kept while disconnected; the oldest are dropped (and counted) beyond it. */
  maxBufferedSamples?: number;
  /** QoS 1 publishes awaiting PUBACK at once. */
  maxInFlight?: number;
  keepAliveSeconds?: number;
  /** Reconnect backoff: doubles from `min` to `max` ms, with jitter. */
  reconnect?: { minMs: number; maxMs: number };
  clientId?: string;
}

export interface DesiredUpdate {
  version: number;
  desired: Record<string, Json>;
  delta: Record<string, Json>;
}

export interface ActionContext {
  invocationId: string;
  action: string;
}

export type ActionHandler<I = Json, O = Json> = (input: I, context: ActionContext) => O | Promise<O>;

export interface DeviceStats {
  buffered: number;
  inFlight: number;
  sent: number;
  acknowledged: number;
  dropped: number;
  reconnects: number;
}

/** A sample or an event waiting for its PUBACK, in the order the device reported them. */
interface PendingMessage {
  topic: string;
  payload: string;
}

const topics = (id: string) => ({
  telemetry: `things/${id}/telemetry`,
  event: (name: string) => `things/${id}/events/${name}`,
  desired: `things/${id}/twin/desired`,
  reported: `things/${id}/twin/reported`,
  get: `things/${id}/twin/get`,
  actions: `things/${id}/actions/+`,
  actionPrefix: `things/${id}/actions/`,
  errors: `things/${id}/errors`,
});

/** Remembered results of recent invocations, so a redelivered request is answered, not rerun. */
const REMEMBERED_RESULTS = 256;

/**
 * One device's connection. Events: `connect`, `disconnect`, `desired` (DesiredUpdate),
 * `platformError` (what the node refused, from things/{id}/errors), `error`.
 */
export class ThingloopDevice extends EventEmitter {
  private readonly client: MqttClient;
  private readonly topics;
  private readonly queue: PendingMessage[] = [];
  private readonly handlers = new Map<string, ActionHandler<never, Json>>();
  private readonly answered = new Map<string, { output?: Json; error?: string }>();
  private inFlight = 0;
  private counters = { sent: 0, acknowledged: 0, dropped: 0, reconnects: 0 };
  private readonly maxBuffered: number;
  private readonly maxInFlight: number;
  private drainWaiters: (() => void)[] = [];
  private closed = false;

  constructor(private readonly options: DeviceOptions) {
    super();
    this.topics = topics(options.deviceId);
    this.maxBuffered = options.maxBufferedSamples ?? 10_000;
    this.maxInFlight = options.maxInFlight ?? 32;
    const backoff = options.reconnect ?? { minMs: 500, maxMs: 30_000 };
    this.client = mqtt.connect(options.url, {
      username: options.deviceId,
      password: options.token,
      clientId: options.clientId ?? `${options.deviceId}-${Math.random().toString(16).slice(2, 10)}`,
      protocolVersion: 4,
      keepalive: options.keepAliveSeconds ?? 60,
      reconnectPeriod: backoff.minMs,
      connectTimeout: 10_000,
      resubscribe: false,
    });
    this.client.on('connect', () => {
      this.client.options.reconnectPeriod = backoff.minMs;
      this.subscribeAll().then(
        () => {
          this.emit('connect');
          this.pump();
        },
        (error: Error) => this.fail(error),
      );
    });
    this.client.on('close', () => {
      if (this.closed) return;
      this.counters.reconnects++;
      const next = Math.min(backoff.maxMs, (this.client.options.reconnectPeriod ?? backoff.minMs) * 2);
      this.client.options.reconnectPeriod = Math.round(next * (0.75 + Math.random() * 0.5));
      this.emit('disconnect');
    });
    this.client.on('error', (error) => this.fail(error));
    this.client.on('message', (topic, payload) => this.onMessage(topic, payload));
  }

  /**
   * Reports a problem to `error` listeners. Connection errors are routine for a device (the SDK
   * reconnects by itself), so without a listener they must not crash the process as an
   * unhandled EventEmitter `error` would.
   */
  private fail(error: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  /** Connects and resolves once the session is up (or rejects on a refused login). */
  static async connect(options: DeviceOptions): Promise<ThingloopDevice> {
    const device = new ThingloopDevice(options);
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error & { code?: number }) => {
        // 4 = bad credentials, 5 = not authorized: retrying will not help.
        if (error.code === 4 || error.code === 5) {
          device.close().catch(() => undefined);
          reject(error);
        }
      };
      device.once('connect', () => {
        device.off('error', onError);
        resolve();
      });
      device.on('error', onError);
    });
    return device;
  }

  get connected(): boolean {
    return this.client.connected;
  }

  get stats(): DeviceStats {
    return { buffered: this.queue.length, inFlight: this.inFlight, ...this.counters };
  }

  private async subscribeAll(): Promise<void> {
    await this.client.subscribeAsync({
      [this.topics.desired]: { qos: 1 },
      [this.topics.actions]: { qos: 1 },
      [this.topics.errors]: { qos: 0 },
    });
  }

  /**
   * Queues one sample (values at `ts`, default now). Never blocks: while offline samples wait
   * in a bounded buffer and keep their time; they are sent in order once connected.
   */
  report(values: Record<string, Json>, ts: number = Date.now()): void {
    this.enqueue({ topic: this.topics.telemetry, payload: JSON.stringify({ ts, ...values }) });
  }

  /**
   * Queues an event named in the device's thing model (a fault code, a door opened) with its
   * data. Buffered and ordered with the samples; acknowledged once the node stored it.
   */
  emitEvent(name: string, data?: Json, ts: number = Date.now()): void {
    // A name that is not one topic level would be refused by the broker, which closes the
    // connection: the message would be resent forever and block every sample behind it.
    // The model's affordance name rule (the SDK carries no platform code, so it is restated).
    if (!/^[A-Za-z_][A-Za-z0-9_-]{0,63}$/.test(name)) {
      throw new TypeError(`event name "${name}" is not a model event name (letters, digits, "_" and "-")`);
    }
    this.enqueue({ topic: this.topics.event(name), payload: JSON.stringify(data === undefined ? { ts } : { ts, data }) });
  }

  private enqueue(pending: PendingMessage): void {
    // In-flight messages count toward the bound but are not dropped here (MQTT.js holds them
    // until acknowledged), so only a queued one can make room: never count a drop that did not
    // happen. Samples give way first: an event (a fault, a door opened) is rarer and says more.
    if (this.queue.length > 0 && this.queue.length + this.inFlight >= this.maxBuffered) {
      const oldestSample = this.queue.findIndex((queued) => queued.topic === this.topics.telemetry);
      this.queue.splice(Math.max(oldestSample, 0), 1);
      this.counters.dropped++;
    }
    this.queue.push(pending);
    this.pump();
  }

  private pump(): void {
    while (this.client.connected && this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const sample = this.queue.shift() as PendingMessage;
      this.inFlight++;
      this.counters.sent++;
      // MQTT.js keeps an unacknowledged QoS 1 publish in its store and resends it after a
      // reconnect, so the callback reports the final outcome.
      this.client.publish(sample.topic, sample.payload, { qos: 1 }, (error) => {
        this.inFlight--;
        if (error) {
          if (!this.closed) this.queue.unshift(sample);
        } else {
          this.counters.acknowledged++;
        }
        if (this.queue.length === 0 && this.inFlight === 0) this.resolveDrain();
        this.pump();
      });
    }
  }

  private resolveDrain(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Resolves once every reported sample has been acknowledged by the node. */
  flush(): Promise<void> {
    if (this.queue.length === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Reports twin state (e.g. configuration the device applied) on things/{id}/twin/reported. */
  async reportTwin(state: Record<string, Json>): Promise<void> {
    await this.client.publishAsync(this.topics.reported, JSON.stringify(state), { qos: 1 });
  }

  /** Asks for the current desired state; it arrives as a `desired` event. */
  async requestDesired(): Promise<void> {
    await this.client.publishAsync(this.topics.get, '', { qos: 1 });
  }

  onDesired(listener: (update: DesiredUpdate) => void): this {
    return this.on('desired', listener);
  }

  /** Handles an action; the returned value is the output, a thrown error the `error`. */
  handle<I = Json, O extends Json = Json>(action: string, handler: ActionHandler<I, O>): this {
    this.handlers.set(action, handler as ActionHandler<never, Json>);
    return this;
  }

  private onMessage(topic: string, payload: Buffer): void {
    let body: unknown;
    try {
      body = payload.length === 0 ? null : JSON.parse(payload.toString('utf8'));
    } catch {
      this.fail(new Error(`unreadable message on ${topic}`));
      return;
    }
    if (topic === this.topics.desired) {
      if (body) this.emit('desired', body as DesiredUpdate);
    } else if (topic === this.topics.errors) {
      this.emit('platformError', body);
    } else if (topic.startsWith(this.topics.actionPrefix)) {
      const action = topic.slice(this.topics.actionPrefix.length);
      if (!action.includes('/')) this.runAction(action, body as { id?: string; input?: Json });
    }
  }

  private async runAction(action: string, request: { id?: string; input?: Json }): Promise<void> {
    if (!request || typeof request.id !== 'string') return;
    const resultTopic = `${this.topics.actionPrefix}${action}/result`;
    let result = this.answered.get(request.id);
    if (!result) {
      const handler = this.handlers.get(action);
      try {
        if (!handler) throw new Error(`device ${this.options.deviceId} has no handler for action "${action}"`);
        result = { output: (await handler(request.input as never, { invocationId: request.id, action })) ?? null };
      } catch (error) {
        result = { error: (error as Error).message };
      }
      this.answered.set(request.id, result);
      if (this.answered.size > REMEMBERED_RESULTS) this.answered.delete(this.answered.keys().next().value as string);
    }
    this.client.publish(resultTopic, JSON.stringify({ id: request.id, ...result }), { qos: 1 });
  }

  /** Closes the connection. Unsent samples are dropped unless `flush()` was awaited first. */
  async close(): Promise<void> {
    this.closed = true;
    await this.client.endAsync(true);
  }
}
