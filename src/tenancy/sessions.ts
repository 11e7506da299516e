import { randomUUID } from 'node:crypto';
import { hashSecret, newSecret } from '../access/index.js';
import { DomainError, invalid } from '../errors/index.js';
import { type CredentialRefusals, type Identity, ignoreRefusals, userActor } from './identity.js';
import type { UserDirectory, UserRecord } from './users.js';

/** A console sign-in. The token itself is never stored, only its SHA-256 (like every secret here). */
export interface SessionRecord {
  id: string;
  tenant: string;
  userId: string;
  createdAt: number;
  /** Last time the session was used, written at most once per `touchEveryMs`. */
  lastSeenAt: number;
  /** The absolute end, however active the session is. */
  expiresAt: number;
  /** Where the sign-in came from. */
  address: string;
}

export interface SessionRepository {
  insert(session: SessionRecord, tokenHash: string): Promise<void>;
  /** The session with its user as stored now (role, disabled). */
  findByTokenHash(tokenHash: string): Promise<{ session: SessionRecord; user: UserRecord } | undefined>;
  touch(id: string, at: number): Promise<void>;
  delete(id: string): Promise<boolean>;
  deleteForUser(userId: string, exceptSessionId?: string): Promise<number>;
  listForUser(userId: string): Promise<SessionRecord[]>;
  /** Removes sessions past their absolute end or idle since before `idleBefore`. */
  deleteExpired(now: number, idleBefore: number): Promise<number>;
}

export interface SessionOptions {
  /** Absolute lifetime; default 12 h (a shift). */
  absoluteMs: number;
  /**
   * Idle lifetime; default 30 min. The console keeps an open page's session alive by using it; a
   * screen left signed in at an unattended desk closes itself within the half hour.
   */
  idleMs: number;
  /** lastSeenAt is written at most this often, so a busy console does not write per request. */
  touchEveryMs: number;
}

export const DEFAULT_SESSION_OPTIONS: SessionOptions = { absoluteMs: 12 * 3_600_000, idleMs: 30 * 60_000, touchEveryMs: 60_000 };

export interface SignedIn {
  /** The bearer token: shown once, to the browser that signed in. */
  token: string;
  sessionId: string;
  expiresAt: number;
  user: UserRecord;
}

export const SESSION_TOKEN_PREFIX = 'tlu';
const MAX_TOKEN_LENGTH = 200;
const MAX_ADDRESS_LENGTH = 100;

export interface SessionDependencies {
  repository: SessionRepository;
  users: UserDirectory;
  now(): number;
  refusals?: CredentialRefusals;
  options?: Partial<SessionOptions>;
}

/** Sign-in sessions of people: by password here, or opened for a person an OpenID Connect issuer vouched for. */
export class Sessions {
  readonly options: SessionOptions;
  private readonly refusals: CredentialRefusals;

  constructor(private readonly deps: SessionDependencies) {
    this.options = { ...DEFAULT_SESSION_OPTIONS, ...deps.options };
    this.refusals = deps.refusals ?? ignoreRefusals;
  }

  /**
   * Signs in with a password. Every failure is the same `unauthorized` answer (which usernames
   * exist, or are disabled, is not told); the reason goes to the refusal counter. The caller puts
   * the address's GuessingBrake in front.
   */
  async signIn(tenant: string, username: string, password: string, address: string): Promise<SignedIn> {
    const checked = await this.deps.users.checkPassword(tenant, username, password);
    if ('refused' in checked) {
      this.refusals.credentialRefused(checked.refused);
      throw new DomainError('unauthorized', 'wrong username or password');
    }
    return this.open(checked.user, address);
  }

  /** Opens a session for a user already identified (OpenID Connect); refused for a disabled user. */
  async open(user: UserRecord, address: string): Promise<SignedIn> {
    if (user.disabled) {
      this.refusals.credentialRefused('disabled_user');
      throw new DomainError('unauthorized', `user "${user.username}" is disabled`);
    }
    if (typeof address !== 'string') throw invalid('the sign-in address must be a string');
    const at = this.deps.now();
    const token = newSecret(SESSION_TOKEN_PREFIX);
    const session: SessionRecord = {
      id: randomUUID(),
      tenant: user.tenant,
      userId: user.id,
      createdAt: at,
      lastSeenAt: at,
      expiresAt: at + this.options.absoluteMs,
      address: address.slice(0, MAX_ADDRESS_LENGTH),
    };
    await this.deps.repository.insert(session, hashSecret(token));
    const signedIn = await this.deps.users.signedIn(user);
    return { token, sessionId: session.id, expiresAt: session.expiresAt, user: signedIn };
  }

  /**
   * Who a session token stands for, with the user's role as it is now (a role change applies to
   * open sessions). Undefined for anything that is not a live session: unknown, expired, idle
   * too long, or of a disabled user. Expired sessions are removed when met.
   */
  async authenticate(token: string): Promise<Identity | undefined> {
    if (!this.wellFormed(token)) return undefined;
    const found = await this.deps.repository.findByTokenHash(hashSecret(token));
    if (!found) {
      this.refusals.credentialRefused('unknown_session');
      return undefined;
    }
    const { session, user } = found;
    const now = this.deps.now();
    const refusal =
      now >= session.expiresAt
        ? 'expired_session'
        : now - session.lastSeenAt >= this.options.idleMs
          ? 'idle_session'
          : user.disabled
            ? 'disabled_user'
            : undefined;
    if (refusal) {
      this.refusals.credentialRefused(refusal);
      await this.deps.repository.delete(session.id);
      return undefined;
    }
    if (now - session.lastSeenAt >= this.options.touchEveryMs) await this.deps.repository.touch(session.id, now);
    return { tenant: user.tenant, role: user.role, actor: userActor(user.username), userId: user.id, sessionId: session.id };
  }

  /** Ends the session of this token; false when there was none. */
  async signOut(token: string): Promise<boolean> {
    if (!this.wellFormed(token)) return false;
    const found = await this.deps.repository.findByTokenHash(hashSecret(token));
    return found ? this.deps.repository.delete(found.session.id) : false;
  }

  /** Ends one session of a user (an admin closing a sign-in they do not trust); false when it was not theirs or is gone. */
  async end(userId: string, sessionId: string): Promise<boolean> {
    const sessions = await this.deps.repository.listForUser(userId);
    return sessions.some((session) => session.id === sessionId) ? this.deps.repository.delete(sessionId) : false;
  }

  /** Ends every session of a user (all but one, when given). */
  endAll(userId: string, exceptSessionId?: string): Promise<number> {
    return this.deps.repository.deleteForUser(userId, exceptSessionId);
  }

  list(userId: string): Promise<SessionRecord[]> {
    return this.deps.repository.listForUser(userId);
  }

  /** Removes expired and idle sessions; the node calls this now and then. */
  sweep(): Promise<number> {
    const now = this.deps.now();
    return this.deps.repository.deleteExpired(now, now - this.options.idleMs);
  }

  private wellFormed(token: string): boolean {
    if (typeof token === 'string' && token.startsWith(`${SESSION_TOKEN_PREFIX}_`) && token.length <= MAX_TOKEN_LENGTH) return true;
    this.refusals.credentialRefused('malformed_credential');
    return false;
  }
}
