/**
 * The OPC UA binding against a real node-opcua server (OPCUAServer, started here on port 0 and
 * restarted on the same port): monitored items become telemetry, desired values are written with
 * the variable's DataType and read back, methods are actions, Bad status codes become errors (not
 * values), a server that vanishes mid-subscription makes the devices offline and the binding
 * reconnects and monitors again when it returns, and Sign&Encrypt with Basic256Sha256 works with a
 * client certificate the server was told to trust. The uplink here only records what the binding
 * hands over: the contract is the seam.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  DataType,
  DataValue,
  type ISessionContext,
  MessageSecurityMode,
  OPCUACertificateManager,
  OPCUAServer,
  SecurityPolicy,
  StatusCodes,
  Variant,
} from 'node-opcua';
import type { DeviceBindingConfig, DeviceMessage, DeviceUplink, WotForm } from '../src/gateway/index.js';
import { type ActionAffordance, compileThingModel, type PropertyAffordance, type ThingModel } from '../src/model/index.js';
import { createLogger } from '../src/observability/index.js';
import type { DeviceRecord } from '../src/registry/index.js';
import { OpcuaBinding } from '../src/transport/opcua/index.js';
import { tempDir } from './support/harness.js';
import { until } from './support/wait.js';

interface Plant {
  temperature: number;
  setpoint: number;
  running: boolean;
  sensorStatus: 'Good' | 'BadSensorFailure';
  stops: string[];
}

interface TestServer {
  server: OPCUAServer;
  certificates: OPCUACertificateManager;
  port: number;
  stop(): Promise<void>;
}

/** A line controller: a pump with a temperature, an Int16 setpoint, a sensor that can fail and a Stop method. */
async function startServer(plant: Plant, pkiDir: string, port = 0, trustAll = true): Promise<TestServer> {
  const certificates = new OPCUACertificateManager({ rootFolder: pkiDir, automaticallyAcceptUnknownCertificate: trustAll });
  await certificates.initialize();
  const server = new OPCUAServer({
    port,
    resourcePath: '/UA/Test',
    serverCertificateManager: certificates,
    certificateFile: join(pkiDir, 'own', 'certs', 'server_certificate.pem'),
    privateKeyFile: join(pkiDir, 'own', 'private', 'private_key.pem'),
    securityModes: [MessageSecurityMode.None, MessageSecurityMode.SignAndEncrypt],
    securityPolicies: [SecurityPolicy.None, SecurityPolicy.Basic256Sha256],
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  assert.ok(addressSpace);
  const namespace = addressSpace.getOwnNamespace();
  const pump = namespace.addObject({ organizedBy: addressSpace.rootFolder.objects, browseName: 'Pump1', nodeId: 's=Pump1' });
  namespace.addVariable({
    componentOf: pump,
    browseName: 'Temperature',
    nodeId: 's=Pump1.Temperature',
    dataType: 'Double',
    minimumSamplingInterval: 50,
    value: { get: () => new Variant({ dataType: DataType.Double, value: plant.temperature }) },
  });
  namespace.addVariable({
    componentOf: pump,
    browseName: 'Setpoint',
    nodeId: 's=Pump1.Setpoint',
    dataType: 'Int16',
    accessLevel: 'CurrentRead | CurrentWrite',
    userAccessLevel: 'CurrentRead | CurrentWrite',
    minimumSamplingInterval: 50,
    value: {
      get: () => new Variant({ dataType: DataType.Int16, value: plant.setpoint }),
      set: (variant: Variant) => {
        // The server checks the type it was sent: a Double here would be BadTypeMismatch before this.
        plant.setpoint = Number(variant.value);
        return StatusCodes.Good;
      },
    },
  });
  namespace.addVariable({
    componentOf: pump,
    browseName: 'Pressure',
    nodeId: 's=Pump1.Pressure',
    dataType: 'Double',
    minimumSamplingInterval: 50,
    value: {
      timestamped_get: () =>
        plant.sensorStatus === 'Good'
          ? new DataValue({
              value: new Variant({ dataType: DataType.Double, value: 4.2 }),
              statusCode: StatusCodes.Good,
              sourceTimestamp: new Date(),
            })
          : new DataValue({
              value: new Variant({ dataType: DataType.Null }),
              statusCode: StatusCodes.BadSensorFailure,
              sourceTimestamp: new Date(),
            }),
    },
  });
  const stop = namespace.addMethod(pump, {
    browseName: 'Stop',
    nodeId: 's=Pump1.Stop',
    inputArguments: [{ name: 'reason', dataType: DataType.String }],
    outputArguments: [{ name: 'wasRunning', dataType: DataType.Boolean }],
  });
  // node-opcua tells promise methods from callback ones by their arity: (inputs, context).
  stop.bindMethod(async (inputs: Variant[], _context: ISessionContext) => {
    const wasRunning = plant.running;
    plant.running = false;
    plant.stops.push(String(inputs[0]?.value));
    return { statusCode: StatusCodes.Good, outputArguments: [{ dataType: DataType.Boolean, value: wasRunning }] };
  });
  await server.start();
  return {
    server,
    certificates,
    port: server.endpoints[0]?.port ?? port,
    async stop() {
      await server.shutdown(0);
      await certificates.dispose();
    },
  };
}

type WithForms<T> = T & { forms: WotForm[] };
const MODEL: ThingModel & {
  properties: Record<string, WithForms<PropertyAffordance>>;
  actions: Record<string, WithForms<ActionAffordance>>;
} = {
  title: 'Pump on OPC UA',
  properties: {
    temperature: {
      type: 'number',
      readOnly: true,
      forms: [{ href: '{{endpoint}}', 'opcua:nodeId': 'ns=1;s={{pump}}.Temperature', 'opcua:samplingInterval': 100 }],
    },
    setpoint: {
      type: 'integer',
      minimum: 0,
      maximum: 100,
      forms: [{ href: '{{endpoint}}', 'opcua:nodeId': 'ns=1;s={{pump}}.Setpoint', 'opcua:samplingInterval': 100 }],
    },
    pressure: {
      type: 'number',
      readOnly: true,
      forms: [{ href: '{{endpoint}}', 'opcua:nodeId': 'ns=1;s={{pump}}.Pressure', 'opcua:samplingInterval': 100 }],
    },
  },
  actions: {
    stop: {
      input: { type: 'object', properties: { reason: { type: 'string' } } },
      output: { type: 'object', properties: { wasRunning: { type: 'boolean' } } },
      forms: [{ href: '{{endpoint}}', 'opcua:objectId': 'ns=1;s={{pump}}', 'opcua:methodId': 'ns=1;s={{pump}}.Stop' }],
    },
  },
};
const compiled = compileThingModel({ id: 'opcua-pump', version: 1, document: MODEL, createdAt: 0 });

function device(id: string, binding: DeviceBindingConfig): DeviceRecord {
  const record: DeviceRecord = {
    id,
    tenant: 'default',
    uid: 1,
    name: id,
    model: 'opcua-pump',
    modelVersion: 1,
    code: `t/${id}`,
    ipv6: '::1',
    attributes: {},
    network: { profile: 'ethernet', reportIntervalMs: 1000, keepAliveMs: 60_000, sleepy: false },
    createdAt: 0,
    updatedAt: 0,
    binding,
  };
  return record;
}

/** Records what the binding hands up. */
class RecordingUplink implements DeviceUplink {
  messages: { device: string; message: DeviceMessage }[] = [];
  errors: { device: string; message: string; reason?: string }[] = [];
  refusals: string[] = [];
  async receive(device: DeviceRecord, message: DeviceMessage): Promise<void> {
    this.messages.push({ device: device.id, message });
  }
  reportError(device: DeviceRecord, message: string, reason?: string): void {
    this.errors.push({ device: device.id, message, ...(reason ? { reason } : {}) });
  }
  refused(protocol: string, reason: string): void {
    this.refusals.push(`${protocol}:${reason}`);
  }
  now(): number {
    return Date.now();
  }
  /** Property values of every telemetry sample for a device so far, in order. */
  telemetry(deviceId: string): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const { device, message } of this.messages) {
      if (device !== deviceId || message.kind !== 'telemetry' || !('body' in message.payload)) continue;
      const body = message.payload.body;
      for (const sample of Array.isArray(body) ? body : [body]) out.push(sample as Record<string, unknown>);
    }
    return out;
  }
  presence(deviceId: string): string[] {
    return this.messages.flatMap(({ device, message }) => (device === deviceId && message.kind === 'presence' ? [message.state] : []));
  }
}

