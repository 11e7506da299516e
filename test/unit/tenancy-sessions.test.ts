/**
 * Sign-in sessions on a real SQLite file with a clock the test moves: absolute and idle expiry,
 * sign-out, a disabled user's sessions end, a role change applies to open sessions, and the
 * token is stored only as a hash.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hashSecret } from '../../src/access/index.js';
import { DEFAULT_SESSION_OPTIONS } from '../../src/tenancy/index.js';
import { START, tenancyFixture } from './tenancy-support.js';

const PASSWORD = 'a long enough password';
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

describe('sessions', () => {
  test('sign-in gives a token that stands for the user in their tenant; only its hash is stored', async () => {
    const { tenancy, db, close } = tenancyFixture();
    try {
      await tenancy.tenants.create({ id: 'utility' });
      const user = await tenancy.users.create({ tenant: 'utility', username: 'ada', password: PASSWORD, role: 'operator' });
      const signedIn = await tenancy.sessions.signIn('utility', 'ada', PASSWORD, '192.0.2.10');
      assert.match(signedIn.token, /^tlu_[A-Za-z0-9_-]{43}$/);
      assert.equal(signedIn.expiresAt, START + 12 * HOUR);
      assert.equal(signedIn.user.lastSignInAt, START);
      assert.deepEqual(await tenancy.sessions.authenticate(signedIn.token), {
        tenant: 'utility',
        role: 'operator',
        actor: 'user:ada',
        userId: user.id,
        sessionId: signedIn.sessionId,
      });
      assert.deepEqual(await tenancy.authenticate(signedIn.token), await tenancy.sessions.authenticate(signedIn.token));
      const stored = db.prepare<[], { token_hash: string; address: string }>('SELECT token_hash, address FROM sessions').all();
      assert.deepEqual(stored, [{ token_hash: hashSecret(signedIn.token), address: '192.0.2.10' }]);
      // The same username in another tenant is another person.
      await assert.rejects(tenancy.sessions.signIn('default', 'ada', PASSWORD, '192.0.2.10'), { kind: 'unauthorized' });
    } finally {
      close();
    }
  });

  test('wrong passwords, unknown and disabled users get the same answer; the reason is counted', async () => {
    const { tenancy, refusals, close } = tenancyFixture();
    try {
      const user = await tenancy.users.create({ tenant: 'default', username: 'ada', password: PASSWORD, role: 'viewer' });
      const answers: string[] = [];
      for (const [username, password] of [
        ['ada', 'not the password'],
        ['nobody', PASSWORD],
        ['ada', ''],
      ] as const) {
        await tenancy.sessions.signIn('default', username, password, '192.0.2.1').catch((error: Error) => answers.push(error.message));
      }
      await tenancy.users.disable('default', user.id);
      await tenancy.sessions.signIn('default', 'ada', PASSWORD, '192.0.2.1').catch((error: Error) => answers.push(error.message));
      assert.deepEqual(answers, Array(4).fill('wrong username or password'));
      assert.deepEqual(refusals, ['wrong_password', 'wrong_password', 'wrong_password', 'disabled_user']);
    } finally {
      close();
    }
  });

  test('a session ends 12 hours after sign-in however busy it is', async () => {
    const { tenancy, clock, refusals, close } = tenancyFixture();
    try {
      await tenancy.users.create({ tenant: 'default', username: 'ada', password: PASSWORD, role: 'viewer' });
      const { token } = await tenancy.sessions.signIn('default', 'ada', PASSWORD, '192.0.2.1');
      for (let elapsed = 0; elapsed < 12 * HOUR - 10 * MINUTE; elapsed += 10 * MINUTE) {
        clock.advance(10 * MINUTE);
        assert.ok(await tenancy.sessions.authenticate(token), `alive after ${elapsed + 10 * MINUTE} ms`);
      }
      clock.set(START + 12 * HOUR);
      assert.equal(await tenancy.sessions.authenticate(token), undefined);
      assert.deepEqual(refusals, ['expired_session']);
      // Met once, it is gone.
      assert.equal(await tenancy.sessions.authenticate(token), undefined);
      assert.deepEqual(refusals, ['expired_session', 'unknown_session']);
    } finally {
      close();
    }
  });

  test('a session left idle ends; one in use is kept, its last use written at most once a minute', async () => {
    const { tenancy, clock, db, refusals, close } = tenancyFixture();
    try {
      assert.equal(DEFAULT_SESSION_OPTIONS.idleMs, 30 * MINUTE);
      await tenancy.users.create({ tenant: 'default', username: 'ada', password: PASSWORD, role: 'viewer' });
      const busy = await tenancy.sessions.signIn('default', 'ada', PASSWORD, '192.0.2.1');
      const idle = await tenancy.sessions.signIn('default', 'ada', PASSWORD, '192.0.2.2');
      const lastSeen = db.prepare<[string], { last_seen_at: number }>('SELECT last_seen_at FROM sessions WHERE id = ?');
      clock.advance(20 * MINUTE);
      assert.ok(await tenancy.sessions.authenticate(busy.token));
      assert.equal(lastSeen.get(busy.sessionId)?.last_seen_at, START + 20 * MINUTE);
      clock.advance(30_000);
      assert.ok(await tenancy.sessions.authenticate(busy.token));
      assert.equal(lastSeen.get(busy.sessionId)?.last_seen_at, START + 20 * MINUTE, 'not written again within the minute');
      clock.advance(25 * MINUTE);
      assert.ok(await tenancy.sessions.authenticate(busy.token), 'used 25.5 minutes ago: still alive');
      assert.equal(await tenancy.sessions.authenticate(idle.token), undefined, 'unused for 45.5 minutes');
      assert.deepEqual(refusals, ['idle_session']);
    } finally {
      close();
    }
  });

  test('sign-out, a disabled user, a deleted user and a role change all apply to open sessions', async () => {
    const { tenancy, refusals, close } = tenancyFixture();
    try {
      const ada = await tenancy.users.create({ tenant: 'default', username: 'ada', password: PASSWORD, role: 'viewer' });
      const grace = await tenancy.users.create({ tenant: 'default', username: 'grace', password: PASSWORD, role: 'viewer' });
      const first = await tenancy.sessions.signIn('default', 'ada', PASSWORD, '192.0.2.1');
      const second = await tenancy.sessions.signIn('default', 'ada', PASSWORD, '192.0.2.1');
      assert.equal((await tenancy.sessions.list(ada.id)).length, 2);

      const third = await tenancy.sessions.signIn('default', 'ada', PASSWORD, '192.0.2.1');
      assert.equal(await tenancy.sessions.end(grace.id, third.sessionId), false, "not grace's session");
      assert.equal(await tenancy.sessions.end(ada.id, third.sessionId), true);
      assert.equal(await tenancy.sessions.authenticate(third.token), undefined);

      assert.equal(await tenancy.sessions.signOut(first.token), true);
      assert.equal(await tenancy.sessions.signOut(first.token), false);
      assert.equal(await tenancy.sessions.authenticate(first.token), undefined);

      await tenancy.users.setRole('default', ada.id, 'operator');
      assert.equal((await tenancy.sessions.authenticate(second.token))?.role, 'operator');
      await tenancy.users.disable('default', ada.id);
      assert.equal(await tenancy.sessions.authenticate(second.token), undefined);
      assert.deepEqual(await tenancy.sessions.list(ada.id), []);
      await tenancy.users.enable('default', ada.id);
      assert.equal(await tenancy.sessions.authenticate(second.token), undefined, 'enabling again does not bring sessions back');

      const graces = await tenancy.sessions.signIn('default', 'grace', PASSWORD, '192.0.2.1');
      await tenancy.users.delete('default', grace.id);
      assert.equal(await tenancy.sessions.authenticate(graces.token), undefined);
      assert.ok(refusals.every((reason) => reason === 'unknown_session'));
    } finally {
      close();
    }
  });

  test('a user disabled while their password is being checked stays disabled, and the session does not work', async () => {
    const { tenancy, close } = tenancyFixture();
    try {
      const ada = await tenancy.users.create({ tenant: 'default', username: 'ada', password: PASSWORD, role: 'viewer' });
      const signingIn = tenancy.sessions.signIn('default', 'ada', PASSWORD, '192.0.2.1');
      await tenancy.users.disable('default', ada.id);
      const outcome = await signingIn.catch(() => undefined);
      assert.equal((await tenancy.users.get('default', ada.id))?.disabled, true);
      if (outcome) assert.equal(await tenancy.sessions.authenticate(outcome.token), undefined);
    } finally {
      close();
    }
  });

  test('anything that is not a session token is refused without a lookup and counted', async () => {
    const { tenancy, refusals, close } = tenancyFixture();
    try {
      for (const token of ['', 'Bearer x', `tlu_${'x'.repeat(500)}`, 'tlk_abc', 'tla_abc']) {
        assert.equal(await tenancy.sessions.authenticate(token), undefined);
      }
      assert.deepEqual(refusals, Array(5).fill('malformed_credential'));
      assert.equal(await tenancy.authenticate('tla_not-ours'), undefined);
      assert.equal(refusals.length, 5, 'the admin key is not ours to count');
    } finally {
      close();
    }
  });

  test('the sweep removes expired and idle sessions', async () => {
    const { tenancy, clock, db, close } = tenancyFixture();
    try {
      await tenancy.users.create({ tenant: 'default', username: 'ada', password: PASSWORD, role: 'viewer' });
      await tenancy.sessions.signIn('default', 'ada', PASSWORD, '192.0.2.1');
      clock.advance(10 * MINUTE);
      const fresh = await tenancy.sessions.signIn('default', 'ada', PASSWORD, '192.0.2.1');
      clock.advance(25 * MINUTE);
      assert.equal(await tenancy.sessions.sweep(), 1);
      const left = db.prepare<[], { id: string }>('SELECT id FROM sessions').all();
      assert.deepEqual(left, [{ id: fresh.sessionId }]);
    } finally {
      close();
    }
  });
});
