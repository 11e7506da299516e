import type {
  ClientMonitoredItemGroup,
  ClientSession,
  ClientSubscription,
  DataValue,
  NodeId,
  OPCUACertificateManager,
  OPCUAClient,
  Variant,
} from 'node-opcua';
import type { Logger } from '../../observability/index.js';
import type { JsonValue } from '../../telemetry/index.js';
import type { OpcuaEndpoint, OpcuaMethodPoint, OpcuaPropertyPoint } from './mapping.js';
import { BuiltInType, jsonToVariantValue, variantToJson } from './values.js';

/**
 * One client session to one OPC UA server, shared by every device behind it: a subscription with
 * a monitored-item group per device and sampling interval, reads, writes and method calls with a
 * deadline each, and its own reconnect loop (backoff, then a fresh session that monitors every
 * device's items again: a restarted server has forgotten the old session and subscription).
 */

export type OpcuaModule = typeof import('node-opcua');

let loading: Promise<OpcuaModule> | undefined;

/** node-opcua costs a second and a half to load: only nodes that serve an OPC UA device pay it. */
export function loadOpcua(): Promise<OpcuaModule> {
  loading ??= import('node-opcua');
  return loading;
}

export type ConnectionState = 'connecting' | 'connected' | 'unreachable' | 'closed';

/** A value from the server: good ones become telemetry, bad ones (status Bad…) are reported. */
export interface PointReading {
  property: string;
  nodeId: string;
  good: boolean;
  status: string;
  value: JsonValue;
  ts: number;
}

export interface ItemWatcher {
  points: OpcuaPropertyPoint[];
  /** Readings of one publish, grouped per device. */
  readings(readings: PointReading[]): void;
  /** An item the server would not monitor (unknown node, not readable…). */
  itemRefused(point: OpcuaPropertyPoint, status: string): void;
}

export interface ConnectionOptions {
  opcua: OpcuaModule;
  certificates: OPCUACertificateManager;
  logger: Logger;
  requestTimeoutMs: number;
  backoff: { initialMs: number; maxMs: number };
  /** How often the server's clock is read: the latency figure, and a dead server noticed between publishes. */
  probeIntervalMs: number;
  now(): number;
  stateChanged(state: ConnectionState, message?: string): void;
  /** Every failed connection attempt or lost session, also while already unreachable. */
  failed(message: string): void;
}

export class RequestFailed extends Error {
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super(message);
  }
}

function deadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RequestFailed(`${what} got no answer within ${ms} ms`, 'timeout')), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

interface Live {
  client: OPCUAClient;
  session: ClientSession;
  subscription: ClientSubscription;
}

const MONITOR_CONCURRENCY = 8;

/** The node's own server status clock (i=2258): every server has it, reading it costs nothing. */
const SERVER_CURRENT_TIME = 'ns=0;i=2258';

export class EndpointConnection {
  state: ConnectionState = 'connecting';
  latencyMs: number | null = null;
  lastError: string | undefined;
  private live: Live | undefined;
  private readonly watchers = new Map<string, ItemWatcher>();
  private readonly groups = new Map<string, ClientMonitoredItemGroup[]>();
  private readonly types = new Map<string, { builtIn: number; valueRank: number }>();
  private generation = 0;
  private failures = 0;
  private retry: NodeJS.Timeout | undefined;
  private probe: NodeJS.Timeout | undefined;

  constructor(
    readonly endpoint: OpcuaEndpoint,
    private readonly options: ConnectionOptions,
  ) {}

  start(): void {
    void this.connect();
  }

  async close(): Promise<void> {
    this.generation++;
    this.setState('closed');
    clearTimeout(this.retry);
    clearInterval(this.probe);
    const live = this.live;
    this.live = undefined;
    this.groups.clear();
    if (live) await this.dispose(live);
  }

  watch(deviceId: string, watcher: ItemWatcher): void {
    this.watchers.set(deviceId, watcher);
    const live = this.live;
    if (live && this.state === 'connected') void this.monitor(live, this.generation, deviceId, watcher);
  }

  unwatch(deviceId: string): void {
    this.watchers.delete(deviceId);
    const groups = this.groups.get(deviceId) ?? [];
    this.groups.delete(deviceId);
    for (const group of groups) group.terminate().catch(() => undefined);
  }

  get watching(): number {
    return this.watchers.size;
  }

