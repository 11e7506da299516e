import { describe, expect, it } from 'vitest';
import type { EdgeConfigView, EdgeHeartbeat, EdgeStatus, PresenceSplit } from '../api/types';
import {
  attachedDevices,
  backlog,
  capacity,
  configItems,
  configSummary,
  devicesText,
  formatBytes,
  formatTimeRange,
  gapDevices,
  gapSummary,
  heartbeatStale,
  linkState,
  presenceSplit,
  topology,
} from './edges';
import { parseRoute } from './router';

const GiB = 1024 ** 3;

function heartbeat(overrides: Partial<EdgeHeartbeat> = {}): EdgeHeartbeat {
  return {
    at: 1_000_000,
    cpuPercent: 12.34,
    memory: { usedBytes: 4 * GiB, totalBytes: 16 * GiB, rssBytes: GiB / 4 },
    disk: { freeBytes: 5 * GiB, totalBytes: 100 * GiB },
    outbox: { records: 0, bytes: 0, oldestTs: null, lastSeq: 10, dropped: 0 },
    accelerators: [],
    drainRatePerSecond: 0,
    ...overrides,
  };
}

function edge(overrides: Partial<EdgeStatus> = {}): EdgeStatus {
  return {
    id: 'site-1',
    name: 'Site 1',
    createdAt: 0,
    appliedSeq: 0,
    lastContact: null,
    heartbeat: null,
    gaps: { reports: 0, dropped: 0, last: null },
    config: { desiredVersion: 1, desiredHash: null, appliedVersion: null, results: [] },
    applyRate: 0,
    connected: false,
    backlog: null,
    drainRate: 0,
    ...overrides,
  };
}

describe('edge link state', () => {
  it('is online when connected, offline once seen, never before the first contact', () => {
    expect(linkState({ connected: true, lastContact: 5 })).toBe('online');
    expect(linkState({ connected: false, lastContact: 5 })).toBe('offline');
    expect(linkState({ connected: false, lastContact: null })).toBe('never');
  });
});

describe('backlog and sizes', () => {
  it('formats bytes in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(300 * 1024 * 1024)).toBe('300 MiB');
    expect(formatBytes(null)).toBe('—');
  });

  it('says unknown without a heartbeat, empty with none waiting, and records with size and age otherwise', () => {
    expect(backlog(edge()).unknown).toBe(true);
    expect(backlog(edge({ connected: true, backlog: { records: 0, bytes: 0, oldestTs: null, ageMs: 0 } })).text).toBe('empty');
    const queued = { records: 1200, bytes: 2048, oldestTs: 1, ageMs: 125_000 };
    const view = backlog(edge({ connected: true, backlog: queued }));
    expect(view.records).toBe(1200);
    expect(view.text).toBe('1200 records (2.0 KiB), oldest 2 min');
    expect(backlog(edge({ connected: false, backlog: queued })).text).toBe('1200 records (2.0 KiB), oldest 2 min when last reported');
  });
});

describe('capacity', () => {
  it('turns a heartbeat into CPU, memory and disk figures, flagging 90 % and above', () => {
    const c = capacity(heartbeat({ accelerators: ['nvidia-gpu'] }));
    expect(c.cpu.text).toBe('12.3 %');
    expect(c.memory.text).toBe('4.0 GiB of 16.0 GiB (25 %)');
    expect(c.memory.high).toBe(false);
    expect(c.disk.percent).toBe(95);
    expect(c.disk.high).toBe(true);
    expect(c.accelerators).toBe('nvidia-gpu');
  });

  it('says "not measured" when the edge reported zero totals', () => {
    const c = capacity(heartbeat({ disk: { freeBytes: 0, totalBytes: 0 } }));
    expect(c.disk.text).toBe('not measured');
    expect(c.disk.percent).toBeUndefined();
    expect(c.accelerators).toBe('none');
  });

  it('calls a heartbeat stale after three missed beats', () => {
    expect(heartbeatStale(null)).toBe(true);
    expect(heartbeatStale(heartbeat({ at: 0 }), 10_000)).toBe(false);
    expect(heartbeatStale(heartbeat({ at: 0 }), 31_000)).toBe(true);
  });
});

