import type { JsonValue } from '../telemetry/index.js';
import type { AgentMode } from './definition.js';

export type DecisionOutcome = 'executed' | 'refused' | 'shadow' | 'awaiting-approval' | 'rejected' | 'expired' | 'failed';

export interface PlannedAction {
  kind: 'set' | 'invoke';
  deviceId: string;
  property?: string;
  value?: JsonValue;
  /** The desired value before this write: what a rollback restores. */
  previous?: JsonValue | null;
  action?: string;
  input?: Record<string, JsonValue>;
  invocationId?: string;
  error?: string;
}

export interface Verification {
  expect: string;
  deadline: number;
  status: 'pending' | 'verified' | 'failed';
  attempts: number;
  checkedAt?: number;
  /** What was done after a failed verification: `retried`, `escalated`, `rolled-back`. */
  followUp: string[];
}

/**
 * Everything needed to answer "why did the platform do that?": what the agent saw, what it
 * concluded, what it did or refused and why, and whether the plant responded as expected.
 */
export interface DecisionRecord {
  id: string;
  agentId: string;
  deviceId: string;
  ts: number;
  mode: AgentMode;
  trigger: 'condition' | 'missing-data';
  inputs: {
    values: Record<string, { value: JsonValue; ts: number }>;
    windows: Record<string, number | null>;
    detectors: Record<string, { flagged: boolean; score: number | null }>;
    related: Record<string, string | null>;
  };
  judgment: { condition?: string; detectorsFlagged: string[]; summary: string };
  actions: PlannedAction[];
  safety: { passed: string[]; refused?: string };
  outcome: DecisionOutcome;
  approval?: { expiresAt: number; decidedBy?: string; decidedAt?: number; verdict?: 'approved' | 'rejected' | 'expired' };
  verification?: Verification;
  alarmId?: string;
}

export interface DecisionQuery {
  agentId?: string;
  deviceId?: string;
  outcome?: DecisionOutcome;
  from?: number;
  to?: number;
  limit: number;
}
