/**
 * Tenancy's stores in the node's system database: tenants, users, sessions, API keys and the
 * audit trail. Secrets are stored only as hashes (passwords scrypt, tokens and keys SHA-256).
 */
import type {
  ApiKeyRecord,
  ApiKeyRepository,
  AuditEntry,
  AuditFilter,
  AuditOutcome,
  AuditRepository,
  Role,
  SessionRecord,
  SessionRepository,
  StoredAuditEntry,
  TenancyStores,
  TenantQuotas,
  TenantRecord,
  TenantRepository,
  UserInsertResult,
  UserRecord,
  UserRepository,
} from '../../tenancy/index.js';
import type { SqliteDatabase } from './database.js';

/** better-sqlite3's error for a broken UNIQUE or PRIMARY KEY constraint. */
function uniqueViolation(error: unknown): string | undefined {
  if (!(error instanceof Error) || !('code' in error)) return undefined;
  const code = error.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ? error.message : undefined;
}

interface TenantRow {
  id: string;
  name: string;
  quotas: string;
  created_at: number;
  updated_at: number;
}

const toTenant = (row: TenantRow): TenantRecord => ({
  id: row.id,
  name: row.name,
  quotas: JSON.parse(row.quotas) as TenantQuotas,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export class SqliteTenants implements TenantRepository {
  constructor(private readonly db: SqliteDatabase) {}

  async insert(tenant: TenantRecord): Promise<boolean> {
    const result = this.db
      .prepare('INSERT INTO tenants (id, name, quotas, created_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING')
      .run(tenant.id, tenant.name, JSON.stringify(tenant.quotas), tenant.createdAt, tenant.updatedAt);
    return result.changes === 1;
  }
  async get(id: string): Promise<TenantRecord | undefined> {
    const row = this.db.prepare<[string], TenantRow>('SELECT * FROM tenants WHERE id = ?').get(id);
    return row && toTenant(row);
  }
  async list(): Promise<TenantRecord[]> {
    return this.db.prepare<[], TenantRow>('SELECT * FROM tenants ORDER BY id').all().map(toTenant);
  }
  async update(tenant: TenantRecord): Promise<void> {
    this.db
      .prepare('UPDATE tenants SET name = ?, quotas = ?, updated_at = ? WHERE id = ?')
      .run(tenant.name, JSON.stringify(tenant.quotas), tenant.updatedAt, tenant.id);
  }
}

interface UserRow {
  id: string;
  tenant: string;
  username: string;
  display_name: string | null;
  role: string;
  disabled: number;
  external_issuer: string | null;
  external_subject: string | null;
  created_at: number;
  updated_at: number;
  last_sign_in_at: number | null;
}

const USER_COLUMNS =
  'u.id, u.tenant, u.username, u.display_name, u.role, u.disabled, u.external_issuer, u.external_subject, u.created_at, u.updated_at, u.last_sign_in_at';

function toUser(row: UserRow): UserRecord {
  const user: UserRecord = {
    id: row.id,
    tenant: row.tenant,
    username: row.username,
    role: row.role as Role,
    disabled: row.disabled === 1,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (row.display_name !== null) user.displayName = row.display_name;
  if (row.external_issuer !== null && row.external_subject !== null)
    user.external = { issuer: row.external_issuer, subject: row.external_subject };
  if (row.last_sign_in_at !== null) user.lastSignInAt = row.last_sign_in_at;
  return user;
}

export class SqliteUsers implements UserRepository {
  constructor(private readonly db: SqliteDatabase) {}

  async insert(user: UserRecord, passwordHash: string | undefined): Promise<UserInsertResult> {
    try {
      this.db
        .prepare(
          `INSERT INTO users (id, tenant, username, display_name, role, disabled, external_issuer, external_subject,
             password_hash, created_at, updated_at, last_sign_in_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          user.id,
          user.tenant,
          user.username,
          user.displayName ?? null,
          user.role,
          user.disabled ? 1 : 0,
          user.external?.issuer ?? null,
          user.external?.subject ?? null,
          passwordHash ?? null,
          user.createdAt,
          user.updatedAt,
          user.lastSignInAt ?? null,
        );
      return 'inserted';
    } catch (error) {
      const message = uniqueViolation(error);
      if (message === undefined) throw error;
      return message.includes('external') ? 'subject_taken' : 'username_taken';
    }
  }
  async get(tenant: string, id: string): Promise<UserRecord | undefined> {
    const row = this.db
      .prepare<[string, string], UserRow>(`SELECT ${USER_COLUMNS} FROM users u WHERE u.tenant = ? AND u.id = ?`)
      .get(tenant, id);
    return row && toUser(row);
  }
  async findByUsername(tenant: string, username: string): Promise<UserRecord | undefined> {
    const row = this.db
      .prepare<[string, string], UserRow>(`SELECT ${USER_COLUMNS} FROM users u WHERE u.tenant = ? AND u.username = ?`)
      .get(tenant, username);
    return row && toUser(row);
  }
  async findExternal(tenant: string, issuer: string, subject: string): Promise<UserRecord | undefined> {
    const row = this.db
      .prepare<[string, string, string], UserRow>(
        `SELECT ${USER_COLUMNS} FROM users u WHERE u.tenant = ? AND u.external_issuer = ? AND u.external_subject = ?`,
      )
      .get(tenant, issuer, subject);
    return row && toUser(row);
  }
  async list(tenant: string): Promise<UserRecord[]> {
    return this.db
      .prepare<[string], UserRow>(`SELECT ${USER_COLUMNS} FROM users u WHERE u.tenant = ? ORDER BY u.username`)
      .all(tenant)
      .map(toUser);
  }
  async update(user: UserRecord): Promise<void> {
    this.db
      .prepare('UPDATE users SET display_name = ?, role = ?, disabled = ?, updated_at = ?, last_sign_in_at = ? WHERE id = ? AND tenant = ?')
      .run(user.displayName ?? null, user.role, user.disabled ? 1 : 0, user.updatedAt, user.lastSignInAt ?? null, user.id, user.tenant);
  }
  async passwordHash(id: string): Promise<string | undefined> {
    return (
      this.db.prepare<[string], { password_hash: string | null }>('SELECT password_hash FROM users WHERE id = ?').get(id)?.password_hash ??
      undefined
    );
  }
  async setPasswordHash(id: string, hash: string): Promise<void> {
    this.db.prepare('UPDATE users SET password_hash = ? WHERE id = ?').run(hash, id);
  }
  async recordSignIn(id: string, at: number): Promise<void> {
    this.db.prepare('UPDATE users SET last_sign_in_at = ? WHERE id = ?').run(at, id);
  }
  async delete(tenant: string, id: string): Promise<boolean> {
    // Sessions and API keys go with the user (ON DELETE CASCADE).
    return this.db.prepare('DELETE FROM users WHERE tenant = ? AND id = ?').run(tenant, id).changes === 1;
  }
}

interface SessionRow {
  id: string;
  tenant: string;
  user_id: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
  address: string;
}

const toSession = (row: SessionRow): SessionRecord => ({
  id: row.id,
  tenant: row.tenant,
  userId: row.user_id,
  createdAt: row.created_at,
  lastSeenAt: row.last_seen_at,
  expiresAt: row.expires_at,
  address: row.address,
});

export class SqliteSessions implements SessionRepository {
  // Every request with a session reads these two: prepared once.
  private readonly byTokenHash;
  private readonly userById;
  constructor(private readonly db: SqliteDatabase) {
    this.byTokenHash = db.prepare<[string], SessionRow>('SELECT * FROM sessions WHERE token_hash = ?');
    this.userById = db.prepare<[string], UserRow>(`SELECT ${USER_COLUMNS} FROM users u WHERE u.id = ?`);
  }

  async insert(session: SessionRecord, tokenHash: string): Promise<void> {
    this.db
      .prepare(
        'INSERT INTO sessions (id, token_hash, tenant, user_id, created_at, last_seen_at, expires_at, address) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        session.id,
        tokenHash,
        session.tenant,
        session.userId,
        session.createdAt,
        session.lastSeenAt,
        session.expiresAt,
        session.address,
      );
  }
  async findByTokenHash(tokenHash: string): Promise<{ session: SessionRecord; user: UserRecord } | undefined> {
    const row = this.byTokenHash.get(tokenHash);
    const user = row && this.userById.get(row.user_id);
    return row && user && { session: toSession(row), user: toUser(user) };
  }
  async touch(id: string, at: number): Promise<void> {
    this.db.prepare('UPDATE sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?').run(at, id, at);
  }
  async delete(id: string): Promise<boolean> {
    return this.db.prepare('DELETE FROM sessions WHERE id = ?').run(id).changes === 1;
  }
  async deleteForUser(userId: string, exceptSessionId?: string): Promise<number> {
    return this.db.prepare('DELETE FROM sessions WHERE user_id = ? AND id IS NOT ?').run(userId, exceptSessionId ?? null).changes;
  }
  async listForUser(userId: string): Promise<SessionRecord[]> {
    return this.db
      .prepare<[string], SessionRow>('SELECT * FROM sessions WHERE user_id = ? ORDER BY created_at DESC')
      .all(userId)
      .map(toSession);
  }
  async deleteExpired(now: number, idleBefore: number): Promise<number> {
    return this.db.prepare('DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?').run(now, idleBefore).changes;
  }
}

interface ApiKeyRow {
  id: string;
  tenant: string;
  name: string;
  role: string;
  user_id: string | null;
  created_by: string;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
}

const KEY_COLUMNS = 'k.id, k.tenant, k.name, k.role, k.user_id, k.created_by, k.created_at, k.expires_at, k.last_used_at, k.revoked_at';

function toApiKey(row: ApiKeyRow): ApiKeyRecord {
  const key: ApiKeyRecord = {
    id: row.id,
    tenant: row.tenant,
    name: row.name,
    role: row.role as Role,
    createdBy: row.created_by,
    createdAt: row.created_at,
  };
  if (row.user_id !== null) key.userId = row.user_id;
  if (row.expires_at !== null) key.expiresAt = row.expires_at;
  if (row.last_used_at !== null) key.lastUsedAt = row.last_used_at;
  if (row.revoked_at !== null) key.revokedAt = row.revoked_at;
  return key;
}

export class SqliteApiKeys implements ApiKeyRepository {
  // Every request with an API key reads this: prepared once.
  private readonly bySecretHash;
  constructor(private readonly db: SqliteDatabase) {
    this.bySecretHash = db.prepare<[string], ApiKeyRow & { user_disabled: number | null }>(
      `SELECT ${KEY_COLUMNS}, u.disabled AS user_disabled FROM api_keys k LEFT JOIN users u ON u.id = k.user_id WHERE k.secret_hash = ?`,
    );
  }

  async insert(key: ApiKeyRecord, secretHash: string): Promise<boolean> {
    try {
      this.db
        .prepare(
          `INSERT INTO api_keys (id, tenant, secret_hash, name, role, user_id, created_by, created_at, expires_at, last_used_at, revoked_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          key.id,
          key.tenant,
          secretHash,
          key.name,
          key.role,
          key.userId ?? null,
          key.createdBy,
          key.createdAt,
          key.expiresAt ?? null,
          key.lastUsedAt ?? null,
          key.revokedAt ?? null,
        );
      return true;
    } catch (error) {
      if (uniqueViolation(error) === undefined) throw error;
      return false;
    }
  }
  async findBySecretHash(secretHash: string): Promise<{ key: ApiKeyRecord; userDisabled: boolean } | undefined> {
    const row = this.bySecretHash.get(secretHash);
    return row && { key: toApiKey(row), userDisabled: row.user_disabled === 1 };
  }
  async get(tenant: string, id: string): Promise<ApiKeyRecord | undefined> {
    const row = this.db
      .prepare<[string, string], ApiKeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys k WHERE k.tenant = ? AND k.id = ?`)
      .get(tenant, id);
    return row && toApiKey(row);
  }
  async list(tenant: string): Promise<ApiKeyRecord[]> {
    return this.db
      .prepare<[string], ApiKeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys k WHERE k.tenant = ? ORDER BY k.created_at DESC, k.rowid DESC`)
      .all(tenant)
      .map(toApiKey);
  }
  async markUsed(id: string, at: number): Promise<void> {
    this.db.prepare('UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)').run(at, id, at);
  }
  async revoke(tenant: string, id: string, at: number): Promise<void> {
    this.db.prepare('UPDATE api_keys SET revoked_at = ? WHERE tenant = ? AND id = ? AND revoked_at IS NULL').run(at, tenant, id);
  }
}

interface AuditRow {
  id: number;
  tenant: string;
  at: number;
  actor: string;
  action: string;
  resource: string;
  address: string;
  outcome: string;
  status: number | null;
  detail: string | null;
}

function toAuditEntry(row: AuditRow): StoredAuditEntry {
  const entry: StoredAuditEntry = {
    id: row.id,
    tenant: row.tenant,
    at: row.at,
    actor: row.actor,
    action: row.action,
    resource: row.resource,
    address: row.address,
    outcome: row.outcome as AuditOutcome,
  };
  if (row.status !== null) entry.status = row.status;
  if (row.detail !== null) entry.detail = JSON.parse(row.detail);
  return entry;
}

export class SqliteAuditTrail implements AuditRepository {
  private readonly insert;
  constructor(private readonly db: SqliteDatabase) {
    this.insert = db.prepare(
      'INSERT INTO audit (tenant, at, actor, action, resource, address, outcome, status, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
  }

  async append(entries: AuditEntry[]): Promise<void> {
    this.db.transaction(() => {
      for (const entry of entries) {
        this.insert.run(
          entry.tenant,
          entry.at,
          entry.actor,
          entry.action,
          entry.resource,
          entry.address,
          entry.outcome ?? 'failed',
          entry.status ?? null,
          entry.detail === undefined ? null : JSON.stringify(entry.detail),
        );
      }
    })();
  }

  async query(filter: AuditFilter, beforeId: number | undefined, limit: number): Promise<StoredAuditEntry[]> {
    const where = ['tenant = ?'];
    const values: (string | number)[] = [filter.tenant];
    if (beforeId !== undefined) {
      where.push('id < ?');
      values.push(beforeId);
    }
    if (filter.from !== undefined) {
      where.push('at >= ?');
      values.push(filter.from);
    }
    if (filter.to !== undefined) {
      where.push('at < ?');
      values.push(filter.to);
    }
    if (filter.actor !== undefined) {
      where.push('actor = ?');
      values.push(filter.actor);
    }
    if (filter.action !== undefined) {
      where.push('action = ?');
      values.push(filter.action);
    }
    values.push(limit);
    return this.db
      .prepare<(string | number)[], AuditRow>(`SELECT * FROM audit WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT ?`)
      .all(...values)
      .map(toAuditEntry);
  }

  async pruneChunk(before: number, limit: number): Promise<number> {
    return this.db.prepare('DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ? LIMIT ?)').run(before, limit).changes;
  }
}

/** Every store tenancy needs, on the node's system database. */
export function sqliteTenancyStores(db: SqliteDatabase): TenancyStores {
  return {
    tenants: new SqliteTenants(db),
    users: new SqliteUsers(db),
    sessions: new SqliteSessions(db),
    keys: new SqliteApiKeys(db),
    audit: new SqliteAuditTrail(db),
  };
}
