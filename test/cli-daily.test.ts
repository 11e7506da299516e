/**
 * The daily-work commands as an operator runs them: the real `thingloop` process against a real
 * node's API (models, devices, agents, approvals, alarms, status, refusals), and backup → restore
 * → a node started on the restored directory, with a reset admin key.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify as yaml } from 'yaml';
import type { AgentDefinition, Alarm, DecisionRecord } from '../src/agents/index.js';
import type { DeviceRecord } from '../src/registry/index.js';
import { ADMIN_KEY, PUMP_MODEL, startTestNode, type TestNode, tempDir } from './support/harness.js';
import { runCli } from './support/process-node.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('thingloop CLI for daily work (real process, real node)', () => {
  let t: TestNode;
  const files = tempDir('thingloop-cli-');

  const cli = (args: string[], env: Record<string, string> = {}): Promise<Run> =>
    runCli({ args, env: { THINGLOOP_URL: t.node.httpUrl, THINGLOOP_ADMIN_KEY: ADMIN_KEY, ...env } });

  /** Runs a command with --json, asserts it succeeded, and parses what it printed. */
  const json = async <T>(args: string[], env: Record<string, string> = {}): Promise<T> => {
    const run = await cli([...args, '--json'], env);
    assert.equal(run.code, 0, `thingloop ${args.join(' ')} failed:\n${run.stderr}`);
    return JSON.parse(run.stdout) as T;
  };

  const refused = async (args: string[], message: RegExp, env: Record<string, string> = {}) => {
    const run = await cli(args, env);
    assert.equal(run.code, 1, `thingloop ${args.join(' ')} should fail; stdout:\n${run.stdout}`);
    assert.match(run.stderr, message);
    assert.equal(run.stdout, '', 'nothing on stdout for a script to mistake for a result');
  };

  before(async () => {
    t = await startTestNode();
  });
  after(async () => {
    await t.stop();
    rmSync(files, { recursive: true, force: true });
  });

  test('model put (YAML), list and show', async () => {
    const file = join(files, 'pump.yaml');
    writeFileSync(file, yaml(PUMP_MODEL));
    const stored = await json<{ id: string; version: number; created: boolean }>(['model', 'put', file]);
    assert.deepEqual([stored.id, stored.version, stored.created], ['pump', 1, true]);
    const again = await cli(['model', 'put', file]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /pump unchanged \(version 1\)/);

    const [list, shown] = await Promise.all([
      json<{ id: string; latestVersion: number }[]>(['model', 'list']),
      json<{ document: { title: string } }>(['model', 'show', 'pump']),
    ]);
    assert.deepEqual(
      list.map((model) => [model.id, model.latestVersion]),
      [['pump', 1]],
    );
    assert.equal(shown.document.title, PUMP_MODEL.title);
  });

  test('device create, list (table and JSON) and show', async () => {
    const created = await json<{ device: DeviceRecord; token: string }>([
      'device',
      'create',
      'cli-pump',
      '--model',
      'pump',
      '--name',
      'Pump 1',
      '--attr',
      'line=2',
    ]);
    assert.equal(created.device.id, 'cli-pump');
    assert.deepEqual(created.device.attributes, { line: 2 });
    assert.match(created.token, /^tld_/);

    const [table, list, shown] = await Promise.all([
      cli(['device', 'list']),
      json<DeviceRecord[]>(['device', 'list', '--model', 'pump']),
      json<DeviceRecord & { bindingHealth: { state: string } }>(['device', 'show', 'cli-pump']),
    ]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^ID +NAME +MODEL/m);
    assert.match(table.stdout, /^cli-pump +Pump 1 +pump@1 +mqtt/m);
    assert.deepEqual(
      list.map((device) => device.id),
      ['cli-pump'],
    );
    assert.equal(shown.name, 'Pump 1');
    assert.equal(shown.bindingHealth.state, 'idle', 'never connected yet');
    // The node's own view agrees with what the CLI printed.
    assert.equal((await t.api('/api/v1/devices/cli-pump')).status, 200);
  });

  test('agent put (YAML file), mode, list and show', async () => {
    const file = join(files, 'cli-hot.yaml');
    writeFileSync(
      file,
      yaml({
        id: 'cli-hot',
        name: 'Hot pump',
        perceive: { devices: { ids: ['cli-pump'] } },
        judge: { when: 'temperature > 80', clear: 'temperature < 70' },
        act: { steps: [{ set: { property: 'speed', value: 'clamp(reported.speed - 10, 30, 100)' } }] },
        alarm: { type: 'overheat', severity: 'major' },
      }),
    );
    const created = await cli(['agent', 'put', file]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /created agent cli-hot \(mode auto\)/);
    const replaced = await json<AgentDefinition>(['agent', 'put', file]);
    assert.equal(replaced.id, 'cli-hot', 'a second put replaces the agent');

    await refused(['agent', 'mode', 'cli-hot', 'observe'], /mode must be one of auto, approve, shadow/);
    const switched = await json<AgentDefinition>(['agent', 'mode', 'cli-hot', 'approve']);
    assert.equal(switched.mode, 'approve');
    const [list, shown] = await Promise.all([
      json<{ items: AgentDefinition[]; killSwitchEngaged: boolean }>(['agent', 'list']),
      json<AgentDefinition>(['agent', 'show', 'cli-hot']),
    ]);
    assert.deepEqual(
      list.items.map((agent) => [agent.id, agent.mode]),
      [['cli-hot', 'approve']],
    );
    assert.equal(shown.judge.when, 'temperature > 80');
  });

  test('approvals list, approve and reject with a note; alarms list and ack', async () => {
    const { token } = (await t.api<{ token: string }>('/api/v1/devices/cli-pump/token', { method: 'POST' })).body;
    const client = await t.connectDevice('cli-pump', token);
    const send = async (values: Record<string, unknown>) => {
      await client.publishAsync('things/cli-pump/telemetry', JSON.stringify(values), { qos: 1 });
      await t.node.agents.idle();
    };
    // Two episodes: each waits for a person; the second stays hot, so its alarm stays open.
    await send({ temperature: 90, speed: 70 });
    await send({ temperature: 60 });
    await send({ temperature: 91, speed: 70 });

    const pending = await json<DecisionRecord[]>(['approvals', 'list']);
    assert.equal(pending.length, 2, JSON.stringify(pending));
    const [older, newer] = [...pending].sort((a, b) => a.ts - b.ts);
    assert.ok(older && newer);

    const approved = await json<DecisionRecord>(['approvals', 'approve', older.id, '--note', 'checked on site']);
    assert.equal(approved.approval?.verdict, 'approved');
    assert.equal(approved.approval?.note, 'checked on site');
    assert.equal(approved.approval?.decidedBy, 'admin');
    const rejected = await json<DecisionRecord>(['approvals', 'reject', newer.id, '--note', 'pump in maintenance']);
    assert.equal(rejected.approval?.verdict, 'rejected');
    assert.equal(rejected.approval?.note, 'pump in maintenance');
    assert.deepEqual(await json<DecisionRecord[]>(['approvals', 'list']), []);
    await refused(['approvals', 'approve', older.id], /\(409\)/);

    const open = await json<Alarm[]>(['alarms', 'list', '--device', 'cli-pump']);
    assert.equal(open.length, 1, JSON.stringify(open));
    const [alarm] = open;
    assert.ok(alarm);
    assert.deepEqual([alarm.type, alarm.severity, alarm.state], ['overheat', 'major', 'active']);
    const acked = await json<Alarm>(['alarms', 'ack', alarm.id, '--note', 'crew on the way']);
    assert.equal(acked.state, 'acknowledged');
    assert.equal(acked.acknowledgedBy, 'admin');
    await client.endAsync();
  });

  test('status: health, devices, alarms and approvals at a glance', async () => {
    const status = await json<{
      ready: boolean;
      devices: { total: number };
      alarms: { open: number; bySeverity: Record<string, number> };
      approvals: { pending: number };
    }>(['status']);
    assert.equal(status.ready, true);
    assert.equal(status.devices.total, 1);
    assert.deepEqual([status.alarms.open, status.alarms.bySeverity.major], [1, 1]);
    assert.equal(status.approvals.pending, 0);
    const shown = await cli(['status']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^health: +ready$/m);
    assert.match(shown.stdout, /^alarms: +1 open: 1 major$/m);
  });

  test('refusals: a wrong key, a missing device, a key without the permission, an unknown tenant', async () => {
    await refused(['device', 'list'], /did not accept this key \(401\).*--key or THINGLOOP_ADMIN_KEY/, {
      THINGLOOP_ADMIN_KEY: 'not-the-admin-key-0000',
    });
    await refused(['device', 'show', 'nope'], /^thingloop: no device "nope" \(404\)$/m);
    const viewer = await t.api<{ key: string }>('/api/v1/keys', { method: 'POST', body: { role: 'viewer', name: 'cli-viewer' } });
    assert.equal(viewer.status, 201);
    await refused(
      ['device', 'create', 'x-1', '--model', 'pump', '--key', viewer.body.key],
      /this key cannot register device "x-1" \(403\)/,
    );
    await refused(['device', 'list', '--tenant', 'nope'], /no tenant "nope"/);
    await refused(['device', 'list'], /cannot reach the node at http:\/\/127\.0\.0\.1:1 /, { THINGLOOP_URL: 'http://127.0.0.1:1' });
    await refused(['device', 'delete', 'cli-pump'], /add --yes/);
  });

  test('backup while the node runs → restore into a new directory → a node started on it has the devices', async () => {
    const acme = await t.api<{ adminKey: string }>('/api/v1/tenants', { method: 'POST', body: { id: 'acme' } });
    assert.equal(acme.status, 201);
    // The platform admin acts in another tenant with --tenant.
    await json(['model', 'put', join(files, 'pump.yaml'), '--tenant', 'acme']);
    await json(['device', 'create', 'acme-pump', '--model', 'pump', '--tenant', 'acme']);

    const backup = join(files, 'backup');
    const manifest = await json<{ files: { path: string; kind: string }[] }>(['backup', backup, '--data-dir', t.config.dataDir]);
    const databases = manifest.files.filter((file) => file.kind === 'database').map((file) => file.path);
    assert.deepEqual(databases, ['tenants/acme/thingloop.db', 'thingloop.db']);
    await refused(['backup', backup, '--data-dir', t.config.dataDir], /is not empty/);
    // The running node keeps its key in memory: a reset under it is refused.
    await refused(['admin-key', 'reset', '--data-dir', t.config.dataDir], /a node is running on/);

    const restoredDir = join(files, 'restored');
    const restore = await cli(['restore', backup, '--data-dir', restoredDir]);
    assert.equal(restore.code, 0, restore.stderr);
    assert.match(restore.stderr, /checked thingloop\.db: sound/);
    assert.match(restore.stderr, /restored tenants\/acme\/thingloop\.db: 100%/);
    const { adminKey } = await json<{ adminKey: string }>(['admin-key', 'reset', '--data-dir', restoredDir]);
    assert.match(adminKey, /^tla_/);

    // Started without a configured key, the restored node takes the reset one.
    const restored = await startTestNode({ dataDir: restoredDir, adminKey: undefined });
    try {
      const env = { THINGLOOP_URL: restored.node.httpUrl, THINGLOOP_ADMIN_KEY: adminKey };
      const devices = await json<DeviceRecord[]>(['device', 'list'], env);
      assert.deepEqual(
        devices.map((device) => [device.id, device.name, device.attributes]),
        [['cli-pump', 'Pump 1', { line: 2 }]],
      );
      const acmeDevices = await json<DeviceRecord[]>(['device', 'list', '--tenant', 'acme'], env);
      assert.deepEqual(
        acmeDevices.map((device) => device.id),
        ['acme-pump'],
      );
      await refused(['device', 'list'], /did not accept this key/, { THINGLOOP_URL: restored.node.httpUrl });
    } finally {
      await restored.stop();
    }
  });

  test('device delete --yes; help has an example for each command', async () => {
    const deleted = await json<{ deleted: string }>(['device', 'delete', 'cli-pump', '--yes']);
    assert.equal(deleted.deleted, 'cli-pump');
    assert.equal((await t.api('/api/v1/devices/cli-pump')).status, 404);
    await refused(['device', 'delete', 'cli-pump', '--yes'], /no device "cli-pump" \(404\)/);

    const help = await cli(['alarms', 'ack', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Example:\n {2}thingloop alarms ack /);
  });
});
