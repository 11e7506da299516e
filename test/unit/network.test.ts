import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DomainError } from '../../src/errors/index.js';
import { NETWORK_KINDS, resolveNetworkProfile } from '../../src/registry/index.js';

describe('resolveNetworkProfile', () => {
  test('defaults to ethernet: streaming, not sleepy', () => {
    assert.deepEqual(resolveNetworkProfile(), { profile: 'ethernet', reportIntervalMs: 10_000, keepAliveMs: 60_000, sleepy: false });
  });
  test('NB-IoT is sleepy with PSM and eDRX and reports once per PSM period', () => {
    assert.deepEqual(resolveNetworkProfile({ profile: 'nbiot' }), {
      profile: 'nbiot',
      reportIntervalMs: 3_600_000,
      keepAliveMs: 1_200_000,
      sleepy: true,
      psmPeriodMs: 3_600_000,
      edrxCycleMs: 81_920,
    });
    const longer = resolveNetworkProfile({ profile: 'nbiot', psmPeriod: '6h' });
    assert.equal(longer.reportIntervalMs, 6 * 3_600_000, 'the report interval follows the PSM period');
    assert.equal(longer.psmPeriodMs, 6 * 3_600_000);
  });
  test('overrides accept durations as text or ms, and an explicit interval wins over the PSM period', () => {
    const profile = resolveNetworkProfile({
      profile: 'nbiot',
      reportInterval: '30m',
      psmPeriod: '2h',
      keepAlive: 90_000,
      edrxCycle: '20s',
    });
    assert.deepEqual(
      [profile.reportIntervalMs, profile.psmPeriodMs, profile.keepAliveMs, profile.edrxCycleMs],
      [1_800_000, 7_200_000, 90_000, 20_000],
    );
    assert.equal(resolveNetworkProfile({ profile: 'wifi', sleepy: true }).sleepy, true);
    assert.equal(resolveNetworkProfile({ profile: 'lpwan', sleepy: false }).sleepy, false);
  });
  test('always-on bearers are not sleepy; PSM fields appear only where they apply', () => {
    for (const kind of NETWORK_KINDS) {
      const profile = resolveNetworkProfile({ profile: kind });
      assert.equal(profile.sleepy, kind === 'nbiot' || kind === 'lpwan', kind);
      assert.equal('psmPeriodMs' in profile, kind === 'nbiot', kind);
      assert.ok(profile.reportIntervalMs > 0 && profile.keepAliveMs > 0, kind);
    }
  });
  test('refuses unknown profiles and bad durations with the field named', () => {
    assert.throws(
      () => resolveNetworkProfile({ profile: 'carrier-pigeon' as 'wifi' }),
      (error: DomainError) =>
        error instanceof DomainError && error.kind === 'invalid' && /network.profile must be one of/.test(error.message),
    );
    for (const [field, value] of [
      ['reportInterval', 'often'],
      ['reportInterval', '0s'],
      ['keepAlive', -5],
      ['psmPeriod', '1 fortnight'],
      ['edrxCycle', ''],
    ] as const) {
      assert.throws(
        () => resolveNetworkProfile({ profile: 'nbiot', [field]: value }),
        (error: Error) => error.message.startsWith(`network.${field} must be a positive duration`),
        `${field}=${JSON.stringify(value)}`,
      );
    }
  });
});
