/**
 * The edge's outbox and the cloud's apply side on real SQLite files, without processes: the
 * full-outbox policies, the lease that keeps records already sent out of the quota's reach (also
 * across a restart), and the cloud's bookkeeping of gap reports. The end-to-end proofs with real
 * processes are in edge.test.ts; these pin down the accounting rules they rely on.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { decodeBatch, EdgeDirectory, type GapReport, type SequencedRecord, type UplinkRecord, UplinkSender } from '../src/edge/index.js';
import { openDatabase, type SqliteDatabase, SqliteEdges, SqliteOutbox } from '../src/store/sqlite/index.js';
import { tempDir } from './support/harness.js';

const NOW = Date.UTC(2026, 10, 1);

function telemetry(deviceId: string, count: number, from = 0): UplinkRecord[] {
  return Array.from({ length: count }, (_, i) => ({
    kind: 'telemetry' as const,
    deviceId,
    ts: NOW + from + i,
    values: { vibration: 1, starts: from + i },
  }));
}

/** Telemetry timestamps still queued per device, and every queued gap report. */
async function queued(outbox: SqliteOutbox): Promise<{ ts: Map<string, number[]>; gaps: GapReport[]; other: number }> {
  const ts = new Map<string, number[]>();
  const gaps: GapReport[] = [];
  let other = 0;
  for (const { record } of await outbox.lease(0, 1_000_000, Number.POSITIVE_INFINITY)) {
    if (record.kind === 'telemetry') ts.set(record.deviceId, [...(ts.get(record.deviceId) ?? []), record.ts]);
    else if (record.kind === 'gap') gaps.push(record.gap);
    else other++;
  }
  await outbox.releaseAbove(0);
  return { ts, gaps, other };
}

