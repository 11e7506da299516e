import type { SettingsRepository } from '../../access/index.js';
import type { ModelRepository, ModelSummary, ThingModel, ThingModelVersion } from '../../model/index.js';
import {
  DEFAULT_BINDING,
  type DeviceFilter,
  type DeviceQuery,
  type DeviceRecord,
  type DeviceRepository,
  type NewDeviceRecord,
  resolveNetworkProfile,
} from '../../registry/index.js';
import { DEFAULT_TENANT } from '../../tenancy/index.js';
import type { SqliteDatabase } from './database.js';

export class SqliteSettings implements SettingsRepository {
  private readonly read;
  private readonly write;
  constructor(db: SqliteDatabase) {
    this.read = db.prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?');
    this.write = db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
  }
  async get(key: string): Promise<string | undefined> {
    return this.read.get(key)?.value;
  }
  async set(key: string, value: string): Promise<void> {
    this.write.run(key, value);
  }
}

interface ModelRow {
  id: string;
  version: number;
  document: string;
  created_at: number;
}

const toModel = (row: ModelRow): ThingModelVersion => ({
  id: row.id,
  version: row.version,
  document: JSON.parse(row.document) as ThingModel,
  createdAt: row.created_at,
});

export class SqliteModels implements ModelRepository {
  constructor(private readonly db: SqliteDatabase) {}

  async latest(id: string): Promise<ThingModelVersion | undefined> {
    const row = this.db.prepare<[string], ModelRow>('SELECT * FROM thing_models WHERE id = ? ORDER BY version DESC LIMIT 1').get(id);
    return row && toModel(row);
  }
  async get(id: string, version: number): Promise<ThingModelVersion | undefined> {
    const row = this.db.prepare<[string, number], ModelRow>('SELECT * FROM thing_models WHERE id = ? AND version = ?').get(id, version);
    return row && toModel(row);
  }
  async versions(id: string): Promise<ThingModelVersion[]> {
    return this.db.prepare<[string], ModelRow>('SELECT * FROM thing_models WHERE id = ? ORDER BY version').all(id).map(toModel);
  }
  async list(): Promise<ModelSummary[]> {
    const rows = this.db
      .prepare<[], ModelRow>(
        `SELECT m.* FROM thing_models m
         JOIN (SELECT id, max(version) AS version FROM thing_models GROUP BY id) latest USING (id, version)
         ORDER BY m.id`,
      )
      .all();
    return rows.map((row) => ({
      id: row.id,
      title: (JSON.parse(row.document) as ThingModel).title,
      latestVersion: row.version,
      updatedAt: row.created_at,
    }));
  }
  async insert(version: ThingModelVersion): Promise<void> {
    this.db
      .prepare('INSERT INTO thing_models (id, version, document, created_at) VALUES (?, ?, ?, ?)')
      .run(version.id, version.version, JSON.stringify(version.document), version.createdAt);
  }
}

interface DeviceRow {
  uid: number;
  id: string;
  model: string;
  model_version: number;
  code: string;
  ipv6: string;
  record: string;
}

// Columns hold what is indexed or unique; everything else rides in the `record` JSON, so new
// device fields (network profile, edge) need no migration.
const COLUMN_FIELDS = new Set(['uid', 'id', 'tenant', 'model', 'modelVersion', 'code', 'ipv6']);

function toDevice(row: DeviceRow, tenant: string): DeviceRecord {
  const rest = JSON.parse(row.record) as Omit<DeviceRecord, 'uid' | 'id' | 'tenant' | 'model' | 'modelVersion' | 'code' | 'ipv6'>;
  // Devices stored before network profiles existed are wired (ethernet) devices.
  const network = rest.network ?? resolveNetworkProfile();
  const binding = rest.binding ?? { ...DEFAULT_BINDING };
  return {
    ...rest,
    network,
    binding,
    id: row.id,
    tenant,
    uid: row.uid,
    model: row.model,
    modelVersion: row.model_version,
    code: row.code,
    ipv6: row.ipv6,
  };
}

function restOf(device: NewDeviceRecord): string {
  return JSON.stringify(Object.fromEntries(Object.entries(device).filter(([key]) => !COLUMN_FIELDS.has(key))));
}

/** The WHERE terms shared by listing and counting devices. */
function deviceFilter(query: DeviceFilter): { where: string[]; params: (string | number)[] } {
  const where: string[] = [];
  const params: (string | number)[] = [];
  const terms: [string, string | undefined][] = [
    ['model = ?', query.model],
    ["json_extract(record, '$.edge') = ?", query.edge],
    ["json_extract(record, '$.network.profile') = ?", query.network],
    ['protocol = ?', query.protocol],
  ];
  for (const [term, value] of terms) {
    if (value === undefined) continue;
    where.push(term);
    params.push(value);
  }
  return { where, params };
}

