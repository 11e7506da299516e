import { describe, expect, it } from 'vitest';
import type { AgentDefinition, Alarm } from '../api/types';
import {
  alarmsPath,
  countBySeverity,
  decisionsPath,
  describeAction,
  enabledOf,
  expiryText,
  formatDefinition,
  modeOf,
  newestFirst,
  outcomeText,
  outcomeTone,
  scopeOf,
  sortOpenAlarms,
  verificationText,
  verificationTone,
} from './agents';
import { parseRoute } from './router';

const NOW = 1_700_000_000_000;

const agent = (extra: Partial<AgentDefinition> = {}): AgentDefinition => ({
  id: 'stopper',
  perceive: { devices: { model: 'centrifugal-pump' } },
  judge: { when: 'vibration > 6' },
  ...extra,
});

const alarm = (id: string, extra: Partial<Alarm>): Alarm => ({
  id,
  agentId: 'a',
  deviceId: 'pump-0001',
  type: 't',
  severity: 'major',
  state: 'active',
  message: '',
  count: 1,
  raisedAt: NOW,
  lastRaisedAt: NOW,
  history: [],
  notifications: [],
  ...extra,
});

describe('agent definitions', () => {
  it('defaults mode to auto and enabled to true, as the engine does', () => {
    expect(modeOf(agent())).toBe('auto');
    expect(enabledOf(agent())).toBe(true);
    expect(modeOf(agent({ mode: 'shadow' }))).toBe('shadow');
    expect(enabledOf(agent({ enabled: false }))).toBe(false);
  });

  it('says what an agent watches', () => {
    expect(scopeOf(agent())).toBe('model centrifugal-pump');
    expect(scopeOf(agent({ perceive: { devices: { ids: ['pump-0001'] } } }))).toBe('device pump-0001');
    expect(scopeOf(agent({ perceive: { devices: { ids: ['a', 'b'], attributes: { station: 'north' } } } }))).toBe(
      '2 devices, station = north',
    );
    expect(scopeOf(agent({ perceive: { devices: {} } }))).toBe('every device');
  });

  it('pretty-prints the definition as YAML or JSON', () => {
    const yaml = formatDefinition(agent({ mode: 'approve' }), 'yaml');
    expect(yaml).toContain('id: stopper');
    expect(yaml).toContain('  when: vibration > 6');
    const json = formatDefinition(agent(), 'json');
    expect(JSON.parse(json)).toEqual(agent());
    expect(json).toContain('\n  "perceive": {');
  });
});

