import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export type SqliteDatabase = Database.Database;

/**
 * Ordered schema migrations; `user_version` records how many ran. Append only: a released
 * migration is never edited, so every data directory converges on the same schema.
 */
const MIGRATIONS: string[] = [
  `CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
   CREATE TABLE thing_models (
     id TEXT NOT NULL, version INTEGER NOT NULL, document TEXT NOT NULL, created_at INTEGER NOT NULL,
     PRIMARY KEY (id, version)) STRICT;
   CREATE TABLE devices (
     uid INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     model TEXT NOT NULL,
     model_version INTEGER NOT NULL,
     code TEXT NOT NULL UNIQUE,
     ipv6 TEXT NOT NULL UNIQUE,
     token_hash TEXT NOT NULL,
     record TEXT NOT NULL) STRICT;
   CREATE INDEX devices_by_model ON devices (model, id);
   CREATE TABLE series (
     id INTEGER PRIMARY KEY,
     device_uid INTEGER NOT NULL,
     property TEXT NOT NULL,
     UNIQUE (device_uid, property)) STRICT;
   -- One B-tree keyed by (series, ts): appends land at the end of each series and range
   -- scans for charts read contiguous pages. Same (series, ts) twice is last-write-wins.
   CREATE TABLE samples (
     series INTEGER NOT NULL,
     ts INTEGER NOT NULL,
     value ANY,
     PRIMARY KEY (series, ts)) STRICT, WITHOUT ROWID;`,
  `CREATE TABLE twins (device_uid INTEGER PRIMARY KEY, state TEXT NOT NULL) STRICT;
   CREATE TABLE twin_history (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     device_uid INTEGER NOT NULL,
     ts INTEGER NOT NULL,
     section TEXT NOT NULL,
     entry TEXT NOT NULL) STRICT;
   CREATE INDEX twin_history_by_device ON twin_history (device_uid, seq);
   CREATE TABLE invocations (
     id TEXT PRIMARY KEY,
     device_uid INTEGER NOT NULL,
     status TEXT NOT NULL,
     idempotency_key TEXT,
     created_at INTEGER NOT NULL,
     record TEXT NOT NULL) STRICT;
   CREATE UNIQUE INDEX invocations_by_key ON invocations (device_uid, idempotency_key) WHERE idempotency_key IS NOT NULL;
   CREATE INDEX invocations_by_device ON invocations (device_uid, created_at);
   CREATE INDEX invocations_open ON invocations (status, created_at) WHERE status IN ('queued', 'delivered');`,
  `CREATE TABLE agents (id TEXT PRIMARY KEY, definition TEXT NOT NULL) STRICT;
   CREATE TABLE agent_states (
     agent_id TEXT NOT NULL, device_id TEXT NOT NULL, state TEXT NOT NULL,
     PRIMARY KEY (agent_id, device_id)) STRICT, WITHOUT ROWID;
   CREATE TABLE decisions (
     id TEXT PRIMARY KEY,
     agent_id TEXT NOT NULL,
     device_id TEXT NOT NULL,
     ts INTEGER NOT NULL,
     outcome TEXT NOT NULL,
     open INTEGER NOT NULL,
     record TEXT NOT NULL) STRICT;
   CREATE INDEX decisions_by_agent ON decisions (agent_id, ts);
   CREATE INDEX decisions_by_device ON decisions (device_id, ts);
   CREATE INDEX decisions_open ON decisions (open) WHERE open = 1;
   CREATE TABLE alarms (
     id TEXT PRIMARY KEY,
     agent_id TEXT NOT NULL,
     device_id TEXT NOT NULL,
     type TEXT NOT NULL,
     state TEXT NOT NULL,
     raised_at INTEGER NOT NULL,
     record TEXT NOT NULL) STRICT;
   CREATE INDEX alarms_open ON alarms (agent_id, device_id, type) WHERE state != 'cleared';
   CREATE INDEX alarms_by_time ON alarms (raised_at);`,
  // One row per sample instead of one per value: a server-stamped (series, ts) key let two
  // samples of the same millisecond replace each other, and one B-tree entry per value was
  // the write bottleneck. Existing values move over as one-value samples.
  `CREATE TABLE telemetry (
     id INTEGER PRIMARY KEY,
     device_uid INTEGER NOT NULL,
     ts INTEGER NOT NULL,
     payload TEXT NOT NULL) STRICT;
   INSERT INTO telemetry (device_uid, ts, payload)
     SELECT s.device_uid, v.ts, json_object(s.property, CASE WHEN typeof(v.value) = 'text' THEN json(v.value) ELSE v.value END)
     FROM samples v JOIN series s ON s.id = v.series ORDER BY v.ts;
   DROP TABLE samples;
   DROP TABLE series;
   CREATE INDEX telemetry_by_device ON telemetry (device_uid, ts);`,
  // Edge sync. On the cloud: the directory of edges (applied_seq is the idempotency mark) and
  // the gaps they reported. On an edge: the outbox; AUTOINCREMENT so a sequence number is never
  // reused after trimming.
  `CREATE TABLE edges (id TEXT PRIMARY KEY, token_hash TEXT NOT NULL, record TEXT NOT NULL) STRICT;
   CREATE TABLE edge_gaps (id INTEGER PRIMARY KEY, edge_id TEXT NOT NULL, at INTEGER NOT NULL, gap TEXT NOT NULL) STRICT;
   CREATE TABLE outbox (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     kind TEXT NOT NULL,
     device_id TEXT,
     ts INTEGER NOT NULL,
     bytes INTEGER NOT NULL,
     payload TEXT NOT NULL) STRICT;
   CREATE INDEX outbox_by_ts ON outbox (kind, ts);`,
  // Device events (named in the thing model), listed newest first per device: an index on the
  // device alone holds each device's entries in id (arrival) order, which is the listing order.
  `CREATE TABLE device_events (
     id INTEGER PRIMARY KEY,
     device_uid INTEGER NOT NULL,
     name TEXT NOT NULL,
     ts INTEGER NOT NULL,
     data TEXT) STRICT;
   CREATE INDEX device_events_by_device ON device_events (device_uid);`,
  // Invocations: the deadline becomes a column so the expiry sweep reads only what is due (it
  // parsed every open record every second), and open ones are indexed per device so a device's
  // queue length is a bounded index count. The old open index served only the full read.
  `ALTER TABLE invocations ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
   UPDATE invocations SET expires_at = json_extract(record, '$.expiresAt');
   DROP INDEX invocations_open;
   CREATE INDEX invocations_due ON invocations (expires_at) WHERE status IN ('queued', 'delivered');
   CREATE INDEX invocations_open_by_device ON invocations (device_uid, created_at) WHERE status IN ('queued', 'delivered');`,
  // Device bindings: the protocol is a column so `?protocol=` is an index range in id order (the
  // parameters ride in the record). Devices registered before bindings existed speak MQTT.
  `ALTER TABLE devices ADD COLUMN protocol TEXT NOT NULL DEFAULT 'mqtt';
   UPDATE devices SET record = json_set(record, '$.binding', json('{"protocol":"mqtt"}')) WHERE json_extract(record, '$.binding') IS NULL;
   CREATE INDEX devices_by_protocol ON devices (protocol, id);`,
  // Tenancy, in the node's system database: tenants (`default` always), people, their sessions,
  // API keys and the audit trail. Secrets only as hashes. Usernames are unique per tenant without
  // case; a key name only among the tenant's live keys, so a revoked key's name can be reused.
  // The audit keeps AUTOINCREMENT ids: they are the paging cursor and must never come back.
  `CREATE TABLE tenants (
     id TEXT PRIMARY KEY, name TEXT NOT NULL, quotas TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL) STRICT;
   INSERT INTO tenants (id, name, quotas, created_at, updated_at)
     VALUES ('default', 'Default', '{}', CAST(strftime('%s', 'now') AS INTEGER) * 1000, CAST(strftime('%s', 'now') AS INTEGER) * 1000);
   CREATE TABLE users (
     id TEXT PRIMARY KEY,
     tenant TEXT NOT NULL REFERENCES tenants (id),
     username TEXT NOT NULL COLLATE NOCASE,
     display_name TEXT,
     role TEXT NOT NULL,
     disabled INTEGER NOT NULL DEFAULT 0,
     external_issuer TEXT,
     external_subject TEXT,
     password_hash TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     last_sign_in_at INTEGER,
     UNIQUE (tenant, username)) STRICT;
   CREATE UNIQUE INDEX users_by_external ON users (tenant, external_issuer, external_subject) WHERE external_subject IS NOT NULL;
   CREATE TABLE sessions (
     id TEXT PRIMARY KEY,
     token_hash TEXT NOT NULL UNIQUE,
     tenant TEXT NOT NULL,
     user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
     created_at INTEGER NOT NULL,
     last_seen_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     address TEXT NOT NULL) STRICT;
   CREATE INDEX sessions_by_user ON sessions (user_id);
   CREATE INDEX sessions_by_expiry ON sessions (expires_at);
   CREATE TABLE api_keys (
     id TEXT PRIMARY KEY,
     tenant TEXT NOT NULL REFERENCES tenants (id),
     secret_hash TEXT NOT NULL UNIQUE,
     name TEXT NOT NULL,
     role TEXT NOT NULL,
     user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
     created_by TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER,
     last_used_at INTEGER,
     revoked_at INTEGER) STRICT;
   CREATE UNIQUE INDEX api_keys_live_name ON api_keys (tenant, name) WHERE revoked_at IS NULL;
   CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at);
   CREATE INDEX api_keys_by_user ON api_keys (user_id) WHERE user_id IS NOT NULL;
   CREATE TABLE audit (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     tenant TEXT NOT NULL,
     at INTEGER NOT NULL,
     actor TEXT NOT NULL,
     action TEXT NOT NULL,
     resource TEXT NOT NULL,
     address TEXT NOT NULL,
     outcome TEXT NOT NULL,
     status INTEGER,
     detail TEXT) STRICT;
   CREATE INDEX audit_by_tenant ON audit (tenant, id);
   CREATE INDEX audit_by_actor ON audit (tenant, actor, id);
   CREATE INDEX audit_by_action ON audit (tenant, action, id);
   CREATE INDEX audit_by_time ON audit (at);`,
];

