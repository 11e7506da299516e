import { describe, expect, it, vi } from 'vitest';
import { oidcOffered, signInWithPassword, signOut, whoAmI } from './auth';
import { ApiClient } from './client';

function respond(status: number, body?: unknown): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), { status });
}

type Call = { url: string; init: RequestInit };

function recording(answer: (call: Call) => Response) {
  const calls: Call[] = [];
  const fetcher = vi.fn(async (url: string, init: RequestInit) => {
    const call = { url, init };
    calls.push(call);
    return answer(call);
  });
  return { calls, fetcher };
}

describe('password sign-in', () => {
  it('posts the tenant, username and password without a bearer and keeps the session token', async () => {
    const { calls, fetcher } = recording(() => respond(201, { token: 'tlu_s1', expiresAt: 1, user: { username: 'alice' } }));
    const credential = await signInWithPassword({ tenant: ' alpha ', username: ' alice ', password: ' pw ' }, fetcher);
    expect(credential).toEqual({ kind: 'session', token: 'tlu_s1' });
    expect(calls[0]?.url).toBe('/api/v1/sessions');
    expect(calls[0]?.init.method).toBe('POST');
    expect(JSON.parse(String(calls[0]?.init.body))).toEqual({ tenant: 'alpha', username: 'alice', password: ' pw ' });
    expect(calls[0]?.init.headers).not.toHaveProperty('authorization');
  });

  it('signs in to the default tenant when none is given', async () => {
    const { calls, fetcher } = recording(() => respond(201, { token: 't' }));
    await signInWithPassword({ tenant: '', username: 'ana', password: 'pw' }, fetcher);
    await signInWithPassword({ username: 'ana', password: 'pw' }, fetcher);
    expect(calls.map((call) => JSON.parse(String(call.init.body)).tenant)).toEqual(['default', 'default']);
  });

  it('refuses a wrong password as unauthorized', async () => {
    const { fetcher } = recording(() => respond(401, { error: 'unauthorized', message: 'unknown user or wrong password' }));
    await expect(signInWithPassword({ username: 'ana', password: 'no' }, fetcher)).rejects.toMatchObject({
      kind: 'unauthorized',
      status: 401,
    });
  });
});

describe('who am I', () => {
  it('asks /me with the bearer', async () => {
    const me = { tenant: 'alpha', role: 'operator', actor: 'user:alice', permissions: ['decisions:approve'] };
    const { calls, fetcher } = recording(() => respond(200, me));
    await expect(whoAmI(new ApiClient('tlu_s1', undefined, fetcher))).resolves.toEqual(me);
    expect(calls[0]?.url).toBe('/api/v1/me');
    expect(calls[0]?.init.headers).toMatchObject({ authorization: 'Bearer tlu_s1' });
  });

  it('an ended session (401) signs the console out through onRefused', async () => {
    const onRefused = vi.fn();
    const { fetcher } = recording(() => respond(401, { error: 'unauthorized', message: 'session expired' }));
    await expect(whoAmI(new ApiClient('tlu_old', onRefused, fetcher))).rejects.toMatchObject({ kind: 'unauthorized' });
    expect(onRefused).toHaveBeenCalledOnce();
  });
});

describe('organisation sign-in offered', () => {
  it('follows the node', async () => {
    expect(await oidcOffered(recording(() => respond(200, { enabled: true })).fetcher)).toBe(true);
    expect(await oidcOffered(recording(() => respond(200, { enabled: false })).fetcher)).toBe(false);
  });

  it('is not offered by a node without tenancy (404) or with a broken answer', async () => {
    expect(await oidcOffered(recording(() => respond(404, { error: 'not_found' })).fetcher)).toBe(false);
    expect(await oidcOffered(recording(() => respond(500)).fetcher)).toBe(false);
    expect(await oidcOffered(recording(() => respond(200, { enabled: 'yes' })).fetcher)).toBe(false);
  });
});

describe('sign-out', () => {
  it('ends a session on the node', async () => {
    const { calls, fetcher } = recording(() => respond(204));
    await signOut({ kind: 'session', token: 'tlu_s1' }, fetcher);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.url).toBe('/api/v1/sessions/current');
    expect(calls[0]?.init.method).toBe('DELETE');
    expect(calls[0]?.init.headers).toMatchObject({ authorization: 'Bearer tlu_s1' });
  });

  it('has nothing to end for a key, and does not fail when the session already ended or the node is away', async () => {
    const key = recording(() => respond(204));
    await signOut({ kind: 'key', token: 'tlk_1' }, key.fetcher);
    expect(key.calls).toHaveLength(0);
    await expect(signOut({ kind: 'session', token: 'gone' }, recording(() => respond(401)).fetcher)).resolves.toBeUndefined();
    const away = vi.fn(async () => {
      throw new TypeError('Failed to fetch');
    });
    await expect(signOut({ kind: 'session', token: 's' }, away)).resolves.toBeUndefined();
  });
});
