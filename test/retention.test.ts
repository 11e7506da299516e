/**
 * Telemetry retention in the SQLite store, on a real database file: `prune(before, live)`
 * removes samples older than the cut-off, keeps newer ones, and removes every sample of devices
 * that no longer exist. (The node runs it on an hourly timer; this tests the store directly.)
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { NodeMetrics } from '../src/observability/index.js';
import { type DeviceRecord, resolveNetworkProfile } from '../src/registry/index.js';
import { openDatabase, type SqliteDatabase, SqliteDevices, SqliteTelemetryStore } from '../src/store/sqlite/index.js';
import type { JsonValue, StoredValue } from '../src/telemetry/index.js';
import { tempDir } from './support/harness.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 5, 1);
const CUTOFF = NOW - 3 * DAY;
/** Sample times per device: two before the cut-off, one exactly on it, two after. */
const TIMES = [NOW - 10 * DAY, CUTOFF - 1, CUTOFF, NOW - DAY, NOW - 1000];

async function addDevice(devices: SqliteDevices, id: string, n: number): Promise<DeviceRecord> {
  return devices.insert(
    {
      id,
      name: id,
      model: 'pump',
      modelVersion: 1,
      code: `test/${id}`,
      ipv6: `fd00::${n.toString(16)}`,
      attributes: {},
      network: resolveNetworkProfile(),
      binding: { protocol: 'mqtt' },
      createdAt: NOW,
      updatedAt: NOW,
    },
    'not-a-real-hash',
  );
}

/** Values that differ per device and time, of two kinds (SQLite number and JSON text). */
const valuesAt = (device: DeviceRecord, ts: number): Record<string, JsonValue> => ({
  vibration: device.uid * 1000 + (ts % 997),
  mode: `${device.id}@${ts}`,
});

