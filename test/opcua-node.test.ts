/**
 * OPC UA end to end through a real node: the simulated line 2 (a node-opcua server on the pump
 * physics) and a node whose OPC UA binding reaches it. A device registered over the REST API with
 * `"binding": {"protocol": "opcua", "endpoint", "pump"}` and the line's model (forms with
 * `{{endpoint}}` and `{{pump}}`) gets its telemetry stored, a desired speed setpoint written to
 * the server and reported back into the twin, the Stop action called as an OPC UA method with its
 * result recorded, and GET /devices/{id}/binding shows the session's health; a server that goes
 * away makes the device offline and unreachable, and its return brings the telemetry back.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type OpcuaLine, opcuaPumpModel, startOpcuaLine } from '../src/sim/opcua-line.js';
import { startTestNode, type TestNode, tempDir } from './support/harness.js';
import { until } from './support/wait.js';

interface Stored {
  property: string;
  ts: number;
  value: unknown;
}

describe('OPC UA device through a node', () => {
  const root = tempDir('thingloop-opcua-node-');
  let line: OpcuaLine;
  let test: TestNode;
  const id = 'line2-pump1';

  before(async () => {
    line = await startOpcuaLine({ port: 0, pumps: 2, pkiDir: join(root, 'line-pki'), trustAllClients: true, tickMs: 200 });
    test = await startTestNode({ dataDir: join(root, 'node') });
    const model = await test.api('/api/v1/models/line2-pump', { method: 'PUT', body: opcuaPumpModel });
    assert.ok(model.status < 300, JSON.stringify(model.body));
    const created = await test.api('/api/v1/devices', {
      method: 'POST',
      body: { id, model: 'line2-pump', binding: { protocol: 'opcua', endpoint: line.endpointUrl, pump: 'Pump1' } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  });

  after(async () => {
    await test.stop({ keepData: true });
    await line.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('stores the monitored values as telemetry and shows the session health', async () => {
    const stored = await until(
      'bearing temperature telemetry',
      async () => {
        const response = await test.api<{ items: Stored[] }>(`/api/v1/devices/${id}/telemetry?property=bearingTemperature`);
        return response.body.items?.length ? response.body.items : undefined;
      },
      20_000,
    );
    assert.equal(typeof stored[0]?.value, 'number');
    const health = await test.api<Record<string, unknown>>(`/api/v1/devices/${id}/binding`);
    assert.equal(health.status, 200);
    assert.equal(health.body.protocol, 'opcua');
    assert.equal(health.body.state, 'connected');
    assert.equal(typeof health.body.lastGoodReadTs, 'number');
    assert.equal(typeof health.body.latencyMs, 'number');
    const presence = await test.api<{ status: string }>(`/api/v1/devices/${id}/presence`);
    assert.equal(presence.body.status, 'online');
  });

  it('writes a desired setpoint to the server and reports what the server holds', async () => {
    const twin = await test.api<{ version: number }>(`/api/v1/devices/${id}/twin`);
    const patched = await test.api(`/api/v1/devices/${id}/twin`, {
      method: 'PATCH',
      body: { desired: { speedSetpoint: 42.5 } },
      headers: { 'if-match': `"${twin.body.version}"` },
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    await until('the setpoint on the server', () => (line.pump('Pump1').speedSetpoint === 42.5 ? true : undefined), 15_000);
    await until(
      'the setpoint reported in the twin',
      async () => {
        const view = await test.api<{ reported: Record<string, unknown> }>(`/api/v1/devices/${id}/twin`);
        return view.body.reported.speedSetpoint === 42.5 ? true : undefined;
      },
      15_000,
    );
  });

  it('calls the Stop method for the stop action and records its output', async () => {
    assert.equal(line.pump('Pump1').running, true);
    const invoked = await test.api<{ id: string; status: string; output?: unknown }>(`/api/v1/devices/${id}/actions/stop?wait=10s`, {
      method: 'POST',
      body: { input: { reason: 'end to end test' } },
    });
    assert.ok(invoked.status < 300, JSON.stringify(invoked.body));
    const done = await until(
      'the invocation completed',
      async () => {
        const view = await test.api<{ status: string; output?: unknown }>(`/api/v1/invocations/${invoked.body.id}`);
        return view.body.status === 'succeeded' ? view.body : undefined;
      },
      15_000,
    );
    assert.deepEqual(done.output, { wasRunning: true });
    assert.equal(line.pump('Pump1').running, false);
  });

  it('goes offline with the reason on the device errors when the server stops, and back when it returns', async () => {
    const port = line.port;
    await line.stop();
    await until(
      'the binding unreachable',
      async () => ((await test.api<{ state: string }>(`/api/v1/devices/${id}/binding`)).body.state === 'unreachable' ? true : undefined),
      20_000,
    );
    const errors = await test.api<unknown[]>(`/api/v1/devices/${id}/errors`);
    assert.match(JSON.stringify(errors.body), /unreachable/);
    const metrics = (await test.api<string>('/metrics')).body;
    assert.match(metrics, /thingloop_refusals_total\{listener="opcua",reason="unreachable"\} [1-9]/);
    line = await startOpcuaLine({ port, pumps: 2, pkiDir: join(root, 'line-pki'), trustAllClients: true, tickMs: 200 });
    await until(
      'the binding connected again',
      async () => ((await test.api<{ state: string }>(`/api/v1/devices/${id}/binding`)).body.state === 'connected' ? true : undefined),
      30_000,
    );
    const since = Date.now();
    await until(
      'fresh telemetry from the restarted server',
      async () => {
        const response = await test.api<{ items: Stored[] }>(`/api/v1/devices/${id}/telemetry?property=bearingTemperature&from=${since}`);
        return response.body.items?.length ? true : undefined;
      },
      20_000,
    );
  });
});
