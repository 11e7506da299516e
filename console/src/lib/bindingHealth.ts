import type { BindingHealth, Device } from '../api/types';
import { formatAgo, formatTime } from './format';

/** One fact on the device page's binding card: a label and its text. */
export interface BindingFact {
  label: string;
  text: string;
}

const STATE_TEXT: Record<BindingHealth['state'], string> = {
  connected: 'connected (a live session or link)',
  polling: 'polling (the node reads it on a schedule)',
  unreachable: 'unreachable (reads or the session fail)',
  idle: 'idle (nothing heard yet)',
};

export const bindingPath = (deviceId: string) => `/api/v1/devices/${encodeURIComponent(deviceId)}/binding`;

/** The addressing parameters as `name=value`, in the order the registration gave them (`protocol` is shown on its own). */
export function bindingParameters(device: Device): string {
  const { protocol: _protocol, ...parameters } = device.binding;
  const entries = Object.entries(parameters);
  return entries.length === 0 ? '—' : entries.map(([name, value]) => `${name}=${String(value)}`).join(', ');
}

/** A latency as an operator reads it: sub-millisecond reads are not 0 ms. */
export function formatLatency(ms: number | null): string {
  if (ms === null) return '— (the device pushes)';
  if (ms < 1) return '< 1 ms';
  return ms < 100 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

/** What the binding card shows, in order. */
export function bindingFacts(device: Device, health: BindingHealth, now = Date.now()): BindingFact[] {
  const facts: BindingFact[] = [
    { label: 'Protocol', text: health.protocol },
    { label: 'Addressing', text: bindingParameters(device) },
    { label: 'State', text: STATE_TEXT[health.state] ?? health.state },
    {
      label: 'Last good read',
      text: health.lastGoodReadTs === null ? 'never' : `${formatTime(health.lastGoodReadTs)} (${formatAgo(health.lastGoodReadTs, now)})`,
    },
    { label: 'Poll latency', text: formatLatency(health.latencyMs) },
    { label: 'Errors', text: String(health.errors) },
  ];
  if (health.lastError) {
    facts.push({ label: 'Last error', text: `${health.lastError.message} (${formatAgo(health.lastError.ts, now)})` });
  }
  return facts;
}
