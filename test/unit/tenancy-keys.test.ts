/**
 * API keys on a real SQLite file with a clock the test moves: shown once and stored hashed,
 * expiry and revocation refuse them, lastUsedAt is written at most once a minute, a person's key
 * stops with the person, and one tenant cannot see or revoke another's keys.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hashSecret } from '../../src/access/index.js';
import { START, tenancyFixture } from './tenancy-support.js';

const MINUTE = 60_000;

describe('API keys', () => {
  test('a key is shown once, stored as its hash, and stands for its role in its tenant', async () => {
    const { tenancy, db, close } = tenancyFixture();
    try {
      await tenancy.tenants.create({ id: 'utility' });
      const issued = await tenancy.keys.issue({ tenant: 'utility', role: 'integration', name: 'scada bridge', createdBy: 'admin' });
      assert.match(issued.key, /^tlk_[A-Za-z0-9_-]{43}$/);
      assert.deepEqual(await tenancy.keys.authenticate(issued.key), {
        tenant: 'utility',
        role: 'integration',
        actor: 'key:scada bridge',
        keyId: issued.id,
      });
      assert.deepEqual(await tenancy.authenticate(issued.key), await tenancy.keys.authenticate(issued.key));
      const rows = db.prepare<[], Record<string, unknown>>('SELECT * FROM api_keys').all();
      assert.equal(rows.length, 1);
      assert.equal(rows[0]?.secret_hash, hashSecret(issued.key));
      assert.ok(!JSON.stringify(rows).includes(issued.key.slice(4)), 'the secret is nowhere in the row');
      const listed = await tenancy.keys.list('utility');
      assert.deepEqual(listed, [
        {
          id: issued.id,
          tenant: 'utility',
          name: 'scada bridge',
          role: 'integration',
          createdBy: 'admin',
          createdAt: START,
          lastUsedAt: START,
        },
      ]);
      assert.ok(!JSON.stringify(listed).includes(issued.key.slice(4)));
    } finally {
      close();
    }
  });

  test('an expired key is refused from its expiry on', async () => {
    const { tenancy, clock, refusals, close } = tenancyFixture();
    try {
      const issued = await tenancy.keys.issue({
        tenant: 'default',
        role: 'viewer',
        name: 'dashboard',
        createdBy: 'user:ada',
        expiresAt: START + 60 * MINUTE,
      });
      clock.set(START + 60 * MINUTE - 1);
      assert.ok(await tenancy.keys.authenticate(issued.key));
      clock.set(START + 60 * MINUTE);
      assert.equal(await tenancy.keys.authenticate(issued.key), undefined);
      assert.deepEqual(refusals, ['expired_key']);
      assert.equal((await tenancy.keys.get('default', issued.id))?.expiresAt, START + 60 * MINUTE);
      await assert.rejects(tenancy.keys.issue({ tenant: 'default', role: 'viewer', name: 'late', createdBy: 'admin', expiresAt: START }), {
        kind: 'invalid',
      });
    } finally {
      close();
    }
  });

  test('a revoked key is refused; its record stays, and its name can be used again', async () => {
    const { tenancy, clock, refusals, close } = tenancyFixture();
    try {
      const issued = await tenancy.keys.issue({ tenant: 'default', role: 'operator', name: 'night shift', createdBy: 'admin' });
      await assert.rejects(tenancy.keys.issue({ tenant: 'default', role: 'viewer', name: 'night shift', createdBy: 'admin' }), {
        kind: 'conflict',
      });
      clock.advance(5000);
      const revoked = await tenancy.keys.revoke('default', issued.id);
      assert.equal(revoked.revokedAt, START + 5000);
      assert.equal((await tenancy.keys.revoke('default', issued.id)).revokedAt, START + 5000, 'revoking again changes nothing');
      assert.equal(await tenancy.keys.authenticate(issued.key), undefined);
      assert.deepEqual(refusals, ['revoked_key']);
      const replacement = await tenancy.keys.issue({ tenant: 'default', role: 'operator', name: 'night shift', createdBy: 'admin' });
      assert.ok(await tenancy.keys.authenticate(replacement.key));
      assert.deepEqual(
        (await tenancy.keys.list('default')).map((key) => [key.id, key.revokedAt]),
        [
          [replacement.id, undefined],
          [issued.id, START + 5000],
        ],
      );
    } finally {
      close();
    }
  });

  test('lastUsedAt is written at most once a minute per key', async () => {
    const { tenancy, clock, close } = tenancyFixture();
    try {
      const issued = await tenancy.keys.issue({ tenant: 'default', role: 'viewer', name: 'poller', createdBy: 'admin' });
      const lastUsed = async () => (await tenancy.keys.get('default', issued.id))?.lastUsedAt;
      assert.equal(await lastUsed(), undefined);
      await tenancy.keys.authenticate(issued.key);
      assert.equal(await lastUsed(), START);
      for (let second = 1; second < 60; second++) {
        clock.set(START + second * 1000);
        assert.ok(await tenancy.keys.authenticate(issued.key));
      }
      assert.equal(await lastUsed(), START, 'a minute of requests, one write');
      clock.set(START + MINUTE);
      await tenancy.keys.authenticate(issued.key);
      assert.equal(await lastUsed(), START + MINUTE);
    } finally {
      close();
    }
  });

  test("a person's key stops while the person is disabled and goes when they are deleted", async () => {
    const { tenancy, refusals, close } = tenancyFixture();
    try {
      const ada = await tenancy.users.create({ tenant: 'default', username: 'ada', password: 'a long enough password', role: 'engineer' });
      const issued = await tenancy.keys.issue({
        tenant: 'default',
        role: 'engineer',
        name: 'ada laptop',
        userId: ada.id,
        createdBy: 'user:ada',
      });
      assert.deepEqual(await tenancy.keys.authenticate(issued.key), {
        tenant: 'default',
        role: 'engineer',
        actor: 'key:ada laptop',
        keyId: issued.id,
        userId: ada.id,
      });
      await tenancy.users.disable('default', ada.id);
      assert.equal(await tenancy.keys.authenticate(issued.key), undefined);
      await assert.rejects(tenancy.keys.issue({ tenant: 'default', role: 'viewer', name: 'another', userId: ada.id, createdBy: 'admin' }), {
        kind: 'invalid',
      });
      await tenancy.users.enable('default', ada.id);
      assert.ok(await tenancy.keys.authenticate(issued.key));
      await tenancy.users.delete('default', ada.id);
      assert.equal(await tenancy.keys.authenticate(issued.key), undefined);
      assert.deepEqual(await tenancy.keys.list('default'), []);
      assert.deepEqual(refusals, ['disabled_user', 'unknown_key']);
    } finally {
      close();
    }
  });

  test("one tenant cannot list, read, revoke or bind a key to another tenant's things", async () => {
    const { tenancy, close } = tenancyFixture();
    try {
      await tenancy.tenants.create({ id: 'city' });
      await tenancy.tenants.create({ id: 'factory' });
      const cityUser = await tenancy.users.create({ tenant: 'city', username: 'ada', password: 'a long enough password', role: 'viewer' });
      const cityKey = await tenancy.keys.issue({ tenant: 'city', role: 'viewer', name: 'shared-name', createdBy: 'admin' });
      const factoryKey = await tenancy.keys.issue({ tenant: 'factory', role: 'viewer', name: 'shared-name', createdBy: 'admin' });
      assert.deepEqual(
        (await tenancy.keys.list('factory')).map((key) => key.id),
        [factoryKey.id],
      );
      assert.equal(await tenancy.keys.get('factory', cityKey.id), undefined);
      await assert.rejects(tenancy.keys.revoke('factory', cityKey.id), { kind: 'not_found' });
      assert.ok(await tenancy.keys.authenticate(cityKey.key));
      await assert.rejects(tenancy.keys.issue({ tenant: 'factory', role: 'viewer', name: 'k', userId: cityUser.id, createdBy: 'admin' }), {
        kind: 'not_found',
      });
      await assert.rejects(tenancy.keys.issue({ tenant: 'nowhere', role: 'viewer', name: 'k', createdBy: 'admin' }), { kind: 'not_found' });
    } finally {
      close();
    }
  });

  test('bad input is refused with a reason, and so is anything that is not a key', async () => {
    const { tenancy, refusals, close } = tenancyFixture();
    try {
      const base = { tenant: 'default', role: 'viewer' as const, name: 'ok', createdBy: 'admin' };
      await assert.rejects(tenancy.keys.issue({ ...base, role: 'root' as never }), { kind: 'invalid' });
      await assert.rejects(tenancy.keys.issue({ ...base, name: '' }), { kind: 'invalid' });
      await assert.rejects(tenancy.keys.issue({ ...base, name: 'x'.repeat(65) }), { kind: 'invalid' });
      await assert.rejects(tenancy.keys.issue({ ...base, name: 'new\nline' }), { kind: 'invalid' });
      await assert.rejects(tenancy.keys.issue({ ...base, expiresAt: 1.5 }), { kind: 'invalid' });
      await assert.rejects(tenancy.keys.issue({ ...base, createdBy: '' }), { kind: 'invalid' });
      assert.deepEqual(await tenancy.keys.list('default'), []);
      for (const key of ['', 'tlk_', `tlk_${'a'.repeat(43)}`, `tlk_${'a'.repeat(300)}`, 'tlu_x']) {
        assert.equal(await tenancy.keys.authenticate(key), undefined);
      }
      assert.deepEqual(refusals, ['malformed_credential', 'unknown_key', 'unknown_key', 'malformed_credential', 'malformed_credential']);
    } finally {
      close();
    }
  });
});
