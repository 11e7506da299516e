import type {
  DeviceSummary,
  EdgeConfigView,
  EdgeHeartbeat,
  EdgeStatus,
  GapReport,
  PresenceSplit,
  PresenceStatus,
  ReconcileResult,
} from '../api/types';
import { formatSpan } from './format';

/** Heartbeats come every 10 s; three missed ones make the capacity figures stale. */
export const HEARTBEAT_STALE_MS = 30_000;

export type LinkState = 'online' | 'offline' | 'never';

/** The edge ↔ cloud link: up now, down (it was seen before) or never connected since registration. */
export function linkState(edge: Pick<EdgeStatus, 'connected' | 'lastContact'>): LinkState {
  if (edge.connected) return 'online';
  return edge.lastContact === null ? 'never' : 'offline';
}

export const LINK_LABEL: Record<LinkState, string> = { online: 'online', offline: 'offline', never: 'never connected' };

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Math.max(0, bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}

export function formatRate(perSecond: number | null | undefined): string {
  if (perSecond === null || perSecond === undefined || !Number.isFinite(perSecond)) return '—';
  return `${perSecond >= 100 ? Math.round(perSecond) : perSecond.toFixed(1)} records/s`;
}

export interface BacklogView {
  records: number;
  /** Records waiting in the edge's outbox, with their size and the age of the oldest. */
  text: string;
  /** True when nothing is waiting. */
  empty: boolean;
  /** No heartbeat has arrived yet: the backlog is unknown. */
  unknown: boolean;
}

/** The backlog comes with each heartbeat: while the link is down it is the last one reported. */
export function backlog(edge: Pick<EdgeStatus, 'backlog' | 'connected'>): BacklogView {
  const b = edge.backlog;
  if (!b) return { records: 0, text: 'unknown (no heartbeat yet)', empty: false, unknown: true };
  const last = edge.connected ? '' : ' when last reported';
  if (b.records === 0) return { records: 0, text: `empty${last}`, empty: true, unknown: false };
  const age = b.oldestTs ? `, oldest ${formatSpan(Math.max(0, b.ageMs))}` : '';
  return {
    records: b.records,
    text: `${b.records} record${b.records === 1 ? '' : 's'} (${formatBytes(b.bytes)})${age}${last}`,
    empty: false,
    unknown: false,
  };
}

export interface Gauge {
  label: string;
  text: string;
  /** 0–100, or undefined when the edge could not measure it. */
  percent?: number;
  /** At or above 90 %: worth an operator's eye. */
  high: boolean;
}

const HIGH = 90;

function gauge(label: string, used: number, total: number): Gauge {
  if (!(total > 0)) return { label, text: 'not measured', high: false };
  const percent = Math.min(100, Math.max(0, (used / total) * 100));
  return { label, text: `${formatBytes(used)} of ${formatBytes(total)} (${Math.round(percent)} %)`, percent, high: percent >= HIGH };
}

/** CPU, memory and disk from the last heartbeat, as figures an operator reads at a glance. */
export function capacity(heartbeat: EdgeHeartbeat): { cpu: Gauge; memory: Gauge; disk: Gauge; accelerators: string } {
  const cpuPercent = Number.isFinite(heartbeat.cpuPercent) ? heartbeat.cpuPercent : undefined;
  return {
    cpu:
      cpuPercent === undefined
        ? { label: 'CPU', text: 'not measured', high: false }
        : { label: 'CPU', text: `${cpuPercent.toFixed(1)} %`, percent: cpuPercent, high: cpuPercent >= HIGH },
    memory: gauge('Memory', heartbeat.memory.usedBytes, heartbeat.memory.totalBytes),
    disk: gauge('Disk', heartbeat.disk.totalBytes - heartbeat.disk.freeBytes, heartbeat.disk.totalBytes),
    accelerators: heartbeat.accelerators.length > 0 ? heartbeat.accelerators.join(', ') : 'none',
  };
}

export function heartbeatStale(heartbeat: EdgeHeartbeat | null, now = Date.now()): boolean {
  return heartbeat === null || now - heartbeat.at > HEARTBEAT_STALE_MS;
}

/** What each outbox policy removed when the quota was exceeded. */
export const GAP_POLICY: Record<GapReport['policy'], { label: string; effect: string }> = {
  'drop-oldest': { label: 'drop oldest', effect: 'every sample in each time range below' },
  downsample: { label: 'downsample', effect: 'every other sample in each time range below' },
};

