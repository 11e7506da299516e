/**
 * The console with people of two tenants, in a real browser (Debian's chromium driven by
 * playwright-core): alice (operator of alpha) and bob (viewer of bravo) sign in with their
 * passwords, each in a browser context of their own, and see only their own fleet (one device id
 * exists in both); bob sees an approval waiting in bravo but cannot approve it, and the API refuses
 * him too. Screenshots go to test-output/console-tenants/.
 */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { AGENT_PUMP_MODEL } from './support/agents.js';
import { type JsonObject, startTestNode, type TestNode } from './support/harness.js';
import { type OidcIssuer, startOidcIssuer } from './support/oidc-issuer.js';
import { freePort } from './support/sparkplug.js';

const ROOT = resolve(import.meta.dirname, '..');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = join(ROOT, 'test-output', 'console-tenants');
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const CREDENTIAL = "JSON.parse(sessionStorage.getItem('thingloop.credential') ?? 'null')";

/** Each tenant's fleet: pump-0001 is in both, the rest is each tenant's own. */
const FLEET = {
  alpha: [
    { id: 'pump-0001', name: 'Alpha pump 1' },
    { id: 'pump-0002', name: 'Alpha pump 2' },
  ],
  bravo: [
    { id: 'pump-0001', name: 'Bravo pump 1' },
    { id: 'pump-0003', name: 'Bravo pump 3' },
    { id: 'pump-0004', name: 'Bravo pump 4' },
  ],
} as const;
const PEOPLE = {
  alice: { tenant: 'alpha', role: 'operator', password: 'alice operates alpha' },
  bob: { tenant: 'bravo', role: 'viewer', password: 'bob watches bravo' },
} as const;
const AGENT = 'bravo-stop';

