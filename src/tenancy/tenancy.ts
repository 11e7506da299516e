import { type AuditRepository, AuditTrail, type AuditTrailOptions } from './audit.js';
import type { CredentialRefusals, Identity } from './identity.js';
import { API_KEY_PREFIX, type ApiKeyOptions, type ApiKeyRepository, ApiKeys } from './keys.js';
import type { ScryptParameters } from './passwords.js';
import { SESSION_TOKEN_PREFIX, type SessionOptions, type SessionRepository, Sessions } from './sessions.js';
import { TenantDirectory, type TenantRepository } from './tenants.js';
import { UserDirectory, type UserDirectoryDependencies, type UserRepository } from './users.js';

/** The storage the module needs: one adapter provides all (store/sqlite's SqliteTenancy). */
export interface TenancyStores {
  tenants: TenantRepository;
  users: UserRepository;
  sessions: SessionRepository;
  keys: ApiKeyRepository;
  audit: AuditRepository;
}

export interface TenancyOptions {
  now(): number;
  refusals?: CredentialRefusals;
  sessions?: Partial<SessionOptions>;
  keys?: Partial<ApiKeyOptions>;
  audit?: Partial<AuditTrailOptions>;
  /** Told when an audit batch could not be written (the node logs it). */
  onAuditWriteError?: (error: unknown) => void;
  /** Password hashing cost; DEFAULT_SCRYPT unless given. */
  scrypt?: ScryptParameters;
}

/** The module's services built on one set of stores; the node builds one and hands its parts out. */
export class Tenancy {
  readonly tenants: TenantDirectory;
  readonly users: UserDirectory;
  readonly sessions: Sessions;
  readonly keys: ApiKeys;
  readonly audit: AuditTrail;

  constructor(stores: TenancyStores, options: TenancyOptions) {
    const now = options.now;
    this.tenants = new TenantDirectory(stores.tenants, now);
    const userDependencies: UserDirectoryDependencies = {
      users: stores.users,
      tenants: this.tenants,
      endSessions: (userId, exceptSessionId) => stores.sessions.deleteForUser(userId, exceptSessionId),
      now,
    };
    if (options.scrypt) userDependencies.scrypt = options.scrypt;
    this.users = new UserDirectory(userDependencies);
    this.sessions = new Sessions({
      repository: stores.sessions,
      users: this.users,
      now,
      refusals: options.refusals,
      options: options.sessions,
    });
    this.keys = new ApiKeys({
      repository: stores.keys,
      tenants: this.tenants,
      users: this.users,
      now,
      refusals: options.refusals,
      options: options.keys,
    });
    this.audit = new AuditTrail(stores.audit, options.audit, options.onAuditWriteError);
  }

  /**
   * Who a bearer credential stands for: an API key (`tlk_…`) or a session token (`tlu_…`).
   * Undefined for anything else, including the node's admin key, which the access check knows.
   */
  authenticate(credential: string): Promise<Identity | undefined> {
    if (typeof credential !== 'string') return Promise.resolve(undefined);
    if (credential.startsWith(`${API_KEY_PREFIX}_`)) return this.keys.authenticate(credential);
    if (credential.startsWith(`${SESSION_TOKEN_PREFIX}_`)) return this.sessions.authenticate(credential);
    return Promise.resolve(undefined);
  }
}