  private setState(state: ConnectionState, message?: string): void {
    if (message !== undefined) this.lastError = message;
    if (state === this.state) return;
    this.state = state;
    this.options.stateChanged(state, message);
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    const { opcua, requestTimeoutMs } = this.options;
    const client = opcua.OPCUAClient.create({
      applicationName: 'Thingloop',
      endpointMustExist: false,
      securityMode: opcua.MessageSecurityMode[this.endpoint.securityMode],
      securityPolicy: opcua.SecurityPolicy[this.endpoint.securityPolicy],
      clientCertificateManager: this.options.certificates,
      // Reconnection is ours (backoff, resubscribe on a fresh session): node-opcua's own retries off.
      connectionStrategy: { maxRetry: 0, initialDelay: 100, maxDelay: 200 },
      transportTimeout: requestTimeoutMs,
      requestedSessionTimeout: 60_000,
      keepSessionAlive: false,
    });
    let session: ClientSession | undefined;
    try {
      await deadline(client.connect(this.endpoint.url), requestTimeoutMs * 2, `connecting to ${this.endpoint.url}`);
      session = await deadline(client.createSession(), requestTimeoutMs, 'creating a session');
      const subscription = await deadline(
        session.createSubscription2({
          requestedPublishingInterval: this.endpoint.publishingIntervalMs,
          requestedLifetimeCount: 60,
          requestedMaxKeepAliveCount: 10,
          maxNotificationsPerPublish: 0,
          publishingEnabled: true,
          priority: 1,
        }),
        requestTimeoutMs,
        'creating a subscription',
      );
      if (generation !== this.generation) {
        await this.dispose({ client, session, subscription });
        return;
      }
      const live: Live = { client, session, subscription };
      this.live = live;
      this.types.clear();
      const lost = (why: string) => this.lost(generation, why);
      client.on('close', () => lost('the server closed the connection'));
      client.on('connection_lost', () => lost('the connection to the server was lost'));
      session.on('session_closed', () => lost('the server closed the session'));
      subscription.on('terminated', () => lost('the server terminated the subscription'));
      subscription.on('internal_error', (error: Error) => lost(`subscription error: ${error.message}`));
      await this.measure(live);
      this.failures = 0;
      this.setState('connected');
      this.options.logger.info({ endpoint: this.endpoint.url, security: this.endpoint.securityMode }, 'OPC UA session open');
      clearInterval(this.probe);
      this.probe = setInterval(() => {
        if (this.live === live) this.measure(live).catch((error: unknown) => lost(`the server did not answer a read: ${errorText(error)}`));
      }, this.options.probeIntervalMs);
      this.probe.unref();
      // A snapshot: devices attached from now on are monitored by watch() itself, not twice. A few
      // requests in flight at once: after a restart a hundred devices resubscribe in a few round trips.
      const waiting = [...this.watchers];
      const worker = async () => {
        for (let next = waiting.shift(); next; next = waiting.shift()) await this.monitor(live, generation, next[0], next[1]);
      };
      await Promise.all(Array.from({ length: MONITOR_CONCURRENCY }, worker));
    } catch (error) {
      if (generation !== this.generation) return;
      if (!this.live || this.live.client !== client) {
        // Failed before the session went live: this attempt's half-open client is closed here.
        void this.dispose({ client, session });
      }
      this.lost(generation, errorText(error));
    }
  }

  private lost(generation: number, message: string): void {
    if (generation !== this.generation || this.state === 'closed') return;
    this.generation++;
    clearInterval(this.probe);
    const live = this.live;
    this.live = undefined;
    this.groups.clear();
    if (live) void this.dispose(live);
    this.failures++;
    this.setState('unreachable', message);
    this.options.failed(message);
    const { initialMs, maxMs } = this.options.backoff;
    const delay = Math.min(maxMs, initialMs * 2 ** Math.min(this.failures - 1, 16));
    this.options.logger.warn({ endpoint: this.endpoint.url, err: message, retryInMs: delay }, 'OPC UA server unreachable');
    clearTimeout(this.retry);
    this.retry = setTimeout(() => void this.connect(), delay);
    this.retry.unref();
  }

  private async dispose(live: Partial<Live> & { client: OPCUAClient }): Promise<void> {
    live.client.removeAllListeners();
    // Each step may hang on a dead socket: bounded, and failures do not matter any more.
    const quietly = (work: Promise<unknown> | undefined) =>
      work ? deadline(work, 2000, 'closing').catch(() => undefined) : Promise.resolve(undefined);
    if (live.subscription) live.subscription.removeAllListeners();
    if (live.session) {
      live.session.removeAllListeners();
      await quietly(live.session.close(true));
    }
    await quietly(live.client.disconnect());
  }

