import { randomUUID } from 'node:crypto';
import { EventBus } from '../bus/index.js';
import { DomainError, invalid, notFound } from '../errors/index.js';
import type { CompiledThingModel } from '../model/index.js';
import { type DeviceRecord, pendingActionLimit } from '../registry/index.js';
import type { JsonValue } from '../telemetry/index.js';
import { formatDuration } from '../time/index.js';
import { type ActionResult, type Invocation, type InvocationStatus, isFinished } from './invocation.js';

/** Storage port for invocations. */
export interface InsertOutcome {
  stored: boolean;
  pending: number;
  /** The invocation that already holds the idempotency key; nothing was stored. */
  earlier?: Invocation;
}

export interface InvocationRepository {
  /**
   * Stores a new invocation unless the device already has `maxPending` open (queued or delivered)
   * ones; the check and the insert are one step, so concurrent callers cannot overshoot.
   */
  /**
   * Stores the invocation unless the device already has `maxPending` open, or one with the same
   * idempotency key (then that one is returned as `earlier`): checked and written atomically, so
   * concurrent calls with one key create one invocation.
   */
  insert(deviceUid: number, invocation: Invocation, maxPending: number): Promise<InsertOutcome>;
  update(invocation: Invocation): Promise<void>;
  get(id: string): Promise<Invocation | undefined>;
  byIdempotencyKey(deviceUid: number, key: string): Promise<Invocation | undefined>;
  listForDevice(deviceUid: number, query: { limit: number; before?: number; status?: InvocationStatus }): Promise<Invocation[]>;
  /** A device's queued or delivered ones, oldest first (for delivery on wake). */
  open(deviceUid: number): Promise<Invocation[]>;
  /** Open ones whose deadline is at or before `now`, earliest first, at most `limit`: the sweep's cost follows what is due, not what is queued. */
  due(now: number, limit: number): Promise<Invocation[]>;
}

/** What the command service counts; the node implements it with its metrics. */
export interface CommandMetrics {
  /** An invocation was refused because the device's queue is full; `actor` is who asked (`api`, `agent:<id>`, `cloud`). */
  queueFull(actor: string): void;
}

/** The transport side of actions: who can be reached now, and how to send. */
export interface ActionChannel {
  /** The device has a live session listening on this action's topic. */
  reachable(deviceId: string, action: string): boolean | Promise<boolean>;
  /** Delivers the request `{id, input}` of the invocation (a forwarding channel also needs its timeout). */
  send(invocation: Invocation): Promise<void>;
}

export type CommandEvents = {
  'invocation.changed': Invocation;
};

export interface InvokeRequest {
  action: string;
  input?: JsonValue | null;
  idempotencyKey?: string;
  timeoutMs?: number;
  ttlMs?: number;
  actor: string;
}

export interface InvokeOutcome {
  invocation: Invocation;
  /** True when the idempotency key matched an earlier invocation, which is returned instead. */
  replayed: boolean;
  /** Human note for queued invocations: why, and when delivery is expected. */
  note?: string;
}

export interface CommandDependencies {
  repository: InvocationRepository;
  channel: ActionChannel;
  modelOf(device: DeviceRecord): Promise<CompiledThingModel>;
  now(): number;
  defaultTimeoutMs: number;
  /** How long an invocation waits for an unreachable device (awake profile / sleepy profile). */
  queueTtlMs: { awake: number; sleepy: number };
  lastSeen(deviceId: string): number | null;
  metrics: CommandMetrics;
}

/** Due invocations expired per read: one sweep never holds a large backlog in memory at once. */
const EXPIRY_BATCH = 500;

/**
 * Device actions: validated against the model, delivered when the device can hear them,
 * answered on the result topic, and expired with a reason when nobody answers in time.
 */
export class CommandService {
  readonly events = new EventBus<CommandEvents>();

  constructor(private readonly deps: CommandDependencies) {}