describe('configuration status', () => {
  it('compares desired and applied versions and counts failures', () => {
    expect(configSummary({ desiredVersion: 2, appliedVersion: null, results: [] }).state).toBe('never-applied');
    expect(configSummary({ desiredVersion: 3, appliedVersion: 2, results: [] }).state).toBe('pending');
    expect(configSummary({ desiredVersion: 3, appliedVersion: 3, results: [] })).toEqual({
      state: 'in-sync',
      failed: 0,
      text: 'desired v3, applied v3: in sync',
    });
    const failed = configSummary({
      desiredVersion: 3,
      appliedVersion: 3,
      results: [{ kind: 'agent', id: 'a', status: 'failed', reason: 'bad' }],
    });
    expect(failed.state).toBe('failed');
    expect(failed.text).toBe('desired v3, applied v3, 1 item failed');
  });

  it('lists every desired item with its result: failures first with their reason, missing results pending', () => {
    const view: EdgeConfigView = {
      desired: {
        version: 4,
        models: [{ id: 'pump', version: 2, document: {} }],
        devices: [{ record: { id: 'pump-1', name: 'Pump 1', model: 'pump' } }, { record: { id: 'pump-2', name: 'Pump 2', model: 'pump' } }],
        agents: [{ id: 'cool', name: 'Cooling' }],
        desired: [{ deviceId: 'pump-1', values: { speed: 40 }, setAt: { speed: 1 } }],
      },
      applied: {
        version: 3,
        results: [
          { kind: 'model', id: 'pump@2', status: 'unchanged' },
          { kind: 'device', id: 'pump-1', status: 'applied' },
          { kind: 'agent', id: 'cool', status: 'failed', reason: 'unknown property "temp"' },
          { kind: 'desired', id: 'pump-1', status: 'applied' },
          { kind: 'removal', id: 'old-9', status: 'applied' },
        ],
      },
    };
    const items = configItems(view);
    expect(items.map((i) => `${i.kind}:${i.id}:${i.status}`)).toEqual([
      'agent:cool:failed',
      'model:pump@2:unchanged',
      'device:pump-1:applied',
      'device:pump-2:pending',
      'desired:pump-1:applied',
      'removal:old-9:applied',
    ]);
    expect(items[0]?.reason).toBe('unknown property "temp"');
    expect(items[0]?.desired).toBe('Cooling');
    expect(items.find((i) => i.kind === 'desired')?.desired).toBe('speed = 40');
    expect(items.find((i) => i.id === 'pump-2')?.desired).toBe('Pump 2, pump');
  });
});

describe('topology', () => {
  const split = (online: number, asleep: number, offline: number, unknown: number): PresenceSplit => ({
    total: online + asleep + offline + unknown,
    online,
    asleep,
    offline,
    unknown,
  });

  it('places each edge with its presence split and the direct devices on the cloud, all from the fleet summary', () => {
    // "constructor" serves no device: it must not pick up what every object inherits under that name.
    const edges = [edge({ id: 'b' }), edge({ id: 'a' }), edge({ id: 'idle' }), edge({ id: 'constructor' })];
    const picture = topology(edges, { byEdge: { a: split(9, 2, 1, 0), b: split(0, 0, 0, 4) }, direct: split(3, 0, 0, 0) });
    expect(picture.edges.map((e) => [e.edge.id, e.devices?.total])).toEqual([
      ['a', 12],
      ['b', 4],
      ['constructor', 0],
      ['idle', 0],
    ]);
    expect(picture.edges[0]?.devices).toEqual(split(9, 2, 1, 0));
    expect(picture.edges[2]?.devices).toEqual(split(0, 0, 0, 0));
    expect(picture.edges[3]?.devices).toEqual(split(0, 0, 0, 0));
    expect(picture.direct).toEqual(split(3, 0, 0, 0));
  });

  it('leaves every count out until the summary arrives', () => {
    const picture = topology([edge({ id: 'a' })], undefined);
    expect(picture.direct).toBeUndefined();
    expect(picture.edges[0]?.devices).toBeUndefined();
  });
});

