import type {
  AggregateQuery,
  AggregateSeries,
  JsonValue,
  RawPage,
  RawQuery,
  StoredValue,
  TelemetrySample,
  TelemetryStore,
} from '../../telemetry/index.js';
import { pruneDeviceRows, type SqliteDatabase } from './database.js';

export interface WriteMetrics {
  batchCommitted(samples: number, rows: number, seconds: number): void;
}

export interface TelemetryWriterOptions {
  /** Commit as soon as this many samples wait, without waiting for the next turn of the loop. */
  maxBatchSamples: number;
  /**
   * Runs inside the commit transaction: an edge writes its outbox rows here, so a sample is
   * stored locally and queued for the cloud together or not at all.
   */
  alsoInTransaction?: (samples: TelemetrySample[]) => void;
}

interface PendingBatch {
  samples: TelemetrySample[];
  waiters: { resolve: () => void; reject: (error: unknown) => void }[];
}

interface SampleRow {
  id: number;
  ts: number;
  payload: string;
}

/** JSON path of a property; model property names are [A-Za-z_][A-Za-z0-9_-]*, quoted for the dash. */
const pathOf = (property: string) => `$."${property}"`;

/**
 * Telemetry in SQLite, one row per sample (device, time, values as JSON), with group commit:
 * appends that arrive while the event loop is busy are committed together in one transaction
 * at the next turn, and every caller's promise settles after that commit. Samples with equal
 * timestamps are all kept, in arrival order.
 */
