import {
  type AttachedDevice,
  type BindingHealth,
  boundForms,
  type DesiredState,
  type DeviceBinding,
  type DeviceUplink,
  type DownlinkRequest,
} from '../../gateway/index.js';
import type { Logger } from '../../observability/index.js';
import { type DeviceRecord, type FleetDeviceRef, fleetKey } from '../../registry/index.js';
import type { JsonValue } from '../../telemetry/index.js';
import { type ConnectionOptions, ModbusFault, PlcConnection } from './connection.js';
import {
  type ActionMapping,
  type CoalesceLimits,
  coalesce,
  confirms,
  DEFAULT_COALESCE,
  decodeRegisters,
  encodeRegisters,
  type PlcAddress,
  type ReadBlock,
  type RegisterMap,
  type RegisterPoint,
  registerMap,
  type WriteStep,
} from './register-map.js';

const PROTOCOL = 'modbus-tcp' as const;

export interface ModbusBindingOptions {
  /** Poll interval of a property whose form has no `modv:pollingTime`. */
  defaultPollingMs?: number;
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Retry delays of an unreachable PLC: doubling from the first to the cap. */
  backoff?: { initialMs: number; maxMs: number };
  coalesce?: Partial<CoalesceLimits>;
  logger?: Logger;
  /** Called after every poll round (benchmarks measure jitter with it). */
  onRound?: (round: PollRound) => void;
}

export interface PollRound {
  tenant: string;
  deviceId: string;
  intervalMs: number;
  /** How late the round started against its schedule. */
  lateMs: number;
  durationMs: number;
  reads: number;
  ok: boolean;
}

/** A device's polling state beyond `BindingHealth`: what operators and tests look at. */
export interface PollState {
  state: BindingHealth['state'];
  /** Consecutive failed rounds; 0 while the PLC answers. */
  failures: number;
  /** The wait before the next attempt while unreachable; 0 while the PLC answers. */
  backoffMs: number;
  /** Reads per round of each poll interval (coalesced blocks). */
  readsPerRound: Record<number, number>;
  rounds: number;
  overruns: number;
  problems: string[];
}

interface PollGroup {
  intervalMs: number;
  blocks: ReadBlock[];
  timer?: NodeJS.Timeout;
  dueAt: number;
  inFlight: boolean;
}

interface Poller {
  device: DeviceRecord;
  map: RegisterMap;
  groups: PollGroup[];
  health: BindingHealth;
  failures: number;
  backoffMs: number;
  rounds: number;
  overruns: number;
  /** The last error reported per property (or '' for the device): reported again only when it changes. */
  reported: Map<string, string>;
  /** Whether presence online was sent (undefined: nothing sent yet). */
  online: boolean | undefined;
  stopped: boolean;
  /** Work in flight (rounds, writes), awaited by detach and stop. */
  work: Set<Promise<void>>;
}

const connectionKey = (address: Pick<PlcAddress, 'host' | 'port'>) => `${address.host}:${address.port}`;
/** Tenants never share a socket: one tenant's devices cannot close or stall another's connection. */
const tenantConnectionKey = (tenant: string, address: Pick<PlcAddress, 'host' | 'port'>) => `${tenant}|${connectionKey(address)}`;

/**
 * The Modbus TCP binding: the node is the client and polls PLCs. Each device's register map comes
 * from its thing model's `modbus+tcp://` forms; nearby registers of one unit are read together,
 * each poll interval's round goes up as one telemetry message, desired values are written and
 * confirmed by reading them back, and an action writes its coil and register sequence.
 */
export class ModbusBinding implements DeviceBinding {
  readonly protocol = PROTOCOL;
  private uplink: DeviceUplink | undefined;
  /** By tenant and id (fleetKey): one binding polls every tenant's PLCs, and ids repeat across tenants. */
  private readonly pollers = new Map<string, Poller>();
  /** By tenant and host:port; users are fleet keys. */
  private readonly connections = new Map<string, { connection: PlcConnection; users: Set<string> }>();
  private readonly settings: Required<Omit<ModbusBindingOptions, 'logger' | 'onRound' | 'coalesce'>> & { coalesce: CoalesceLimits };
  private running = false;

  constructor(private readonly options: ModbusBindingOptions = {}) {
    this.settings = {
      defaultPollingMs: options.defaultPollingMs ?? 1_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 2_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 3_000,
      backoff: options.backoff ?? { initialMs: 1_000, maxMs: 30_000 },
      coalesce: { ...DEFAULT_COALESCE, ...options.coalesce },
    };
  }

