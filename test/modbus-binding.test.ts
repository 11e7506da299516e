/**
 * The Modbus TCP binding against a real Modbus TCP server from another library (modbus-serial's
 * ServerTCP, as the simulated PLC): decoding, coalescing, writes with read-back, action sequences,
 * exception and malformed answers, an unreachable PLC and its recovery. The binding hands its
 * messages to a recording uplink: the contract is the seam, the peer is real.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import type { DeviceMessage, DeviceUplink } from '../src/gateway/index.js';
import { type ActionAffordance, compileThingModel, type PropertyAffordance, type ThingModel } from '../src/model/index.js';
import type { DeviceRecord } from '../src/registry/index.js';
import { ModbusPlc } from '../src/sim/modbus-plc.js';
import { ModbusBinding, type ModbusBindingOptions } from '../src/transport/modbus/index.js';
import { until } from './support/wait.js';

type Body = Record<string, unknown>;

class RecordingUplink implements DeviceUplink {
  readonly messages: { device: string; message: DeviceMessage }[] = [];
  readonly errors: { device: string; message: string; reason: string | undefined }[] = [];
  readonly refusals: string[] = [];

  async receive(device: DeviceRecord, message: DeviceMessage): Promise<void> {
    this.messages.push({ device: device.id, message });
  }
  reportError(device: DeviceRecord, message: string, reason?: string): void {
    this.errors.push({ device: device.id, message, reason });
  }
  refused(_protocol: string, reason: string): void {
    this.refusals.push(reason);
  }
  now(): number {
    return Date.now();
  }

  bodies(device: string, kind: DeviceMessage['kind']): Body[] {
    const out: Body[] = [];
    for (const { device: id, message } of this.messages) {
      if (id !== device || message.kind !== kind || !('payload' in message) || !('body' in message.payload)) continue;
      out.push(message.payload.body as Body);
    }
    return out;
  }
  telemetry(device: string): Body[] {
    return this.bodies(device, 'telemetry');
  }
  presence(device: string): string[] {
    return this.messages.flatMap(({ device: id, message }) => (id === device && message.kind === 'presence' ? [message.state] : []));
  }
  /** The first telemetry body of `device` after `skip` of them. */
  nextTelemetry(device: string, skip = 0): Promise<Body> {
    return until(`telemetry from ${device}`, () => this.telemetry(device)[skip]);
  }
}

/** A thing model whose affordances carry WoT forms (the model module reads only their schemas). */
type FormModel = ThingModel & {
  properties?: Record<string, PropertyAffordance & { forms?: Record<string, unknown>[] }>;
  actions?: Record<string, ActionAffordance & { forms?: Record<string, unknown>[] }>;
};

const FORM = 'modbus+tcp://{{host}}:{{port}}/{{unitId}}';

let sequence = 0;
function deviceOn(plc: { host: string; port: number }, unitId = 1, id = `plc-${++sequence}`): DeviceRecord {
  const record: DeviceRecord = {
    id,
    tenant: 'default',
    uid: sequence,
    name: id,
    model: 'plc-model',
    modelVersion: 1,
    code: `test/${id}`,
    ipv6: '::1',
    attributes: {},
    network: { profile: 'ethernet', reportIntervalMs: 1_000, keepAliveMs: 60_000, sleepy: false },
    binding: { protocol: 'modbus-tcp', host: plc.host, port: plc.port, unitId },
    createdAt: 0,
    updatedAt: 0,
  };
  return record;
}

const compiled = (document: FormModel) => compileThingModel({ id: 'plc-model', version: 1, document, createdAt: 0 });

const bindings: ModbusBinding[] = [];
const plcs: ModbusPlc[] = [];
const servers: Server[] = [];

async function startBinding(uplink: DeviceUplink, options: ModbusBindingOptions = {}): Promise<ModbusBinding> {
  const binding = new ModbusBinding({ defaultPollingMs: 100, requestTimeoutMs: 2_000, connectTimeoutMs: 2_000, ...options });
  bindings.push(binding);
  await binding.start(uplink);
  return binding;
}

