/**
 * Agents on a real node: devices report over MQTT, agents act through twins and actions, and
 * everything is observed through the REST API. Time is a ManualClock; nothing sleeps.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AgentDefinition, DecisionRecord } from '../src/agents/index.js';
import { ManualClock } from '../src/time/index.js';
import {
  alarmById,
  alarmsOf,
  connectPlantDevice,
  createAgent,
  decisionById,
  decisionsOf,
  invocationsOf,
  onlyNewDecision,
  type PlantDevice,
  plantDevice,
  putModels,
  setDesired,
  twinOf,
} from './support/agents.js';
import { startTestNode, type TestNode } from './support/harness.js';

const SECOND = 1_000;
const MINUTE = 60_000;

/** A simple overheating agent for `ids`; `extra` overrides any top-level part. */
function hotAgent(id: string, ids: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    perceive: { devices: { ids } },
    judge: { when: 'temperature > 80', clear: 'temperature < 70' },
    act: { steps: [{ set: { property: 'speed', value: 'clamp(reported.speed - 10, 30, 100)' } }] },
    ...extra,
  };
}

describe('agents on a node (ManualClock, real MQTT and HTTP)', () => {
  let t: TestNode;
  const clock = new ManualClock(Date.now());

  before(async () => {
    t = await startTestNode({}, clock);
    await putModels(t);
  });
  after(() => t.stop());

  test('debounced trigger → desired write → verified; one decision per episode; alarm cleared on recovery', async () => {
    const pump = await plantDevice(t, 'v-pump');
    await createAgent(
      t,
      hotAgent('verify-ok', ['v-pump'], {
        judge: { when: 'temperature > 80', clear: 'temperature < 70', for: '10s' },
        verify: { expect: 'temperature < atDecision.temperature - 2', within: '1m' },
        alarm: { type: 'overheat', severity: 'major' },
      }),
    );
    await pump.send({ temperature: 85, speed: 60 });
    clock.advance(5 * SECOND);
    await pump.send({ temperature: 86 });
    assert.equal((await decisionsOf(t, 'verify-ok')).length, 0, 'held 5 s of 10 s: no decision yet');
    clock.advance(5 * SECOND);
    await pump.send({ temperature: 87 });
    const decision = await onlyNewDecision(t, 'verify-ok', 'v-pump', 0);
    assert.equal(decision.outcome, 'executed');
    assert.equal(decision.trigger, 'condition');
    assert.deepEqual(
      decision.actions.map((a) => [a.kind, a.deviceId, a.property, a.value, a.previous]),
      [['set', 'v-pump', 'speed', 50, null]],
    );
    assert.equal(decision.verification?.status, 'pending');
    assert.equal((await twinOf(t, 'v-pump')).desired.speed, 50);
    assert.ok(decision.alarmId);
    assert.equal((await alarmById(t, decision.alarmId)).state, 'active');

    clock.advance(20 * SECOND);
    await pump.send({ temperature: 86 }); // still hot, but not 2 degrees below 87
    assert.equal((await decisionById(t, decision.id)).verification?.status, 'pending');
    clock.advance(10 * SECOND);
    await pump.send({ temperature: 84 });
    const holding = await decisionById(t, decision.id);
    assert.equal(holding.verification?.status, 'holding', 'it must hold for holdFor (half of within by default) first');
    assert.deepEqual(holding.verification?.holding, { since: clock.now(), until: clock.now() + 30 * SECOND });
    clock.advance(30 * SECOND);
    await pump.send({ temperature: 83 });
    const verified = await decisionById(t, decision.id);
    assert.equal(verified.verification?.status, 'verified');
    assert.equal(verified.verification?.attempts, 1);
    assert.equal((await decisionsOf(t, 'verify-ok')).length, 1, 'still hot: the same episode, no second decision');

    clock.advance(2 * MINUTE);
    await t.node.sweep();
    const watched = await decisionById(t, decision.id);
    assert.equal(watched.verification?.status, 'verified', 'a verified decision stays verified');
    assert.equal(watched.verification?.watch?.ended, 'elapsed', 'the watch (within by default) is over');
    await pump.send({ temperature: 65 });
    const alarm = await alarmById(t, decision.alarmId);
    assert.equal(alarm.state, 'cleared');
    assert.equal(alarm.clearedBy, 'agent:verify-ok');
  });

  test('verification failure: bounded retry, then escalate and roll back the previous desired value', async () => {
    const pump = await plantDevice(t, 'f-pump');
    await setDesired(t, 'f-pump', { speed: 70 });
    await createAgent(
      t,
      hotAgent('verify-fail', ['f-pump'], {
        verify: { expect: 'temperature < 75', within: '30s', retries: 1, onFailure: ['escalate', 'rollback'] },
        alarm: { type: 'overheat', severity: 'minor', escalateTo: 'critical' },
      }),
    );
    await pump.send({ temperature: 90, speed: 70 });
    const decision = await onlyNewDecision(t, 'verify-fail', 'f-pump', 0);
    assert.equal(decision.outcome, 'executed');
    assert.equal(decision.actions[0]?.previous, 70);
    assert.equal((await twinOf(t, 'f-pump')).desired.speed, 60);
    assert.equal((await alarmById(t, decision.alarmId ?? '')).severity, 'minor');

    // Someone moves the setpoint meanwhile; the retry sends the decision's value again.
    await setDesired(t, 'f-pump', { speed: 65 });
    clock.advance(31 * SECOND);
    await t.node.sweep();
    const retried = await decisionById(t, decision.id);
    assert.equal(retried.verification?.status, 'pending');
    assert.equal(retried.verification?.attempts, 2);
    assert.deepEqual(retried.verification?.followUp, ['retried (attempt 2)']);
    assert.equal((await twinOf(t, 'f-pump')).desired.speed, 60, 'the retry re-sent the action');

    await pump.send({ temperature: 88 });
    clock.advance(31 * SECOND);
    await t.node.sweep();
    const failed = await decisionById(t, decision.id);
    assert.equal(failed.verification?.status, 'failed');
    assert.equal(failed.verification?.attempts, 2, 'retries are bounded');
    assert.deepEqual(failed.verification?.followUp, ['retried (attempt 2)', 'escalated to critical', 'rolled back f-pump.speed → 70']);
    assert.equal((await twinOf(t, 'f-pump')).desired.speed, 70, 'the previous desired value is restored');
    const alarm = await alarmById(t, failed.alarmId ?? '');
    assert.equal(alarm.severity, 'critical');
    assert.equal(alarm.count, 2);
    assert.deepEqual(
      alarm.history.map((h) => [h.event, h.severity]),
      [
        ['raised', 'minor'],
        ['escalated', 'critical'],
      ],
    );

    clock.advance(5 * MINUTE);
    await t.node.sweep();
    const later = await decisionById(t, decision.id);
    assert.equal(later.verification?.attempts, 2, 'nothing more happens after the failure');
    assert.equal((await twinOf(t, 'f-pump')).desired.speed, 70);
  });

  test('envelope refusals are recorded and nothing is sent', async () => {
    const ids = ['e-maint', 'e-ok', 'e-noattr', 'e-bound', 'e-step'];
    const devices: Record<string, PlantDevice> = {};
    devices['e-maint'] = await plantDevice(t, 'e-maint', { attributes: { maintenance: true } });
    devices['e-ok'] = await plantDevice(t, 'e-ok', { attributes: { maintenance: false } });
    devices['e-noattr'] = await plantDevice(t, 'e-noattr');
    devices['e-bound'] = await plantDevice(t, 'e-bound');
    devices['e-step'] = await plantDevice(t, 'e-step');
    await createAgent(t, {
      id: 'envelope',
      perceive: { devices: { ids } },
      judge: { when: 'temperature > 80', clear: 'temperature < 70' },
      act: { steps: [{ set: { property: 'speed', value: 'target' } }, { invoke: { action: 'stop' } }] },
      safety: {
        bounds: { speed: { min: 30, max: 90, maxStep: 20 } },
        interlocks: ['attributes.maintenance == true'],
      },
    });
    const snapshot = async (id: string) => ({
      version: (await twinOf(t, id)).version,
      invocations: (await invocationsOf(t, id)).length,
    });
    const expectNothingSent = async (id: string, was: { version: number; invocations: number }) => {
      const twin = await twinOf(t, id);
      assert.equal(twin.version, was.version, `${id}: the twin did not change`);
      assert.equal(twin.desired.speed, undefined, `${id}: no desired speed`);
      assert.equal((await invocationsOf(t, id)).length, was.invocations, `${id}: no invocation`);
    };
    const trigger = async (id: string, values: Record<string, unknown>) => {
      const was = await snapshot(id);
      const count = (await decisionsOf(t, 'envelope', `?device=${id}`)).length;
      await devices[id]?.send({ temperature: 95, ...values });
      return { was, decision: await onlyNewDecision(t, 'envelope', id, count) };
    };

    // Interlock: only the device whose attribute is really `true` is refused.
    {
      const { was, decision } = await trigger('e-maint', { speed: 60, target: 50 });
      assert.equal(decision.outcome, 'refused');
      assert.equal(decision.safety.refused, 'interlock holds: attributes.maintenance == true');
      await expectNothingSent('e-maint', was);
    }
    for (const id of ['e-ok', 'e-noattr']) {
      const { decision } = await trigger(id, { speed: 60, target: 50 });
      assert.equal(decision.outcome, 'executed', id);
      assert.equal((await twinOf(t, id)).desired.speed, 50);
      const invocations = await invocationsOf(t, id);
      assert.deepEqual(
        invocations.map((i) => i.action),
        ['stop'],
      );
      assert.equal(decision.actions[1]?.invocationId, invocations[0]?.id);
    }
    // Hard bound and maximum step.
    {
      const { was, decision } = await trigger('e-bound', { speed: 40, target: 25 });
      assert.equal(decision.outcome, 'refused');
      assert.equal(decision.safety.refused, 'e-bound.speed = 25 is below the hard bound 30');
      await expectNothingSent('e-bound', was);
    }
    {
      const { was, decision } = await trigger('e-step', { speed: 80, target: 55 });
      assert.equal(decision.safety.refused, 'e-step.speed: step 80 → 55 exceeds the maximum step 20');
      await expectNothingSent('e-step', was);
      await devices['e-step']?.send({ temperature: 60 }); // recovered: the next reading starts a new episode
    }
    // The agent's own kill switch.
    {
      const { status, body } = await t.api<AgentDefinition>('/api/v1/agents/envelope/enabled', { method: 'PUT', body: { enabled: false } });
      assert.equal(status, 200);
      assert.equal(body.enabled, false);
      const { was, decision } = await trigger('e-step', { speed: 60, target: 50 });
      assert.equal(decision.outcome, 'refused');
      assert.equal(decision.safety.refused, 'agent disabled (kill switch)');
      await expectNothingSent('e-step', was);
      await devices['e-step']?.send({ temperature: 60 });
      assert.equal((await t.api('/api/v1/agents/envelope/enabled', { method: 'PUT', body: { enabled: true } })).status, 200);
    }
    // The global kill switch.
    {
      assert.deepEqual((await t.api('/api/v1/agents/kill-switch', { method: 'PUT', body: { engaged: true } })).body, { engaged: true });
      assert.deepEqual((await t.api('/api/v1/agents/kill-switch')).body, { engaged: true });
      try {
        const { was, decision } = await trigger('e-step', { speed: 60, target: 50 });
        assert.equal(decision.outcome, 'refused');
        assert.equal(decision.safety.refused, 'global kill switch engaged');
        await expectNothingSent('e-step', was);
        await devices['e-step']?.send({ temperature: 60 });
      } finally {
        await t.api('/api/v1/agents/kill-switch', { method: 'PUT', body: { engaged: false } });
      }
      const { decision } = await trigger('e-step', { speed: 60, target: 50 });
      assert.equal(decision.outcome, 'executed', 'released: the same write goes through');
      assert.equal((await twinOf(t, 'e-step')).desired.speed, 50);
    }
  });

  test('cooldown and max actions per hour', async () => {
    const pump = await plantDevice(t, 'c-pump');
    await createAgent(t, hotAgent('cooldown', ['c-pump'], { safety: { cooldown: '5m', maxActionsPerHour: 2 } }));
    let count = 0;
    const episode = async () => {
      await pump.send({ temperature: 90, speed: 70 });
      const decision = await onlyNewDecision(t, 'cooldown', 'c-pump', count++);
      await pump.send({ temperature: 60 });
      return decision;
    };
    assert.equal((await episode()).outcome, 'executed'); // T0
    clock.advance(1 * MINUTE);
    const cooling = await episode();
    assert.equal(cooling.outcome, 'refused');
    assert.equal(cooling.safety.refused, 'cooldown: last action 1m ago, cooldown is 5m');
    clock.advance(5 * MINUTE);
    assert.equal((await episode()).outcome, 'executed'); // T0 + 6m
    clock.advance(6 * MINUTE);
    const limited = await episode();
    assert.equal(limited.safety.refused, 'rate limit: 2 actions in the last hour, at most 2');
    clock.advance(50 * MINUTE); // T0 + 62m: the first action is more than an hour old
    const again = await episode();
    assert.equal(again.outcome, 'executed');
    assert.ok(again.safety.passed.includes('rate limit (1/2 per hour)'), again.safety.passed.join('; '));
  });

  test('approval mode: waits, approve re-checks the envelope, reject, expiry', async () => {
    const pump = await plantDevice(t, 'a-pump', { attributes: { maintenance: false } });
    await createAgent(
      t,
      hotAgent('approver', ['a-pump'], {
        mode: 'approve',
        approval: { expiresIn: '10m' },
        safety: { interlocks: ['attributes.maintenance == true'] },
      }),
    );
    let count = 0;
    const episode = async () => {
      await pump.send({ temperature: 90, speed: 70 });
      const decision = await onlyNewDecision(t, 'approver', 'a-pump', count++);
      await pump.send({ temperature: 60 });
      assert.equal(decision.outcome, 'awaiting-approval');
      assert.equal(decision.approval?.expiresAt, clock.now() + 10 * MINUTE);
      return decision;
    };

    const first = await episode();
    assert.equal((await twinOf(t, 'a-pump')).desired.speed, undefined, 'nothing is sent while waiting');
    const pending = await t.api<{ items: DecisionRecord[] }>('/api/v1/approvals');
    assert.deepEqual(
      pending.body.items.map((d) => d.id),
      [first.id],
    );
    const approved = await t.api<DecisionRecord>(`/api/v1/approvals/${first.id}/approve`, { method: 'POST', body: {} });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.outcome, 'executed');
    assert.equal(approved.body.approval?.verdict, 'approved');
    assert.ok(approved.body.safety.passed.includes('at approval: agent enabled'));
    assert.equal((await twinOf(t, 'a-pump')).desired.speed, 60);
    assert.equal((await t.api(`/api/v1/approvals/${first.id}/approve`, { method: 'POST', body: {} })).status, 409);

    const second = await episode();
    const rejected = await t.api<DecisionRecord>(`/api/v1/approvals/${second.id}/reject`, { method: 'POST', body: { note: 'no' } });
    assert.equal(rejected.body.outcome, 'rejected');
    assert.equal(rejected.body.approval?.verdict, 'rejected');
    const version = (await twinOf(t, 'a-pump')).version;

    // The plant changed while the decision waited: approval re-checks the envelope.
    const third = await episode();
    assert.equal((await t.api(`/api/v1/devices/a-pump`, { method: 'PATCH', body: { attributes: { maintenance: true } } })).status, 200);
    const refused = await t.api<DecisionRecord>(`/api/v1/approvals/${third.id}/approve`, { method: 'POST', body: {} });
    assert.equal(refused.body.outcome, 'refused');
    assert.equal(refused.body.safety.refused, 'interlock holds: attributes.maintenance == true');
    assert.equal((await twinOf(t, 'a-pump')).version, version, 'a refused approval sends nothing');
    assert.equal((await t.api(`/api/v1/devices/a-pump`, { method: 'PATCH', body: { attributes: { maintenance: false } } })).status, 200);

    const fourth = await episode();
    clock.advance(9 * MINUTE);
    await t.node.sweep();
    assert.equal((await decisionById(t, fourth.id)).outcome, 'awaiting-approval');
    clock.advance(1 * MINUTE);
    await t.node.sweep();
    const expired = await decisionById(t, fourth.id);
    assert.equal(expired.outcome, 'expired');
    assert.equal(expired.approval?.verdict, 'expired');
    assert.equal((await t.api(`/api/v1/approvals/${fourth.id}/approve`, { method: 'POST', body: {} })).status, 409);
    assert.equal((await twinOf(t, 'a-pump')).version, version, 'an expired decision sends nothing');
    assert.deepEqual((await t.api<{ items: DecisionRecord[] }>('/api/v1/approvals')).body.items, []);
  });

  test('shadow mode records the decision and sends nothing', async () => {
    const pump = await plantDevice(t, 's-pump');
    await createAgent(
      t,
      hotAgent('shadow', ['s-pump'], { act: { steps: [{ set: { property: 'speed', value: '40' } }, { invoke: { action: 'stop' } }] } }),
    );
    const mode = await t.api<AgentDefinition>('/api/v1/agents/shadow/mode', { method: 'PUT', body: { mode: 'shadow' } });
    assert.equal(mode.body.mode, 'shadow');
    const version = (await twinOf(t, 's-pump')).version;
    await pump.send({ temperature: 90, speed: 50 });
    const decision = await onlyNewDecision(t, 'shadow', 's-pump', 0);
    assert.equal(decision.outcome, 'shadow');
    assert.equal(decision.mode, 'shadow');
    assert.deepEqual(
      decision.actions.map((a) => [a.kind, a.property ?? a.action, a.value]),
      [
        ['set', 'speed', 40],
        ['invoke', 'stop', undefined],
      ],
    );
    assert.equal((await twinOf(t, 's-pump')).version, version);
    assert.deepEqual(await invocationsOf(t, 's-pump'), []);
  });

  test('missing data per the expected interval (ManualClock + sweep)', async () => {
    const sensor = await plantDevice(t, 'm-pump', { network: { profile: 'ethernet', reportInterval: '10s' } });
    await createAgent(t, {
      id: 'silence',
      perceive: { devices: { ids: ['m-pump'] } },
      judge: { detectors: { silent: { kind: 'missing', factor: 2 } } },
      alarm: { type: 'no-data', severity: 'warning' },
    });
    await sensor.send({ temperature: 40 });
    clock.advance(20 * SECOND); // exactly 2 intervals: still fine
    await t.node.sweep();
    assert.equal((await decisionsOf(t, 'silence')).length, 0);
    clock.advance(1 * SECOND);
    await t.node.sweep();
    const decision = await onlyNewDecision(t, 'silence', 'm-pump', 0);
    assert.equal(decision.trigger, 'missing-data');
    assert.deepEqual(decision.judgment.detectorsFlagged, ['silent']);
    assert.equal(decision.outcome, 'executed', 'nothing to do but alarm');
    const alarm = await alarmById(t, decision.alarmId ?? '');
    assert.equal(alarm.state, 'active');
    clock.advance(30 * SECOND);
    await t.node.sweep();
    assert.equal((await decisionsOf(t, 'silence')).length, 1, 'one decision per silence');
    await sensor.send({ temperature: 41 });
    assert.equal((await alarmById(t, alarm.id)).state, 'cleared', 'data is back: recovered');
  });

  test('joins: the related device of the same station gets the write', async () => {
    const pump = await plantDevice(t, 'j-pump', { attributes: { station: 'st-9' } });
    await t.registerDevice('j-valve-9', 'agent-valve', { attributes: { station: 'st-9' } });
    await t.registerDevice('j-valve-8', 'agent-valve', { attributes: { station: 'st-8' } });
    await createAgent(t, {
      id: 'join',
      perceive: { devices: { ids: ['j-pump'] }, related: { valve: { model: 'agent-valve', sameAttribute: 'station' } } },
      judge: { when: 'temperature > 80', clear: 'temperature < 70' },
      act: { steps: [{ set: { target: 'valve', property: 'position', value: '100' } }] },
    });
    await pump.send({ temperature: 90 });
    const decision = await onlyNewDecision(t, 'join', 'j-pump', 0);
    assert.equal(decision.outcome, 'executed');
    assert.deepEqual(decision.inputs.related, { valve: 'j-valve-9' });
    assert.deepEqual(
      decision.actions.map((a) => [a.deviceId, a.property, a.value]),
      [['j-valve-9', 'position', 100]],
    );
    assert.equal((await twinOf(t, 'j-valve-9')).desired.position, 100);
    assert.equal((await twinOf(t, 'j-valve-8')).desired.position, undefined);
    assert.equal((await twinOf(t, 'j-pump')).desired.position, undefined);
  });

  test('API: validation lists every problem; YAML; PUT, DELETE, mode, enabled; decisions by device and time', async () => {
    const invalid = await t.api<{ error: string; details: { path: string; message: string }[] }>('/api/v1/agents', {
      method: 'POST',
      body: {
        id: 'bad',
        perceive: { devices: { model: 'agent-pump' }, related: { valve: { sameAttribute: 'station' } } },
        judge: { when: 'temperature >> 1', for: '5 parsecs', detectors: { spike: { kind: 'zscore' } } },
        act: { steps: [{ set: { target: 'pipe', property: 'position', value: '1' } }] },
      },
    });
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body.error, 'invalid');
    assert.deepEqual(invalid.body.details.map((p) => p.path).sort(), [
      '/act/steps/0/target',
      '/judge/detectors/spike',
      '/judge/for',
      '/judge/when',
    ]);
    assert.equal((await t.api('/api/v1/agents/bad')).status, 404, 'nothing was stored');

    const shape = await t.api<{ details: unknown[] }>('/api/v1/agents', {
      method: 'POST',
      body: { id: 'shape', perceive: { devices: { ids: ['x'] } }, judge: { detectors: { d: { kind: 'nope', property: 'x' } } }, extra: 1 },
    });
    assert.equal(shape.status, 400);
    assert.ok(shape.body.details.length >= 2, JSON.stringify(shape.body));

    const yaml = [
      'id: api-agent',
      'name: From YAML',
      'perceive:',
      '  devices: { ids: [api-1, api-2] }',
      'judge:',
      '  when: temperature > 80',
      '  clear: temperature < 70',
      'act:',
      '  steps:',
      '    - set: { property: speed, value: "50" }',
    ].join('\n');
    const created = await t.api<AgentDefinition>('/api/v1/agents', {
      method: 'POST',
      raw: yaml,
      headers: { 'content-type': 'application/yaml' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.name, 'From YAML');
    assert.deepEqual(created.body.perceive.devices.ids, ['api-1', 'api-2']);
    const again = await t.api('/api/v1/agents', { method: 'POST', raw: yaml, headers: { 'content-type': 'application/yaml' } });
    assert.equal(again.status, 409);
    const badYaml = await t.api('/api/v1/agents', {
      method: 'POST',
      raw: 'id: [unclosed',
      headers: { 'content-type': 'application/yaml' },
    });
    assert.equal(badYaml.status, 400);

    const listed = await t.api<{ items: AgentDefinition[]; killSwitchEngaged: boolean }>('/api/v1/agents');
    assert.ok(listed.body.items.some((a) => a.id === 'api-agent'));
    assert.equal(listed.body.killSwitchEngaged, false);

    const replaced = await t.api<AgentDefinition>('/api/v1/agents/api-agent', {
      method: 'PUT',
      body: { ...created.body, id: undefined, name: 'Renamed' },
    });
    assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
    assert.equal(replaced.body.name, 'Renamed');
    assert.equal((await t.api('/api/v1/agents/api-agent', { method: 'PUT', body: { ...created.body, id: 'other' } })).status, 400);
    assert.equal((await t.api('/api/v1/agents/nope', { method: 'PUT', body: { ...created.body, id: 'nope' } })).status, 404);
    const badPut = await t.api<{ details: unknown[] }>('/api/v1/agents/api-agent', {
      method: 'PUT',
      body: { ...created.body, judge: { when: 'temperature >' } },
    });
    assert.equal(badPut.status, 400);
    assert.equal((await t.api<AgentDefinition>('/api/v1/agents/api-agent')).body.name, 'Renamed', 'a bad PUT changes nothing');
    assert.equal((await t.api('/api/v1/agents/api-agent/mode', { method: 'PUT', body: { mode: 'sometimes' } })).status, 400);
    assert.equal(
      (await t.api<AgentDefinition>('/api/v1/agents/api-agent/mode', { method: 'PUT', body: { mode: 'shadow' } })).body.mode,
      'shadow',
    );
    assert.equal((await t.api('/api/v1/agents/nope/enabled', { method: 'PUT', body: { enabled: false } })).status, 404);

    // Decisions from two devices at different times.
    const first = await plantDevice(t, 'api-1');
    const second = await plantDevice(t, 'api-2');
    const t0 = clock.now();
    await first.send({ temperature: 90 });
    clock.advance(10 * MINUTE);
    await second.send({ temperature: 90 });
    clock.advance(10 * MINUTE);
    await first.send({ temperature: 60 });
    await first.send({ temperature: 91 });
    const all = await decisionsOf(t, 'api-agent');
    assert.deepEqual(
      all.map((d) => d.deviceId),
      ['api-1', 'api-2', 'api-1'],
      'newest first',
    );
    assert.deepEqual(
      (await decisionsOf(t, 'api-agent', '?device=api-2')).map((d) => d.deviceId),
      ['api-2'],
    );
    assert.deepEqual(
      (await decisionsOf(t, 'api-agent', '?device=api-1')).map((d) => d.ts),
      [t0 + 20 * MINUTE, t0],
    );
    const window = await decisionsOf(t, 'api-agent', `?from=${t0 + 5 * MINUTE}&to=${t0 + 15 * MINUTE}`);
    assert.deepEqual(
      window.map((d) => [d.deviceId, d.ts]),
      [['api-2', t0 + 10 * MINUTE]],
    );
    assert.deepEqual(
      (await decisionsOf(t, 'api-agent', `?from=${new Date(t0 + MINUTE).toISOString()}&device=api-1`)).map((d) => d.ts),
      [t0 + 20 * MINUTE],
    );
    assert.equal((await t.api('/api/v1/agents/api-agent/decisions?from=yesterday-ish')).status, 400);
    const one = await decisionById(t, all[1]?.id ?? '');
    assert.equal(one.deviceId, 'api-2');
    assert.equal(one.outcome, 'shadow');
    assert.equal((await t.api('/api/v1/decisions/no-such-decision')).status, 404);

    assert.equal((await t.api('/api/v1/agents/api-agent', { method: 'DELETE' })).status, 204);
    assert.equal((await t.api('/api/v1/agents/api-agent')).status, 404);
    assert.equal((await t.api('/api/v1/agents/api-agent', { method: 'DELETE' })).status, 404);
    assert.equal((await t.api('/api/v1/agents/api-agent/decisions')).status, 404);
    await first.send({ temperature: 60 });
    await first.send({ temperature: 95 });
    assert.equal((await decisionById(t, all[0]?.id ?? '')).deviceId, 'api-1', 'records outlive the agent');
  });
});

