import { type Static, Type } from '@sinclair/typebox';
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

/**
 * Where a verification stands. `pending`: waiting for the expectation to hold (until `deadline`);
 * `holding`: it holds and must keep holding until `holding.until`; `verified`: it held for the
 * whole hold (then watched until `watch.until`); `failed`: it never held long enough, after the
 * retries; `reopened`: it was verified, then broke within the watch, and the failure handling ran.
 */
export const VERIFICATION_STATUSES = ['pending', 'holding', 'verified', 'failed', 'reopened'] as const;
export type VerificationStatus = (typeof VERIFICATION_STATUSES)[number];

const Observed = Type.Record(
  Type.String(),
  Type.Object({ value: Type.Unsafe<JsonValue>({ description: 'The value seen' }), ts: Type.Optional(Type.Number()) }),
  { description: 'The values the expectation read when it broke (properties with their sample times, windows without)' },
);

export const VerificationSchema = Type.Object(
  {
    expect: Type.String(),
    deadline: Type.Number({ description: 'When the expectation must have started to hold (ms since the epoch)' }),
    status: Type.Unsafe<VerificationStatus>({ type: 'string', enum: [...VERIFICATION_STATUSES] }),
    attempts: Type.Integer(),
    checkedAt: Type.Optional(Type.Number({ description: 'When the status last changed' })),
    holdForMs: Type.Optional(Type.Number({ description: 'How long the expectation must hold before it counts as verified' })),
    watchForMs: Type.Optional(Type.Number({ description: 'How long the effect is watched after verification' })),
    holding: Type.Optional(
      Type.Object(
        { since: Type.Number(), until: Type.Number() },
        { description: 'While holding: since when it holds, until when it must' },
      ),
    ),
    verifiedAt: Type.Optional(Type.Number()),
    watch: Type.Optional(
      Type.Object(
        {
          until: Type.Number(),
          endedAt: Type.Optional(Type.Number()),
          ended: Type.Optional(
            Type.Unsafe<'elapsed' | 'recovered' | 'superseded'>({
              type: 'string',
              enum: ['elapsed', 'recovered', 'superseded'],
              description: 'Why the watch ended: it ran its time, the agent saw the device recover, or a newer decision took over',
            }),
          ),
        },
        { description: 'After verification: the effect is watched until `until`; a break before then re-opens the loop' },
      ),
    ),
    broken: Type.Optional(
      Type.Array(
        Type.Object({
          at: Type.Number(),
          during: Type.Unsafe<'hold' | 'watch'>({ type: 'string', enum: ['hold', 'watch'] }),
          values: Observed,
        }),
        { description: 'Every time the expectation broke after it had held, oldest first' },
      ),
    ),
    reopenedAt: Type.Optional(Type.Number({ description: 'When a verified effect broke within the watch (the last time)' })),
    followUp: Type.Array(Type.String(), {
      description: 'What was done after a failure or a re-opening: `retried`, `escalated`, `rolled back`, with why',
    }),
  },
  { description: 'Whether the plant responded as expected, and kept responding' },
);

export type Verification = Static<typeof VerificationSchema>;

/** Whether a verification still needs the engine: waiting, holding, or verified and watched. */
export function verificationOpen(verification: Verification | undefined): boolean {
  if (!verification) return false;
  if (verification.status === 'pending' || verification.status === 'holding') return true;
  return verification.status === 'verified' && verification.watch !== undefined && verification.watch.endedAt === undefined;
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
  approval?: {
    expiresAt: number;
    /** Who decided: the person or key that approved or rejected (`user:ana`, `key:ops-bot`, `admin`). */
    decidedBy?: string;
    decidedAt?: number;
    verdict?: 'approved' | 'rejected' | 'expired';
    /** What the person wrote with the verdict. */
    note?: string;
  };
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