  async start(uplink: DeviceUplink): Promise<void> {
    this.uplink = uplink;
    this.running = true;
    for (const poller of this.pollers.values()) this.schedule(poller);
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all([...this.pollers.values()].map((poller) => this.detach(poller.device)));
  }

  async attach({ device, model }: AttachedDevice): Promise<void> {
    await this.detach(device);
    const key = fleetKey(device);
    const { forms, problems } = boundForms(model.document, device.binding);
    const map = registerMap(model.document, forms, { pollingMs: this.settings.defaultPollingMs });
    map.problems.unshift(...problems.map((problem) => `${problem.path}: ${problem.message}`));
    if (forms.length === 0 && problems.length === 0) map.problems.push(`model ${model.id} has no modbus+tcp:// forms`);
    const poller: Poller = {
      device,
      map,
      groups: this.groupsOf(map.reads),
      health: { protocol: PROTOCOL, state: 'idle', lastGoodReadTs: null, errors: 0, latencyMs: null },
      failures: 0,
      backoffMs: 0,
      rounds: 0,
      overruns: 0,
      reported: new Map(),
      online: undefined,
      stopped: false,
      work: new Set(),
    };
    this.pollers.set(key, poller);
    for (const address of this.addressesOf(map)) {
      const at = tenantConnectionKey(device.tenant, address);
      let entry = this.connections.get(at);
      if (!entry) {
        entry = { connection: new PlcConnection(address.host, address.port, this.connectionOptions()), users: new Set() };
        this.connections.set(at, entry);
      }
      entry.users.add(key);
    }
    for (const problem of map.problems) {
      this.uplink?.refused(PROTOCOL, 'invalid_binding_form');
      this.deviceError(poller, `form:${problem}`, `binding form: ${problem}`, 'invalid_binding_form');
    }
    if (this.running) this.schedule(poller);
  }

  async detach(device: FleetDeviceRef): Promise<void> {
    const key = fleetKey(device);
    const poller = this.pollers.get(key);
    if (!poller) return;
    poller.stopped = true;
    for (const group of poller.groups) clearTimeout(group.timer);
    this.pollers.delete(key);
    await Promise.allSettled([...poller.work]);
    for (const [at, entry] of this.connections) {
      entry.users.delete(key);
      if (entry.users.size === 0) {
        entry.connection.close();
        this.connections.delete(at);
      }
    }
  }

  reachable(device: DeviceRecord, request: DownlinkRequest): boolean {
    if (request.kind === 'errors') return true;
    return this.pollers.get(fleetKey(device))?.health.state === 'polling';
  }

  async deliver(device: DeviceRecord, request: DownlinkRequest): Promise<void> {
    // A PLC has nowhere to show an error list; operators see it on the device's errors.
    if (request.kind === 'errors') return;
    const poller = this.pollers.get(fleetKey(device));
    if (!poller) throw new Error(`${device.id} is not attached to the modbus-tcp binding`);
    const work =
      request.kind === 'desired'
        ? this.writeDesired(poller, request.state)
        : this.invoke(poller, request.id, request.action, request.input);
    await this.track(poller, work);
  }

  health(device: DeviceRecord): BindingHealth | undefined {
    const health = this.pollers.get(fleetKey(device))?.health;
    return health ? { ...health } : undefined;
  }

  pollState(device: FleetDeviceRef): PollState | undefined {
    const poller = this.pollers.get(fleetKey(device));
    if (!poller) return undefined;
    return {
      state: poller.health.state,
      failures: poller.failures,
      backoffMs: poller.backoffMs,
      readsPerRound: Object.fromEntries(poller.groups.map((group) => [group.intervalMs, group.blocks.length])),
      rounds: poller.rounds,
      overruns: poller.overruns,
      problems: [...poller.map.problems],
    };
  }

  /** Open TCP connections (one per host:port, whatever the number of units behind it). */
  connectionCount(): number {
    return [...this.connections.values()].filter((entry) => entry.connection.connected).length;
  }

  private connectionOptions(): ConnectionOptions {
    return { connectTimeoutMs: this.settings.connectTimeoutMs, requestTimeoutMs: this.settings.requestTimeoutMs };
  }

  private addressesOf(map: RegisterMap): PlcAddress[] {
    const steps = [...map.actions.values()].flatMap((action) => action.steps);
    return [...map.reads, ...map.writes.values(), ...steps];
  }

