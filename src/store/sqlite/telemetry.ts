import type {
  AggregateQuery,
  AggregateSeries,
  JsonValue,
  RawQuery,
  StoredValue,
  TelemetrySample,
  TelemetryStore,
} from '../../telemetry/index.js';
import type { SqliteDatabase } from './database.js';

export interface WriteMetrics {
  batchCommitted(samples: number, rows: number, seconds: number): void;
}

export interface TelemetryWriterOptions {
  /** Commit as soon as this many samples wait, without waiting for the next tick. */
  maxBatchSamples: number;
}

interface PendingBatch {
  samples: TelemetrySample[];
  waiters: { resolve: () => void; reject: (error: unknown) => void }[];
}

// Numbers are stored as SQLite numbers so aggregates run in SQL; every other JSON value is
// stored as its JSON text (a string value keeps its quotes), so decoding is unambiguous.
const encodeValue = (value: JsonValue): number | string => (typeof value === 'number' ? value : JSON.stringify(value));
const decodeValue = (stored: number | string): JsonValue => (typeof stored === 'number' ? stored : (JSON.parse(stored) as JsonValue));

/**
 * Telemetry in SQLite with group commit: appends that arrive while the event loop is busy
 * are committed together in one transaction at the next turn, and every caller's promise
 * settles after that commit. One writer (this class) and WAL keep readers unblocked.
 */
