/**
 * Tenants, people, keys and the audit trail over the real HTTP API: two tenants on one node
 * with devices of the same id, each seeing only its own; roles limit what a key or a person may
 * do; every change is on the audit trail with who did it.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ADMIN_KEY, type JsonObject, PUMP_MODEL, startTestNode, type TestNode } from './support/harness.js';

interface Created {
  id: string;
  adminKey: string;
}

describe('tenancy', () => {
  let t: TestNode;
  let acme: Created;
  const as = (key: string) => ({
    api: <T = JsonObject>(path: string, init: Parameters<TestNode['api']>[1] = {}) => t.api<T>(path, { ...init, auth: key }),
  });

  before(async () => {
    t = await startTestNode();
    const created = await t.api<Created>('/api/v1/tenants', { method: 'POST', body: { id: 'acme', name: 'Acme Water' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    acme = created.body;
    assert.match(acme.adminKey, /^tlk_/);
  });
  after(async () => {
    await t?.stop();
  });

  test('a tenant has its own store; ids repeat across tenants and each sees only its own', async () => {
    assert.ok(existsSync(join(t.config.dataDir, 'tenants', 'acme', 'thingloop.db')), "acme's store is a database of its own");
    const acmeAdmin = as(acme.adminKey);
    assert.equal((await acmeAdmin.api('/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL })).status, 201);
    const ours = await acmeAdmin.api<{ device: JsonObject; token: string }>('/api/v1/devices', {
      method: 'POST',
      body: { id: 'pump-0001', model: 'pump', name: 'Acme pump' },
    });
    assert.equal(ours.status, 201, JSON.stringify(ours.body));
    const theirs = await t.registerDevice('pump-0001');
    assert.notEqual(ours.body.device.code, theirs.device.code, 'one object, one code: codes stay unique on the node');
    assert.notEqual(ours.body.device.ipv6, theirs.device.ipv6);

    const acmeList = await acmeAdmin.api<{ items: JsonObject[] }>('/api/v1/devices');
    assert.deepEqual(
      acmeList.body.items.map((device) => device.name),
      ['Acme pump'],
    );
    const defaultList = await t.api<{ items: JsonObject[] }>('/api/v1/devices');
    assert.deepEqual(
      defaultList.body.items.map((device) => device.name),
      ['pump-0001'],
    );

    // A device token is its tenant's: acme's token reports to acme's pump only.
    const sent = await t.api(`/api/v1/devices/pump-0001/telemetry`, { method: 'POST', auth: ours.body.token, body: { vibration: 12.5 } });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    const acmeLatest = await acmeAdmin.api<JsonObject>('/api/v1/devices/pump-0001/latest');
    assert.equal(((acmeLatest.body.values as JsonObject).vibration as JsonObject).value, 12.5);
    const defaultLatest = await t.api<JsonObject>('/api/v1/devices/pump-0001/latest');
    assert.equal((defaultLatest.body.values as JsonObject | undefined)?.vibration, undefined, 'the default tenant pump got nothing');
  });

  test("a tenant's key cannot act in another tenant; the platform admin names the tenant it acts in", async () => {
    const acmeAdmin = as(acme.adminKey);
    const crossing = await acmeAdmin.api('/api/v1/devices', { headers: { 'x-thingloop-tenant': 'default' } });
    assert.equal(crossing.status, 403);
    const platform = await t.api<{ items: JsonObject[] }>('/api/v1/devices', { headers: { 'x-thingloop-tenant': 'acme' } });
    assert.equal(platform.status, 200);
    assert.deepEqual(
      platform.body.items.map((device) => device.name),
      ['Acme pump'],
    );
    assert.equal((await t.api('/api/v1/devices', { headers: { 'x-thingloop-tenant': 'nobody' } })).status, 404);
    assert.equal((await acmeAdmin.api('/api/v1/tenants')).status, 403, 'a tenant admin does not see the tenants of the platform');
  });

  test('roles: a viewer reads but cannot act; a tenant admin cannot hand out platform-admin', async () => {
    const acmeAdmin = as(acme.adminKey);
    const viewerKey = await acmeAdmin.api<{ key: string; role: string }>('/api/v1/keys', {
      method: 'POST',
      body: { role: 'viewer', name: 'wall' },
    });
    assert.equal(viewerKey.status, 201, JSON.stringify(viewerKey.body));
    const viewer = as(viewerKey.body.key);
    assert.equal((await viewer.api('/api/v1/devices')).status, 200);
    const act = await viewer.api<JsonObject>('/api/v1/devices/pump-0001/actions/setSpeed', { method: 'POST', body: { input: 10 } });
    assert.equal(act.status, 403);
    assert.match(String(act.body.message), /viewer role does not have the actions:invoke permission/);
    assert.equal((await viewer.api('/api/v1/devices', { method: 'POST', body: { id: 'x', model: 'pump' } })).status, 403);
    assert.equal((await viewer.api('/api/v1/keys', { method: 'POST', body: { role: 'viewer' } })).status, 403);
    assert.equal((await acmeAdmin.api('/api/v1/keys', { method: 'POST', body: { role: 'platform-admin' } })).status, 403);

    const me = await viewer.api<JsonObject>('/api/v1/me');
    assert.deepEqual([me.body.tenant, me.body.role, me.body.actor], ['acme', 'viewer', 'key:wall']);

    const keys = await acmeAdmin.api<{ items: JsonObject[] }>('/api/v1/keys');
    const wall = keys.body.items.find((key) => key.name === 'wall');
    assert.ok(wall && typeof wall.lastUsedAt === 'number', 'the last use is recorded');
    assert.ok(!JSON.stringify(keys.body).includes(viewerKey.body.key), 'secrets are never listed');
    assert.equal((await acmeAdmin.api(`/api/v1/keys/${wall.id}`, { method: 'DELETE' })).status, 204);
    assert.equal((await viewer.api('/api/v1/devices')).status, 401, 'a revoked key opens nothing');
  });

  test('people sign in with a password; sessions end on sign-out; wrong passwords are refused', async () => {
    const acmeAdmin = as(acme.adminKey);
    const user = await acmeAdmin.api<JsonObject>('/api/v1/users', {
      method: 'POST',
      body: { username: 'ana', password: 'correct horse battery', role: 'operator' },
    });
    assert.equal(user.status, 201, JSON.stringify(user.body));
    assert.equal(JSON.stringify(user.body).includes('correct horse'), false);
    const wrong = await t.api('/api/v1/sessions', {
      method: 'POST',
      auth: null,
      body: { tenant: 'acme', username: 'ana', password: 'not the password' },
    });
    assert.equal(wrong.status, 401);
    const signedIn = await t.api<{ token: string; user: JsonObject }>('/api/v1/sessions', {
      method: 'POST',
      auth: null,
      body: { tenant: 'acme', username: 'ana', password: 'correct horse battery' },
    });
    assert.equal(signedIn.status, 201, JSON.stringify(signedIn.body));
    const ana = as(signedIn.body.token);
    const me = await ana.api<JsonObject>('/api/v1/me');
    assert.deepEqual([me.body.tenant, me.body.role, me.body.actor], ['acme', 'operator', 'user:ana']);
    assert.equal((await ana.api('/api/v1/users')).status, 403, 'an operator does not manage people');
    assert.equal((await ana.api('/api/v1/sessions/current', { method: 'DELETE' })).status, 204);
    assert.equal((await ana.api('/api/v1/me')).status, 401);
  });

  test('the audit trail records who changed what, from where, and exports it', async () => {
    const acmeAdmin = as(acme.adminKey);
    const page = await acmeAdmin.api<{ entries: JsonObject[] }>('/api/v1/audit?limit=100');
    assert.equal(page.status, 200);
    const created = page.body.entries.find((entry) => entry.action === 'POST /api/v1/devices');
    assert.ok(created, JSON.stringify(page.body.entries.map((entry) => entry.action)));
    assert.equal(created.actor, 'key:tenant-admin');
    assert.equal(created.tenant, 'acme');
    assert.equal(created.address, '127.0.0.1');
    assert.ok(
      page.body.entries.every((entry) => entry.tenant === 'acme'),
      "only acme's trail",
    );
    assert.ok(page.body.entries.some((entry) => entry.action === 'session.sign-in' && entry.actor === 'user:ana'));
    // Sensitive reads are on the trail too: who listed the tenant's keys.
    assert.ok(page.body.entries.some((entry) => entry.action === 'GET /api/v1/keys' && entry.actor === 'key:tenant-admin'));

    const csv = await acmeAdmin.api<string>('/api/v1/audit/export?format=csv');
    assert.equal(csv.status, 200);
    const lines = String(csv.body).trim().split('\n');
    assert.match(lines[0] ?? '', /^id,at,tenant,actor,action/);
    assert.ok(lines.some((line) => line.includes('POST /api/v1/devices')));
    const defaultTrail = await t.api<{ entries: JsonObject[] }>('/api/v1/audit');
    assert.ok(defaultTrail.body.entries.every((entry) => entry.tenant === 'default'));
    assert.ok(defaultTrail.body.entries.some((entry) => entry.action === 'POST /api/v1/tenants' && entry.actor === 'admin'));
  });

  test('a restarted node serves every tenant it had', async () => {
    await t.stop({ keepData: true });
    const again = await startTestNode({ dataDir: t.config.dataDir });
    t = again;
    const list = await t.api<{ items: JsonObject[] }>('/api/v1/devices', { auth: acme.adminKey });
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.body.items.map((device) => device.name),
      ['Acme pump'],
    );
    assert.equal((await t.api('/api/v1/me', { auth: ADMIN_KEY })).status, 200);
  });
});
