/**
 * The pure parts of agents: the judgment state machine (hysteresis, debounce), the streaming
 * detectors, windows, the safety envelope, expressions and the definition compiler.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type AgentSpec,
  checkEnvelope,
  compileAgent,
  compileExpression,
  type DetectorSpec,
  type DetectorState,
  holds,
  type JudgmentState,
  judge,
  NORMAL,
  newDetector,
  newWindow,
  observe,
  pushWindow,
  type SafetyContext,
  silence,
  type WindowState,
  windowValue,
} from '../src/agents/index.js';

function specOf(definition: Record<string, unknown>): AgentSpec {
  const compiled = compileAgent(definition);
  if ('problems' in compiled) throw new Error(`unexpected problems: ${JSON.stringify(compiled.problems)}`);
  return compiled.spec;
}

const base = {
  id: 'unit',
  perceive: { devices: { model: 'pump' } },
  judge: { when: 'temperature > 80' },
  act: { steps: [{ set: { property: 'speed', value: 'speed - 10' } }] },
};

// ---- judgment --------------------------------------------------------------------------------

/** Runs the judgment over (ts, when, clear) points; returns the final state and the ts of every fire/recovery. */
function run(points: [number, boolean, boolean][], forMs: number, clearForMs: number, start: JudgmentState = NORMAL) {
  let state = start;
  const fired: number[] = [];
  const recovered: number[] = [];
  for (const [ts, when, clear] of points) {
    const step = judge(state, { when, clear, ts, forMs, clearForMs });
    state = step.state;
    if (step.fired) fired.push(ts);
    if (step.recovered) recovered.push(ts);
  }
  return { state, fired, recovered };
}

describe('judgment: debounce (`for`) and hysteresis (`clear`, `clearFor`)', () => {
  test('enters only after the condition held continuously for `for`', () => {
    const out = run(
      [
        [0, true, false],
        [4_000, true, false],
        [9_999, true, false],
        [10_000, true, false],
      ],
      10_000,
      0,
    );
    assert.deepEqual(out.fired, [10_000]);
    assert.equal(out.state.phase, 'active');
  });

  test('a dip resets the debounce: the wait starts again at the next true reading', () => {
    const out = run(
      [
        [0, true, false],
        [8_000, true, false],
        [9_000, false, false], // dip
        [10_000, true, false], // waiting again from here
        [19_000, true, false],
        [20_000, true, false],
      ],
      10_000,
      0,
    );
    assert.deepEqual(out.fired, [20_000]);
  });

  test('`for` 0 fires on the first true reading', () => {
    assert.deepEqual(run([[5, true, false]], 0, 0).fired, [5]);
  });

  test('leaves only when `clear` held for `clearFor`; a relapse in between keeps it active', () => {
    const active: JudgmentState = { phase: 'active', since: 0 };
    const out = run(
      [
        [1_000, false, false], // no longer "when", but not "clear" either (the hysteresis band)
        [2_000, false, true], // clearing starts
        [5_000, false, true],
        [6_000, false, false], // relapse into the band: back to active
        [7_000, false, true], // clearing again
        [11_999, false, true],
        [12_000, false, true], // 5 s of clear since 7 000
      ],
      0,
      5_000,
      active,
    );
    assert.deepEqual(out.recovered, [12_000]);
    assert.deepEqual(out.fired, []);
    assert.equal(out.state.phase, 'normal');
    const midway = run(
      [
        [1_000, false, false],
        [2_000, false, true],
        [6_999, false, true],
      ],
      0,
      5_000,
      active,
    );
    assert.deepEqual(midway.recovered, []);
    assert.equal(midway.state.phase, 'clearing');
  });

  test('fires once per episode, and again in the next episode', () => {
    const out = run(
      [
        [0, true, false],
        [1_000, true, false],
        [2_000, true, false],
        [3_000, true, false],
        [4_000, false, true], // recovered (clearFor 0)
        [5_000, true, false], // new episode
        [6_000, true, false],
      ],
      0,
      0,
    );
    assert.deepEqual(out.fired, [0, 5_000]);
    assert.deepEqual(out.recovered, [4_000]);
  });
});

// ---- detectors -------------------------------------------------------------------------------

function feed(spec: DetectorSpec & { windowMs?: number }, series: [number, number][]) {
  let state: DetectorState = newDetector(spec);
  const verdicts: { ts: number; flagged: boolean; score: number | null }[] = [];
  for (const [ts, value] of series) {
    const verdict = observe(spec, state, ts, value);
    state = verdict.state;
    verdicts.push({ ts, flagged: verdict.flagged, score: verdict.score });
  }
  return { state, verdicts, flaggedAt: verdicts.filter((v) => v.flagged).map((v) => v.ts) };
}