async function startPlc(port?: number): Promise<ModbusPlc> {
  const plc = await ModbusPlc.start(port ? { port } : {});
  plcs.push(plc);
  return plc;
}

after(async () => {
  for (const binding of bindings) await binding.stop();
  for (const plc of plcs) await plc.close();
  for (const server of servers) server.close();
});

describe('modbus-tcp binding: reading a PLC', () => {
  test('every data type, word order, scale and offset decodes from a real server', async () => {
    const plc = await startPlc();
    const unit = 3;
    plc.setValue(unit, 'HoldingRegister', 0, 'int16', -1234);
    plc.setValue(unit, 'HoldingRegister', 1, 'uint16', 54_321);
    plc.setValue(unit, 'HoldingRegister', 2, 'int32', -70_000);
    plc.setValue(unit, 'HoldingRegister', 4, 'uint32', 3_000_000_000);
    plc.setValue(unit, 'HoldingRegister', 6, 'float32', 21.5);
    plc.setValue(unit, 'HoldingRegister', 8, 'float32', -3.25, true);
    plc.setValue(unit, 'HoldingRegister', 10, 'int32', 123_456, true);
    plc.setValue(unit, 'InputRegister', 0, 'int16', 234);
    plc.setValue(unit, 'InputRegister', 1, 'uint16', 500);
    plc.unit(unit).coils.set(4, true);
    plc.unit(unit).discreteInputs.set(0, false);
    const model: FormModel = {
      title: 'every type',
      properties: {
        i16: { type: 'integer', forms: [{ href: `${FORM}/40001`, 'modv:entity': 'HoldingRegister', 'modv:type': 'int16' }] },
        u16: { type: 'integer', forms: [{ href: `${FORM}/40002`, 'modv:entity': 'HoldingRegister', 'modv:type': 'xsd:unsignedShort' }] },
        i32: { type: 'integer', forms: [{ href: `${FORM}/40003?quantity=2`, 'modv:entity': 'HoldingRegister', 'modv:type': 'xsd:int' }] },
        u32: { type: 'integer', forms: [{ href: `${FORM}/40005?quantity=2`, 'modv:entity': 'HoldingRegister', 'modv:type': 'uint32' }] },
        f32: { type: 'number', forms: [{ href: `${FORM}/40007`, 'modv:entity': 'HoldingRegister', 'modv:type': 'xsd:float' }] },
        f32low: {
          type: 'number',
          forms: [{ href: `${FORM}/40009`, 'modv:entity': 'HoldingRegister', 'modv:type': 'float32', 'modv:mostSignificantWord': false }],
        },
        i32low: {
          type: 'integer',
          forms: [
            {
              href: `${FORM}/10`,
              'modv:entity': 'HoldingRegister',
              'modv:type': 'int32',
              'modv:zeroBasedAddressing': true,
              'modv:mostSignificantWord': false,
            },
          ],
        },
        scaled: {
          type: 'number',
          forms: [{ href: `${FORM}/30001`, 'modv:entity': 'InputRegister', 'modv:type': 'int16', 'modv:scale': 0.1 }],
        },
        offset: {
          type: 'number',
          forms: [{ href: `${FORM}/30002`, 'modv:entity': 'InputRegister', 'modv:type': 'uint16', 'modv:scale': 0.1, 'modv:offset': -40 }],
        },
        coil: { type: 'boolean', forms: [{ href: `${FORM}/5`, 'modv:entity': 'Coil' }] },
        input: { type: 'boolean', forms: [{ href: `${FORM}/10001`, 'modv:entity': 'DiscreteInput', 'modv:type': 'xsd:boolean' }] },
      },
    };
    const uplink = new RecordingUplink();
    const binding = await startBinding(uplink);
    const device = deviceOn(plc, unit);
    await binding.attach({ device, model: compiled(model) });
    const body = await uplink.nextTelemetry(device.id);
    assert.equal(typeof body.ts, 'number');
    const { ts: _ts, ...values } = body;
    assert.deepEqual(values, {
      i16: -1234,
      u16: 54_321,
      i32: -70_000,
      u32: 3_000_000_000,
      f32: 21.5,
      f32low: -3.25,
      i32low: 123_456,
      scaled: 23.4,
      offset: 10,
      coil: true,
      input: false,
    });
    assert.deepEqual(uplink.presence(device.id), ['online', 'listening']);
    assert.deepEqual(uplink.errors, []);
    const health = binding.health(device);
    assert.equal(health?.protocol, 'modbus-tcp');
    assert.equal(health?.state, 'polling');
    assert.equal(typeof health?.lastGoodReadTs, 'number');
    assert.equal(typeof health?.latencyMs, 'number');
    assert.equal(health?.errors, 0);
    assert.equal(binding.reachable(device, { kind: 'invoke', id: 'x', action: 'a', input: null, timeoutMs: 1000 }), true);
  });

  test('nearby registers of a unit are read together; one connection serves every unit behind a host:port', async () => {
    const plc = await startPlc();
    const properties: NonNullable<FormModel['properties']> = {};
    // 40 holding registers at 0…39 with a gap at 20…29 (inside the coalescing gap) and 3 input registers.
    for (let i = 0; i < 40; i++) {
      if (i >= 20 && i < 30) continue;
      properties[`h${i}`] = { type: 'integer', forms: [{ href: `${FORM}/${40001 + i}`, 'modv:entity': 'HoldingRegister' }] };
    }
    for (let i = 0; i < 3; i++)
      properties[`in${i}`] = { type: 'integer', forms: [{ href: `${FORM}/${30001 + i}`, 'modv:entity': 'InputRegister' }] };
    // Far away: its own read.
    properties.far = { type: 'integer', forms: [{ href: `${FORM}/41001`, 'modv:entity': 'HoldingRegister' }] };
    for (const unitId of [1, 2]) {
      for (let i = 0; i < 40; i++) plc.unit(unitId).holdingRegisters.set(i, unitId * 100 + i);
      for (let i = 0; i < 3; i++) plc.unit(unitId).inputRegisters.set(i, 7);
      plc.unit(unitId).holdingRegisters.set(1000, 1);
    }
    const uplink = new RecordingUplink();
    let readsSent = 0;
    const binding = await startBinding(uplink, {
      onRound: (round) => {
        readsSent += round.reads;
      },
    });
    const model = compiled({ title: 'many registers', properties });
    const first = deviceOn(plc, 1);
    const second = deviceOn(plc, 2);
    await binding.attach({ device: first, model });
    await binding.attach({ device: second, model });
    const a = await uplink.nextTelemetry(first.id, 1);
    const b = await uplink.nextTelemetry(second.id, 1);
    assert.equal(Object.keys(a).length, 30 + 3 + 1 + 1);
    assert.equal(a.h0, 100);
    assert.equal(a.h39, 139);
    assert.equal(b.h39, 239);
    assert.equal(b.far, 1);
    // Holding 0…39 (the gap of 10 is read through), input 0…2, and the far register: 3 reads a round.
    assert.deepEqual(binding.pollState(first)?.readsPerRound, { 100: 3 });
    assert.equal(plc.clients, 1);
    assert.equal(binding.connectionCount(), 1);
    // Once polling stops (rounds in flight finish first), every request the PLC saw was one of those reads.
    await binding.detach(first);
    await binding.detach(second);
    assert.ok(readsSent >= 12);
    assert.equal(plc.requests.reads, readsSent);
  });

  test('an exception answer is an error on that property with the exception name; the rest keep reading', async () => {
    const plc = await startPlc();
    plc.unit(1).holdingRegisters.set(0, 11);
    plc.unit(1).holdingRegisters.set(2, 33);
    const uplink = new RecordingUplink();
    const binding = await startBinding(uplink);
    const device = deviceOn(plc);
    await binding.attach({
      device,
      model: compiled({
        title: 'one missing register',
        properties: {
          a: { type: 'integer', forms: [{ href: `${FORM}/40001`, 'modv:entity': 'HoldingRegister' }] },
          missing: { type: 'integer', forms: [{ href: `${FORM}/40002`, 'modv:entity': 'HoldingRegister' }] },
          c: { type: 'integer', forms: [{ href: `${FORM}/40003`, 'modv:entity': 'HoldingRegister' }] },
        },
      }),
    });
    const body = await uplink.nextTelemetry(device.id);
    assert.equal(body.a, 11);
    assert.equal(body.c, 33);
    assert.equal('missing' in body, false);
    await uplink.nextTelemetry(device.id, 2);
    const errors = uplink.errors.filter((error) => error.device === device.id);
    // Reported once (it does not change), named, with a reason counted in /metrics.
    assert.equal(errors.length, 1);
    assert.match(errors[0]?.message ?? '', /^missing: IllegalDataAddress \(exception code 2\)/);
    assert.equal(errors[0]?.reason, 'modbus_illegal_data_address');
    assert.ok(uplink.refusals.filter((reason) => reason === 'modbus_illegal_data_address').length >= 2);
    // After the coalesced read failed, the registers are read one by one.
    assert.deepEqual(binding.pollState(device)?.readsPerRound, { 100: 3 });
    assert.equal(binding.health(device)?.state, 'polling');
    assert.ok((binding.health(device)?.errors ?? 0) >= 2);
  });

  test('forms that cannot be used are errors on the device; the usable ones still poll', async () => {
    const plc = await startPlc();
    plc.unit(1).holdingRegisters.set(0, 5);
    const uplink = new RecordingUplink();
    const binding = await startBinding(uplink);
    const device = deviceOn(plc);
    await binding.attach({
      device,
      model: compiled({
        title: 'bad forms',
        properties: {
          good: { type: 'integer', forms: [{ href: `${FORM}/40001`, 'modv:entity': 'HoldingRegister' }] },
          badType: { type: 'number', forms: [{ href: `${FORM}/40002`, 'modv:entity': 'HoldingRegister', 'modv:type': 'float64' }] },
          badEntity: { type: 'number', forms: [{ href: `${FORM}/40003`, 'modv:entity': 'Register' }] },
          badCount: {
            type: 'number',
            forms: [{ href: `${FORM}/40004?quantity=3`, 'modv:entity': 'HoldingRegister', 'modv:type': 'float32' }],
          },
          noPlaceholder: { type: 'number', forms: [{ href: 'modbus+tcp://{{gateway}}/1/40005', 'modv:entity': 'HoldingRegister' }] },
        },
      }),
    });
    const body = await uplink.nextTelemetry(device.id);
    assert.equal(body.good, 5);
    const messages = uplink.errors.map((error) => error.message).join('\n');
    assert.match(messages, /badType.*float64/);
    assert.match(messages, /badEntity.*HoldingRegister/);
    assert.match(messages, /badCount.*quantity 3/);
    assert.match(messages, /\{\{gateway\}\}/);
    assert.ok(uplink.errors.every((error) => error.reason === 'invalid_binding_form'));
  });
});

