/**
 * The audit trail on a real SQLite file: recording returns at once and writes in batches,
 * queries are per tenant, filtered and paged newest first with a cursor, exports stream NDJSON
 * and CSV, retention prunes, and a full buffer drops and counts instead of growing.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SqliteAuditTrail } from '../../src/store/sqlite/index.js';
import { type AuditEntry, AuditTrail, type StoredAuditEntry } from '../../src/tenancy/index.js';
import { until } from '../support/wait.js';
import { START, tenancyFixture } from './tenancy-support.js';

function entry(index: number, overrides: Partial<AuditEntry> = {}): AuditEntry {
  return {
    tenant: 'default',
    at: START + index * 1000,
    actor: index % 2 === 0 ? 'user:ada' : 'key:scada',
    action: index % 3 === 0 ? 'devices.create' : 'twins.write',
    resource: `devices/pump-${String(index).padStart(4, '0')}`,
    address: '192.0.2.1',
    status: 201,
    ...overrides,
  };
}

async function collect(iterable: AsyncIterable<string>): Promise<string> {
  let text = '';
  for await (const chunk of iterable) text += chunk;
  return text;
}

describe('audit trail', () => {
  test('recording returns at once; entries are written in batches and read back newest first', async () => {
    const { db, close } = tenancyFixture();
    try {
      const appended: number[] = [];
      const store = new SqliteAuditTrail(db);
      const trail = new AuditTrail(
        {
          append: (entries) => {
            appended.push(entries.length);
            return store.append(entries);
          },
          query: (filter, beforeId, limit) => store.query(filter, beforeId, limit),
          pruneChunk: (before, limit) => store.pruneChunk(before, limit),
        },
        { batchSize: 100, flushDelayMs: 60_000 },
      );
      for (let index = 0; index < 250; index++) assert.equal(trail.record(entry(index)), true);
      assert.equal(db.prepare<[], { n: number }>('SELECT count(*) AS n FROM audit').get()?.n, 0, 'nothing written during the request');
      await trail.flush();
      assert.deepEqual(appended, [100, 100, 50]);
      assert.deepEqual(trail.stats(), { buffered: 0, written: 250, dropped: 0, writeFailures: 0 });
      const page = await trail.query({ tenant: 'default', limit: 3 });
      assert.deepEqual(
        page.entries.map((stored) => stored.resource),
        ['devices/pump-0249', 'devices/pump-0248', 'devices/pump-0247'],
      );
      assert.deepEqual(page.entries[0], { id: 250, ...entry(249), outcome: 'succeeded' });
      await trail.close();
    } finally {
      close();
    }
  });

  test('a full batch is written without waiting out the delay; a lone entry waits for it', async () => {
    const { db, close } = tenancyFixture();
    try {
      const trail = new AuditTrail(new SqliteAuditTrail(db), { batchSize: 10, flushDelayMs: 3_600_000 });
      const count = () => db.prepare<[], { n: number }>('SELECT count(*) AS n FROM audit').get()?.n;
      for (let index = 0; index < 10; index++) trail.record(entry(index));
      await until('the full batch on disk', () => (count() === 10 ? true : undefined));
      trail.record(entry(10));
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(count(), 10, 'the eleventh waits for its batch or the delay');
      await trail.close();
      assert.equal(count(), 11, 'closing writes it');
    } finally {
      close();
    }
  });

  test('a query sees what was recorded before it, filtered by time, actor and action, per tenant', async () => {
    const { tenancy, close } = tenancyFixture();
    try {
      const trail = tenancy.audit;
      for (let index = 0; index < 30; index++) trail.record(entry(index));
      trail.record(entry(100, { tenant: 'utility' }));
      const resources = async (query: Parameters<AuditTrail['query']>[0]) =>
        (await trail.query(query)).entries.map((stored) => stored.resource);

      assert.equal((await resources({ tenant: 'default', limit: 1000 })).length, 30);
      assert.deepEqual(await resources({ tenant: 'utility', limit: 1000 }), ['devices/pump-0100']);
      assert.deepEqual(await resources({ tenant: 'nobody', limit: 10 }), []);
      assert.deepEqual(await resources({ tenant: 'default', from: START + 10_000, to: START + 13_000, limit: 10 }), [
        'devices/pump-0012',
        'devices/pump-0011',
        'devices/pump-0010',
      ]);
      const keyCreates = await trail.query({ tenant: 'default', actor: 'key:scada', action: 'devices.create', limit: 10 });
      assert.deepEqual(
        keyCreates.entries.map((stored) => stored.resource),
        ['devices/pump-0027', 'devices/pump-0021', 'devices/pump-0015', 'devices/pump-0009', 'devices/pump-0003'],
      );
      assert.equal(keyCreates.next, undefined);
      await trail.close();
    } finally {
      close();
    }
  });

  test('paging with the cursor visits every entry once, also while new ones arrive', async () => {
    const { tenancy, close } = tenancyFixture();
    try {
      const trail = tenancy.audit;
      for (let index = 0; index < 23; index++) trail.record(entry(index));
      const seen: StoredAuditEntry[] = [];
      let after: string | undefined;
      let pages = 0;
      do {
        const page = await trail.query({ tenant: 'default', limit: 5, ...(after ? { after } : {}) });
        seen.push(...page.entries);
        after = page.next;
        pages++;
        trail.record(entry(1000 + pages));
      } while (after);
      assert.equal(pages, 5);
      assert.deepEqual(
        seen.map((stored) => stored.resource),
        Array.from({ length: 23 }, (_, index) => `devices/pump-${String(22 - index).padStart(4, '0')}`),
      );
      await assert.rejects(trail.query({ tenant: 'default', limit: 5, after: 'abc' }), { kind: 'invalid' });
      await assert.rejects(trail.query({ tenant: 'default', limit: 0 }), { kind: 'invalid' });
      await assert.rejects(trail.query({ tenant: 'default', limit: 1001 }), { kind: 'invalid' });
      await assert.rejects(trail.query({ tenant: '', limit: 5 }), { kind: 'invalid' });
      await assert.rejects(trail.query({ tenant: 'default', limit: 5, from: Number.NaN }), { kind: 'invalid' });
      await trail.close();
    } finally {
      close();
    }
  });

  test('export streams NDJSON and CSV of every matching entry, past a page', async () => {
    const { tenancy, close } = tenancyFixture();
    try {
      const trail = tenancy.audit;
      for (let index = 0; index < 1203; index++) trail.record(entry(index));
      trail.record(
        entry(2000, {
          actor: '=HYPERLINK("http://evil")',
          resource: 'devices/a,b "quoted"\nnext',
          status: 403,
          detail: { reason: 'forbidden' },
        }),
      );
      trail.record(entry(3000, { tenant: 'utility' }));

      const ndjson = (await collect(trail.exportNdjson({ tenant: 'default' }))).trimEnd().split('\n');
      assert.equal(ndjson.length, 1204);
      const first = JSON.parse(ndjson[0] ?? '') as StoredAuditEntry;
      assert.equal(first.outcome, 'refused');
      assert.deepEqual(first.detail, { reason: 'forbidden' });
      assert.equal((JSON.parse(ndjson[1203] ?? '') as StoredAuditEntry).resource, 'devices/pump-0000');

      const csv = await collect(trail.exportCsv({ tenant: 'default', actor: '=HYPERLINK("http://evil")' }));
      assert.equal(
        csv,
        'id,at,tenant,actor,action,resource,address,outcome,status,detail\r\n' +
          `1204,${new Date(START + 2_000_000).toISOString()},default,"'=HYPERLINK(""http://evil"")",twins.write,` +
          `"devices/a,b ""quoted""\nnext",192.0.2.1,refused,403,"{""reason"":""forbidden""}"\r\n`,
      );
      const allCsv = (await collect(trail.exportCsv({ tenant: 'default', from: START, to: START + 1_203_000 }))).split('\r\n');
      assert.equal(allCsv.length, 1 + 1203 + 1);
      await trail.close();
    } finally {
      close();
    }
  });

  test('retention prunes entries older than a time', async () => {
    const { tenancy, close } = tenancyFixture();
    try {
      const trail = tenancy.audit;
      for (let index = 0; index < 40; index++) trail.record(entry(index, { tenant: index % 2 === 0 ? 'default' : 'utility' }));
      assert.equal(await trail.prune(START + 30_000), 30);
      const left = await trail.query({ tenant: 'default', limit: 100 });
      assert.deepEqual(
        left.entries.map((stored) => stored.at),
        [38, 36, 34, 32, 30].map((second) => START + second * 1000),
      );
      await trail.close();
    } finally {
      close();
    }
  });

  test('a full buffer drops and counts; a failed write keeps the entries for the next try', async () => {
    const { db, close } = tenancyFixture();
    try {
      const store = new SqliteAuditTrail(db);
      let failing = true;
      const errors: unknown[] = [];
      const trail = new AuditTrail(
        {
          append: async (entries) => {
            if (failing) throw new Error('disk full');
            return store.append(entries);
          },
          query: (filter, beforeId, limit) => store.query(filter, beforeId, limit),
          pruneChunk: (before, limit) => store.pruneChunk(before, limit),
        },
        { maxBuffered: 10, batchSize: 4, flushDelayMs: 60_000 },
        (error) => errors.push(error),
      );
      const accepted = Array.from({ length: 15 }, (_, index) => trail.record(entry(index)));
      assert.deepEqual(accepted, [...Array(10).fill(true), ...Array(5).fill(false)]);
      await trail.flush();
      assert.equal(errors.length, 1);
      assert.deepEqual(trail.stats(), { buffered: 10, written: 0, dropped: 5, writeFailures: 1 });
      failing = false;
      await trail.flush();
      assert.deepEqual(trail.stats(), { buffered: 0, written: 10, dropped: 5, writeFailures: 1 });
      const stored = await trail.query({ tenant: 'default', limit: 100 });
      assert.deepEqual(
        stored.entries.map((saved) => saved.resource).reverse(),
        Array.from({ length: 10 }, (_, index) => `devices/pump-${String(index).padStart(4, '0')}`),
        'kept in order, the oldest first',
      );
      await trail.close();
    } finally {
      close();
    }
  });

  test('the buffer is bounded in bytes too: large details cannot fill memory', async () => {
    const { db, close } = tenancyFixture();
    try {
      const trail = new AuditTrail(new SqliteAuditTrail(db), { maxBufferedBytes: 64 * 1024, flushDelayMs: 3_600_000 });
      const large = { notes: 'z'.repeat(4000) };
      const accepted = Array.from({ length: 20 }, (_, index) => trail.record(entry(index, { detail: large })));
      const kept = accepted.filter(Boolean).length;
      assert.ok(kept >= 5 && kept < 10, `${kept} entries of about 8 KiB fit in 64 KiB`);
      assert.equal(trail.stats().dropped, 20 - kept);
      await trail.flush();
      assert.ok(trail.record(entry(99, { detail: large })), 'written entries free their room');
      await trail.close();
    } finally {
      close();
    }
  });

  test('what cannot be stored as given is cut or replaced, never thrown', async () => {
    const { tenancy, close } = tenancyFixture();
    try {
      const trail = tenancy.audit;
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      trail.record(entry(1, { actor: 'x'.repeat(10_000), detail: { blob: 'y'.repeat(10_000) } }));
      trail.record(entry(2, { detail: circular, status: undefined, outcome: 'failed' }));
      trail.record(entry(3, { status: 503 }));
      const [third, second, first] = (await trail.query({ tenant: 'default', limit: 10 })).entries;
      assert.equal(first?.actor.length, 200);
      assert.deepEqual(first?.detail, { truncated: true, bytes: 10_011 });
      assert.deepEqual(second?.detail, { unstorable: true });
      assert.equal(second?.outcome, 'failed');
      assert.equal(third?.outcome, 'failed');
      await trail.close();
    } finally {
      close();
    }
  });
});
