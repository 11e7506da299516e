/**
 * The isolation suite: one node, tenants A and B with the same thing model and a device of the
 * same id, each with its own agent, alarm, pending approval, invocation, edge, keys of every role
 * and a person. Every operation of the OpenAPI document is called with each of A's credentials
 * against B's resources; each must be refused, or answer with A's own data only, and never differ
 * from its answer for a resource that never existed (which would tell A that B's one exists).
 * B's state is compared before and after the whole run.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { type JsonObject, PUMP_MODEL, startTestNode, type TestNode } from './support/harness.js';

const A = 'tenant-a';
const B = 'tenant-b';
const TENANT_HEADER = 'x-thingloop-tenant';
const SHARED_DEVICE = 'pump-shared';
/** A time past every sample of the run: reads with no window default to one ending now. */
const EVER = 4_102_444_800_000;
const MEMBER_ROLES = ['tenant-admin', 'operator', 'engineer', 'viewer', 'integration'] as const;

interface Operation {
  method: string;
  path: string;
}

interface Fixture {
  tenant: string;
  adminKey: string;
  keys: Record<string, { id: string; key: string }>;
  user: { id: string; username: string; password: string };
  session: string;
  devices: Record<string, { token: string; code: string; ipv6: string }>;
  onlyDevice: string;
  onlyModel: string;
  agent: string;
  decision: string;
  alarm: string;
  invocation: string;
  edge: { id: string; token: string };
}

/** A request body that passes validation, so a call reaches the tenant it acts in. */
function bodyFor(operation: Operation, ids: Record<string, string>, run: number): unknown {
  const fresh = `made-${run}`;
  const agent = (id: string) => ({
    id,
    perceive: { devices: { ids: [SHARED_DEVICE] } },
    judge: { when: 'temperature > 150', clear: 'temperature < 100' },
  });
  const bodies: Record<string, unknown> = {
    'PUT /api/v1/models/{modelId}': PUMP_MODEL,
    'POST /api/v1/devices': { id: fresh, model: 'pump' },
    'PATCH /api/v1/devices/{id}': { attributes: { touchedBy: 'a' } },
    'POST /api/v1/devices/{id}/telemetry': { speed: 11 },
    'POST /api/v1/devices/{id}/events/{name}': { data: { temperature: 50 } },
    'PATCH /api/v1/devices/{id}/twin': { desired: { speed: 12 } },
    'POST /api/v1/devices/{id}/actions/{action}': { input: { reason: 'isolation' } },
    'POST /api/v1/agents': agent(fresh),
    'PUT /api/v1/agents/kill-switch': { engaged: false },
    'PUT /api/v1/agents/{id}': agent(ids.id ?? fresh),
    'PUT /api/v1/agents/{id}/mode': { mode: 'observe' },
    'PUT /api/v1/agents/{id}/enabled': { enabled: false },
    'POST /api/v1/approvals/{id}/approve': { note: 'a approves' },
    'POST /api/v1/approvals/{id}/reject': { note: 'a rejects' },
    'POST /api/v1/alarms/{id}/acknowledge': { note: 'a acknowledges' },
    'POST /api/v1/alarms/{id}/clear': { note: 'a clears' },
    'POST /api/v1/edges': { id: fresh },
    'POST /api/v1/tenants': { id: fresh },
    'PATCH /api/v1/tenants/{tenantId}': { name: 'renamed by a' },
    'POST /api/v1/keys': { role: 'viewer', name: fresh },
    'POST /api/v1/users': { username: fresh, password: 'a long enough password', role: 'viewer' },
    'PATCH /api/v1/users/{userId}': { displayName: 'renamed by a' },
  };
  return bodies[`${operation.method} ${operation.path}`];
}

/** Operations whose body is not in the document (raw device payloads) or that take none. */
const TAKES_BODY = new Set(['POST /api/v1/devices/{id}/telemetry', 'POST /api/v1/devices/{id}/events/{name}']);

