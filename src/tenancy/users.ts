import { createHash, randomUUID } from 'node:crypto';
import { conflict, DomainError, invalid, notFound } from '../errors/index.js';
import {
  acceptablePassword,
  DEFAULT_SCRYPT,
  decoyHash,
  hashPassword,
  passwordParameters,
  type ScryptParameters,
  verifyPassword,
  weakerThan,
} from './passwords.js';
import { isRole, type Role } from './policy.js';
import type { TenantDirectory } from './tenants.js';

/** A person signed in through an OpenID Connect issuer: the issuer's subject is who they are. */
export interface ExternalSubject {
  issuer: string;
  subject: string;
}

export interface UserRecord {
  id: string;
  tenant: string;
  /** Unique in the tenant, compared without case. */
  username: string;
  displayName?: string;
  role: Role;
  disabled: boolean;
  /** Set for people who sign in with OpenID Connect; they have no password here. */
  external?: ExternalSubject;
  createdAt: number;
  updatedAt: number;
  lastSignInAt?: number;
}

export type UserInsertResult = 'inserted' | 'username_taken' | 'subject_taken';

export interface UserRepository {
  insert(user: UserRecord, passwordHash: string | undefined): Promise<UserInsertResult>;
  get(tenant: string, id: string): Promise<UserRecord | undefined>;
  findByUsername(tenant: string, username: string): Promise<UserRecord | undefined>;
  findExternal(tenant: string, issuer: string, subject: string): Promise<UserRecord | undefined>;
  list(tenant: string): Promise<UserRecord[]>;
  /** Writes the record's fields (not the password). */
  update(user: UserRecord): Promise<void>;
  passwordHash(id: string): Promise<string | undefined>;
  setPasswordHash(id: string, hash: string): Promise<void>;
  /** Writes only the sign-in time: a sign-in must not write back fields an admin changed meanwhile. */
  recordSignIn(id: string, at: number): Promise<void>;
  /** Removes the user with its sessions and API keys. */
  delete(tenant: string, id: string): Promise<boolean>;
}

export const USERNAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;
const MAX_DISPLAY_NAME_LENGTH = 200;
const MAX_SUBJECT_LENGTH = 255;

function usernameOf(value: unknown): string {
  if (typeof value !== 'string' || !USERNAME_PATTERN.test(value)) {
    throw invalid('a username is 1 to 128 letters, digits, ".", "_", "@", "+" or "-", starting with a letter or digit');
  }
  return value;
}

function displayNameOf(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value.length > MAX_DISPLAY_NAME_LENGTH) {
    throw invalid(`a display name is a string of at most ${MAX_DISPLAY_NAME_LENGTH} characters`);
  }
  return value.trim() === '' ? undefined : value.trim();
}

function roleOf(value: unknown): Role {
  if (!isRole(value)) throw invalid(`unknown role "${String(value)}"`);
  return value;
}

export interface NewUser {
  tenant: string;
  username: string;
  password: string;
  role: Role;
  displayName?: string;
}

/** What an OpenID Connect sign-in says about the person; the role is decided by the caller's mapping. */
export interface ExternalClaims {
  issuer: string;
  role: Role;
  /** preferred_username (or email): used as the username when it is valid and free. */
  username?: string;
  displayName?: string;
}

export type PasswordCheck = { user: UserRecord } | { refused: 'wrong_password' | 'disabled_user' };

export interface UserDirectoryDependencies {
  users: UserRepository;
  tenants: TenantDirectory;
  /** Ends a user's sessions (all but one, when given): the sessions store's `deleteForUser`. */
  endSessions(userId: string, exceptSessionId?: string): Promise<number>;
  now(): number;
  /** Defaults to DEFAULT_SCRYPT; tests pass cheaper ones. */
  scrypt?: ScryptParameters;
}

/** The people of each tenant: local users with passwords and people from an OpenID Connect issuer. */
export class UserDirectory {
  private readonly scrypt: ScryptParameters;
  private decoy: Promise<string> | undefined;

