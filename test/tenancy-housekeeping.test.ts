/**
 * The node's tenancy housekeeping: ended sessions are swept, the audit trail keeps entries for
 * --audit-retention only, refused keys and sessions are counted by reason in /metrics, and the
 * audit trail's own counts (dropped entries) are scraped there too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConfigError, resolveConfig } from '../src/node/index.js';
import { ManualClock } from '../src/time/index.js';
import { type JsonObject, startTestNode, type TestNode } from './support/harness.js';

const DAY = 86_400_000;

/** The value of one sample line of the metrics text, or undefined when it is not there. */
function sample(metrics: string, line: string): number | undefined {
  const found = metrics.split('\n').find((text) => text.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

describe('tenancy housekeeping', () => {
  let t: TestNode;
  const clock = new ManualClock(Date.now());
  const metrics = async () => String((await t.api<string>('/metrics')).body);

  before(async () => {
    t = await startTestNode({ auditRetentionMs: DAY }, clock);
  });
  after(async () => {
    await t?.stop();
  });

  test('--audit-retention: 365 days unless set; shorter than a minute is refused', () => {
    assert.equal(resolveConfig({ env: {} }).config.auditRetentionMs, 365 * DAY);
    assert.equal(resolveConfig({ env: { THINGLOOP_AUDIT_RETENTION: '90d' } }).config.auditRetentionMs, 90 * DAY);
    assert.equal(resolveConfig({ env: {}, flags: { auditRetentionMs: '30d' } }).config.auditRetentionMs, 30 * DAY);
    assert.throws(() => resolveConfig({ env: {}, flags: { auditRetentionMs: '5s' } }), ConfigError);
  });

  test('refused keys and sessions are counted by reason; the audit trail reports drops', async () => {
    const issued = await t.api<{ id: string; key: string }>('/api/v1/keys', { method: 'POST', body: { role: 'viewer', name: 'old' } });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    assert.equal((await t.api(`/api/v1/keys/${issued.body.id}`, { method: 'DELETE' })).status, 204);
    const before = sample(await metrics(), 'thingloop_credential_refusals_total{reason="revoked_key"}') ?? 0;
    assert.equal((await t.api('/api/v1/me', { auth: issued.body.key })).status, 401);
    assert.equal((await t.api('/api/v1/me', { auth: issued.body.key })).status, 401);
    const text = await metrics();
    assert.equal(sample(text, 'thingloop_credential_refusals_total{reason="revoked_key"}'), before + 2);
    assert.equal(sample(text, 'thingloop_audit_entries_dropped_total'), 0);
    assert.equal(sample(text, 'thingloop_audit_write_failures_total'), 0);
    assert.equal(typeof sample(text, 'thingloop_audit_entries_buffered'), 'number');
  });

  test('ended sessions are swept and audit entries past retention are deleted', async () => {
    const person = await t.api('/api/v1/users', {
      method: 'POST',
      body: { username: 'olga', password: 'a password of olga', role: 'viewer' },
    });
    assert.equal(person.status, 201, JSON.stringify(person.body));
    const signedIn = await t.api<{ token: string }>('/api/v1/sessions', {
      method: 'POST',
      auth: null,
      body: { username: 'olga', password: 'a password of olga' },
    });
    assert.equal(signedIn.status, 201);
    const trail = async () => (await t.api<{ entries: JsonObject[] }>('/api/v1/audit?limit=1000')).body.entries;
    assert.ok((await trail()).some((entry) => entry.action === 'POST /api/v1/users'));

    // Two days on: the session ended (idle) and the entries are past a day's retention.
    clock.advance(2 * DAY);
    await t.node.sweep();
    const refusedBefore = sample(await metrics(), 'thingloop_credential_refusals_total{reason="unknown_session"}') ?? 0;
    assert.equal((await t.api('/api/v1/me', { auth: signedIn.body.token })).status, 401);
    assert.equal(
      sample(await metrics(), 'thingloop_credential_refusals_total{reason="unknown_session"}'),
      refusedBefore + 1,
      'the sweep deleted the session: it is unknown now, no longer merely idle',
    );
    const kept = await trail();
    assert.ok(!kept.some((entry) => entry.action === 'POST /api/v1/users' || entry.action === 'session.sign-in'), JSON.stringify(kept));

    // Entries within retention stay.
    assert.equal((await t.api('/api/v1/keys', { method: 'POST', body: { role: 'viewer', name: 'fresh' } })).status, 201);
    clock.set(Date.now() + DAY / 2);
    await t.node.sweep();
    assert.ok((await trail()).some((entry) => entry.action === 'POST /api/v1/keys'));
  });
});
