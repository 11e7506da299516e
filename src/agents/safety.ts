import { formatDuration } from '../time/index.js';
import type { AgentSpec } from './definition.js';

/** One value an agent wants to write, with what is there now (for maximum step checks). */
export interface PlannedWrite {
  deviceId: string;
  property: string;
  value: number | string | boolean | null;
  current: number | string | boolean | null | undefined;
}

export interface SafetyContext {
  now: number;
  lastActionAt: number | null;
  /** Times of actions in the last hour. */
  recentActions: number[];
  agentEnabled: boolean;
  globalKill: boolean;
  /** Interlock expressions that hold right now. */
  interlocksHolding: string[];
}

export interface SafetyVerdict {
  passed: string[];
  refused?: string;
}

/**
 * The safety envelope, checked before anything is sent. Pure: the same inputs give the same
 * verdict, and the verdict lists every check passed, so a record says why an action was allowed.
 */
export function checkEnvelope(
  spec: AgentSpec,
  writes: PlannedWrite[],
  context: SafetyContext,
  options: { isRetry: boolean },
): SafetyVerdict {
  const passed: string[] = [];
  const refuse = (refused: string): SafetyVerdict => ({ passed, refused });
  if (context.globalKill) return refuse('global kill switch engaged');
  passed.push('global kill switch off');
  if (!context.agentEnabled) return refuse('agent disabled (kill switch)');
  passed.push('agent enabled');
  if (context.interlocksHolding.length > 0) return refuse(`interlock holds: ${context.interlocksHolding.join('; ')}`);
  if (spec.safety.interlocks.length > 0) passed.push(`no interlock holds (${spec.safety.interlocks.length} checked)`);
  // A retry belongs to the decision already taken: cooldown and rate limits counted it once.
  if (!options.isRetry) {
    if (spec.safety.cooldownMs > 0 && context.lastActionAt !== null && context.now - context.lastActionAt < spec.safety.cooldownMs) {
      return refuse(
        `cooldown: last action ${formatDuration(context.now - context.lastActionAt)} ago, cooldown is ${formatDuration(spec.safety.cooldownMs)}`,
      );
    }
    if (spec.safety.cooldownMs > 0) passed.push('cooldown elapsed');
    const inLastHour = context.recentActions.filter((t) => context.now - t < 3_600_000).length;
    if (spec.safety.maxActionsPerHour !== undefined && inLastHour >= spec.safety.maxActionsPerHour) {
      return refuse(`rate limit: ${inLastHour} actions in the last hour, at most ${spec.safety.maxActionsPerHour}`);
    }
    if (spec.safety.maxActionsPerHour !== undefined) passed.push(`rate limit (${inLastHour}/${spec.safety.maxActionsPerHour} per hour)`);
  }
  for (const write of writes) {
    const bounds = spec.safety.bounds[write.property];
    if (!bounds) continue;
    if (typeof write.value !== 'number')
      return refuse(`${write.deviceId}.${write.property}: bounded property needs a number, got ${JSON.stringify(write.value)}`);
    if (bounds.min !== undefined && write.value < bounds.min)
      return refuse(`${write.deviceId}.${write.property} = ${write.value} is below the hard bound ${bounds.min}`);
    if (bounds.max !== undefined && write.value > bounds.max)
      return refuse(`${write.deviceId}.${write.property} = ${write.value} is above the hard bound ${bounds.max}`);
    if (bounds.maxStep !== undefined && typeof write.current === 'number' && Math.abs(write.value - write.current) > bounds.maxStep) {
      return refuse(
        `${write.deviceId}.${write.property}: step ${write.current} → ${write.value} exceeds the maximum step ${bounds.maxStep}`,
      );
    }
    passed.push(`${write.deviceId}.${write.property} = ${write.value} within bounds`);
  }
  return { passed };
}