  constructor(private readonly deps: UserDirectoryDependencies) {
    this.scrypt = deps.scrypt ?? DEFAULT_SCRYPT;
  }

  async create(input: NewUser): Promise<UserRecord> {
    await this.deps.tenants.require(input.tenant);
    const username = usernameOf(input.username);
    const password = acceptablePassword(input.password);
    const at = this.deps.now();
    const user: UserRecord = {
      id: randomUUID(),
      tenant: input.tenant,
      username,
      role: roleOf(input.role),
      disabled: false,
      createdAt: at,
      updatedAt: at,
    };
    const displayName = displayNameOf(input.displayName);
    if (displayName !== undefined) user.displayName = displayName;
    const result = await this.deps.users.insert(user, await hashPassword(password, this.scrypt));
    if (result !== 'inserted') throw conflict(`user "${username}" already exists in tenant "${input.tenant}"`);
    return user;
  }

  get(tenant: string, id: string): Promise<UserRecord | undefined> {
    return this.deps.users.get(tenant, id);
  }

  async require(tenant: string, id: string): Promise<UserRecord> {
    const user = await this.deps.users.get(tenant, id);
    if (!user) throw notFound(`user "${id}" does not exist`);
    return user;
  }

  findByUsername(tenant: string, username: string): Promise<UserRecord | undefined> {
    return this.deps.users.findByUsername(tenant, username);
  }

  list(tenant: string): Promise<UserRecord[]> {
    return this.deps.users.list(tenant);
  }

  /** Changes role, display name or disabled; disabling ends the user's sessions at once. */
  async update(tenant: string, id: string, changes: { role?: Role; displayName?: string | null; disabled?: boolean }): Promise<UserRecord> {
    const current = await this.require(tenant, id);
    const updated: UserRecord = { ...current, updatedAt: this.deps.now() };
    if (changes.role !== undefined) updated.role = roleOf(changes.role);
    if (changes.displayName !== undefined) {
      const displayName = displayNameOf(changes.displayName);
      if (displayName === undefined) delete updated.displayName;
      else updated.displayName = displayName;
    }
    if (changes.disabled !== undefined) {
      if (typeof changes.disabled !== 'boolean') throw invalid('disabled must be true or false');
      updated.disabled = changes.disabled;
    }
    await this.deps.users.update(updated);
    if (updated.disabled && !current.disabled) await this.deps.endSessions(id);
    return updated;
  }

  setRole(tenant: string, id: string, role: Role): Promise<UserRecord> {
    return this.update(tenant, id, { role });
  }

  disable(tenant: string, id: string): Promise<UserRecord> {
    return this.update(tenant, id, { disabled: true });
  }

  enable(tenant: string, id: string): Promise<UserRecord> {
    return this.update(tenant, id, { disabled: false });
  }

  /** Removes the user, their sessions and their API keys. */
  async delete(tenant: string, id: string): Promise<void> {
    if (!(await this.deps.users.delete(tenant, id))) throw notFound(`user "${id}" does not exist`);
  }

  /**
   * Sets a new password and ends the user's other sessions (a changed password is often a
   * suspected leak). With `currentPassword`, it must be right: people changing their own.
   */
  async changePassword(
    tenant: string,
    id: string,
    newPassword: string,
    options: { currentPassword?: string; keepSessionId?: string } = {},
  ): Promise<void> {
    const user = await this.require(tenant, id);
    if (user.external) throw invalid(`user "${user.username}" signs in with OpenID Connect and has no password here`);
    const password = acceptablePassword(newPassword);
    if (options.currentPassword !== undefined) {
      const stored = await this.deps.users.passwordHash(id);
      if (!stored || !(await verifyPassword(options.currentPassword, stored))) {
        throw new DomainError('unauthorized', 'the current password is wrong');
      }
    }
    await this.deps.users.setPasswordHash(id, await hashPassword(password, this.scrypt));
    // Read again: hashing took a while, and an admin may have changed the user meanwhile.
    const current = await this.require(tenant, id);
    await this.deps.users.update({ ...current, updatedAt: this.deps.now() });
    await this.deps.endSessions(id, options.keepSessionId);
  }

