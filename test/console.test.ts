/**
 * The web console in a real browser: Debian's chromium driven by playwright-core against a node
 * that serves the built console, with a small simulated pump station reporting every second.
 * Screenshots of every screen go to test-output/console/.
 */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { Fleet, HttpProvisioner, pumpStation } from '../src/sim/index.js';
import { ADMIN_KEY, startTestNode, type TestNode } from './support/harness.js';

const ROOT = resolve(import.meta.dirname, '..');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = join(ROOT, 'test-output', 'console');
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

/** The node serves console/dist; a fresh checkout has it from `npm install` (prepare), otherwise build it now. */
const STORED_KEY = "sessionStorage.getItem('thingloop.apiKey')";

/** Polls `check` until it holds (page-side code would need DOM types the test tsconfig does not have). */
async function until(check: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

function ensureConsoleBuilt(): void {
  if (existsSync(join(ROOT, 'console', 'dist', 'index.html'))) return;
  execFileSync('npm', ['run', 'build:console'], { cwd: ROOT, stdio: 'inherit' });
}

describe('web console in chromium', { skip: existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}` }, () => {
  let t: TestNode;
  let fleet: Fleet;
  let context: BrowserContext;
  let page: Page;
  let profile: string;

  before(async () => {
    ensureConsoleBuilt();
    mkdirSync(SHOTS, { recursive: true });
    t = await startTestNode();
    fleet = new Fleet({
      url: t.node.mqttUrl,
      scenario: pumpStation,
      devices: 3, // pump-0001, pump-0002, valve-0001: awake devices, one report a second each
      rate: 3,
      provisioner: new HttpProvisioner(t.node.httpUrl, ADMIN_KEY),
    });
    await fleet.start();
    profile = mkdtempSync(join(tmpdir(), 'thingloop-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport: { width: 1280, height: 800 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(15_000);
  });

  after(async () => {
    await context?.close().catch(() => undefined);
    await fleet?.stop();
    await t?.stop();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

  it('serves the console at / and deep links, while the API, /metrics and /healthz keep working', async () => {
    const home = await fetch(`${t.node.httpUrl}/`);
    assert.equal(home.status, 200);
    assert.match(await home.text(), /<div id="root">/);
    const deep = await fetch(`${t.node.httpUrl}/devices/pump-0001`);
    assert.equal(deep.status, 200);
    assert.match(deep.headers.get('content-type') ?? '', /text\/html/);
    const missingApi = await t.api('/api/v1/no-such-thing');
    assert.equal(missingApi.status, 404);
    assert.equal((missingApi.body as { error: string }).error, 'not_found');
    assert.equal((await t.api('/api/v1/devices', { auth: null })).status, 401);
    assert.equal((await fetch(`${t.node.httpUrl}/healthz`)).status, 200);
    assert.match(await (await fetch(`${t.node.httpUrl}/metrics`)).text(), /thingloop_messages_accepted_total/);
  });

  it('signs in with the API key (a wrong key is refused with a message)', async () => {
    await page.goto(t.node.httpUrl);
    await page.getByLabel('API key').fill('not-the-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('That key was refused').waitFor();
    await shot('01-sign-in');
    await page.getByLabel('API key').fill(ADMIN_KEY);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    assert.equal(await page.evaluate(STORED_KEY), ADMIN_KEY);
  });

  it('shows the overview from the API: device counts, presence and ingest rate', async () => {
    await page.getByTestId('device-total').getByText('3').waitFor();
    await page.getByTestId('presence-online').waitFor();
    await until(async () => /\/s$/.test(await page.getByTestId('ingest-rate').innerText()), 'an ingest rate');
    await shot('02-overview');
  });

  it('finds a pump in the device list by id and by model', async () => {
    await page.getByRole('link', { name: 'Devices', exact: true }).click();
    await page.getByRole('heading', { name: 'Devices' }).waitFor();
    await page.getByLabel('Search by id').fill('pump-000');
    await page.waitForURL(/q=pump-000/);
    await page.getByRole('link', { name: 'pump-0002' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'valve-0001' }).count(), 0);
    await page.getByLabel('Search by id').fill('');
    await page.getByLabel('Model').selectOption('control-valve');
    await page.getByRole('link', { name: 'valve-0001' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'pump-0001' }).count(), 0);
    await page.getByLabel('Model').selectOption('centrifugal-pump');
    await page.getByRole('link', { name: 'pump-0001' }).waitFor();
    await shot('03-devices');
    await page.getByRole('link', { name: 'pump-0001' }).click();
    await page.getByRole('heading', { name: /Pump 1/ }).waitFor();
  });

  it('charts live telemetry: new points arrive over the WebSocket stream', async () => {
    await page.getByTestId('stream-status').getByText('live').waitFor();
    const chart = page.getByTestId('chart-flow');
    await chart.waitFor();
    const before = Number(await chart.getAttribute('data-points'));
    await until(async () => Number(await chart.getAttribute('data-points')) >= before + 2, 'new points on the flow chart');
    assert.ok((await page.locator('[data-testid="chart-flow"] canvas').count()) > 0, 'uPlot draws on a canvas');
    await page.getByTestId('latest').getByText('flow').waitFor();
    await shot('04-device-live');
    await page.getByRole('button', { name: '1 h' }).click();
    await page.getByText('Averages per 15s bucket').waitFor();
    await until(async () => Number(await page.getByTestId('chart-speed').getAttribute('data-points')) > 0, 'averaged speed points');
    await page.getByRole('button', { name: 'Live' }).click();
  });

  it('changes a desired value with If-Match and shows a conflict clearly', async () => {
    const desired = page.getByRole('form', { name: 'Set desired state' });
    await desired.getByLabel('speed').fill('42');
    await desired.getByRole('button', { name: 'Save desired state' }).click();
    await page.getByTestId('desired-saved').waitFor();
    await page.getByTestId('twin-desired-speed').getByText('42 percent').waitFor();
    const twin = await t.api<{ desired: { speed: number }; version: number }>('/api/v1/devices/pump-0001/twin');
    assert.equal(twin.body.desired.speed, 42);
    // The simulated pump applies the setpoint and reports its speed converging on it.
    await until(
      async () => Math.abs(Number.parseFloat(await page.getByTestId('twin-reported-speed').innerText()) - 42) < 5,
      'reported speed near 42',
      20_000,
    );
    await shot('05-device-twin');

    // Someone else writes first: the console's version is stale, so the save is refused with 409.
    const changed = await t.api('/api/v1/devices/pump-0001/twin', {
      method: 'PATCH',
      headers: { 'if-match': `"${twin.body.version}"` },
      body: { desired: { speed: 55 } },
    });
    assert.equal(changed.status, 200);
    await desired.getByLabel('speed').fill('60');
    await desired.getByRole('button', { name: 'Save desired state' }).click();
    const conflict = page.getByTestId('desired-conflict');
    await conflict.waitFor();
    assert.match((await conflict.textContent()) ?? '', /someone else changed the desired state first/i);
    await page.getByTestId('twin-desired-speed').getByText('55 percent').waitFor();
    await shot('06-device-twin-conflict');
    assert.equal((await t.api<{ desired: { speed: number } }>('/api/v1/devices/pump-0001/twin')).body.desired.speed, 55);
  });

  it('invokes actions from forms generated from the input schema and shows the result', async () => {
    const stop = page.getByTestId('action-stop');
    await stop.getByRole('button', { name: 'Run stop' }).click();
    await stop.getByTestId('action-output').getByText('"running": false').waitFor();
    await stop.getByText('succeeded', { exact: true }).waitFor();

    const fault = page.getByTestId('action-injectFault');
    await fault.getByRole('button', { name: 'Run injectFault' }).click();
    await fault.getByText('fault is required').waitFor();
    await fault.getByLabel('fault').selectOption({ index: 1 });
    await fault.getByLabel('durationS').fill('5');
    await fault.getByRole('button', { name: 'Run injectFault' }).click();
    await fault.getByTestId('action-output').getByText('injected').waitFor();
    await page.getByTestId('identity').getByText('ethernet').waitFor();
    await shot('07-device-actions');
  });

  it('lays out at tablet width', async () => {
    await page.setViewportSize({ width: 768, height: 1024 });
    await page.getByTestId('chart-flow').waitFor();
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
    assert.ok(overflow <= 0, `no horizontal scrolling at 768 px (overflow ${overflow}px)`);
    await shot('08-device-tablet');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('lists and shows thing models', async () => {
    await page.getByRole('link', { name: 'Models', exact: true }).click();
    await page.getByRole('link', { name: 'centrifugal-pump', exact: true }).click();
    await page.getByRole('heading', { name: 'Centrifugal pump' }).waitFor();
    await page.getByRole('row', { name: /bearingTemperature/ }).waitFor();
    await shot('09-model');
  });

  it('is keyboard reachable: tabbing reaches the navigation', async () => {
    await page.goto(t.node.httpUrl);
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    const focused = await page.evaluate<string>("document.activeElement?.textContent ?? ''");
    assert.equal(focused, 'Overview');
  });

  it('returns to sign-in with a message when the key stops working (401)', async () => {
    await page.evaluate("sessionStorage.setItem('thingloop.apiKey', 'revoked-key')");
    await page.goto(`${t.node.httpUrl}/devices`);
    await page.getByText('Your session ended').waitFor();
    await page.getByLabel('API key').waitFor();
    assert.equal(await page.evaluate(STORED_KEY), null);
    await shot('10-session-ended');
  });
});
