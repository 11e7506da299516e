import { describe, expect, it, vi } from 'vitest';
import { ApiClient, ApiError, toApiError } from './client';

function respond(status: number, body?: unknown): Response {
  return new Response(body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body), { status });
}

describe('API error mapping', () => {
  it.each([
    [400, 'invalid'],
    [401, 'unauthorized'],
    [403, 'forbidden'],
    [404, 'not_found'],
    [409, 'conflict'],
    [413, 'too_large'],
    [428, 'precondition'],
    [503, 'unavailable'],
    [500, 'internal'],
    [502, 'internal'],
    [418, 'invalid'],
  ])('%d → %s', (status, kind) => {
    expect(toApiError(status, undefined).kind).toBe(kind);
  });

  it("keeps the server's sentence and adds what to do", () => {
    const error = toApiError(409, { error: 'conflict', message: 'twin is at version 4, not 3', details: { currentVersion: 4 } });
    expect(error.message).toMatch(/Someone else changed this first/);
    expect(error.message).toMatch(/version 4, not 3/);
    expect(error.details).toEqual({ currentVersion: 4 });
    expect(error.serverMessage).toBe('twin is at version 4, not 3');
    expect(toApiError(409, undefined).serverMessage).toBeUndefined();
    expect(toApiError(400, { message: 'desired state refused: speed above 100' }).message).toBe('desired state refused: speed above 100');
    expect(toApiError(401, undefined).message).toMatch(/Sign in again/);
  });
});

describe('ApiClient', () => {
  it('sends the key on every request and JSON bodies', async () => {
    const fetcher = vi.fn(async (_url: string, _init: RequestInit) => respond(200, { ok: true }));
    const client = new ApiClient('secret', undefined, fetcher);
    await expect(
      client.request('/api/v1/devices/x/twin', { method: 'PATCH', body: { desired: { speed: 1 } }, headers: { 'if-match': '"3"' } }),
    ).resolves.toEqual({
      ok: true,
    });
    const [url, init] = fetcher.mock.calls[0]!;
    expect(url).toBe('/api/v1/devices/x/twin');
    expect(init.method).toBe('PATCH');
    expect(init.headers).toMatchObject({ authorization: 'Bearer secret', 'content-type': 'application/json', 'if-match': '"3"' });
    expect(init.body).toBe('{"desired":{"speed":1}}');
  });

  it('sends no authorization header without a bearer (signing in, public endpoints)', async () => {
    const fetcher = vi.fn(async (_url: string, _init: RequestInit) => respond(200, { enabled: false }));
    await new ApiClient('', undefined, fetcher).get('/api/v1/auth/oidc');
    expect(fetcher.mock.calls[0]?.[1].headers).not.toHaveProperty('authorization');
  });

  it('explains a 403 as a refusal of the role, with the server sentence', () => {
    const error = toApiError(403, { error: 'forbidden', message: 'the viewer role does not have the decisions:approve permission' });
    expect(error.kind).toBe('forbidden');
    expect(error.message).toBe(
      'Your role may not do that: ask an administrator of this tenant. (the viewer role does not have the decisions:approve permission)',
    );
  });

  it('calls onRefused on 401 and throws', async () => {
    const onRefused = vi.fn();
    const client = new ApiClient('bad', onRefused, async () => respond(401, { error: 'unauthorized', message: 'needs the admin key' }));
    await expect(client.get('/api/v1/devices')).rejects.toMatchObject({ kind: 'unauthorized', status: 401 });
    expect(onRefused).toHaveBeenCalledOnce();
  });

  it('tells of a 403 too (the role may have changed), with the refusal', async () => {
    const onRefused = vi.fn();
    const client = new ApiClient('k', onRefused, async () =>
      respond(403, { error: 'forbidden', message: 'the viewer role does not have it' }),
    );
    await expect(client.get('/api/v1/approvals/x/approve')).rejects.toMatchObject({ kind: 'forbidden', status: 403 });
    expect(onRefused).toHaveBeenCalledExactlyOnceWith(expect.objectContaining({ kind: 'forbidden' }));
  });

  it('does not sign out on other errors', async () => {
    const onRefused = vi.fn();
    const client = new ApiClient('k', onRefused, async () => respond(404, { error: 'not_found', message: 'no device x' }));
    const error = await client.get('/api/v1/devices/x').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).kind).toBe('not_found');
    expect(onRefused).not.toHaveBeenCalled();
  });

  it('turns a failed fetch into a network error that says what to check', async () => {
    const client = new ApiClient('k', undefined, async () => {
      throw new TypeError('Failed to fetch');
    });
    await expect(client.get('/api/v1/node')).rejects.toMatchObject({ kind: 'network', status: 0 });
  });

  it('passes aborts through untouched', async () => {
    const abort = new DOMException('aborted', 'AbortError');
    const client = new ApiClient('k', undefined, async () => {
      throw abort;
    });
    await expect(client.get('/api/v1/node')).rejects.toBe(abort);
  });

  it('tolerates non-JSON error bodies', async () => {
    const client = new ApiClient('a b', undefined, async () => respond(502, '<html>bad gateway</html>'));
    await expect(client.get('/api/v1/node')).rejects.toMatchObject({ kind: 'internal', status: 502 });
  });

  it('builds stream URLs with a single-use ticket bought with the key in a header, never with the key', async () => {
    const calls: { url: string; init: RequestInit }[] = [];
    const client = new ApiClient('a b', undefined, async (url, init) => {
      calls.push({ url, init });
      return respond(201, JSON.stringify({ ticket: 't/1', expiresAt: 1 }));
    });
    const url = await client.streamUrl('pump-0001', { protocol: 'https:', host: 'iot.example:8443' });
    expect(url).toBe('wss://iot.example:8443/api/v1/devices/pump-0001/stream?ticket=t%2F1');
    expect(url).not.toContain('a%20b');
    expect(calls[0]?.url).toBe('/api/v1/stream-tickets');
    expect(calls[0]?.init.method).toBe('POST');
    expect(calls[0]?.init.headers).toMatchObject({ authorization: 'Bearer a b' });
    expect(await client.streamUrl('p', { protocol: 'http:', host: 'localhost:8080' })).toMatch(/^ws:\/\/localhost:8080\//);
  });
});