/**
 * A span of time as one readable range: the date once when both ends fall on the same day, and
 * the length. `locale` is for tests; the console uses the browser's.
 */
export function formatTimeRange(from: number, to: number, locale?: string): string {
  const start = new Date(Math.min(from, to));
  const end = new Date(Math.max(from, to));
  const first = start.toLocaleString(locale);
  if (end.getTime() === start.getTime()) return first;
  const sameDay = start.toDateString() === end.toDateString();
  const last = sameDay ? end.toLocaleTimeString(locale) : end.toLocaleString(locale);
  const length = end.getTime() - start.getTime();
  return `${first} – ${last} (${length < 1000 ? 'under 1 s' : formatSpan(length)})`;
}

export interface GapDeviceRow {
  deviceId: string;
  dropped: number;
  /** Device events lost (only when telemetry alone could not make room). */
  events: number;
  /** The time range the lost samples covered. */
  range: string;
}

/** One row per device of a gap report: the most samples lost first, then by id. */
export function gapDevices(report: Pick<GapReport, 'devices'>, locale?: string): GapDeviceRow[] {
  return Object.entries(report.devices)
    .map(([deviceId, gap]) => ({
      deviceId,
      dropped: gap.dropped,
      events: gap.events ?? 0,
      range: formatTimeRange(gap.from, gap.to, locale),
    }))
    .sort((a, b) => b.dropped - a.dropped || a.deviceId.localeCompare(b.deviceId));
}

/** "12 samples from 3 devices" (", and 4 events" when events went too): what one report lost. */
export function gapSummary(report: Pick<GapReport, 'devices' | 'total' | 'events'>): string {
  const devices = Object.keys(report.devices).length;
  const events = report.events ?? 0;
  const samples = report.total - events;
  const lost = `${samples} sample${samples === 1 ? '' : 's'} from ${devices} device${devices === 1 ? '' : 's'}`;
  return events > 0 ? `${lost}, and ${events} event${events === 1 ? '' : 's'}` : lost;
}

/** The device ids a refused decommission (409) names in `details.devices`. */
export function attachedDevices(details: unknown): string[] {
  const devices = details && typeof details === 'object' ? (details as { devices?: unknown }).devices : undefined;
  return Array.isArray(devices) ? devices.filter((d): d is string => typeof d === 'string') : [];
}

export type ConfigState = 'in-sync' | 'pending' | 'failed' | 'never-applied';

export interface ConfigSummary {
  state: ConfigState;
  failed: number;
  text: string;
}

/** Desired against applied configuration version, and whether any item of the last apply failed. */
export function configSummary(config: Pick<EdgeStatus['config'], 'desiredVersion' | 'appliedVersion' | 'results'>): ConfigSummary {
  const failed = config.results.filter((r) => r.status === 'failed').length;
  const versions = `desired v${config.desiredVersion}, applied ${config.appliedVersion === null ? 'none' : `v${config.appliedVersion}`}`;
  const failures = failed > 0 ? `, ${failed} item${failed === 1 ? '' : 's'} failed` : '';
  if (config.appliedVersion === null) return { state: 'never-applied', failed, text: `${versions}: not applied yet` };
  if (failed > 0) return { state: 'failed', failed, text: `${versions}${failures}` };
  if (config.appliedVersion < config.desiredVersion) return { state: 'pending', failed, text: `${versions}: update pending` };
  return { state: 'in-sync', failed, text: `${versions}: in sync` };
}

export const CONFIG_LABEL: Record<ConfigState, string> = {
  'in-sync': 'in sync',
  pending: 'pending',
  failed: 'failures',
  'never-applied': 'not applied',
};

export type ItemStatus = 'applied' | 'unchanged' | 'failed' | 'pending' | string;

export interface ConfigItem {
  kind: ReconcileResult['kind'];
  id: string;
  /** What the cloud wants, in a few words; empty for removals the edge made on its own. */
  desired: string;
  status: ItemStatus;
  reason?: string;
}

const KIND_ORDER = ['model', 'device', 'agent', 'desired', 'removal'];

/**
 * One row per desired item (models, devices, agents, desired values) with the edge's result for
 * it, plus removals the edge reported. Items without a result are pending; failures sort first.
 */
