/**
 * Sign-in with OpenID Connect: this node as a relying party of one configured issuer. The
 * authorization code flow with PKCE, state and nonce (openid-client); the person's tenant and
 * role come from two claims the issuer releases. Pending sign-ins are kept in memory, bounded
 * and short-lived, and each state is good for one callback only. Every refusal is an
 * `OidcSignInError` whose `reason` the transport counts.
 */
import * as client from 'openid-client';
import { DomainError, type ErrorKind } from '../errors/index.js';
import { DEFAULT_TENANT, isRole, isTenantId, type Role } from './policy.js';

export interface OidcSignInOptions {
  /** The issuer identifier; its discovery document is read from `/.well-known/openid-configuration`. */
  issuer: URL;
  clientId: string;
  clientSecret: string;
  /** Where the issuer sends the browser back: registered with the issuer as is. */
  redirectUri: string;
  scopes?: string;
  /** The claim naming the person's tenant; absent: `defaultTenant`. */
  tenantClaim?: string;
  /** The claim naming the person's role; absent: `defaultRole`. */
  roleClaim?: string;
  defaultTenant?: string;
  defaultRole?: Role;
  /** Pending sign-ins kept at most (default `OIDC_MAX_PENDING`). */
  maxPending?: number;
  /** Milliseconds since the epoch (tests move it to expire pending sign-ins). */
  now?: () => number;
}

export type OidcRefusal =
  /** The issuer could not be reached (discovery, token or userinfo endpoint). */
  | 'issuer_unreachable'
  /** The issuer answered, but not with a usable discovery document. */
  | 'issuer_invalid'
  /** The callback's state is missing, was never issued here, or was already used. */
  | 'state_unknown'
  /** The callback's state is not the one this browser started with (a sign-in foisted on it). */
  | 'state_mismatch'
  /** The sign-in began longer ago than a pending sign-in is kept. */
  | 'state_expired'
  /** The issuer sent the browser back with an error (the person declined, or the request was refused). */
  | 'issuer_refused'
  /** The token endpoint refused the code (expired, used, or issued to another client). */
  | 'code_refused'
  /** The ID token (or userinfo) failed validation: signature, issuer, audience, nonce, times, subject. */
  | 'token_invalid'
  /** The tenant claim is not a tenant id. */
  | 'tenant_invalid'
  /** The role claim names no role. */
  | 'role_unknown'
  /** The role claim names a role a sign-in may never grant (platform-admin). */
  | 'role_not_allowed';

const KIND_OF: Record<OidcRefusal, ErrorKind> = {
  issuer_unreachable: 'unavailable',
  issuer_invalid: 'unavailable',
  state_unknown: 'unauthorized',
  state_mismatch: 'unauthorized',
  state_expired: 'unauthorized',
  issuer_refused: 'unauthorized',
  code_refused: 'unauthorized',
  token_invalid: 'unauthorized',
  tenant_invalid: 'forbidden',
  role_unknown: 'forbidden',
  role_not_allowed: 'forbidden',
};

export class OidcSignInError extends DomainError {
  constructor(
    readonly reason: OidcRefusal,
    message: string,
  ) {
    super(KIND_OF[reason], message, { reason });
    this.name = 'OidcSignInError';
  }
}

/** Fits `UserDirectory.ensureExternalUser(identity.tenant, identity.subject, identity)`. */
export interface OidcIdentity {
  /** The ID token's `iss`: with the subject, who the person is. */
  issuer: string;
  /** The issuer's `sub`: stable for the person at this issuer. */
  subject: string;
  /** preferred_username, else email, else the subject. */
  username: string;
  tenant: string;
  role: Role;
  /** The `name` claim, when there is one. */
  displayName?: string;
  /** The ID token's claims, with what userinfo adds. */
  claims: Record<string, unknown>;
}

interface PendingSignIn {
  codeVerifier: string;
  nonce: string;
  startedAt: number;
}

/** How long a person has at the issuer between `begin` and the callback. */
export const OIDC_PENDING_TTL_MS = 10 * 60_000;
/** Pending sign-ins kept at most; beyond it the oldest is dropped (its callback then fails as unknown). */
export const OIDC_MAX_PENDING = 10_000;
/** Seconds an issuer has to answer one request. */
const ISSUER_TIMEOUT_S = 10;

/** No claim may make someone an operator of the whole platform: that takes the admin key. */
const ROLES_NEVER_FROM_A_CLAIM: ReadonlySet<Role> = new Set(['platform-admin']);

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

export class OidcSignIn {
  private readonly issuer: URL;
  private readonly clientId: string;
  private readonly clientSecret: string;
  private readonly redirectUri: string;
  private readonly scopes: string;
  private readonly tenantClaim: string;
  private readonly roleClaim: string;
  private readonly defaultTenant: string;
  private readonly defaultRole: Role;
  private readonly maxPending: number;
  private readonly now: () => number;
  /** By state, oldest first (a Map keeps insertion order). */
  private readonly pending = new Map<string, PendingSignIn>();
  private discovered: Promise<client.Configuration> | undefined;

