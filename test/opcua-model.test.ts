/**
 * `thingloop model from-opcua` against a real node-opcua server (the simulated line 2): the real
 * CLI in a child process browses the address space and prints a thing model whose property
 * names, types, units, ranges and access come from the server, with forms the OPC UA binding can
 * use as they are; the model passes the validator POST/PUT /api/v1/models uses. Errors say what
 * to do. The name and unit rules are checked on their own too.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findModelProblems, type ThingModel } from '../src/model/index.js';
import { type OpcuaLine, startOpcuaLine } from '../src/sim/opcua-line.js';
import { uneceCode, unitName } from '../src/transport/opcua/draft-model.js';
import { affordanceName, uniqueNames } from '../src/transport/opcua/index.js';
import { tempDir } from './support/harness.js';
import { type Exit, spawnCli } from './support/process-node.js';

type Form = Record<string, unknown>;

/** Like the harness's runCli with room for node-opcua's load and a certificate on a busy machine; only guards a hang. */
async function runCli(options: { args: string[] }): Promise<Exit & { stdout: string; stderr: string }> {
  const cli = spawnCli(options);
  const limit = setTimeout(() => cli.child.kill('SIGKILL'), 120_000);
  try {
    const exit = await cli.exited;
    return { ...exit, stdout: cli.stdout(), stderr: cli.stderr() };
  } finally {
    clearTimeout(limit);
  }
}
type Property = Record<string, unknown> & { forms: Form[] };