  private async measure(live: Live): Promise<void> {
    const started = performance.now();
    await deadline(
      live.session.read({ nodeId: SERVER_CURRENT_TIME, attributeId: this.options.opcua.AttributeIds.Value }),
      this.options.requestTimeoutMs,
      'reading the server clock',
    );
    this.latencyMs = Math.round((performance.now() - started) * 100) / 100;
  }

  private async monitor(live: Live, generation: number, deviceId: string, watcher: ItemWatcher): Promise<void> {
    const { opcua } = this.options;
    const byInterval = new Map<number, OpcuaPropertyPoint[]>();
    for (const point of watcher.points) {
      const list = byInterval.get(point.samplingIntervalMs) ?? [];
      list.push(point);
      byInterval.set(point.samplingIntervalMs, list);
    }
    const groups: ClientMonitoredItemGroup[] = [];
    try {
      for (const [samplingInterval, points] of byInterval) {
        const group = await deadline(
          live.subscription.monitorItems(
            points.map((point) => ({ nodeId: point.nodeId, attributeId: opcua.AttributeIds.Value })),
            {
              samplingInterval,
              discardOldest: true,
              // Faster sampling than publishing: keep every sample of one publishing interval.
              queueSize: Math.min(100, Math.max(1, Math.ceil(this.endpoint.publishingIntervalMs / Math.max(1, samplingInterval)))),
            },
            opcua.TimestampsToReturn.Both,
          ),
          this.options.requestTimeoutMs * 4,
          'creating monitored items',
        );
        groups.push(group);
        group.monitoredItems.forEach((item, index) => {
          const point = points[index];
          if (point && item.statusCode.isNotGood()) watcher.itemRefused(point, item.statusCode.name);
        });
        let batch: PointReading[] = [];
        group.on('changed', (_item, dataValue: DataValue, index: number) => {
          const point = points[index];
          if (!point) return;
          if (batch.length === 0) {
            // Every notification of one publish arrives in the same turn: hand them up together.
            setImmediate(() => {
              const readings = batch;
              batch = [];
              if (this.watchers.get(deviceId) === watcher) watcher.readings(readings);
            });
          }
          batch.push(this.reading(point, dataValue));
        });
        group.on('err', (message: string) =>
          this.options.logger.warn({ endpoint: this.endpoint.url, device: deviceId, err: message }, 'monitored items failed'),
        );
      }
    } catch (error) {
      this.options.logger.warn({ endpoint: this.endpoint.url, device: deviceId, err: errorText(error) }, 'could not monitor items');
      for (const point of watcher.points) watcher.itemRefused(point, errorText(error));
    }
    if (generation !== this.generation || this.watchers.get(deviceId) !== watcher) {
      for (const group of groups) group.terminate().catch(() => undefined);
      return;
    }
    this.groups.set(deviceId, groups);
  }

  private reading(point: OpcuaPropertyPoint, dataValue: DataValue): PointReading {
    const variant = dataValue.value;
    const ts = (dataValue.sourceTimestamp ?? dataValue.serverTimestamp)?.getTime() ?? this.options.now();
    const status = dataValue.statusCode;
    // Uncertain values are still the server's best knowledge; only Bad ones are not values.
    const good = !status.isBad() && variant !== null && variant !== undefined;
    return {
      property: point.property,
      nodeId: point.nodeId,
      good,
      status: status.name,
      value: good ? variantToJson(variant.value, variant.dataType) : null,
      ts: Number.isFinite(ts) ? ts : this.options.now(),
    };
  }

  private session(): ClientSession {
    if (this.state !== 'connected' || !this.live) {
      throw new RequestFailed(`${this.endpoint.url} is not connected${this.lastError ? ` (${this.lastError})` : ''}`, 'unreachable');
    }
    return this.live.session;
  }

  /** Reads values now (a write's confirmation): one request for all nodes. */
  async read(points: OpcuaPropertyPoint[]): Promise<PointReading[]> {
    const session = this.session();
    const started = performance.now();
    const values = await deadline(
      session.read(points.map((point) => ({ nodeId: point.nodeId, attributeId: this.options.opcua.AttributeIds.Value }))),
      this.options.requestTimeoutMs,
      'reading values',
    );
    this.latencyMs = Math.round((performance.now() - started) * 100) / 100;
    return points.map((point, index) => this.reading(point, values[index] as DataValue));
  }

