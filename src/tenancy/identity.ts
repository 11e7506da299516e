import type { Role } from './policy.js';

/**
 * Who is calling, as the access check sees it: what a session or an API key stands for. One type
 * for both, so a route never cares how its caller signed in. `actor` is what records show as who
 * acted (`user:<username>`, `key:<name>`, or `admin` for the node's platform admin key).
 */
export interface Identity {
  tenant: string;
  role: Role;
  actor: string;
  userId?: string;
  keyId?: string;
  sessionId?: string;
}

export const userActor = (username: string): string => `user:${username}`;
export const keyActor = (name: string): string => `key:${name}`;

/** Why a presented credential was refused; counted in `thingloop_refusals_total` by the node. */
export type CredentialRefusal =
  | 'wrong_password'
  | 'disabled_user'
  | 'unknown_session'
  | 'expired_session'
  | 'idle_session'
  | 'unknown_key'
  | 'expired_key'
  | 'revoked_key'
  | 'malformed_credential';

/** Where the services report refused credentials (the node's metrics). */
export interface CredentialRefusals {
  credentialRefused(reason: CredentialRefusal): void;
}

export const ignoreRefusals: CredentialRefusals = { credentialRefused: () => {} };
