/**
 * Hysteresis and debounce as a small state machine over data time:
 * normal → entering (condition held, waiting `for`) → active (fired once) → clearing
 * (clear condition held, waiting `clearFor`) → normal (recovered).
 */
export interface JudgmentState {
  phase: 'normal' | 'entering' | 'active' | 'clearing';
  since: number;
}

export interface JudgmentStep {
  state: JudgmentState;
  /** The condition has just become active: act now (edge-triggered, once per episode). */
  fired: boolean;
  /** The episode has just ended. */
  recovered: boolean;
}

export const NORMAL: JudgmentState = { phase: 'normal', since: 0 };

export function judge(
  state: JudgmentState,
  input: { when: boolean; clear: boolean; ts: number; forMs: number; clearForMs: number },
): JudgmentStep {
  const { when, clear, ts, forMs, clearForMs } = input;
  const to = (phase: JudgmentState['phase'], since = ts, fired = false, recovered = false): JudgmentStep => ({
    state: { phase, since },
    fired,
    recovered,
  });
  switch (state.phase) {
    case 'normal':
      if (!when) return { state, fired: false, recovered: false };
      return forMs === 0 ? to('active', ts, true) : to('entering');
    case 'entering':
      if (!when) return to('normal');
      return ts - state.since >= forMs ? to('active', ts, true) : { state, fired: false, recovered: false };
    case 'active':
      if (!clear) return { state, fired: false, recovered: false };
      return clearForMs === 0 ? to('normal', ts, false, true) : to('clearing');
    case 'clearing':
      if (!clear) return to('active', state.since);
      return ts - state.since >= clearForMs ? to('normal', ts, false, true) : { state, fired: false, recovered: false };
  }
}
