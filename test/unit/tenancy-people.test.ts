/**
 * Tenants and their people on a real SQLite file: ids and quotas checked, `default` always
 * there, usernames unique within a tenant (without case) and free to repeat across tenants.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { openDatabase, sqliteTenancyStores } from '../../src/store/sqlite/index.js';
import { checkQuota, Tenancy } from '../../src/tenancy/index.js';
import { START, tenancyFixture } from './tenancy-support.js';

const PASSWORD = 'a long enough password';

describe('tenants', () => {
  test('default exists from the start; others are created once, with an id that fits a path and a topic', async () => {
    const { tenancy, clock, close } = tenancyFixture();
    try {
      assert.deepEqual(
        (await tenancy.tenants.list()).map((tenant) => tenant.id),
        ['default'],
      );
      clock.advance(1000);
      const city = await tenancy.tenants.create({
        id: 'city-of-ghent',
        name: 'City of Ghent',
        quotas: { devices: 5000, messagesPerSecond: 2.5 },
      });
      assert.deepEqual(city, {
        id: 'city-of-ghent',
        name: 'City of Ghent',
        quotas: { devices: 5000, messagesPerSecond: 2.5 },
        createdAt: START + 1000,
        updatedAt: START + 1000,
      });
      assert.deepEqual(await tenancy.tenants.get('city-of-ghent'), city);
      await assert.rejects(tenancy.tenants.create({ id: 'city-of-ghent' }), { kind: 'conflict' });
      await assert.rejects(tenancy.tenants.create({ id: 'default' }), { kind: 'conflict' });
      for (const id of ['City', '-city', 'city/ghent', 'city+ghent', '', 'x'.repeat(64), '../etc']) {
        await assert.rejects(tenancy.tenants.create({ id }), { kind: 'invalid' }, id);
      }
      assert.equal((await tenancy.tenants.create({ id: 'utility' })).name, 'utility');
      assert.deepEqual(
        (await tenancy.tenants.list()).map((tenant) => tenant.id),
        ['city-of-ghent', 'default', 'utility'],
      );
    } finally {
      close();
    }
  });

  test('quotas are checked field by field and replaced whole on update (left out = unlimited)', async () => {
    const { tenancy, clock, close } = tenancyFixture();
    try {
      await tenancy.tenants.create({ id: 'factory-1', quotas: { devices: 10, agents: 2 } });
      const bad = [
        { devices: -1 },
        { devices: 1.5 },
        { storedBytes: '100' },
        { messagesPerSecond: Number.POSITIVE_INFINITY },
        { device: 10 },
      ];
      for (const quotas of bad) {
        await assert.rejects(tenancy.tenants.update('factory-1', { quotas: quotas as never }), { kind: 'invalid' }, JSON.stringify(quotas));
      }
      clock.advance(5000);
      const updated = await tenancy.tenants.update('factory-1', { name: 'Factory One', quotas: { storedBytes: 1_000_000_000 } });
      assert.deepEqual(updated.quotas, { storedBytes: 1_000_000_000 });
      assert.equal(updated.updatedAt, START + 5000);
      assert.deepEqual(await tenancy.tenants.get('factory-1'), updated);
      await assert.rejects(tenancy.tenants.update('nope', { name: 'x' }), { kind: 'not_found' });
    } finally {
      close();
    }
  });

  test('a quota refuses going past it and says which; an absent quota never refuses', async () => {
    const { tenancy, close } = tenancyFixture();
    try {
      const tenant = await tenancy.tenants.create({ id: 'factory-2', quotas: { devices: 3 } });
      checkQuota(tenant, 'devices', 2);
      assert.throws(() => checkQuota(tenant, 'devices', 3), {
        kind: 'too_many_requests',
        message: 'tenant "factory-2" is at its devices quota (3 of 3)',
        details: { reason: 'quota_devices', limit: 3, current: 3 },
      });
      assert.throws(() => checkQuota(tenant, 'devices', 1, 5), { kind: 'too_many_requests' });
      checkQuota(tenant, 'agents', 1_000_000);
    } finally {
      close();
    }
  });

  test('reopening the database keeps everything and adds no second default', async () => {
    const { tenancy, file, db, close } = tenancyFixture();
    try {
      await tenancy.tenants.create({ id: 'utility' });
      const again = openDatabase(file);
      try {
        const reopened = new Tenancy(sqliteTenancyStores(again), { now: () => START });
        assert.deepEqual(
          (await reopened.tenants.list()).map((tenant) => tenant.id),
          ['default', 'utility'],
        );
      } finally {
        again.close();
      }
      // A database that lost its default tenant gets it back on first use.
      db.prepare("DELETE FROM tenants WHERE id = 'default'").run();
      assert.equal((await tenancy.tenants.get('default'))?.id, 'default');
    } finally {
      close();
    }
  });
});

describe('users', () => {
  test('usernames repeat across tenants but not within one, whatever their case', async () => {
    const { tenancy, close } = tenancyFixture();
    try {
      await tenancy.tenants.create({ id: 'utility' });
      const here = await tenancy.users.create({ tenant: 'default', username: 'Jan.Peeters', password: PASSWORD, role: 'operator' });
      const there = await tenancy.users.create({ tenant: 'utility', username: 'jan.peeters', password: PASSWORD, role: 'viewer' });
      assert.notEqual(here.id, there.id);
      await assert.rejects(tenancy.users.create({ tenant: 'default', username: 'jan.peeters', password: PASSWORD, role: 'viewer' }), {
        kind: 'conflict',
      });
      assert.equal((await tenancy.users.findByUsername('default', 'JAN.PEETERS'))?.id, here.id);
      // A tenant's users are its own: another tenant's id is not found.
      assert.equal(await tenancy.users.get('utility', here.id), undefined);
      assert.deepEqual(
        (await tenancy.users.list('utility')).map((user) => user.username),
        ['jan.peeters'],
      );
      await assert.rejects(tenancy.users.create({ tenant: 'nowhere', username: 'x1', password: PASSWORD, role: 'viewer' }), {
        kind: 'not_found',
      });
    } finally {
      close();
    }
  });

  test('bad input is refused with a reason', async () => {
    const { tenancy, close } = tenancyFixture();
    try {
      const base = { tenant: 'default', username: 'grace', password: PASSWORD, role: 'engineer' as const };
      await assert.rejects(tenancy.users.create({ ...base, password: 'too short' }), { kind: 'invalid', message: /at least 12/ });
      await assert.rejects(tenancy.users.create({ ...base, username: 'grace hopper' }), { kind: 'invalid' });
      await assert.rejects(tenancy.users.create({ ...base, username: '' }), { kind: 'invalid' });
      await assert.rejects(tenancy.users.create({ ...base, role: 'root' as never }), { kind: 'invalid', message: /unknown role/ });
      await assert.rejects(tenancy.users.create({ ...base, displayName: 'x'.repeat(201) }), { kind: 'invalid' });
      assert.deepEqual(await tenancy.users.list('default'), []);
    } finally {
      close();
    }
  });

  test('role, display name, disable and delete', async () => {
    const { tenancy, clock, close } = tenancyFixture();
    try {
      const user = await tenancy.users.create({
        tenant: 'default',
        username: 'grace',
        password: PASSWORD,
        role: 'viewer',
        displayName: 'Grace',
      });
      assert.equal(user.displayName, 'Grace');
      clock.advance(10);
      const promoted = await tenancy.users.setRole('default', user.id, 'engineer');
      assert.equal(promoted.role, 'engineer');
      assert.equal(promoted.updatedAt, START + 10);
      const renamed = await tenancy.users.update('default', user.id, { displayName: null });
      assert.equal(renamed.displayName, undefined);
      assert.equal((await tenancy.users.disable('default', user.id)).disabled, true);
      assert.equal((await tenancy.users.get('default', user.id))?.disabled, true);
      assert.equal((await tenancy.users.enable('default', user.id)).disabled, false);
      await assert.rejects(tenancy.users.setRole('default', user.id, 'superuser' as never), { kind: 'invalid' });
      await assert.rejects(tenancy.users.setRole('default', 'no-such-id', 'viewer'), { kind: 'not_found' });
      await tenancy.users.delete('default', user.id);
      assert.equal(await tenancy.users.get('default', user.id), undefined);
      await assert.rejects(tenancy.users.delete('default', user.id), { kind: 'not_found' });
    } finally {
      close();
    }
  });

  test('changing a password: the current one must be right, the old one stops working, other sessions end', async () => {
    const { tenancy, close } = tenancyFixture();
    try {
      const user = await tenancy.users.create({ tenant: 'default', username: 'grace', password: PASSWORD, role: 'viewer' });
      const here = await tenancy.sessions.signIn('default', 'grace', PASSWORD, '192.0.2.1');
      const elsewhere = await tenancy.sessions.signIn('default', 'grace', PASSWORD, '198.51.100.7');
      await assert.rejects(
        tenancy.users.changePassword('default', user.id, 'a brand new password', { currentPassword: 'not the password' }),
        { kind: 'unauthorized' },
      );
      await assert.rejects(tenancy.users.changePassword('default', user.id, 'short'), { kind: 'invalid' });
      await tenancy.users.changePassword('default', user.id, 'a brand new password', {
        currentPassword: PASSWORD,
        keepSessionId: here.sessionId,
      });
      await assert.rejects(tenancy.sessions.signIn('default', 'grace', PASSWORD, '192.0.2.1'), { kind: 'unauthorized' });
      await tenancy.sessions.signIn('default', 'grace', 'a brand new password', '192.0.2.1');
      assert.equal((await tenancy.sessions.authenticate(here.token))?.userId, user.id);
      assert.equal(await tenancy.sessions.authenticate(elsewhere.token), undefined);
    } finally {
      close();
    }
  });

  test('OpenID Connect people: one user per issuer and subject, role from the latest sign-in, no local user taken over', async () => {
    const { tenancy, close } = tenancyFixture();
    try {
      const local = await tenancy.users.create({ tenant: 'default', username: 'ada', password: PASSWORD, role: 'tenant-admin' });
      const issuer = 'https://login.example.com';
      const first = await tenancy.users.ensureExternalUser('default', 'sub-123', {
        issuer,
        role: 'viewer',
        username: 'ada',
        displayName: 'Ada L.',
      });
      assert.notEqual(first.id, local.id, 'the same username does not make the OIDC person the local user');
      assert.notEqual(first.username.toLowerCase(), 'ada');
      assert.deepEqual(first.external, { issuer, subject: 'sub-123' });
      const again = await tenancy.users.ensureExternalUser('default', 'sub-123', {
        issuer,
        role: 'operator',
        username: 'ada',
        displayName: 'Ada L.',
      });
      assert.equal(again.id, first.id);
      assert.equal(again.role, 'operator');
      const other = await tenancy.users.ensureExternalUser('default', 'sub-123', { issuer: 'https://other.example.org', role: 'viewer' });
      assert.notEqual(other.id, first.id);
      // They have no password: password sign-in and a password change are refused.
      await assert.rejects(tenancy.sessions.signIn('default', first.username, PASSWORD, '192.0.2.1'), { kind: 'unauthorized' });
      await assert.rejects(tenancy.users.changePassword('default', first.id, 'a brand new password'), { kind: 'invalid' });
      // Sessions open for them, except when disabled.
      const signedIn = await tenancy.sessions.open(again, '192.0.2.1');
      assert.equal((await tenancy.sessions.authenticate(signedIn.token))?.role, 'operator');
      const disabled = await tenancy.users.disable('default', first.id);
      await assert.rejects(tenancy.sessions.open(disabled, '192.0.2.1'), { kind: 'unauthorized' });
      assert.equal(
        (await tenancy.users.ensureExternalUser('default', 'sub-123', { issuer, role: 'operator', username: 'ada', displayName: 'Ada L.' }))
          .disabled,
        true,
      );
      await assert.rejects(tenancy.users.ensureExternalUser('default', '', { issuer, role: 'viewer' }), { kind: 'invalid' });
      await assert.rejects(tenancy.users.ensureExternalUser('default', 'sub-9', { issuer, role: 'god' as never }), { kind: 'invalid' });
    } finally {
      close();
    }
  });
});