describe('presence split', () => {
  it('reads as one line, in the order online, asleep, offline, unknown, leaving out empty statuses', () => {
    const view = presenceSplit({ total: 12, online: 9, asleep: 2, offline: 1, unknown: 0 });
    expect(view.text).toBe('12 devices: 9 online · 2 asleep · 1 offline');
    expect(view.devices).toBe('12 devices');
    expect(view.parts).toEqual([
      { status: 'online', count: 9, text: '9 online' },
      { status: 'asleep', count: 2, text: '2 asleep' },
      { status: 'offline', count: 1, text: '1 offline' },
    ]);
  });

  it('says one device in the singular, and no devices without a split', () => {
    expect(presenceSplit({ total: 1, online: 0, asleep: 0, offline: 0, unknown: 1 }).text).toBe('1 device: 1 unknown');
    const empty = presenceSplit({ total: 0, online: 0, asleep: 0, offline: 0, unknown: 0 });
    expect(empty.text).toBe('No devices');
    expect(empty.parts).toEqual([]);
    expect(devicesText(2)).toBe('2 devices');
  });
});

describe('gap reports', () => {
  // Local times, so that "the same day" does not depend on the machine's time zone.
  const at = (h: number, m: number, s: number, day = 1) => new Date(2024, 4, day, h, m, s).getTime();

  it('writes a time range with the date once when it is one day, and its length', () => {
    expect(formatTimeRange(at(10, 0, 0), at(10, 2, 30), 'en-GB')).toBe('01/05/2024, 10:00:00 – 10:02:30 (2 min)');
    expect(formatTimeRange(at(23, 0, 0), at(1, 0, 0, 2), 'en-GB')).toBe('01/05/2024, 23:00:00 – 02/05/2024, 01:00:00 (2 h 0 min)');
    expect(formatTimeRange(at(10, 0, 0), at(10, 0, 0), 'en-GB')).toBe('01/05/2024, 10:00:00');
    expect(formatTimeRange(at(10, 0, 0), at(10, 0, 0) + 400, 'en-GB')).toBe('01/05/2024, 10:00:00 – 10:00:00 (under 1 s)');
    // Reversed ends still read oldest first.
    expect(formatTimeRange(at(10, 2, 30), at(10, 0, 0), 'en-GB')).toBe('01/05/2024, 10:00:00 – 10:02:30 (2 min)');
  });

  it('lists the devices of a report with the most samples lost first, and sums it up', () => {
    const report = {
      policy: 'drop-oldest' as const,
      at: at(11, 0, 0),
      total: 13,
      devices: {
        'pump-2': { dropped: 3, from: at(10, 0, 0), to: at(10, 0, 2) },
        'pump-1': { dropped: 7, from: at(10, 0, 0), to: at(10, 1, 0) },
        'pump-0': { dropped: 3, from: at(10, 0, 0), to: at(10, 0, 0) },
      },
    };
    expect(gapDevices(report, 'en-GB')).toEqual([
      { deviceId: 'pump-1', dropped: 7, events: 0, range: '01/05/2024, 10:00:00 – 10:01:00 (1 min)' },
      { deviceId: 'pump-0', dropped: 3, events: 0, range: '01/05/2024, 10:00:00' },
      { deviceId: 'pump-2', dropped: 3, events: 0, range: '01/05/2024, 10:00:00 – 10:00:02 (2 s)' },
    ]);
    expect(gapSummary(report)).toBe('13 samples from 3 devices');
    expect(gapSummary({ total: 1, devices: { a: { dropped: 1, from: 0, to: 0 } } })).toBe('1 sample from 1 device');
  });

  it('counts device events apart from samples when a report dropped some', () => {
    const report = { total: 7, events: 2, devices: { a: { dropped: 5, events: 2, from: 0, to: 0 } } };
    expect(gapSummary(report)).toBe('5 samples from 1 device, and 2 events');
    expect(gapDevices(report, 'en-GB')[0]?.events).toBe(2);
  });
});

describe('decommission refusal', () => {
  it('reads the attached devices from the 409 details, ignoring anything else', () => {
    expect(attachedDevices({ devices: ['v-1', 'v-2'] })).toEqual(['v-1', 'v-2']);
    expect(attachedDevices({ devices: ['v-1', 3, null] })).toEqual(['v-1']);
    expect(attachedDevices(undefined)).toEqual([]);
    expect(attachedDevices({ devices: 'v-1' })).toEqual([]);
  });
});

describe('edge routes', () => {
  it('parses the list and detail paths', () => {
    expect(parseRoute('/edges', '')).toEqual({ name: 'edges' });
    expect(parseRoute('/edges/site%201', '')).toEqual({ name: 'edge', id: 'site 1' });
  });
});