export class SqliteTelemetryStore implements TelemetryStore {
  private readonly seriesIds = new Map<string, number>();
  private pending: PendingBatch = { samples: [], waiters: [] };
  private scheduled = false;
  private readonly insertSample;
  private readonly insertSeries;
  private readonly findSeries;
  private readonly commit;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly metrics: WriteMetrics,
    private readonly options: TelemetryWriterOptions = { maxBatchSamples: 20_000 },
  ) {
    this.insertSample = db.prepare('INSERT OR REPLACE INTO samples (series, ts, value) VALUES (?, ?, ?)');
    this.insertSeries = db.prepare('INSERT OR IGNORE INTO series (device_uid, property) VALUES (?, ?)');
    this.findSeries = db.prepare<[number, string], { id: number }>('SELECT id FROM series WHERE device_uid = ? AND property = ?');
    this.commit = db.transaction((samples: TelemetrySample[]) => {
      let rows = 0;
      for (const sample of samples) {
        for (const property in sample.values) {
          this.insertSample.run(this.seriesId(sample.deviceUid, property), sample.ts, encodeValue(sample.values[property] as JsonValue));
          rows++;
        }
      }
      return rows;
    });
  }

  private seriesId(deviceUid: number, property: string): number {
    const key = `${deviceUid}\u0000${property}`;
    let id = this.seriesIds.get(key);
    if (id === undefined) {
      this.insertSeries.run(deviceUid, property);
      id = (this.findSeries.get(deviceUid, property) as { id: number }).id;
      this.seriesIds.set(key, id);
    }
    return id;
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
      const rows = this.commit(batch.samples);
      this.metrics.batchCommitted(batch.samples.length, rows, Number(process.hrtime.bigint() - started) / 1e9);
      for (const waiter of batch.waiters) waiter.resolve();
    } catch (error) {
      // The transaction rolled back: nothing of this batch is stored, so nobody is acked and
      // devices resend. A cached series id may name a row that was rolled back: forget them.
      this.seriesIds.clear();
      for (const waiter of batch.waiters) waiter.reject(error);
    }
  }

  pendingSamples(): number {
    return this.pending.samples.length;
  }

  async flush(): Promise<void> {
    this.writePending();
  }

  private seriesOf(deviceUid: number, properties: string[]): Map<number, string> {
    const found = new Map<number, string>();
    for (const property of properties) {
      const row = this.findSeries.get(deviceUid, property);
      if (row) found.set(row.id, property);
    }
    return found;
  }

  async raw(query: RawQuery): Promise<StoredValue[]> {
    const series = this.seriesOf(query.deviceUid, query.properties);
    if (series.size === 0) return [];
    const ids = [...series.keys()];
    const params: (number | string)[] = [...ids, query.from, query.to];
    let resume = '';
    if (query.after) {
      const afterSeries = this.findSeries.get(query.deviceUid, query.after.property)?.id ?? -1;
      // Pages are ordered by (ts, property); series ids order properties within a timestamp.
      resume = 'AND (ts > ? OR (ts = ? AND series > ?))';
      params.push(query.after.ts, query.after.ts, afterSeries);
    }
    params.push(query.limit);
    const rows = this.db
      .prepare<(number | string)[], { series: number; ts: number; value: number | string }>(
        `SELECT series, ts, value FROM samples
         WHERE series IN (${ids.map(() => '?').join(',')}) AND ts >= ? AND ts < ? ${resume}
         ORDER BY ts, series LIMIT ?`,
      )
      .all(...params);
    return rows.map((row) => ({ property: series.get(row.series) as string, ts: row.ts, value: decodeValue(row.value) }));
  }

  async aggregate(query: AggregateQuery): Promise<AggregateSeries[]> {
    const select: Record<AggregateQuery['fn'], string> = {
      avg: 'avg(value) AS value',
      min: 'min(value) AS value',
      max: 'max(value) AS value',
      sum: 'sum(value) AS value',
      count: 'count(*) AS value',
      // SQLite takes a bare column from the row that holds min()/max(): the first/last value.
      first: 'value, min(ts) AS edge',
      last: 'value, max(ts) AS edge',
    };
    const statement = this.db.prepare<[number, number, number, number], { bucket: number; value: number | null; n: number }>(
      `SELECT (ts / CAST(? AS INTEGER)) AS bucket, ${select[query.fn]}, count(*) AS n FROM samples
       WHERE series = ? AND ts >= ? AND ts < ? GROUP BY bucket ORDER BY bucket`,
    );
    return query.properties.map((property) => {
      const id = this.findSeries.get(query.deviceUid, property)?.id;
      const rows = id === undefined ? [] : statement.all(query.bucketMs, id, query.from, query.to);
      return {
        property,
        points: rows.map((row) => ({ ts: row.bucket * query.bucketMs, value: row.value, count: row.n })),
      };
    });
  }

  async latest(deviceUid: number): Promise<StoredValue[]> {
    const rows = this.db
      .prepare<[number], { property: string; ts: number; value: number | string }>(
        `SELECT s.property, v.ts, v.value FROM series s
         JOIN samples v ON v.series = s.id AND v.ts = (SELECT max(ts) FROM samples WHERE series = s.id)
         WHERE s.device_uid = ? ORDER BY s.property`,
      )
      .all(deviceUid);
    return rows.map((row) => ({ property: row.property, ts: row.ts, value: decodeValue(row.value) }));
  }

  async prune(before: number, liveDeviceUids: () => Promise<Set<number>>): Promise<number> {
    const live = await liveDeviceUids();
    const all = this.db
      .prepare<[], { id: number; device_uid: number; property: string }>('SELECT id, device_uid, property FROM series')
      .all();
    const deleteOld = this.db.prepare('DELETE FROM samples WHERE series = ? AND ts < ?');
    const deleteAll = this.db.prepare('DELETE FROM samples WHERE series = ?');
    const dropSeries = this.db.prepare('DELETE FROM series WHERE id = ?');
    let removed = 0;
    for (const row of all) {
      // One series per transaction, yielding between them: pruning must not stall ingest.
      removed += this.db.transaction(() => {
        if (live.has(row.device_uid)) return deleteOld.run(row.id, before).changes;
        const changes = deleteAll.run(row.id).changes;
        dropSeries.run(row.id);
        // Forget the id before yielding: a batch committed meanwhile must not write values
        // under a dropped series id (they would be orphaned, and the id may be reused).
        this.seriesIds.delete(`${row.device_uid}\u0000${row.property}`);
        return changes;
      })();
      await new Promise((resolve) => setImmediate(resolve));
    }
    for (const key of [...this.seriesIds.keys()]) {
      if (!live.has(Number(key.split('\u0000')[0]))) this.seriesIds.delete(key);
    }
    return removed;
  }
}
