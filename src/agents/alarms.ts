import { randomUUID } from 'node:crypto';
import { EventBus } from '../bus/index.js';
import { conflict, notFound } from '../errors/index.js';
import { SEVERITIES, type Severity } from './definition.js';

export type AlarmState = 'active' | 'acknowledged' | 'cleared';

export interface AlarmHistoryEntry {
  ts: number;
  event: 'raised' | 'repeated' | 'escalated' | 'acknowledged' | 'cleared';
  severity: Severity;
  by?: string;
  note?: string;
}

export interface NotificationRecord {
  sink: string;
  event: AlarmHistoryEntry['event'];
  ts: number;
  status: 'delivered' | 'failed';
  attempts: number;
  error?: string;
}

export interface Alarm {
  id: string;
  agentId: string;
  deviceId: string;
  type: string;
  severity: Severity;
  state: AlarmState;
  message: string;
  /** How many times the condition was raised while this alarm was open. */
  count: number;
  raisedAt: number;
  lastRaisedAt: number;
  decisionId?: string;
  acknowledgedAt?: number;
  acknowledgedBy?: string;
  clearedAt?: number;
  clearedBy?: string;
  history: AlarmHistoryEntry[];
  notifications: NotificationRecord[];
}

export interface AlarmQuery {
  state?: AlarmState | 'open';
  deviceId?: string;
  agentId?: string;
  limit: number;
  before?: number;
}

export interface AlarmRepository {
  insert(alarm: Alarm): Promise<void>;
  update(alarm: Alarm): Promise<void>;
  get(id: string): Promise<Alarm | undefined>;
  /** The open (active or acknowledged) alarm of this (agent, device, type), if any. */
  findOpen(agentId: string, deviceId: string, type: string): Promise<Alarm | undefined>;
  list(query: AlarmQuery): Promise<Alarm[]>;
}

/** Where alarm events go (MQTT topic, webhook…). A sink retries on its own and reports the outcome. */
export interface AlarmSink {
  name: string;
  deliver(alarm: Alarm, event: AlarmHistoryEntry): Promise<{ status: 'delivered' | 'failed'; attempts: number; error?: string }>;
}

export type AlarmEvents = { changed: { alarm: Alarm; event: AlarmHistoryEntry } };

const rank = (severity: Severity) => SEVERITIES.length - SEVERITIES.indexOf(severity);

/** Alarms with a raise → acknowledge → clear lifecycle, one open alarm per (agent, device, type). */
export class AlarmService {
  readonly events = new EventBus<AlarmEvents>();
  /**
   * Every change to a stored alarm is a read-modify-write of its record; they run one at a time
   * so a sink's outcome arriving mid-acknowledge can neither undo the acknowledgement nor be lost.
   */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly repository: AlarmRepository,
    private readonly sinks: AlarmSink[],
    private readonly now: () => number,
  ) {}

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  raise(input: {
    agentId: string;
    deviceId: string;
    type: string;
    severity: Severity;
    message: string;
    decisionId?: string;
  }): Promise<Alarm> {
    return this.exclusive(() => this.raiseNow(input));
  }

  private async raiseNow(input: Parameters<AlarmService['raise']>[0]): Promise<Alarm> {
    const at = this.now();
    const open = await this.repository.findOpen(input.agentId, input.deviceId, input.type);
    if (open) {
      const escalated = rank(input.severity) > rank(open.severity);
      open.count++;
      open.lastRaisedAt = at;
      open.message = input.message;
      if (input.decisionId) open.decisionId = input.decisionId;
      if (escalated) open.severity = input.severity;
      const entry: AlarmHistoryEntry = { ts: at, event: escalated ? 'escalated' : 'repeated', severity: open.severity };
      open.history.push(entry);
      await this.repository.update(open);
      // Repeats are counted, not broadcast: a flapping condition must not flood operators.
      if (escalated) this.notify(open, entry);
      return open;
    }
    const entry: AlarmHistoryEntry = { ts: at, event: 'raised', severity: input.severity };
    const alarm: Alarm = {
      id: randomUUID(),
      agentId: input.agentId,
      deviceId: input.deviceId,
      type: input.type,
      severity: input.severity,
      state: 'active',
      message: input.message,
      count: 1,
      raisedAt: at,
      lastRaisedAt: at,
      ...(input.decisionId ? { decisionId: input.decisionId } : {}),
      history: [entry],
      notifications: [],
    };
    await this.repository.insert(alarm);
    this.notify(alarm, entry);
    return alarm;
  }

  acknowledge(id: string, by: string, note?: string): Promise<Alarm> {
    return this.exclusive(() => this.acknowledgeNow(id, by, note));
  }

  private async acknowledgeNow(id: string, by: string, note?: string): Promise<Alarm> {
    const alarm = await this.get(id);
    if (alarm.state !== 'active') throw conflict(`alarm ${id} is ${alarm.state}; only an active alarm can be acknowledged`);
    const at = this.now();
    alarm.state = 'acknowledged';
    alarm.acknowledgedAt = at;
    alarm.acknowledgedBy = by;
    const entry: AlarmHistoryEntry = { ts: at, event: 'acknowledged', severity: alarm.severity, by, ...(note ? { note } : {}) };
    alarm.history.push(entry);
    await this.repository.update(alarm);
    this.notify(alarm, entry);
    return alarm;
  }

  clear(id: string, by: string, note?: string): Promise<Alarm> {
    return this.exclusive(() => this.clearNow(id, by, note));
  }

  private async clearNow(id: string, by: string, note?: string): Promise<Alarm> {
    const alarm = await this.get(id);
    if (alarm.state === 'cleared') throw conflict(`alarm ${id} is already cleared`);
    const at = this.now();
    alarm.state = 'cleared';
    alarm.clearedAt = at;
    alarm.clearedBy = by;
    const entry: AlarmHistoryEntry = { ts: at, event: 'cleared', severity: alarm.severity, by, ...(note ? { note } : {}) };
    alarm.history.push(entry);
    await this.repository.update(alarm);
    this.notify(alarm, entry);
    return alarm;
  }

  /** Clears the open alarm of (agent, device, type), if there is one: the condition recovered. */
  recovered(agentId: string, deviceId: string, type: string): Promise<Alarm | undefined> {
    return this.exclusive(async () => {
      const open = await this.repository.findOpen(agentId, deviceId, type);
      return open ? this.clearNow(open.id, `agent:${agentId}`, 'condition recovered') : undefined;
    });
  }

  async get(id: string): Promise<Alarm> {
    const alarm = await this.repository.get(id);
    if (!alarm) throw notFound(`no alarm "${id}"`);
    return alarm;
  }

  list(query: AlarmQuery): Promise<Alarm[]> {
    return this.repository.list(query);
  }

  private notify(alarm: Alarm, event: AlarmHistoryEntry): void {
    this.events.emit('changed', { alarm, event });
    for (const sink of this.sinks) {
      sink
        .deliver(alarm, event)
        .catch((error: Error) => ({ status: 'failed' as const, attempts: 1, error: error.message }))
        .then((outcome) =>
          this.exclusive(async () => {
            const current = await this.repository.get(alarm.id);
            if (!current) return;
            current.notifications.push({ sink: sink.name, event: event.event, ts: this.now(), ...outcome });
            await this.repository.update(current);
          }),
        )
        .catch(() => undefined);
    }
  }
}