  private groupsOf(points: RegisterPoint[]): PollGroup[] {
    const byInterval = new Map<number, RegisterPoint[]>();
    for (const point of points) byInterval.set(point.pollingMs, [...(byInterval.get(point.pollingMs) ?? []), point]);
    return [...byInterval.entries()]
      .sort(([a], [b]) => a - b)
      .map(([intervalMs, group]) => ({ intervalMs, blocks: coalesce(group, this.settings.coalesce), dueAt: 0, inFlight: false }));
  }

  /** The tenant's connection to the PLC at the address. */
  private connectionFor(poller: Poller, address: PlcAddress): PlcConnection {
    const entry = this.connections.get(tenantConnectionKey(poller.device.tenant, address));
    if (!entry) throw new ModbusFault('unreachable', `no connection to ${connectionKey(address)}`);
    return entry.connection;
  }

  private schedule(poller: Poller): void {
    const now = performance.now();
    // Spread first rounds over the interval so a thousand PLCs attached at once do not poll in one burst.
    for (const group of poller.groups) this.arm(poller, group, now + Math.random() * Math.min(group.intervalMs, 1_000));
  }

  private arm(poller: Poller, group: PollGroup, dueAt: number): void {
    if (poller.stopped || !this.running) return;
    clearTimeout(group.timer);
    group.dueAt = dueAt;
    group.timer = setTimeout(() => this.fire(poller, group), Math.max(0, dueAt - performance.now()));
  }

  private fire(poller: Poller, group: PollGroup): void {
    const started = performance.now();
    const lateMs = started - group.dueAt;
    // While a PLC is unreachable only the first group probes it, at the backoff delay.
    if (poller.health.state === 'unreachable' && group !== poller.groups[0]) {
      this.arm(poller, group, started + group.intervalMs);
      return;
    }
    group.inFlight = true;
    const round = this.round(poller, group)
      .then((ok) => {
        this.options.onRound?.({
          tenant: poller.device.tenant,
          deviceId: poller.device.id,
          intervalMs: group.intervalMs,
          lateMs,
          durationMs: performance.now() - started,
          reads: group.blocks.length,
          ok,
        });
      })
      .catch((error: unknown) => this.options.logger?.error({ device: poller.device.id, err: String(error) }, 'modbus poll round failed'))
      .finally(() => {
        group.inFlight = false;
        const now = performance.now();
        if (poller.health.state === 'unreachable') this.arm(poller, group, now + poller.backoffMs);
        else this.arm(poller, group, this.nextDue(poller, group, now));
      });
    this.track(poller, round).catch(() => undefined);
  }

  /** Rounds keep their cadence; a round that overran its interval skips the slots it missed. */
  private nextDue(poller: Poller, group: PollGroup, now: number): number {
    const due = group.dueAt + group.intervalMs;
    if (due > now) return due;
    const missed = Math.ceil((now - due) / group.intervalMs);
    poller.overruns += missed;
    return due + missed * group.intervalMs;
  }

  private track(poller: Poller, work: Promise<void>): Promise<void> {
    poller.work.add(work);
    return work.finally(() => poller.work.delete(work));
  }

  /** One poll round of a group: its blocks read, decoded and sent up as one telemetry message. */
  private async round(poller: Poller, group: PollGroup): Promise<boolean> {
    const uplink = this.uplink;
    if (!uplink) return false;
    poller.rounds++;
    const values: Record<string, JsonValue> = {};
    let unreachable: ModbusFault | undefined;
    let latencyMs: number | null = null;
    let answered = false;
    const splits: ReadBlock[] = [];
    for (const block of group.blocks) {
      if (unreachable) break;
      try {
        const result = await this.readBlock(poller, block);
        answered = true;
        latencyMs = result.latencyMs;
        Object.assign(values, result.values);
        for (const point of block.points) this.clearError(poller, point.property);
      } catch (error) {
        const fault = this.asFault(error);
        if (fault.kind === 'unreachable' || fault.kind === 'timeout') {
          unreachable = fault;
          break;
        }
        answered = true;
        this.countFault(poller, fault);
        // An exception on a coalesced read does not say which register is wrong: read them one by one from now on.
        if (fault.kind === 'exception' && block.points.length > 1) {
          splits.push(block);
          const single = await this.readSingly(poller, block);
          Object.assign(values, single);
          continue;
        }
        for (const point of block.points) this.pointError(poller, point.property, fault);
      }
    }
    if (splits.length > 0) {
      group.blocks = group.blocks.flatMap((block) => (splits.includes(block) ? block.points.map((point) => this.blockOf(point)) : [block]));
    }
    if (unreachable && !answered) {
      await this.unreachable(poller, unreachable);
      return false;
    }
    const now = uplink.now();
    if (latencyMs !== null) poller.health.latencyMs = Math.round(latencyMs * 100) / 100;
    await this.reachableAgain(poller);
    if (Object.keys(values).length > 0) {
      poller.health.lastGoodReadTs = now;
      await uplink.receive(poller.device, { kind: 'telemetry', payload: { body: { ts: now, ...values } } }, PROTOCOL);
    }
    return unreachable === undefined;
  }

