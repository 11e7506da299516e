import { randomUUID } from 'node:crypto';
import {
  CLOUD_INVOCATION_PREFIX,
  deviceIdOf,
  type EdgeRecord,
  type EdgeRepository,
  type GapReport,
  malformedRecord,
  type Outbox,
  type OutboxStats,
  type SequencedRecord,
  type UplinkApplied,
  type UplinkRecord,
} from '../../edge/index.js';
import type { SqliteDatabase } from './database.js';

function tsOf(record: UplinkRecord, now: number): number {
  return record.kind === 'telemetry' || record.kind === 'twin' || record.kind === 'event' ? record.ts : now;
}

/** The edge's outbox. `insertRows` is also used inside the telemetry commit (same transaction). */
export class SqliteOutbox implements Outbox {
  private readonly insert;
  private readonly saveLease;
  private readonly trimRows;
  private dropped = 0;
  /**
   * Highest sequence number handed out for sending. Kept in the database so that after a
   * restart records sent just before the crash (perhaps applied, ack never seen) stay protected.
   */
  private leasedUpTo: number;
  readonly epoch: string;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly now: () => number,
  ) {
    this.insert = db.prepare('INSERT INTO outbox (kind, device_id, ts, bytes, payload) VALUES (?, ?, ?, ?, ?)');
    this.trimRows = db.prepare('DELETE FROM outbox WHERE seq <= ?');
    this.saveLease = db.prepare(
      "INSERT INTO settings (key, value) VALUES ('outbox.leasedUpTo', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    );
    const saved = db.prepare<[], { value: string }>("SELECT value FROM settings WHERE key = 'outbox.leasedUpTo'").get();
    this.leasedUpTo = saved ? Number(saved.value) : 0;
    const epoch = db.prepare<[], { value: string }>("SELECT value FROM settings WHERE key = 'outbox.epoch'").get();
    this.epoch = epoch?.value ?? randomUUID();
    if (!epoch) db.prepare("INSERT INTO settings (key, value) VALUES ('outbox.epoch', ?)").run(this.epoch);
  }

  /** Writes records in the caller's transaction (or its own statement-level one). */
  insertRows(records: UplinkRecord[]): void {
    const now = this.now();
    for (const record of records) {
      const payload = JSON.stringify(record);
      this.insert.run(record.kind, deviceIdOf(record) ?? null, tsOf(record, now), payload.length, payload);
    }
  }

  async append(records: UplinkRecord[]): Promise<void> {
    this.db.transaction(() => this.insertRows(records))();
  }

  async lease(afterSeq: number, limit: number, maxBytes: number): Promise<SequencedRecord[]> {
    const out: SequencedRecord[] = [];
    let bytes = 0;
    for (const row of this.db
      .prepare<[number, number], { seq: number; bytes: number; payload: string }>(
        'SELECT seq, bytes, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?',
      )
      .iterate(afterSeq, limit)) {
      if (out.length > 0 && bytes + row.bytes > maxBytes) break;
      bytes += row.bytes;
      out.push({ seq: row.seq, record: JSON.parse(row.payload) as UplinkRecord });
    }
    const last = out[out.length - 1];
    if (last && last.seq > this.leasedUpTo) this.setLease(last.seq);
    return out;
  }

  async releaseAbove(seq: number): Promise<void> {
    if (seq < this.leasedUpTo) this.setLease(seq);
  }

  private setLease(seq: number): void {
    this.saveLease.run(String(seq));
    this.leasedUpTo = seq;
  }

  async trim(upToSeq: number): Promise<number> {
    return this.trimRows.run(upToSeq).changes;
  }

  async stats(): Promise<OutboxStats> {
    const row = this.db
      .prepare<[], { records: number; bytes: number | null; oldest: number | null }>(
        'SELECT count(*) AS records, sum(bytes) AS bytes, min(ts) AS oldest FROM outbox',
      )
      .get() as { records: number; bytes: number | null; oldest: number | null };
    const last = this.db.prepare<[], { seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").get();
    return { records: row.records, bytes: row.bytes ?? 0, oldestTs: row.oldest, lastSeq: last?.seq ?? 0, dropped: this.dropped };
  }

  /**
   * Keeps the outbox under its quota. Telemetry goes first, device events only when telemetry
   * cannot make room; decisions, alarms, twin changes and gap reports are never removed (they
   * are small and matter more). drop-oldest deletes the oldest samples;
   * downsample deletes every other sample of the oldest half. Either way the loss is counted per
   * device and returned as a gap report, which is itself queued for the cloud. Leased records
   * (sent, perhaps applied) are never candidates.
   */
  async enforceQuota(quotaBytes: number, policy: GapReport['policy'], now: number): Promise<GapReport | undefined> {
    const total = (this.db.prepare<[], { bytes: number | null }>('SELECT sum(bytes) AS bytes FROM outbox').get()?.bytes ?? 0) as number;
    if (total <= quotaBytes) return undefined;
    // Free a tenth of the quota beyond the excess, so the policy does not run on every append.
    const toFree = total - quotaBytes + Math.floor(quotaBytes / 10);
    const candidates = this.db
      .prepare<[number], { seq: number; device_id: string; ts: number; bytes: number }>(
        "SELECT seq, device_id, ts, bytes FROM outbox WHERE kind = 'telemetry' AND seq > ? ORDER BY seq",
      )
      .iterate(this.leasedUpTo);
    const victims: { seq: number; device_id: string; ts: number; event: boolean }[] = [];
    let freed = 0;
    let index = 0;
    for (const row of candidates) {
      if (freed >= toFree) break;
      // downsample: thin the oldest records by half instead of cutting a continuous range.
      if (policy === 'downsample' && index++ % 2 === 1) continue;
      victims.push({ ...row, event: false });
      freed += row.bytes;
    }
    if (freed < toFree) {
      // Telemetry alone cannot make room (a flood of device events): the oldest events go too,
      // counted like samples, so the quota is a bound and not a wish.
      const events = this.db
        .prepare<[number], { seq: number; device_id: string; ts: number; bytes: number }>(
          "SELECT seq, device_id, ts, bytes FROM outbox WHERE kind = 'event' AND seq > ? ORDER BY seq",
        )
        .iterate(this.leasedUpTo);
      for (const row of events) {
        if (freed >= toFree) break;
        victims.push({ ...row, event: true });
        freed += row.bytes;
      }
    }
    if (victims.length === 0) return undefined;
    const gap: GapReport = { policy, at: now, devices: {}, total: victims.length };
    const remove = this.db.prepare('DELETE FROM outbox WHERE seq = ?');
    this.db.transaction(() => {
      for (const victim of victims) {
        remove.run(victim.seq);
        const entry = gap.devices[victim.device_id] ?? { dropped: 0, from: victim.ts, to: victim.ts };
        if (victim.event) {
          entry.events = (entry.events ?? 0) + 1;
          gap.events = (gap.events ?? 0) + 1;
        } else {
          entry.dropped++;
        }
        entry.from = Math.min(entry.from, victim.ts);
        entry.to = Math.max(entry.to, victim.ts);
        gap.devices[victim.device_id] = entry;
      }
      this.insertRows([{ kind: 'gap', gap }]);
    })();
    this.dropped += victims.length;
    return gap;
  }
}

export class SqliteEdges implements EdgeRepository {
  private readonly insertTelemetry;
  private readonly insertEvent;
  private readonly upsertDecision;
  private readonly upsertAlarm;
  private readonly upsertInvocation;
  private readonly insertGap;
  private readonly readRecord;
  private readonly writeRecord;

  constructor(private readonly db: SqliteDatabase) {
    this.insertTelemetry = db.prepare('INSERT INTO telemetry (device_uid, ts, payload) VALUES (?, ?, ?)');
    this.insertEvent = db.prepare('INSERT INTO device_events (device_uid, name, ts, data) VALUES (?, ?, ?, ?)');
    this.upsertDecision = db.prepare(
      `INSERT INTO decisions (id, agent_id, device_id, ts, outcome, open, record) VALUES (?, ?, ?, ?, ?, 0, ?)
       ON CONFLICT (id) DO UPDATE SET outcome = excluded.outcome, record = excluded.record
       WHERE decisions.device_id = excluded.device_id AND decisions.agent_id = excluded.agent_id`,
    );
    this.upsertAlarm = db.prepare(
      `INSERT INTO alarms (id, agent_id, device_id, type, state, raised_at, record) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET state = excluded.state, record = excluded.record
       WHERE alarms.device_id = excluded.device_id AND alarms.agent_id = excluded.agent_id`,
    );
    this.upsertInvocation = db.prepare(
      `INSERT INTO invocations (id, device_uid, status, idempotency_key, created_at, record) VALUES (?, ?, ?, NULL, ?, ?)
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, record = excluded.record
       WHERE invocations.device_uid = excluded.device_uid`,
    );
    this.insertGap = db.prepare('INSERT INTO edge_gaps (edge_id, at, gap) VALUES (?, ?, ?)');
    this.readRecord = db.prepare<[string], { record: string }>('SELECT record FROM edges WHERE id = ?');
    this.writeRecord = db.prepare('UPDATE edges SET record = ? WHERE id = ?');
  }

  async insert(edge: EdgeRecord, tokenHash: string): Promise<void> {
    this.db.prepare('INSERT INTO edges (id, token_hash, record) VALUES (?, ?, ?)').run(edge.id, tokenHash, JSON.stringify(edge));
  }
  async get(id: string): Promise<EdgeRecord | undefined> {
    const row = this.readRecord.get(id);
    return row && (JSON.parse(row.record) as EdgeRecord);
  }
  async list(): Promise<EdgeRecord[]> {
    return this.db
      .prepare<[], { record: string }>('SELECT record FROM edges ORDER BY id')
      .all()
      .map((row) => JSON.parse(row.record) as EdgeRecord);
  }
  async update(edge: EdgeRecord): Promise<void> {
    // The applied mark and the gap totals are owned by applyUplink: the caller's copy may have
    // been read before a batch committed, so they are taken from the stored record, read and
    // written in one synchronous transaction (an await between the two would let a batch commit
    // in between and be overwritten: a gap report applied and then lost).
    this.db.transaction(() => {
      const row = this.readRecord.get(edge.id);
      const current = row ? (JSON.parse(row.record) as EdgeRecord) : undefined;
      const owned = current
        ? { appliedSeq: current.appliedSeq, gaps: current.gaps, ...(current.outboxEpoch ? { outboxEpoch: current.outboxEpoch } : {}) }
        : {};
      this.writeRecord.run(JSON.stringify({ ...edge, ...owned }), edge.id);
    })();
  }
  async tokenHash(id: string): Promise<string | undefined> {
    return this.db.prepare<[string], { token_hash: string }>('SELECT token_hash FROM edges WHERE id = ?').get(id)?.token_hash;
  }
  async setTokenHash(id: string, hash: string): Promise<void> {
    this.db.prepare('UPDATE edges SET token_hash = ? WHERE id = ?').run(hash, id);
  }
  async delete(id: string): Promise<void> {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM edge_gaps WHERE edge_id = ?').run(id);
      this.db.prepare('DELETE FROM edges WHERE id = ?').run(id);
    })();
  }

  async resumeUplink(edgeId: string, outboxEpoch: string): Promise<{ appliedSeq: number; restarted: boolean }> {
    return this.db.transaction(() => {
      const row = this.readRecord.get(edgeId);
      if (!row) throw new Error(`no edge ${edgeId}`);
      const edge = JSON.parse(row.record) as EdgeRecord;
      if (edge.outboxEpoch === outboxEpoch) return { appliedSeq: edge.appliedSeq, restarted: false };
      // The first epoch an edge names is adopted as is (an edge from before epochs keeps its mark).
      const restarted = edge.outboxEpoch !== undefined;
      if (restarted) edge.appliedSeq = 0;
      edge.outboxEpoch = outboxEpoch;
      this.writeRecord.run(JSON.stringify(edge), edgeId);
      return { appliedSeq: edge.appliedSeq, restarted };
    })();
  }

  async gaps(edgeId: string, limit: number): Promise<GapReport[]> {
    return this.db
      .prepare<[string, number], { gap: string }>('SELECT gap FROM edge_gaps WHERE edge_id = ? ORDER BY id DESC LIMIT ?')
      .all(edgeId, limit)
      .map((row) => JSON.parse(row.gap) as GapReport);
  }

  async applyUplink(
    edgeId: string,
    records: SequencedRecord[],
    deviceUid: (deviceId: string) => number | undefined,
  ): Promise<UplinkApplied> {
    return this.db.transaction((): UplinkApplied => {
      const row = this.readRecord.get(edgeId);
      if (!row) throw new Error(`no edge ${edgeId}`);
      const edge = JSON.parse(row.record) as EdgeRecord;
      const applied: SequencedRecord[] = [];
      let skippedUnknownDevice = 0;
      let skippedMalformed = 0;
      let mark = edge.appliedSeq;
      for (const entry of records) {
        if (entry.seq <= mark) continue;
        mark = entry.seq;
        const { record } = entry;
        // Skipped, not refused: a batch refused for one bad record would be re-sent forever.
        if (malformedRecord(record) !== undefined) {
          skippedMalformed++;
          continue;
        }
        switch (record.kind) {
          case 'telemetry': {
            const uid = deviceUid(record.deviceId);
            if (uid === undefined) {
              skippedUnknownDevice++;
              continue;
            }
            this.insertTelemetry.run(uid, record.ts, JSON.stringify(record.values));
            break;
          }
          case 'event': {
            const uid = deviceUid(record.deviceId);
            if (uid === undefined) {
              skippedUnknownDevice++;
              continue;
            }
            this.insertEvent.run(uid, record.name, record.ts, record.data === null ? null : JSON.stringify(record.data));
            break;
          }
          case 'decision': {
            const d = record.decision as { id: string; agentId: string; deviceId: string; ts: number; outcome: string };
            // An edge speaks for its own devices only; an id that names another device's record changes nothing.
            if (deviceUid(d.deviceId) === undefined) {
              skippedUnknownDevice++;
              continue;
            }
            this.upsertDecision.run(d.id, d.agentId, d.deviceId, d.ts, d.outcome, JSON.stringify(record.decision));
            break;
          }
          case 'alarm': {
            const a = record.alarm as { id: string; agentId: string; deviceId: string; type: string; state: string; raisedAt: number };
            if (deviceUid(a.deviceId) === undefined) {
              skippedUnknownDevice++;
              continue;
            }
            this.upsertAlarm.run(a.id, a.agentId, a.deviceId, a.type, a.state, a.raisedAt, JSON.stringify(record.alarm));
            break;
          }
          case 'invocation': {
            const i = record.invocation as { id: string; deviceId: string; status: string; createdAt: number; idempotencyKey?: string };
            // The outcome of an action the cloud forwarded completes the cloud's own invocation instead.
            if (i.idempotencyKey?.startsWith(CLOUD_INVOCATION_PREFIX)) break;
            const uid = deviceUid(i.deviceId);
            if (uid === undefined) {
              skippedUnknownDevice++;
              continue;
            }
            this.upsertInvocation.run(i.id, uid, i.status, i.createdAt, JSON.stringify(record.invocation));
            break;
          }
          case 'gap':
            this.insertGap.run(edgeId, record.gap.at, JSON.stringify(record.gap));
            edge.gaps = { reports: edge.gaps.reports + 1, dropped: edge.gaps.dropped + record.gap.total, last: record.gap };
            break;
          case 'twin':
            // Applied to the twin service after the commit (idempotent: newest timestamp wins).
            break;
        }
        applied.push(entry);
      }
      edge.appliedSeq = mark;
      this.writeRecord.run(JSON.stringify(edge), edgeId);
      return { appliedUpTo: mark, applied, skippedUnknownDevice, skippedMalformed };
    })();
  }
}