describe('edge outbox on SQLite', () => {
  let dir: string;
  let db: SqliteDatabase;
  let outbox: SqliteOutbox;
  beforeEach(() => {
    dir = tempDir('thingloop-outbox-');
    db = openDatabase(join(dir, 'edge.db'));
    outbox = new SqliteOutbox(db, () => NOW);
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('drop-oldest removes the oldest telemetry only, counts it per device and queues the gap report', async () => {
    await outbox.append([{ kind: 'decision', decision: { id: 'd-1' } }]);
    await outbox.append([...telemetry('pump-1', 300), ...telemetry('pump-2', 300)]);
    const { bytes } = await outbox.stats();
    const gap = await outbox.enforceQuota(Math.floor(bytes / 2), 'drop-oldest', NOW);
    assert.ok(gap, 'over quota: a gap is reported');
    assert.equal(gap.policy, 'drop-oldest');
    const left = await queued(outbox);
    assert.equal(left.other, 1, 'the decision record is never dropped');
    assert.deepEqual(left.gaps, [gap], 'the gap report itself is queued for the cloud');
    const kept1 = left.ts.get('pump-1') ?? [];
    const kept2 = left.ts.get('pump-2') ?? [];
    assert.equal(gap.total, 600 - kept1.length - kept2.length, 'every removed sample is counted');
    assert.equal(gap.devices['pump-1']?.dropped, 300 - kept1.length);
    assert.equal(gap.devices['pump-2']?.dropped ?? 0, 300 - kept2.length);
    // What is left is the newest part of the append order (pump-1's 300, then pump-2's 300).
    const appendOrder = [...telemetry('pump-1', 300), ...telemetry('pump-2', 300)].map(
      (r) => `${(r as { deviceId: string }).deviceId}@${(r as { ts: number }).ts}`,
    );
    const keptKeys = [...kept1.map((ts) => `pump-1@${ts}`), ...kept2.map((ts) => `pump-2@${ts}`)];
    assert.deepEqual(keptKeys, appendOrder.slice(appendOrder.length - keptKeys.length), 'only the oldest were dropped');
    assert.ok((await outbox.stats()).bytes <= Math.floor(bytes / 2), 'back under the quota');
    assert.equal((await outbox.stats()).dropped, gap.total);
    assert.equal(await outbox.enforceQuota(Math.floor(bytes / 2), 'drop-oldest', NOW), undefined, 'nothing more to do');
  });

  test('downsample thins every other old sample instead of cutting a range', async () => {
    await outbox.append(telemetry('pump-1', 400));
    const { bytes } = await outbox.stats();
    const gap = await outbox.enforceQuota(Math.floor(bytes * 0.8), 'downsample', NOW);
    assert.ok(gap);
    const kept = (await queued(outbox)).ts.get('pump-1') ?? [];
    assert.equal(gap.total, 400 - kept.length);
    const dropped = new Set(Array.from({ length: 400 }, (_, i) => NOW + i).filter((ts) => !kept.includes(ts)));
    assert.ok(dropped.has(NOW) && !dropped.has(NOW + 1) && dropped.has(NOW + 2), 'the oldest are thinned one in two');
    assert.ok(kept.includes(NOW + 399), 'the newest are kept');
  });

  test('a flood of device events cannot outgrow the quota: when telemetry cannot make room the oldest events go, counted', async () => {
    await outbox.append(telemetry('pump-1', 10));
    await outbox.append(
      Array.from({ length: 300 }, (_, i) => ({
        kind: 'event' as const,
        deviceId: 'pump-1',
        name: 'overheat',
        ts: NOW + 100 + i,
        data: { i },
      })),
    );
    await outbox.append([{ kind: 'decision', decision: { id: 'd-1' } }]);
    const { bytes } = await outbox.stats();
    const gap = await outbox.enforceQuota(Math.floor(bytes / 4), 'drop-oldest', NOW);
    assert.ok(gap);
    const left = await queued(outbox);
    const eventsLeft = (await outbox.lease(0, 1000, Number.POSITIVE_INFINITY)).filter((r) => r.record.kind === 'event');
    await outbox.releaseAbove(0);
    assert.equal(left.ts.get('pump-1'), undefined, 'every sample went first');
    assert.equal(gap.devices['pump-1']?.dropped, 10);
    assert.equal(gap.devices['pump-1']?.events, 300 - eventsLeft.length);
    assert.equal(gap.events, 300 - eventsLeft.length);
    assert.equal(gap.total, 10 + (gap.events ?? 0));
    const oldestKept = eventsLeft[0]?.record;
    assert.ok(oldestKept?.kind === 'event' && oldestKept.ts > NOW + 100, 'the newest events were kept');
    assert.equal(left.other - eventsLeft.length, 1, 'the decision is never dropped');
    assert.ok((await outbox.stats()).bytes <= Math.floor(bytes / 4), 'back under the quota');
  });

  test('the outbox keeps its epoch across restarts; a new data directory gets a new one', async () => {
    const epoch = outbox.epoch;
    assert.match(epoch, /^[0-9a-f-]{36}$/);
    db.close();
    db = openDatabase(join(dir, 'edge.db'));
    outbox = new SqliteOutbox(db, () => NOW);
    assert.equal(outbox.epoch, epoch);
    const other = openDatabase(join(dir, 'other.db'));
    try {
      assert.notEqual(new SqliteOutbox(other, () => NOW).epoch, epoch);
    } finally {
      other.close();
    }
  });

  test('records handed out for sending are never dropped, also after a restart, until released', async () => {
    await outbox.append(telemetry('pump-1', 200));
    const sent = await outbox.lease(0, 50, Number.POSITIVE_INFINITY);
    const lastSent = (sent[sent.length - 1] as SequencedRecord).seq;
    const gap = await outbox.enforceQuota(1, 'drop-oldest', NOW);
    assert.equal(gap?.total, 150, 'everything but the leased records');
    // A restart: the lease is read back from the database.
    db.close();
    db = openDatabase(join(dir, 'edge.db'));
    outbox = new SqliteOutbox(db, () => NOW);
    await outbox.append(telemetry('pump-1', 10, 200));
    const again = await outbox.enforceQuota(1, 'drop-oldest', NOW);
    assert.equal(again?.total, 10, 'only the samples appended after the restart');
    const left = await queued(outbox);
    assert.equal((left.ts.get('pump-1') ?? []).length, 50, 'the leased 50 survived');
    // The cloud's mark on the next connection says only the first 20 arrived.
    await outbox.lease(0, 1_000, Number.POSITIVE_INFINITY);
    await outbox.releaseAbove(lastSent - 30);
    const third = await outbox.enforceQuota(1, 'drop-oldest', NOW);
    assert.equal(third?.total, 30, 'released records may be dropped again');
  });

  test('the sender leases what it sends: a quota run in the same tick drops only records not on their way', async () => {
    await outbox.append(telemetry('pump-1', 1000));
    const frames: Buffer[] = [];
    const sender = new UplinkSender(
      outbox,
      { sendBinary: (frame) => frames.push(frame) > 0 },
      { batchRecords: 100, batchBytes: 1 << 20, maxInFlight: 4, drainRatePerSecond: 0, now: () => NOW },
      (error) => assert.fail(String(error)),
    );
    sender.linkUp();
    // Same tick as the sender's read: the policy must see the batch as already sent.
    const gap = await outbox.enforceQuota(1, 'drop-oldest', NOW);
    await new Promise((resolve) => setImmediate(resolve));
    sender.stop();
    const sent = frames.flatMap((frame) => decodeBatch(frame).records).filter((entry) => entry.record.kind === 'telemetry');
    assert.ok(sent.length > 0 && gap);
    assert.equal(sent.length + gap.total, 1000, 'each sample either sent or counted as dropped');
    const sentTs = new Set(sent.map((entry) => (entry.record as { ts: number }).ts));
    const left = (await queued(outbox)).ts.get('pump-1') ?? [];
    assert.equal(left.filter((ts) => !sentTs.has(ts)).length, 0, 'no sample is both counted as dropped and still on its way');
  });
});

describe('cloud side of the uplink on SQLite', () => {
  let dir: string;
  let db: SqliteDatabase;
  let edges: SqliteEdges;
  let directory: EdgeDirectory;
  beforeEach(async () => {
    dir = tempDir('thingloop-edges-');
    db = openDatabase(join(dir, 'cloud.db'));
    edges = new SqliteEdges(db);
    directory = new EdgeDirectory(edges, () => NOW);
    await directory.register({ id: 'site-1' });
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const gapRecord = (seq: number, total: number): SequencedRecord => ({
    seq,
    record: {
      kind: 'gap',
      gap: { policy: 'drop-oldest', at: NOW, devices: { 'pump-1': { dropped: total, from: NOW, to: NOW + total } }, total },
    },
  });

  test('a replayed batch is applied once: the gap is counted once', async () => {
    const batch = [gapRecord(1, 40), gapRecord(2, 2)];
    assert.equal((await directory.applyUplink('site-1', batch, () => undefined)).applied.length, 2);
    assert.equal((await directory.applyUplink('site-1', batch, () => undefined)).applied.length, 0);
    const edge = await directory.get('site-1');
    assert.equal(edge.appliedSeq, 2);
    assert.deepEqual({ reports: edge.gaps.reports, dropped: edge.gaps.dropped }, { reports: 2, dropped: 42 });
  });

  test('a status update racing a batch never undoes the gap or the mark the batch applied', async () => {
    // A heartbeat's write of a copy read before the batch, interleaved with the batch's commit.
    const stale = await directory.get('site-1');
    stale.lastContact = NOW;
    const heartbeat = edges.update(stale);
    const applied = edges.applyUplink('site-1', [gapRecord(1, 7)], () => undefined);
    await Promise.all([heartbeat, applied]);
    const edge = await directory.get('site-1');
    assert.equal(edge.lastContact, NOW, 'the heartbeat landed');
    assert.equal(edge.appliedSeq, 1);
    assert.deepEqual({ reports: edge.gaps.reports, dropped: edge.gaps.dropped }, { reports: 1, dropped: 7 });
    // And the other order: a stale copy written after the batch.
    await edges.update(stale);
    assert.deepEqual((await directory.get('site-1')).gaps.reports, 1);
  });
});