  private blockOf(point: RegisterPoint): ReadBlock {
    return {
      host: point.host,
      port: point.port,
      unitId: point.unitId,
      entity: point.entity,
      address: point.address,
      quantity: point.quantity,
      points: [point],
    };
  }

  private async readSingly(poller: Poller, block: ReadBlock): Promise<Record<string, JsonValue>> {
    const values: Record<string, JsonValue> = {};
    for (const point of block.points) {
      try {
        const result = await this.readBlock(poller, this.blockOf(point));
        Object.assign(values, result.values);
        this.clearError(poller, point.property);
      } catch (error) {
        const fault = this.asFault(error);
        this.countFault(poller, fault);
        this.pointError(poller, point.property, fault);
      }
    }
    return values;
  }

  private async readBlock(poller: Poller, block: ReadBlock): Promise<{ values: Record<string, JsonValue>; latencyMs: number }> {
    const result = await this.connectionFor(poller, block).read(block.unitId, block.entity, block.address, block.quantity);
    const values: Record<string, JsonValue> = {};
    for (const point of block.points) {
      const offset = point.address - block.address;
      if ('bits' in result) values[point.property] = result.bits[offset] === true;
      else values[point.property] = decodeRegisters(point, result.registers.subarray(offset * 2, (offset + point.quantity) * 2));
    }
    return { values, latencyMs: result.latencyMs };
  }

  private async readPoint(poller: Poller, point: RegisterPoint): Promise<JsonValue> {
    const { values } = await this.readBlock(poller, this.blockOf(point));
    return values[point.property] ?? null;
  }

  private asFault(error: unknown): ModbusFault {
    return error instanceof ModbusFault ? error : new ModbusFault('malformed', error instanceof Error ? error.message : String(error));
  }

  private async unreachable(poller: Poller, fault: ModbusFault): Promise<void> {
    const { initialMs, maxMs } = this.settings.backoff;
    poller.failures++;
    poller.backoffMs = Math.min(maxMs, initialMs * 2 ** Math.min(poller.failures - 1, 30));
    poller.health.state = 'unreachable';
    this.countFault(poller, fault);
    this.options.logger?.warn({ device: poller.device.id, err: fault.message, retryInMs: poller.backoffMs }, 'PLC unreachable');
    this.deviceError(poller, '', `PLC unreachable: ${fault.message} (retry in ${poller.backoffMs} ms)`, fault.reason, true);
    if (poller.online !== false) {
      poller.online = false;
      await this.uplink?.receive(poller.device, { kind: 'presence', state: 'offline' }, PROTOCOL);
    }
  }

  private async reachableAgain(poller: Poller): Promise<void> {
    poller.failures = 0;
    poller.backoffMs = 0;
    poller.health.state = 'polling';
    poller.reported.delete('');
    if (poller.online !== true) {
      poller.online = true;
      await this.uplink?.receive(poller.device, { kind: 'presence', state: 'online' }, PROTOCOL);
      // The PLC hears writes again: queued actions go out now, and the desired state is asked for
      // (as an MQTT device gets its retained desired state on connecting): what changed while the
      // PLC was away, or before the node started, is written now.
      await this.uplink?.receive(poller.device, { kind: 'presence', state: 'listening' }, PROTOCOL);
      await this.uplink?.receive(poller.device, { kind: 'twin-get' }, PROTOCOL);
    }
  }

  private countFault(poller: Poller, fault: ModbusFault): void {
    poller.health.errors++;
    poller.health.lastError = { ts: this.uplink?.now() ?? Date.now(), message: fault.message };
    this.uplink?.refused(PROTOCOL, fault.reason);
  }

  private pointError(poller: Poller, property: string, fault: ModbusFault): void {
    this.deviceError(poller, property, `${property}: ${fault.message}`, fault.reason);
  }

  private clearError(poller: Poller, property: string): void {
    poller.reported.delete(property);
  }

  /** Reports an error on the device's list once per change: a PLC that keeps failing the same way does not flood it. */
  private deviceError(poller: Poller, key: string, message: string, reason: string, always = false): void {
    if (!always && poller.reported.get(key) === message) return;
    poller.reported.set(key, message);
    poller.health.lastError = { ts: this.uplink?.now() ?? Date.now(), message };
    this.uplink?.reportError(poller.device, message, reason);
  }

