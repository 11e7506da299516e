import { randomUUID } from 'node:crypto';
import { hashSecret, newSecret } from '../access/index.js';
import { conflict, invalid, notFound } from '../errors/index.js';
import { type CredentialRefusals, type Identity, ignoreRefusals, keyActor } from './identity.js';
import { isRole, type Role } from './policy.js';
import type { TenantDirectory } from './tenants.js';
import type { UserDirectory } from './users.js';

/** An API key as listed: everything but the secret, which is stored only as its SHA-256. */
export interface ApiKeyRecord {
  id: string;
  tenant: string;
  /** Unique among the tenant's live keys; records show the key as `key:<name>`. */
  name: string;
  role: Role;
  /** The person the key belongs to; absent for an integration's key. A disabled user's keys stop working. */
  userId?: string;
  /** The actor who issued it. */
  createdBy: string;
  createdAt: number;
  expiresAt?: number;
  /** Written at most once per `touchEveryMs`, so it is that precise. */
  lastUsedAt?: number;
  revokedAt?: number;
}

export interface ApiKeyRepository {
  /** False when a live key of the tenant has this name. */
  insert(key: ApiKeyRecord, secretHash: string): Promise<boolean>;
  /** The key with whether its user (if it has one) is disabled now. */
  findBySecretHash(secretHash: string): Promise<{ key: ApiKeyRecord; userDisabled: boolean } | undefined>;
  get(tenant: string, id: string): Promise<ApiKeyRecord | undefined>;
  /** Newest first. */
  list(tenant: string): Promise<ApiKeyRecord[]>;
  markUsed(id: string, at: number): Promise<void>;
  revoke(tenant: string, id: string, at: number): Promise<void>;
}

export interface NewApiKey {
  tenant: string;
  role: Role;
  name: string;
  /** Who issues it (their actor), shown in listings. */
  createdBy: string;
  userId?: string;
  expiresAt?: number;
}

export interface IssuedApiKey {
  id: string;
  /** The secret: returned this once, never again. */
  key: string;
  record: ApiKeyRecord;
}

export interface ApiKeyOptions {
  /** lastUsedAt is written at most this often per key (default a minute): no write per request. */
  touchEveryMs: number;
}

export const API_KEY_PREFIX = 'tlk';
export const API_KEY_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9 ._:@-]{0,63}$/;
const MAX_KEY_LENGTH = 200;

export interface ApiKeyDependencies {
  repository: ApiKeyRepository;
  tenants: TenantDirectory;
  users: UserDirectory;
  now(): number;
  refusals?: CredentialRefusals;
  options?: Partial<ApiKeyOptions>;
}

/**
 * API keys for programs and for people's scripts. Who may issue which role is the access
 * check's job (`mayGrant`); this checks the key itself: a known role, a live tenant and user, an
 * expiry in the future.
 */
export class ApiKeys {
  private readonly touchEveryMs: number;
  private readonly refusals: CredentialRefusals;

  constructor(private readonly deps: ApiKeyDependencies) {
    this.touchEveryMs = deps.options?.touchEveryMs ?? 60_000;
    this.refusals = deps.refusals ?? ignoreRefusals;
  }

  async issue(input: NewApiKey): Promise<IssuedApiKey> {
    await this.deps.tenants.require(input.tenant);
    if (!isRole(input.role)) throw invalid(`unknown role "${String(input.role)}"`);
    if (typeof input.name !== 'string' || !API_KEY_NAME_PATTERN.test(input.name)) {
      throw invalid('a key name is 1 to 64 letters, digits, spaces, ".", "_", ":", "@" or "-", starting with a letter or digit');
    }
    if (typeof input.createdBy !== 'string' || input.createdBy === '' || input.createdBy.length > 200) {
      throw invalid('a key needs the actor who issued it (at most 200 characters)');
    }
    const at = this.deps.now();
    const record: ApiKeyRecord = {
      id: randomUUID(),
      tenant: input.tenant,
      name: input.name,
      role: input.role,
      createdBy: input.createdBy,
      createdAt: at,
    };
    if (input.expiresAt !== undefined) {
      if (typeof input.expiresAt !== 'number' || !Number.isSafeInteger(input.expiresAt) || input.expiresAt <= at) {
        throw invalid('expiresAt must be a time in the future (epoch milliseconds)');
      }
      record.expiresAt = input.expiresAt;
    }
    if (input.userId !== undefined) {
      const user = await this.deps.users.get(input.tenant, input.userId);
      if (!user) throw notFound(`user "${input.userId}" does not exist`);
      if (user.disabled) throw invalid(`user "${user.username}" is disabled`);
      record.userId = user.id;
    }
    const key = newSecret(API_KEY_PREFIX);
    if (!(await this.deps.repository.insert(record, hashSecret(key)))) {
      throw conflict(`tenant "${input.tenant}" has a key named "${input.name}" already`);
    }
    return { id: record.id, key, record };
  }

  /** Who a key stands for; undefined when it is unknown, expired, revoked or its user is disabled. */
  async authenticate(key: string): Promise<Identity | undefined> {
    if (typeof key !== 'string' || !key.startsWith(`${API_KEY_PREFIX}_`) || key.length > MAX_KEY_LENGTH) {
      this.refusals.credentialRefused('malformed_credential');
      return undefined;
    }
    const found = await this.deps.repository.findBySecretHash(hashSecret(key));
    const now = this.deps.now();
    const refusal = !found
      ? 'unknown_key'
      : found.key.revokedAt !== undefined
        ? 'revoked_key'
        : found.key.expiresAt !== undefined && now >= found.key.expiresAt
          ? 'expired_key'
          : found.userDisabled
            ? 'disabled_user'
            : undefined;
    if (refusal || !found) {
      this.refusals.credentialRefused(refusal ?? 'unknown_key');
      return undefined;
    }
    const record = found.key;
    if (record.lastUsedAt === undefined || now - record.lastUsedAt >= this.touchEveryMs)
      await this.deps.repository.markUsed(record.id, now);
    const identity: Identity = { tenant: record.tenant, role: record.role, actor: keyActor(record.name), keyId: record.id };
    if (record.userId !== undefined) identity.userId = record.userId;
    return identity;
  }

  list(tenant: string): Promise<ApiKeyRecord[]> {
    return this.deps.repository.list(tenant);
  }

  get(tenant: string, id: string): Promise<ApiKeyRecord | undefined> {
    return this.deps.repository.get(tenant, id);
  }

  /** Revokes a key of the tenant; revoking a revoked key changes nothing. */
  async revoke(tenant: string, id: string): Promise<ApiKeyRecord> {
    const record = await this.deps.repository.get(tenant, id);
    if (!record) throw notFound(`key "${id}" does not exist`);
    if (record.revokedAt !== undefined) return record;
    const at = this.deps.now();
    await this.deps.repository.revoke(tenant, id, at);
    return { ...record, revokedAt: at };
  }
}
