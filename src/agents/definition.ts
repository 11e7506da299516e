import { type Static, Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { parseDuration } from '../time/index.js';
import { compile, type Expression, ExpressionError } from './expression.js';

const Duration = Type.String({ description: 'Duration like 10s, 2m, 1h' });
const Expr = Type.String({ description: 'Expression over perceived values, e.g. bearingTemperature > 80' });

/** A string enum that keeps its literal type (a mapped Type.Union widens to string). */
const oneOf = <T extends string>(values: readonly T[], description?: string) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values], ...(description ? { description } : {}) });

export const DETECTOR_KINDS = ['zscore', 'rate', 'stuck', 'flatline', 'missing', 'band'] as const;
export const SEVERITIES = ['critical', 'major', 'minor', 'warning'] as const;
const WINDOW_AGGREGATES = ['avg', 'min', 'max', 'sum', 'count', 'first', 'last', 'delta'] as const;

const DetectorKind = oneOf(DETECTOR_KINDS);

export const DetectorSchema = Type.Object(
  {
    kind: DetectorKind,
    property: Type.Optional(Type.String({ description: 'The property watched (every kind but missing)' })),
    threshold: Type.Optional(Type.Number({ description: 'zscore: how many standard deviations (default 3)' })),
    alpha: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'zscore: EWMA weight (default 0.1)' })),
    warmup: Type.Optional(Type.Integer({ minimum: 1, description: 'zscore/band: samples learned before judging (default 20 / 100)' })),
    maxPerSecond: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'rate: largest allowed change per second' })),
    samples: Type.Optional(Type.Integer({ minimum: 2, description: 'stuck: identical readings in a row (default 10)' })),
    window: Type.Optional(Duration),
    epsilon: Type.Optional(Type.Number({ minimum: 0, description: 'flatline: largest spread counted as flat (default 1e-6)' })),
    factor: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'missing: intervals of silence allowed (default 2)' })),
    margin: Type.Optional(Type.Number({ minimum: 0, description: 'band: standard deviations beyond the learned band (default 4)' })),
  },
  { additionalProperties: false },
);

const WindowSchema = Type.Object(
  {
    property: Type.String(),
    kind: Type.Union([Type.Literal('sliding'), Type.Literal('tumbling'), Type.Literal('count')]),
    size: Type.Union([Duration, Type.Integer({ minimum: 1 })], { description: 'A duration (sliding, tumbling) or a sample count (count)' }),
    agg: oneOf(WINDOW_AGGREGATES),
  },
  { additionalProperties: false },
);

const Target = Type.Optional(Type.String({ description: '"self" (default) or the name of a related device' }));

const StepSchema = Type.Union([
  Type.Object(
    { set: Type.Object({ target: Target, property: Type.String(), value: Expr }, { additionalProperties: false }) },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      invoke: Type.Object(
        { target: Target, action: Type.String(), input: Type.Optional(Type.Record(Type.String(), Expr)) },
        { additionalProperties: false },
      ),
    },
    { additionalProperties: false },
  ),
]);

const Severity = oneOf(SEVERITIES);

