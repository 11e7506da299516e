/**
 * The edge directory's HTTP face on a real cloud node: registration, the gap list and
 * decommissioning (refused while devices are attached; afterwards the token stops working and a
 * live link is closed). The sync itself is proven with real processes in edge.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { startTestNode, type TestNode } from './support/harness.js';

describe('edges API', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode();
  });
  after(() => t.stop());

  const linkStatus = async (id: string, token: string) =>
    (await fetch(`${t.node.httpUrl}/api/v1/edges/${id}/link`, { headers: { authorization: `Bearer ${token}` } })).status;

  test('a new edge has no gap reports; an unknown edge is a 404', async () => {
    const created = await t.api<{ token: string }>('/api/v1/edges', { method: 'POST', body: { id: 'site-gaps' } });
    assert.equal(created.status, 201);
    const gaps = await t.api<{ items: unknown[] }>('/api/v1/edges/site-gaps/gaps');
    assert.equal(gaps.status, 200);
    assert.deepEqual(gaps.body.items, []);
    assert.equal((await t.api('/api/v1/edges/nowhere/gaps')).status, 404);
    assert.equal((await t.api('/api/v1/edges/nowhere', { method: 'DELETE' })).status, 404);
  });

  test('an edge is decommissioned only once no device is attached; then its token and link are gone', async () => {
    const { token } = (await t.api<{ token: string }>('/api/v1/edges', { method: 'POST', body: { id: 'site-old' } })).body;
    await t.registerDevice('pump-behind-old', 'pump', { edge: 'site-old' });
    assert.equal(await linkStatus('site-old', token), 426, 'the token is good: only the upgrade is missing');

    const refused = await t.api<{ error: string; message: string; details: { devices: string[] } }>('/api/v1/edges/site-old', {
      method: 'DELETE',
    });
    assert.equal(refused.status, 409);
    assert.match(refused.body.message, /pump-behind-old/);
    assert.match(refused.body.message, /DELETE \/api\/v1\/devices/, 'says what to do');
    assert.deepEqual(refused.body.details.devices, ['pump-behind-old']);

    // A live link, closed by the deletion.
    const link = new WebSocket(`${t.node.httpUrl.replace('http', 'ws')}/api/v1/edges/site-old/link`, {
      headers: { authorization: `Bearer ${token}` },
    });
    await new Promise<void>((resolve, reject) => {
      link.once('message', () => resolve());
      link.once('error', reject);
    });
    const closed = new Promise<number>((resolve) => link.once('close', (code) => resolve(code)));

    assert.equal((await t.api('/api/v1/devices/pump-behind-old', { method: 'DELETE' })).status, 204);
    assert.equal((await t.api('/api/v1/edges/site-old', { method: 'DELETE' })).status, 204);
    assert.equal(await closed, 4403);
    assert.equal((await t.api('/api/v1/edges/site-old')).status, 404);
    assert.equal(await linkStatus('site-old', token), 401, 'the token no longer works');
    const orphan = await t.api('/api/v1/devices', { method: 'POST', body: { id: 'pump-late', model: 'pump', edge: 'site-old' } });
    assert.ok(orphan.status >= 400 && orphan.status < 500, 'no device can be attached to a deleted edge');
  });
});
