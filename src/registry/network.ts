import { invalid } from '../errors/index.js';
import { parseDuration } from '../time/index.js';

/** How a device reaches the platform; it decides reporting, keep-alive and sleep. */
export type NetworkKind = 'ethernet' | 'wifi' | 'cat1' | 'redcap' | 'nbiot' | 'lpwan';

export interface NetworkProfile {
  profile: NetworkKind;
  /** How often the device is expected to report (ms). */
  reportIntervalMs: number;
  /** MQTT keep-alive the device should use (ms). */
  keepAliveMs: number;
  /** Sleepy devices are unreachable between wake windows: downlink waits for them. */
  sleepy: boolean;
  /** NB-IoT Power Saving Mode periodic TAU (T3412 extended), when set. */
  psmPeriodMs?: number;
  /** NB-IoT / LTE-M extended DRX cycle, when set. */
  edrxCycleMs?: number;
  /** This device's bound on pending actions, when it differs from the default (see `pendingActionLimit`). */
  maxPendingActions?: number;
}

/** What a registration may say: a profile name and any override, durations as `30s`/`1h` or ms. */
export interface NetworkProfileInput {
  profile: NetworkKind;
  reportInterval?: string | number;
  keepAlive?: string | number;
  sleepy?: boolean;
  psmPeriod?: string | number;
  edrxCycle?: string | number;
  maxPendingActions?: number;
}

// Defaults follow the bearer: wired and Wi-Fi devices stream; Cat.1 and RedCap are always-on
// cellular; NB-IoT with PSM and LPWAN wake, send, and sleep again.
const PROFILE_DEFAULTS: Record<NetworkKind, Omit<NetworkProfile, 'profile'>> = {
  ethernet: { reportIntervalMs: 10_000, keepAliveMs: 60_000, sleepy: false },
  wifi: { reportIntervalMs: 30_000, keepAliveMs: 60_000, sleepy: false },
  cat1: { reportIntervalMs: 60_000, keepAliveMs: 300_000, sleepy: false },
  redcap: { reportIntervalMs: 10_000, keepAliveMs: 120_000, sleepy: false },
  nbiot: { reportIntervalMs: 3_600_000, keepAliveMs: 1_200_000, sleepy: true, psmPeriodMs: 3_600_000, edrxCycleMs: 81_920 },
  lpwan: { reportIntervalMs: 900_000, keepAliveMs: 1_800_000, sleepy: true },
};

/**
 * How many actions may wait for one device (queued, or delivered and unanswered) unless its
 * profile says otherwise. A sleepy device drains a few per wake window; a queue far beyond that
 * only ages out, and an unbounded one made a node slow for everyone.
 */
export const DEFAULT_MAX_PENDING_ACTIONS = 1_000;

/**
 * The highest bound a profile may set. Admitting an action counts the device's open ones in an
 * index, so the cost of that count grows with the bound (about 0.2 ms at this one).
 */
export const MAX_PENDING_ACTIONS_CEILING = 10_000;

/** The bound on a device's pending actions; read at invoke time, so a changed default applies to every device not set explicitly. */
export const pendingActionLimit = (network: NetworkProfile): number => network.maxPendingActions ?? DEFAULT_MAX_PENDING_ACTIONS;

export const NETWORK_KINDS = Object.keys(PROFILE_DEFAULTS) as NetworkKind[];

export const DEFAULT_NETWORK: NetworkProfileInput = { profile: 'ethernet' };

function durationOf(field: string, value: string | number | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0)
    throw invalid(`network.${field} must be a positive duration like 30s or 1h; got ${JSON.stringify(value)}`);
  return ms;
}

/** Resolves a profile name plus overrides into the full profile the platform acts on. */
export function resolveNetworkProfile(input: NetworkProfileInput = DEFAULT_NETWORK): NetworkProfile {
  const defaults = PROFILE_DEFAULTS[input.profile];
  if (!defaults) throw invalid(`network.profile must be one of ${NETWORK_KINDS.join(', ')}; got ${JSON.stringify(input.profile)}`);
  const psmPeriodMs = durationOf('psmPeriod', input.psmPeriod) ?? defaults.psmPeriodMs;
  const resolved: NetworkProfile = {
    profile: input.profile,
    // A PSM device reports once per PSM period unless told otherwise.
    reportIntervalMs: durationOf('reportInterval', input.reportInterval) ?? psmPeriodMs ?? defaults.reportIntervalMs,
    keepAliveMs: durationOf('keepAlive', input.keepAlive) ?? defaults.keepAliveMs,
    sleepy: input.sleepy ?? defaults.sleepy,
  };
  if (psmPeriodMs !== undefined) resolved.psmPeriodMs = psmPeriodMs;
  const edrx = durationOf('edrxCycle', input.edrxCycle) ?? defaults.edrxCycleMs;
  if (edrx !== undefined) resolved.edrxCycleMs = edrx;
  if (input.maxPendingActions !== undefined) {
    const bound = input.maxPendingActions;
    if (!Number.isInteger(bound) || bound < 1 || bound > MAX_PENDING_ACTIONS_CEILING) {
      throw invalid(
        `network.maxPendingActions must be a whole number from 1 to ${MAX_PENDING_ACTIONS_CEILING}; got ${JSON.stringify(bound)}`,
      );
    }
    resolved.maxPendingActions = bound;
  }
  return resolved;
}