export interface OpenOptions {
  /** `normal` survives a process kill (WAL); `full` also survives power loss, slower. */
  synchronous: 'normal' | 'full';
}

/** What the database holds (credential hashes, telemetry) is for this node's user only. */
const PRIVATE_FILE = 0o600;
const PRIVATE_DIRECTORY = 0o700;

/**
 * Creates the directory (0700) and the database file (0600) before SQLite opens it: SQLite
 * creates its -wal and -shm files with the database file's mode, so they come out 0600 too.
 * Files left by an earlier version with a wider mode are narrowed. A directory the user made is
 * left as it is: its mode is their choice (the node warns about a readable one at start).
 */
function preparePrivateFiles(file: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: PRIVATE_DIRECTORY });
  closeSync(openSync(file, 'a', PRIVATE_FILE));
  for (const path of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) {
    let mode: number;
    try {
      mode = statSync(path).mode & 0o777;
    } catch {
      continue;
    }
    if ((mode & 0o077) !== 0) chmodSync(path, mode & 0o700);
  }
}

export function openDatabase(file: string, options: OpenOptions = { synchronous: 'normal' }): SqliteDatabase {
  if (file !== ':memory:') preparePrivateFiles(file);
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
  db.pragma('busy_timeout = 5000');
  db.pragma('cache_size = -65536');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}

