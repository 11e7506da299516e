/**
 * The device gateway assembled from the node's real parts on a real SQLite file, with a client
 * binding written against the contract (the shape Modbus and OPC UA bindings take): which
 * devices it is told to serve, what its messages become, where downlinks go, and what is
 * refused. MQTT and HTTP through the same gateway are covered by the node suites.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { EventBus } from '../src/bus/index.js';
import { CommandService } from '../src/commands/index.js';
import {
  type AttachedDevice,
  type BindingHealth,
  type BindingProtocol,
  CodecRegistry,
  type DeviceBinding,
  DeviceGateway,
  type DeviceUplink,
  type DownlinkRequest,
  jsonCodec,
} from '../src/gateway/index.js';
import { type IngestEvents, IngestPipeline } from '../src/ingest/index.js';
import { ModelCatalog } from '../src/model/index.js';
import { createLogger, NodeMetrics } from '../src/observability/index.js';
import { type DeviceRecord, DeviceRegistry, type FleetDeviceRef, PresenceBook } from '../src/registry/index.js';
import {
  openDatabase,
  SqliteDeviceEvents,
  SqliteDevices,
  SqliteInvocations,
  SqliteModels,
  SqliteTelemetryStore,
  SqliteTwins,
} from '../src/store/sqlite/index.js';
import { ManualClock } from '../src/time/index.js';
import { TwinService } from '../src/twin/index.js';
import { nextMessage, PUMP_MODEL, startTestNode, tempDir } from './support/harness.js';
import { until } from './support/wait.js';

/** A client binding as fieldbus bindings are: told which devices to serve, polled for health. */
class RecordingBinding implements DeviceBinding {
  uplink: DeviceUplink | undefined;
  readonly attached = new Map<string, AttachedDevice>();
  readonly lifecycle: string[] = [];
  readonly delivered: { device: string; request: DownlinkRequest }[] = [];
  listening = new Set<string>();
  stopped = false;

  constructor(readonly protocol: BindingProtocol) {}

  async start(uplink: DeviceUplink): Promise<void> {
    this.uplink = uplink;
  }
  async stop(): Promise<void> {
    this.stopped = true;
  }
  async attach(attached: AttachedDevice): Promise<void> {
    this.lifecycle.push(`attach ${attached.device.id} ${attached.model.id}`);
    this.attached.set(attached.device.id, attached);
  }
  async detach(device: FleetDeviceRef): Promise<void> {
    this.lifecycle.push(`detach ${device.id}`);
    this.attached.delete(device.id);
  }
  reachable(device: DeviceRecord): boolean {
    return this.listening.has(device.id);
  }
  async deliver(device: DeviceRecord, request: DownlinkRequest): Promise<void> {
    this.delivered.push({ device: device.id, request });
  }
  health(device: DeviceRecord): BindingHealth | undefined {
    if (!this.attached.has(device.id)) return undefined;
    return { protocol: this.protocol, state: 'polling', lastGoodReadTs: 5, errors: 0, latencyMs: 3 };
  }
}