const DEVICE_COLUMNS = 'uid, id, model, model_version, code, ipv6, record';

/** One tenant's devices: the database is the tenant's own, so every record read here is stamped with it. */
export class SqliteDevices implements DeviceRepository {
  private readonly byId;
  private readonly byCode;
  private readonly byIpv6;
  private readonly hashOf;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly tenant = DEFAULT_TENANT,
  ) {
    this.byId = db.prepare<[string], DeviceRow>(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE id = ?`);
    this.byCode = db.prepare<[string], DeviceRow>(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE code = ?`);
    this.byIpv6 = db.prepare<[string], DeviceRow>(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE ipv6 = ?`);
    this.hashOf = db.prepare<[string], { token_hash: string }>('SELECT token_hash FROM devices WHERE id = ?');
  }

  async insert(device: NewDeviceRecord, tokenHash: string): Promise<DeviceRecord> {
    const result = this.db
      .prepare('INSERT INTO devices (id, model, model_version, code, ipv6, token_hash, protocol, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(device.id, device.model, device.modelVersion, device.code, device.ipv6, tokenHash, device.binding.protocol, restOf(device));
    return { ...device, tenant: this.tenant, uid: Number(result.lastInsertRowid) };
  }
  async get(id: string): Promise<DeviceRecord | undefined> {
    const row = this.byId.get(id);
    return row && toDevice(row, this.tenant);
  }
  async findByCode(code: string): Promise<DeviceRecord | undefined> {
    const row = this.byCode.get(code);
    return row && toDevice(row, this.tenant);
  }
  async findByIpv6(ipv6: string): Promise<DeviceRecord | undefined> {
    const row = this.byIpv6.get(ipv6);
    return row && toDevice(row, this.tenant);
  }
  async list(query: DeviceQuery): Promise<DeviceRecord[]> {
    const { where, params } = deviceFilter(query);
    if (query.after !== undefined) {
      where.push('id > ?');
      params.push(query.after);
    }
    const sql = `SELECT ${DEVICE_COLUMNS} FROM devices ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT ?`;
    return this.db
      .prepare<(string | number)[], DeviceRow>(sql)
      .all(...params, query.limit)
      .map((row) => toDevice(row, this.tenant));
  }
  async count(query: DeviceFilter): Promise<number> {
    const { where, params } = deviceFilter(query);
    const sql = `SELECT count(*) AS n FROM devices ${where.length ? `WHERE ${where.join(' AND ')}` : ''}`;
    return this.db.prepare<(string | number)[], { n: number }>(sql).get(...params)?.n ?? 0;
  }
  /** Inserts or replaces a device with the uid-free record another node assigned (edge sync). */
  async adopt(device: NewDeviceRecord, tokenHash: string): Promise<DeviceRecord> {
    const existing = await this.get(device.id);
    if (!existing) return this.insert(device, tokenHash);
    this.db
      .prepare('UPDATE devices SET model = ?, model_version = ?, code = ?, ipv6 = ?, token_hash = ?, protocol = ?, record = ? WHERE id = ?')
      .run(device.model, device.modelVersion, device.code, device.ipv6, tokenHash, device.binding.protocol, restOf(device), device.id);
    return { ...device, tenant: this.tenant, uid: existing.uid };
  }
  async update(device: DeviceRecord): Promise<void> {
    this.db
      .prepare('UPDATE devices SET model = ?, model_version = ?, protocol = ?, record = ? WHERE id = ?')
      .run(device.model, device.modelVersion, device.binding.protocol, restOf(device), device.id);
  }
  async delete(id: string): Promise<boolean> {
    return this.db.prepare('DELETE FROM devices WHERE id = ?').run(id).changes > 0;
  }
  async tokenHash(id: string): Promise<string | undefined> {
    return this.hashOf.get(id)?.token_hash;
  }
  async setTokenHash(id: string, hash: string): Promise<void> {
    this.db.prepare('UPDATE devices SET token_hash = ? WHERE id = ?').run(hash, id);
  }
  /** Every live uid, for pruning telemetry of deleted devices. */
  liveUids(): Set<number> {
    return new Set(
      this.db
        .prepare<[], { uid: number }>('SELECT uid FROM devices')
        .all()
        .map((row) => row.uid),
    );
  }
}