describe('modbus-tcp binding: writing to a PLC', () => {
  const writable: FormModel = {
    title: 'writable',
    properties: {
      speed: {
        type: 'number',
        forms: [
          {
            href: `${FORM}/40001`,
            op: ['readproperty', 'writeproperty'],
            'modv:entity': 'HoldingRegister',
            'modv:type': 'int16',
            'modv:scale': 0.1,
          },
        ],
      },
      setpoint: {
        type: 'number',
        forms: [
          { href: `${FORM}/40003?quantity=2`, 'modv:entity': 'HoldingRegister', 'modv:type': 'float32', 'modv:mostSignificantWord': false },
        ],
      },
      enabled: { type: 'boolean', forms: [{ href: `${FORM}/1`, 'modv:entity': 'Coil' }] },
      clamped: { type: 'integer', forms: [{ href: `${FORM}/40005`, 'modv:entity': 'HoldingRegister' }] },
      temperature: { type: 'number', readOnly: true, forms: [{ href: `${FORM}/30001`, 'modv:entity': 'InputRegister' }] },
    },
    actions: {
      start: {
        forms: [
          {
            href: `${FORM}/1`,
            op: 'invokeaction',
            'modv:writes': [
              { entity: 'HoldingRegister', address: 40001, type: 'int16', scale: 0.1, value: { input: 'speed' } },
              { entity: 'Coil', address: 1, value: true },
            ],
            'modv:output': ['enabled', 'speed'],
          },
        ],
      },
      stop: { forms: [{ href: `${FORM}/1`, 'modv:entity': 'Coil' }] },
      broken: { forms: [{ href: `${FORM}/1`, 'modv:writes': [{ entity: 'Coil', address: 99, value: true }] }] },
    },
  };

  async function writablePlc() {
    const plc = await ModbusPlc.start({
      // The PLC clamps register 4 to 100, as a PLC program limiting a setpoint would.
      onWrite: (write) => {
        if (write.entity === 'HoldingRegister' && write.address === 4 && typeof write.value === 'number' && write.value > 100) {
          plc.unit(write.unitId).holdingRegisters.set(4, 100);
        }
      },
    });
    plcs.push(plc);
    const unit = plc.unit(1);
    for (let i = 0; i < 5; i++) unit.holdingRegisters.set(i, 0);
    unit.coils.set(0, false);
    unit.inputRegisters.set(0, 20);
    return plc;
  }

  test('a desired value is written with the inverse scale, read back and reported; failures are errors', async () => {
    const plc = await writablePlc();
    const uplink = new RecordingUplink();
    const binding = await startBinding(uplink, { defaultPollingMs: 60_000 });
    const device = deviceOn(plc);
    await binding.attach({ device, model: compiled(writable) });
    await uplink.nextTelemetry(device.id);
    const delta = { speed: 72.5, setpoint: 1.5, enabled: true, clamped: 150, temperature: 30 };
    await binding.deliver(device, { kind: 'desired', state: { version: 2, desired: delta, delta, ts: Date.now() } });
    assert.equal(plc.unit(1).holdingRegisters.get(0), 725);
    // float32 1.5 is 0x3FC00000; low word first.
    assert.deepEqual([plc.unit(1).holdingRegisters.get(2), plc.unit(1).holdingRegisters.get(3)], [0x0000, 0x3fc0]);
    assert.equal(plc.unit(1).coils.get(0), true);
    assert.deepEqual(uplink.bodies(device.id, 'twin-reported'), [{ speed: 72.5, setpoint: 1.5, enabled: true }]);
    const errors = uplink.errors.map((error) => `${error.reason}: ${error.message}`);
    assert.ok(errors.includes('readback_mismatch: clamped: wrote 150 but read back 100'), errors.join('\n'));
    assert.ok(
      errors.some((error) => error.startsWith('not_writable: temperature')),
      errors.join('\n'),
    );

    const tooBig = { speed: 5000 };
    await binding.deliver(device, { kind: 'desired', state: { version: 3, desired: tooBig, delta: tooBig, ts: Date.now() } });
    assert.ok(
      uplink.errors.some((error) => error.reason === 'out_of_range' && /speed: 5000 is out of range for int16/.test(error.message)),
    );
    assert.equal(plc.unit(1).holdingRegisters.get(0), 725);
  });

  test('an action writes its coil and register sequence and answers with the modv:output properties', async () => {
    const plc = await writablePlc();
    const uplink = new RecordingUplink();
    const binding = await startBinding(uplink, { defaultPollingMs: 60_000 });
    const device = deviceOn(plc);
    await binding.attach({ device, model: compiled(writable) });
    await uplink.nextTelemetry(device.id);
    await binding.deliver(device, { kind: 'invoke', id: 'inv-1', action: 'start', input: { speed: 55 }, timeoutMs: 5_000 });
    assert.equal(plc.unit(1).holdingRegisters.get(0), 550);
    assert.equal(plc.unit(1).coils.get(0), true);
    await binding.deliver(device, { kind: 'invoke', id: 'inv-2', action: 'stop', input: false, timeoutMs: 5_000 });
    assert.equal(plc.unit(1).coils.get(0), false);
    await binding.deliver(device, { kind: 'invoke', id: 'inv-3', action: 'start', input: {}, timeoutMs: 5_000 });
    await binding.deliver(device, { kind: 'invoke', id: 'inv-4', action: 'broken', input: null, timeoutMs: 5_000 });
    await binding.deliver(device, { kind: 'invoke', id: 'inv-5', action: 'unmapped', input: null, timeoutMs: 5_000 });
    const results = uplink.messages.flatMap(({ message }) =>
      message.kind === 'action-result' && 'body' in message.payload ? [message.payload.body] : [],
    );
    assert.deepEqual(results[0], { id: 'inv-1', output: { enabled: true, speed: 55 } });
    assert.deepEqual(results[1], { id: 'inv-2', output: null });
    assert.deepEqual(results[2], { id: 'inv-3', error: 'write 1 takes input field "speed", which the input does not have' });
    assert.deepEqual(results[3], { id: 'inv-4', error: 'IllegalDataAddress (exception code 2)' });
    assert.match(String((results[4] as Body).error), /no modbus\+tcp form/);
  });
});

