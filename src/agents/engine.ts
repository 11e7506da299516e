import { randomUUID } from 'node:crypto';
import { EventBus } from '../bus/index.js';
import { conflict, invalid, notFound } from '../errors/index.js';
import type { DeviceRecord } from '../registry/index.js';
import type { JsonValue, TelemetrySample } from '../telemetry/index.js';
import { formatDuration } from '../time/index.js';
import type { AlarmService } from './alarms.js';
import {
  type DecisionOutcome,
  type DecisionQuery,
  type DecisionRecord,
  type PlannedAction,
  type Verification,
  verificationOpen,
} from './decision.js';
import { type AgentDefinition, type AgentMode, type AgentSpec, compileAgent, type DefinitionProblem } from './definition.js';
import { type DetectorState, newDetector, observe, silence } from './detectors.js';
import { holds, type Scope } from './expression.js';
import { type JudgmentState, judge, NORMAL } from './judgment.js';
import { checkEnvelope, type PlannedWrite } from './safety.js';
import { newWindow, pushWindow, type WindowState, windowValue } from './windows.js';

/** Per (agent, device) state; plain JSON so it survives a restart. */
export interface AgentDeviceState {
  windows: Record<string, WindowState>;
  detectors: Record<string, { state: DetectorState; flagged: boolean; score: number | null }>;
  judgment: JudgmentState;
  lastActionAt: number | null;
  recentActions: number[];
  /** The decision whose effect is being verified: pending, holding, or verified and watched. */
  verifying?: string;
}

export interface AgentStore {
  definitions(): Promise<AgentDefinition[]>;
  putDefinition(definition: AgentDefinition): Promise<void>;
  deleteDefinition(id: string): Promise<void>;
  loadStates(agentId: string): Promise<Record<string, AgentDeviceState>>;
  saveStates(entries: { agentId: string; deviceId: string; state: AgentDeviceState }[]): Promise<void>;
  deleteStates(agentId: string): Promise<void>;
  insertDecision(decision: DecisionRecord): Promise<void>;
  updateDecision(decision: DecisionRecord): Promise<void>;
  decision(id: string): Promise<DecisionRecord | undefined>;
  decisions(query: DecisionQuery): Promise<DecisionRecord[]>;
  /** Decisions awaiting approval or with a pending verification. */
  openDecisions(): Promise<DecisionRecord[]>;
  getSetting(key: string): Promise<string | undefined>;
  setSetting(key: string, value: string): Promise<void>;
}

/** The plant as agents see it: devices, their twins, and the two ways to act. */
export interface PlantAccess {
  device(id: string): Promise<DeviceRecord | undefined>;
  /** Devices of `model` (any model when undefined) whose attribute `attribute` equals `value`. */
  peers(model: string | undefined, attribute: string, value: unknown): Promise<DeviceRecord[]>;
  desired(device: DeviceRecord): Promise<Record<string, JsonValue>>;
  /** The twin's reported values with their times: what the engine knows of a device after a restart. */
  reported(device: DeviceRecord): Promise<Record<string, { value: JsonValue; ts: number }>>;
  setDesired(device: DeviceRecord, values: Record<string, JsonValue | null>, actor: string): Promise<void>;
  invoke(device: DeviceRecord, action: string, input: Record<string, JsonValue> | undefined, actor: string): Promise<{ id: string }>;
}

export interface AgentEngineDependencies {
  store: AgentStore;
  plant: PlantAccess;
  alarms: AlarmService;
  now(): number;
  onError(error: unknown, context: string): void;
  /** Whether this node runs agents for a device (the cloud leaves edge-served devices to their edge). */
  evaluates(device: DeviceRecord): boolean;
  /** The tenant's agent quota: throws (too_many_requests) when `current` agents may not become one more. */
  admitAgent?(current: number): void;
}

interface RunningAgent {
  spec: AgentSpec;
  states: Map<string, AgentDeviceState>;
}

const KILL_SWITCH = 'agents.kill_switch';

/** A span for a follow-up note: `10s`, `2m`, or `12.3s` when it is not whole. */
const span = (ms: number): string => (ms % 1000 === 0 ? formatDuration(ms) : `${(ms / 1000).toFixed(1)}s`);

function selects(spec: AgentSpec, device: DeviceRecord): boolean {
  const { ids, model, attributes } = spec.definition.perceive.devices;
  if (ids && !ids.includes(device.id)) return false;
  if (model && device.model !== model) return false;
  for (const [key, value] of Object.entries(attributes ?? {})) if (device.attributes[key] !== value) return false;
  return true;
}

function freshState(spec: AgentSpec): AgentDeviceState {
  return {
    windows: Object.fromEntries(Object.entries(spec.windows).map(([name, w]) => [name, newWindow(w.spec)])),
    detectors: Object.fromEntries(
      Object.entries(spec.detectors).map(([name, d]) => [name, { state: newDetector(d), flagged: false, score: null }]),
    ),
    judgment: NORMAL,
    lastActionAt: null,
    recentActions: [],
  };
}

