import { join } from 'node:path';
import type { ISessionContext, OPCUAServer, Variant } from 'node-opcua';
import {
  injectPumpFault,
  newPump,
  PUMP_FAULTS,
  type PumpReading,
  type PumpState,
  type Random,
  readPump,
  seededRandom,
  stepPump,
} from './physics.js';
import type { DeviceSpec } from './provisioning.js';
import type { ThingModelDocument } from './scenarios.js';

/**
 * A second line of the pump station behind an OPC UA server (node-opcua's OPCUAServer): pumps with
 * bearing temperature, vibration, flow and speed as AnalogItems (EURange and EngineeringUnits), a
 * writable speed setpoint and Start/Stop methods, driven by the same pump physics as the fleet.
 * Node ids: `ns=1;s=Line2.Pump{n}.{Variable}`; the thing model below maps them with `{{pump}}`.
 */

export interface OpcuaLineOptions {
  /** 0 picks a free port. */
  port: number;
  pumps?: number;
  /** Plant seconds per real second. */
  speedup?: number;
  /** Physics step, real milliseconds. */
  tickMs?: number;
  random?: Random;
  /** Where the server keeps its certificate and trust lists. */
  pkiDir: string;
  /** Accept every client certificate (a lab line); off: clients must be trusted in `{pkiDir}/trusted`. */
  trustAllClients?: boolean;
  resourcePath?: string;
  /** The host devices are registered with in their endpoint (the server listens on every interface). */
  host?: string;
}

export interface OpcuaLine {
  endpointUrl: string;
  port: number;
  pumps: string[];
  /** The line's pumps as devices of the `line2-pump` model with their `opcua` binding. */
  devices: DeviceSpec[];
  pump(name: string): PumpState;
  /** A pump fault (bearing-wear, cavitation, stuck-sensor, dropout, drift) on a pump of the line. */
  injectFault(pump: string, fault: string, durationS?: number): void;
  stop(): Promise<void>;
}

const LINE = 'Line2';

const forms = (variable: string, extra: Record<string, number | string> = {}) => [
  { href: '{{endpoint}}', 'opcua:nodeId': `ns=1;s=${LINE}.{{pump}}.${variable}`, ...extra },
];
const analog = (unit: string, minimum: number, maximum: number, variable: string) => ({
  type: 'number',
  unit,
  minimum,
  maximum,
  readOnly: true,
  forms: forms(variable),
});

export const OPCUA_LINE_MODEL_ID = 'line2-pump';

/** One model for every pump of the line: `{"protocol": "opcua", "endpoint": "opc.tcp://…", "pump": "Pump1"}`. */
export const opcuaPumpModel: ThingModelDocument = {
  '@context': 'https://www.w3.org/2022/wot/td/v1.1',
  '@type': 'tm:ThingModel',
  title: 'Line 2 pump (OPC UA)',
  description: 'Centrifugal pump of line 2, read from the line controller over OPC UA',
  'opcua:samplingInterval': 1000,
  properties: {
    bearingTemperature: analog('Cel', -40, 200, 'BearingTemperature'),
    vibration: analog('mm/s', 0, 100, 'Vibration'),
    flow: analog('m3/h', 0, 500, 'Flow'),
    speed: analog('percent', 0, 100, 'Speed'),
    speedSetpoint: { type: 'number', unit: 'percent', minimum: 0, maximum: 100, forms: forms('SpeedSetpoint') },
    running: { type: 'boolean', readOnly: true, forms: forms('Running') },
  },
  actions: {
    stop: {
      description: 'Stops the pump; says whether it was running',
      input: { type: 'object', properties: { reason: { type: 'string' } } },
      output: { type: 'object', properties: { wasRunning: { type: 'boolean' } } },
      forms: [{ href: '{{endpoint}}', 'opcua:objectId': `ns=1;s=${LINE}.{{pump}}`, 'opcua:methodId': `ns=1;s=${LINE}.{{pump}}.Stop` }],
    },
    start: {
      description: 'Starts the pump at its setpoint',
      forms: [{ href: '{{endpoint}}', 'opcua:objectId': `ns=1;s=${LINE}.{{pump}}`, 'opcua:methodId': `ns=1;s=${LINE}.{{pump}}.Start` }],
    },
  },
};