describe('SqliteTelemetryStore.prune (retention)', () => {
  let dir: string;
  let file: string;
  let db: SqliteDatabase;
  let devices: SqliteDevices;
  let store: SqliteTelemetryStore;

  const open = () => {
    db = openDatabase(file);
    devices = new SqliteDevices(db);
    store = new SqliteTelemetryStore(db, new NodeMetrics(() => 0));
  };
  const stored = async (device: DeviceRecord): Promise<StoredValue[]> =>
    (await store.raw({ deviceUid: device.uid, properties: ['mode', 'vibration'], from: 0, to: NOW + DAY, limit: 10_000 })).items;
  const expected = (device: DeviceRecord, times: number[]): StoredValue[] =>
    times.flatMap((ts) => {
      const values = valuesAt(device, ts);
      // raw() orders by (ts, arrival, property name).
      return [
        { property: 'mode', ts, value: values.mode as JsonValue },
        { property: 'vibration', ts, value: values.vibration as JsonValue },
      ];
    });
  const rows = (sql: string): number => (db.prepare<[], { n: number }>(sql).get() as { n: number }).n;

  beforeEach(() => {
    dir = tempDir('thingloop-retention-');
    file = join(dir, 'thingloop.db');
    open();
  });
  afterEach(() => {
    if (db.open) db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('removes samples older than the cut-off, keeps the rest, and drops every sample of deleted devices', async () => {
    const kept = await addDevice(devices, 'pump-kept', 1);
    const other = await addDevice(devices, 'pump-other', 2);
    const deleted = await addDevice(devices, 'pump-deleted', 3);
    for (const device of [kept, other, deleted]) {
      await store.append(TIMES.map((ts) => ({ deviceId: device.id, deviceUid: device.uid, ts, values: valuesAt(device, ts) })));
    }
    assert.equal(rows('SELECT count(*) AS n FROM telemetry'), 3 * TIMES.length);
    assert.equal(await devices.delete(deleted.id), true);

    const removed = await store.prune(CUTOFF, async () => devices.liveUids());
    // Two old samples for each live device; every sample of the deleted one.
    assert.equal(removed, 2 * 2 + TIMES.length);

    const newer = TIMES.filter((ts) => ts >= CUTOFF);
    assert.deepEqual(await stored(kept), expected(kept, newer), 'a value exactly at the cut-off is kept');
    assert.deepEqual(await stored(other), expected(other, newer));
    assert.deepEqual(await stored(deleted), []);
    assert.equal(rows(`SELECT count(*) AS n FROM telemetry WHERE device_uid = ${deleted.uid}`), 0, "the deleted device's samples are gone");

    // It is on disk: a fresh connection to the file sees the same.
    db.close();
    open();
    assert.deepEqual(await stored(kept), expected(kept, newer));
    assert.equal(rows('SELECT count(*) AS n FROM telemetry'), 2 * newer.length);

    // A second sweep with the same cut-off has nothing left to do; new values still go in.
    assert.equal(await store.prune(CUTOFF, async () => devices.liveUids()), 0);
    await store.append([{ deviceId: kept.id, deviceUid: kept.uid, ts: NOW, values: valuesAt(kept, NOW) }]);
    assert.deepEqual(await stored(kept), expected(kept, [...newer, NOW]));
  });

  test('a later cut-off removes more; nothing newer than it is touched', async () => {
    const device = await addDevice(devices, 'pump-1', 1);
    await store.append(TIMES.map((ts) => ({ deviceId: device.id, deviceUid: device.uid, ts, values: valuesAt(device, ts) })));
    const live = async () => devices.liveUids();
    assert.equal(await store.prune(NOW - 20 * DAY, live), 0, 'nothing is that old');
    assert.deepEqual(await stored(device), expected(device, TIMES));
    assert.equal(await store.prune(CUTOFF, live), 2);
    assert.equal(await store.prune(NOW - 500, live), 3);
    assert.deepEqual(await stored(device), []);
    await store.append([{ deviceId: device.id, deviceUid: device.uid, ts: NOW, values: valuesAt(device, NOW) }]);
    assert.deepEqual(await stored(device), expected(device, [NOW]), 'a live device keeps reporting after a full prune');
  });

  test('a sample of a deleted device committed while the sweep runs is removed by the next sweep', async () => {
    const deleted = await addDevice(devices, 'pump-deleted', 1);
    const live = await addDevice(devices, 'pump-live', 2);
    await store.append([{ deviceId: deleted.id, deviceUid: deleted.uid, ts: NOW - DAY, values: valuesAt(deleted, NOW - DAY) }]);
    await store.append([{ deviceId: live.id, deviceUid: live.uid, ts: NOW - DAY, values: valuesAt(live, NOW - DAY) }]);
    await devices.delete(deleted.id);

    const sweep = store.prune(CUTOFF, async () => devices.liveUids());
    // A message from the deleted device that was already in the pipeline lands mid-sweep.
    const late = store.append([{ deviceId: deleted.id, deviceUid: deleted.uid, ts: NOW, values: valuesAt(deleted, NOW) }]);
    await Promise.all([sweep, late]);

    await store.prune(CUTOFF, async () => devices.liveUids());
    assert.deepEqual(await stored(deleted), []);
    assert.equal(rows(`SELECT count(*) AS n FROM telemetry WHERE device_uid = ${deleted.uid}`), 0);
    assert.deepEqual(await stored(live), expected(live, [NOW - DAY]));
  });

  test('samples with the same timestamp are all kept, in arrival order', async () => {
    // A server-stamped timestamp is only millisecond-precise: two samples can share one.
    const device = await addDevice(devices, 'pump-1', 1);
    const ts = NOW - 1000;
    await store.append([
      { deviceId: device.id, deviceUid: device.uid, ts, values: { vibration: 1 } },
      { deviceId: device.id, deviceUid: device.uid, ts, values: { vibration: 2 } },
    ]);
    await store.append([{ deviceId: device.id, deviceUid: device.uid, ts, values: { vibration: 3 } }]);
    assert.deepEqual(
      (await stored(device)).map((v) => v.value),
      [1, 2, 3],
    );
  });
});