/** A calm series around `level` with a small deterministic wobble. */
const calm = (count: number, level: number, wobble: number, startTs = 0, stepMs = 1_000): [number, number][] =>
  Array.from({ length: count }, (_, i) => [startTs + i * stepMs, level + wobble * Math.sin(i * 1.7)]);

describe('detectors on crafted series', () => {
  test('zscore: a spike is flagged after the warmup, not during it', () => {
    const spec: DetectorSpec = { kind: 'zscore', property: 'p', threshold: 4, warmup: 20 };
    const early = feed(spec, [...calm(10, 5, 0.1), [10_000, 50]]);
    assert.deepEqual(early.flaggedAt, [], 'a spike during the warmup is learned, not flagged');

    const series = calm(30, 5, 0.1);
    const out = feed(spec, [...series, [30_000, 9], [31_000, 5]]);
    assert.deepEqual(out.flaggedAt, [30_000]);
    const spike = out.verdicts.find((v) => v.ts === 30_000);
    assert.ok(spike?.score !== null && spike?.score !== undefined && spike.score > 4, `z of the spike: ${spike?.score}`);
  });

  test('rate: change per second beyond maxPerSecond, either direction', () => {
    const out = feed({ kind: 'rate', property: 'p', maxPerSecond: 2 }, [
      [0, 10],
      [1_000, 11.5], // +1.5/s
      [2_000, 15], // +3.5/s
      [4_000, 17], // +1/s over 2 s
      [5_000, 12], // -5/s
    ]);
    assert.deepEqual(out.flaggedAt, [2_000, 5_000]);
    assert.deepEqual(
      out.verdicts.map((v) => v.score),
      [0, 1.5, 3.5, 1, -5],
    );
  });

  test('stuck: N identical readings in a row, reset by any change', () => {
    const out = feed({ kind: 'stuck', property: 'p', samples: 4 }, [
      [0, 7],
      [1, 7],
      [2, 7],
      [3, 8], // change: run restarts
      [4, 8],
      [5, 8],
      [6, 8], // 4th identical
      [7, 8],
    ]);
    assert.deepEqual(out.flaggedAt, [6, 7]);
  });

  test('flatline: no spread over a full window', () => {
    const spec = { kind: 'flatline' as const, property: 'p', window: '60s', windowMs: 60_000, epsilon: 0.01 };
    const flat = feed(
      spec,
      Array.from({ length: 8 }, (_, i): [number, number] => [i * 10_000, 3]),
    );
    // 0 … 70 s: the 60 s window is covered from 60 s on.
    assert.deepEqual(flat.flaggedAt, [60_000, 70_000]);
    const alive = feed(
      spec,
      Array.from({ length: 8 }, (_, i): [number, number] => [i * 10_000, 3 + (i % 2) * 0.5]),
    );
    assert.deepEqual(alive.flaggedAt, [], 'a moving signal is not flat');
    const shortWindow = feed(spec, [
      [0, 3],
      [10_000, 3],
    ]);
    assert.deepEqual(shortWindow.flaggedAt, [], 'two equal readings are not a flatline');
  });

  test('missing: silence beyond factor × the expected interval', () => {
    const spec: DetectorSpec = { kind: 'missing', factor: 3 };
    const fresh = newDetector(spec);
    assert.equal(silence(spec, fresh, 1_000_000, 10_000), false, 'never heard from: nothing to miss yet');
    const seen = observe(spec, fresh, 100_000, 0).state;
    assert.equal(silence(spec, seen, 130_000, 10_000), false, 'exactly 3 intervals is still fine');
    assert.equal(silence(spec, seen, 130_001, 10_000), true);
    const again = observe(spec, seen, 140_000, 0).state;
    assert.equal(silence(spec, again, 150_000, 10_000), false, 'a new reading ends the silence');
  });

  test('band: out of band vs the learned baseline, which freezes after the warmup', () => {
    const spec: DetectorSpec = { kind: 'band', property: 'p', warmup: 50, margin: 3 };
    const learned = feed(spec, calm(50, 20, 1));
    assert.deepEqual(learned.flaggedAt, []);
    const baseline = learned.state;
    const out = feed(spec, [...calm(50, 20, 1), [60_000, 20.5], [61_000, 35], [62_000, 5], [63_000, 19.5]]);
    assert.deepEqual(out.flaggedAt, [61_000, 62_000]);
    assert.deepEqual(out.state, baseline, 'readings after the warmup do not move the baseline');
  });
});