async function assemble(role: 'cloud' | 'edge' = 'cloud') {
  const dir = tempDir();
  const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
  const now = () => clock.now();
  const db = openDatabase(join(dir, 'thingloop.db'));
  const models = new ModelCatalog(new SqliteModels(db), now);
  const registry = new DeviceRegistry(
    new SqliteDevices(db),
    models,
    { address: (id, attempt) => ({ code: `t/${id}${attempt}`, ipv6: `fd00::${attempt + 1}:${id.length}` }), canonicalIpv6: (t) => t },
    now,
    async () => true,
  );
  const metrics = new NodeMetrics(() => 0);
  const store = new SqliteTelemetryStore(db, metrics);
  const bus = new EventBus<IngestEvents>();
  const modelOf = (device: DeviceRecord) => models.compiled(device.model, device.modelVersion);
  const codecs = new CodecRegistry();
  const ingest = new IngestPipeline({
    store,
    events: new SqliteDeviceEvents(db),
    bus,
    metrics,
    now,
    modelOf,
    limits: { maxPayloadBytes: 4096, maxSamplesPerMessage: 100, maxFutureSkewMs: 60_000 },
    decode: (bytes, contentType) => codecs.decode(bytes, contentType),
  });
  const presence = new PresenceBook();
  const twins = new TwinService({ repository: new SqliteTwins(db), modelOf, now, defaultDeliveryTtlMs: 60_000 });
  const commands: CommandService = new CommandService({
    repository: new SqliteInvocations(db),
    modelOf,
    now,
    defaultTimeoutMs: 30_000,
    queueTtlMs: { awake: 60_000, sleepy: 60_000 },
    lastSeen: (id) => presence.lastSeen(id),
    metrics: { queueFull: () => undefined },
    channel: { reachable: (id, action) => gateway.actionReachable(id, action), send: (invocation) => gateway.sendAction(invocation) },
  });
  const gateway: DeviceGateway = new DeviceGateway({
    role,
    registry,
    modelOf,
    ingest,
    bus,
    twins,
    commands,
    presence,
    refusals: metrics,
    logger: createLogger({ level: 'silent' }),
    now,
  });
  await models.put('pump', PUMP_MODEL);
  return {
    gateway,
    registry,
    models,
    twins,
    commands,
    store,
    metrics,
    codecs,
    clock,
    async close() {
      await gateway.stop();
      await store.flush();
      await twins.flush();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const MODBUS = { protocol: 'modbus-tcp', host: '127.0.0.1', port: 1502, unitId: 1 } as const;

test('client bindings are told which devices this node serves: at start, on registration, on a protocol change and on deletion', async () => {
  const node = await assemble('cloud');
  try {
    await node.registry.register({ id: 'plc-1', model: 'pump', binding: MODBUS });
    await node.registry.register({ id: 'plc-on-edge', model: 'pump', edge: 'site-a', binding: MODBUS });
    await node.registry.register({ id: 'mqtt-1', model: 'pump' });
    const modbus = new RecordingBinding('modbus-tcp');
    const opcua = new RecordingBinding('opcua');
    await node.gateway.start([modbus, opcua]);
    // A cloud leaves devices an edge serves to that edge; MQTT devices need no attaching.
    await until('plc-1 attached', () => (modbus.attached.has('plc-1') ? true : undefined));
    assert.deepEqual([...modbus.attached.keys()], ['plc-1']);
    assert.equal(modbus.attached.get('plc-1')?.device.binding.host, '127.0.0.1');

    await node.registry.register({ id: 'plc-2', model: 'pump', binding: MODBUS });
    await until('plc-2 attached', () => (modbus.attached.has('plc-2') ? true : undefined));

    await node.registry.patch('plc-2', { binding: { protocol: 'opcua', endpoint: 'opc.tcp://127.0.0.1:4840' } });
    await until('plc-2 moved to OPC UA', () => (opcua.attached.has('plc-2') ? true : undefined));
    assert.equal(modbus.attached.has('plc-2'), false);

    await node.registry.remove('plc-1');
    await until('plc-1 detached', () => (modbus.attached.has('plc-1') ? undefined : true));
    assert.deepEqual(modbus.lifecycle, ['attach plc-1 pump', 'attach plc-2 pump', 'detach plc-2', 'detach plc-1']);
    assert.deepEqual(opcua.lifecycle, ['attach plc-2 pump']);

    // Health is the binding's report, or idle where it has none.
    const plc2 = await node.registry.get('plc-2');
    assert.equal(node.gateway.health(plc2).state, 'polling');
    const mqttDevice = await node.registry.get('mqtt-1');
    assert.deepEqual(node.gateway.health(mqttDevice), {
      protocol: 'mqtt',
      state: 'idle',
      lastGoodReadTs: null,
      errors: 0,
      latencyMs: null,
    });
  } finally {
    await node.close();
  }
});

test('an edge serves every device in its registry', async () => {
  const node = await assemble('edge');
  try {
    await node.registry.register({ id: 'plc-on-edge', model: 'pump', edge: 'site-a', binding: MODBUS });
    const modbus = new RecordingBinding('modbus-tcp');
    await node.gateway.start([modbus]);
    await until('attached', () => (modbus.attached.has('plc-on-edge') ? true : undefined));
  } finally {
    await node.close();
  }
});

test("a binding's messages reach ingest, the twin and commands; decoded bodies skip codecs; unknown content types are refused with a reason", async () => {
  const node = await assemble();
  try {
    const { device } = await node.registry.register({ id: 'plc-1', model: 'pump', binding: MODBUS });
    const modbus = new RecordingBinding('modbus-tcp');
    await node.gateway.start([modbus]);
    const uplink = modbus.uplink;
    assert.ok(uplink);

    // A register map hands over values it decoded itself.
    const decoded = await node.gateway.accept(
      device,
      { kind: 'telemetry', payload: { body: { speed: 40, temperature: 61.5 } } },
      'modbus-tcp',
    );
    assert.equal(decoded.acceptedValues, 2);

    // Bytes without a content type are JSON.
    const json = await node.gateway.accept(device, { kind: 'telemetry', payload: { bytes: Buffer.from('{"speed": 41}') } }, 'modbus-tcp');
    assert.equal(json.acceptedValues, 1);

    // A codec registered for a content type decodes it (here: key=value lines).
    node.codecs.register({
      contentType: 'text/x-key-value',
      decode: (bytes) => ({
        body: Object.fromEntries(
          bytes
            .toString('utf8')
            .split('\n')
            .map((line) => line.split('='))
            .map(([key, value]) => [key, Number(value)]),
        ),
      }),
    });
    const keyValue = await node.gateway.accept(
      device,
      { kind: 'telemetry', payload: { bytes: Buffer.from('speed=42\nvibration=1.5'), contentType: 'text/x-key-value; charset=utf-8' } },
      'modbus-tcp',
    );
    assert.equal(keyValue.acceptedValues, 2);

    const unknown = await node.gateway.accept(
      device,
      { kind: 'telemetry', payload: { bytes: Buffer.from('\x08\x01'), contentType: 'application/x-protobuf' } },
      'modbus-tcp',
    );
    assert.equal(unknown.acceptedValues, 0);
    assert.equal(unknown.rejections[0]?.reason, 'unsupported_content_type');
    assert.match(unknown.rejections[0]?.message ?? '', /application\/x-protobuf.*application\/json/);

    const malformed = await node.gateway.accept(device, { kind: 'telemetry', payload: { bytes: Buffer.from('{nope') } }, 'modbus-tcp');
    assert.equal(malformed.rejections[0]?.reason, 'malformed_json');

    // Refusals are on the device's error list and sent to its binding as an `errors` downlink.
    const errors = node.gateway.recentErrors('plc-1');
    assert.deepEqual(
      errors.map((notice) => notice.rejections[0]?.reason),
      ['malformed_json', 'unsupported_content_type'],
    );
    const notices = modbus.delivered.filter((entry) => entry.request.kind === 'errors');
    assert.equal(notices.length, 2);

    // A twin report and a binding-level fault.
    await uplink.receive(device, { kind: 'twin-reported', payload: { body: { mode: 'auto', speed: 500 } } }, 'modbus-tcp');
    const twin = await node.twins.get(device);
    assert.equal(twin.reported.mode, 'auto');
    assert.equal(twin.reported.speed, undefined, 'the out-of-range value is refused, its neighbour kept');
    assert.equal(node.gateway.recentErrors('plc-1')[0]?.source, 'twin');
    uplink.reportError(device, 'exception 2 (illegal data address) reading holding register 40', 'modbus_exception');
    assert.equal(node.gateway.recentErrors('plc-1')[0]?.source, 'binding');
    assert.equal(node.gateway.recentErrors('plc-1')[0]?.rejections[0]?.reason, 'modbus_exception');

    // Refusals without a device to blame are counted per protocol.
    uplink.refused('modbus-tcp', 'unreachable');
    const metrics = await node.metrics.registry.getSingleMetricAsString('thingloop_refusals_total');
    assert.match(metrics, /thingloop_refusals_total\{listener="modbus-tcp",reason="unreachable"\} 1/);
    assert.equal(jsonCodec.contentType, 'application/json');
  } finally {
    await node.close();
  }
});

test("downlinks go to the device's binding: desired state, actions when reachable, queued actions when it listens again", async () => {
  const node = await assemble();
  try {
    const { device } = await node.registry.register({ id: 'plc-1', model: 'pump', binding: MODBUS });
    const modbus = new RecordingBinding('modbus-tcp');
    await node.gateway.start([modbus]);

    await node.twins.setDesired(device, { values: { speed: 55 }, expectedVersion: undefined, actor: 'api' });
    const desired = await until('desired delivered', () => modbus.delivered.find((entry) => entry.request.kind === 'desired'));
    assert.equal(desired.request.kind === 'desired' && desired.request.state.desired.speed, 55);

    // Not reachable: the action waits.
    const queued = await node.commands.invoke(device, { action: 'reset', input: { reason: 'test' }, actor: 'api' });
    assert.equal(queued.invocation.status, 'queued');
    assert.equal(modbus.delivered.filter((entry) => entry.request.kind === 'invoke').length, 0);

    // The binding reports the device can hear downlink again: the queued action goes out.
    modbus.listening.add('plc-1');
    await modbus.uplink?.receive(device, { kind: 'presence', state: 'listening' }, 'modbus-tcp');
    const sent = await until('queued action delivered', () => modbus.delivered.find((entry) => entry.request.kind === 'invoke'));
    assert.ok(sent.request.kind === 'invoke');
    assert.equal(sent.request.id, queued.invocation.id);
    assert.deepEqual(sent.request.input, { reason: 'test' });

    // The result comes back through the binding and completes the invocation.
    await modbus.uplink?.receive(
      device,
      { kind: 'action-result', action: 'reset', payload: { body: { id: queued.invocation.id, output: 'done' } } },
      'modbus-tcp',
    );
    const done = await until('invocation succeeded', async () => {
      const invocation = await node.commands.get(queued.invocation.id);
      return invocation?.status === 'succeeded' ? invocation : undefined;
    });
    assert.equal(done.output, 'done');

    // Reachable now: delivered at once.
    const direct = await node.commands.invoke(device, { action: 'reset', actor: 'api' });
    assert.equal(direct.invocation.status, 'delivered');

    await node.gateway.stop();
    assert.equal(modbus.stopped, true);
  } finally {
    await node.close();
  }
});

test('on a node, MQTT and HTTP are bindings: their health, HTTP answers unchanged, HTTP actions queued until the device listens on MQTT', async () => {
  const t = await startTestNode();
  try {
    const viaMqtt = await t.registerDevice('gw-mqtt');
    const before = await t.api<BindingHealth>('/api/v1/devices/gw-mqtt/binding');
    assert.deepEqual(before.body, { protocol: 'mqtt', state: 'idle', lastGoodReadTs: null, errors: 0, latencyMs: null });
    const client = await t.connectDevice('gw-mqtt', viaMqtt.token);
    await client.publishAsync('things/gw-mqtt/telemetry', JSON.stringify({ speed: 12 }), { qos: 1 });
    const connected = await t.api<BindingHealth>('/api/v1/devices/gw-mqtt/binding');
    assert.equal(connected.body.state, 'connected');
    assert.equal(typeof connected.body.lastGoodReadTs, 'number');
    await client.endAsync();
    await until('session closed', async () => {
      const health = await t.api<BindingHealth>('/api/v1/devices/gw-mqtt/binding');
      return health.body.state === 'idle' ? true : undefined;
    });

    const viaHttp = await t.registerDevice('gw-http', 'pump', { binding: { protocol: 'http' } });
    const auth = { auth: viaHttp.token };
    const stored = await t.api('/api/v1/devices/gw-http/telemetry', { method: 'POST', body: { speed: 30 }, ...auth });
    assert.equal(stored.status, 200);
    assert.deepEqual(stored.body, { acceptedSamples: 1, acceptedValues: 1, rejections: [] });
    const refused = await t.api<{ error: string; rejections: { reason: string }[] }>('/api/v1/devices/gw-http/telemetry', {
      method: 'POST',
      body: { speed: 500 },
      ...auth,
    });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.rejections[0]?.reason, 'out_of_range');
    const health = await t.api<BindingHealth>('/api/v1/devices/gw-http/binding');
    assert.equal(health.body.protocol, 'http');
    assert.equal(health.body.state, 'connected');
    assert.equal(health.body.errors, 1);
    const errors = await t.api<{ items: { source: string }[] }>('/api/v1/devices/gw-http/errors');
    assert.equal(errors.body.items[0]?.source, 'telemetry');

    // Nothing is pushed to an HTTP device: its action waits in the queue.
    const invoked = await t.api<{ id: string; status: string }>('/api/v1/devices/gw-http/actions/reset', { method: 'POST', body: {} });
    assert.equal(invoked.status, 202);
    assert.equal(invoked.body.status, 'queued');
    // Devices mix: once the HTTP device listens on MQTT, its queued action goes out there.
    const session = await t.connectDevice('gw-http', viaHttp.token);
    const heard = nextMessage<{ id: string }>(session, 'things/gw-http/actions/reset');
    await session.subscribeAsync('things/gw-http/actions/+', { qos: 1 });
    assert.equal((await heard).id, invoked.body.id);
  } finally {
    await t.stop();
  }
});
