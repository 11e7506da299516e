import type { Invocation, InvocationRepository, InvocationStatus } from '../../commands/index.js';
import type { SqliteDatabase } from './database.js';

const parse = (row: { record: string }) => JSON.parse(row.record) as Invocation;

export class SqliteInvocations implements InvocationRepository {
  constructor(private readonly db: SqliteDatabase) {}

  async insert(deviceUid: number, invocation: Invocation): Promise<void> {
    this.db
      .prepare('INSERT INTO invocations (id, device_uid, status, idempotency_key, created_at, record) VALUES (?, ?, ?, ?, ?, ?)')
      .run(
        invocation.id,
        deviceUid,
        invocation.status,
        invocation.idempotencyKey ?? null,
        invocation.createdAt,
        JSON.stringify(invocation),
      );
  }
  async update(invocation: Invocation): Promise<void> {
    this.db
      .prepare('UPDATE invocations SET status = ?, record = ? WHERE id = ?')
      .run(invocation.status, JSON.stringify(invocation), invocation.id);
  }
  async get(id: string): Promise<Invocation | undefined> {
    const row = this.db.prepare<[string], { record: string }>('SELECT record FROM invocations WHERE id = ?').get(id);
    return row && parse(row);
  }
  async byIdempotencyKey(deviceUid: number, key: string): Promise<Invocation | undefined> {
    const row = this.db
      .prepare<[number, string], { record: string }>('SELECT record FROM invocations WHERE device_uid = ? AND idempotency_key = ?')
      .get(deviceUid, key);
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
    const sql = `SELECT record FROM invocations WHERE status IN ('queued', 'delivered') ${deviceUid === undefined ? '' : 'AND device_uid = ?'} ORDER BY created_at, rowid`;
    const statement = this.db.prepare<number[], { record: string }>(sql);
    return (deviceUid === undefined ? statement.all() : statement.all(deviceUid)).map(parse);
  }
}