describe('decisions', () => {
  it('describes planned writes and invocations as sentences', () => {
    expect(describeAction({ kind: 'set', deviceId: 'pump-0001', property: 'speed', value: 45, previous: 60 })).toBe(
      'Set speed of pump-0001 to 45 (desired was 60)',
    );
    expect(describeAction({ kind: 'set', deviceId: 'valve-0001', property: 'position', value: 100, previous: null })).toBe(
      'Set position of valve-0001 to 100',
    );
    expect(describeAction({ kind: 'invoke', deviceId: 'pump-0002', action: 'stop' })).toBe('Invoke stop on pump-0002');
    expect(describeAction({ kind: 'invoke', deviceId: 'pump-0002', action: 'ramp', input: { to: 30 } })).toBe(
      'Invoke ramp on pump-0002 with {"to":30}',
    );
  });

  it('tells how long an approval has left, or how long ago it expired', () => {
    expect(expiryText(NOW + 15 * 60_000, NOW)).toBe('expires in 15 min');
    expect(expiryText(NOW + 30_000, NOW)).toBe('expires in 30 s');
    expect(expiryText(NOW - 120_000, NOW)).toBe('expired 2 min ago');
    expect(expiryText(NOW, NOW)).toBe('expired 0 s ago');
  });

  it('colours outcomes and names who approved', () => {
    expect(outcomeTone('executed')).toBe('succeeded');
    expect(outcomeTone('awaiting-approval')).toBe('queued');
    expect(outcomeTone('refused')).toBe('failed');
    expect(outcomeTone('shadow')).toBe('neutral');
    expect(outcomeText({ outcome: 'shadow' })).toBe('shadow');
    expect(outcomeText({ outcome: 'executed', approval: { expiresAt: NOW, verdict: 'approved', decidedBy: 'api' } })).toBe(
      'executed (approved by api)',
    );
    expect(outcomeText({ outcome: 'rejected', approval: { expiresAt: NOW, verdict: 'rejected', decidedBy: 'api' } })).toBe(
      'rejected by api',
    );
    expect(outcomeText({ outcome: 'refused', approval: { expiresAt: NOW, verdict: 'approved' } })).toBe('refused (approved)');
  });

  it('says where a verification stands: holding with the time to go, verified, re-opened', () => {
    expect(verificationText({ status: 'holding', holding: { since: NOW, until: NOW + 45_000 } }, NOW)).toBe('holding (45 s to go)');
    expect(verificationText({ status: 'holding', holding: { since: NOW, until: NOW } }, NOW + 1)).toBe('holding');
    expect(verificationText({ status: 'verified' }, NOW)).toBe('verified');
    expect(verificationText({ status: 'reopened' }, NOW)).toBe('re-opened');
    const statuses = ['pending', 'holding', 'verified', 'failed', 'reopened'] as const;
    expect(statuses.map(verificationTone)).toEqual(['queued', 'queued', 'succeeded', 'failed', 'failed']);
  });

  it('builds the decision-log query with its filters', () => {
    expect(decisionsPath('a b')).toBe('/api/v1/agents/a%20b/decisions?limit=50');
    expect(decisionsPath('x', { device: ' pump-0002 ', outcome: 'executed', limit: 10 })).toBe(
      '/api/v1/agents/x/decisions?limit=10&device=pump-0002&outcome=executed',
    );
    expect(decisionsPath('x', { device: '  ' })).toBe('/api/v1/agents/x/decisions?limit=50');
  });

  it('keeps the log newest first without mutating its input', () => {
    const items = [{ ts: 1 }, { ts: 3 }, { ts: 2 }];
    expect(newestFirst(items).map((i) => i.ts)).toEqual([3, 2, 1]);
    expect(items.map((i) => i.ts)).toEqual([1, 3, 2]);
  });
});

describe('alarms', () => {
  it('orders open alarms: unacknowledged, then most severe, then newest', () => {
    const sorted = sortOpenAlarms([
      alarm('ack-critical', { state: 'acknowledged', severity: 'critical' }),
      alarm('minor-new', { severity: 'minor', lastRaisedAt: NOW + 10 }),
      alarm('major-old', { severity: 'major', lastRaisedAt: NOW - 10 }),
      alarm('major-new', { severity: 'major', lastRaisedAt: NOW + 5 }),
    ]);
    expect(sorted.map((a) => a.id)).toEqual(['major-new', 'major-old', 'minor-new', 'ack-critical']);
  });

  it('counts open alarms by severity, most severe first', () => {
    expect(
      countBySeverity([alarm('1', { severity: 'minor' }), alarm('2', { severity: 'critical' }), alarm('3', { severity: 'minor' })]),
    ).toEqual([
      { severity: 'critical', count: 1 },
      { severity: 'minor', count: 2 },
    ]);
  });

  it('asks for open alarms in the active view and every state in the history', () => {
    expect(alarmsPath('active')).toBe('/api/v1/alarms?state=open&limit=100');
    expect(alarmsPath('history', { limit: 50, before: NOW })).toBe(`/api/v1/alarms?state=all&limit=50&before=${NOW}`);
  });
});

describe('routes', () => {
  it('parses the agent, decision, approval and alarm screens', () => {
    expect(parseRoute('/agents', '')).toEqual({ name: 'agents' });
    const agentRoute = parseRoute('/agents/pump%20stop', '?device=pump-0002');
    expect(agentRoute.name === 'agent' && agentRoute.id === 'pump stop' && agentRoute.query.get('device')).toBe('pump-0002');
    expect(parseRoute('/decisions/abc', '')).toEqual({ name: 'decision', id: 'abc' });
    expect(parseRoute('/approvals', '')).toEqual({ name: 'approvals' });
    const alarmsRoute = parseRoute('/alarms', '?view=history');
    expect(alarmsRoute.name === 'alarms' && alarmsRoute.query.get('view')).toBe('history');
  });
});