  /**
   * Checks a username and password. Unknown users and people without a password are checked
   * against a decoy hash, so the time taken does not tell which usernames exist. A hash made with
   * weaker parameters than today's is replaced after a match.
   */
  async checkPassword(tenant: string, username: string, password: string): Promise<PasswordCheck> {
    const user =
      typeof username === 'string' && USERNAME_PATTERN.test(username) ? await this.deps.users.findByUsername(tenant, username) : undefined;
    const stored = user ? await this.deps.users.passwordHash(user.id) : undefined;
    const candidate = typeof password === 'string' && password.length <= 4 * 1024 ? password : '';
    if (!user || !stored) {
      await verifyPassword(candidate, await this.decoyHash());
      return { refused: 'wrong_password' };
    }
    if (!(await verifyPassword(candidate, stored))) return { refused: 'wrong_password' };
    if (user.disabled) return { refused: 'disabled_user' };
    const parameters = passwordParameters(stored);
    if (parameters && weakerThan(parameters, this.scrypt)) {
      await this.deps.users.setPasswordHash(user.id, await hashPassword(candidate, this.scrypt));
    }
    return { user };
  }

  /** Records a sign-in time on the user (sessions call this). */
  async signedIn(user: UserRecord): Promise<UserRecord> {
    const at = this.deps.now();
    await this.deps.users.recordSignIn(user.id, at);
    return { ...user, lastSignInAt: at };
  }

  /**
   * The user an OpenID Connect sign-in stands for, created on first sign-in. The issuer and
   * subject identify the person, never the username, so a local user of the same name is not
   * taken over. The role (and display name) follow the latest sign-in; a disabled user stays
   * disabled (the session is refused by Sessions.open).
   */
  async ensureExternalUser(tenant: string, subject: string, claims: ExternalClaims): Promise<UserRecord> {
    await this.deps.tenants.require(tenant);
    if (typeof subject !== 'string' || subject === '' || subject.length > MAX_SUBJECT_LENGTH)
      throw invalid('the OpenID Connect subject is invalid');
    if (typeof claims.issuer !== 'string' || claims.issuer === '' || claims.issuer.length > 1000)
      throw invalid('the OpenID Connect issuer is invalid');
    const role = roleOf(claims.role);
    let displayName: string | undefined;
    try {
      displayName = displayNameOf(claims.displayName);
    } catch {
      displayName = undefined;
    }
    const existing = await this.deps.users.findExternal(tenant, claims.issuer, subject);
    if (existing) {
      if (existing.role === role && existing.displayName === displayName) return existing;
      const updated: UserRecord = { ...existing, role, updatedAt: this.deps.now() };
      if (displayName === undefined) delete updated.displayName;
      else updated.displayName = displayName;
      await this.deps.users.update(updated);
      return updated;
    }
    const at = this.deps.now();
    const digest = createHash('sha256').update(`${claims.issuer}\n${subject}`).digest('hex').slice(0, 12);
    const candidates = [claims.username, subject, `oidc-${digest}`].filter(
      (name): name is string => typeof name === 'string' && USERNAME_PATTERN.test(name),
    );
    for (const username of candidates) {
      const user: UserRecord = {
        id: randomUUID(),
        tenant,
        username,
        role,
        disabled: false,
        external: { issuer: claims.issuer, subject },
        createdAt: at,
        updatedAt: at,
      };
      if (displayName !== undefined) user.displayName = displayName;
      const result = await this.deps.users.insert(user, undefined);
      if (result === 'inserted') return user;
      if (result === 'subject_taken') {
        // Another sign-in of the same person won the race.
        const raced = await this.deps.users.findExternal(tenant, claims.issuer, subject);
        if (raced) return raced;
      }
    }
    throw conflict(`no free username for the OpenID Connect subject in tenant "${tenant}"`);
  }

  private decoyHash(): Promise<string> {
    this.decoy ??= decoyHash(this.scrypt);
    return this.decoy;
  }
}
