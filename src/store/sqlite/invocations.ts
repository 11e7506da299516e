import type { InsertOutcome, Invocation, InvocationRepository, InvocationStatus } from '../../commands/index.js';
import type { SqliteDatabase } from './database.js';

const parse = (row: { record: string }) => JSON.parse(row.record) as Invocation;

// Every query on open invocations repeats the partial indexes' condition word for word: SQLite
// uses a partial index only when the query's WHERE contains its WHERE term.
const OPEN = "status IN ('queued', 'delivered')";

/** The sweep's read: due rows, earliest deadline first. Exported so tests can check its plan. */
export const DUE_INVOCATIONS_SQL = `SELECT record FROM invocations WHERE ${OPEN} AND expires_at <= ? ORDER BY expires_at LIMIT ?`;
/** A device's queue length, counted in the per-device index of open ones (at most its limit). */
export const PENDING_INVOCATIONS_SQL = `SELECT COUNT(*) AS pending FROM invocations WHERE ${OPEN} AND device_uid = ?`;

/** Statements on the action round trip are prepared once; per-call SQL is only for listings. */
export class SqliteInvocations implements InvocationRepository {
  private readonly insertRow;
  private readonly updateRow;
  private readonly byId;
  private readonly byKey;
  private readonly openOfDevice;
  private readonly pendingOfDevice;
  private readonly dueRows;
  private readonly insertWithin;

  constructor(private readonly db: SqliteDatabase) {
    this.insertRow = db.prepare(
      'INSERT INTO invocations (id, device_uid, status, idempotency_key, created_at, expires_at, record) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.updateRow = db.prepare('UPDATE invocations SET status = ?, expires_at = ?, record = ? WHERE id = ?');
    this.byId = db.prepare<[string], { record: string }>('SELECT record FROM invocations WHERE id = ?');
    this.byKey = db.prepare<[number, string], { record: string }>(
      'SELECT record FROM invocations WHERE device_uid = ? AND idempotency_key = ?',
    );
    this.openOfDevice = db.prepare<[number], { record: string }>(
      `SELECT record FROM invocations WHERE ${OPEN} AND device_uid = ? ORDER BY created_at, rowid`,
    );
    this.pendingOfDevice = db.prepare<[number], { pending: number }>(PENDING_INVOCATIONS_SQL);
    this.dueRows = db.prepare<[number, number], { record: string }>(DUE_INVOCATIONS_SQL);
    // Count and insert in one transaction: two requests racing for the last slot cannot both win.
    this.insertWithin = db.transaction((deviceUid: number, invocation: Invocation, maxPending: number): InsertOutcome => {
      const holder = invocation.idempotencyKey === undefined ? undefined : this.byKey.get(deviceUid, invocation.idempotencyKey);
      if (holder) return { stored: false, pending: 0, earlier: parse(holder) };
      const pending = this.pendingOfDevice.get(deviceUid)?.pending ?? 0;
      if (pending >= maxPending) return { stored: false, pending };
      this.insertRow.run(
        invocation.id,
        deviceUid,
        invocation.status,
        invocation.idempotencyKey ?? null,
        invocation.createdAt,
        invocation.expiresAt,
        JSON.stringify(invocation),
      );
      return { stored: true, pending: pending + 1 };
    });
  }

  async insert(deviceUid: number, invocation: Invocation, maxPending: number): Promise<InsertOutcome> {
    return this.insertWithin(deviceUid, invocation, maxPending);
  }
  async update(invocation: Invocation): Promise<void> {
    this.updateRow.run(invocation.status, invocation.expiresAt, JSON.stringify(invocation), invocation.id);
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
  async open(deviceUid: number): Promise<Invocation[]> {
    return this.openOfDevice.all(deviceUid).map(parse);
  }
  async due(now: number, limit: number): Promise<Invocation[]> {
    return this.dueRows.all(now, limit).map(parse);
  }
}
