/**
 * Regenerates the README's console screenshots (docs/images/) from a running node, normally the
 * demo a few minutes in, once the agents have acted: the overview and a device page, at desktop and
 * phone width. Uses Debian's chromium through playwright-core, like the console tests.
 *
 *   npm start                                   # in another terminal; note the admin key it prints
 *   THINGLOOP_URL=http://127.0.0.1:8080 THINGLOOP_ADMIN_KEY=… npm run docs:screenshots [-- --device plc-pump-02]
 */

import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium, type Page } from 'playwright-core';

const ROOT = resolve(import.meta.dirname, '..');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
];
/** Above this a screenshot is too heavy for the README: say so rather than commit it silently. */
const MAX_BYTES = 200 * 1024;

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: process.env.THINGLOOP_URL ?? 'http://127.0.0.1:8080' },
    key: { type: 'string', default: process.env.THINGLOOP_ADMIN_KEY },
    device: { type: 'string', default: 'plc-pump-02' },
    out: { type: 'string', default: join(ROOT, 'docs', 'images') },
  },
});
const key = values.key;
if (!key) {
  process.stderr.write('give the admin key: --key or THINGLOOP_ADMIN_KEY\n');
  process.exit(2);
}
const url = values.url.replace(/\/$/, '');

const SIZES = [
  { suffix: '', viewport: { width: 1280, height: 860 } },
  { suffix: '-phone', viewport: { width: 390, height: 844 } },
];

async function signIn(page: Page): Promise<void> {
  await page.goto(url);
  await page.getByRole('button', { name: 'Use an API key instead' }).click();
  await page.getByLabel('API key').fill(key ?? '');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
}

/** Panels fill in from several API calls and a chart needs a moment to draw: let the page settle. */
async function settle(page: Page): Promise<void> {
  await page.waitForLoadState('networkidle').catch(() => undefined);
  await page.waitForTimeout(2_500);
}

const profile = mkdtempSync(join(tmpdir(), 'thingloop-screenshots-'));
mkdirSync(values.out, { recursive: true });
const written: string[] = [];
try {
  for (const size of SIZES) {
    const context = await chromium.launchPersistentContext(join(profile, size.suffix || 'desktop'), {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport: size.viewport,
      deviceScaleFactor: 1,
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      page.setDefaultTimeout(20_000);
      await signIn(page);
      await settle(page);
      const overview = join(values.out, `console-overview${size.suffix}.png`);
      await page.screenshot({ path: overview });
      written.push(overview);
      await page.goto(`${url}/devices/${encodeURIComponent(values.device)}`);
      await page.locator('#device-title').waitFor();
      await settle(page);
      const device = join(values.out, `console-device${size.suffix}.png`);
      await page.screenshot({ path: device });
      written.push(device);
    } finally {
      await context.close();
    }
  }
} finally {
  rmSync(profile, { recursive: true, force: true });
}
let tooBig = false;
for (const file of written) {
  const bytes = statSync(file).size;
  tooBig ||= bytes > MAX_BYTES;
  process.stdout.write(`${file} ${Math.round(bytes / 1024)} KB${bytes > MAX_BYTES ? ' (over 200 KB: too heavy for the README)' : ''}\n`);
}
process.exit(tooBig ? 1 : 0);
