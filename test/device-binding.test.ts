import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { type JsonObject, PUMP_MODEL, startTestNode, type TestNode, tempDir } from './support/harness.js';

interface Problem {
  path: string;
  message: string;
}

interface DeviceBody extends JsonObject {
  id: string;
  binding: Record<string, unknown>;
}

describe('device bindings in the registry', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode();
    await t.api('/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL });
  });
  after(() => t.stop());

  test('a device registered without a binding speaks mqtt; one with a binding keeps it and gets its defaults', async () => {
    const plain = await t.registerDevice('bind-plain');
    assert.deepEqual(plain.device.binding, { protocol: 'mqtt' });

    const plc = await t.api<{ device: DeviceBody }>('/api/v1/devices', {
      method: 'POST',
      body: { id: 'bind-plc', model: 'pump', binding: { protocol: 'modbus-tcp', host: '10.0.0.7', line: 'A', scaled: true } },
    });
    assert.equal(plc.status, 201);
    assert.deepEqual(plc.body.device.binding, { protocol: 'modbus-tcp', host: '10.0.0.7', line: 'A', scaled: true, port: 502, unitId: 1 });

    const read = await t.api<DeviceBody>('/api/v1/devices/bind-plc');
    assert.deepEqual(read.body.binding, plc.body.device.binding);

    const opcua = await t.registerDevice('bind-ua', 'pump', { binding: { protocol: 'opcua', endpoint: 'opc.tcp://line2.plant:4840' } });
    assert.deepEqual(opcua.device.binding, { protocol: 'opcua', endpoint: 'opc.tcp://line2.plant:4840' });
    const spb = await t.registerDevice('grp:node1:pump', 'pump', { binding: { protocol: 'sparkplug-b', group: 'grp', edgeNode: 'node1' } });
    assert.equal(spb.device.binding.protocol, 'sparkplug-b');
  });

  test('an invalid binding is refused with every problem listed, and nothing is stored', async () => {
    const longName = `p${'x'.repeat(64)}`;
    const refused = await t.api<{ error: string; details: Problem[] }>('/api/v1/devices', {
      method: 'POST',
      body: {
        id: 'bind-bad',
        model: 'pump',
        binding: { protocol: 'modbus-tcp', port: 70_000, unitId: 'one', [longName]: 1, nested: { a: 1 }, note: 'n'.repeat(257) },
      },
    });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error, 'invalid');
    const expect: [string, RegExp][] = [
      ['/host', /needs "host"/],
      ['/port', /whole number from 1 to 65535/],
      ['/unitId', /whole number from 0 to 255/],
      [`/${longName}`, /parameter name/],
      ['/nested', /string, a finite number or a boolean/],
      ['/note', /at most 256 characters/],
    ];
    for (const [path, message] of expect) {
      assert.ok(
        refused.body.details.some((p) => p.path === path && message.test(p.message)),
        `expected ${path} ~ ${message} in ${JSON.stringify(refused.body.details)}`,
      );
    }
    assert.equal((await t.api('/api/v1/devices/bind-bad')).status, 404);

    const protocol = await t.api<{ details: Problem[] }>('/api/v1/devices', {
      method: 'POST',
      body: { id: 'bind-bad', model: 'pump', binding: { protocol: 'zigbee' } },
    });
    assert.equal(protocol.status, 400);
    assert.match(protocol.body.details[0]?.message ?? '', /protocol must be one of mqtt, http, coap, modbus-tcp, opcua, sparkplug-b/);

    const missing = await t.api<{ details: Problem[] }>('/api/v1/devices', {
      method: 'POST',
      body: { id: 'bind-bad', model: 'pump', binding: { protocol: 'sparkplug-b', group: 'a/b' } },
    });
    assert.deepEqual(
      missing.body.details.map((p) => p.path),
      ['/group', '/edgeNode'],
    );

    const tooMany = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`p${i}`, i]));
    const many = await t.api<{ details: Problem[] }>('/api/v1/devices', {
      method: 'POST',
      body: { id: 'bind-bad', model: 'pump', binding: { protocol: 'http', ...tooMany } },
    });
    assert.equal(many.status, 400);
    assert.match(many.body.details[0]?.message ?? '', /at most 32 binding parameters/);

    const endpoint = await t.api<{ details: Problem[] }>('/api/v1/devices', {
      method: 'POST',
      body: { id: 'bind-bad', model: 'pump', binding: { protocol: 'opcua', endpoint: 'http://x' } },
    });
    assert.equal(endpoint.status, 400);
    assert.match(endpoint.body.details[0]?.message ?? '', /opc\.tcp:\/\//);
  });

  test('PATCH changes the binding as a whole, validated the same way', async () => {
    await t.registerDevice('bind-move');
    const moved = await t.api<DeviceBody>('/api/v1/devices/bind-move', {
      method: 'PATCH',
      body: { binding: { protocol: 'modbus-tcp', host: 'plc-7', port: 1502 } },
    });
    assert.equal(moved.status, 200);
    assert.deepEqual(moved.body.binding, { protocol: 'modbus-tcp', host: 'plc-7', port: 1502, unitId: 1 });
    const refused = await t.api<{ details: Problem[] }>('/api/v1/devices/bind-move', {
      method: 'PATCH',
      body: { binding: { protocol: 'modbus-tcp' } },
    });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.details[0]?.path, '/host');
    assert.deepEqual((await t.api<DeviceBody>('/api/v1/devices/bind-move')).body.binding.host, 'plc-7');
    const filtered = await t.api<{ items: DeviceBody[] }>('/api/v1/devices?protocol=modbus-tcp');
    assert.ok(filtered.body.items.some((d) => d.id === 'bind-move'));
  });

  test('the registry emits updated with the device when its binding changes', async () => {
    await t.registerDevice('bind-events');
    const seen: string[] = [];
    const off = t.node.registry.events.on('updated', (device) => {
      if (device.id === 'bind-events') seen.push(device.binding.protocol);
    });
    await t.api('/api/v1/devices/bind-events', { method: 'PATCH', body: { binding: { protocol: 'coap' } } });
    off();
    assert.deepEqual(seen, ['coap']);
  });

  test('GET /devices/{id}/binding reports the binding health in the documented shape', async () => {
    const health = await t.api<JsonObject>('/api/v1/devices/bind-plc/binding');
    assert.equal(health.status, 200);
    assert.equal(health.body.protocol, 'modbus-tcp');
    assert.ok(['connected', 'polling', 'unreachable', 'idle'].includes(String(health.body.state)), JSON.stringify(health.body));
    assert.ok(health.body.lastGoodReadTs === null || Number.isInteger(health.body.lastGoodReadTs));
    assert.ok(Number.isInteger(health.body.errors));
    assert.ok(health.body.latencyMs === null || typeof health.body.latencyMs === 'number');
    assert.deepEqual(
      Object.keys(health.body)
        .filter((key) => key !== 'lastError')
        .sort(),
      ['errors', 'lastGoodReadTs', 'latencyMs', 'protocol', 'state'],
    );
    // A device that never connected has heard nothing.
    const quiet = await t.api<JsonObject>('/api/v1/devices/bind-plain/binding');
    assert.deepEqual(quiet.body, { protocol: 'mqtt', state: 'idle', lastGoodReadTs: null, errors: 0, latencyMs: null });
    assert.equal((await t.api('/api/v1/devices/no-such-device/binding')).status, 404);
  });

  test('binding health, the binding filter and the binding change need the admin key', async () => {
    const { token } = await t.registerDevice('bind-guarded');
    for (const auth of [null, 'wrong-key-0123456789', token]) {
      const health = await t.api('/api/v1/devices/bind-guarded/binding', { auth });
      assert.ok([401, 403].includes(health.status), `binding with ${auth === token ? 'the device token' : String(auth)}: ${health.status}`);
      assert.ok([401, 403].includes((await t.api('/api/v1/devices?protocol=mqtt', { auth })).status));
      const patch = await t.api('/api/v1/devices/bind-guarded', { method: 'PATCH', auth, body: { binding: { protocol: 'coap' } } });
      assert.ok([401, 403].includes(patch.status));
    }
    assert.equal((await t.api<DeviceBody>('/api/v1/devices/bind-guarded')).body.binding.protocol, 'mqtt');
  });

  test('?protocol= filters the list with a total; an unknown protocol is refused', async () => {
    const modbus = await t.api<{ items: DeviceBody[]; total: number }>('/api/v1/devices?protocol=modbus-tcp');
    assert.equal(modbus.status, 200);
    assert.ok(modbus.body.items.length > 0);
    assert.ok(modbus.body.items.every((d) => d.binding.protocol === 'modbus-tcp'));
    assert.equal(modbus.body.total, modbus.body.items.length);
    const mqtt = await t.api<{ items: DeviceBody[] }>('/api/v1/devices?protocol=mqtt');
    assert.ok(mqtt.body.items.some((d) => d.id === 'bind-plain'));
    assert.ok(mqtt.body.items.every((d) => d.binding.protocol === 'mqtt'));
    const paged = await t.api<{ items: DeviceBody[]; next: string | null }>('/api/v1/devices?protocol=mqtt&limit=1');
    assert.equal(paged.body.items.length, 1);
    assert.ok(paged.body.next);
    const online = await t.api<{ items: DeviceBody[] }>('/api/v1/devices?protocol=opcua&status=unknown');
    assert.deepEqual(
      online.body.items.map((d) => d.id),
      ['bind-ua'],
    );
    assert.equal((await t.api('/api/v1/devices?protocol=zigbee')).status, 400);
  });
});