// ---- windows ---------------------------------------------------------------------------------

describe('windows', () => {
  test('sliding keeps readings within the duration; count keeps the last N; tumbling reports the closed bucket', () => {
    const sliding = { property: 'p', kind: 'sliding' as const, size: '10s', agg: 'avg' as const };
    let s: WindowState = newWindow(sliding);
    for (const [ts, v] of [
      [0, 100],
      [5_000, 10],
      [10_000, 20],
      [12_000, 30],
    ] as const)
      s = pushWindow(s, sliding, { ms: 10_000 }, ts, v);
    assert.equal(windowValue(s, sliding), 20, 'the reading at 0 fell out of the 10 s window');

    const count = { property: 'p', kind: 'count' as const, size: 3, agg: 'delta' as const };
    let c: WindowState = newWindow(count);
    for (const [ts, v] of [
      [0, 1],
      [1, 2],
      [2, 4],
      [3, 8],
    ] as const)
      c = pushWindow(c, count, { count: 3 }, ts, v);
    assert.equal(windowValue(c, count), 6);

    const tumbling = { property: 'p', kind: 'tumbling' as const, size: '10s', agg: 'max' as const };
    let t: WindowState = newWindow(tumbling);
    t = pushWindow(t, tumbling, { ms: 10_000 }, 1_000, 5);
    t = pushWindow(t, tumbling, { ms: 10_000 }, 9_000, 7);
    assert.equal(windowValue(t, tumbling), null, 'no bucket closed yet');
    t = pushWindow(t, tumbling, { ms: 10_000 }, 11_000, 1);
    assert.equal(windowValue(t, tumbling), 7);
    t = pushWindow(t, tumbling, { ms: 10_000 }, 2_000, 100);
    assert.equal(windowValue(t, tumbling), 7, 'late data for a closed bucket is ignored');
  });
});

// ---- expressions and the safety envelope -----------------------------------------------------

describe('expressions', () => {
  test('`attributes.maintenance == true` holds only when the attribute is true', () => {
    const interlock = compileExpression('attributes.maintenance == true');
    assert.equal(holds(interlock, { attributes: { maintenance: true } }), true);
    assert.equal(holds(interlock, { attributes: { maintenance: false } }), false);
    assert.equal(holds(interlock, { attributes: {} }), false);
    assert.equal(holds(interlock, { attributes: { maintenance: 'true' } }), false);
  });
  test('a missing reading never satisfies a condition and clamp works', () => {
    assert.equal(holds(compileExpression('temperature > 80'), {}), false);
    assert.equal(compileExpression('clamp(reported.speed - 15, 30, 100)').evaluate({ reported: { speed: 40 } }), 30);
  });
});

