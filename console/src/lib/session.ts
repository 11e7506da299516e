/**
 * Who is signed in to this tab: the bearer the console sends (a session token from a sign-in, or an
 * API key pasted in), who the node says that is (GET /api/v1/me), and what that role may do.
 */
import { createContext, useContext } from 'react';
import type { ApiClient } from '../api/client';

/** A session ends on sign-out (DELETE /sessions/current); a key is only forgotten by the tab. */
export type Credential = { kind: 'session' | 'key'; token: string };

export const CREDENTIAL_KEY = 'thingloop.credential';

/** What GET /api/v1/me answers. */
export interface Me {
  tenant: string;
  role: string;
  actor: string;
  permissions: string[];
}

export function parseCredential(stored: string | null): Credential | null {
  if (!stored) return null;
  try {
    const value: unknown = JSON.parse(stored);
    if (!value || typeof value !== 'object') return null;
    const { kind, token } = value as Record<string, unknown>;
    if ((kind === 'session' || kind === 'key') && typeof token === 'string' && token) return { kind, token };
  } catch {
    // a value from an older console or typed by hand: sign in again
  }
  return null;
}

export function storedCredential(): Credential | null {
  try {
    return parseCredential(window.sessionStorage.getItem(CREDENTIAL_KEY));
  } catch {
    return null;
  }
}

export function storeCredential(credential: Credential | null): void {
  if (credential === null) window.sessionStorage.removeItem(CREDENTIAL_KEY);
  else window.sessionStorage.setItem(CREDENTIAL_KEY, JSON.stringify(credential));
}

/**
 * The session token an OpenID Connect sign-in hands back in the URL fragment (`#session=<token>`);
 * null when the fragment carries none.
 */
export function sessionFromFragment(hash: string): string | null {
  const fragment = hash.startsWith('#') ? hash.slice(1) : hash;
  const token = new URLSearchParams(fragment).get('session');
  return token?.trim() ? token.trim() : null;
}

/**
 * Takes the session token out of the address bar: stored for this tab, then the fragment is
 * removed (replaceState, so neither the history nor a copied link keeps it).
 */
export function takeSessionFromLocation(
  location: Pick<Location, 'hash' | 'pathname' | 'search'> = window.location,
  history: Pick<History, 'replaceState' | 'state'> = window.history,
): Credential | null {
  const token = sessionFromFragment(location.hash);
  if (!token) return null;
  history.replaceState(history.state, '', `${location.pathname}${location.search}`);
  return { kind: 'session', token };
}

const VERBS: Record<string, string> = {
  'decisions:approve': 'approve or reject decisions',
  'alarms:ack': 'acknowledge or clear alarms',
  'actions:invoke': 'invoke actions',
  'twins:write': 'change desired state',
  'models:write': 'edit thing models',
  'agents:write': 'change agents',
  'agents:halt': 'stop every agent',
  'devices:write': 'edit devices',
  'edges:write': 'change edges',
};

/** Why a control is off for this caller (its tooltip), or undefined when the role may use it. */
export function deniedReason(me: Me | null, permission: string): string | undefined {
  if (!me || me.permissions.includes(permission)) return undefined;
  return `Your role (${me.role}) may not ${VERBS[permission] ?? 'do this'}: it needs the ${permission} permission.`;
}

/** "acme · user:alice · operator": the header's line about who is signed in where. */
export function describeMe(me: Me): string {
  return `${me.tenant} · ${me.actor} · ${me.role}`;
}

export const ApiContext = createContext<ApiClient | null>(null);
export const MeContext = createContext<Me | null>(null);

export function useApi(): ApiClient {
  const api = useContext(ApiContext);
  if (!api) throw new Error('useApi outside a signed-in session');
  return api;
}

/**
 * `denied(permission)`: the reason a control is disabled, or undefined when allowed. The server
 * refuses regardless (403); this only keeps people from pressing what cannot work.
 */
export function usePermission(): (permission: string) => string | undefined {
  const me = useContext(MeContext);
  return (permission) => deniedReason(me, permission);
}