/**
 * Runs agents incrementally on accepted telemetry: windows and detectors advance per sample,
 * the judgment state machine decides when to act, the safety envelope decides whether, the
 * mode decides how (auto, approve, shadow), and verification checks the plant responded.
 * Every evaluation that changes course leaves a decision record.
 */
/** The desired writes a recorded decision makes, as the safety envelope checks them (retry, approval). */
function writesOf(decision: DecisionRecord): PlannedWrite[] {
  return decision.actions.flatMap((a) =>
    a.kind === 'set' && a.property
      ? [
          {
            deviceId: a.deviceId,
            property: a.property,
            value: a.value as PlannedWrite['value'],
            current: a.previous as PlannedWrite['current'],
          },
        ]
      : [],
  );
}

export type AgentEngineEvents = {
  /** A definition was created, replaced or removed (what edges run may change with it). */
  'definition.changed': { agentId: string };
};

export class AgentEngine {
  readonly events = new EventBus<AgentEngineEvents>();
  private readonly agents = new Map<string, RunningAgent>();
  private readonly latest = new Map<string, Record<string, { value: JsonValue; ts: number }>>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly dirty = new Set<string>();
  private readonly seeded = new Set<string>();
  /** New agents admitted under the quota whose definition is still being stored. */
  private creating = 0;
  private globalKill = false;

  constructor(private readonly deps: AgentEngineDependencies) {}

  /** Loads stored definitions and their state; a definition that no longer compiles is reported and skipped. */
  async start(): Promise<void> {
    this.globalKill = (await this.deps.store.getSetting(KILL_SWITCH)) === 'engaged';
    for (const definition of await this.deps.store.definitions()) {
      const compiled = compileAgent(definition);
      if ('problems' in compiled) {
        this.deps.onError(new Error(compiled.problems.map((p) => `${p.path} ${p.message}`).join('; ')), `agent ${definition.id} skipped`);
        continue;
      }
      const states = new Map(Object.entries(await this.deps.store.loadStates(definition.id)));
      this.agents.set(definition.id, { spec: compiled.spec, states });
    }
  }

  // ---- definitions -------------------------------------------------------------------------

  /** Creates or replaces an agent. State is kept across updates unless windows/detectors change shape. */
  async put(input: unknown, options: { create: boolean }): Promise<AgentDefinition> {
    const compiled = compileAgent(input);
    if ('problems' in compiled) {
      throw invalid(`agent definition has ${compiled.problems.length} problem(s)`, compiled.problems satisfies DefinitionProblem[]);
    }
    const { spec } = compiled;
    const existing = this.agents.get(spec.id);
    if (options.create && existing) throw conflict(`agent "${spec.id}" already exists: use PUT /api/v1/agents/${spec.id} to change it`);
    if (!existing) {
      // Checked and reserved before the first await, so creations at the same time cannot pass the quota together.
      this.deps.admitAgent?.(this.agents.size + this.creating);
      this.creating++;
    }
    try {
      await this.deps.store.putDefinition(spec.definition);
    } finally {
      if (!existing) this.creating--;
    }
    const sameShape =
      existing &&
      JSON.stringify([existing.spec.definition.perceive.windows, existing.spec.definition.judge.detectors]) ===
        JSON.stringify([spec.definition.perceive.windows, spec.definition.judge.detectors]);
    if (existing && !sameShape) await this.deps.store.deleteStates(spec.id);
    this.agents.set(spec.id, { spec, states: sameShape && existing ? existing.states : new Map() });
    this.events.emit('definition.changed', { agentId: spec.id });
    return spec.definition;
  }

  async remove(id: string): Promise<void> {
    this.running(id);
    this.agents.delete(id);
    await this.deps.store.deleteDefinition(id);
    await this.deps.store.deleteStates(id);
    this.events.emit('definition.changed', { agentId: id });
  }

  list(): AgentDefinition[] {
    return [...this.agents.values()].map((a) => a.spec.definition);
  }

  get(id: string): AgentDefinition {
    return this.running(id).spec.definition;
  }

  async setMode(id: string, mode: AgentMode): Promise<AgentDefinition> {
    return this.put({ ...this.get(id), mode }, { create: false });
  }

  async setEnabled(id: string, enabled: boolean): Promise<AgentDefinition> {
    return this.put({ ...this.get(id), enabled }, { create: false });
  }

  async setGlobalKill(engaged: boolean): Promise<void> {
    this.globalKill = engaged;
    await this.deps.store.setSetting(KILL_SWITCH, engaged ? 'engaged' : 'released');
  }

  get killSwitchEngaged(): boolean {
    return this.globalKill;
  }

  private running(id: string): RunningAgent {
    const agent = this.agents.get(id);
    if (!agent) throw notFound(`no agent "${id}"`);
    return agent;
  }