function migrate(db: SqliteDatabase): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(
      `the data directory was written by a newer Thingloop (schema ${current}, this build knows ${MIGRATIONS.length}); upgrade Thingloop or use another --data-dir`,
    );
  }
  for (let index = current; index < MIGRATIONS.length; index++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[index] as string);
      db.pragma(`user_version = ${index + 1}`);
    })();
  }
}

/**
 * Retention for a per-device time-series table: rows older than `before`, and every row of
 * devices no longer registered. Small chunks, yielding between them: pruning must not stall
 * ingest.
 */
export async function pruneDeviceRows(
  db: SqliteDatabase,
  table: 'telemetry' | 'device_events',
  before: number,
  liveDeviceUids: () => Promise<Set<number>>,
): Promise<number> {
  const live = await liveDeviceUids();
  const devices = db.prepare<[], { device_uid: number }>(`SELECT DISTINCT device_uid FROM ${table}`).all();
  const deleteOld = db.prepare(`DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} WHERE device_uid = ? AND ts < ? LIMIT 5000)`);
  const deleteAll = db.prepare(`DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} WHERE device_uid = ? LIMIT 5000)`);
  let removed = 0;
  for (const { device_uid: uid } of devices) {
    for (;;) {
      const changes = live.has(uid) ? deleteOld.run(uid, before).changes : deleteAll.run(uid).changes;
      removed += changes;
      await new Promise((resolve) => setImmediate(resolve));
      if (changes < 5000) break;
    }
  }
  return removed;
}
