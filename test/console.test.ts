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
import { type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { type RunningNode, startCloudNode } from '../src/node/index.js';
import { createLogger } from '../src/observability/index.js';
import { Fleet, HttpProvisioner, pumpStation } from '../src/sim/index.js';
import { ADMIN_KEY, startTestNode, type TestNode, testConfig } from './support/harness.js';

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
const STORED_KEY = "JSON.parse(sessionStorage.getItem('thingloop.credential') ?? 'null')?.token ?? null";

/** Polls `check` until it holds (page-side code would need DOM types the test tsconfig does not have). */
async function until(check: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** The page fits its viewport width once layout has settled (fails with the last overflow seen). */
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

interface PresenceSplitBody {
  total: number;
  online: number;
  asleep: number;
  offline: number;
  unknown: number;
}

interface DeviceSummaryBody {
  total: number;
  byModel: Record<string, number>;
  byPresence: Omit<PresenceSplitBody, 'total'>;
  byEdge: Record<string, PresenceSplitBody>;
  direct: PresenceSplitBody;
}

/** What the overview lists for a split: "9 online", "2 asleep"…, statuses without devices left out. */
function splitTexts(split: PresenceSplitBody): string[] {
  return (['online', 'asleep', 'offline', 'unknown'] as const)
    .filter((status) => split[status] > 0)
    .map((status) => `${split[status]} ${status}`);
}

/**
 * The split reads "1 device behind this edge: 1 unknown"; a screen reader gets a list named by the
 * headline with one item per status (the dots between them are hidden from it).
 */
async function expectSplit(scope: Locator, headline: string, items: string[]): Promise<void> {
  const line = `${headline}: ${items.join(' · ')}`;
  await until(async () => (await scope.textContent()) === line, `the split "${line}"`);
  const list = scope.getByRole('list', { name: headline, exact: true });
  const texts = (await list.getByRole('listitem').allTextContents()).map((text) => text.replace(/^ · /, ''));
  assert.deepEqual(texts, items);
  assert.equal(await list.locator('[aria-hidden="true"]').count(), items.length - 1, 'only the separators are hidden');
}

function ensureConsoleBuilt(): void {
  if (existsSync(join(ROOT, 'console', 'dist', 'index.html'))) return;
  execFileSync('npm', ['run', 'build:console'], { cwd: ROOT, stdio: 'inherit' });
}

describe('web console in chromium', () => {
  let t: TestNode;
  let fleet: Fleet;
  let context: BrowserContext;
  let page: Page;
  let profile: string;

  before(async () => {
    // `npm test` installs it first (pretest); a missing browser fails here instead of skipping.
    assert.ok(existsSync(CHROMIUM), `no chromium at ${CHROMIUM}: run scripts/ensure-chromium.sh (npm test does it in pretest)`);
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
    assert.equal((await fetch(`${t.node.httpUrl}/metrics`)).status, 401, 'metrics need a key by default');
    assert.match((await t.api<string>('/metrics')).body, /thingloop_messages_accepted_total/);
  });

  it('signs in with the API key (a wrong key is refused with a message)', async () => {
    await page.goto(t.node.httpUrl);
    await page.getByRole('button', { name: 'Use an API key instead' }).click();
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
    await until(async () => /\/s$/.test((await page.getByTestId('ingest-rate').textContent()) ?? ''), 'an ingest rate');
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
    await page.getByTestId('twin-desired-speed').getByText('42%').waitFor();
    const twin = await t.api<{ desired: { speed: number }; version: number }>('/api/v1/devices/pump-0001/twin');
    assert.equal(twin.body.desired.speed, 42);
    // The simulated pump applies the setpoint and reports its speed converging on it.
    await until(
      async () => Math.abs(Number.parseFloat((await page.getByTestId('twin-reported-speed').textContent()) ?? '') - 42) < 5,
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
    await page.getByTestId('twin-desired-speed').getByText('55%').waitFor();
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

  it('shows how the device is reached: its protocol and the binding health from the API', async () => {
    await page.getByTestId('protocol').getByText('mqtt', { exact: true }).waitFor();
    const card = page.getByTestId('device-binding');
    await card.getByRole('heading', { name: 'Binding' }).waitFor();
    const health = await t.api<{ protocol: string; state: string }>('/api/v1/devices/pump-0001/binding');
    assert.equal(health.status, 200);
    assert.equal(health.body.protocol, 'mqtt');
    await card.getByTestId('binding-protocol').getByText('mqtt', { exact: true }).waitFor();
    // The card polls: it shows the state the API reports (the pump's session stays as it is meanwhile).
    await card
      .getByTestId('binding-state')
      .getByText(new RegExp(`^${health.body.state} \\(`))
      .waitFor();
    await card.getByTestId('binding-last-good-read').waitFor();
    await card.getByTestId('binding-poll-latency').getByText('— (the device pushes)').waitFor();
    await card.getByTestId('binding-errors').getByText(/^\d+$/).waitFor();
    await card.scrollIntoViewIfNeeded();
    await shot('31-device-binding');
  });

  it('lists the events the pump reports as they arrive, filtered by name, and pages back with "Load older"', async () => {
    const panel = page.getByTestId('device-events');
    await panel.getByRole('heading', { name: 'Events' }).waitFor();
    // The panel has loaded (the pump may already have reported motorState when it was stopped above).
    await panel.getByTestId('device-event').or(panel.getByTestId('events-hint')).first().waitFor();
    const model = await t.api<{ document: { events?: Record<string, unknown> } }>('/api/v1/models/centrifugal-pump');
    assert.ok(model.body.document.events?.motorState, 'the pump model defines motorState');

    // The admin key may report for any device: the new event shows without a reload, on the next poll.
    const sent = await t.api<{ id: number; name: string }>('/api/v1/devices/pump-0001/events/motorState', {
      method: 'POST',
      body: { data: { running: true } },
    });
    assert.equal(sent.status, 201, JSON.stringify(sent.body));
    const row = panel.locator(`[data-event-id="${sent.body.id}"]`);
    await row.getByText('motorState', { exact: true }).waitFor();
    await row.getByText('{"running":true}', { exact: true }).waitFor();
    await panel.getByLabel('Event name').selectOption('motorState');
    await row.waitFor();
    await panel.scrollIntoViewIfNeeded();
    await shot('30-device-events');
    await panel.getByLabel('Event name').selectOption('');
    await row.waitFor();

    // More than a page arrives at once: the list restarts from the newest page, and "Load older" reaches the rest.
    for (let batch = 0; batch < 5; batch++) {
      const replies = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          t.api('/api/v1/devices/pump-0001/events/motorState', { method: 'POST', body: { data: { running: i % 2 === 0 } } }),
        ),
      );
      assert.ok(
        replies.every((r) => r.status === 201),
        JSON.stringify(replies.map((r) => r.status)),
      );
    }
    const rows = panel.getByTestId('device-event');
    await until(async () => (await rows.count()) === 50 && (await row.count()) === 0, 'the newest page of 50 events');
    await panel.getByRole('button', { name: 'Load older' }).click();
    // Counted from the API each time: the pump may report another motorState of its own meanwhile.
    const stored = async () => (await t.api<{ items: unknown[] }>('/api/v1/devices/pump-0001/events?limit=1000')).body.items.length;
    await until(async () => (await rows.count()) === (await stored()), 'every stored event listed');
    await row.waitFor();
    await panel.getByText('No older events are stored.').waitFor();
  });

  it('lays out at tablet width', async () => {
    await page.setViewportSize({ width: 768, height: 1024 });
    await page.getByTestId('chart-flow').waitFor();
    // The charts follow their container on the next resize observation: the layout settles, then it must fit.
    await noHorizontalScrolling(page, 'the device page at 768 px');
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

  it('summarises the fleet in one call: GET /api/v1/devices/summary', async () => {
    const summary = await t.api<DeviceSummaryBody>('/api/v1/devices/summary');
    assert.equal(summary.status, 200);
    assert.equal(summary.body.total, 3);
    assert.deepEqual(summary.body.byModel, { 'centrifugal-pump': 2, 'control-valve': 1 });
    assert.deepEqual(Object.keys(summary.body.byPresence).sort(), ['asleep', 'offline', 'online', 'unknown']);
    assert.equal(
      Object.values(summary.body.byPresence).reduce((a, b) => a + b, 0),
      3,
    );
    // No edge yet (the edges block below adds one): the whole fleet talks to the cloud directly.
    assert.deepEqual(summary.body.byEdge, {});
    assert.deepEqual(summary.body.direct, { total: 3, ...summary.body.byPresence });
  });

  describe('device filters and refusals', () => {
    // A device that never connected, on another network profile; deleted afterwards so that the
    // fleet counts of later tests stay at three.
    const METER = 'meter-0001';
    let meterToken = '';
    const rowLinks = async () =>
      (await page.locator('table.devices tbody tr td:first-child a').allTextContents()).map((text) => text.trim()).sort();

    before(async () => {
      const created = await t.api<{ token: string }>('/api/v1/devices', {
        method: 'POST',
        body: { id: METER, name: 'Meter on NB-IoT', model: 'control-valve', network: { profile: 'nbiot', reportInterval: '1h' } },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      meterToken = created.body.token;
    });

    after(async () => {
      await t.api(`/api/v1/devices/${METER}`, { method: 'DELETE' });
    });

    it('filters the device list by network profile and by status, kept in the URL', async () => {
      await page.goto(`${t.node.httpUrl}/devices`);
      await page.getByRole('heading', { name: 'Devices' }).waitFor();
      await page.getByRole('link', { name: METER }).waitFor();

      await page.getByLabel('Network profile').selectOption('nbiot');
      await page.waitForURL(/network=nbiot/);
      await until(async () => JSON.stringify(await rowLinks()) === JSON.stringify([METER]), 'only the NB-IoT meter listed');
      await page
        .getByRole('row', { name: new RegExp(METER) })
        .getByText('nbiot', { exact: true })
        .waitFor();

      await page.getByLabel('Network profile').selectOption('ethernet');
      await page.waitForURL(/network=ethernet/);
      await until(
        async () => JSON.stringify(await rowLinks()) === JSON.stringify(['pump-0001', 'pump-0002', 'valve-0001']),
        'only the ethernet devices listed',
      );
      await page.getByText('3 devices with network Ethernet').waitFor();

      await page.getByLabel('Network profile').selectOption('');
      await page.getByLabel('Status', { exact: true }).selectOption('online');
      await page.waitForURL((url) => url.searchParams.get('status') === 'online' && !url.searchParams.has('network'));
      await until(
        async () => JSON.stringify(await rowLinks()) === JSON.stringify(['pump-0001', 'pump-0002', 'valve-0001']),
        'only the online devices listed',
      );
      const meterStatus = (await t.api<{ status: string }>(`/api/v1/devices/${METER}/presence`)).body.status;
      assert.notEqual(meterStatus, 'online', 'the meter never connected');
      await page.getByLabel('Status', { exact: true }).selectOption(meterStatus);
      await until(async () => JSON.stringify(await rowLinks()) === JSON.stringify([METER]), `only the ${meterStatus} meter listed`);
      await page
        .getByRole('row', { name: new RegExp(METER) })
        .getByText(meterStatus, { exact: true })
        .waitFor();
      await shot('26-devices-filtered');

      // Both filters at once match nothing: the empty state names them and offers to loosen each.
      await page.goto(`${t.node.httpUrl}/devices?network=nbiot&status=online`);
      const empty = page.getByTestId('devices-empty-filtered');
      await empty.getByText('No device matches network NB-IoT and status online.').waitFor();
      assert.equal(await page.getByLabel('Network profile').inputValue(), 'nbiot', 'the selects follow the URL');
      assert.equal(await page.getByLabel('Status', { exact: true }).inputValue(), 'online');
      await shot('27-devices-filtered-empty');
      await empty.getByRole('link', { name: 'any status' }).click();
      await page.waitForURL((url) => url.searchParams.get('network') === 'nbiot' && !url.searchParams.has('status'));
      await page.getByRole('link', { name: METER }).waitFor();
    });

    it("shows what the device sent that was refused in the device's errors panel", async () => {
      await page.getByRole('link', { name: METER }).click();
      await page.getByRole('heading', { name: 'Meter on NB-IoT' }).waitFor();
      const panel = page.getByTestId('device-errors');
      await panel.getByText('Nothing refused since the node started.').waitFor();

      // The meter reports with its own token: a property its model does not have, and a position far out of range.
      const sent = await t.api<{ rejections: { reason: string; property?: string }[] }>(`/api/v1/devices/${METER}/telemetry`, {
        method: 'POST',
        auth: meterToken,
        body: { bogus: 1, position: 1e9 },
      });
      assert.equal(sent.status, 400, JSON.stringify(sent.body));
      const errors = await t.api<{ items: { source: string; rejections: { reason: string; property?: string }[] }[] }>(
        `/api/v1/devices/${METER}/errors`,
      );
      const latest = errors.body.items[0];
      assert.equal(latest?.source, 'telemetry');
      assert.ok(
        latest.rejections.some((r) => r.property === 'bogus'),
        JSON.stringify(latest),
      );

      await panel.getByRole('button', { name: 'Refresh' }).click();
      for (const rejection of latest.rejections) {
        const row = panel.getByTestId('device-error').filter({ hasText: rejection.property ?? rejection.reason });
        await row.getByText(rejection.reason, { exact: true }).waitFor();
        await row.getByText('telemetry', { exact: true }).waitFor();
      }
      assert.equal(await panel.getByTestId('device-error').count(), latest.rejections.length);
      await panel.scrollIntoViewIfNeeded();
      await shot('28-device-errors');
    });
    it('says in the events panel that the valve model defines no events', async () => {
      const panel = page.getByTestId('device-events');
      await panel.getByText('No events are stored for this device yet.').waitFor();
      await panel
        .getByTestId('events-hint')
        .getByText(/^This model defines no events/)
        .waitFor();
      assert.equal(await panel.getByLabel('Event name').count(), 0, 'no name filter without event names');
    });
  });

  describe('agents, approvals and alarms', () => {
    const AGENT = 'console-stop';
    const nav = (name: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });

    before(async () => {
      // An approve-mode agent whose condition holds on the first sample: each pump gets one
      // decision awaiting approval (stop it) and one alarm, deterministically.
      const created = await t.api('/api/v1/agents', {
        method: 'POST',
        body: {
          id: AGENT,
          name: 'Console test stop',
          description: 'Proposes stopping every pump, so that the console has something to approve.',
          mode: 'approve',
          perceive: { devices: { model: 'centrifugal-pump' } },
          judge: { when: 'speed >= 0' },
          act: { steps: [{ invoke: { action: 'stop' } }] },
          approval: { expiresIn: '15m' },
          alarm: { type: 'console-test', severity: 'major' },
        },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      await until(async () => {
        const approvals = await t.api<{ items: { deviceId: string; agentId: string }[] }>('/api/v1/approvals');
        return approvals.body.items.some((d) => d.agentId === AGENT && d.deviceId === 'pump-0002');
      }, 'a decision awaiting approval for pump-0002');
      await until(async () => {
        const alarms = await t.api<{ items: { deviceId: string; agentId: string }[] }>(`/api/v1/alarms?agent=${AGENT}`);
        return alarms.body.items.some((a) => a.deviceId === 'pump-0002');
      }, 'an alarm for pump-0002');
    });

    it('shows active alarms and approvals waiting on the overview', async () => {
      await page.goto(t.node.httpUrl);
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      await until(async () => Number((await page.getByTestId('approval-total').textContent()) ?? '') >= 1, 'approvals on the overview');
      await until(async () => Number((await page.getByTestId('alarm-total').textContent()) ?? '') >= 1, 'alarms on the overview');
      await page.getByRole('link', { name: 'Invoke stop on pump-0002' }).waitFor();
      await shot('11-overview-agents');
    });

    it('lists the agent with its mode and shows its definition and decision log', async () => {
      await nav('Agents').click();
      await page.getByRole('heading', { name: 'Agents' }).waitFor();
      const row = page.getByRole('row', { name: /Console test stop/ });
      await row.getByText('approve', { exact: true }).waitFor();
      await row.getByText('enabled', { exact: true }).waitFor();
      await shot('12-agents');
      await row.getByRole('link', { name: 'Console test stop' }).click();
      await page.getByRole('heading', { name: 'Console test stop' }).waitFor();
      await page.getByTestId('agent-definition').getByText('when: speed >= 0').waitFor();
      await page.getByRole('button', { name: 'JSON' }).click();
      await page.getByTestId('agent-definition').getByText('"when": "speed >= 0"').waitFor();
      const log = page.getByTestId('decision-log');
      await log.getByRole('link', { name: 'pump-0002', exact: true }).waitFor();
      await page.getByLabel('Device').fill('pump-0002');
      await page.waitForURL(/device=pump-0002/);
      await until(
        async () => (await log.getByRole('link', { name: 'pump-0001', exact: true }).count()) === 0,
        'the log filtered to pump-0002',
      );
      await log.getByText('awaiting-approval').first().waitFor();
      await shot('13-agent');
    });

    it('approves a decision from the queue: it is executed and recorded as approved', async () => {
      await nav('Approvals').click();
      await page.getByRole('heading', { name: 'Approvals' }).waitFor();
      const card = page.getByTestId('approval-pump-0002');
      await card.getByText('Invoke stop on pump-0002').waitFor();
      await card.getByText(/expires in \d+ min/).waitFor();
      await shot('14-approvals');
      await card.getByRole('button', { name: `Approve ${AGENT} on pump-0002` }).click();
      const dialog = page.getByRole('dialog', { name: 'Approve and execute on pump-0002?' });
      await dialog.getByText('Invoke stop on pump-0002').waitFor();
      await shot('15-approve-confirm');
      await dialog.getByRole('button', { name: 'Approve and execute' }).click();
      const decided = page.getByTestId('approvals-decided');
      await decided.getByText('executed (approved by admin)').waitFor();
      assert.equal(await page.getByTestId('approval-pump-0002').count(), 0, 'the approved decision leaves the queue');
      await decided.getByRole('link', { name: 'view the decision' }).click();
      await page.getByRole('heading', { name: 'Decision on pump-0002' }).waitFor();
      await page.getByTestId('decision-outcome').getByText('executed (approved by admin)').waitFor();
      await page
        .getByTestId('decision-approval')
        .getByText(/approved by admin/)
        .waitFor();
      await page.getByTestId('decision-actions').getByText('Invoke stop on pump-0002').waitFor();
      await page.getByText('speed >= 0 held').waitFor();
      await shot('16-decision');
      const approvals = await t.api<{ items: { deviceId: string; agentId: string }[] }>('/api/v1/approvals');
      assert.ok(!approvals.body.items.some((d) => d.agentId === AGENT && d.deviceId === 'pump-0002'));
    });

    it('acknowledges an alarm and shows the history', async () => {
      await nav('Alarms').click();
      await page.getByRole('heading', { name: 'Alarms' }).waitFor();
      const row = page.getByTestId('alarm-pump-0002');
      await row.getByTestId('alarm-state').getByText('active').waitFor();
      await shot('17-alarms');
      await row.getByRole('button', { name: 'Acknowledge console-test on pump-0002' }).click();
      await row.getByTestId('alarm-state').getByText('acknowledged').waitFor();
      const alarms = await t.api<{ items: { deviceId: string; state: string; acknowledgedBy?: string }[] }>(
        `/api/v1/alarms?agent=${AGENT}`,
      );
      const acknowledged = alarms.body.items.find((a) => a.deviceId === 'pump-0002');
      assert.equal(acknowledged?.state, 'acknowledged');
      assert.equal(acknowledged?.acknowledgedBy, 'admin');
      await row.getByText('History').click();
      await row.getByText(/acknowledged \(major\) by admin/).waitFor();
      await shot('18-alarms-acknowledged');
      await page.getByRole('button', { name: 'History', exact: true }).click();
      await page.waitForURL(/view=history/);
      await page.getByTestId('alarm-pump-0002').waitFor();
    });

    it('switches mode and disables the agent, each after a confirmation', async () => {
      await page.goto(`${t.node.httpUrl}/agents/${AGENT}`);
      await page.getByRole('heading', { name: 'Console test stop' }).waitFor();
      await page.getByRole('button', { name: 'Shadow' }).click();
      const dialog = page.getByRole('dialog', { name: `Switch ${AGENT} to shadow mode?` });
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      await dialog.waitFor({ state: 'hidden' });
      assert.equal((await t.api<{ mode: string }>(`/api/v1/agents/${AGENT}`)).body.mode, 'approve', 'cancel changes nothing');

      await page.getByRole('button', { name: 'Shadow' }).click();
      await dialog.getByRole('button', { name: 'Switch to shadow' }).click();
      await page.getByTestId('agent-saved').getByText('Mode switched to shadow.').waitFor();
      assert.equal(await page.getByRole('button', { name: 'Shadow' }).getAttribute('aria-pressed'), 'true');
      assert.equal((await t.api<{ mode: string }>(`/api/v1/agents/${AGENT}`)).body.mode, 'shadow');

      await page.getByRole('button', { name: 'Disable agent' }).click();
      await page
        .getByRole('dialog', { name: `Disable ${AGENT}?` })
        .getByRole('button', { name: 'Disable', exact: true })
        .click();
      await page.getByTestId('agent-saved').getByText('Agent disabled.').waitFor();
      await page.getByRole('button', { name: 'Enable agent' }).waitFor();
      assert.equal((await t.api<{ enabled: boolean }>(`/api/v1/agents/${AGENT}`)).body.enabled, false);
      await shot('19-agent-controls');
    });

    it('lays out the new screens at tablet width', async () => {
      await page.setViewportSize({ width: 768, height: 1024 });
      for (const [path, heading] of [
        ['/alarms', 'Alarms'],
        ['/approvals', 'Approvals'],
        [`/agents/${AGENT}`, 'Console test stop'],
      ] as const) {
        await page.goto(`${t.node.httpUrl}${path}`);
        await page.getByRole('heading', { name: heading, exact: true }).waitFor();
        await noHorizontalScrolling(page, `${path} at 768 px`);
      }
      await shot('20-agent-tablet');
      await page.setViewportSize({ width: 1280, height: 800 });
    });
  });

  describe('edges', () => {
    const EDGE = 'console-site';
    let edgeNode: RunningNode | undefined;
    let edgeDir: string | undefined;
    const edgeStatus = async () =>
      (await t.api<{ connected: boolean; heartbeat: unknown; config: { appliedVersion: number | null } }>(`/api/v1/edges/${EDGE}`)).body;

    before(async () => {
      const registered = await t.api<{ edge: { id: string }; token: string }>('/api/v1/edges', {
        method: 'POST',
        body: { id: EDGE, name: 'Console test site' },
      });
      assert.equal(registered.status, 201, JSON.stringify(registered.body));
      // One valve served by the edge, so that the overview has a device behind it.
      const device = await t.api('/api/v1/devices', {
        method: 'POST',
        body: { id: 'edge-valve-0001', name: 'Valve behind the edge', model: 'control-valve', edge: EDGE },
      });
      assert.equal(device.status, 201, JSON.stringify(device.body));
      const config = testConfig({ role: 'edge', cloudUrl: t.node.httpUrl, edgeId: EDGE, edgeToken: registered.body.token });
      edgeDir = config.dataDir;
      edgeNode = await startCloudNode(config, { logger: createLogger({ level: 'silent' }) });
      await until(async () => (await edgeStatus()).connected, `GET /api/v1/edges/${EDGE} to say connected`);
      await until(async () => (await edgeStatus()).config.appliedVersion !== null, 'the edge to apply its configuration');
      // Capacity and backlog arrive with the edge's heartbeat (one every 10 s).
      await until(async () => (await edgeStatus()).heartbeat !== null, 'the first heartbeat', 30_000);
    });

    after(async () => {
      await edgeNode?.stop().catch(() => undefined);
      if (edgeDir) rmSync(edgeDir, { recursive: true, force: true });
    });

    it('lists the edge online with its backlog, capacity and configuration', async () => {
      await page.setViewportSize({ width: 1280, height: 800 });
      await page.goto(t.node.httpUrl);
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Edges', exact: true }).click();
      await page.getByRole('heading', { name: 'Edges', exact: true }).waitFor();
      const row = page.getByTestId(`edge-row-${EDGE}`);
      await row.getByTestId('edge-link').getByText('online', { exact: true }).waitFor();
      await row.getByText('Console test site').waitFor();
      await row.getByText(/^Accelerators: /).waitFor();
      await row.getByText(/^CPU \d+(\.\d)? %$/).waitFor();
      await row.getByText(/^empty$|records \(/).waitFor();
      await row.getByText(/^v\d+ \/ v\d+$/).waitFor();
      await shot('21-edges-online');
    });

    it('shows the edge in detail: desired against applied configuration with a result per item', async () => {
      await page.getByRole('link', { name: EDGE, exact: true }).click();
      await page.getByRole('heading', { name: 'Console test site' }).waitFor();
      await page.getByTestId('edge-link-state').getByText('online').waitFor();
      const items = page.getByTestId('edge-config-items');
      const valve = items.getByRole('row', { name: /device edge-valve-0001/ });
      // The console shows what the edge reported for the item: its status, and the reason of a failure.
      const applied = await t.api<{ applied: { results: { kind: string; id: string; status: string; reason?: string }[] } }>(
        `/api/v1/edges/${EDGE}/config`,
      );
      const result = applied.body.applied.results.find((r) => r.kind === 'device' && r.id === 'edge-valve-0001');
      assert.ok(result, JSON.stringify(applied.body.applied));
      await valve.getByText(result.status, { exact: true }).waitFor();
      if (result.reason) await valve.getByText(result.reason).waitFor();
      await items.getByRole('row', { name: /model control-valve@1/ }).waitFor();
      await page
        .getByTestId('edge-config-summary')
        .getByText(/desired v\d+, applied v\d+/)
        .waitFor();
      await shot('22-edge-detail');
    });

    it('filters the device list by edge, the select filled from GET /api/v1/edges', async () => {
      await page.goto(`${t.node.httpUrl}/devices`);
      await page.getByRole('link', { name: 'pump-0001' }).waitFor();
      await page.getByLabel('Edge', { exact: true }).selectOption(EDGE);
      await page.waitForURL(new RegExp(`edge=${EDGE}`));
      await page.getByRole('link', { name: 'edge-valve-0001' }).waitFor();
      assert.equal(await page.getByRole('link', { name: 'pump-0001' }).count(), 0);
      await page.getByText(`1 device with edge Console test site (${EDGE})`).waitFor();
    });

    it('counts the devices behind the edge apart from the direct ones: GET /api/v1/devices/summary', async () => {
      const summary = await t.api<DeviceSummaryBody>('/api/v1/devices/summary');
      assert.equal(summary.status, 200);
      assert.equal(summary.body.total, 4);
      // The valve behind the edge has never reported to the cloud: unknown.
      assert.deepEqual(summary.body.byEdge, { [EDGE]: { total: 1, online: 0, asleep: 0, offline: 0, unknown: 1 } });
      assert.equal(summary.body.direct.total, 3);
      for (const status of ['online', 'asleep', 'offline', 'unknown'] as const) {
        assert.equal(summary.body.direct[status] + (summary.body.byEdge[EDGE]?.[status] ?? 0), summary.body.byPresence[status], status);
      }
    });

    it('draws the edge between its devices and the cloud on the overview, each with its presence split', async () => {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Overview', exact: true }).click();
      const box = page.getByTestId(`topology-edge-${EDGE}`);
      await box.getByTestId('edge-link').getByText('online', { exact: true }).waitFor();
      await expectSplit(box.getByTestId('topology-edge-devices'), '1 device behind this edge', ['1 unknown']);
      const direct = (await t.api<DeviceSummaryBody>('/api/v1/devices/summary')).body.direct;
      await expectSplit(page.getByTestId('topology-direct'), '3 devices connected directly', splitTexts(direct));
      await shot('23-overview-topology');
    });

    it('lays out the edge screens at tablet width', async () => {
      await page.setViewportSize({ width: 768, height: 1024 });
      for (const [path, heading] of [
        ['/', 'Overview'],
        ['/edges', 'Edges'],
        [`/edges/${EDGE}`, 'Console test site'],
      ] as const) {
        await page.goto(`${t.node.httpUrl}${path}`);
        await page.getByRole('heading', { name: heading, exact: true }).waitFor();
        await noHorizontalScrolling(page, `${path} at 768 px`);
      }
      await shot('24-edge-tablet');
      await page.setViewportSize({ width: 1280, height: 800 });
    });

    it('lists the gap reports of the edge: none, since its outbox never overflowed', async () => {
      await page.goto(`${t.node.httpUrl}/edges/${EDGE}`);
      await page.getByRole('heading', { name: 'Console test site' }).waitFor();
      const gaps = await t.api<{ items: unknown[] }>(`/api/v1/edges/${EDGE}/gaps`);
      assert.equal(gaps.status, 200);
      assert.deepEqual(gaps.body.items, []);
      await page.getByTestId('edge-gap-reports').getByText('No data lost: the outbox never overflowed.').waitFor();
    });

    it('refuses to decommission an edge that still serves a device, saying what to do', async () => {
      await page.getByRole('button', { name: 'Decommission', exact: true }).click();
      const dialog = page.getByRole('dialog', { name: `Decommission ${EDGE}?` });
      await dialog.getByText('cannot be undone', { exact: false }).waitFor();
      await shot('31-edge-decommission-confirm');
      await dialog.getByRole('button', { name: 'Decommission', exact: true }).click();
      const refused = page.getByTestId('decommission-refused');
      await refused.getByText(`${EDGE} was not decommissioned.`).waitFor();
      await refused.getByText(/still serves device edge-valve-0001: delete them/).waitFor();
      await refused.getByRole('link', { name: 'edge-valve-0001' }).waitFor();
      await refused.getByRole('link', { name: 'List the devices behind this edge' }).waitFor();
      await dialog.waitFor({ state: 'hidden' });
      assert.equal((await t.api(`/api/v1/edges/${EDGE}`)).status, 200, 'the edge is still registered');
      await shot('32-edge-gaps-decommission-refused');
    });

    it('decommissions an edge without devices and returns to the edge list', async () => {
      const SPARE = 'console-spare';
      const created = await t.api('/api/v1/edges', { method: 'POST', body: { id: SPARE, name: 'Spare site' } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      try {
        await page.goto(`${t.node.httpUrl}/edges`);
        await page.getByTestId(`edge-row-${SPARE}`).getByRole('link', { name: SPARE, exact: true }).click();
        await page.getByRole('heading', { name: 'Spare site' }).waitFor();
        await page.getByRole('button', { name: 'Decommission', exact: true }).click();
        await page
          .getByRole('dialog', { name: `Decommission ${SPARE}?` })
          .getByRole('button', { name: 'Decommission', exact: true })
          .click();
        await page.waitForURL((url) => url.pathname === '/edges');
        await page.getByTestId(`edge-row-${EDGE}`).waitFor();
        assert.equal(await page.getByTestId(`edge-row-${SPARE}`).count(), 0, 'the decommissioned edge is gone from the list');
        assert.equal((await t.api(`/api/v1/edges/${SPARE}`)).status, 404);
        await shot('33-edges-after-decommission');
      } finally {
        await t.api(`/api/v1/edges/${SPARE}`, { method: 'DELETE' });
      }
    });

    it('shows the edge offline once its node stops', async () => {
      await page.goto(`${t.node.httpUrl}/edges`);
      const row = page.getByTestId(`edge-row-${EDGE}`);
      await row.getByTestId('edge-link').getByText('online', { exact: true }).waitFor();
      await edgeNode?.stop();
      edgeNode = undefined;
      await until(async () => !(await edgeStatus()).connected, `GET /api/v1/edges/${EDGE} to say disconnected`);
      // The list refreshes on its own: no reload here.
      await row.getByTestId('edge-link').getByText('offline', { exact: true }).waitFor();
      await page.getByTestId('edge-counts').getByText('1 edge: 0 online, 1 offline').waitFor();
      await row.getByText(/when last reported$/).waitFor();
      await shot('25-edges-offline');
      await row.getByRole('link', { name: EDGE, exact: true }).click();
      await page.getByTestId('edge-link-state').getByText('offline').waitFor();

      // On the overview the edge is drawn offline and still accounts for the device it serves.
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Overview', exact: true }).click();
      const box = page.getByTestId(`topology-edge-${EDGE}`);
      await box.getByTestId('edge-link').getByText('offline', { exact: true }).waitFor();
      await box.getByRole('link', { name: `Edge ${EDGE}, offline` }).waitFor();
      await expectSplit(box.getByTestId('topology-edge-devices'), '1 device behind this edge', ['1 unknown']);
      await shot('29-overview-edge-offline');
    });
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
    await page.evaluate(`sessionStorage.setItem('thingloop.credential', '${JSON.stringify({ kind: 'key', token: 'revoked-key' })}')`);
    await page.goto(`${t.node.httpUrl}/devices`);
    await page.getByText('Your session ended').waitFor();
    await page.getByLabel('Username').waitFor();
    assert.equal(await page.evaluate(STORED_KEY), null);
    await shot('10-session-ended');
  });
});