  // ---- perception and judgment ---------------------------------------------------------------

  /** Feeds accepted telemetry. Evaluations of one (agent, device) run strictly in order. */
  onTelemetry(device: DeviceRecord, samples: TelemetrySample[]): void {
    let latest = this.latest.get(device.id);
    if (!latest) {
      latest = {};
      this.latest.set(device.id, latest);
    }
    // Updated in place: one new object per value per sample was a visible share of GC at
    // tens of thousands of samples a second.
    for (const sample of samples) {
      for (const key in sample.values) {
        const value = sample.values[key] as JsonValue;
        const current = latest[key];
        if (!current) latest[key] = { value, ts: sample.ts };
        else if (current.ts <= sample.ts) {
          current.value = value;
          current.ts = sample.ts;
        }
      }
    }
    if (!this.deps.evaluates(device)) return;
    for (const agent of this.agents.values()) {
      if (!selects(agent.spec, device)) continue;
      for (const sample of samples) this.enqueue(agent, device, () => this.evaluate(agent, device, sample));
    }
  }

  /** Resolves once every queued evaluation has run (tests and shutdown). */
  async idle(): Promise<void> {
    while (this.chains.size > 0) await Promise.all([...this.chains.values()]);
  }

  private enqueue(agent: RunningAgent, device: DeviceRecord, work: () => Promise<void>): void {
    const key = `${agent.spec.id}\u0000${device.id}`;
    const previous = this.chains.get(key) ?? Promise.resolve();
    const next = previous
      .then(work)
      .catch((error) => this.deps.onError(error, `agent ${agent.spec.id} on ${device.id}`))
      .finally(() => {
        if (this.chains.get(key) === next) this.chains.delete(key);
      });
    this.chains.set(key, next);
  }

  private stateOf(agent: RunningAgent, deviceId: string): AgentDeviceState {
    let state = agent.states.get(deviceId);
    if (!state) {
      state = freshState(agent.spec);
      agent.states.set(deviceId, state);
    }
    return state;
  }

  /** Fills in readings the engine has not seen since it started, from the device's twin. */
  private async seed(device: DeviceRecord): Promise<void> {
    if (this.seeded.has(device.id)) return;
    this.seeded.add(device.id);
    const reported = await this.deps.plant.reported(device);
    const latest = this.latest.get(device.id) ?? {};
    for (const [key, entry] of Object.entries(reported)) {
      if (!latest[key] || latest[key].ts < entry.ts) latest[key] = { value: entry.value, ts: entry.ts };
    }
    this.latest.set(device.id, latest);
  }

  private async evaluate(agent: RunningAgent, device: DeviceRecord, sample: TelemetrySample): Promise<void> {
    const { spec } = agent;
    await this.seed(device);
    const state = this.stateOf(agent, device.id);
    for (const [name, window] of Object.entries(spec.windows)) {
      const value = sample.values[window.spec.property];
      if (typeof value === 'number') {
        state.windows[name] = pushWindow(
          state.windows[name] ?? newWindow(window.spec),
          window.spec,
          { ms: window.sizeMs, count: window.sizeCount },
          sample.ts,
          value,
        );
      }
    }
    for (const [name, detector] of Object.entries(spec.detectors)) {
      const slot = state.detectors[name] ?? { state: newDetector(detector), flagged: false, score: null };
      const value = detector.kind === 'missing' ? 0 : sample.values[detector.property ?? ''];
      if (typeof value === 'number') state.detectors[name] = { ...observe(detector, slot.state, sample.ts, value) };
    }
    this.dirty.add(`${spec.id}\u0000${device.id}`);
    await this.judgeAndAct(agent, device, state, sample.ts, 'condition');
  }

  private async judgeAndAct(
    agent: RunningAgent,
    device: DeviceRecord,
    state: AgentDeviceState,
    ts: number,
    trigger: DecisionRecord['trigger'],
  ): Promise<void> {
    const { spec } = agent;
    const scope = await this.scopeOf(agent, device, state);
    if (state.verifying) await this.checkVerification(agent, device, state, scope);
    const flagged = Object.entries(state.detectors)
      .filter(([, d]) => d.flagged)
      .map(([name]) => name);
    const when = spec.when ? holds(spec.when, scope) : flagged.length > 0;
    const clear = spec.clear ? holds(spec.clear, scope) : !when;
    const step = judge(state.judgment, { when, clear, ts, forMs: spec.forMs, clearForMs: spec.clearForMs });
    state.judgment = step.state;
    // A recovery ends the episode: a later heat-up is a new episode for the judgment, not a re-opening.
    if (step.recovered && state.verifying) await this.endWatch(agent, device, state, state.verifying, 'recovered');
    if (step.fired) await this.decide(agent, device, state, scope, flagged, trigger);
    if (step.recovered && spec.alarm?.clearOnRecovery) await this.deps.alarms.recovered(spec.id, device.id, spec.alarm.type);
  }