  private async typeOf(
    session: ClientSession,
    nodeId: string,
    declared: number | undefined,
  ): Promise<{ builtIn: number; valueRank: number }> {
    const known = this.types.get(nodeId);
    if (known) return declared === undefined ? known : { ...known, builtIn: declared };
    const { opcua } = this.options;
    const [rank] = await deadline(
      session.read([{ nodeId, attributeId: opcua.AttributeIds.ValueRank }]),
      this.options.requestTimeoutMs,
      'reading the value rank',
    );
    const builtIn =
      declared ??
      (await deadline(session.getBuiltInDataType(opcua.coerceNodeId(nodeId)), this.options.requestTimeoutMs, 'reading the data type'));
    const valueRank = typeof rank?.value.value === 'number' ? rank.value.value : -1;
    const found = { builtIn: Number(builtIn), valueRank };
    if (declared === undefined) this.types.set(nodeId, found);
    return found;
  }

  /** Writes a value with the variable's own DataType; rejects with the status name when the server refuses. */
  async write(point: OpcuaPropertyPoint, value: JsonValue): Promise<void> {
    const session = this.session();
    const { opcua } = this.options;
    const { builtIn, valueRank } = await this.typeOf(session, point.nodeId, point.dataType);
    const converted = jsonToVariantValue(value, builtIn, valueRank);
    if ('problem' in converted) throw new RequestFailed(`${point.property}: ${converted.problem}`, 'invalid_value');
    const status = await deadline(
      session.write({
        nodeId: point.nodeId,
        attributeId: opcua.AttributeIds.Value,
        value: {
          value: {
            dataType: builtIn,
            arrayType: valueRank > 0 ? opcua.VariantArrayType.Array : opcua.VariantArrayType.Scalar,
            value: converted.value,
          },
        },
      }),
      this.options.requestTimeoutMs,
      `writing ${point.property}`,
    );
    if (status.isNotGood()) throw new RequestFailed(`writing ${point.property} (${point.nodeId}): ${status.name}`, 'bad_status');
  }

  private async argumentType(session: ClientSession, dataType: NodeId): Promise<number> {
    if (dataType.namespace === 0 && typeof dataType.value === 'number' && dataType.value <= BuiltInType.DiagnosticInfo)
      return dataType.value;
    return Number(
      await deadline(this.options.opcua.findBasicDataType(session, dataType), this.options.requestTimeoutMs, 'reading an argument type'),
    );
  }

  /**
   * Calls a method: input arguments by name from a JSON object (or the input itself for a
   * one-argument method), output arguments by name (or the only one alone when `scalarOutput`).
   */
  async call(point: OpcuaMethodPoint, input: JsonValue | undefined, scalarOutput: boolean): Promise<JsonValue> {
    const session = this.session();
    const { opcua } = this.options;
    const definition = await deadline(
      session.getArgumentDefinition(opcua.coerceNodeId(point.methodId)),
      this.options.requestTimeoutMs,
      'reading the method arguments',
    );
    const inputArguments: Variant[] = [];
    const named = input !== null && typeof input === 'object' && !Array.isArray(input) ? input : undefined;
    for (const argument of definition.inputArguments) {
      const name = argument.name ?? '';
      const raw = definition.inputArguments.length === 1 && !(named && name in named) ? input : named?.[name];
      if (raw === undefined) throw new RequestFailed(`${point.action}: input argument "${name}" is missing`, 'invalid_value');
      const builtIn = await this.argumentType(session, argument.dataType);
      const converted = jsonToVariantValue(raw, builtIn, argument.valueRank ?? -1);
      if ('problem' in converted) throw new RequestFailed(`${point.action}: argument "${name}": ${converted.problem}`, 'invalid_value');
      inputArguments.push(
        new opcua.Variant({
          dataType: builtIn,
          arrayType: (argument.valueRank ?? -1) > 0 ? opcua.VariantArrayType.Array : opcua.VariantArrayType.Scalar,
          value: converted.value,
        }),
      );
    }
    const result = await deadline(
      session.call({ objectId: point.objectId, methodId: point.methodId, inputArguments }),
      this.options.requestTimeoutMs,
      `calling ${point.action}`,
    );
    if (result.statusCode.isNotGood())
      throw new RequestFailed(`${point.action} (${point.methodId}): ${result.statusCode.name}`, 'bad_status');
    const outputs = result.outputArguments ?? [];
    if (outputs.length === 0) return null;
    const values = outputs.map((variant) => variantToJson(variant.value, variant.dataType));
    if (scalarOutput && values.length === 1) return values[0] ?? null;
    const output: Record<string, JsonValue> = {};
    outputs.forEach((_, index) => {
      output[definition.outputArguments[index]?.name ?? `output${index}`] = values[index] ?? null;
    });
    return output;
  }
}