export const AgentDefinitionSchema = Type.Object(
  {
    id: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' }),
    name: Type.Optional(Type.String()),
    description: Type.Optional(Type.String()),
    mode: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('approve'), Type.Literal('shadow')])),
    enabled: Type.Optional(Type.Boolean()),
    perceive: Type.Object(
      {
        devices: Type.Object(
          {
            ids: Type.Optional(Type.Array(Type.String(), { minItems: 1 })),
            model: Type.Optional(Type.String()),
            attributes: Type.Optional(Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()]))),
          },
          { additionalProperties: false },
        ),
        windows: Type.Optional(Type.Record(Type.String(), WindowSchema)),
        related: Type.Optional(
          Type.Record(
            Type.String(),
            Type.Object(
              {
                model: Type.Optional(Type.String()),
                sameAttribute: Type.String({ description: 'Joined when this attribute has the same value' }),
              },
              { additionalProperties: false },
            ),
          ),
        ),
      },
      { additionalProperties: false },
    ),
    judge: Type.Object(
      {
        when: Type.Optional(Expr),
        clear: Type.Optional(Expr),
        for: Type.Optional(Duration),
        clearFor: Type.Optional(Duration),
        detectors: Type.Optional(Type.Record(Type.String(), DetectorSchema)),
      },
      { additionalProperties: false },
    ),
    act: Type.Optional(Type.Object({ steps: Type.Array(StepSchema, { minItems: 1 }) }, { additionalProperties: false })),
    verify: Type.Optional(
      Type.Object(
        {
          expect: Expr,
          within: Duration,
          holdFor: Type.Optional(
            Type.String({
              description:
                'How long `expect` must keep holding before the effect counts as verified, like 60s (default: half of `within`; 0s verifies at once)',
            }),
          ),
          watchFor: Type.Optional(
            Type.String({
              description:
                'How long the effect is watched after verification; if `expect` breaks then, the loop re-opens (default: `within`; 0s: no watch)',
            }),
          ),
          retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
          onFailure: Type.Optional(Type.Array(Type.Union([Type.Literal('escalate'), Type.Literal('rollback')]))),
        },
        { additionalProperties: false },
      ),
    ),
    safety: Type.Optional(
      Type.Object(
        {
          bounds: Type.Optional(
            Type.Record(
              Type.String(),
              Type.Object(
                {
                  min: Type.Optional(Type.Number()),
                  max: Type.Optional(Type.Number()),
                  maxStep: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
                },
                { additionalProperties: false },
              ),
            ),
          ),
          cooldown: Type.Optional(Duration),
          maxActionsPerHour: Type.Optional(Type.Integer({ minimum: 1 })),
          interlocks: Type.Optional(Type.Array(Expr)),
        },
        { additionalProperties: false },
      ),
    ),
    alarm: Type.Optional(
      Type.Object(
        {
          type: Type.Optional(Type.String()),
          severity: Severity,
          escalateTo: Type.Optional(Severity),
          clearOnRecovery: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
    ),
    approval: Type.Optional(Type.Object({ expiresIn: Duration }, { additionalProperties: false })),
    deploy: Type.Optional(
      Type.Object(
        { edges: Type.Array(Type.String(), { description: 'Edge nodes that run this agent (for the devices they serve)' }) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export type AgentDefinition = Static<typeof AgentDefinitionSchema>;
export type DetectorSpec = Static<typeof DetectorSchema>;
export type WindowSpec = Static<typeof WindowSchema>;
export type AgentMode = 'auto' | 'approve' | 'shadow';
export type Severity = (typeof SEVERITIES)[number];

export interface CompiledStep {
  kind: 'set' | 'invoke';
  target: string;
  property?: string;
  action?: string;
  value?: Expression;
  input?: Record<string, Expression>;
}

/** A definition with its expressions compiled and durations in ms: what the engine runs. */
export interface AgentSpec {
  definition: AgentDefinition;
  id: string;
  mode: AgentMode;
  enabled: boolean;
  when?: Expression;
  clear?: Expression;
  forMs: number;
  clearForMs: number;
  windows: Record<string, { spec: WindowSpec; sizeMs?: number; sizeCount?: number }>;
  detectors: Record<string, DetectorSpec & { windowMs?: number }>;
  steps: CompiledStep[];
  verify?: {
    expect: Expression;
    withinMs: number;
    holdForMs: number;
    watchForMs: number;
    retries: number;
    onFailure: ('escalate' | 'rollback')[];
  };
  safety: {
    bounds: Record<string, { min?: number; max?: number; maxStep?: number }>;
    cooldownMs: number;
    maxActionsPerHour?: number;
    interlocks: Expression[];
  };
  alarm?: { type: string; severity: Severity; escalateTo: Severity; clearOnRecovery: boolean };
  approvalExpiresMs: number;
}

export interface DefinitionProblem {
  path: string;
  message: string;
}

const ajv = new Ajv({ allErrors: true, strict: false });
const checkShape = ajv.compile<AgentDefinition>(AgentDefinitionSchema);

const ESCALATION: Record<Severity, Severity> = { warning: 'minor', minor: 'major', major: 'critical', critical: 'critical' };
const DEFAULT_APPROVAL_EXPIRY_MS = 15 * 60_000;

/**
 * Validates an agent definition and compiles it. Returns every problem at once (shape,
 * expressions, durations, targets) so an author fixes a definition in one round trip.
 */
export function compileAgent(input: unknown): { spec: AgentSpec } | { problems: DefinitionProblem[] } {
  if (!checkShape(input)) {
    const problems = (checkShape.errors ?? [])
      // anyOf/union noise: keep the errors that say something about the member itself.
      .filter((e) => e.keyword !== 'anyOf')
      .map((e) => ({ path: e.instancePath || '/', message: e.message ?? 'is invalid' }));
    return { problems };
  }
  const definition = input;
  const problems: DefinitionProblem[] = [];
  const expression = (path: string, source: string): Expression | undefined => {
    try {
      return compile(source);
    } catch (error) {
      problems.push({ path, message: error instanceof ExpressionError ? error.message : String(error) });
      return undefined;
    }
  };
  const duration = (path: string, text: string | undefined, fallback: number): number => {
    if (text === undefined) return fallback;
    const ms = parseDuration(text);
    if (ms === undefined) {
      problems.push({ path, message: `"${text}" is not a duration like 10s, 2m or 1h` });
      return fallback;
    }
    return ms;
  };

  const { perceive, judge } = definition;
  if (!perceive.devices.ids && !perceive.devices.model && !perceive.devices.attributes) {
    problems.push({ path: '/perceive/devices', message: 'select devices by ids, model or attributes' });
  }
  const windows: AgentSpec['windows'] = {};
  for (const [name, spec] of Object.entries(perceive.windows ?? {})) {
    const path = `/perceive/windows/${name}`;
    if (spec.kind === 'count') {
      if (typeof spec.size !== 'number')
        problems.push({ path: `${path}/size`, message: 'a count window is sized in samples (an integer)' });
      windows[name] = { spec, sizeCount: typeof spec.size === 'number' ? spec.size : 1 };
    } else {
      if (typeof spec.size !== 'string')
        problems.push({ path: `${path}/size`, message: `a ${spec.kind} window is sized by a duration like 30s` });
      windows[name] = { spec, sizeMs: duration(`${path}/size`, typeof spec.size === 'string' ? spec.size : undefined, 60_000) };
    }
  }
  const detectors: AgentSpec['detectors'] = {};
  for (const [name, spec] of Object.entries(judge.detectors ?? {})) {
    const path = `/judge/detectors/${name}`;
    if (spec.kind !== 'missing' && !spec.property) problems.push({ path, message: `a ${spec.kind} detector needs "property"` });
    if (spec.kind === 'rate' && spec.maxPerSecond === undefined) problems.push({ path, message: 'a rate detector needs "maxPerSecond"' });
    detectors[name] = { ...spec, ...(spec.window ? { windowMs: duration(`${path}/window`, spec.window, 60_000) } : {}) };
  }
  const names = [...Object.keys(windows), ...Object.keys(detectors)];
  const duplicate = names.find((name, index) => names.indexOf(name) !== index);
  if (duplicate) problems.push({ path: '/perceive/windows', message: `"${duplicate}" names both a window and a detector` });

  const when = judge.when ? expression('/judge/when', judge.when) : undefined;
  if (!judge.when && Object.keys(detectors).length === 0) {
    problems.push({ path: '/judge', message: 'give a "when" condition or at least one detector' });
  }
  const related = new Set(Object.keys(perceive.related ?? {}));
  const steps: CompiledStep[] = (definition.act?.steps ?? []).map((step, index) => {
    const path = `/act/steps/${index}`;
    const body = 'set' in step ? step.set : step.invoke;
    const target = body.target ?? 'self';
    if (target !== 'self' && !related.has(target)) {
      problems.push({
        path: `${path}/target`,
        message: `"${target}" is neither "self" nor a related device (${[...related].join(', ') || 'none declared'})`,
      });
    }
    if ('set' in step) {
      return { kind: 'set', target, property: step.set.property, value: expression(`${path}/set/value`, step.set.value) };
    }
    const input = Object.fromEntries(
      Object.entries(step.invoke.input ?? {}).flatMap(([key, source]) => {
        const compiled = expression(`${path}/invoke/input/${key}`, source);
        return compiled ? [[key, compiled] as const] : [];
      }),
    );
    return { kind: 'invoke', target, action: step.invoke.action, input };
  });
  const verify = definition.verify;
  const verifyExpect = verify ? expression('/verify/expect', verify.expect) : undefined;
  // Checked even when `expect` is broken, so both problems are listed in one round trip.
  const verifyWithinMs = verify ? duration('/verify/within', verify.within, 60_000) : 60_000;
  // Half of `within` by default: long enough that a reading that dips once is not taken for an
  // effect, short enough that a slow plant still verifies soon after it settles.
  const verifyHoldForMs = duration('/verify/holdFor', verify?.holdFor, Math.round(verifyWithinMs / 2));
  const verifyWatchForMs = duration('/verify/watchFor', verify?.watchFor, verifyWithinMs);
  const interlocks = (definition.safety?.interlocks ?? []).flatMap((source, index) => {
    const compiled = expression(`/safety/interlocks/${index}`, source);
    return compiled ? [compiled] : [];
  });
  const spec: AgentSpec = {
    definition,
    id: definition.id,
    mode: definition.mode ?? 'auto',
    enabled: definition.enabled ?? true,
    ...(when ? { when } : {}),
    ...(judge.clear ? { clear: expression('/judge/clear', judge.clear) } : {}),
    forMs: duration('/judge/for', judge.for, 0),
    clearForMs: duration('/judge/clearFor', judge.clearFor, 0),
    windows,
    detectors,
    steps,
    safety: {
      bounds: definition.safety?.bounds ?? {},
      cooldownMs: duration('/safety/cooldown', definition.safety?.cooldown, 0),
      ...(definition.safety?.maxActionsPerHour ? { maxActionsPerHour: definition.safety.maxActionsPerHour } : {}),
      interlocks,
    },
    approvalExpiresMs: duration('/approval/expiresIn', definition.approval?.expiresIn, DEFAULT_APPROVAL_EXPIRY_MS),
  };
  if (verify && verifyExpect) {
    spec.verify = {
      expect: verifyExpect,
      withinMs: verifyWithinMs,
      holdForMs: verifyHoldForMs,
      watchForMs: verifyWatchForMs,
      retries: verify.retries ?? 0,
      onFailure: verify.onFailure ?? [],
    };
  }
  if (definition.alarm) {
    const severity = definition.alarm.severity;
    spec.alarm = {
      type: definition.alarm.type ?? definition.id,
      severity,
      escalateTo: definition.alarm.escalateTo ?? ESCALATION[severity],
      clearOnRecovery: definition.alarm.clearOnRecovery ?? true,
    };
  }
  return problems.length > 0 ? { problems } : { spec };
}