  private async related(agent: RunningAgent, device: DeviceRecord): Promise<Record<string, DeviceRecord | null>> {
    const result: Record<string, DeviceRecord | null> = {};
    for (const [name, relation] of Object.entries(agent.spec.definition.perceive.related ?? {})) {
      const value = device.attributes[relation.sameAttribute];
      const peers = value === undefined ? [] : await this.deps.plant.peers(relation.model, relation.sameAttribute, value);
      const peer = peers.find((candidate) => candidate.id !== device.id) ?? null;
      if (peer) await this.seed(peer);
      result[name] = peer;
    }
    return result;
  }

  private valuesOf(deviceId: string): Record<string, JsonValue> {
    return Object.fromEntries(Object.entries(this.latest.get(deviceId) ?? {}).map(([key, entry]) => [key, entry.value]));
  }

  private async scopeOf(agent: RunningAgent, device: DeviceRecord, state: AgentDeviceState): Promise<Scope> {
    const values = this.valuesOf(device.id);
    const scope: Scope = { ...values, reported: values, attributes: device.attributes, device: { id: device.id, model: device.model } };
    for (const [name, window] of Object.entries(agent.spec.windows)) {
      const windowState = state.windows[name];
      scope[name] = windowState ? windowValue(windowState, window.spec) : null;
    }
    for (const [name, detector] of Object.entries(state.detectors)) scope[name] = detector.flagged;
    for (const [name, peer] of Object.entries(await this.related(agent, device))) scope[name] = peer ? this.valuesOf(peer.id) : null;
    return scope;
  }

  // ---- decision and action -------------------------------------------------------------------

  private async decide(
    agent: RunningAgent,
    device: DeviceRecord,
    state: AgentDeviceState,
    scope: Scope,
    flagged: string[],
    trigger: DecisionRecord['trigger'],
  ): Promise<void> {
    const { spec } = agent;
    const now = this.deps.now();
    const related = await this.related(agent, device);
    const decision: DecisionRecord = {
      id: randomUUID(),
      agentId: spec.id,
      deviceId: device.id,
      ts: now,
      mode: spec.mode,
      trigger,
      inputs: {
        // Copies: the latest-value entries are updated in place as samples arrive.
        values: Object.fromEntries(Object.entries(this.latest.get(device.id) ?? {}).map(([key, entry]) => [key, { ...entry }])),
        windows: Object.fromEntries(Object.keys(spec.windows).map((name) => [name, (scope[name] as number | null) ?? null])),
        detectors: Object.fromEntries(Object.entries(state.detectors).map(([name, d]) => [name, { flagged: d.flagged, score: d.score }])),
        related: Object.fromEntries(Object.entries(related).map(([name, peer]) => [name, peer?.id ?? null])),
      },
      judgment: {
        ...(spec.when ? { condition: spec.when.source } : {}),
        detectorsFlagged: flagged,
        summary: spec.when
          ? `${spec.when.source} held${spec.forMs ? ` for ${spec.forMs / 1000}s` : ''}`
          : `detector(s) flagged: ${flagged.join(', ')}`,
      },
      actions: [],
      safety: { passed: [] },
      outcome: 'refused',
    };
    const planned = await this.plan(agent, device, scope, related);
    decision.actions = planned.actions;
    const verdict = planned.problem
      ? { passed: [], refused: planned.problem }
      : checkEnvelope(spec, planned.writes, this.safetyContext(agent, state, scope), { isRetry: false });
    decision.safety = verdict;
    if (spec.alarm) {
      const alarm = await this.deps.alarms.raise({
        agentId: spec.id,
        deviceId: device.id,
        type: spec.alarm.type,
        severity: spec.alarm.severity,
        message: `${spec.definition.name ?? spec.id}: ${decision.judgment.summary} on ${device.id}`,
        decisionId: decision.id,
      });
      decision.alarmId = alarm.id;
    }
    if (verdict.refused || decision.actions.length === 0) {
      decision.outcome = verdict.refused ? 'refused' : 'executed';
    } else if (spec.mode === 'shadow') {
      decision.outcome = 'shadow';
    } else if (spec.mode === 'approve') {
      decision.outcome = 'awaiting-approval';
      decision.approval = { expiresAt: now + spec.approvalExpiresMs };
    } else {
      await this.execute(agent, device, state, decision, false);
    }
    await this.deps.store.insertDecision(decision);
  }