/** Non-GET operations a viewer may call: they change nothing of the tenant. */
const VIEWER_MAY = new Map([
  ['POST /api/v1/sessions', 'signing in is public: the bearer is not used'],
  ['DELETE /api/v1/sessions/current', "ends the caller's own session"],
  ['POST /api/v1/stream-tickets', 'trades the read access the viewer has for a single-use stream ticket'],
]);

function fill(path: string, values: Record<string, string>): string {
  return path.replace(/\{([^}]+)\}/g, (_whole, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`no value for {${name}} in ${path}`);
    return name === '*' || name === 'ref' ? value : encodeURIComponent(value);
  });
}

function parameterNames(path: string): string[] {
  return [...path.matchAll(/\{([^}]+)\}/g)].map((match) => match[1] as string);
}

describe('tenant isolation over HTTP', () => {
  let t: TestNode;
  let a: Fixture;
  let b: Fixture;
  let operations: Operation[] = [];
  let bBefore: JsonObject;

  /** B's state as the platform admin reads it (the admin's own reads of the trail left out). */
  async function stateOf(fixture: Fixture): Promise<JsonObject> {
    const read = async (path: string) => {
      const answer = await t.api<JsonObject>(path, { headers: { [TENANT_HEADER]: fixture.tenant } });
      assert.equal(answer.status, 200, `${path}: ${JSON.stringify(answer.body)}`);
      return answer.body;
    };
    const devices = (await read('/api/v1/devices?limit=1000')).items as JsonObject[];
    const perDevice: JsonObject = {};
    for (const device of devices) {
      const id = encodeURIComponent(String(device.id));
      perDevice[String(device.id)] = {
        device: await read(`/api/v1/devices/${id}`),
        twin: await read(`/api/v1/devices/${id}/twin`),
        twinHistory: await read(`/api/v1/devices/${id}/twin/history`),
        latest: await read(`/api/v1/devices/${id}/latest`),
        telemetry: await read(`/api/v1/devices/${id}/telemetry?from=0&to=${EVER}`),
        events: await read(`/api/v1/devices/${id}/events?from=0&to=${EVER}`),
        invocations: await read(`/api/v1/devices/${id}/invocations`),
      };
    }
    const agents = (await read('/api/v1/agents')).items as JsonObject[];
    const decisions: JsonObject = {};
    for (const agent of agents)
      decisions[String(agent.id)] = await read(`/api/v1/agents/${encodeURIComponent(String(agent.id))}/decisions`);
    const audit = (await read('/api/v1/audit?limit=1000')).entries as JsonObject[];
    return {
      devices,
      perDevice,
      models: await read('/api/v1/models'),
      agents,
      decisions,
      killSwitch: await read('/api/v1/agents/kill-switch'),
      approvals: await read('/api/v1/approvals'),
      alarms: await read('/api/v1/alarms'),
      edges: await read('/api/v1/edges'),
      keys: await read('/api/v1/keys'),
      users: await read('/api/v1/users'),
      audit: audit.filter((entry) => entry.actor !== 'admin'),
    };
  }

  async function setUpTenant(id: string, letter: string, label: string): Promise<Fixture> {
    const created = await t.api<{ adminKey: string }>('/api/v1/tenants', { method: 'POST', body: { id, name: label } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const adminKey = created.body.adminKey;
    const call = <T = JsonObject>(path: string, init: Parameters<TestNode['api']>[1] = {}) => t.api<T>(path, { ...init, auth: adminKey });
    const ok = async <T = JsonObject>(path: string, init: Parameters<TestNode['api']>[1] = {}): Promise<T> => {
      const answer = await call<T>(path, init);
      assert.ok(
        answer.status >= 200 && answer.status < 300,
        `${init.method ?? 'GET'} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`,
      );
      return answer.body;
    };
    await ok('/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL });
    const onlyModel = `${letter}-only-model`;
    await ok(`/api/v1/models/${onlyModel}`, { method: 'PUT', body: { ...PUMP_MODEL, title: `${label} private model` } });
    const onlyDevice = `${letter}-only-pump`;
    const devices: Fixture['devices'] = {};
    for (const [device, name] of [
      [SHARED_DEVICE, `${label} shared pump`],
      [onlyDevice, `${label} private pump`],
    ] as const) {
      const made = await ok<{ token: string; device: { code: string; ipv6: string } }>('/api/v1/devices', {
        method: 'POST',
        body: { id: device, model: 'pump', name },
      });
      devices[device] = { token: made.token, code: made.device.code, ipv6: made.device.ipv6 };
    }
    const agent = `${letter}-agent`;
    await ok('/api/v1/agents', {
      method: 'POST',
      body: {
        id: agent,
        name: `${label} cooling agent`,
        mode: 'approve',
        perceive: { devices: { ids: [onlyDevice] } },
        judge: { when: 'temperature > 80', clear: 'temperature < 70' },
        act: { steps: [{ set: { property: 'speed', value: '40' } }] },
        approval: { expiresIn: '1h' },
      },
    });
    // A reading that makes the agent propose a change waiting for a person: a pending approval and a decision.
    const sent = await t.api(`/api/v1/devices/${onlyDevice}/telemetry`, {
      method: 'POST',
      auth: devices[onlyDevice]?.token ?? null,
      body: { temperature: 95, speed: 70 },
    });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    const scope = t.node.tenant(id);
    assert.ok(scope);
    await scope.agents.idle();
    const decisions = await ok<{ items: { id: string; outcome: string }[] }>(`/api/v1/agents/${agent}/decisions`);
    const decision = decisions.items[0];
    assert.equal(decision?.outcome, 'awaiting-approval', JSON.stringify(decisions));
    const alarm = await scope.alarms.raise({
      agentId: agent,
      deviceId: onlyDevice,
      type: `${letter}-overheat`,
      severity: 'major',
      message: `${label} pump runs hot`,
    });
    const invocation = await ok<{ id: string }>(`/api/v1/devices/${onlyDevice}/actions/reset`, {
      method: 'POST',
      body: { input: { reason: `${label} reset` } },
    });
    const edge = await ok<{ token: string }>('/api/v1/edges', { method: 'POST', body: { id: `${letter}-edge`, name: `${label} edge` } });
    const keys: Fixture['keys'] = {};
    for (const role of MEMBER_ROLES) {
      const issued = await ok<{ id: string; key: string }>('/api/v1/keys', { method: 'POST', body: { role, name: `${letter}-${role}` } });
      keys[role] = { id: issued.id, key: issued.key };
    }
    const password = `${label} password 123`;
    const user = await ok<{ id: string; username: string }>('/api/v1/users', {
      method: 'POST',
      body: { username: `${letter}-person`, password, role: 'tenant-admin', displayName: `${label} person` },
    });
    const signedIn = await t.api<{ token: string }>('/api/v1/sessions', {
      method: 'POST',
      auth: null,
      body: { tenant: id, username: user.username, password },
    });
    assert.equal(signedIn.status, 201, JSON.stringify(signedIn.body));
    return {
      tenant: id,
      adminKey,
      keys,
      user: { id: user.id, username: user.username, password },
      session: signedIn.body.token,
      devices,
      onlyDevice,
      onlyModel,
      agent,
      decision: decision.id,
      alarm: alarm.id,
      invocation: invocation.id,
      edge: { id: `${letter}-edge`, token: edge.token },
    };
  }

  /** Strings only B has: none may reach A unless A sent it itself. */
  function secretsOf(fixture: Fixture): string[] {
    return [
      fixture.tenant === B ? 'Beta' : 'Acme',
      fixture.adminKey,
      fixture.session,
      fixture.user.id,
      fixture.user.username,
      fixture.user.password,
      fixture.onlyDevice,
      fixture.onlyModel,
      fixture.agent,
      fixture.decision,
      fixture.alarm,
      fixture.invocation,
      fixture.edge.id,
      fixture.edge.token,
      ...Object.values(fixture.keys).flatMap((key) => [key.id, key.key]),
      ...Object.values(fixture.devices).flatMap((device) => [device.token, device.code, device.ipv6]),
    ];
  }

  before(async () => {
    t = await startTestNode();
    a = await setUpTenant(A, 'a', 'Acme');
    b = await setUpTenant(B, 'b', 'Beta');
    const doc = await t.api<{ paths: Record<string, Record<string, unknown>> }>('/api/v1/openapi.json');
    assert.equal(doc.status, 200);
    operations = Object.entries(doc.body.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => ({ method: method.toUpperCase(), path })),
    );
    assert.ok(operations.length > 60, `the document lists ${operations.length} operations`);
    // B hits its device quota once: node-wide counters then carry B's name (thingloop_quota_refusals_total{tenant}).
    const quota = await t.api(`/api/v1/tenants/${B}`, { method: 'PATCH', body: { quotas: { devices: 2 } } });
    assert.equal(quota.status, 200, JSON.stringify(quota.body));
    const over = await t.api('/api/v1/devices', { method: 'POST', auth: b.adminKey, body: { id: 'b-one-too-many', model: 'pump' } });
    assert.equal(over.status, 429, JSON.stringify(over.body));
    bBefore = await stateOf(b);
  });
  after(async () => {
    await t?.stop();
  });

  /** B's values for each path parameter: its namesakes of A's (shared ids) and ids only B has. */
  function bValues(name: string, path: string): { value: string; only: boolean }[] {
    const only = (value: string) => ({ value, only: true });
    const device = b.devices[b.onlyDevice];
    assert.ok(device);
    switch (name) {
      case 'id':
        if (path.startsWith('/api/v1/devices/')) return [{ value: SHARED_DEVICE, only: false }, only(b.onlyDevice)];
        if (path.startsWith('/api/v1/agents/')) return [only(b.agent)];
        if (path.startsWith('/api/v1/decisions/') || path.startsWith('/api/v1/approvals/')) return [only(b.decision)];
        if (path.startsWith('/api/v1/alarms/')) return [only(b.alarm)];
        if (path.startsWith('/api/v1/edges/')) return [only(b.edge.id)];
        break;
      case 'modelId':
        return [{ value: 'pump', only: false }, only(b.onlyModel)];
      case 'invocationId':
        return [only(b.invocation)];
      case 'tenantId':
        return [only(B)];
      case 'keyId':
        return [only(b.keys.viewer?.id ?? '')];
      case 'userId':
        return [only(b.user.id)];
      case '*':
      case 'ref':
        return [only(device.code), only(device.ipv6)];
      case 'name':
        return [{ value: 'overheat', only: false }];
      case 'action':
        return [{ value: 'reset', only: false }];
    }
    throw new Error(`no B value for {${name}} in ${path}: add one to the isolation suite`);
  }

  /** A stand-in of the same shape that no tenant has. */
  function ghostOf(value: string): string {
    if (/^[0-9a-f-]{36}$/.test(value)) return randomUUID();
    if (value.includes(':')) return value.replace(/[0-9a-f]{1,4}$/, (last) => (last === 'ffff' ? 'fffe' : 'ffff'));
    if (value.includes('/')) return `${value.slice(0, value.lastIndexOf('/'))}/ghost-${value.length}`;
    return `ghost-${value}`;
  }

  /** Read first, then changes, then deletions, and signing out last: A's own fixtures serve as long as they can. */
  function ordered(list: Operation[]): Operation[] {
    const rank = (operation: Operation) =>
      operation.path === '/api/v1/sessions/current' ? 3 : operation.method === 'GET' ? 0 : operation.method === 'DELETE' ? 2 : 1;
    return [...list].sort((x, y) => rank(x) - rank(y));
  }

  test('A sees only A: lists read with A’s key hold nothing of B', async () => {
    const secrets = secretsOf(b);
    for (const path of [
      '/api/v1/devices',
      '/api/v1/agents',
      '/api/v1/alarms',
      '/api/v1/edges',
      '/api/v1/keys',
      '/api/v1/users',
      '/api/v1/audit',
    ]) {
      const answer = await t.api<JsonObject>(path, { auth: a.adminKey });
      assert.equal(answer.status, 200, path);
      const text = JSON.stringify(answer.body);
      assert.deepEqual(
        secrets.filter((value) => text.includes(value)),
        [],
        path,
      );
      assert.ok(text.includes('Acme') || text.includes('a-') || path === '/api/v1/alarms', `${path} holds A's own`);
    }
  });
  test("the node's own endpoints (metrics, API document) show A's members nothing of B", async () => {
    const secrets = [...secretsOf(b), B];
    const credentials = [...MEMBER_ROLES.map((role) => a.keys[role]?.key ?? ''), a.session];
    for (const secret of credentials) {
      for (const path of ['/metrics', '/api/v1/openapi.json', '/health']) {
        const answer = await t.api<unknown>(path, { auth: secret });
        const text = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
        assert.deepEqual(
          secrets.filter((value) => text.includes(value)),
          [],
          `${path}: ${answer.status}`,
        );
      }
    }
    // The platform's operators do see every tenant there.
    assert.match(String((await t.api<string>('/metrics')).body), /thingloop_quota_refusals_total\{tenant="tenant-b",quota="devices"\} 1/);
  });

  test("A's device and edge tokens against B's device and edge routes", async () => {
    const secrets = secretsOf(b);
    const leaks: string[] = [];
    let attempts = 0;
    let refused = 0;
    const aOnly = a.devices[a.onlyDevice];
    const aShared = a.devices[SHARED_DEVICE];
    assert.ok(aOnly && aShared);
    const routes = operations.filter(
      (operation) => operation.path.startsWith('/api/v1/devices/{id}') || operation.path.startsWith('/api/v1/edges/{id}'),
    );
    for (const operation of routes) {
      const onEdge = operation.path.startsWith('/api/v1/edges/');
      const tries: { token: string; id: string }[] = onEdge
        ? [{ token: a.edge.token, id: b.edge.id }]
        : [
            { token: aOnly.token, id: b.onlyDevice },
            { token: aOnly.token, id: SHARED_DEVICE },
          ];
      for (const { token, id } of tries) {
        for (const named of [undefined, B]) {
          const url = fill(operation.path, { id, name: 'overheat', action: 'reset' });
          const payload = bodyFor(operation, { id }, attempts);
          const answer = await t.api<unknown>(url, {
            method: operation.method,
            auth: token,
            ...(payload !== undefined || TAKES_BODY.has(`${operation.method} ${operation.path}`) ? { body: payload ?? {} } : {}),
            ...(named ? { headers: { [TENANT_HEADER]: named } } : {}),
          });
          attempts += 1;
          const text = JSON.stringify(answer.body) ?? '';
          const seen = secrets.filter((value) => text.includes(value) && !url.includes(value));
          if (seen.length > 0) leaks.push(`${operation.method} ${url}: shows ${seen.join(', ')}`);
          if (answer.status === 401) refused += 1;
          else leaks.push(`${operation.method} ${url} with A's ${onEdge ? 'edge' : 'device'} token: ${answer.status} ${text}`);
        }
      }
    }
    // Its own device's token still opens only its own device: telemetry lands in A.
    const own = await t.api(`/api/v1/devices/${SHARED_DEVICE}/telemetry`, {
      method: 'POST',
      auth: aShared.token,
      body: { vibration: 3.25 },
      headers: { [TENANT_HEADER]: B },
    });
    assert.equal(own.status, 200, JSON.stringify(own.body));
    const aLatest = await t.api<{ values: JsonObject }>(`/api/v1/devices/${SHARED_DEVICE}/latest`, { auth: a.adminKey });
    assert.equal((aLatest.body.values.vibration as JsonObject | undefined)?.value, 3.25);
    console.log(`${attempts} device/edge token attempts on B's routes, ${refused} refused`);
    assert.deepEqual(leaks, []);
  });

  test("live streams: A's keys and tickets never open B's device, and A's stream of its namesake carries only A's samples", async () => {
    const streamUrl = (id: string, ticket?: string) =>
      `${t.node.httpUrl.replace('http', 'ws')}/api/v1/devices/${id}/stream${ticket ? `?ticket=${ticket}` : ''}`;
    /** Opens a socket; resolves with the HTTP status it was refused with, or its messages until it closed. */
    const open = (url: string, headers: Record<string, string> = {}) => {
      const socket = new WebSocket(url, { headers });
      const messages: JsonObject[] = [];
      let arrived: () => void = () => {};
      socket.on('message', (data: WebSocket.RawData) => {
        messages.push(JSON.parse(data.toString()) as JsonObject);
        arrived();
      });
      const outcome = new Promise<{ refused?: number; code?: number; reason?: string }>((resolve) => {
        socket.on('unexpected-response', (_request, response) => resolve({ refused: response.statusCode ?? 0 }));
        socket.on('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }));
      });
      const messageCount = (count: number) =>
        new Promise<void>((resolve) => {
          arrived = () => {
            if (messages.length >= count) resolve();
          };
          arrived();
        });
      return { socket, messages, outcome, messageCount };
    };
    const key = a.keys.operator?.key ?? '';
    const ticket = async () => (await t.api<{ ticket: string }>('/api/v1/stream-tickets', { method: 'POST', auth: key })).body.ticket;
    for (const [label, url, headers] of [
      ['key', streamUrl(b.onlyDevice), { authorization: `Bearer ${key}` }],
      ['ticket', streamUrl(b.onlyDevice, await ticket()), {}],
    ] as const) {
      const ghostUrl = label === 'key' ? streamUrl('ghost-pump') : streamUrl('ghost-pump', await ticket());
      const answer = await open(url, headers).outcome;
      const ghost = await open(ghostUrl, headers).outcome;
      assert.equal(answer.code, 4404, `${label}: ${JSON.stringify(answer)}`);
      assert.deepEqual({ ...answer, reason: answer.reason?.replace(b.onlyDevice, 'ghost-pump') }, ghost, label);
    }
    const named = await open(streamUrl(b.onlyDevice), { authorization: `Bearer ${key}`, [TENANT_HEADER]: B }).outcome;
    assert.equal(named.refused, 403);

    // B's namesake reports while A watches its own: A's stream carries A's sample only.
    const beforeB = await stateOf(b);
    assert.deepEqual(beforeB, bBefore, 'B is unchanged so far');
    const stream = open(streamUrl(SHARED_DEVICE), { authorization: `Bearer ${key}` });
    await stream.messageCount(1);
    assert.deepEqual(stream.messages[0], { subscribed: SHARED_DEVICE });
    const bToken = b.devices[SHARED_DEVICE]?.token ?? '';
    const aToken = a.devices[SHARED_DEVICE]?.token ?? '';
    assert.equal(
      (await t.api(`/api/v1/devices/${SHARED_DEVICE}/telemetry`, { method: 'POST', auth: bToken, body: { speed: 77 } })).status,
      200,
    );
    assert.equal(
      (await t.api(`/api/v1/devices/${SHARED_DEVICE}/telemetry`, { method: 'POST', auth: aToken, body: { speed: 21 } })).status,
      200,
    );
    // B's report is in B's store, so anything it sends to streams has been sent: a last sample of A's closes the window.
    for (;;) {
      const latest = await t.api<{ values: JsonObject }>(`/api/v1/devices/${SHARED_DEVICE}/latest`, { headers: { [TENANT_HEADER]: B } });
      if ((latest.body.values?.speed as JsonObject | undefined)?.value === 77) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(
      (await t.api(`/api/v1/devices/${SHARED_DEVICE}/telemetry`, { method: 'POST', auth: aToken, body: { speed: 22 } })).status,
      200,
    );
    await stream.messageCount(3);
    stream.socket.close();
    await stream.outcome;
    assert.deepEqual(
      stream.messages.slice(1).map((message) => (message.values as JsonObject).speed),
      [21, 22],
    );
    // That report was B's own doing: the rest of the run is measured from here.
    bBefore = await stateOf(b);
  });

  test("a viewer's credentials against every operation that changes something: 403", async () => {
    const aOnly = a.devices[a.onlyDevice];
    assert.ok(aOnly);
    const own: Record<string, string> = {
      modelId: 'pump',
      invocationId: a.invocation,
      tenantId: A,
      keyId: a.keys.operator?.id ?? '',
      userId: a.user.id,
      '*': aOnly.code,
      name: 'overheat',
      action: 'reset',
    };
    const idOf = (path: string) =>
      path.startsWith('/api/v1/devices/')
        ? a.onlyDevice
        : path.startsWith('/api/v1/agents/')
          ? a.agent
          : path.startsWith('/api/v1/alarms/')
            ? a.alarm
            : path.startsWith('/api/v1/edges/')
              ? a.edge.id
              : a.decision;
    const changes = operations.filter(
      (operation) => operation.method !== 'GET' && !VIEWER_MAY.has(`${operation.method} ${operation.path}`),
    );
    const wrong: string[] = [];
    let attempts = 0;
    for (const operation of changes) {
      for (const [label, secret] of [['viewer key', a.keys.viewer?.key ?? '']] as const) {
        const values = { ...own, id: idOf(operation.path) };
        const url = fill(operation.path, values);
        const payload = bodyFor(operation, values, attempts);
        const answer = await t.api<JsonObject>(url, {
          method: operation.method,
          auth: secret,
          ...(payload !== undefined ? { body: payload } : operation.method === 'DELETE' ? {} : { body: {} }),
        });
        attempts += 1;
        if (answer.status !== 403) wrong.push(`${operation.method} ${url} as ${label}: ${answer.status} ${JSON.stringify(answer.body)}`);
      }
    }
    // A viewer signed in as a person is held to the same.
    const person = await t.api<JsonObject>('/api/v1/users', {
      method: 'POST',
      auth: a.adminKey,
      body: { username: 'a-viewer-person', password: 'viewer password 123', role: 'viewer' },
    });
    assert.equal(person.status, 201, JSON.stringify(person.body));
    const session = await t.api<{ token: string }>('/api/v1/sessions', {
      method: 'POST',
      auth: null,
      body: { tenant: A, username: 'a-viewer-person', password: 'viewer password 123' },
    });
    assert.equal(session.status, 201);
    for (const operation of changes) {
      const values = { ...own, id: idOf(operation.path) };
      const url = fill(operation.path, values);
      const payload = bodyFor(operation, values, attempts);
      const answer = await t.api<JsonObject>(url, {
        method: operation.method,
        auth: session.body.token,
        ...(payload !== undefined ? { body: payload } : operation.method === 'DELETE' ? {} : { body: {} }),
      });
      attempts += 1;
      if (answer.status !== 403)
        wrong.push(`${operation.method} ${url} as a viewer's session: ${answer.status} ${JSON.stringify(answer.body)}`);
    }
    console.log(`${attempts} viewer attempts on ${changes.length} changing operations, ${attempts - wrong.length} refused with 403`);
    assert.deepEqual(wrong, []);
  });

  test("every operation with each of A's credentials against B's resources: refused or A's own, never telling B's apart", async () => {
    const secrets = secretsOf(b);
    const credentials: [string, string][] = [
      ...MEMBER_ROLES.map((role): [string, string] => [`${role} key`, a.keys[role]?.key ?? '']),
      ['session', a.session],
    ];
    const leaks: string[] = [];
    let attempts = 0;
    let refused = 0;
    let ownData = 0;
    let run = 0;
    for (const operation of ordered(operations)) {
      const names = parameterNames(operation.path);
      const variants: { values: Record<string, string>; ghosts: Record<string, string> }[] = [{ values: {}, ghosts: {} }];
      for (const name of names) {
        const next: typeof variants = [];
        for (const variant of variants) {
          for (const { value, only } of bValues(name, operation.path)) {
            next.push({
              values: { ...variant.values, [name]: value },
              ghosts: { ...variant.ghosts, [name]: only ? ghostOf(value) : value },
            });
          }
        }
        variants.splice(0, variants.length, ...next);
      }
      const key = `${operation.method} ${operation.path}`;
      for (const [label, secret] of credentials) {
        for (const named of [undefined, B]) {
          for (const variant of variants) {
            run += 1;
            const body =
              operation.path === '/api/v1/sessions'
                ? { tenant: B, username: b.user.username, password: a.user.password }
                : bodyFor(operation, variant.values, run);
            const ghostBody =
              operation.path === '/api/v1/sessions'
                ? { tenant: B, username: 'ghost-person', password: a.user.password }
                : bodyFor(operation, variant.ghosts, run + 100_000);
            const headers = named ? { [TENANT_HEADER]: named } : undefined;
            const init = (payload: unknown) => ({
              method: operation.method,
              auth: secret,
              ...(payload !== undefined
                ? { body: payload }
                : operation.method === 'GET' || operation.method === 'DELETE'
                  ? {}
                  : { body: {} }),
              ...(headers ? { headers } : {}),
            });
            const url = fill(operation.path, variant.values);
            const answer = await t.api<unknown>(url, init(body));
            attempts += 1;
            const where = `${key} as A's ${label}${named ? ` naming ${named}` : ''} on ${url}`;
            const text = JSON.stringify(answer.body) ?? '';
            const sent = `${url} ${JSON.stringify(body)}`;
            const seen = secrets.filter((value) => value.length > 0 && text.includes(value) && !sent.includes(value));
            if (seen.length > 0) leaks.push(`${where}: ${answer.status} shows ${seen.join(', ')}`);
            if (answer.status >= 500) leaks.push(`${where}: ${answer.status} ${text}`);
            // Against a resource that never existed the answer must be the same: else A learns B's exists.
            const ghostUrl = fill(operation.path, variant.ghosts);
            if (ghostUrl !== url || operation.path === '/api/v1/sessions') {
              const ghost = await t.api<unknown>(ghostUrl, init(ghostBody));
              let ghostText = JSON.stringify(ghost.body) ?? '';
              for (const name of names) ghostText = ghostText.split(String(variant.ghosts[name])).join(String(variant.values[name]));
              if (operation.path === '/api/v1/sessions') ghostText = ghostText.split('ghost-person').join(b.user.username);
              if (ghost.status !== answer.status || (answer.status >= 400 && ghostText !== text)) {
                leaks.push(`${where}: ${answer.status} ${text}, but ${ghost.status} ${ghostText} for one that never existed`);
              }
            }
            if (answer.status >= 400) refused += 1;
            else ownData += 1;
          }
        }
      }
    }
    console.log(
      `${attempts} cross-tenant attempts over ${operations.length} operations, ${refused} refused, ${ownData} answered with A's own data only, ${leaks.length} leaks`,
    );
    assert.deepEqual(leaks, []);
    assert.equal(refused + ownData, attempts);
  });

  test("B's state is unchanged after the whole run, and B's own credentials still work", async () => {
    const bAfter = await stateOf(b);
    assert.deepEqual(bAfter, bBefore);
    for (const secret of [b.adminKey, b.session, b.keys.viewer?.key ?? '']) {
      const me = await t.api<JsonObject>('/api/v1/me', { auth: secret });
      assert.equal(me.status, 200, JSON.stringify(me.body));
      assert.equal(me.body.tenant, B);
    }
    const approvals = await t.api<{ items: JsonObject[] }>('/api/v1/approvals', { auth: b.adminKey });
    assert.deepEqual(
      approvals.body.items.map((decision) => decision.id),
      [b.decision],
      "B's decision still waits for B's people",
    );
  });
});
