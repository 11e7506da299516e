/**
 * The Sparkplug B host application against a real Mosquitto and an edge node written with MQTT.js
 * and the Eclipse Tahu payload library. The binding is driven through the contract: a recording
 * uplink stands where the gateway would, the registry and model catalog are the real ones on SQLite.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import type { DeviceMessage, DeviceUplink, MessageSource } from '../src/gateway/index.js';
import { addressDevice, canonicalIpv6, planIdentity } from '../src/identity/index.js';
import { ModelCatalog } from '../src/model/index.js';
import { createLogger } from '../src/observability/index.js';
import { type DeviceRecord, DeviceRegistry } from '../src/registry/index.js';
import { SimulatedSparkplugEdgeNode } from '../src/sim/sparkplug-edge-node.js';
import { openDatabase, SqliteDevices, SqliteModels } from '../src/store/sqlite/index.js';
import { SparkplugHost } from '../src/transport/sparkplug/index.js';
import { type Mosquitto, sparkplug, startMosquitto, TestEdgeNode } from './support/sparkplug.js';
import { until } from './support/wait.js';

interface Received {
  device: string;
  message: DeviceMessage;
  source: MessageSource;
}

/** Stands where the gateway would: records what the binding hands up. */
class RecordingUplink implements DeviceUplink {
  readonly received: Received[] = [];
  readonly errors: { device: string; message: string; reason: string | undefined }[] = [];
  readonly refusals: string[] = [];
  async receive(device: DeviceRecord, message: DeviceMessage, source: MessageSource): Promise<void> {
    this.received.push({ device: device.id, message, source });
  }
  reportError(device: DeviceRecord, message: string, reason?: string): void {
    this.errors.push({ device: device.id, message, reason });
  }
  refused(protocol: string, reason: string): void {
    assert.equal(protocol, 'sparkplug-b');
    this.refusals.push(reason);
  }
  /** Moves this uplink's clock (the binding reads time only through it). */
  offsetMs = 0;
  now(): number {
    return Date.now() + this.offsetMs;
  }
  count(reason: string): number {
    return this.refusals.filter((r) => r === reason).length;
  }
  of(device: string, kind: DeviceMessage['kind']): DeviceMessage[] {
    return this.received.filter((r) => r.device === device && r.message.kind === kind).map((r) => r.message);
  }
}

function bodyOf(message: DeviceMessage | undefined): unknown {
  assert.ok(message && 'payload' in message && 'body' in message.payload, 'a decoded body');
  return message.payload.body;
}

function presenceOf(uplink: RecordingUplink, device: string): string[] {
  return uplink.of(device, 'presence').map((m) => (m.kind === 'presence' ? m.state : ''));
}

const logger = createLogger({ level: 'silent' });