  constructor(options: OidcSignInOptions) {
    this.issuer = options.issuer;
    // Plain HTTP would hand codes and tokens to anyone on the path; a local test issuer is the exception.
    if (this.issuer.protocol !== 'https:' && !(this.issuer.protocol === 'http:' && isLoopback(this.issuer.hostname))) {
      throw new DomainError('invalid', `the OIDC issuer ${this.issuer.href} must be an https URL (http only on loopback)`);
    }
    this.clientId = options.clientId;
    this.clientSecret = options.clientSecret;
    this.redirectUri = options.redirectUri;
    this.scopes = options.scopes ?? 'openid email profile';
    if (!this.scopes.split(/\s+/).includes('openid')) throw new DomainError('invalid', 'the OIDC scopes must include openid');
    this.tenantClaim = options.tenantClaim ?? 'thingloop_tenant';
    this.roleClaim = options.roleClaim ?? 'thingloop_role';
    this.defaultTenant = options.defaultTenant ?? DEFAULT_TENANT;
    this.defaultRole = options.defaultRole ?? 'viewer';
    if (ROLES_NEVER_FROM_A_CLAIM.has(this.defaultRole)) {
      throw new DomainError('invalid', `${this.defaultRole} cannot be the default role of OIDC sign-ins`);
    }
    this.maxPending = options.maxPending ?? OIDC_MAX_PENDING;
    this.now = options.now ?? Date.now;
  }

  /**
   * Reads the issuer's discovery document (once; again after a failure). `begin` and `finish`
   * call it; a node may call it at start to learn early that the issuer is misconfigured.
   */
  async discover(): Promise<void> {
    await this.configuration();
  }

  private configuration(): Promise<client.Configuration> {
    if (!this.discovered) {
      const attempt = this.readDiscovery();
      this.discovered = attempt;
      attempt.catch(() => {
        if (this.discovered === attempt) this.discovered = undefined;
      });
    }
    return this.discovered;
  }

  private async readDiscovery(): Promise<client.Configuration> {
    try {
      return await client.discovery(
        this.issuer,
        this.clientId,
        { client_secret: this.clientSecret },
        client.ClientSecretBasic(this.clientSecret),
        {
          timeout: ISSUER_TIMEOUT_S,
          execute: this.issuer.protocol === 'http:' ? [client.allowInsecureRequests] : [],
        },
      );
    } catch (error) {
      if (isUnreachable(error)) {
        throw new OidcSignInError('issuer_unreachable', `the OIDC issuer ${this.issuer.href} cannot be reached: ${causeText(error)}`);
      }
      throw new OidcSignInError(
        'issuer_invalid',
        `the OIDC issuer ${this.issuer.href} has no usable discovery document: ${causeText(error)}`,
      );
    }
  }

  /** Pending sign-ins not yet finished or expired. */
  get pendingCount(): number {
    this.dropExpired();
    return this.pending.size;
  }