async function until(check: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

async function noHorizontalScrolling(page: Page, what: string): Promise<void> {
  let overflow = 0;
  await until(
    async () => {
      overflow = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
      return overflow <= 0;
    },
    `no horizontal scrolling on ${what}`,
    5_000,
  ).catch(() => assert.fail(`horizontal scrolling on ${what}: ${overflow}px too wide`));
}

function ensureConsoleBuilt(): void {
  if (existsSync(join(ROOT, 'console', 'dist', 'index.html'))) return;
  execFileSync('npm', ['run', 'build:console'], { cwd: ROOT, stdio: 'inherit' });
}

describe('console sign-in with two tenants in chromium', () => {
  let t: TestNode;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const tenantKeys: Record<string, string> = {};
  const tokens: Record<string, string> = {};
  const pages: Record<string, Page> = {};
  let bravoPumpToken = '';
  let pending: { id: string; deviceId: string };

  const as = (key: string) => ({
    api: <T = JsonObject>(path: string, init: Parameters<TestNode['api']>[1] = {}) => t.api<T>(path, { ...init, auth: key }),
  });
  const openPage = async (width = 1280, height = 800): Promise<Page> => {
    const context = await browser.newContext({ viewport: { width, height } });
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    return page;
  };
  const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const signIn = async (page: Page, username: keyof typeof PEOPLE) => {
    const person = PEOPLE[username];
    await page.goto(t.node.httpUrl);
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(person.password);
    await page.getByLabel('Tenant').fill(person.tenant);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
  };
  const deviceLinks = async (page: Page) =>
    (await page.locator('table.devices tbody tr td:first-child a').allTextContents()).map((text) => text.trim()).sort();

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `no chromium at ${CHROMIUM}: run scripts/ensure-chromium.sh (npm test does it in pretest)`);
    ensureConsoleBuilt();
    mkdirSync(SHOTS, { recursive: true });
    t = await startTestNode();
    for (const tenant of ['alpha', 'bravo'] as const) {
      const created = await t.api<{ adminKey: string }>('/api/v1/tenants', {
        method: 'POST',
        body: { id: tenant, name: `${tenant} plant` },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      tenantKeys[tenant] = created.body.adminKey;
      const admin = as(created.body.adminKey);
      assert.equal((await admin.api('/api/v1/models/agent-pump', { method: 'PUT', body: AGENT_PUMP_MODEL })).status, 201);
      for (const device of FLEET[tenant]) {
        const registered = await admin.api<{ token: string }>('/api/v1/devices', {
          method: 'POST',
          body: { ...device, model: 'agent-pump' },
        });
        assert.equal(registered.status, 201, JSON.stringify(registered.body));
        if (tenant === 'bravo' && device.id === 'pump-0001') bravoPumpToken = registered.body.token;
      }
    }
    for (const [username, person] of Object.entries(PEOPLE)) {
      const user = await as(tenantKeys[person.tenant] ?? '').api('/api/v1/users', {
        method: 'POST',
        body: { username, password: person.password, role: person.role },
      });
      assert.equal(user.status, 201, JSON.stringify(user.body));
    }

    // In bravo, an approve-mode agent proposes stopping its pump-0001: a decision waits for a person.
    const bravo = as(tenantKeys.bravo ?? '');
    const agent = await bravo.api('/api/v1/agents', {
      method: 'POST',
      body: {
        id: AGENT,
        name: 'Bravo stop',
        mode: 'approve',
        perceive: { devices: { ids: ['pump-0001'] } },
        judge: { when: 'speed >= 0' },
        act: { steps: [{ invoke: { action: 'stop' } }] },
        approval: { expiresIn: '15m' },
      },
    });
    assert.equal(agent.status, 201, JSON.stringify(agent.body));
    const sent = await t.api('/api/v1/devices/pump-0001/telemetry', { method: 'POST', auth: bravoPumpToken, body: { speed: 40 } });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    await until(async () => {
      const approvals = await bravo.api<{ items: { id: string; deviceId: string; agentId: string }[] }>('/api/v1/approvals');
      const found = approvals.body.items.find((d) => d.agentId === AGENT);
      if (found) pending = found;
      return found !== undefined;
    }, 'a decision awaiting approval in bravo');

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  });

  after(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await t?.stop();
  });

  it('asks for a username, password and tenant, fitting desktop and phone widths', async () => {
    const offered = await t.api<{ enabled: boolean }>('/api/v1/auth/oidc', { auth: null });
    assert.deepEqual([offered.status, offered.body], [200, { enabled: false }]);
    for (const [width, height, name] of [
      [1280, 800, 'desktop'],
      [390, 844, 'phone'],
    ] as const) {
      const page = await openPage(width, height);
      await page.goto(t.node.httpUrl);
      await page.getByLabel('Username').waitFor();
      await page.getByLabel('Password').waitFor();
      assert.equal(await page.getByLabel('Tenant').getAttribute('placeholder'), 'default');
      await page.getByRole('button', { name: 'Use an API key instead' }).waitFor();
      assert.equal(
        await page.getByRole('link', { name: 'Sign in with your organisation' }).count(),
        0,
        'no organisation sign-in without OIDC on the node',
      );
      await noHorizontalScrolling(page, `the sign-in screen at ${width} px`);
      await shot(page, `01-sign-in-${name}`);
      if (name === 'phone') {
        await page.getByLabel('Username').fill('alice');
        await page.getByLabel('Password').fill('not her password');
        await page.getByLabel('Tenant').fill('alpha');
        await page.getByRole('button', { name: 'Sign in', exact: true }).click();
        await page.getByText('Unknown user or wrong password for this tenant').waitFor();
        await noHorizontalScrolling(page, 'the refused sign-in at 390 px');
        await shot(page, '02-sign-in-refused-phone');
        // Right password, wrong tenant: alice is alpha's, not default's.
        await page.getByLabel('Password').fill(PEOPLE.alice.password);
        await page.getByLabel('Tenant').fill('');
        await page.getByRole('button', { name: 'Sign in', exact: true }).click();
        await page.getByText('Unknown user or wrong password for this tenant').waitFor();
        assert.equal(await page.evaluate(CREDENTIAL), null);
      }
    }
  });

  it("alice signs in to alpha and sees who she is and only alpha's fleet", async () => {
    const page = await openPage();
    pages.alice = page;
    await signIn(page, 'alice');
    const credential = await page.evaluate<{ kind: string; token: string }>(CREDENTIAL);
    assert.equal(credential.kind, 'session');
    assert.match(credential.token, /^tlu_/);
    tokens.alice = credential.token;
    await page.getByTestId('me-tenant').getByText('alpha', { exact: true }).waitFor();
    await page.getByTestId('me-actor').getByText('user:alice', { exact: true }).waitFor();
    await page.getByTestId('me-role').getByText('operator', { exact: true }).waitFor();
    await page.getByTestId('device-total').getByText('2', { exact: true }).waitFor();
    await page.getByText('Nothing is waiting for an operator.').waitFor();
    await shot(page, '03-alice-overview');

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Devices', exact: true }).click();
    await page.getByRole('link', { name: 'pump-0002', exact: true }).waitFor();
    assert.deepEqual(await deviceLinks(page), ['pump-0001', 'pump-0002']);
    await page.getByRole('cell', { name: 'Alpha pump 1', exact: true }).waitFor();
    assert.equal(await page.getByText(/Bravo pump/).count(), 0, "nothing of bravo's");
    await shot(page, '04-alice-devices');

    // The shared id is alpha's pump here; her session buys the ticket of the live stream.
    await page.getByRole('link', { name: 'pump-0001', exact: true }).click();
    await page.getByRole('heading', { name: 'Alpha pump 1' }).waitFor();
    await page.getByTestId('stream-status').getByText('live').waitFor();
    const stop = page.getByTestId('action-stop').getByRole('button', { name: 'Run stop' });
    assert.equal(await stop.isEnabled(), true, 'an operator may invoke actions');
  });

  it('bob signs in to bravo: his own fleet, the approval waiting, and no way to approve it', async () => {
    const page = await openPage();
    pages.bob = page;
    await signIn(page, 'bob');
    tokens.bob = (await page.evaluate<{ token: string }>(CREDENTIAL)).token;
    await page.getByTestId('me-tenant').getByText('bravo', { exact: true }).waitFor();
    await page.getByTestId('me-actor').getByText('user:bob', { exact: true }).waitFor();
    await page.getByTestId('me-role').getByText('viewer', { exact: true }).waitFor();
    await page.getByTestId('device-total').getByText('3', { exact: true }).waitFor();
    await page.getByTestId('approval-total').getByText('1', { exact: true }).waitFor();
    // The ingest counters are the whole node's: a viewer (no metrics:read) is not shown them, nor an error.
    assert.equal(await page.getByRole('heading', { name: 'Ingest' }).count(), 0);
    assert.equal(await page.getByRole('alert').count(), 0, 'no refusal on the overview');
    await shot(page, '05-bob-overview');

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Devices', exact: true }).click();
    await page.getByRole('link', { name: 'pump-0004', exact: true }).waitFor();
    assert.deepEqual(await deviceLinks(page), ['pump-0001', 'pump-0003', 'pump-0004']);
    await page.getByRole('cell', { name: 'Bravo pump 1', exact: true }).waitFor();
    assert.equal(await page.getByText(/Alpha pump/).count(), 0, "nothing of alpha's");

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Approvals', exact: true }).click();
    const card = page.getByTestId('approval-pump-0001');
    await card.getByText('Invoke stop on pump-0001').waitFor();
    const approve = card.getByRole('button', { name: `Approve ${AGENT} on pump-0001` });
    assert.equal(await approve.isDisabled(), true, 'a viewer cannot press approve');
    assert.equal(await card.getByRole('button', { name: `Reject ${AGENT} on pump-0001` }).isDisabled(), true);
    assert.match((await approve.getAttribute('title')) ?? '', /viewer\) may not approve or reject decisions/);
    await card
      .getByTestId('approval-denied')
      .getByText(/needs the decisions:approve permission/)
      .waitFor();
    await shot(page, '06-bob-approvals');

    // The server refuses regardless of the console.
    const refused = await as(tokens.bob ?? '').api<{ message: string }>(`/api/v1/approvals/${pending.id}/approve`, {
      method: 'POST',
      body: {},
    });
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.match(refused.body.message, /viewer role does not have the decisions:approve permission/);
    const still = await as(tenantKeys.bravo ?? '').api<{ items: { id: string }[] }>('/api/v1/approvals');
    assert.ok(
      still.body.items.some((d) => d.id === pending.id),
      'the decision still waits',
    );

    // His pump's controls are off too, with the reason as a tooltip.
    await page.goto(`${t.node.httpUrl}/devices/pump-0001`);
    await page.getByRole('heading', { name: 'Bravo pump 1' }).waitFor();
    const stop = page.getByTestId('action-stop').getByRole('button', { name: 'Run stop' });
    assert.equal(await stop.isDisabled(), true);
    assert.match((await stop.getAttribute('title')) ?? '', /may not invoke actions/);
  });

  it('shows a refusal (403) as a message when a role changes under an open page', async () => {
    const page = pages.alice;
    assert.ok(page, "alice's page");
    await page.getByRole('heading', { name: 'Alpha pump 1' }).waitFor();
    const alpha = as(tenantKeys.alpha ?? '');
    const users = await alpha.api<{ items: { id: string; username: string }[] }>('/api/v1/users');
    const alice = users.body.items.find((user) => user.username === 'alice');
    assert.ok(alice);
    assert.equal((await alpha.api(`/api/v1/users/${alice.id}`, { method: 'PATCH', body: { role: 'viewer' } })).status, 200);
    try {
      const action = page.getByTestId('action-stop');
      await action.getByRole('button', { name: 'Run stop' }).click();
      await action.getByText(/Your role may not do that/).waitFor();
      await action.getByText(/does not have the actions:invoke permission/).waitFor();
      // The refusal makes the console ask /me again: the header and the controls follow the new role.
      await page.getByTestId('me-role').getByText('viewer', { exact: true }).waitFor();
      await until(async () => action.getByRole('button', { name: 'Run stop' }).isDisabled(), 'Run stop disabled for a viewer');
      await page.getByRole('heading', { name: 'Alpha pump 1' }).waitFor();
      await shot(page, '07-alice-refused');
    } finally {
      await alpha.api(`/api/v1/users/${alice.id}`, { method: 'PATCH', body: { role: 'operator' } });
    }
  });

  it('signs out: the session ends on the node; a session that ended elsewhere returns to sign-in with a message', async () => {
    const alicePage = pages.alice;
    assert.ok(alicePage);
    await alicePage.getByRole('button', { name: 'Sign out' }).click();
    await alicePage.getByText('Signed out.').waitFor();
    await alicePage.getByLabel('Username').waitFor();
    assert.equal(await alicePage.evaluate(CREDENTIAL), null);
    assert.equal((await as(tokens.alice ?? '').api('/api/v1/me')).status, 401, 'the session token no longer works');

    const bobPage = pages.bob;
    assert.ok(bobPage);
    assert.equal((await as(tokens.bob ?? '').api('/api/v1/sessions/current', { method: 'DELETE' })).status, 204);
    await bobPage.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Devices', exact: true }).click();
    await bobPage.getByText('Your session ended').waitFor();
    await bobPage.getByLabel('Username').waitFor();
    assert.equal(await bobPage.evaluate(CREDENTIAL), null);
    await shot(bobPage, '08-session-ended');
  });

  it('takes a session handed back in the URL fragment (the OIDC return), then clears the fragment', async () => {
    const opened = await t.api<{ token: string }>('/api/v1/sessions', {
      method: 'POST',
      auth: null,
      body: { tenant: 'bravo', username: 'bob', password: PEOPLE.bob.password },
    });
    assert.equal(opened.status, 201);
    const page = await openPage(390, 844);
    await page.goto(`${t.node.httpUrl}/#session=${encodeURIComponent(opened.body.token)}`);
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.getByTestId('me-actor').getByText('user:bob', { exact: true }).waitFor();
    assert.equal(new URL(page.url()).hash, '', 'the token left the address bar');
    assert.deepEqual(await page.evaluate(CREDENTIAL), { kind: 'session', token: opened.body.token });
    await noHorizontalScrolling(page, 'the overview at 390 px');
    await shot(page, '09-bob-phone-overview');
  });
});

