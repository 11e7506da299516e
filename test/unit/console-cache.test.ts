/**
 * The console's caching: hashed assets are cached for good, the page itself is revalidated, so a
 * new build reaches browsers at once while its assets are never fetched twice.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { consoleRoutes } from '../../src/transport/http/console.js';

describe('console caching', () => {
  let root: string;
  let app: FastifyInstance;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'thingloop-console-'));
    mkdirSync(join(root, 'assets'));
    writeFileSync(join(root, 'index.html'), '<!doctype html><title>t</title>');
    writeFileSync(join(root, 'assets', 'index-3f2a.js'), 'console.log(1)');
    app = Fastify();
    await app.register(consoleRoutes, { root });
    await app.ready();
  });
  after(async () => {
    await app.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('caches hashed assets for a year, immutable', async () => {
    const response = await app.inject({ method: 'GET', url: '/assets/index-3f2a.js' });
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers['cache-control'], 'public, max-age=31536000, immutable');
  });

  it('revalidates the page and deep links', async () => {
    for (const url of ['/', '/devices/pump-0001']) {
      const response = await app.inject({ method: 'GET', url });
      assert.equal(response.statusCode, 200, url);
      assert.equal(response.headers['cache-control'], 'no-cache', url);
    }
  });
});
