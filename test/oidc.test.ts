/**
 * OpenID Connect sign-in against a real provider (oidc-provider in its own process): the code
 * flow from `begin` through the provider's login and consent pages to `finish`, the claims that
 * name tenant and role, and every refusal with its reason.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, oidcRedirectUrl, resolveConfig } from '../src/node/config.js';
import { OIDC_PENDING_TTL_MS, OidcSignIn, OidcSignInError, type OidcSignInOptions } from '../src/tenancy/oidc.js';
import { tempDir } from './support/harness.js';
import { type OidcIssuer, signInAtIssuer, startOidcIssuer } from './support/oidc-issuer.js';

const REDIRECT_URI = 'http://127.0.0.1:1/api/v1/auth/oidc/callback';
const CLIENT = { clientId: 'thingloop', clientSecret: 'thingloop-client-secret-0123456789', redirectUris: [REDIRECT_URI] };
const OTHER_CLIENT = { clientId: 'other-app', clientSecret: 'other-app-client-secret-0123456789', redirectUris: [REDIRECT_URI] };

const ACCOUNTS = {
  alice: {
    preferred_username: 'alice',
    name: 'Alice Example',
    email: 'alice@acme.example',
    thingloop_tenant: 'acme',
    thingloop_role: 'operator',
  },
  bob: { email: 'bob@example.com' },
  carol: { preferred_username: 'carol', thingloop_role: 'superuser' },
  dave: { preferred_username: 'dave', thingloop_role: 'platform-admin' },
  erin: { preferred_username: 'erin', thingloop_tenant: 'ACME Corp' },
  frank: { preferred_username: 'frank', thingloop_tenant: 'acme', thingloop_role: ['engineer'] },
  grace: { preferred_username: 'grace', org: 'plant-7', groups: ['engineer'] },
  mallory: { preferred_username: 'mallory', thingloop_tenant: 'acme', thingloop_role: 'tenant-admin' },
};

async function refusal(promise: Promise<unknown>): Promise<OidcSignInError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof OidcSignInError, `expected an OidcSignInError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the sign-in to be refused');
}

describe('OpenID Connect sign-in', () => {
  let issuer: OidcIssuer;
  let clock = Date.now();
  const relyingParty = (overrides: Partial<OidcSignInOptions> = {}) =>
    new OidcSignIn({
      issuer: issuer.url,
      clientId: CLIENT.clientId,
      clientSecret: CLIENT.clientSecret,
      redirectUri: REDIRECT_URI,
      now: () => clock,
      ...overrides,
    });
  const signIn = async (rp: OidcSignIn, account: string) => {
    const { url } = await rp.begin();
    return signInAtIssuer(url, account, REDIRECT_URI);
  };

  before(async () => {
    issuer = await startOidcIssuer({
      clients: [CLIENT, OTHER_CLIENT],
      accounts: ACCOUNTS,
      // An ID token minted for another client, signed with the issuer's own key.
      foreignAudience: { mallory: OTHER_CLIENT.clientId },
    });
  });
  after(async () => {
    await issuer?.stop();
  });

  test('a person signs in with the code flow and gets the tenant and role of their claims', async () => {
    const rp = relyingParty();
    const { url, state } = await rp.begin();
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(url.searchParams.get('nonce'));
    assert.equal(url.searchParams.get('state'), state);
    const callback = await signInAtIssuer(url, 'alice', REDIRECT_URI);
    assert.ok(callback.searchParams.get('code'), `the provider sent back ${callback.href}`);
    const identity = await rp.finish(callback);
    assert.equal(identity.subject, 'alice');
    assert.equal(identity.issuer, issuer.url.href.replace(/\/$/, ''));
    assert.equal(identity.displayName, 'Alice Example');
    assert.equal(identity.username, 'alice');
    assert.equal(identity.tenant, 'acme');
    assert.equal(identity.role, 'operator');
    assert.equal(identity.claims.email, 'alice@acme.example');
    assert.equal(rp.pendingCount, 0);
  });

  test('only the callback query counts: a request URL rewritten by a proxy completes', async () => {
    const rp = relyingParty();
    const callback = await signIn(rp, 'alice');
    const behindProxy = new URL(`http://10.0.0.7:8080/internal/callback${callback.search}`);
    assert.equal((await rp.finish(behindProxy)).username, 'alice');
  });

  test('without the claims: the email as username, the default tenant and role', async () => {
    const rp = relyingParty();
    const identity = await rp.finish(await signIn(rp, 'bob'));
    assert.deepEqual([identity.username, identity.tenant, identity.role], ['bob@example.com', 'default', 'viewer']);
  });

  test('a role sent as a list of one role is that role', async () => {
    const rp = relyingParty();
    const identity = await rp.finish(await signIn(rp, 'frank'));
    assert.equal(identity.role, 'engineer');
  });

  test('the tenant and role claims are the configured ones', async () => {
    const rp = relyingParty({ tenantClaim: 'org', roleClaim: 'groups', defaultRole: 'operator' });
    const grace = await rp.finish(await signIn(rp, 'grace'));
    assert.deepEqual([grace.tenant, grace.role], ['plant-7', 'engineer']);
    // alice's thingloop_* claims mean nothing to this relying party: the defaults apply.
    const alice = await rp.finish(await signIn(rp, 'alice'));
    assert.deepEqual([alice.tenant, alice.role], ['default', 'operator']);
  });

  test('a tampered state is refused, and the real one still completes', async () => {
    const rp = relyingParty();
    const callback = await signIn(rp, 'alice');
    const tampered = new URL(callback);
    tampered.searchParams.set('state', `${callback.searchParams.get('state')}x`);
    const error = await refusal(rp.finish(tampered));
    assert.equal(error.reason, 'state_unknown');
    assert.equal(error.kind, 'unauthorized');
    const missing = new URL(callback);
    missing.searchParams.delete('state');
    assert.equal((await refusal(rp.finish(missing))).reason, 'state_unknown');
    assert.equal((await rp.finish(callback)).username, 'alice');
  });

  test('a callback started in another browser is refused when the route passes the state it gave this one', async () => {
    const rp = relyingParty();
    const callback = await signIn(rp, 'alice');
    const state = callback.searchParams.get('state') ?? '';
    const error = await refusal(rp.finish(callback, 'the state this browser was given'));
    assert.equal(error.reason, 'state_mismatch');
    assert.equal((await rp.finish(callback, state)).username, 'alice');
  });

  test('a state is good for one callback: the second use is refused', async () => {
    const rp = relyingParty();
    const callback = await signIn(rp, 'alice');
    await rp.finish(callback);
    assert.equal((await refusal(rp.finish(callback))).reason, 'state_unknown');
  });

  test('a state from another relying party is unknown here', async () => {
    const callback = await signIn(relyingParty(), 'alice');
    assert.equal((await refusal(relyingParty().finish(callback))).reason, 'state_unknown');
  });

  test('a sign-in finished after 10 minutes is refused as expired', async () => {
    const rp = relyingParty();
    const callback = await signIn(rp, 'alice');
    clock += OIDC_PENDING_TTL_MS + 1;
    assert.equal((await refusal(rp.finish(callback))).reason, 'state_expired');
  });

  test('a code issued to another client is refused by the token endpoint', async () => {
    const other = relyingParty({ clientId: OTHER_CLIENT.clientId, clientSecret: OTHER_CLIENT.clientSecret });
    const theirs = await signIn(other, 'alice');
    const rp = relyingParty();
    const { state } = await rp.begin();
    const swapped = new URL(theirs);
    swapped.searchParams.set('state', state);
    assert.equal((await refusal(rp.finish(swapped))).reason, 'code_refused');
  });

  test('an ID token for another client (audience) is refused', async () => {
    const rp = relyingParty();
    const error = await refusal(rp.finish(await signIn(rp, 'mallory')));
    assert.equal(error.reason, 'token_invalid');
    assert.match(error.message, /aud/);
  });

  test('an unknown role is refused with a reason, and platform-admin never comes from a claim', async () => {
    const rp = relyingParty();
    const unknown = await refusal(rp.finish(await signIn(rp, 'carol')));
    assert.equal(unknown.reason, 'role_unknown');
    assert.equal(unknown.kind, 'forbidden');
    assert.match(unknown.message, /superuser/);
    assert.equal((await refusal(rp.finish(await signIn(rp, 'dave')))).reason, 'role_not_allowed');
    assert.equal((await refusal(rp.finish(await signIn(rp, 'erin')))).reason, 'tenant_invalid');
    assert.throws(() => relyingParty({ defaultRole: 'platform-admin' }), /default role/);
  });

  test('an error the issuer sends back is refused as the issuer refusal', async () => {
    const rp = relyingParty();
    const { state } = await rp.begin();
    const callback = new URL(REDIRECT_URI);
    callback.searchParams.set('error', 'access_denied');
    callback.searchParams.set('state', state);
    callback.searchParams.set('iss', issuer.url.href.replace(/\/$/, ''));
    const error = await refusal(rp.finish(callback));
    assert.equal(error.reason, 'issuer_refused');
    assert.match(error.message, /access_denied/);
  });

  test('pending sign-ins are bounded: beyond the bound the oldest is dropped', async () => {
    const rp = relyingParty({ maxPending: 50 });
    const first = await rp.begin();
    for (let i = 0; i < 50; i++) await rp.begin();
    assert.equal(rp.pendingCount, 50);
    const callback = new URL(REDIRECT_URI);
    callback.searchParams.set('state', first.state);
    assert.equal((await refusal(rp.finish(callback))).reason, 'state_unknown');
  });

  test('an address that is no issuer is refused as issuer_invalid', async () => {
    const error = await refusal(relyingParty({ issuer: new URL('/not-an-issuer', issuer.url) }).begin());
    assert.equal(error.reason, 'issuer_invalid');
    assert.match(error.message, /not-an-issuer/);
  });

  test('an issuer over plain HTTP is refused unless it is on loopback', () => {
    assert.throws(() => relyingParty({ issuer: new URL('http://idp.example.com') }), /https/);
  });
});

describe('OpenID Connect sign-in with the issuer down', () => {
  test('a sign-in under way and a new one both fail as issuer_unreachable, with the issuer named', async () => {
    const issuer = await startOidcIssuer({ clients: [CLIENT], accounts: ACCOUNTS });
    const rp = new OidcSignIn({
      issuer: issuer.url,
      clientId: CLIENT.clientId,
      clientSecret: CLIENT.clientSecret,
      redirectUri: REDIRECT_URI,
    });
    let callback: URL;
    try {
      const { url } = await rp.begin();
      callback = await signInAtIssuer(url, 'alice', REDIRECT_URI);
    } finally {
      await issuer.stop();
    }
    const underWay = await refusal(rp.finish(callback));
    assert.equal(underWay.reason, 'issuer_unreachable');
    assert.equal(underWay.kind, 'unavailable');
    const fresh = new OidcSignIn({
      issuer: issuer.url,
      clientId: CLIENT.clientId,
      clientSecret: CLIENT.clientSecret,
      redirectUri: REDIRECT_URI,
    });
    const error = await refusal(fresh.begin());
    assert.equal(error.reason, 'issuer_unreachable');
    assert.ok(error.message.includes(issuer.url.href), error.message);
  });
});

describe('OpenID Connect settings', () => {
  const configErrorOf = (env: Record<string, string>): string => {
    try {
      resolveConfig({ env });
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.message;
    }
    assert.fail('resolveConfig accepted the configuration');
  };

  test('off by default; the claims default to thingloop_tenant and thingloop_role', () => {
    const { config } = resolveConfig({ env: {} });
    assert.equal(config.oidcIssuer, undefined);
    assert.deepEqual([config.oidcTenantClaim, config.oidcRoleClaim], ['thingloop_tenant', 'thingloop_role']);
    assert.equal(oidcRedirectUrl(config, 'https://plant.example.com:8443'), 'https://plant.example.com:8443/api/v1/auth/oidc/callback');
  });

  test('the client secret comes from a file or the environment, and an issuer needs a client', () => {
    const dir = tempDir('thingloop-oidc-');
    try {
      const file = join(dir, 'oidc-secret');
      writeFileSync(file, 'secret-from-file\n');
      const issuer = 'https://login.example.com/realms/plant';
      const { config } = resolveConfig({
        env: { THINGLOOP_OIDC_ISSUER: issuer, THINGLOOP_OIDC_CLIENT_ID: 'thingloop' },
        flags: { oidcClientSecretFile: file, oidcRedirectUrl: 'https://plant.example.com/cb', oidcRoleClaim: 'groups' },
      });
      assert.deepEqual(
        [config.oidcIssuer, config.oidcClientId, config.oidcClientSecret, config.oidcRoleClaim],
        [issuer, 'thingloop', 'secret-from-file', 'groups'],
      );
      assert.equal(oidcRedirectUrl(config, 'http://ignored'), 'https://plant.example.com/cb');
      const fromEnv = resolveConfig({
        env: { THINGLOOP_OIDC_ISSUER: issuer, THINGLOOP_OIDC_CLIENT_ID: 'thingloop', THINGLOOP_OIDC_CLIENT_SECRET: 'secret-from-env' },
      });
      assert.equal(fromEnv.config.oidcClientSecret, 'secret-from-env');
      assert.match(configErrorOf({ THINGLOOP_OIDC_ISSUER: issuer, THINGLOOP_OIDC_CLIENT_SECRET: 'x' }), /client id/);
      assert.match(configErrorOf({ THINGLOOP_OIDC_ISSUER: issuer, THINGLOOP_OIDC_CLIENT_ID: 'thingloop' }), /client secret/);
      assert.match(configErrorOf({ THINGLOOP_OIDC_CLIENT_SECRET: 'x', THINGLOOP_OIDC_CLIENT_SECRET_FILE: file }), /both set/);
      assert.match(configErrorOf({ THINGLOOP_OIDC_CLIENT_SECRET_FILE: join(dir, 'missing') }), /cannot read the OIDC client secret file/);
      assert.match(configErrorOf({ THINGLOOP_OIDC_ISSUER: 'http://login.example.com' }), /https/);
      assert.match(configErrorOf({ THINGLOOP_OIDC_ROLE_CLAIM: 'two words' }), /not a claim name/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
