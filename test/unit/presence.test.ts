import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PRESENCE_GRACE, PresenceBook, presenceOf, resolveNetworkProfile } from '../../src/registry/index.js';

const HOUR = 3_600_000;
const sleepy = resolveNetworkProfile({ profile: 'nbiot', reportInterval: '1h' });
const wired = resolveNetworkProfile({ profile: 'ethernet', reportInterval: '10s' });

describe('presenceOf', () => {
  test('never seen is unknown; a live session is online whatever the profile', () => {
    assert.equal(presenceOf(wired, false, null, 0).status, 'unknown');
    assert.equal(presenceOf(sleepy, false, null, 0).status, 'unknown');
    assert.equal(presenceOf(sleepy, false, null, 0).nextWindowExpected, null);
    assert.equal(presenceOf(sleepy, true, 0, 10 * HOUR).status, 'online');
    assert.equal(presenceOf(wired, true, null, 0).status, 'online');
  });
  test('a sleepy device is asleep within its interval plus grace, then offline', () => {
    const last = 1_000_000;
    const limit = last + HOUR * (1 + PRESENCE_GRACE);
    assert.deepEqual(presenceOf(sleepy, false, last, last + 1), {
      status: 'asleep',
      connected: false,
      lastSeen: last,
      nextWindowExpected: last + HOUR,
    });
    assert.equal(presenceOf(sleepy, false, last, limit).status, 'asleep');
    assert.equal(presenceOf(sleepy, false, last, limit + 1).status, 'offline');
    assert.equal(presenceOf(sleepy, false, last, limit + 1).nextWindowExpected, last + HOUR);
  });
  test('a non-sleepy device never sleeps: recent uplink counts as online, silence beyond its interval as offline', () => {
    const last = 5_000;
    assert.equal(presenceOf(wired, false, last, last + 1000).status, 'online');
    assert.equal(presenceOf(wired, false, last, last + 10_000 * (1 + PRESENCE_GRACE) + 1).status, 'offline');
    assert.equal(presenceOf(wired, false, last, last + 1000).nextWindowExpected, null);
  });
});

describe('PresenceBook', () => {
  test('tracks sessions and last uplink; a fallback covers devices not seen since start', () => {
    const book = new PresenceBook();
    const device = { id: 'm', network: sleepy };
    assert.equal(book.of(device, 0).status, 'unknown');
    assert.equal(book.of(device, 100, 50).status, 'asleep', 'the fallback last-seen (e.g. stored telemetry) is used');
    book.opened('m', 100);
    assert.equal(book.of(device, 200).status, 'online');
    book.uplink('m', 300);
    book.closed('m', 400);
    assert.deepEqual(book.of(device, 500, 1), { status: 'asleep', connected: false, lastSeen: 400, nextWindowExpected: 400 + HOUR });
    book.forget('m');
    assert.equal(book.lastSeen('m'), null);
    assert.equal(book.of(device, 500).status, 'unknown');
  });
});