  /** Starts a sign-in: the URL to send the browser to, and the state that will come back with it. */
  async begin(): Promise<{ url: URL; state: string }> {
    const configuration = await this.configuration();
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(configuration, {
      redirect_uri: this.redirectUri,
      scope: this.scopes,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    this.dropExpired();
    if (this.pending.size >= this.maxPending) {
      const oldest = this.pending.keys().next().value;
      if (oldest !== undefined) this.pending.delete(oldest);
    }
    this.pending.set(state, { codeVerifier, nonce, startedAt: this.now() });
    return { url, state };
  }

  /**
   * Completes a sign-in from the URL the issuer sent the browser back to: the state is spent
   * (whatever follows), the code exchanged, the ID token validated, the claims mapped. Only the
   * URL's query is read: the redirect URI sent with the code is the configured one, whatever
   * host or path a proxy made of the request.
   *
   * `browserState` is the state `begin` gave this browser (kept in a cookie by the route): with
   * it, a callback URL someone else started cannot sign this browser in as them.
   */
  async finish(callbackUrl: URL, browserState?: string): Promise<OidcIdentity> {
    const state = callbackUrl.searchParams.get('state');
    const pending = state === null ? undefined : this.pending.get(state);
    if (state === null || !pending) {
      throw new OidcSignInError('state_unknown', 'this sign-in was not started here, or was already completed: start again');
    }
    if (browserState !== undefined && browserState !== state) {
      // Left pending: the browser that did start it may still complete it.
      throw new OidcSignInError('state_mismatch', 'this sign-in was started in another browser: start again');
    }
    this.pending.delete(state);
    if (this.now() - pending.startedAt > OIDC_PENDING_TTL_MS) {
      throw new OidcSignInError('state_expired', 'this sign-in took longer than 10 minutes: start again');
    }
    const configuration = await this.configuration();
    const callback = new URL(this.redirectUri);
    callback.search = callbackUrl.search;
    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      tokens = await client.authorizationCodeGrant(configuration, callback, {
        pkceCodeVerifier: pending.codeVerifier,
        expectedState: state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      });
    } catch (error) {
      throw this.grantRefusal(error);
    }
    const idToken = tokens.claims();
    if (!idToken) throw new OidcSignInError('token_invalid', 'the issuer sent no ID token');
    const claims: Record<string, unknown> = { ...(await this.userInfo(configuration, tokens.access_token, idToken.sub)), ...idToken };
    const identity: OidcIdentity = {
      issuer: idToken.iss,
      subject: idToken.sub,
      username: usernameOf(claims, idToken.sub),
      ...this.tenantAndRole(claims),
      claims,
    };
    if (typeof claims.name === 'string' && claims.name.trim() !== '') identity.displayName = claims.name.trim();
    return identity;
  }

  /** What the userinfo endpoint adds to the ID token (many issuers keep profile claims there). */
  private async userInfo(configuration: client.Configuration, accessToken: string, subject: string): Promise<Record<string, unknown>> {
    if (!configuration.serverMetadata().userinfo_endpoint) return {};
    try {
      return { ...(await client.fetchUserInfo(configuration, accessToken, subject)) };
    } catch (error) {
      if (isUnreachable(error)) {
        throw new OidcSignInError('issuer_unreachable', `the OIDC issuer's userinfo endpoint cannot be reached: ${causeText(error)}`);
      }
      throw new OidcSignInError('token_invalid', `the OIDC issuer's userinfo was refused: ${causeText(error)}`);
    }
  }

  private grantRefusal(error: unknown): OidcSignInError {
    if (error instanceof client.AuthorizationResponseError) {
      return new OidcSignInError('issuer_refused', `the issuer refused the sign-in: ${issuerWords(error.error, error.error_description)}`);
    }
    if (error instanceof client.ResponseBodyError) {
      return new OidcSignInError('code_refused', `the issuer refused the code: ${issuerWords(error.error, error.error_description)}`);
    }
    if (isUnreachable(error)) {
      return new OidcSignInError('issuer_unreachable', `the OIDC issuer's token endpoint cannot be reached: ${causeText(error)}`);
    }
    return new OidcSignInError('token_invalid', `the issuer's tokens were refused: ${causeText(error)}`);
  }

  private tenantAndRole(claims: Record<string, unknown>): { tenant: string; role: Role } {
    const tenantValue = claims[this.tenantClaim];
    let tenant = this.defaultTenant;
    if (tenantValue !== undefined && tenantValue !== null) {
      if (typeof tenantValue !== 'string' || !isTenantId(tenantValue)) {
        throw new OidcSignInError('tenant_invalid', `the ${this.tenantClaim} claim is not a tenant id: ${JSON.stringify(tenantValue)}`);
      }
      tenant = tenantValue;
    }
    const roleValue = claims[this.roleClaim];
    let role = this.defaultRole;
    if (roleValue !== undefined && roleValue !== null) {
      // Some issuers send roles as a list; one role is unambiguous, several are not.
      const named = Array.isArray(roleValue) && roleValue.length === 1 ? roleValue[0] : roleValue;
      if (!isRole(named)) {
        throw new OidcSignInError('role_unknown', `the ${this.roleClaim} claim names no role: ${JSON.stringify(roleValue)}`);
      }
      if (ROLES_NEVER_FROM_A_CLAIM.has(named)) {
        throw new OidcSignInError(
          'role_not_allowed',
          `the ${this.roleClaim} claim cannot grant ${named}: that takes the platform admin key`,
        );
      }
      role = named;
    }
    return { tenant, role };
  }

  private dropExpired(): void {
    const cutoff = this.now() - OIDC_PENDING_TTL_MS;
    for (const [state, pending] of this.pending) {
      if (pending.startedAt >= cutoff) break;
      this.pending.delete(state);
    }
  }
}

/** The issuer's error code and description, cut short: a crafted callback URL can carry any text. */
function issuerWords(code: string, description: string | undefined): string {
  const text = description ? `${code} (${description})` : code;
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

function usernameOf(claims: Record<string, unknown>, subject: string): string {
  for (const name of ['preferred_username', 'email']) {
    const value = claims[name];
    if (typeof value === 'string' && value.trim() !== '') return value.trim();
  }
  return subject;
}

/** Network failures and timeouts (fetch throws a TypeError or an abort), as opposed to answers. */
function isUnreachable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === 'TimeoutError' || error.name === 'AbortError') return true;
  if (error instanceof TypeError && error.message === 'fetch failed') return true;
  return error.cause !== undefined && error.cause !== error && isUnreachable(error.cause);
}

function causeText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}