describe('agents across a restart (keepData, same dataDir and clock)', () => {
  const clock = new ManualClock(Date.now());

  test('a pending verification, windows, judgment and cooldowns survive the restart', async () => {
    let t = await startTestNode({}, clock);
    const dataDir = t.config.dataDir;
    try {
      await putModels(t);
      const tokens: Record<string, string> = {};
      for (const id of ['r-ok', 'r-fail']) tokens[id] = (await plantDevice(t, id)).token;
      await createAgent(t, {
        id: 'restart',
        perceive: {
          devices: { ids: ['r-ok', 'r-fail'] },
          windows: { tempAvg: { property: 'temperature', kind: 'sliding', size: '5m', agg: 'avg' } },
        },
        judge: { when: 'tempAvg > 80', clear: 'tempAvg < 95' },
        act: { steps: [{ set: { property: 'speed', value: 'reported.speed - 10' } }] },
        verify: { expect: 'temperature < atDecision.temperature - 2', within: '1m', onFailure: ['escalate'] },
        safety: { cooldown: '10m' },
        alarm: { type: 'hot', severity: 'major', escalateTo: 'critical' },
      });
      const devices = async () => ({
        ok: await connectPlantDevice(t, 'r-ok', tokens['r-ok'] ?? ''),
        fail: await connectPlantDevice(t, 'r-fail', tokens['r-fail'] ?? ''),
      });
      let d = await devices();
      for (const device of [d.ok, d.fail]) {
        await device.send({ temperature: 100, speed: 70 });
        clock.advance(10 * SECOND);
        await device.send({ temperature: 100 });
      }
      const [failDecision, okDecision] = await decisionsOf(t, 'restart');
      assert.equal(okDecision?.deviceId, 'r-ok');
      assert.equal(failDecision?.deviceId, 'r-fail');
      assert.equal(okDecision?.verification?.status, 'pending');
      assert.equal(failDecision?.verification?.status, 'pending');

      clock.advance(20 * SECOND);
      await t.stop({ keepData: true });
      t = await startTestNode({ dataDir }, clock);
      d = await devices();

      // The window remembers the two 100s: avg (100 + 100 + 90) / 3 = 96.7 stays above `clear`
      // (a lost window would see 90 and recover, clearing the alarm); 90 < 100 - 2 starts the hold.
      await d.ok.send({ temperature: 90 });
      const holding = await decisionById(t, okDecision?.id ?? '');
      assert.equal(holding.verification?.status, 'holding');
      assert.equal((await decisionsOf(t, 'restart')).length, 2, 'the judgment stayed active: no new episode');
      assert.equal((await alarmById(t, okDecision?.alarmId ?? '')).state, 'active');

      await d.fail.send({ temperature: 99.5 });
      clock.advance(31 * SECOND); // past the deadline set before the restart
      await t.node.sweep();
      const failed = await decisionById(t, failDecision?.id ?? '');
      assert.equal(failed.verification?.status, 'failed');
      assert.deepEqual(failed.verification?.followUp, ['escalated to critical']);
      // The hold (30 s, half of within) ran its time on the same sweep: settled on the latest reading, 90.
      assert.equal((await decisionById(t, okDecision?.id ?? '')).verification?.status, 'verified');
      assert.equal((await alarmById(t, failed.alarmId ?? '')).severity, 'critical');

      // A new episode: the cooldown counts from the action taken before the restart.
      await d.fail.send({ temperature: 0 });
      await d.fail.send({ temperature: 0 });
      await d.fail.send({ temperature: 0 });
      const open = await alarmsOf(t, '?agent=restart&device=r-fail&state=all');
      assert.equal(open[0]?.state, 'cleared', 'recovered');
      await d.fail.send({ temperature: 300, speed: 60 });
      await d.fail.send({ temperature: 300 });
      const [latest] = await decisionsOf(t, 'restart', '?device=r-fail');
      assert.notEqual(latest?.id, failDecision?.id);
      assert.equal(latest?.outcome, 'refused');
      assert.match(latest?.safety.refused ?? '', /^cooldown: last action 61s ago, cooldown is 10m$/);
    } finally {
      await t.stop();
    }
  });

  test('after a restart, a decision computes from readings reported before it (seeded from the twin)', async () => {
    let t = await startTestNode({}, clock);
    const dataDir = t.config.dataDir;
    try {
      await putModels(t);
      const { token } = await plantDevice(t, 'r-seed');
      await createAgent(t, {
        id: 'seeded',
        perceive: { devices: { ids: ['r-seed'] } },
        judge: { when: 'temperature > 80' },
        act: { steps: [{ set: { property: 'speed', value: 'reported.speed - 10' } }] },
      });
      const before = await connectPlantDevice(t, 'r-seed', token);
      await before.send({ temperature: 20, speed: 70 });
      clock.advance(SECOND);
      await t.stop({ keepData: true });

      t = await startTestNode({ dataDir }, clock);
      const after = await connectPlantDevice(t, 'r-seed', token);
      // Only the temperature arrives after the restart; speed is known from before it.
      await after.send({ temperature: 100 });
      const [decision] = await decisionsOf(t, 'seeded');
      assert.equal(decision?.outcome, 'executed', decision?.safety.refused);
      assert.deepEqual(
        decision?.actions.map((a) => [a.property, a.value]),
        [['speed', 60]],
      );
    } finally {
      await t.stop();
    }
  });
});
