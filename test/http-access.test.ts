/**
 * Issue #17, defects 1, 6 (HTTP), 7 (bodies), 8 (headers, keys) and 9 (timeouts): who may call a
 * route is decided by the route fastify matched, whatever the spelling of its path.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import { GuessingBrake } from '../src/access/index.js';
import { ManualClock } from '../src/time/index.js';
import { enforceRouteAccess } from '../src/transport/http/access.js';
import { StreamTickets } from '../src/transport/http/index.js';
import { ADMIN_KEY, type JsonObject, PUMP_MODEL, startTestNode, type TestNode } from './support/harness.js';

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request with the path exactly as written: fetch() would normalise dot segments and case of escapes. */
function rawRequest(
  baseUrl: string,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        // A fresh connection each time: a server that answers before reading a body may close a kept-alive one.
        agent: false,
        method,
        path,
        headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const percentEncodeLetter = (letter: string) => `%${letter.charCodeAt(0).toString(16)}`;

/** Many spellings of one path that a router or a proxy might take for the same route. */
function spellings(path: string): string[] {
  const rest = path.slice('/api/v1'.length);
  const segments = rest.split('/').filter(Boolean);
  const variants = new Set<string>([
    `/${percentEncodeLetter('a')}pi/v1${rest}`,
    `/api/${percentEncodeLetter('v')}1${rest}`,
    `/${['a', 'p', 'i'].map(percentEncodeLetter).join('')}/v1${rest}`,
    `/%41pi/v1${rest}`,
    `/API/v1${rest}`,
    `/Api/V1${rest}`,
    `/api%2Fv1${rest}`,
    `/api/v1${rest.replaceAll('/', '%2F')}`,
    `/api/v1%2f${segments.join('%2f')}`,
    `/x/../api/v1${rest}`,
    `/api/./v1${rest}`,
    `/api/v1/.${rest}`,
    `/api/v1/x/..${rest}`,
    `/api/%2e%2e/api/v1${rest}`,
    `//api/v1${rest}`,
    `/api//v1${rest}`,
    `/api/v1/${rest}`,
    `${path}/`,
    `${path};`,
    `${path};x=1`,
    `${path}%3b`,
    `${path}?`,
    `${path}#x`,
    `${path}%00`,
    `${path}%20`,
    `/api/v1${rest.toUpperCase()}`,
    `/api/v1${segments
      .map((segment) => segment.replace(/^[a-z]/, (c) => percentEncodeLetter(c)))
      .join('/')
      .replace(/^/, '/')}`,
    `\\api\\v1${rest.replaceAll('/', '\\')}`,
  ]);
  return [...variants];
}

/** The console's single-page app answers unknown non-API paths with its HTML shell: that reads nothing. */
const isConsoleShell = (response: RawResponse) =>
  response.status === 200 && String(response.headers['content-type']).startsWith('text/html') && /<!doctype html>/i.test(response.body);

describe('route access', () => {
  let t: TestNode;
  const clock = new ManualClock(Date.now());
  let deviceToken: string;

  before(async () => {
    t = await startTestNode({ authFailureBurst: 1_000_000 }, clock);
    assert.equal((await t.api('/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL })).status, 201);
    ({ token: deviceToken } = await t.registerDevice('victim'));
    assert.equal((await t.api('/api/v1/edges', { method: 'POST', body: { id: 'edge-a' } })).status, 201);
  });
  after(() => t.stop());

  /** What an attacker would change or learn: compared before and after the walk. */
  async function stateOfTheNode() {
    const devices = await t.api<{ items: { id: string; updatedAt: number }[] }>('/api/v1/devices?limit=1000');
    const edges = await t.api<{ items: { id: string }[] }>('/api/v1/edges');
    const killSwitch = await t.api<JsonObject>('/api/v1/agents/kill-switch');
    const models = await t.api<{ items: unknown[] }>('/api/v1/models');
    const agents = await t.api<{ items: unknown[] }>('/api/v1/agents');
    return {
      devices: devices.body.items,
      edges: edges.body.items.map((e) => e.id),
      killSwitch: killSwitch.body,
      models: models.body,
      agents: agents.body,
    };
  }

  test('the reported bypasses are closed: spelling the path differently opens nothing', async () => {
    const attempts: [string, string, string?][] = [
      ['GET', '/%61pi/v1/devices'],
      ['POST', '/%61pi/v1/devices', JSON.stringify({ id: 'intruder', model: 'pump' })],
      ['POST', '/%61pi/v1/devices/victim/token', '{}'],
      ['POST', '/%61pi/v1/edges', JSON.stringify({ id: 'rogue-edge' })],
      ['PUT', '/%61pi/v1/agents/kill-switch', JSON.stringify({ engaged: true })],
      ['DELETE', '/%61pi/v1/devices/victim'],
      ['GET', '/api/%761/devices'],
      ['GET', '/%61%70%69/v1/devices'],
    ];
    for (const [method, path, body] of attempts) {
      const response = await rawRequest(t.node.httpUrl, method, path, body);
      assert.equal(response.status, 401, `${method} ${path}`);
      assert.doesNotMatch(response.body, /victim|tld_|token/, `${method} ${path} reveals nothing`);
    }
    const devices = await t.api<{ items: { id: string }[] }>('/api/v1/devices');
    assert.deepEqual(
      devices.body.items.map((d) => d.id),
      ['victim'],
    );
    // The device's token still works: it was not rotated.
    assert.equal((await t.api('/api/v1/devices/victim/telemetry', { method: 'POST', body: { speed: 1 }, auth: deviceToken })).status, 200);
  });

  test('every route of the OpenAPI document, in every spelling, without a key: nothing is read or written', async () => {
    const spec = await t.api<{ paths: Record<string, Record<string, unknown>> }>('/api/v1/openapi.json');
    assert.equal(spec.status, 200);
    const fill: Record<string, string> = {
      id: 'victim',
      modelId: 'pump',
      action: 'reset',
      invocationId: 'inv-1',
      name: 'overheat',
      ref: '88.100.1/victim',
    };
    const operations = Object.entries(spec.body.paths).flatMap(([template, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({
        method: method.toUpperCase(),
        path: template.replace(/\{([^}]+)\}/g, (_, name: string) => fill[name] ?? 'x'),
        // Sign-in and its discovery are open to all by design (`security: []`): they must still reveal and write nothing.
        open:
          Array.isArray((operation as { security?: unknown[] }).security) && (operation as { security: unknown[] }).security.length === 0,
      })),
    );
    assert.ok(operations.length >= 40, `the document lists the API (${operations.length} operations)`);
    const before = await stateOfTheNode();
    let thrown = 0;
    for (const { method, path, open } of operations) {
      for (const spelling of spellings(path)) {
        const body = method === 'GET' || method === 'DELETE' ? undefined : '{}';
        const response = await rawRequest(t.node.httpUrl, method, spelling, body).catch((error: Error) => {
          throw new Error(`${method} ${spelling}: ${error.message}`);
        });
        thrown += 1;
        if (isConsoleShell(response)) continue;
        if (open) assert.ok(response.status < 500, `${method} ${spelling} answered ${response.status}`);
        else assert.ok(response.status >= 400 && response.status < 500, `${method} ${spelling} answered ${response.status}`);
        assert.doesNotMatch(response.body, /"victim"|edge-a|tld_|tle_|tlu_|tlk_/, `${method} ${spelling} reveals nothing`);
      }
    }
    assert.deepEqual(await stateOfTheNode(), before, 'nothing was written');
    assert.ok(thrown > 1000, `${thrown} requests thrown`);
  });

  test('a route that declares no access cannot be registered', async () => {
    const app = Fastify();
    enforceRouteAccess(app, {
      isAdminKey: () => false,
      identify: async () => undefined,
      deviceTenant: async () => undefined,
      edgeTenant: async () => undefined,
      tenantExists: () => true,
      audit: () => {},
      isMetricsToken: () => false,
      publicMetrics: false,
      publicDocs: false,
      brake: new GuessingBrake({ burst: 1, refillPerSecond: 1, now: () => 0 }),
      tickets: new StreamTickets(() => 0),
      metrics: { refused: () => {}, authFailed: () => {} },
    });
    assert.throws(() => app.get('/forgotten', async () => 'open'), /declares no access/);
    // A permission the policy does not know is as good as none: refused at registration too.
    assert.throws(
      () => app.get('/misspelt', { config: { access: 'devices:raed' as 'devices:read' } }, async () => 'open'),
      /unknown access/,
    );
    app.get('/declared', { config: { access: 'public' } }, async () => 'open');
    await app.ready();
    assert.equal((await app.inject({ url: '/declared' })).statusCode, 200);
    await app.close();
  });

  test('keys only from the Authorization header: ?key= opens nothing', async () => {
    const response = await rawRequest(t.node.httpUrl, 'GET', `/api/v1/devices?key=${encodeURIComponent(ADMIN_KEY)}`);
    assert.equal(response.status, 401);
  });

  test('writes validate strictly: no type coercion of bodies, deep bodies refused', async () => {
    const coerced = await t.api<JsonObject>('/api/v1/devices', { method: 'POST', body: { id: 123, model: ['pump'] } });
    assert.equal(coerced.status, 400);
    assert.equal((await t.api('/api/v1/devices/123')).status, 404, 'no device "123" was created');

    // Written as text: JSON.stringify itself overflows on 20,000 levels.
    const levels = 20_000;
    const deep = `${'{"type":"object","properties":{"x":'.repeat(levels)}{"type":"number"}${'}}'.repeat(levels)}`;
    const model = JSON.stringify({ ...PUMP_MODEL, properties: { ...PUMP_MODEL.properties, nested: '__DEEP__' } }).replace(
      '"__DEEP__"',
      deep,
    );
    const response = await t.api<JsonObject>('/api/v1/models/deep', { method: 'PUT', raw: model });
    assert.equal(response.status, 400);
    assert.match(String(response.body.message), /deeper than 64/);
    const nul = await t.api<JsonObject>('/api/v1/devices', { method: 'POST', body: { id: 'nul-1', model: 'pump', name: 'a\u0000b' } });
    assert.equal(nul.status, 400);
    assert.equal((await t.api('/healthz', { auth: null })).status, 200);
  });

  test('security headers on the API and the console', async () => {
    for (const path of ['/api/v1/devices', '/', '/devices/victim']) {
      const response = await rawRequest(t.node.httpUrl, 'GET', path, undefined, { authorization: `Bearer ${ADMIN_KEY}` });
      assert.match(String(response.headers['content-security-policy']), /frame-ancestors 'none'/, path);
      assert.match(String(response.headers['content-security-policy']), /script-src 'self'/, path);
      assert.equal(response.headers['x-content-type-options'], 'nosniff', path);
      assert.equal(response.headers['referrer-policy'], 'no-referrer', path);
    }
  });
});

describe('metrics and API document access', () => {
  test('private by default; a metrics token reads /metrics only; options make them public', async () => {
    const t = await startTestNode({ metricsToken: 'scraper-token-0123456789' });
    try {
      assert.equal((await t.api('/metrics', { auth: null })).status, 401);
      assert.equal((await t.api('/api/v1/openapi.json', { auth: null })).status, 401);
      assert.equal((await t.api('/metrics', { auth: 'scraper-token-0123456789' })).status, 200);
      assert.equal(
        (await t.api('/api/v1/devices', { auth: 'scraper-token-0123456789' })).status,
        401,
        'the metrics token opens nothing else',
      );
    } finally {
      await t.stop();
    }
    const open = await startTestNode({ publicMetrics: true, publicApiDocs: true });
    try {
      assert.equal((await open.api('/metrics', { auth: null })).status, 200);
      assert.equal((await open.api('/api/v1/openapi.json', { auth: null })).status, 200);
      assert.equal((await open.api('/api/v1/devices', { auth: null })).status, 401);
    } finally {
      await open.stop();
    }
  });
});

describe('guessing brake (HTTP)', () => {
  test('failed logins from one address are braked with 429 and Retry-After, counted, and recover with time', async () => {
    const clock = new ManualClock(Date.now());
    const t = await startTestNode({ authFailureBurst: 5, authFailureRefillPerSecond: 1 }, clock);
    try {
      // Correct keys are not slowed while the address has budget, however many it sends.
      for (let i = 0; i < 10; i++) assert.equal((await t.api('/api/v1/devices')).status, 200);
      // Missing keys are not guesses.
      for (let i = 0; i < 10; i++) assert.equal((await t.api('/api/v1/devices', { auth: null })).status, 401);
      for (let i = 0; i < 5; i++) assert.equal((await t.api('/api/v1/devices', { auth: `wrong-${i}` })).status, 401);
      const braked = await rawRequest(t.node.httpUrl, 'GET', '/api/v1/devices', undefined, { authorization: 'Bearer wrong-again' });
      assert.equal(braked.status, 429);
      assert.ok(Number(braked.headers['retry-after']) >= 1);
      // While braked even the right key is refused unread: otherwise the brake would still be an oracle.
      assert.equal((await t.api('/api/v1/devices')).status, 429);
      clock.advance(2_000);
      assert.equal((await t.api('/api/v1/devices')).status, 200);
      const metrics = await t.api<string>('/metrics');
      assert.match(metrics.body, /thingloop_refusals_total\{listener="http",reason="rate_limited"\} [1-9]/);
      assert.match(metrics.body, /thingloop_refusals_total\{listener="http",reason="auth_failed"\} [1-9]/);
    } finally {
      await t.stop();
    }
  });
});

describe('request deadlines', () => {
  test('a body that never finishes is cut off and does not hold up shutdown', async () => {
    const t = await startTestNode({ httpRequestTimeoutMs: 1_000 });
    const url = new URL(t.node.httpUrl);
    const socket = connect(Number(url.port), url.hostname);
    const answer = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString();
      });
      socket.on('close', () => resolve(text));
    });
    socket.write(
      `POST /api/v1/devices HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${ADMIN_KEY}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"id":`,
    );
    const text = await answer;
    assert.match(text, /^HTTP\/1\.1 408/);
    assert.match((await t.api<string>('/metrics')).body, /thingloop_refusals_total\{listener="http",reason="request_timeout"\} 1/);
    await t.stop();
  });
});