  async invoke(device: DeviceRecord, request: InvokeRequest): Promise<InvokeOutcome> {
    const { deps } = this;
    const model = await deps.modelOf(device);
    const action = model.actions.get(request.action);
    if (!action) {
      const known = [...model.actions.keys()];
      throw notFound(`model "${model.id}" v${model.version} has no action "${request.action}"; it has: ${known.join(', ') || '(none)'}`);
    }
    const input = request.input ?? null;
    const problem = request.input === undefined ? null : action.checkInput(input);
    if (problem) throw invalid(`input of ${request.action} ${problem.message}`, [{ reason: problem.reason, message: problem.message }]);

    if (request.idempotencyKey) {
      const earlier = await deps.repository.byIdempotencyKey(device.uid, request.idempotencyKey);
      if (earlier) return { invocation: earlier, replayed: true };
    }
    const now = deps.now();
    const ttl = request.ttlMs ?? (device.network.sleepy ? deps.queueTtlMs.sleepy : deps.queueTtlMs.awake);
    const invocation: Invocation = {
      id: randomUUID(),
      deviceId: device.id,
      action: request.action,
      input,
      status: 'queued',
      actor: request.actor,
      createdAt: now,
      expiresAt: now + ttl,
      timeoutMs: request.timeoutMs ?? deps.defaultTimeoutMs,
    };
    if (request.idempotencyKey) invocation.idempotencyKey = request.idempotencyKey;
    const limit = pendingActionLimit(device.network);
    const { stored, pending, earlier } = await deps.repository.insert(device.uid, invocation, limit);
    if (earlier) return { invocation: earlier, replayed: true };
    if (!stored) {
      deps.metrics.queueFull(request.actor);
      throw queueFull(device, pending, limit);
    }
    this.events.emit('invocation.changed', invocation);
    if (await deps.channel.reachable(device.id, request.action)) {
      await this.deliver(invocation);
      return { invocation, replayed: false };
    }
    return { invocation, replayed: false, note: this.queuedNote(device, ttl) };
  }

  private queuedNote(device: DeviceRecord, ttl: number): string {
    const lastSeen = this.deps.lastSeen(device.id);
    if (device.network.sleepy) {
      const next = lastSeen === null ? 'unknown (never seen)' : `~${new Date(lastSeen + device.network.reportIntervalMs).toISOString()}`;
      return `queued (device asleep, next window expected ${next}); expires in ${formatDuration(ttl)} if it does not wake`;
    }
    return `queued (device offline); delivered when it reconnects, expires in ${formatDuration(ttl)}`;
  }

  private async deliver(invocation: Invocation): Promise<void> {
    const now = this.deps.now();
    // Recorded as delivered before it is sent: a device that answers at once must find it
    // delivered, and its answer must not be overwritten by a save that comes after it.
    invocation.status = 'delivered';
    invocation.deliveredAt = now;
    invocation.expiresAt = now + invocation.timeoutMs;
    await this.save(invocation);
    try {
      await this.deps.channel.send(invocation);
    } catch (error) {
      const current = await this.deps.repository.get(invocation.id);
      if (current?.status === 'delivered') {
        current.status = 'queued';
        delete current.deliveredAt;
        current.expiresAt = invocation.createdAt + (invocation.expiresAt - now);
        await this.save(current);
      }
      throw error;
    }
  }

  /**
   * Completes an invocation that another node ran on our behalf (an edge serving the device):
   * the outcome arrives with the uplink.
   */
  async completeRemotely(
    id: string,
    device: DeviceRecord,
    outcome: { status: InvocationStatus; output?: JsonValue; error?: string; completedAt?: number },
  ): Promise<void> {
    const invocation = await this.deps.repository.get(id);
    // Only the edge serving the invocation's device may answer it.
    if (!invocation || invocation.deviceId !== device.id || isFinished(invocation.status) || !isFinished(outcome.status)) return;
    invocation.status = outcome.status;
    invocation.completedAt = outcome.completedAt ?? this.deps.now();
    if (outcome.output !== undefined) invocation.output = outcome.output;
    if (outcome.error !== undefined) invocation.error = outcome.error;
    await this.save(invocation);
  }