/** A Modbus TCP peer that answers every request with the frame `answer` makes (hostile or broken PLCs). */
async function rawPeer(answer: (request: Buffer) => Buffer | undefined): Promise<{ host: string; port: number }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.on('data', (data) => {
      const frame = answer(data);
      if (frame) socket.write(frame);
    });
  });
  servers.push(server);
  const close = server.close.bind(server);
  server.close = (callback) => {
    for (const socket of sockets) socket.destroy();
    return close(callback);
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return { host: '127.0.0.1', port: address.port };
}

describe('modbus-tcp binding: faults', () => {
  const model = compiled({
    title: 'two registers',
    properties: {
      a: { type: 'integer', forms: [{ href: `${FORM}/40001`, 'modv:entity': 'HoldingRegister' }] },
      b: { type: 'integer', forms: [{ href: `${FORM}/40002`, 'modv:entity': 'HoldingRegister' }] },
    },
  });

  test('a PLC that goes away is offline with errors and backoff, another PLC keeps its schedule, and it recovers', async () => {
    const failing = await startPlc();
    const healthy = await startPlc();
    for (const plc of [failing, healthy]) {
      plc.unit(1).holdingRegisters.set(0, 1);
      plc.unit(1).holdingRegisters.set(1, 2);
    }
    const uplink = new RecordingUplink();
    const binding = await startBinding(uplink, { backoff: { initialMs: 40, maxMs: 160 } });
    const lost = deviceOn(failing);
    const steady = deviceOn(healthy);
    await binding.attach({ device: lost, model });
    await binding.attach({ device: steady, model });
    await uplink.nextTelemetry(lost.id);
    const port = failing.port;
    await failing.close();

    await until('the lost PLC offline', () => (uplink.presence(lost.id).includes('offline') ? true : undefined));
    assert.equal(binding.health(lost)?.state, 'unreachable');
    assert.equal(binding.reachable(lost, { kind: 'invoke', id: 'x', action: 'a', input: null, timeoutMs: 1000 }), false);
    // Backoff doubles up to its cap.
    const seen = new Set<number>();
    await until('backoff at its cap', () => {
      const state = binding.pollState(lost);
      if (state?.backoffMs) seen.add(state.backoffMs);
      return state?.backoffMs === 160 && (state.failures ?? 0) >= 4 ? true : undefined;
    });
    assert.deepEqual(
      [...seen].sort((x, y) => x - y).filter((ms) => ms > 0),
      [40, 80, 160].filter((ms) => seen.has(ms)),
    );
    assert.ok(seen.has(160));
    assert.ok(![...seen].some((ms) => ms > 160));
    const lostErrors = uplink.errors.filter((error) => error.device === lost.id);
    assert.ok(lostErrors.length >= 2);
    assert.match(lostErrors[0]?.message ?? '', /PLC unreachable/);
    assert.equal(lostErrors[0]?.reason, 'unreachable');
    assert.ok(uplink.refusals.includes('unreachable'));

    // The other PLC is polled all along.
    const before = uplink.telemetry(steady.id).length;
    await until('the healthy PLC still polled', () => (uplink.telemetry(steady.id).length >= before + 3 ? true : undefined));
    assert.equal(binding.health(steady)?.state, 'polling');

    const back = await startPlc(port);
    back.unit(1).holdingRegisters.set(0, 10);
    back.unit(1).holdingRegisters.set(1, 20);
    await until('the PLC back online', () => (uplink.presence(lost.id).at(-1) === 'listening' ? true : undefined), 10_000);
    assert.deepEqual(uplink.presence(lost.id), ['online', 'listening', 'offline', 'online', 'listening']);
    const recovered = await until('fresh readings', () => uplink.telemetry(lost.id).find((body) => body.a === 10));
    assert.equal(recovered.b, 20);
    assert.equal(binding.pollState(lost)?.backoffMs, 0);
    assert.equal(binding.health(lost)?.state, 'polling');
  });

  test('a PLC that never answers times out without holding up another one', async () => {
    const silent = await rawPeer(() => undefined);
    const healthy = await startPlc();
    healthy.unit(1).holdingRegisters.set(0, 1);
    healthy.unit(1).holdingRegisters.set(1, 2);
    const uplink = new RecordingUplink();
    const binding = await startBinding(uplink, { requestTimeoutMs: 300, backoff: { initialMs: 50, maxMs: 100 } });
    const mute = deviceOn(silent);
    const steady = deviceOn(healthy);
    await binding.attach({ device: mute, model });
    await binding.attach({ device: steady, model });
    await until('the mute PLC offline', () => (uplink.presence(mute.id).includes('offline') ? true : undefined));
    assert.match(uplink.errors.find((error) => error.device === mute.id)?.message ?? '', /no answer within 300 ms/);
    assert.ok(uplink.refusals.includes('timeout'));
    await until('the healthy PLC polled', () => (uplink.telemetry(steady.id).length >= 5 ? true : undefined));
  });

  test('wrong register counts and frames that are not Modbus are counted as malformed; the binding keeps polling', async () => {
    let garbage = false;
    const broken = await rawPeer((request) => {
      if (garbage) return Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n');
      // Answers a read of 2 holding registers with 1 register: a valid frame with the wrong count.
      const frame = Buffer.alloc(11);
      request.copy(frame, 0, 0, 4);
      frame.writeUInt16BE(5, 4);
      frame.writeUInt8(request.readUInt8(6), 6);
      frame.writeUInt8(3, 7);
      frame.writeUInt8(2, 8);
      frame.writeUInt16BE(42, 9);
      return frame;
    });
    const uplink = new RecordingUplink();
    const binding = await startBinding(uplink, { requestTimeoutMs: 300, backoff: { initialMs: 50, maxMs: 100 } });
    const device = deviceOn(broken);
    await binding.attach({ device, model });
    await until('a malformed answer counted', () => (uplink.refusals.includes('malformed_response') ? true : undefined));
    const error = uplink.errors.find((entry) => entry.reason === 'malformed_response');
    assert.match(error?.message ?? '', /asked for 2 HoldingRegisters at 0, the answer holds 2 bytes/);
    // The PLC answered: it is not offline for a bad frame.
    assert.equal(binding.health(device)?.state, 'polling');
    garbage = true;
    const before = uplink.refusals.filter((reason) => reason === 'malformed_response').length;
    await until('garbage counted', () =>
      uplink.refusals.filter((reason) => reason === 'malformed_response').length > before + 1 ? true : undefined,
    );
    assert.ok(uplink.errors.some((entry) => entry.message.includes('the answer was not a Modbus frame')));
    assert.ok((binding.health(device)?.errors ?? 0) >= 3);
  });
});
