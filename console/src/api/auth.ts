/**
 * Signing in and out against the node: a password sign-in opens a session (POST /api/v1/sessions),
 * an organisation sign-in goes through OpenID Connect when the node offers it, an API key is
 * checked by asking who it is (GET /api/v1/me).
 */
import type { Credential, Me } from '../lib/session';
import { ApiClient, ApiError, type FetchLike } from './client';

export const OIDC_LOGIN_PATH = '/api/v1/auth/oidc/login';
export const DEFAULT_TENANT = 'default';

const browserFetch: FetchLike = (input, init) => fetch(input, init);

export interface PasswordSignIn {
  tenant?: string;
  username: string;
  password: string;
}

/** Opens a session; a refusal (wrong password, unknown user or tenant) is an ApiError 'unauthorized'. */
export async function signInWithPassword(form: PasswordSignIn, fetcher: FetchLike = browserFetch): Promise<Credential> {
  const tenant = form.tenant?.trim() || DEFAULT_TENANT;
  const session = await new ApiClient('', undefined, fetcher).request<{ token: string }>('/api/v1/sessions', {
    method: 'POST',
    body: { tenant, username: form.username.trim(), password: form.password },
  });
  return { kind: 'session', token: session.token };
}

/** Who a bearer is; throws ApiError 'unauthorized' when the node does not know it. */
export function whoAmI(client: ApiClient, signal?: AbortSignal): Promise<Me> {
  return client.get<Me>('/api/v1/me', signal);
}

/** Whether the node offers "Sign in with your organisation"; a node without tenancy (404) or unreachable does not. */
export async function oidcOffered(fetcher: FetchLike = browserFetch): Promise<boolean> {
  try {
    const answer = await new ApiClient('', undefined, fetcher).get<{ enabled?: unknown }>('/api/v1/auth/oidc');
    return answer.enabled === true;
  } catch (error) {
    if (error instanceof ApiError) return false;
    throw error;
  }
}

/**
 * Ends a session on the node (a key has nothing to end). Best effort: the tab forgets the
 * credential either way, and a session that already ended (401) is what was wanted.
 */
export async function signOut(credential: Credential, fetcher: FetchLike = browserFetch): Promise<void> {
  if (credential.kind !== 'session') return;
  try {
    await new ApiClient(credential.token, undefined, fetcher).request('/api/v1/sessions/current', { method: 'DELETE' });
  } catch {
    // unreachable node or an ended session: nothing more the console can do
  }
}
