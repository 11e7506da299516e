import type { DeviceEvent, DeviceEventPage, DeviceEventQuery, DeviceEventStore, JsonValue } from '../../telemetry/index.js';
import { pruneDeviceRows, type SqliteDatabase } from './database.js';

export interface DeviceEventWriterOptions {
  /** Runs inside the insert's transaction: an edge queues the event for the cloud here. */
  alsoInTransaction?: (event: DeviceEvent) => void;
}

interface EventRow {
  id: number;
  device_id: string;
  name: string;
  ts: number;
  data: string | null;
}

/** Device events in SQLite: one row each, read newest first per device. */
export class SqliteDeviceEvents implements DeviceEventStore {
  private readonly write: (event: DeviceEvent) => number;

  constructor(
    private readonly db: SqliteDatabase,
    options: DeviceEventWriterOptions = {},
  ) {
    const insert = db.prepare('INSERT INTO device_events (device_uid, name, ts, data) VALUES (?, ?, ?, ?)');
    this.write = db.transaction((event: DeviceEvent) => {
      const { lastInsertRowid } = insert.run(
        event.deviceUid,
        event.name,
        event.ts,
        event.data === null ? null : JSON.stringify(event.data),
      );
      options.alsoInTransaction?.(event);
      return Number(lastInsertRowid);
    });
  }

  async append(event: DeviceEvent): Promise<number> {
    return this.write(event);
  }

  async list(query: DeviceEventQuery): Promise<DeviceEventPage> {
    const conditions = ['e.device_uid = ?', 'e.ts >= ?', 'e.ts < ?'];
    const params: (string | number)[] = [query.deviceUid, query.from, query.to];
    if (query.names.length > 0) {
      conditions.push(`e.name IN (${query.names.map(() => '?').join(', ')})`);
      params.push(...query.names);
    }
    if (query.before !== undefined) {
      conditions.push('e.id < ?');
      params.push(query.before);
    }
    // Newest by arrival (id), which is also time order for one device in practice; ties need no
    // second key because ids are unique.
    const rows = this.db
      .prepare<(string | number)[], EventRow>(
        `SELECT e.id, d.id AS device_id, e.name, e.ts, e.data FROM device_events e JOIN devices d ON d.uid = e.device_uid
         WHERE ${conditions.join(' AND ')} ORDER BY e.id DESC LIMIT ?`,
      )
      .all(...params, query.limit + 1);
    const more = rows.length > query.limit;
    const items = rows.slice(0, query.limit).map((row) => ({
      id: row.id,
      deviceId: row.device_id,
      name: row.name,
      ts: row.ts,
      data: row.data === null ? null : (JSON.parse(row.data) as JsonValue),
    }));
    const last = items.at(-1);
    return { items, ...(more && last ? { next: last.id } : {}) };
  }

  prune(before: number, liveDeviceUids: () => Promise<Set<number>>): Promise<number> {
    return pruneDeviceRows(this.db, 'device_events', before, liveDeviceUids);
  }
}
