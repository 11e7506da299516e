import { EventBus } from '../bus/index.js';
import { conflict, DomainError, invalid, notFound } from '../errors/index.js';
import { DEFAULT_TENANT, isTenantId, TENANT_ID_PATTERN } from './policy.js';

/** Limits a tenant may not exceed; an absent field is unlimited. */
export interface TenantQuotas {
  devices?: number;
  messagesPerSecond?: number;
  storedBytes?: number;
  agents?: number;
}

export interface TenantRecord {
  id: string;
  name: string;
  quotas: TenantQuotas;
  createdAt: number;
  updatedAt: number;
}

export interface TenantRepository {
  /** False when a tenant with this id exists already. */
  insert(tenant: TenantRecord): Promise<boolean>;
  get(id: string): Promise<TenantRecord | undefined>;
  list(): Promise<TenantRecord[]>;
  update(tenant: TenantRecord): Promise<void>;
}

/** The refusal reason of each quota (`details.reason`, the `reason` label of `thingloop_refusals_total`). */
export const QUOTA_REASONS = {
  devices: 'quota_devices',
  messagesPerSecond: 'quota_messages_per_second',
  storedBytes: 'quota_stored_bytes',
  agents: 'quota_agents',
} as const satisfies Record<keyof TenantQuotas, string>;

const QUOTA_FIELDS = ['devices', 'messagesPerSecond', 'storedBytes', 'agents'] as const;
/** Rates may be fractional (one message every few seconds); counts and bytes are whole. */
const WHOLE_QUOTAS = new Set(['devices', 'storedBytes', 'agents']);
export const MAX_TENANT_NAME_LENGTH = 200;

/**
 * Reads quotas from untrusted input: an object whose known fields are non-negative numbers (or
 * null, meaning unlimited). Every problem is listed; unknown fields are refused, so a misspelt
 * quota does not silently leave a tenant unlimited.
 */
export function tenantQuotasOf(value: unknown): TenantQuotas {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid('quotas must be an object');
  const quotas: TenantQuotas = {};
  const problems: { field: string; message: string }[] = [];
  for (const [field, raw] of Object.entries(value)) {
    if (!(QUOTA_FIELDS as readonly string[]).includes(field)) {
      problems.push({ field, message: `unknown quota (known: ${QUOTA_FIELDS.join(', ')})` });
      continue;
    }
    if (raw === null || raw === undefined) continue;
    const whole = WHOLE_QUOTAS.has(field);
    if (typeof raw !== 'number' || !Number.isFinite(raw) || raw < 0 || (whole && !Number.isSafeInteger(raw))) {
      problems.push({ field, message: whole ? 'must be a whole number ≥ 0' : 'must be a number ≥ 0' });
      continue;
    }
    quotas[field as (typeof QUOTA_FIELDS)[number]] = raw;
  }
  if (problems.length > 0) throw invalid('the quotas are invalid', { problems });
  return quotas;
}

function tenantNameOf(value: unknown, fallback: string): string {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'string' || value.trim() === '' || value.length > MAX_TENANT_NAME_LENGTH) {
    throw invalid(`a tenant name is 1 to ${MAX_TENANT_NAME_LENGTH} characters`);
  }
  return value.trim();
}

/**
 * Refuses going past a quota: `current` in use, `adding` more wanted. The error says which quota,
 * its limit and the use (`details.reason` is `quota_<name>` in snake case, for the refusal counter); an absent
 * quota never refuses.
 */
export function checkQuota(tenant: Pick<TenantRecord, 'id' | 'quotas'>, quota: keyof TenantQuotas, current: number, adding = 1): void {
  const limit = tenant.quotas[quota];
  if (limit === undefined || current + adding <= limit) return;
  throw new DomainError('too_many_requests', `tenant "${tenant.id}" is at its ${quota} quota (${current} of ${limit})`, {
    reason: QUOTA_REASONS[quota],
    limit,
    current,
  });
}

export interface NewTenant {
  id: string;
  name?: string;
  quotas?: TenantQuotas;
}

/**
 * The tenants of the node. `default` always exists: a single-tenant install never creates one.
 * Tenants are not deleted here: their data lives in a database of their own, whose removal is a
 * deliberate operation of its own.
 */
export class TenantDirectory {
  /** A tenant was created or changed (its running parts take new quotas at once). */
  readonly events = new EventBus<{ changed: TenantRecord }>();

  constructor(
    private readonly repository: TenantRepository,
    private readonly now: () => number,
  ) {}

  async create(input: NewTenant): Promise<TenantRecord> {
    if (typeof input.id !== 'string' || !isTenantId(input.id)) {
      throw invalid(`a tenant id must match ${TENANT_ID_PATTERN} (lowercase letters, digits and "-", at most 63)`);
    }
    const at = this.now();
    const tenant: TenantRecord = {
      id: input.id,
      name: tenantNameOf(input.name, input.id),
      quotas: tenantQuotasOf(input.quotas),
      createdAt: at,
      updatedAt: at,
    };
    if (input.id === DEFAULT_TENANT) await this.ensureDefault();
    if (!(await this.repository.insert(tenant))) throw conflict(`tenant "${input.id}" already exists`);
    this.events.emit('changed', tenant);
    return tenant;
  }

  async get(id: string): Promise<TenantRecord | undefined> {
    if (id === DEFAULT_TENANT) return this.ensureDefault();
    return this.repository.get(id);
  }

  /** The tenant, or a not_found error. */
  async require(id: string): Promise<TenantRecord> {
    const tenant = await this.get(id);
    if (!tenant) throw notFound(`tenant "${id}" does not exist`);
    return tenant;
  }

  async list(): Promise<TenantRecord[]> {
    await this.ensureDefault();
    return this.repository.list();
  }

  /** Changes the name and/or replaces the quotas (a quota left out becomes unlimited). */
  async update(id: string, changes: { name?: string; quotas?: TenantQuotas }): Promise<TenantRecord> {
    const current = await this.require(id);
    const updated: TenantRecord = {
      ...current,
      name: changes.name === undefined ? current.name : tenantNameOf(changes.name, current.name),
      quotas: changes.quotas === undefined ? current.quotas : tenantQuotasOf(changes.quotas),
      updatedAt: this.now(),
    };
    await this.repository.update(updated);
    this.events.emit('changed', updated);
    return updated;
  }

  /** The migration creates `default`; this recreates it if a database lost it. */
  async ensureDefault(): Promise<TenantRecord> {
    const existing = await this.repository.get(DEFAULT_TENANT);
    if (existing) return existing;
    const at = this.now();
    const tenant: TenantRecord = { id: DEFAULT_TENANT, name: 'Default', quotas: {}, createdAt: at, updatedAt: at };
    await this.repository.insert(tenant);
    return (await this.repository.get(DEFAULT_TENANT)) ?? tenant;
  }
}