  /** The device is listening again: send what waited for it, oldest first. */
  async deviceAwake(device: DeviceRecord): Promise<number> {
    const now = this.deps.now();
    let sent = 0;
    for (const invocation of await this.deps.repository.open(device.uid)) {
      if (invocation.status !== 'queued' || invocation.expiresAt <= now) continue;
      if (!(await this.deps.channel.reachable(device.id, invocation.action))) continue;
      await this.deliver(invocation);
      sent++;
    }
    return sent;
  }

  /** Applies a device's answer. Returns a problem to report to the device, or undefined. */
  async result(device: DeviceRecord, action: string, result: ActionResult): Promise<string | undefined> {
    const invocation = await this.deps.repository.get(result.id);
    if (!invocation || invocation.deviceId !== device.id || invocation.action !== action) {
      return `no invocation ${result.id} of ${action} is waiting for ${device.id}`;
    }
    if (isFinished(invocation.status)) return `invocation ${result.id} is already ${invocation.status}`;
    const now = this.deps.now();
    invocation.completedAt = now;
    if (result.error !== undefined) {
      invocation.status = 'failed';
      invocation.error = result.error;
    } else {
      const model = await this.deps.modelOf(device);
      const problem = model.actions.get(action)?.checkOutput(result.output ?? null);
      if (problem) {
        invocation.status = 'failed';
        invocation.error = `the device's output does not match the model: ${problem.message}`;
        invocation.output = result.output ?? null;
      } else {
        invocation.status = 'succeeded';
        invocation.output = result.output ?? null;
      }
    }
    await this.save(invocation);
    return invocation.status === 'failed' && result.error === undefined ? invocation.error : undefined;
  }

  /** Expires queued invocations past their TTL and delivered ones past their timeout. */
  async expireDue(): Promise<number> {
    const now = this.deps.now();
    let expired = 0;
    for (;;) {
      // Each expired one leaves the open set, so the next read starts after it.
      const due = await this.deps.repository.due(now, EXPIRY_BATCH);
      for (const invocation of due) {
        invocation.error =
          invocation.status === 'queued'
            ? `device did not become reachable within ${formatDuration(invocation.expiresAt - invocation.createdAt)}`
            : `no result within ${formatDuration(invocation.timeoutMs)} of delivery`;
        invocation.status = 'expired';
        invocation.completedAt = now;
        await this.save(invocation);
        expired++;
      }
      if (due.length < EXPIRY_BATCH) return expired;
      // A large backlog due at once: let requests and device messages in between batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  async get(id: string): Promise<Invocation> {
    const invocation = await this.deps.repository.get(id);
    if (!invocation) throw notFound(`no invocation "${id}"`);
    return invocation;
  }

  list(device: DeviceRecord, query: { limit: number; before?: number; status?: InvocationStatus }): Promise<Invocation[]> {
    return this.deps.repository.listForDevice(device.uid, query);
  }

  /** Resolves with the invocation once finished, or as it stands after `ms`. */
  async waitFor(id: string, ms: number): Promise<Invocation> {
    const current = await this.get(id);
    if (isFinished(current.status) || ms <= 0) return current;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        off();
        this.get(id).then(resolve, () => resolve(current));
      }, ms);
      const off = this.events.on('invocation.changed', (changed) => {
        if (changed.id !== id || !isFinished(changed.status)) return;
        clearTimeout(timer);
        off();
        resolve(changed);
      });
    });
  }

  private async save(invocation: Invocation): Promise<void> {
    await this.deps.repository.update(invocation);
    this.events.emit('invocation.changed', { ...invocation });
  }
}

function queueFull(device: DeviceRecord, pending: number, limit: number): DomainError {
  const drains = device.network.sleepy ? 'at its next wake windows' : 'when it reconnects';
  return new DomainError(
    'too_many_requests',
    `device ${device.id} already has ${pending} pending actions (limit ${limit}): wait for it to drain its queue ${drains}, or for queued actions to expire, then retry`,
    { reason: 'queue_full', pending, limit },
  );
}