  /** Works out what each step would write or invoke; a value that cannot be computed refuses the decision. */
  private async plan(
    agent: RunningAgent,
    device: DeviceRecord,
    scope: Scope,
    related: Record<string, DeviceRecord | null>,
  ): Promise<{ actions: PlannedAction[]; writes: PlannedWrite[]; problem?: string }> {
    const actions: PlannedAction[] = [];
    const writes: PlannedWrite[] = [];
    for (const step of agent.spec.steps) {
      const target = step.target === 'self' ? device : related[step.target];
      if (!target) return { actions, writes, problem: `no related device "${step.target}" for ${device.id}` };
      if (step.kind === 'set' && step.property && step.value) {
        const value = step.value.evaluate(scope);
        if (value === undefined || value === null || (typeof value === 'number' && !Number.isFinite(value))) {
          return {
            actions,
            writes,
            problem: `value of ${target.id}.${step.property} (${step.value.source}) could not be computed: missing data?`,
          };
        }
        const desired = await this.deps.plant.desired(target);
        const previous = desired[step.property] ?? null;
        const current = previous ?? this.latest.get(target.id)?.[step.property]?.value;
        const rounded = typeof value === 'number' ? Number(value.toFixed(6)) : (value as JsonValue);
        actions.push({ kind: 'set', deviceId: target.id, property: step.property, value: rounded, previous });
        writes.push({
          deviceId: target.id,
          property: step.property,
          value: rounded as PlannedWrite['value'],
          current: current as PlannedWrite['current'],
        });
      } else if (step.kind === 'invoke' && step.action) {
        const input = Object.fromEntries(
          Object.entries(step.input ?? {}).map(([key, expression]) => [key, (expression.evaluate(scope) ?? null) as JsonValue]),
        );
        actions.push({ kind: 'invoke', deviceId: target.id, action: step.action, ...(step.input ? { input } : {}) });
      }
    }
    return { actions, writes };
  }

  private safetyContext(agent: RunningAgent, state: AgentDeviceState, scope: Scope) {
    return {
      now: this.deps.now(),
      lastActionAt: state.lastActionAt,
      recentActions: state.recentActions,
      agentEnabled: agent.spec.enabled,
      globalKill: this.globalKill,
      interlocksHolding: agent.spec.safety.interlocks.filter((interlock) => holds(interlock, scope)).map((i) => i.source),
    };
  }

  private async execute(
    agent: RunningAgent,
    device: DeviceRecord,
    state: AgentDeviceState,
    decision: DecisionRecord,
    isRetry: boolean,
  ): Promise<void> {
    const actor = `agent:${agent.spec.id}`;
    const now = this.deps.now();
    let failed = false;
    for (const action of decision.actions) {
      try {
        const target = action.deviceId === device.id ? device : await this.deps.plant.device(action.deviceId);
        if (!target) throw new Error(`device ${action.deviceId} no longer exists`);
        if (action.kind === 'set' && action.property) {
          await this.deps.plant.setDesired(target, { [action.property]: action.value ?? null }, actor);
        } else if (action.kind === 'invoke' && action.action) {
          action.invocationId = (await this.deps.plant.invoke(target, action.action, action.input, actor)).id;
        }
      } catch (error) {
        action.error = (error as Error).message;
        failed = true;
      }
    }
    decision.outcome = failed ? 'failed' : 'executed';
    if (!isRetry) {
      state.lastActionAt = now;
      state.recentActions = [...state.recentActions.filter((t) => now - t < 3_600_000), now];
    }
    const verify = agent.spec.verify;
    if (verify && !failed) {
      const earlier = decision.verification;
      decision.verification = {
        expect: verify.expect.source,
        deadline: now + verify.withinMs,
        status: 'pending',
        attempts: (earlier?.attempts ?? 0) + 1,
        holdForMs: verify.holdForMs,
        watchForMs: verify.watchForMs,
        // A retry keeps what broke before and when the loop re-opened: the record tells the whole story.
        ...(earlier?.broken ? { broken: earlier.broken } : {}),
        ...(earlier?.reopenedAt !== undefined ? { reopenedAt: earlier.reopenedAt } : {}),
        followUp: earlier?.followUp ?? [],
      };
      if (state.verifying && state.verifying !== decision.id) await this.endWatch(agent, device, state, state.verifying, 'superseded');
      state.verifying = decision.id;
      await this.saveNow(agent.spec.id, device.id, state);
    }
  }

  // ---- verification --------------------------------------------------------------------------

  private async checkVerification(agent: RunningAgent, device: DeviceRecord, state: AgentDeviceState, scope: Scope): Promise<void> {
    const decision = state.verifying ? await this.deps.store.decision(state.verifying) : undefined;
    if (!agent.spec.verify || !decision || !verificationOpen(decision.verification)) {
      delete state.verifying;
      return;
    }
    await this.advanceVerification(agent, device, state, decision, scope);
  }

