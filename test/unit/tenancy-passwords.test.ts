/**
 * Password hashes: scrypt with its parameters stored beside the hash, so they can be raised
 * later; a wrong password never matches; weaker hashes are replaced at the next sign-in.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  acceptablePassword,
  DEFAULT_SCRYPT,
  hashPassword,
  MIN_PASSWORD_LENGTH,
  passwordParameters,
  verifyPassword,
} from '../../src/tenancy/index.js';
import { TEST_SCRYPT, tenancyFixture } from './tenancy-support.js';

describe('password hashes', () => {
  test('the right password matches, a wrong one does not, and the parameters read back', async () => {
    const stored = await hashPassword('correct horse battery staple');
    assert.deepEqual(passwordParameters(stored), DEFAULT_SCRYPT);
    assert.match(stored, /^\$scrypt\$ln=15,r=8,p=3\$/);
    assert.equal(await verifyPassword('correct horse battery staple', stored), true);
    assert.equal(await verifyPassword('correct horse battery stapler', stored), false);
    assert.equal(await verifyPassword('', stored), false);
  });

  test('two hashes of one password differ (salted)', async () => {
    const first = await hashPassword('the same password', TEST_SCRYPT);
    const second = await hashPassword('the same password', TEST_SCRYPT);
    assert.notEqual(first, second);
    assert.equal(await verifyPassword('the same password', second), true);
  });

  test('the same characters in another Unicode normalization match', async () => {
    const stored = await hashPassword('caf\u00e9-au-lait-2026', TEST_SCRYPT);
    assert.equal(await verifyPassword('cafe\u0301-au-lait-2026', stored), true);
  });

  test('a stored value this module did not write never matches, even with absurd parameters', async () => {
    for (const stored of [
      '',
      'plain-text-password',
      '$scrypt$ln=40,r=8,p=1$AAAA$AAAAAAAAAAAAAAAAAAAAAA==',
      '$2b$10$abcdefghijklmnopqrstuv',
    ]) {
      assert.equal(passwordParameters(stored), undefined);
      assert.equal(await verifyPassword('plain-text-password', stored), false);
    }
  });

  test(`a password has at least ${MIN_PASSWORD_LENGTH} characters`, () => {
    assert.throws(() => acceptablePassword('short-pass1'), { name: 'DomainError', kind: 'invalid' });
    assert.throws(() => acceptablePassword(12345678901234), { kind: 'invalid' });
    assert.throws(() => acceptablePassword('x'.repeat(1025)), { kind: 'invalid' });
    assert.equal(acceptablePassword('twelve chars'), 'twelve chars');
    // Characters, not bytes: twelve emoji are twelve characters.
    assert.equal([...acceptablePassword('🔒'.repeat(12))].length, 12);
  });

  test('a hash made with weaker parameters is replaced by one with the current parameters at sign-in', async () => {
    const fixture = tenancyFixture();
    try {
      const user = await fixture.tenancy.users.create({
        tenant: 'default',
        username: 'ada',
        password: 'analytical engine',
        role: 'operator',
      });
      const weak = fixture.db.prepare<[string], { password_hash: string }>('SELECT password_hash FROM users WHERE id = ?');
      assert.deepEqual(passwordParameters(weak.get(user.id)?.password_hash ?? ''), TEST_SCRYPT);

      const stronger = { logN: 11, r: 8, p: 2 };
      const raised = fixture.reopen({ scrypt: stronger });
      await assert.rejects(raised.sessions.signIn('default', 'ada', 'wrong password!', '192.0.2.1'), { kind: 'unauthorized' });
      assert.deepEqual(passwordParameters(weak.get(user.id)?.password_hash ?? ''), TEST_SCRYPT, 'a failed sign-in changes nothing');
      await raised.sessions.signIn('default', 'ada', 'analytical engine', '192.0.2.1');
      assert.deepEqual(passwordParameters(weak.get(user.id)?.password_hash ?? ''), stronger);
      await raised.sessions.signIn('default', 'ada', 'analytical engine', '192.0.2.1');
    } finally {
      fixture.close();
    }
  });
});