export class SqliteTelemetryStore implements TelemetryStore {
  private pending: PendingBatch = { samples: [], waiters: [] };
  private scheduled = false;
  private readonly commit;
  /** Presence falls back to the newest sample of a device never seen this run (device listings). */
  private readonly newestTs;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly metrics: WriteMetrics,
    private readonly options: TelemetryWriterOptions = { maxBatchSamples: 5_000 },
  ) {
    const insert = db.prepare('INSERT INTO telemetry (device_uid, ts, payload) VALUES (?, ?, ?)');
    this.newestTs = db.prepare<[number], { ts: number | null }>('SELECT max(ts) AS ts FROM telemetry WHERE device_uid = ?');
    const alsoInTransaction = options.alsoInTransaction;
    this.commit = db.transaction((samples: TelemetrySample[]) => {
      for (const sample of samples) insert.run(sample.deviceUid, sample.ts, JSON.stringify(sample.values));
      alsoInTransaction?.(samples);
    });
  }

  append(samples: TelemetrySample[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const batch = this.pending;
      for (const sample of samples) batch.samples.push(sample);
      batch.waiters.push({ resolve, reject });
      if (batch.samples.length >= this.options.maxBatchSamples) {
        this.writePending();
      } else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.writePending());
      }
    });
  }

  private writePending(): void {
    this.scheduled = false;
    const batch = this.pending;
    if (batch.waiters.length === 0) return;
    this.pending = { samples: [], waiters: [] };
    const started = process.hrtime.bigint();
    try {
      this.commit(batch.samples);
      let values = 0;
      for (const sample of batch.samples) for (const _ in sample.values) values++;
      this.metrics.batchCommitted(batch.samples.length, values, Number(process.hrtime.bigint() - started) / 1e9);
      for (const waiter of batch.waiters) waiter.resolve();
    } catch (error) {
      // The transaction rolled back: nothing of this batch is stored, so nobody is acknowledged
      // and devices resend.
      for (const waiter of batch.waiters) waiter.reject(error);
    }
  }

  pendingSamples(): number {
    return this.pending.samples.length;
  }

  async flush(): Promise<void> {
    this.writePending();
  }

  async raw(query: RawQuery): Promise<RawPage> {
    const properties = [...new Set(query.properties)].sort();
    const { after } = query;
    const rows = after
      ? this.db
          .prepare<[number, number, number, number, number, number], SampleRow>(
            `SELECT id, ts, payload FROM telemetry
             WHERE device_uid = ? AND ts >= ? AND ts < ? AND (ts > ? OR (ts = ? AND id >= ?))
             ORDER BY ts, id`,
          )
          .iterate(query.deviceUid, Math.max(query.from, after.ts), query.to, after.ts, after.ts, after.seq)
      : this.db
          .prepare<[number, number, number], SampleRow>(
            'SELECT id, ts, payload FROM telemetry WHERE device_uid = ? AND ts >= ? AND ts < ? ORDER BY ts, id',
          )
          .iterate(query.deviceUid, query.from, query.to);
    // Values are ordered by (time, arrival, property name); a page may end inside a sample.
    const items: (StoredValue & { seq: number })[] = [];
    let more = false;
    scan: for (const row of rows) {
      const values = JSON.parse(row.payload) as Record<string, JsonValue>;
      for (const property of properties) {
        if (!(property in values)) continue;
        if (after && row.id === after.seq && property <= after.property) continue;
        if (items.length === query.limit) {
          more = true;
          break scan;
        }
        items.push({ property, ts: row.ts, value: values[property] as JsonValue, seq: row.id });
      }
    }
    const last = items.at(-1);
    return {
      items: items.map(({ seq: _seq, ...value }) => value),
      ...(more && last ? { next: { ts: last.ts, seq: last.seq, property: last.property } } : {}),
    };
  }

  async aggregate(query: AggregateQuery): Promise<AggregateSeries[]> {
    const select: Record<AggregateQuery['fn'], string> = {
      avg: 'avg(v) AS value',
      min: 'min(v) AS value',
      max: 'max(v) AS value',
      sum: 'sum(v) AS value',
      count: 'count(v) AS value',
      // SQLite takes a bare column from the row that holds min()/max(): the first/last value.
      first: 'v AS value, min(ts) AS edge',
      last: 'v AS value, max(ts) AS edge',
    };
    const statement = this.db.prepare<[number, string, number, number, number], { bucket: number; value: number | null; n: number }>(
      `SELECT bucket, ${select[query.fn]}, count(v) AS n FROM (
         SELECT ts, (ts / CAST(? AS INTEGER)) AS bucket, json_extract(payload, ?) AS v
         FROM telemetry WHERE device_uid = ? AND ts >= ? AND ts < ?)
       WHERE v IS NOT NULL GROUP BY bucket ORDER BY bucket`,
    );
    return query.properties.map((property) => ({
      property,
      points: statement
        .all(query.bucketMs, pathOf(property), query.deviceUid, query.from, query.to)
        .map((row) => ({ ts: row.bucket * query.bucketMs, value: row.value, count: row.n })),
    }));
  }

  async latest(deviceUid: number, properties: string[]): Promise<StoredValue[]> {
    // Newest first until every property is found; most devices send all of them each time, so
    // this usually reads one row. Sparse properties cost a bounded scan.
    const missing = new Set(properties);
    const found: StoredValue[] = [];
    const rows = this.db
      .prepare<[number], SampleRow>('SELECT id, ts, payload FROM telemetry WHERE device_uid = ? ORDER BY ts DESC, id DESC LIMIT 10000')
      .iterate(deviceUid);
    for (const row of rows) {
      const values = JSON.parse(row.payload) as Record<string, JsonValue>;
      for (const property of missing) {
        if (!(property in values)) continue;
        found.push({ property, ts: row.ts, value: values[property] as JsonValue });
        missing.delete(property);
      }
      if (missing.size === 0) break;
    }
    return found.sort((a, b) => (a.property < b.property ? -1 : 1));
  }

  async lastSampleAt(deviceUid: number): Promise<number | null> {
    const row = this.newestTs.get(deviceUid);
    return row?.ts ?? null;
  }

  prune(before: number, liveDeviceUids: () => Promise<Set<number>>): Promise<number> {
    return pruneDeviceRows(this.db, 'telemetry', before, liveDeviceUids);
  }
}