export function configItems(view: EdgeConfigView): ConfigItem[] {
  const results = new Map(view.applied.results.map((r) => [`${r.kind}:${r.id}`, r]));
  const seen = new Set<string>();
  const item = (kind: ConfigItem['kind'], id: string, desired: string): ConfigItem => {
    const key = `${kind}:${id}`;
    seen.add(key);
    const result = results.get(key);
    return {
      kind,
      id,
      desired,
      status: result?.status ?? 'pending',
      ...(result?.reason ? { reason: result.reason } : {}),
    };
  };
  const items: ConfigItem[] = [
    ...view.desired.models.map((m) => item('model', `${m.id}@${m.version}`, `model ${m.id} version ${m.version}`)),
    ...view.desired.devices.map((d) =>
      item('device', String(d.record.id), [d.record.name, d.record.model].filter((part) => typeof part === 'string' && part).join(', ')),
    ),
    ...view.desired.agents.map((a) => item('agent', String(a.id), typeof a.name === 'string' ? a.name : '')),
    ...view.desired.desired.map((d) =>
      item(
        'desired',
        d.deviceId,
        Object.entries(d.values)
          .map(([key, value]) => `${key} = ${JSON.stringify(value)}`)
          .join(', '),
      ),
    ),
  ];
  for (const result of view.applied.results) {
    if (!seen.has(`${result.kind}:${result.id}`))
      items.push({
        kind: result.kind,
        id: result.id,
        desired: '',
        status: result.status,
        ...(result.reason ? { reason: result.reason } : {}),
      });
  }
  const rank = (kind: string) => {
    const index = KIND_ORDER.indexOf(kind);
    return index === -1 ? KIND_ORDER.length : index;
  };
  return items.sort(
    (a, b) => Number(b.status === 'failed') - Number(a.status === 'failed') || rank(a.kind) - rank(b.kind) || a.id.localeCompare(b.id),
  );
}

export interface Topology {
  /** Devices talking to the cloud directly; undefined until the fleet summary has arrived. */
  direct?: PresenceSplit;
  /** Each edge with the devices it serves; `devices` is undefined until the fleet summary has arrived. */
  edges: { edge: EdgeStatus; devices?: PresenceSplit }[];
}

const NO_DEVICES: PresenceSplit = { total: 0, online: 0, asleep: 0, offline: 0, unknown: 0 };

/**
 * The terminal–edge–cloud picture: each edge with the devices it serves, and the devices talking
 * to the cloud directly, all from one fleet summary. The summary leaves out edges that serve no
 * device, so those get an empty split rather than looking uncounted.
 */
export function topology(edges: EdgeStatus[], summary: Pick<DeviceSummary, 'byEdge' | 'direct'> | undefined): Topology {
  const rows = [...edges]
    .sort((a, b) => a.id.localeCompare(b.id))
    .map((edge) => ({
      edge,
      ...(summary ? { devices: Object.hasOwn(summary.byEdge, edge.id) ? summary.byEdge[edge.id] : NO_DEVICES } : {}),
    }));
  return { edges: rows, ...(summary ? { direct: summary.direct } : {}) };
}

export const PRESENCE_ORDER: readonly PresenceStatus[] = ['online', 'asleep', 'offline', 'unknown'];

export interface PresenceSplitView {
  /** "12 devices", or "No devices". */
  devices: string;
  /** The statuses that have devices, in order online, asleep, offline, unknown: "9 online". */
  parts: { status: PresenceStatus; count: number; text: string }[];
  /** All of it in one line: "12 devices: 9 online · 2 asleep · 1 offline". */
  text: string;
}

export function devicesText(count: number): string {
  return count === 0 ? 'No devices' : `${count} device${count === 1 ? '' : 's'}`;
}

/** A group of devices as an operator reads it; statuses without devices are left out to keep the line short. */
export function presenceSplit(split: PresenceSplit): PresenceSplitView {
  const parts = PRESENCE_ORDER.filter((status) => split[status] > 0).map((status) => ({
    status,
    count: split[status],
    text: `${split[status]} ${status}`,
  }));
  const devices = devicesText(split.total);
  return { devices, parts, text: parts.length === 0 ? devices : `${devices}: ${parts.map((part) => part.text).join(' · ')}` };
}