describe('device bindings across a restart and a migration', () => {
  test('bindings survive a restart; rows stored before bindings read as mqtt and filter by the indexed column', async () => {
    const dataDir = tempDir();
    let t = await startTestNode({ dataDir });
    await t.registerDevice('old-1');
    await t.registerDevice('plc-1', 'pump', { binding: { protocol: 'modbus-tcp', host: '127.0.0.1' } });
    await t.stop({ keepData: true });

    // Make old-1 look like a row written before bindings: no binding in its record.
    const db = new Database(`${dataDir}/thingloop.db`);
    try {
      db.prepare("UPDATE devices SET record = json_remove(record, '$.binding') WHERE id = 'old-1'").run();
      const plan = db
        .prepare<[], { detail: string }>("EXPLAIN QUERY PLAN SELECT id FROM devices WHERE protocol = 'mqtt' ORDER BY id LIMIT 10")
        .all()
        .map((row) => row.detail)
        .join('\n');
      assert.match(plan, /devices_by_protocol/);
    } finally {
      db.close();
    }

    t = await startTestNode({ dataDir });
    try {
      assert.deepEqual((await t.api<DeviceBody>('/api/v1/devices/old-1')).body.binding, { protocol: 'mqtt' });
      assert.deepEqual((await t.api<DeviceBody>('/api/v1/devices/plc-1')).body.binding, {
        protocol: 'modbus-tcp',
        host: '127.0.0.1',
        port: 502,
        unitId: 1,
      });
      const modbus = await t.api<{ items: DeviceBody[] }>('/api/v1/devices?protocol=modbus-tcp');
      assert.deepEqual(
        modbus.body.items.map((d) => d.id),
        ['plc-1'],
      );
    } finally {
      await t.stop();
    }
  });
});
