import type { Invocation, InvocationRepository, InvocationStatus } from '../../commands/index.js';
import type { SqliteDatabase } from './database.js';

const parse = (row: { record: string }) => JSON.parse(row.record) as Invocation;

/** Statements on the action round trip are prepared once; per-call SQL is only for listings. */
export class SqliteInvocations implements InvocationRepository {
  private readonly insertRow;
  private readonly updateRow;
  private readonly byId;
  private readonly byKey;
  private readonly openAll;
  private readonly openOfDevice;

  constructor(private readonly db: SqliteDatabase) {
    this.insertRow = db.prepare(
      'INSERT INTO invocations (id, device_uid, status, idempotency_key, created_at, record) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.updateRow = db.prepare('UPDATE invocations SET status = ?, record = ? WHERE id = ?');
    this.byId = db.prepare<[string], { record: string }>('SELECT record FROM invocations WHERE id = ?');
    this.byKey = db.prepare<[number, string], { record: string }>(
      'SELECT record FROM invocations WHERE device_uid = ? AND idempotency_key = ?',
    );
    this.openAll = db.prepare<[], { record: string }>(
      "SELECT record FROM invocations WHERE status IN ('queued', 'delivered') ORDER BY created_at, rowid",
    );
    this.openOfDevice = db.prepare<[number], { record: string }>(
      "SELECT record FROM invocations WHERE status IN ('queued', 'delivered') AND device_uid = ? ORDER BY created_at, rowid",
    );
  }

  async insert(deviceUid: number, invocation: Invocation): Promise<void> {
    this.insertRow.run(
      invocation.id,
      deviceUid,
      invocation.status,
      invocation.idempotencyKey ?? null,
      invocation.createdAt,
      JSON.stringify(invocation),
    );
  }
  async update(invocation: Invocation): Promise<void> {
    this.updateRow.run(invocation.status, JSON.stringify(invocation), invocation.id);
  }
  async get(id: string): Promise<Invocation | undefined> {
    const row = this.byId.get(id);
    return row && parse(row);
  }
  async byIdempotencyKey(deviceUid: number, key: string): Promise<Invocation | undefined> {
    const row = this.byKey.get(deviceUid, key);
    return row && parse(row);
  }
  async listForDevice(deviceUid: number, query: { limit: number; before?: number; status?: InvocationStatus }): Promise<Invocation[]> {
    const where = ['device_uid = ?'];
    const params: (number | string)[] = [deviceUid];
    if (query.before !== undefined) {
      where.push('created_at < ?');
      params.push(query.before);
    }
    if (query.status !== undefined) {
      where.push('status = ?');
      params.push(query.status);
    }
    return this.db
      .prepare<(number | string)[], { record: string }>(
        `SELECT record FROM invocations WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id LIMIT ?`,
      )
      .all(...params, query.limit)
      .map(parse);
  }
  async open(deviceUid?: number): Promise<Invocation[]> {
    return (deviceUid === undefined ? this.openAll.all() : this.openOfDevice.all(deviceUid)).map(parse);
  }
}