const logger = createLogger({ level: 'silent' });

function pemToDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

describe('OPC UA binding against a node-opcua server', () => {
  const root = tempDir('thingloop-opcua-');
  const plant: Plant = { temperature: 61.5, setpoint: 40, running: true, sensorStatus: 'Good', stops: [] };
  let server: TestServer;
  let endpoint: string;
  const uplink = new RecordingUplink();
  const binding = new OpcuaBinding({
    dataDir: join(root, 'node'),
    logger,
    requestTimeoutMs: 2000,
    backoff: { initialMs: 200, maxMs: 1000 },
    probeIntervalMs: 500,
  });
  const pump = device('line-pump-1', { protocol: 'opcua', endpoint: '', pump: 'Pump1' });

  before(async () => {
    server = await startServer(plant, join(root, 'server-pki'));
    endpoint = `opc.tcp://127.0.0.1:${server.port}/UA/Test`;
    pump.binding.endpoint = endpoint;
    await binding.start(uplink);
    await binding.attach({ device: pump, model: compiled });
  });

  after(async () => {
    await binding.stop();
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('monitors the mapped variables and hands their values up as telemetry, online once connected', async () => {
    const sample = await until('a temperature sample', () => uplink.telemetry(pump.id).find((s) => s.temperature === 61.5));
    assert.equal(typeof sample.ts, 'number');
    await until('the setpoint', () => uplink.telemetry(pump.id).find((s) => s.setpoint === 40));
    assert.ok(uplink.presence(pump.id).includes('online'));
    plant.temperature = 63.25;
    await until('the changed temperature', () => uplink.telemetry(pump.id).find((s) => s.temperature === 63.25));
    const health = binding.health(pump);
    assert.equal(health?.protocol, 'opcua');
    assert.equal(health?.state, 'connected');
    assert.equal(typeof health?.lastGoodReadTs, 'number');
    assert.equal(typeof health?.latencyMs, 'number');
  });

  it('keeps the PKI in the data directory, owner-only', () => {
    const pki = join(root, 'node', 'opcua-pki');
    assert.equal(statSync(pki).mode & 0o777, 0o700);
    const privateKeys = readdirSync(join(pki, 'own', 'private'));
    assert.ok(privateKeys.length > 0);
  });

  it('writes a desired value with the variable DataType (Int16) and reports what it reads back', async () => {
    assert.equal(binding.reachable(pump, { kind: 'desired', state: { version: 2, desired: {}, delta: {}, ts: 0 } }), true);
    await binding.deliver(pump, {
      kind: 'desired',
      state: { version: 2, desired: { setpoint: 75 }, delta: { setpoint: 75 }, ts: Date.now() },
    });
    assert.equal(plant.setpoint, 75);
    const reported = await until('the twin report', () =>
      uplink.messages.find(({ message }) => message.kind === 'twin-reported' && 'body' in message.payload),
    );
    assert.deepEqual(reported.message.kind === 'twin-reported' && 'body' in reported.message.payload && reported.message.payload.body, {
      setpoint: 75,
    });
  });

  it('refuses a desired value the variable cannot hold, with the reason on the device errors', async () => {
    const before = uplink.errors.length;
    await binding.deliver(pump, {
      kind: 'desired',
      state: { version: 3, desired: { setpoint: 70000 }, delta: { setpoint: 70000 }, ts: Date.now() },
    });
    assert.equal(plant.setpoint, 75);
    const error = uplink.errors.slice(before).find((e) => e.message.includes('setpoint'));
    assert.match(error?.message ?? '', /outside Int16/);
    await binding.deliver(pump, {
      kind: 'desired',
      state: { version: 4, desired: { temperature: 5 }, delta: { temperature: 5 }, ts: Date.now() },
    });
    assert.ok(uplink.errors.some((e) => e.message.startsWith('desired temperature') && e.reason === 'not_writable'));
  });

  it('calls the method for an action, input arguments by name, output back as the action result', async () => {
    await binding.deliver(pump, { kind: 'invoke', id: 'inv-1', action: 'stop', input: { reason: 'maintenance' }, timeoutMs: 5000 });
    const result = await until('the action result', () =>
      uplink.messages.find(({ message }) => message.kind === 'action-result' && message.action === 'stop'),
    );
    assert.deepEqual(result.message.kind === 'action-result' && 'body' in result.message.payload && result.message.payload.body, {
      id: 'inv-1',
      output: { wasRunning: true },
    });
    assert.deepEqual(plant.stops, ['maintenance']);
    assert.equal(plant.running, false);
  });

  it('reports a Bad status code as an error with its name, never as a value', async () => {
    await until('a good pressure', () => uplink.telemetry(pump.id).find((s) => s.pressure === 4.2));
    const errorsBefore = binding.health(pump)?.errors ?? 0;
    const samplesBefore = uplink.telemetry(pump.id).length;
    plant.sensorStatus = 'BadSensorFailure';
    const error = await until('the Bad status on the device errors', () =>
      uplink.errors.find((e) => e.message.includes('BadSensorFailure')),
    );
    assert.equal(error.reason, 'bad_status');
    assert.match(error.message, /pressure/);
    assert.ok(uplink.refusals.includes('opcua:bad_status'));
    assert.ok((binding.health(pump)?.errors ?? 0) > errorsBefore);
    assert.ok(
      uplink
        .telemetry(pump.id)
        .slice(samplesBefore)
        .every((s) => s.pressure === undefined),
    );
    plant.sensorStatus = 'Good';
    await until('a good pressure again', () =>
      uplink
        .telemetry(pump.id)
        .slice(samplesBefore)
        .find((s) => s.pressure === 4.2),
    );
  });

  it('goes offline when the server vanishes, reconnects with backoff and monitors again when it returns', async () => {
    await server.stop();
    await until('presence offline', () => (uplink.presence(pump.id).includes('offline') ? true : undefined));
    await until('health unreachable', () => (binding.health(pump)?.state === 'unreachable' ? true : undefined));
    assert.ok(uplink.errors.some((e) => e.reason === 'unreachable'));
    assert.ok(uplink.refusals.includes('opcua:unreachable'));
    assert.equal(binding.reachable(pump, { kind: 'invoke', id: 'x', action: 'stop', input: {}, timeoutMs: 1000 }), false);
    await assert.rejects(binding.deliver(pump, { kind: 'invoke', id: 'x', action: 'stop', input: {}, timeoutMs: 1000 }), /not connected/);
    const onlineBefore = uplink.presence(pump.id).filter((state) => state === 'online').length;
    server = await startServer(plant, join(root, 'server-pki'), server.port);
    await until(
      'presence online again',
      () => (uplink.presence(pump.id).filter((s) => s === 'online').length > onlineBefore ? true : undefined),
      15_000,
    );
    assert.ok(uplink.presence(pump.id).includes('listening'));
    plant.temperature = 70.5;
    await until('telemetry from the restarted server', () => uplink.telemetry(pump.id).find((s) => s.temperature === 70.5), 10_000);
    assert.equal(binding.health(pump)?.state, 'connected');
  });

  it('reports forms it cannot use and an unreachable endpoint without touching the other devices', async () => {
    const broken = device('broken', { protocol: 'opcua', endpoint: 'opc.tcp://127.0.0.1:1/UA/Nowhere', pump: 'Pump9' });
    await binding.attach({ device: broken, model: compiled });
    await until('the unreachable error', () => uplink.errors.find((e) => e.device === 'broken' && e.reason === 'unreachable'));
    assert.equal(binding.health(broken)?.state, 'unreachable');
    const noEndpoint = device('no-endpoint', { protocol: 'opcua', pump: 'Pump1' });
    await binding.attach({ device: noEndpoint, model: compiled });
    assert.ok(uplink.errors.some((e) => e.device === 'no-endpoint' && /endpoint/.test(e.message)));
    plant.temperature = 71.75;
    await until('telemetry still flowing for the good device', () => uplink.telemetry(pump.id).find((s) => s.temperature === 71.75));
    await binding.detach({ tenant: 'default', id: 'broken' });
    await binding.detach({ tenant: 'default', id: 'no-endpoint' });
  });
});

describe('OPC UA binding with SignAndEncrypt (Basic256Sha256)', () => {
  it('connects with a client certificate once the server trusts it, and monitors', async () => {
    const root = tempDir('thingloop-opcua-sec-');
    const plant: Plant = { temperature: 33.5, setpoint: 10, running: true, sensorStatus: 'Good', stops: [] };
    // The server trusts no unknown client: the operator's step (trusting the rejected certificate) is part of the test.
    const server = await startServer(plant, join(root, 'server-pki'), 0, false);
    const uplink = new RecordingUplink();
    const binding = new OpcuaBinding({
      dataDir: join(root, 'node'),
      logger,
      requestTimeoutMs: 2000,
      backoff: { initialMs: 200, maxMs: 500 },
    });
    try {
      const endpoint = `opc.tcp://127.0.0.1:${server.port}/UA/Test`;
      const secure = device('secure-pump', {
        protocol: 'opcua',
        endpoint,
        pump: 'Pump1',
        securityMode: 'SignAndEncrypt',
        securityPolicy: 'Basic256Sha256',
      });
      await binding.start(uplink);
      await binding.attach({ device: secure, model: compiled });
      await until('the refusal of the untrusted client', () => uplink.errors.find((e) => e.reason === 'unreachable'), 10_000);
      const rejected = server.certificates.rejectedFolder;
      const file = await until(
        'the client certificate in the rejected folder',
        () => readdirSync(rejected).find((name) => name.endsWith('.pem')),
        10_000,
      );
      await server.certificates.trustCertificate(pemToDer(readFileSync(join(rejected, file), 'utf8')));
      await until(
        'telemetry over the encrypted channel',
        () => uplink.telemetry('secure-pump').find((s) => s.temperature === 33.5),
        15_000,
      );
      assert.equal(binding.health(secure)?.state, 'connected');
      const sessions = server.server.engine.currentSessionCount;
      assert.ok(sessions >= 1);
    } finally {
      await binding.stop();
      await server.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