describe('console sign-in with your organisation (OpenID Connect) in chromium', () => {
  const CLIENT_ID = 'thingloop-console';
  const CLIENT_SECRET = 'thingloop-console-secret-0123456789';
  let t: TestNode;
  let issuer: OidcIssuer;
  let browser: Browser;
  let context: BrowserContext;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `no chromium at ${CHROMIUM}`);
    ensureConsoleBuilt();
    mkdirSync(SHOTS, { recursive: true });
    // The issuer must know the redirect URI before the node listens: the node's port is chosen first.
    const port = await freePort();
    const redirectUri = `http://127.0.0.1:${port}/api/v1/auth/oidc/callback`;
    issuer = await startOidcIssuer({
      clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [redirectUri] }],
      accounts: { carla: { preferred_username: 'carla', name: 'Carla', thingloop_tenant: 'bravo', thingloop_role: 'operator' } },
    });
    t = await startTestNode({
      httpPort: port,
      oidcIssuer: issuer.url.href.replace(/\/$/, ''),
      oidcClientId: CLIENT_ID,
      oidcClientSecret: CLIENT_SECRET,
      oidcRedirectUrl: redirectUri,
    });
    assert.equal((await t.api('/api/v1/tenants', { method: 'POST', body: { id: 'bravo', name: 'Bravo plant' } })).status, 201);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  });

  after(async () => {
    await context?.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await t?.stop();
    await issuer?.stop();
  });

  it("offers the organisation's sign-in and comes back signed in, the token gone from the address bar", async () => {
    const offered = await t.api<{ enabled: boolean }>('/api/v1/auth/oidc', { auth: null });
    assert.deepEqual(offered.body, { enabled: true });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    await page.goto(`http://127.0.0.1:${new URL(t.node.httpUrl).port}/`);
    const button = page.getByRole('link', { name: 'Sign in with your organisation' });
    await button.waitFor();
    await page.screenshot({ path: join(SHOTS, '10-sign-in-oidc.png'), fullPage: true });
    await button.click();
    // The provider's own login and consent pages (its development interactions): any password.
    await page.locator('input[name="login"]').fill('carla');
    await page.locator('input[name="password"]').fill('any password');
    await page.locator('button[type="submit"]').click();
    const nodePort = new URL(t.node.httpUrl).port;
    await until(async () => {
      if (new URL(page.url()).port === nodePort) return true;
      const consent = page.locator('button[type="submit"]');
      if ((await consent.count()) > 0) await consent.first().click({ timeout: 2_000 });
      return false;
    }, 'the way back to the console');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.getByTestId('me-tenant').getByText('bravo', { exact: true }).waitFor();
    await page.getByTestId('me-actor').getByText('user:carla', { exact: true }).waitFor();
    await page.getByTestId('me-role').getByText('operator', { exact: true }).waitFor();
    assert.equal(new URL(page.url()).hash, '', 'the session token left the address bar');
    const credential = await page.evaluate<{ kind: string; token: string }>(CREDENTIAL);
    assert.equal(credential.kind, 'session');
    assert.equal((await t.api<{ actor: string }>('/api/v1/me', { auth: credential.token })).body.actor, 'user:carla');
    await page.screenshot({ path: join(SHOTS, '11-oidc-signed-in.png'), fullPage: true });
  });
});