  /**
   * One step of a verification on what the agent sees now: `pending` → `holding` when `expect`
   * holds, `holding` → `verified` once it held for `holdFor` (or fails when it breaks),
   * `verified` → re-opened when it breaks within the watch, and the watch ends after `watchFor`.
   */
  private async advanceVerification(
    agent: RunningAgent,
    device: DeviceRecord,
    state: AgentDeviceState,
    decision: DecisionRecord,
    scope: Scope,
  ): Promise<void> {
    const verify = agent.spec.verify;
    const verification = decision.verification;
    if (!verify || !verification) return;
    const now = this.deps.now();
    // `atDecision.x` is what x was when the agent acted, so "it fell" can be expressed.
    const atDecision = Object.fromEntries(Object.entries(decision.inputs.values).map(([key, entry]) => [key, entry.value]));
    const holding = holds(verify.expect, { ...scope, atDecision });
    if (verification.status === 'pending') {
      if (!holding) return;
      // Records from before holdFor existed verify at once, as they did then.
      const holdForMs = verification.holdForMs ?? 0;
      if (holdForMs <= 0) return this.verified(agent, device, state, decision, verification, now);
      verification.status = 'holding';
      verification.holding = { since: now, until: now + holdForMs };
      verification.checkedAt = now;
      await this.deps.store.updateDecision(decision);
      await this.saveNow(agent.spec.id, device.id, state);
    } else if (verification.status === 'holding') {
      if (!holding) return this.expectationBroke(agent, device, state, decision, verification, scope, 'hold');
      if (now >= (verification.holding?.until ?? now)) await this.verified(agent, device, state, decision, verification, now);
    } else if (verification.status === 'verified' && verification.watch && verification.watch.endedAt === undefined) {
      if (now >= verification.watch.until) await this.endWatch(agent, device, state, decision.id, 'elapsed');
      else if (!holding) await this.expectationBroke(agent, device, state, decision, verification, scope, 'watch');
    }
  }

  private async verified(
    agent: RunningAgent,
    device: DeviceRecord,
    state: AgentDeviceState,
    decision: DecisionRecord,
    verification: Verification,
    now: number,
  ): Promise<void> {
    verification.status = 'verified';
    verification.verifiedAt = now;
    verification.checkedAt = now;
    const watchForMs = verification.watchForMs ?? 0;
    if (watchForMs > 0) verification.watch = { until: now + watchForMs };
    else if (state.verifying === decision.id) delete state.verifying;
    await this.deps.store.updateDecision(decision);
    await this.saveNow(agent.spec.id, device.id, state);
  }

  /** Ends the watch of a verified decision (others are left alone): the effect is no longer this decision's to answer for. */
  private async endWatch(
    agent: RunningAgent,
    device: DeviceRecord,
    state: AgentDeviceState,
    decisionId: string,
    reason: NonNullable<Verification['watch']>['ended'],
  ): Promise<void> {
    const decision = await this.deps.store.decision(decisionId);
    const watch = decision?.verification?.status === 'verified' ? decision.verification.watch : undefined;
    if (state.verifying === decisionId && (!decision || !verificationOpen(decision.verification) || watch)) delete state.verifying;
    if (!decision || !watch || watch.endedAt !== undefined) return;
    watch.endedAt = this.deps.now();
    if (reason) watch.ended = reason;
    await this.deps.store.updateDecision(decision);
    await this.saveNow(agent.spec.id, device.id, state);
  }