describe('safety envelope', () => {
  const spec = specOf({
    ...base,
    safety: {
      bounds: { speed: { min: 30, max: 90, maxStep: 20 } },
      cooldown: '5m',
      maxActionsPerHour: 2,
      interlocks: ['attributes.maintenance == true'],
    },
  });
  const now = 10_000_000;
  const context = (over: Partial<SafetyContext> = {}): SafetyContext => ({
    now,
    lastActionAt: null,
    recentActions: [],
    agentEnabled: true,
    globalKill: false,
    interlocksHolding: [],
    ...over,
  });
  const write = (value: number, current: number | null = 60) => [{ deviceId: 'p1', property: 'speed', value, current }];

  test('a write within bounds passes and says which checks passed', () => {
    const verdict = checkEnvelope(spec, write(50), context(), { isRetry: false });
    assert.equal(verdict.refused, undefined);
    assert.deepEqual(verdict.passed, [
      'global kill switch off',
      'agent enabled',
      'no interlock holds (1 checked)',
      'cooldown elapsed',
      'rate limit (0/2 per hour)',
      'p1.speed = 50 within bounds',
    ]);
  });

  test('hard bounds and the maximum step', () => {
    assert.match(checkEnvelope(spec, write(25, 40), context(), { isRetry: false }).refused ?? '', /below the hard bound 30/);
    assert.match(checkEnvelope(spec, write(95, 80), context(), { isRetry: false }).refused ?? '', /above the hard bound 90/);
    assert.match(
      checkEnvelope(spec, write(35, 60), context(), { isRetry: false }).refused ?? '',
      /step 60 → 35 exceeds the maximum step 20/,
    );
    assert.equal(checkEnvelope(spec, write(35, null), context(), { isRetry: false }).refused, undefined, 'no current value: no step');
  });

  test('kill switches and interlocks refuse before anything else', () => {
    assert.equal(checkEnvelope(spec, write(50), context({ globalKill: true }), { isRetry: false }).refused, 'global kill switch engaged');
    assert.equal(
      checkEnvelope(spec, write(50), context({ agentEnabled: false }), { isRetry: false }).refused,
      'agent disabled (kill switch)',
    );
    assert.match(
      checkEnvelope(spec, write(50), context({ interlocksHolding: ['attributes.maintenance == true'] }), { isRetry: false }).refused ?? '',
      /interlock holds: attributes.maintenance == true/,
    );
  });

  test('cooldown and max actions per hour; a retry is not counted again', () => {
    const cooling = context({ lastActionAt: now - 60_000, recentActions: [now - 60_000] });
    assert.match(checkEnvelope(spec, write(50), cooling, { isRetry: false }).refused ?? '', /cooldown: last action 1m ago, cooldown is 5m/);
    assert.equal(checkEnvelope(spec, write(50), cooling, { isRetry: true }).refused, undefined);
    const busy = context({ lastActionAt: now - 600_000, recentActions: [now - 3_000_000, now - 600_000] });
    assert.match(
      checkEnvelope(spec, write(50), busy, { isRetry: false }).refused ?? '',
      /rate limit: 2 actions in the last hour, at most 2/,
    );
    const old = context({ lastActionAt: now - 600_000, recentActions: [now - 3_700_000, now - 600_000] });
    assert.equal(checkEnvelope(spec, write(50), old, { isRetry: false }).refused, undefined, 'an action over an hour ago no longer counts');
  });
});

// ---- definitions -----------------------------------------------------------------------------

describe('compileAgent', () => {
  test('lists every problem at once', () => {
    const result = compileAgent({
      id: 'broken',
      perceive: { devices: { model: 'pump' }, related: { valve: { sameAttribute: 'station' } } },
      judge: {
        when: 'temperature >> 80',
        for: 'ten seconds',
        detectors: { spike: { kind: 'zscore' }, fast: { kind: 'rate', property: 'speed' } },
      },
      act: { steps: [{ set: { target: 'pipe', property: 'position', value: '100' } }] },
      verify: { expect: 'temperature <', within: '2x' },
    });
    assert.ok('problems' in result);
    const paths = result.problems.map((p) => p.path).sort();
    assert.deepEqual(paths, [
      '/act/steps/0/target',
      '/judge/detectors/fast',
      '/judge/detectors/spike',
      '/judge/for',
      '/judge/when',
      '/verify/expect',
      '/verify/within',
    ]);
    const byPath = Object.fromEntries(result.problems.map((p) => [p.path, p.message]));
    assert.match(byPath['/act/steps/0/target'] ?? '', /"pipe" is neither "self" nor a related device \(valve\)/);
    assert.match(byPath['/judge/detectors/spike'] ?? '', /needs "property"/);
    assert.match(byPath['/judge/detectors/fast'] ?? '', /needs "maxPerSecond"/);
    assert.match(byPath['/judge/for'] ?? '', /"ten seconds" is not a duration/);
  });

  test('shape problems are listed, one per problem', () => {
    const result = compileAgent({
      id: 'shape',
      perceive: { devices: {} },
      judge: { detectors: { odd: { kind: 'fourier', property: 'x' } } },
      verify: { within: '1m' },
      extra: true,
    });
    assert.ok('problems' in result);
    const messages = result.problems.map((p) => `${p.path} ${p.message}`);
    assert.ok(
      messages.some((m) => m.startsWith('/judge/detectors/odd/kind')),
      messages.join('\n'),
    );
    assert.ok(
      messages.some((m) => m.includes("required property 'expect'")),
      messages.join('\n'),
    );
    assert.ok(
      messages.some((m) => m.includes('additional properties')),
      messages.join('\n'),
    );
  });

  test('defaults: auto mode, enabled, escalation one step up, alarm type = agent id', () => {
    const spec = specOf({ ...base, alarm: { severity: 'minor' } });
    assert.equal(spec.mode, 'auto');
    assert.equal(spec.enabled, true);
    assert.deepEqual(spec.alarm, { type: 'unit', severity: 'minor', escalateTo: 'major', clearOnRecovery: true });
  });
});