describe('Sparkplug B host application (external broker: Mosquitto)', () => {
  let broker: Mosquitto;
  let host: SparkplugHost;
  let uplink: RecordingUplink;
  let registry: DeviceRegistry;
  let models: ModelCatalog;
  let edge: TestEdgeNode;
  const db = openDatabase(':memory:');
  const T0 = Date.now();

  before(async () => {
    broker = await startMosquitto();
    models = new ModelCatalog(new SqliteModels(db), () => Date.now());
    const identity = planIdentity('thingloop.test', 'fd00:1:2:3::/64');
    registry = new DeviceRegistry(
      new SqliteDevices(db),
      models,
      { address: (id, attempt) => addressDevice(identity, id, attempt), canonicalIpv6 },
      () => Date.now(),
    );
    uplink = new RecordingUplink();
    host = new SparkplugHost({
      hostId: 'scada-1',
      broker: () => ({ url: broker.url }),
      tenant: 'default',
      registry,
      models,
      logger,
      rebirthHoldMs: 0,
    });
    await host.start(uplink);
    assert.ok(host.isConnected);
    edge = new TestEdgeNode({ url: broker.url, group: 'plant1', edgeNode: 'gw1', bdSeq: 7 });
    await edge.connect();
  });

  after(async () => {
    await edge?.close();
    await host?.stop();
    await broker?.stop();
    db.close();
  });

  test('the host announces itself on STATE: retained, QoS 1, online with a timestamp', async () => {
    const observer = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    try {
      const retained = new Promise<{ retain: boolean; qos: number; body: { online: boolean; timestamp: number } }>((resolve) => {
        observer.on('message', (topic, payload, packet) => {
          if (topic === 'spBv1.0/STATE/scada-1')
            resolve({
              retain: packet.retain,
              qos: packet.qos,
              body: JSON.parse(payload.toString()) as { online: boolean; timestamp: number },
            });
        });
      });
      await observer.subscribeAsync('spBv1.0/STATE/scada-1', { qos: 1 });
      const state = await retained;
      assert.equal(state.retain, true);
      assert.equal(state.qos, 1);
      assert.equal(state.body.online, true);
      assert.ok(state.body.timestamp >= T0);
    } finally {
      await observer.endAsync();
    }
  });

  test('NBIRTH and DBIRTH register the node and its device with models derived from the birth metrics', async () => {
    await edge.nodeBirth([{ name: 'Uptime', alias: 1, type: 'UInt32', value: 12 }]);
    await edge.publish(
      'DBIRTH',
      [
        {
          name: 'Temperature/PV',
          alias: 10,
          type: 'Float',
          value: 21.5,
          properties: {
            engUnit: { type: 'String', value: 'Cel' },
            engLow: { type: 'Double', value: -40 },
            engHigh: { type: 'Double', value: 150 },
          },
        },
        { name: 'Setpoint', alias: 11, type: 'Int16', value: 40 },
        { name: 'Running', alias: 12, type: 'Boolean', value: true },
        { name: 'Label', alias: 13, type: 'String', value: 'pump A' },
        { name: 'Device Control/Reset', alias: 14, type: 'Boolean', value: false },
      ],
      'pump1',
    );
    const node = await until('the edge node device', () => registry.find('plant1:gw1'));
    const device = await until('the pump device', () => registry.find('plant1:gw1:pump1'));
    assert.deepEqual(node.binding, { protocol: 'sparkplug-b', group: 'plant1', edgeNode: 'gw1' });
    assert.deepEqual(device.binding, { protocol: 'sparkplug-b', group: 'plant1', edgeNode: 'gw1', device: 'pump1' });
    assert.equal(device.edge, undefined);
    assert.equal(device.model, 'sparkplug.plant1.gw1.pump1');
    const model = (await models.get('sparkplug.plant1.gw1.pump1')).document;
    const properties = model.properties ?? {};
    assert.deepEqual(Object.keys(properties).sort(), ['Label', 'Running', 'Setpoint', 'Temperature_PV']);
    assert.equal(properties.Temperature_PV?.type, 'number');
    assert.equal(properties.Temperature_PV?.unit, 'Cel');
    assert.equal(properties.Temperature_PV?.minimum, -40);
    assert.equal(properties.Temperature_PV?.maximum, 150);
    assert.equal(properties.Setpoint?.type, 'integer');
    assert.equal(properties.Setpoint?.minimum, -32768);
    assert.equal(properties.Running?.type, 'boolean');
    assert.equal(properties.Label?.type, 'string');
    assert.deepEqual(Object.keys(model.actions ?? {}), ['Device_Control_Reset']);
    const nodeModel = (await models.get('sparkplug.plant1.gw1')).document;
    assert.deepEqual(Object.keys(nodeModel.properties ?? {}), ['Uptime']);
    assert.deepEqual(Object.keys(nodeModel.actions ?? {}), ['Node_Control_Rebirth']);
    // Online, the birth's values stored, then listening for downlink.
    await until('the device listening', () => (presenceOf(uplink, 'plant1:gw1:pump1').includes('listening') ? true : undefined));
    assert.deepEqual(presenceOf(uplink, 'plant1:gw1:pump1'), ['online', 'listening']);
    const birthValues = bodyOf(uplink.of('plant1:gw1:pump1', 'telemetry')[0]) as Record<string, unknown>;
    assert.equal(birthValues.Temperature_PV, 21.5);
    assert.equal(birthValues.Setpoint, 40);
    assert.equal(birthValues.Label, 'pump A');
    assert.equal(host.health(device).state, 'connected');
  });

  test('DDATA by alias is telemetry, with the timestamps the payload carries', async () => {
    const before = uplink.of('plant1:gw1:pump1', 'telemetry').length;
    const ts = Date.now() - 1_000;
    await edge.publish('DDATA', [{ alias: 11, type: 'Int16', value: -3, timestamp: ts } as never], 'pump1');
    const message = await until('DDATA telemetry', () => uplink.of('plant1:gw1:pump1', 'telemetry')[before]);
    assert.deepEqual(bodyOf(message), { ts, Setpoint: -3 });
    const device = await registry.get('plant1:gw1:pump1');
    assert.ok((host.health(device).lastGoodReadTs ?? 0) >= T0);
  });

  test('DDATA by alias without a datatype is read with the datatype from the birth', async () => {
    const before = uplink.of('plant1:gw1:pump1', 'telemetry').length;
    // Spec 6.4.16: DATA messages should leave the datatype out; encode one by hand.
    const { default: proto } = await import('sparkplug-payload/lib/sparkplugPayloadProto.js');
    const Payload = proto.org.eclipse.tahu.protobuf.Payload;
    const ts = Date.now();
    const bytes = Payload.encode(
      Payload.create({ timestamp: ts, seq: 3, metrics: [Payload.Metric.create({ alias: 10, floatValue: 30.25 })] }),
    ).finish();
    edge.skip(1);
    await edge.raw('DDATA', Buffer.from(bytes), 'pump1');
    const message = await until('DDATA telemetry', () => uplink.of('plant1:gw1:pump1', 'telemetry')[before]);
    assert.deepEqual(bodyOf(message), { ts, Temperature_PV: 30.25 });
  });

  test('an unknown alias is an error on the device and counted; the known metrics still count', async () => {
    const before = uplink.of('plant1:gw1:pump1', 'telemetry').length;
    await edge.publish(
      'DDATA',
      [{ alias: 99, type: 'Int32', value: 5 } as never, { alias: 12, type: 'Boolean', value: false } as never],
      'pump1',
    );
    await until('the unknown alias error', () => uplink.errors.find((e) => e.reason === 'unknown_alias'));
    const error = uplink.errors.find((e) => e.reason === 'unknown_alias');
    assert.equal(error?.device, 'plant1:gw1:pump1');
    assert.match(error?.message ?? '', /alias 99/);
    assert.equal(uplink.count('unknown_alias'), 1);
    const message = await until('the rest of the DDATA', () => uplink.of('plant1:gw1:pump1', 'telemetry')[before]);
    assert.equal((bodyOf(message) as Record<string, unknown>).Running, false);
  });

  test('a payload that is not protobuf is counted and dropped', async () => {
    const telemetry = uplink.of('plant1:gw1:pump1', 'telemetry').length;
    await edge.raw('DDATA', Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12]), 'pump1');
    await until('the refusal', () => (uplink.count('invalid_payload') === 1 ? true : undefined));
    assert.equal(uplink.of('plant1:gw1:pump1', 'telemetry').length, telemetry);
    assert.ok(uplink.errors.some((e) => e.reason === 'invalid_payload' && e.device === 'plant1:gw1:pump1'));
  });

  test('a gap in seq asks the edge node for a rebirth (NCMD Node Control/Rebirth = true) and is counted', async () => {
    edge.skip(5);
    await edge.publish('NDATA', [{ name: 'Uptime', type: 'UInt32', value: 13 }]);
    const rebirth = await until('the rebirth request', () => edge.commandsFor('spBv1.0/plant1/NCMD/gw1', 'Node Control/Rebirth')[0]);
    assert.equal(rebirth.value, true);
    assert.equal(uplink.count('seq_gap'), 1);
    assert.ok(uplink.errors.some((e) => e.reason === 'seq_gap' && e.device === 'plant1:gw1'));
    // The values of the message after the gap are still good.
    const uptime = await until('NDATA telemetry', () =>
      uplink.of('plant1:gw1', 'telemetry').find((m) => (bodyOf(m) as Record<string, unknown>).Uptime === 13),
    );
    assert.ok(uptime);
  });

  test('a desired write goes out as DCMD in the birth datatype; the next DDATA with the metric confirms it', async () => {
    const device = await registry.get('plant1:gw1:pump1');
    assert.ok(host.reachable(device, { kind: 'desired', state: { version: 1, desired: {}, delta: {}, ts: 0 } }));
    await host.deliver(device, {
      kind: 'desired',
      state: { version: 2, desired: { Setpoint: 55 }, delta: { Setpoint: 55 }, ts: Date.now() },
    });
    const write = await until('the DCMD', () => edge.commandsFor('spBv1.0/plant1/DCMD/gw1/pump1', 'Setpoint')[0]);
    assert.equal(write.value, 55);
    assert.equal(write.type, 'Int16');
    assert.equal(write.alias?.toString(), '11');
    await edge.publish('DDATA', [{ alias: 11, type: 'Int16', value: 55 } as never], 'pump1');
    const reported = await until('the confirmation', () => uplink.of('plant1:gw1:pump1', 'twin-reported')[0]);
    assert.deepEqual(bodyOf(reported), { Setpoint: 55 });
  });

  test('a write the device keeps reporting otherwise past the confirmation window is an error on the device', async () => {
    const device = await registry.get('plant1:gw1:pump1');
    await host.deliver(device, {
      kind: 'desired',
      state: { version: 3, desired: { Setpoint: 60 }, delta: { Setpoint: 60 }, ts: Date.now() },
    });
    await until('the DCMD', () => edge.commandsFor('spBv1.0/plant1/DCMD/gw1/pump1', 'Setpoint').find((m) => m.value === 60));
    // Sent before the command arrived: not yet a failure.
    await edge.publish('DDATA', [{ alias: 11, type: 'Int16', value: 55 } as never], 'pump1');
    const telemetry = uplink.of('plant1:gw1:pump1', 'telemetry').length;
    uplink.offsetMs = 60_000;
    try {
      await edge.publish('DDATA', [{ alias: 11, type: 'Int16', value: 55, timestamp: Date.now() } as never], 'pump1');
      const error = await until('the unconfirmed write', () => uplink.errors.find((e) => e.reason === 'write_unconfirmed'));
      assert.match(error.message, /Setpoint = 60 was not confirmed: the device still reports 55/);
      assert.ok(uplink.of('plant1:gw1:pump1', 'telemetry').length > telemetry);
      assert.equal(uplink.of('plant1:gw1:pump1', 'twin-reported').length, 1);
    } finally {
      uplink.offsetMs = 0;
    }
  });

  test('a desired value the metric cannot take is refused before anything is sent', async () => {
    const device = await registry.get('plant1:gw1:pump1');
    await assert.rejects(
      host.deliver(device, {
        kind: 'desired',
        state: { version: 3, desired: { Setpoint: 1e6 }, delta: { Setpoint: 1e6 }, ts: Date.now() },
      }),
      /Int16: 1000000 is out of its range/,
    );
  });

  test('an action writes its control metric (DCMD Device Control/Reset = true) and succeeds once sent', async () => {
    const device = await registry.get('plant1:gw1:pump1');
    assert.ok(host.reachable(device, { kind: 'invoke', id: 'inv-1', action: 'Device_Control_Reset', input: undefined, timeoutMs: 5000 }));
    await host.deliver(device, { kind: 'invoke', id: 'inv-1', action: 'Device_Control_Reset', input: undefined, timeoutMs: 5000 });
    const write = await until('the DCMD', () => edge.commandsFor('spBv1.0/plant1/DCMD/gw1/pump1', 'Device Control/Reset')[0]);
    assert.equal(write.value, true);
    const result = await until('the action result', () => uplink.of('plant1:gw1:pump1', 'action-result')[0]);
    assert.deepEqual(bodyOf(result), { id: 'inv-1', output: { metric: 'Device Control/Reset', value: true } });
  });

  test('the same birth keeps the model version; a changed metric set makes a new one', async () => {
    await edge.nodeBirth([{ name: 'Uptime', alias: 1, type: 'UInt32', value: 20 }]);
    await edge.publish('DBIRTH', [{ name: 'Temperature/PV', alias: 10, type: 'Float', value: 20 }], 'pump2');
    await until('pump2', () => registry.find('plant1:gw1:pump2'));
    assert.equal((await models.get('sparkplug.plant1.gw1')).version, 1);
    await edge.publish(
      'DBIRTH',
      [
        { name: 'Temperature/PV', alias: 10, type: 'Float', value: 20 },
        { name: 'Pressure', alias: 11, type: 'Double', value: 1.2 },
      ],
      'pump2',
    );
    await until('model v2', async () => ((await registry.find('plant1:gw1:pump2'))?.modelVersion === 2 ? true : undefined));
    const properties = Object.keys((await models.get('sparkplug.plant1.gw1.pump2')).document.properties ?? {});
    assert.deepEqual(properties.sort(), ['Pressure', 'Temperature_PV']);
  });

  test('a stale NDEATH (another bdSeq) is ignored; the NDEATH of the session takes the node and its devices offline', async () => {
    const stale = sparkplug.encodePayload({ timestamp: Date.now(), metrics: [{ name: 'bdSeq', type: 'Int64', value: 6 }] });
    await edge.raw('NDEATH', Buffer.from(stale));
    await until('the stale death counted', () => (uplink.count('stale_death') === 1 ? true : undefined));
    assert.equal(presenceOf(uplink, 'plant1:gw1').at(-1), 'listening');
    edge.drop();
    await until('the node offline', () => (presenceOf(uplink, 'plant1:gw1').at(-1) === 'offline' ? true : undefined));
    await until('pump2 offline', () => (presenceOf(uplink, 'plant1:gw1:pump2').at(-1) === 'offline' ? true : undefined));
    const device = await registry.get('plant1:gw1:pump2');
    assert.equal(host.health(device).state, 'unreachable');
    assert.equal(
      host.reachable(device, { kind: 'invoke', id: 'x', action: 'Device_Control_Reset', input: undefined, timeoutMs: 1 }),
      false,
    );
  });

  test('DATA from an edge node that was not born asks for a rebirth', async () => {
    const other = new TestEdgeNode({ url: broker.url, group: 'plant1', edgeNode: 'gw9' });
    await other.connect();
    try {
      await other.publish('NDATA', [{ name: 'Uptime', type: 'UInt32', value: 1 }]);
      const rebirth = await until('the rebirth request', () => other.commandsFor('spBv1.0/plant1/NCMD/gw9', 'Node Control/Rebirth')[0]);
      assert.equal(rebirth.value, true);
      assert.ok(uplink.count('not_born') >= 1);
      assert.equal(await registry.find('plant1:gw9'), undefined);
    } finally {
      await other.close();
    }
  });

  test('a clean stop publishes the STATE death, retained', async () => {
    await host.stop();
    const observer = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    try {
      const retained = new Promise<{ online: boolean; timestamp: number }>((resolve) => {
        observer.on('message', (topic, payload) => {
          if (topic === 'spBv1.0/STATE/scada-1') resolve(JSON.parse(payload.toString()) as { online: boolean; timestamp: number });
        });
      });
      await observer.subscribeAsync('spBv1.0/STATE/scada-1', { qos: 1 });
      const state = await retained;
      assert.equal(state.online, false);
      assert.ok(state.timestamp >= T0);
    } finally {
      await observer.endAsync();
    }
  });
});