  /** Writes each changed writable property, reads it back and reports what the PLC confirmed. */
  private async writeDesired(poller: Poller, state: DesiredState): Promise<void> {
    const confirmed: Record<string, JsonValue> = {};
    for (const [property, value] of Object.entries(state.delta)) {
      const point = poller.map.writes.get(property);
      if (!point) {
        this.failure(poller, `${property}: no writable modbus+tcp form (a HoldingRegister or Coil with op writeproperty)`, 'not_writable');
        continue;
      }
      try {
        await this.writePoint(poller, point, value);
        const read = await this.readPoint(poller, point);
        if (!confirms(point, value, read)) {
          this.failure(poller, `${property}: wrote ${JSON.stringify(value)} but read back ${JSON.stringify(read)}`, 'readback_mismatch');
          continue;
        }
        confirmed[property] = read;
      } catch (error) {
        if (error instanceof InvalidValue) {
          this.failure(poller, `${property}: ${error.message}`, 'out_of_range');
          continue;
        }
        const fault = this.asFault(error);
        this.countFault(poller, fault);
        this.uplink?.reportError(poller.device, `${property}: write failed: ${fault.message}`, fault.reason);
      }
    }
    if (Object.keys(confirmed).length > 0)
      await this.uplink?.receive(poller.device, { kind: 'twin-reported', payload: { body: confirmed } }, PROTOCOL);
  }

  private failure(poller: Poller, message: string, reason: string): void {
    poller.health.errors++;
    poller.health.lastError = { ts: this.uplink?.now() ?? Date.now(), message };
    this.uplink?.refused(PROTOCOL, reason);
    this.uplink?.reportError(poller.device, message, reason);
  }

  private async writePoint(poller: Poller, point: RegisterPoint | WriteStep, value: unknown): Promise<void> {
    const connection = this.connectionFor(poller, point);
    if (point.entity === 'Coil') {
      if (typeof value !== 'boolean' && value !== 0 && value !== 1)
        throw new InvalidValue(`${JSON.stringify(value)} is not a coil value (true or false)`);
      await connection.writeCoil(point.unitId, point.address, value === true || value === 1);
      return;
    }
    const words = encodeRegisters(point, value);
    if (typeof words === 'string') throw new InvalidValue(words);
    await connection.writeRegisters(point.unitId, point.address, words);
  }

  /** Runs an action's write sequence; the output is the `modv:output` properties read afterwards. */
  private async invoke(poller: Poller, id: string, action: string, input: JsonValue | undefined): Promise<void> {
    const mapping = poller.map.actions.get(action);
    const result = async (payload: { id: string; output: JsonValue } | { id: string; error: string }) =>
      this.uplink?.receive(poller.device, { kind: 'action-result', action, payload: { body: payload } }, PROTOCOL);
    if (!mapping) {
      await result({ id, error: `action "${action}" has no modbus+tcp form in model ${poller.device.model}` });
      return;
    }
    try {
      for (const [index, step] of mapping.steps.entries()) {
        const value = stepInput(step, input);
        if (value === undefined) throw new InvalidValue(`write ${index + 1} takes ${describeInput(step)}, which the input does not have`);
        await this.writePoint(poller, step, value);
      }
      await result({ id, output: await this.outputOf(poller, mapping) });
    } catch (error) {
      const fault = error instanceof InvalidValue ? error : this.asFault(error);
      if (fault instanceof ModbusFault) this.countFault(poller, fault);
      await result({ id, error: fault.message });
    }
  }

  private async outputOf(poller: Poller, mapping: ActionMapping): Promise<JsonValue> {
    if (mapping.output.length === 0) return null;
    const output: Record<string, JsonValue> = {};
    for (const property of mapping.output) {
      const point = poller.map.reads.find((read) => read.property === property);
      if (point) output[property] = await this.readPoint(poller, point);
    }
    return output;
  }
}

class InvalidValue extends Error {}

function stepInput(step: WriteStep, input: JsonValue | undefined): JsonValue | undefined {
  if ('literal' in step.value) return step.value.literal;
  if (step.value.input === null) return input;
  if (input !== null && typeof input === 'object' && !Array.isArray(input)) return input[step.value.input];
  return undefined;
}

function describeInput(step: WriteStep): string {
  return 'input' in step.value && step.value.input !== null ? `input field "${step.value.input}"` : 'the action input';
}
