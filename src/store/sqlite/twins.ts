import type { TwinHistoryEntry, TwinRepository, TwinState } from '../../twin/index.js';
import type { SqliteDatabase } from './database.js';

export class SqliteTwins implements TwinRepository {
  private readonly read;
  private readonly write;
  private readonly saveAll;
  private readonly insertHistory;

  constructor(private readonly db: SqliteDatabase) {
    this.read = db.prepare<[number], { state: string }>('SELECT state FROM twins WHERE device_uid = ?');
    this.write = db.prepare(
      'INSERT INTO twins (device_uid, state) VALUES (?, ?) ON CONFLICT (device_uid) DO UPDATE SET state = excluded.state',
    );
    this.insertHistory = db.prepare('INSERT INTO twin_history (device_uid, ts, section, entry) VALUES (?, ?, ?, ?)');
    this.saveAll = db.transaction((twins: { deviceUid: number; twin: TwinState }[]) => {
      for (const { deviceUid, twin } of twins) this.write.run(deviceUid, JSON.stringify(twin));
    });
  }

  async load(deviceUid: number): Promise<TwinState | undefined> {
    const row = this.read.get(deviceUid);
    return row && (JSON.parse(row.state) as TwinState);
  }
  async saveMany(twins: { deviceUid: number; twin: TwinState }[]): Promise<void> {
    this.saveAll(twins);
  }
  async appendHistory(deviceUid: number, entry: TwinHistoryEntry): Promise<void> {
    this.insertHistory.run(deviceUid, entry.ts, entry.section, JSON.stringify(entry));
  }
  async history(deviceUid: number, query: { limit: number; before?: number; section?: 'desired' | 'reported' }) {
    const where = ['device_uid = ?'];
    const params: (number | string)[] = [deviceUid];
    if (query.before !== undefined) {
      where.push('seq < ?');
      params.push(query.before);
    }
    if (query.section !== undefined) {
      where.push('section = ?');
      params.push(query.section);
    }
    return this.db
      .prepare<(number | string)[], { seq: number; entry: string }>(
        `SELECT seq, entry FROM twin_history WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT ?`,
      )
      .all(...params, query.limit)
      .map((row) => ({ seq: row.seq, ...(JSON.parse(row.entry) as TwinHistoryEntry) }));
  }
  async withPendingDelivery(): Promise<TwinState[]> {
    return this.db
      .prepare<[], { state: string }>("SELECT state FROM twins WHERE json_array_length(state, '$.pending') > 0")
      .all()
      .map((row) => JSON.parse(row.state) as TwinState);
  }
  async delete(deviceUid: number): Promise<void> {
    this.db.prepare('DELETE FROM twins WHERE device_uid = ?').run(deviceUid);
  }
}