  /** The values an expectation reads, as seen now: what goes on the record when it breaks. */
  private observed(agent: RunningAgent, deviceId: string, scope: Scope, source: string): Record<string, { value: JsonValue; ts?: number }> {
    const latest = this.latest.get(deviceId) ?? {};
    const observed: Record<string, { value: JsonValue; ts?: number }> = {};
    for (const name of source.match(/[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*/g) ?? []) {
      const key = name.startsWith('reported.') ? name.slice('reported.'.length) : name;
      const reading = latest[key];
      if (reading) observed[key] = { value: reading.value, ts: reading.ts };
      else if (key in agent.spec.windows) observed[key] = { value: (scope[key] as JsonValue | undefined) ?? null };
    }
    if (Object.keys(observed).length > 0) return observed;
    // An expectation on related devices or detectors only: the device's own readings still say what it was doing.
    return Object.fromEntries(Object.entries(latest).map(([key, entry]) => [key, { value: entry.value, ts: entry.ts }]));
  }

  /** `expect` broke after it had held: during the hold it fails; after verification (within the watch) the loop re-opens. */
  private async expectationBroke(
    agent: RunningAgent,
    device: DeviceRecord,
    state: AgentDeviceState,
    decision: DecisionRecord,
    verification: Verification,
    scope: Scope,
    during: 'hold' | 'watch',
  ): Promise<void> {
    const now = this.deps.now();
    const values = this.observed(agent, device.id, scope, verification.expect);
    verification.broken = [...(verification.broken ?? []), { at: now, during, values }];
    const seen = Object.entries(values)
      .map(([key, entry]) => `${key} ${JSON.stringify(entry.value)}`)
      .join(', ');
    if (during === 'hold') {
      const since = verification.holding?.since ?? now;
      verification.followUp.push(`held ${span(now - since)} of ${span(verification.holdForMs ?? 0)}, then broke (${seen})`);
      await this.failVerification(agent, device, state, decision, 'failed', 'did not hold');
    } else {
      verification.status = 'reopened';
      verification.reopenedAt = now;
      verification.followUp.push(`re-opened ${span(now - (verification.verifiedAt ?? now))} after verification (${seen})`);
      await this.failVerification(agent, device, state, decision, 'reopened', 'was lost after verification');
    }
  }

  /** Clock-driven work: verification deadlines, approval expiry, missing-data detectors. */
  async tick(): Promise<void> {
    const now = this.deps.now();
    for (const decision of await this.deps.store.openDecisions()) {
      if (decision.outcome === 'awaiting-approval' && decision.approval && decision.approval.expiresAt <= now) {
        decision.outcome = 'expired';
        decision.approval.verdict = 'expired';
        decision.approval.decidedAt = now;
        await this.deps.store.updateDecision(decision);
      } else if (decision.verification && verificationOpen(decision.verification)) {
        const verification = decision.verification;
        const pendingTooLong = verification.status === 'pending' && verification.deadline <= now;
        // A hold that ran its time, or a watch that did: settled on what the agent sees now, without waiting for a sample.
        const settles =
          (verification.status === 'holding' && (verification.holding?.until ?? now) <= now) ||
          (verification.status === 'verified' && (verification.watch?.until ?? now) <= now);
        if (!pendingTooLong && !settles) continue;
        const agent = this.agents.get(decision.agentId);
        const device = await this.deps.plant.device(decision.deviceId);
        if (!agent || !device) continue;
        this.enqueue(agent, device, () =>
          pendingTooLong ? this.verificationFailed(agent, device, decision.id) : this.settleVerification(agent, device, decision.id),
        );
      }
    }
    for (const agent of this.agents.values()) {
      const missing = Object.entries(agent.spec.detectors).filter(([, d]) => d.kind === 'missing');
      if (missing.length === 0) continue;
      for (const [deviceId, state] of agent.states) {
        const device = await this.deps.plant.device(deviceId);
        if (!device) continue;
        let changed = false;
        for (const [name, detector] of missing) {
          const slot = state.detectors[name];
          if (!slot) continue;
          const flagged = silence(detector, slot.state, now, device.network.reportIntervalMs);
          if (flagged !== slot.flagged) {
            state.detectors[name] = { ...slot, flagged };
            changed = true;
          }
        }
        if (changed) this.enqueue(agent, device, () => this.judgeAndAct(agent, device, state, now, 'missing-data'));
      }
    }
    await this.idle();
  }

  private async settleVerification(agent: RunningAgent, device: DeviceRecord, decisionId: string): Promise<void> {
    const decision = await this.deps.store.decision(decisionId);
    if (!decision || !verificationOpen(decision.verification)) return;
    await this.seed(device);
    const state = this.stateOf(agent, device.id);
    await this.advanceVerification(agent, device, state, decision, await this.scopeOf(agent, device, state));
  }

  private async verificationFailed(agent: RunningAgent, device: DeviceRecord, decisionId: string): Promise<void> {
    const decision = await this.deps.store.decision(decisionId);
    if (decision?.verification?.status !== 'pending' || !agent.spec.verify) return;
    await this.failVerification(agent, device, this.stateOf(agent, device.id), decision, 'failed', 'not verified');
  }

  /**
   * What the agent says to do when an effect is not there: a new attempt while retries last,
   * then escalation and/or rollback; `status` is where the verification ends (`failed`, or
   * `reopened` for an effect lost after verification).
   */
  private async failVerification(
    agent: RunningAgent,
    device: DeviceRecord,
    state: AgentDeviceState,
    decision: DecisionRecord,
    status: 'failed' | 'reopened',
    effect: string,
  ): Promise<void> {
    const verify = agent.spec.verify;
    if (!verify || !decision.verification) return;
    if (decision.verification.attempts <= verify.retries) {
      decision.verification.followUp.push(`retried (attempt ${decision.verification.attempts + 1})`);
      const scope = await this.scopeOf(agent, device, state);
      const verdict = checkEnvelope(agent.spec, writesOf(decision), this.safetyContext(agent, state, scope), { isRetry: true });
      if (!verdict.refused) {
        await this.execute(agent, device, state, decision, true);
        await this.deps.store.updateDecision(decision);
        return;
      }
      decision.verification.followUp.push(`retry refused: ${verdict.refused}`);
    }
    decision.verification.status = status;
    decision.verification.checkedAt = this.deps.now();
    if (state.verifying === decision.id) delete state.verifying;
    for (const step of verify.onFailure) {
      if (step === 'escalate' && agent.spec.alarm) {
        const alarm = await this.deps.alarms.raise({
          agentId: agent.spec.id,
          deviceId: device.id,
          type: agent.spec.alarm.type,
          severity: agent.spec.alarm.escalateTo,
          message: `${agent.spec.definition.name ?? agent.spec.id}: effect ${effect} on ${device.id} (${verify.expect.source} did not hold)`,
          decisionId: decision.id,
        });
        decision.alarmId = alarm.id;
        decision.verification.followUp.push(`escalated to ${agent.spec.alarm.escalateTo}`);
      }
      if (step === 'rollback') {
        const restored = await this.rollback(agent, device, decision);
        decision.verification.followUp.push(`rolled back ${restored.join(', ') || 'nothing'}`);
      }
    }
    await this.deps.store.updateDecision(decision);
    await this.saveNow(agent.spec.id, device.id, state);
  }

  private async rollback(agent: RunningAgent, device: DeviceRecord, decision: DecisionRecord): Promise<string[]> {
    const restored: string[] = [];
    for (const action of decision.actions) {
      if (action.kind !== 'set' || !action.property) continue;
      const target = action.deviceId === device.id ? device : await this.deps.plant.device(action.deviceId);
      if (!target) continue;
      await this.deps.plant.setDesired(target, { [action.property]: action.previous ?? null }, `agent:${agent.spec.id} (rollback)`);
      restored.push(`${action.deviceId}.${action.property} → ${JSON.stringify(action.previous ?? null)}`);
    }
    return restored;
  }

  // ---- approvals and records -----------------------------------------------------------------

  async approve(decisionId: string, by: string, note?: string): Promise<DecisionRecord> {
    const decision = await this.awaiting(decisionId);
    const agent = this.running(decision.agentId);
    const device = await this.deps.plant.device(decision.deviceId);
    if (!device) throw notFound(`device ${decision.deviceId} no longer exists`);
    const now = this.deps.now();
    decision.approval = {
      ...(decision.approval ?? { expiresAt: now }),
      decidedBy: by,
      decidedAt: now,
      verdict: 'approved',
      ...(note !== undefined ? { note } : {}),
    };
    const state = this.stateOf(agent, device.id);
    // The plant may have changed while the decision waited: the envelope is checked again.
    const verdict = checkEnvelope(
      agent.spec,
      writesOf(decision),
      this.safetyContext(agent, state, await this.scopeOf(agent, device, state)),
      {
        isRetry: false,
      },
    );
    decision.safety = {
      passed: [...decision.safety.passed, ...verdict.passed.map((p) => `at approval: ${p}`)],
      ...(verdict.refused ? { refused: verdict.refused } : {}),
    };
    if (verdict.refused) decision.outcome = 'refused';
    else await this.execute(agent, device, state, decision, false);
    await this.deps.store.updateDecision(decision);
    return decision;
  }

  async reject(decisionId: string, by: string, note?: string): Promise<DecisionRecord> {
    const decision = await this.awaiting(decisionId);
    const now = this.deps.now();
    decision.outcome = 'rejected';
    decision.approval = {
      ...(decision.approval ?? { expiresAt: now }),
      decidedBy: by,
      decidedAt: now,
      verdict: 'rejected',
      ...(note !== undefined ? { note } : {}),
    };
    await this.deps.store.updateDecision(decision);
    return decision;
  }

  private async awaiting(decisionId: string): Promise<DecisionRecord> {
    const decision = await this.deps.store.decision(decisionId);
    if (!decision) throw notFound(`no decision "${decisionId}"`);
    if (decision.outcome !== 'awaiting-approval') throw conflict(`decision ${decisionId} is ${decision.outcome}, not awaiting approval`);
    if (decision.approval && decision.approval.expiresAt <= this.deps.now())
      throw conflict(`decision ${decisionId} expired while awaiting approval`);
    return decision;
  }

  decisions(query: DecisionQuery): Promise<DecisionRecord[]> {
    return this.deps.store.decisions(query);
  }

  async decision(id: string): Promise<DecisionRecord> {
    const decision = await this.deps.store.decision(id);
    if (!decision) throw notFound(`no decision "${id}"`);
    return decision;
  }

  pendingApprovals(): Promise<DecisionRecord[]> {
    return this.deps.store.decisions({ outcome: 'awaiting-approval' satisfies DecisionOutcome, limit: 1000 });
  }

  // ---- persistence ---------------------------------------------------------------------------

  private async saveNow(agentId: string, deviceId: string, state: AgentDeviceState): Promise<void> {
    this.dirty.delete(`${agentId}\u0000${deviceId}`);
    await this.deps.store.saveStates([{ agentId, deviceId, state }]);
  }

  /** Saves state changed since the last flush (windows, detectors, judgment). */
  async flush(): Promise<void> {
    if (this.dirty.size === 0) return;
    const entries = [...this.dirty].flatMap((key) => {
      const [agentId, deviceId] = key.split('\u0000') as [string, string];
      const state = this.agents.get(agentId)?.states.get(deviceId);
      return state ? [{ agentId, deviceId, state }] : [];
    });
    this.dirty.clear();
    await this.deps.store.saveStates(entries);
  }
}