describe('the simulated Sparkplug B tank farm (thingloop sim) against the host application', () => {
  test('its births register the tanks; a valve write is confirmed by its next DDATA, a flush empties the tank', async () => {
    const broker = await startMosquitto();
    const db = openDatabase(':memory:');
    const models = new ModelCatalog(new SqliteModels(db), () => Date.now());
    const identity = planIdentity('thingloop.test', 'fd00:1:2:3::/64');
    const registry = new DeviceRegistry(
      new SqliteDevices(db),
      models,
      { address: (id, attempt) => addressDevice(identity, id, attempt), canonicalIpv6 },
      () => Date.now(),
    );
    const uplink = new RecordingUplink();
    const host = new SparkplugHost({ hostId: 'demo', broker: () => ({ url: broker.url }), tenant: 'default', registry, models, logger });
    const farm = new SimulatedSparkplugEdgeNode({
      url: broker.url,
      group: 'pump-station',
      edgeNode: 'tank-farm',
      tanks: 2,
      intervalMs: 50,
    });
    try {
      await host.start(uplink);
      await farm.start();
      assert.deepEqual(farm.deviceIds(), ['pump-station:tank-farm', 'pump-station:tank-farm:tank-1', 'pump-station:tank-farm:tank-2']);
      const tank = await until('tank-1 born and listening', async () => {
        const device = await registry.find('pump-station:tank-farm:tank-1');
        return device && host.reachable(device, { kind: 'desired', state: { version: 0, desired: {}, delta: {}, ts: 0 } })
          ? device
          : undefined;
      });
      const properties = (await models.get(tank.model)).document.properties ?? {};
      assert.equal(properties.Level?.unit, '%');
      assert.equal(properties.Inlet_Valve?.maximum, 100);
      await host.deliver(tank, {
        kind: 'desired',
        state: { version: 1, desired: { Inlet_Valve: 80 }, delta: { Inlet_Valve: 80 }, ts: Date.now() },
      });
      const confirmed = await until('the valve write confirmed', () => uplink.of(tank.id, 'twin-reported')[0]);
      assert.deepEqual(bodyOf(confirmed), { Inlet_Valve: 80 });
      await host.deliver(tank, { kind: 'invoke', id: 'flush-1', action: 'Device_Control_Flush', input: undefined, timeoutMs: 5_000 });
      await until('the tank empty', () =>
        uplink.of(tank.id, 'telemetry').some((m) => {
          const body = bodyOf(m);
          return (Array.isArray(body) ? body : [body]).some((s) => (s as Record<string, unknown>).Level === 0);
        })
          ? true
          : undefined,
      );
      assert.equal(uplink.refusals.length, 0, `no refusals: ${uplink.refusals.join(', ')}`);
    } finally {
      await farm.stop();
      await host.stop();
      await broker.stop();
      db.close();
    }
  });
});