describe('thingloop model from-opcua', () => {
  const root = tempDir('thingloop-from-opcua-');
  let line: OpcuaLine;

  before(async () => {
    line = await startOpcuaLine({ port: 0, pumps: 2, pkiDir: join(root, 'server-pki'), trustAllClients: true });
  });

  after(async () => {
    await line.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('prints a valid thing model with names, types, units, ranges and access from the server', async () => {
    const run = await runCli({ args: ['model', 'from-opcua', line.endpointUrl, '--id', 'line2', '--data-dir', join(root, 'cli')] });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /from-opcua: connecting to/);
    const model = JSON.parse(run.stdout) as ThingModel & { properties: Record<string, Property> };
    assert.deepEqual(findModelProblems(model), []);
    assert.equal(model.title, 'line2');
    const properties = model.properties;
    // Two pumps with the same variable names: each name is made unique by its pump.
    assert.ok(properties.pump1_BearingTemperature, Object.keys(properties).join(', '));
    assert.ok(properties.pump2_BearingTemperature);
    const temperature = properties.pump1_BearingTemperature;
    assert.equal(temperature.type, 'number');
    assert.equal(temperature.unit, 'Cel');
    assert.equal(temperature.minimum, -40);
    assert.equal(temperature.maximum, 200);
    assert.equal(temperature.readOnly, true);
    assert.deepEqual(temperature.forms, [
      { href: '{{endpoint}}', 'opcua:nodeId': 'ns=1;s=Line2.Pump1.BearingTemperature', op: ['readproperty', 'observeproperty'] },
    ]);
    assert.equal(properties.pump1_Vibration?.unit, 'mm/s');
    assert.equal(properties.pump1_Flow?.unit, 'm3/h');
    assert.equal(properties.pump1_Flow?.maximum, 500);
    const setpoint = properties.pump1_SpeedSetpoint;
    assert.equal(setpoint?.readOnly, undefined);
    assert.equal(setpoint?.unit, 'percent');
    assert.deepEqual(setpoint?.forms[0]?.op, ['readproperty', 'writeproperty', 'observeproperty']);
    assert.equal(properties.pump1_Running?.type, 'boolean');
    // The Server object (every server's diagnostics) is not part of the model.
    assert.ok(!Object.keys(properties).some((name) => /ServerStatus|ServiceLevel|NamespaceArray/i.test(name)));
    // AnalogItem metadata (EURange, EngineeringUnits) are annotations, not properties.
    assert.ok(!Object.keys(properties).some((name) => /EURange|EngineeringUnits/.test(name)));
    const stop = (model.actions as Record<string, Record<string, unknown>>).pump1_Stop;
    assert.deepEqual(stop?.input, {
      type: 'object',
      properties: { reason: { type: 'string', description: 'why the pump is stopped' } },
      required: ['reason'],
    });
    assert.deepEqual(stop?.forms, [
      { href: '{{endpoint}}', 'opcua:objectId': 'ns=1;s=Line2.Pump1', 'opcua:methodId': 'ns=1;s=Line2.Pump1.Stop' },
    ]);
  });

  it('browses below --node only, with the leaf names where they are unique', async () => {
    const run = await runCli({
      args: ['model', 'from-opcua', line.endpointUrl, '--node', 'ns=1;s=Line2.Pump2', '--data-dir', join(root, 'cli')],
    });
    assert.equal(run.code, 0, run.stderr);
    const model = JSON.parse(run.stdout) as ThingModel & { properties: Record<string, Property> };
    assert.deepEqual(findModelProblems(model), []);
    assert.deepEqual(Object.keys(model.properties).sort(), [
      'bearingTemperature',
      'flow',
      'running',
      'speed',
      'speedSetpoint',
      'vibration',
    ]);
    assert.equal(model.properties.flow?.forms[0]?.['opcua:nodeId'], 'ns=1;s=Line2.Pump2.Flow');
    assert.equal(model.title, 'Pump2');
  });

  it('says what to do when the endpoint is unreachable or the node unknown, and has --help', async () => {
    const unreachable = await runCli({
      args: ['model', 'from-opcua', 'opc.tcp://127.0.0.1:1/UA/Nowhere', '--timeout', '3000', '--data-dir', join(root, 'cli')],
    });
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /cannot reach opc\.tcp:\/\/127\.0\.0\.1:1\/UA\/Nowhere.*check the host, port and path/is);
    assert.equal(unreachable.stdout, '');
    const unknown = await runCli({
      args: ['model', 'from-opcua', line.endpointUrl, '--node', 'ns=1;s=NoSuchNode', '--data-dir', join(root, 'cli')],
    });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no node ns=1;s=NoSuchNode.*BadNodeIdUnknown/s);
    const badNode = await runCli({ args: ['model', 'from-opcua', line.endpointUrl, '--node', 'Line2'] });
    assert.equal(badNode.code, 1);
    assert.match(badNode.stderr, /not a NodeId/);
    const help = await runCli({ args: ['model', 'from-opcua', '--help'] });
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--node <nodeId>/);
    assert.match(help.stdout, /--id <modelId>/);
  });
});

describe('names and units of a drafted model', () => {
  it('sanitises browse names to the affordance name pattern', () => {
    assert.equal(affordanceName('Temperature'), 'temperature');
    assert.equal(affordanceName('Motor Speed (rpm)'), 'motor_Speed_rpm_');
    assert.equal(affordanceName('2ndStage'), '_2ndStage');
    assert.equal(affordanceName('ts'), 'ts_x');
    assert.equal(affordanceName('Température'), 'temperature');
    assert.equal(affordanceName('x'.repeat(100)).length, 64);
  });

  it('makes duplicates unique by their parents, then by number', () => {
    assert.deepEqual(uniqueNames([['Pump1', 'Temperature'], ['Pump2', 'Temperature'], ['Flow']]), [
      'pump1_Temperature',
      'pump2_Temperature',
      'flow',
    ]);
    assert.deepEqual(uniqueNames([['A'], ['a'], ['A']]), ['a', 'a_2', 'a_3']);
  });

  it('reads UNECE codes from EngineeringUnits unit ids', () => {
    assert.equal(uneceCode(4408652), 'CEL');
    assert.equal(unitName({ code: 'CEL', text: '°C' }), 'Cel');
    assert.equal(unitName({ code: 'XYZ', text: 'furlongs' }), 'furlongs');
  });
});
