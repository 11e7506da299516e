import { stringify } from 'yaml';
import type {
  AgentDefinition,
  AgentMode,
  Alarm,
  DecisionOutcome,
  DecisionRecord,
  JsonValue,
  PlannedAction,
  Verification,
} from '../api/types';
import { formatSpan } from './format';

export const MODES: { mode: AgentMode; label: string; effect: string }[] = [
  { mode: 'auto', label: 'Auto', effect: 'acts on its own, within its safety envelope' },
  { mode: 'approve', label: 'Approve', effect: 'queues each decision for an operator to approve or reject' },
  { mode: 'shadow', label: 'Shadow', effect: 'only records what it would have done; nothing is sent to devices' },
];

export const modeOf = (agent: AgentDefinition): AgentMode => agent.mode ?? 'auto';
export const enabledOf = (agent: AgentDefinition): boolean => agent.enabled ?? true;

/** What the agent watches, in a few words. */
export function scopeOf(agent: AgentDefinition): string {
  const devices = agent.perceive.devices;
  const parts: string[] = [];
  if (devices.ids) parts.push(devices.ids.length === 1 ? `device ${devices.ids[0]}` : `${devices.ids.length} devices`);
  if (devices.model) parts.push(`model ${devices.model}`);
  for (const [key, value] of Object.entries(devices.attributes ?? {})) parts.push(`${key} = ${String(value)}`);
  return parts.length ? parts.join(', ') : 'every device';
}

const show = (value: JsonValue | undefined): string => (typeof value === 'string' ? value : JSON.stringify(value ?? null));

/** One planned action as a sentence: what would be (or was) done to which device. */
export function describeAction(action: PlannedAction): string {
  if (action.kind === 'set') {
    const was = action.previous === undefined || action.previous === null ? '' : ` (desired was ${show(action.previous)})`;
    return `Set ${action.property ?? '?'} of ${action.deviceId} to ${show(action.value)}${was}`;
  }
  const input = action.input && Object.keys(action.input).length > 0 ? ` with ${JSON.stringify(action.input)}` : '';
  return `Invoke ${action.action ?? '?'} on ${action.deviceId}${input}`;
}

/** "expires in 14 min" or "expired 3 min ago", relative to `now`. */
export function expiryText(expiresAt: number, now: number): string {
  const left = expiresAt - now;
  if (left <= 0) return `expired ${formatSpan(-left)} ago`;
  return `expires in ${formatSpan(left)}`;
}

/** Badge class for a decision outcome (reuses the console's status colours). */
export function outcomeTone(outcome: DecisionOutcome | string): string {
  switch (outcome) {
    case 'executed':
      return 'succeeded';
    case 'awaiting-approval':
      return 'queued';
    case 'refused':
    case 'failed':
    case 'rejected':
    case 'expired':
      return 'failed';
    default:
      return 'neutral';
  }
}

/** A verification's status as people say it: `re-opened` for an effect lost after it was verified. */
export function verificationText(verification: Pick<Verification, 'status' | 'holding'>, now: number): string {
  switch (verification.status) {
    case 'holding':
      return verification.holding && verification.holding.until > now
        ? `holding (${formatSpan(verification.holding.until - now)} to go)`
        : 'holding';
    case 'reopened':
      return 're-opened';
    default:
      return verification.status;
  }
}

/** Badge class for a verification status: only a verified effect is green. */
export function verificationTone(status: Verification['status']): string {
  if (status === 'verified') return 'succeeded';
  if (status === 'failed' || status === 'reopened') return 'failed';
  return 'queued';
}

/** The outcome with who decided, when there was an approval: "executed (approved by api)". */
export function outcomeText(decision: Pick<DecisionRecord, 'outcome' | 'approval'>): string {
  const approval = decision.approval;
  if (!approval?.verdict) return decision.outcome;
  const by = approval.decidedBy ? ` by ${approval.decidedBy}` : '';
  return decision.outcome === approval.verdict ? `${decision.outcome}${by}` : `${decision.outcome} (${approval.verdict}${by})`;
}

export interface DecisionFilter {
  device?: string;
  outcome?: string;
  limit?: number;
}

export function decisionsPath(agentId: string, filter: DecisionFilter = {}): string {
  const params = new URLSearchParams({ limit: String(filter.limit ?? 50) });
  if (filter.device?.trim()) params.set('device', filter.device.trim());
  if (filter.outcome) params.set('outcome', filter.outcome);
  return `/api/v1/agents/${encodeURIComponent(agentId)}/decisions?${params}`;
}

/** The API lists newest first already; this keeps the log in that order whatever arrives. */
export function newestFirst<T extends { ts: number }>(items: T[]): T[] {
  return [...items].sort((a, b) => b.ts - a.ts);
}

const SEVERITY_ORDER = ['critical', 'major', 'minor', 'warning'];
const severityRank = (severity: string) => {
  const index = SEVERITY_ORDER.indexOf(severity);
  return index === -1 ? SEVERITY_ORDER.length : index;
};

/** Open alarms as an operator reads them: unacknowledged first, then by severity, then newest. */
export function sortOpenAlarms(alarms: Alarm[]): Alarm[] {
  return [...alarms].sort(
    (a, b) =>
      Number(a.state !== 'active') - Number(b.state !== 'active') ||
      severityRank(a.severity) - severityRank(b.severity) ||
      b.lastRaisedAt - a.lastRaisedAt,
  );
}

/** Counts of open alarms per severity, most severe first, only severities present. */
export function countBySeverity(alarms: Alarm[]): { severity: string; count: number }[] {
  const counts = new Map<string, number>();
  for (const alarm of alarms) counts.set(alarm.severity, (counts.get(alarm.severity) ?? 0) + 1);
  return [...counts.entries()]
    .map(([severity, count]) => ({ severity, count }))
    .sort((a, b) => severityRank(a.severity) - severityRank(b.severity));
}

export type DefinitionFormat = 'yaml' | 'json';

export function formatDefinition(agent: AgentDefinition, format: DefinitionFormat): string {
  return format === 'json' ? JSON.stringify(agent, null, 2) : stringify(agent, { lineWidth: 100 });
}

/** Open alarms (active and acknowledged) for the active view, every state for the history. */
export function alarmsPath(view: 'active' | 'history', options: { limit?: number; before?: number } = {}): string {
  const params = new URLSearchParams({ state: view === 'active' ? 'open' : 'all', limit: String(options.limit ?? 100) });
  if (options.before !== undefined) params.set('before', String(options.before));
  return `/api/v1/alarms?${params}`;
}