export async function startOpcuaLine(options: OpcuaLineOptions): Promise<OpcuaLine> {
  const opcua = await import('node-opcua');
  const random = options.random ?? seededRandom(2);
  const speedup = options.speedup ?? 1;
  const tickMs = options.tickMs ?? 500;
  const names = Array.from({ length: options.pumps ?? 3 }, (_, index) => `Pump${index + 1}`);
  const states = new Map<string, PumpState>(names.map((name, index) => [name, newPump(60 + 10 * index)]));
  const pumpState = (name: string): PumpState => {
    const state = states.get(name);
    if (!state) throw new Error(`line 2 has no pump ${name} (${names.join(', ')})`);
    return state;
  };
  const readings = new Map<string, PumpReading | undefined>();
  const read = () => {
    for (const [name, state] of states) readings.set(name, readPump(state, random));
  };
  read();

  const certificates = new opcua.OPCUACertificateManager({
    rootFolder: options.pkiDir,
    automaticallyAcceptUnknownCertificate: options.trustAllClients ?? false,
  });
  await certificates.initialize();
  const server: OPCUAServer = new opcua.OPCUAServer({
    port: options.port,
    resourcePath: options.resourcePath ?? `/UA/${LINE}`,
    serverCertificateManager: certificates,
    certificateFile: join(options.pkiDir, 'own', 'certs', 'server_certificate.pem'),
    privateKeyFile: join(options.pkiDir, 'own', 'private', 'private_key.pem'),
    securityModes: [opcua.MessageSecurityMode.None, opcua.MessageSecurityMode.Sign, opcua.MessageSecurityMode.SignAndEncrypt],
    securityPolicies: [opcua.SecurityPolicy.None, opcua.SecurityPolicy.Basic256Sha256],
    buildInfo: { productName: 'Thingloop simulated line 2', manufacturerName: 'Thingloop' },
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  if (!addressSpace) throw new Error('the OPC UA server has no address space');
  const namespace = addressSpace.getOwnNamespace();
  const line = namespace.addFolder(addressSpace.rootFolder.objects, { browseName: LINE, nodeId: `s=${LINE}` });
  const double = (value: number) => new opcua.Variant({ dataType: opcua.DataType.Double, value });
  const mms = opcua.makeEUInformation('C16', 'mm/s', 'millimetre per second');

  for (const name of names) {
    const id = `${LINE}.${name}`;
    const pump = namespace.addObject({ organizedBy: line, browseName: name, nodeId: `s=${id}` });
    const reading = () => readings.get(name);
    const analogItem = (
      variable: string,
      unit: ReturnType<typeof opcua.makeEUInformation>,
      low: number,
      high: number,
      get: () => number | undefined,
    ) =>
      namespace.addAnalogDataItem({
        componentOf: pump,
        browseName: variable,
        nodeId: `s=${id}.${variable}`,
        dataType: 'Double',
        engineeringUnitsRange: { low, high },
        engineeringUnits: unit,
        minimumSamplingInterval: 100,
        accessLevel: 'CurrentRead',
        userAccessLevel: 'CurrentRead',
        value: {
          get: () => {
            const value = get();
            // A dropped-out sensor: the server says so instead of inventing a value.
            return value === undefined ? new opcua.Variant({ dataType: opcua.DataType.Null }) : double(value);
          },
        },
      });
    analogItem('BearingTemperature', opcua.standardUnits.degree_celsius, -40, 200, () => reading()?.bearingTemperature);
    analogItem('Vibration', mms, 0, 100, () => reading()?.vibration);
    analogItem('Flow', opcua.standardUnits.cubic_metre_per_hour, 0, 500, () => reading()?.flow);
    analogItem('Speed', opcua.standardUnits.percent, 0, 100, () => reading()?.speed);
    namespace.addAnalogDataItem({
      componentOf: pump,
      browseName: 'SpeedSetpoint',
      nodeId: `s=${id}.SpeedSetpoint`,
      dataType: 'Double',
      engineeringUnitsRange: { low: 0, high: 100 },
      engineeringUnits: opcua.standardUnits.percent,
      minimumSamplingInterval: 100,
      accessLevel: 'CurrentRead | CurrentWrite',
      userAccessLevel: 'CurrentRead | CurrentWrite',
      value: {
        get: () => double(pumpState(name).speedSetpoint),
        set: (variant: Variant) => {
          const value = Number(variant.value);
          if (!Number.isFinite(value) || value < 0 || value > 100) return opcua.StatusCodes.BadOutOfRange;
          states.set(name, { ...pumpState(name), speedSetpoint: value });
          return opcua.StatusCodes.Good;
        },
      },
    });
    namespace.addVariable({
      componentOf: pump,
      browseName: 'Running',
      nodeId: `s=${id}.Running`,
      dataType: 'Boolean',
      minimumSamplingInterval: 100,
      value: { get: () => new opcua.Variant({ dataType: opcua.DataType.Boolean, value: pumpState(name).running }) },
    });
    const stop = namespace.addMethod(pump, {
      browseName: 'Stop',
      nodeId: `s=${id}.Stop`,
      inputArguments: [{ name: 'reason', dataType: opcua.DataType.String, description: { text: 'why the pump is stopped' } }],
      outputArguments: [{ name: 'wasRunning', dataType: opcua.DataType.Boolean }],
    });
    // node-opcua tells promise methods from callback ones by their arity: (inputs, context).
    stop.bindMethod(async (_inputs: Variant[], _context: ISessionContext) => {
      const state = pumpState(name);
      states.set(name, { ...state, running: false });
      return {
        statusCode: opcua.StatusCodes.Good,
        outputArguments: [{ dataType: opcua.DataType.Boolean, value: state.running }],
      };
    });
    const start = namespace.addMethod(pump, { browseName: 'Start', nodeId: `s=${id}.Start`, inputArguments: [], outputArguments: [] });
    start.bindMethod(async (_inputs: Variant[], _context: ISessionContext) => {
      states.set(name, { ...pumpState(name), running: true });
      return { statusCode: opcua.StatusCodes.Good };
    });
  }

  const timer = setInterval(() => {
    for (const [name, state] of states) states.set(name, stepPump(state, (tickMs / 1000) * speedup));
    read();
  }, tickMs);
  timer.unref();

  await server.start();
  const port = server.endpoints[0]?.port ?? options.port;
  const endpointUrl = `opc.tcp://${options.host ?? '127.0.0.1'}:${port}${options.resourcePath ?? `/UA/${LINE}`}`;
  return {
    endpointUrl,
    port,
    pumps: names,
    devices: names.map((name, index) => ({
      id: `line2-pump-${String(index + 1).padStart(2, '0')}`,
      model: OPCUA_LINE_MODEL_ID,
      name: `Line 2 ${name}`,
      attributes: { line: LINE, pump: name },
      network: { profile: 'ethernet' },
      binding: { protocol: 'opcua', endpoint: endpointUrl, pump: name },
    })),
    pump: pumpState,
    injectFault: (pump, fault, durationS) => {
      const known = PUMP_FAULTS.find((name) => name === fault);
      if (!known) throw new Error(`unknown fault ${fault}; one of ${PUMP_FAULTS.join(', ')}`);
      states.set(pump, injectPumpFault(pumpState(pump), known, durationS));
    },
    async stop() {
      clearInterval(timer);
      await server.shutdown(0);
      await certificates.dispose();
    },
  };
}
