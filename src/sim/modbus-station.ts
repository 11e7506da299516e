import { ModbusPlc, type PlcWrite, wordsOf } from './modbus-plc.js';
import {
  injectPumpFault,
  newPump,
  PUMP_FAULTS,
  type PumpFault,
  type PumpState,
  type Random,
  readPump,
  stepPump,
  stepValve,
  type ValveState,
} from './physics.js';
import type { ThingModelDocument } from './scenarios.js';

/**
 * A pump station behind one Modbus TCP PLC: pumps and an outlet valve as unit ids of one server
 * (modbus-serial's ServerTCP), their registers laid out as the `pump-plc` and `valve-plc` thing
 * models say (examples/models/), driven by the same pump and valve physics as the MQTT fleet, so a
 * bearing fault shows up in the PLC's registers as it does on MQTT. One model serves every pump:
 * the device's binding parameters ({{host}}, {{port}}, {{unitId}}) say which one.
 */

const context = 'https://www.w3.org/2022/wot/td/v1.1';
const PLC = 'modbus+tcp://{{host}}:{{port}}/{{unitId}}';

/** A read-only input register property. */
const input = (address: number, unit: string, minimum: number, maximum: number, terms: Record<string, string | number | boolean>) => ({
  type: 'number',
  unit,
  minimum,
  maximum,
  readOnly: true,
  forms: [{ href: `${PLC}/${address}`, op: ['readproperty'], 'modv:entity': 'InputRegister', ...terms }],
});

/** Register map of a pump: input registers 30001–30008, running feedback 10001, speed setpoint 40001, run command coil 00001. */
export const PUMP_PLC_MODEL: ThingModelDocument = {
  '@context': [context, { modv: 'https://www.w3.org/2019/wot/modbus#' }],
  '@type': 'tm:ThingModel',
  title: 'Centrifugal pump (Modbus TCP PLC)',
  description:
    'Variable-speed centrifugal pump wired to a PLC: readings in input registers, the speed setpoint in a holding register, the run command on a coil. One unit id per pump.',
  properties: {
    speed: {
      type: 'number',
      unit: 'percent',
      minimum: 0,
      maximum: 100,
      description: 'Actual speed (input register 30001) and its setpoint (holding register 40001), 0.1 % per count',
      forms: [
        { href: `${PLC}/30001`, op: ['readproperty'], 'modv:entity': 'InputRegister', 'modv:type': 'uint16', 'modv:scale': 0.1 },
        { href: `${PLC}/40001`, op: ['writeproperty'], 'modv:entity': 'HoldingRegister', 'modv:type': 'uint16', 'modv:scale': 0.1 },
      ],
    },
    flow: input(30002, 'm3/h', 0, 500, { 'modv:type': 'uint16', 'modv:scale': 0.1 }),
    dischargePressure: input(30003, 'bar', 0, 25, { 'modv:type': 'uint16', 'modv:scale': 0.01 }),
    power: input(30004, 'kW', 0, 200, { 'modv:type': 'float32' }),
    bearingTemperature: input(30006, 'Cel', -40, 200, { 'modv:type': 'float32' }),
    vibration: {
      ...input(30008, 'mm/s', 0, 100, { 'modv:type': 'uint16', 'modv:scale': 0.01 }),
      description: 'Vibration velocity RMS (ISO 10816)',
    },
    running: {
      type: 'boolean',
      readOnly: true,
      description: 'Motor running feedback (discrete input 10001)',
      forms: [{ href: `${PLC}/10001`, op: ['readproperty'], 'modv:entity': 'DiscreteInput' }],
    },
  },
  actions: {
    start: {
      description: 'Sets the run command (coil 00001)',
      output: { type: 'object', properties: { running: { type: 'boolean' } } },
      forms: [
        { href: `${PLC}/1`, op: 'invokeaction', 'modv:writes': [{ entity: 'Coil', address: 1, value: true }], 'modv:output': ['running'] },
      ],
    },
    stop: {
      description: 'Clears the run command (coil 00001)',
      output: { type: 'object', properties: { running: { type: 'boolean' } } },
      forms: [
        { href: `${PLC}/1`, op: 'invokeaction', 'modv:writes': [{ entity: 'Coil', address: 1, value: false }], 'modv:output': ['running'] },
      ],
    },
  },
};

/** Register map of a control valve: actual opening 30001, opening setpoint 40001 (0.1 % per count). */
export const VALVE_PLC_MODEL: ThingModelDocument = {
  '@context': [context, { modv: 'https://www.w3.org/2019/wot/modbus#' }],
  '@type': 'tm:ThingModel',
  title: 'Control valve (Modbus TCP PLC)',
  properties: {
    position: {
      type: 'number',
      unit: 'percent',
      minimum: 0,
      maximum: 100,
      description: 'Actual opening (input register 30001) and its setpoint (holding register 40001), 0.1 % per count',
      forms: [
        { href: `${PLC}/30001`, op: ['readproperty'], 'modv:entity': 'InputRegister', 'modv:type': 'uint16', 'modv:scale': 0.1 },
        { href: `${PLC}/40001`, op: ['writeproperty'], 'modv:entity': 'HoldingRegister', 'modv:type': 'uint16', 'modv:scale': 0.1 },
      ],
    },
  },
};

export const PLC_MODELS: Record<string, ThingModelDocument> = { 'pump-plc': PUMP_PLC_MODEL, 'valve-plc': VALVE_PLC_MODEL };

/** A device of the station as it is registered: its binding names the PLC and its unit id. */
export interface PlcDeviceSpec {
  id: string;
  model: 'pump-plc' | 'valve-plc';
  name: string;
  attributes: Record<string, string | number | boolean>;
  network: { profile: string };
  binding: { protocol: 'modbus-tcp'; host: string; port: number; unitId: number };
}

export interface PlcStationOptions {
  /** 0 picks a free port. */
  port: number;
  /** Where the PLC listens (127.0.0.1 unless given). */
  host?: string;
  /** The host devices are registered with (the node's view of the PLC); defaults to `host`. */
  advertisedHost?: string;
  pumps?: number;
  /** Plant seconds per real second. */
  speedup?: number;
  tickMs?: number;
  random?: Random;
}

export interface PlcStation {
  host: string;
  port: number;
  devices: PlcDeviceSpec[];
  plc: ModbusPlc;
  pump(id: string): PumpState;
  injectFault(id: string, fault: string, durationS?: number): void;
  stop(): Promise<void>;
}

export const VALVE_UNIT = 100;

const isPumpFault = (fault: string): fault is PumpFault => (PUMP_FAULTS as readonly string[]).includes(fault);

const pad = (n: number) => String(n).padStart(2, '0');

export async function startPlcStation(options: PlcStationOptions): Promise<PlcStation> {
  const random = options.random ?? Math.random;
  const pumps = Array.from({ length: options.pumps ?? 2 }, (_, i) => ({
    id: `plc-pump-${pad(i + 1)}`,
    unitId: i + 1,
    state: newPump(60 + 10 * (i % 2)),
  }));
  let valve: ValveState = { positionSetpoint: 50, position: 50 };
  const byUnit = new Map(pumps.map((pump) => [pump.unitId, pump]));
  const onWrite = (write: PlcWrite) => {
    const pump = byUnit.get(write.unitId);
    if (pump && write.entity === 'HoldingRegister' && write.address === 0 && typeof write.value === 'number') {
      pump.state = { ...pump.state, speedSetpoint: Math.min(100, write.value / 10) };
    } else if (pump && write.entity === 'Coil' && write.address === 0) {
      // The PLC program latches the run command at once: the feedback follows in the same scan.
      pump.state = { ...pump.state, running: write.value === true };
      plc.unit(pump.unitId).discreteInputs.set(0, pump.state.running);
    } else if (
      write.unitId === VALVE_UNIT &&
      write.entity === 'HoldingRegister' &&
      write.address === 0 &&
      typeof write.value === 'number'
    ) {
      valve = { ...valve, positionSetpoint: Math.min(100, write.value / 10) };
    }
  };
  const plc = await ModbusPlc.start({ port: options.port, host: options.host ?? '127.0.0.1', onWrite });
  const clampWord = (value: number) => Math.max(0, Math.min(0xffff, Math.round(value)));
  const publish = () => {
    for (const pump of pumps) {
      const unit = plc.unit(pump.unitId);
      unit.holdingRegisters.set(0, clampWord(pump.state.speedSetpoint * 10));
      unit.coils.set(0, pump.state.running);
      unit.discreteInputs.set(0, pump.state.running);
      // A sensor dropout leaves the registers at their last value, as a PLC's input image does.
      const reading = readPump(pump.state, random);
      if (!reading) continue;
      unit.inputRegisters.set(0, clampWord(reading.speed * 10));
      unit.inputRegisters.set(1, clampWord(reading.flow * 10));
      unit.inputRegisters.set(2, clampWord(reading.dischargePressure * 100));
      wordsOf('float32', reading.power).forEach((word, i) => {
        unit.inputRegisters.set(3 + i, word);
      });
      wordsOf('float32', reading.bearingTemperature).forEach((word, i) => {
        unit.inputRegisters.set(5 + i, word);
      });
      unit.inputRegisters.set(7, clampWord(reading.vibration * 100));
    }
    const valveUnit = plc.unit(VALVE_UNIT);
    valveUnit.holdingRegisters.set(0, clampWord(valve.positionSetpoint * 10));
    valveUnit.inputRegisters.set(0, clampWord(valve.position * 10));
  };
  publish();
  const tickMs = options.tickMs ?? 200;
  const timer = setInterval(() => {
    const dt = (tickMs / 1000) * (options.speedup ?? 1);
    for (const pump of pumps) pump.state = stepPump(pump.state, dt);
    valve = stepValve(valve, dt);
    publish();
  }, tickMs);
  timer.unref();
  const host = options.advertisedHost ?? options.host ?? '127.0.0.1';
  const binding = (unitId: number) => ({ protocol: 'modbus-tcp' as const, host, port: plc.port, unitId });
  const devices: PlcDeviceSpec[] = [
    ...pumps.map((pump, i) => ({
      id: pump.id,
      model: 'pump-plc' as const,
      name: `Pump ${i + 1} (PLC line)`,
      attributes: { station: 'station-plc', site: 'north-works', kind: 'pump' },
      network: { profile: 'ethernet' },
      binding: binding(pump.unitId),
    })),
    {
      id: 'plc-valve-01',
      model: 'valve-plc' as const,
      name: 'Outlet valve (PLC line)',
      attributes: { station: 'station-plc', site: 'north-works', kind: 'valve' },
      network: { profile: 'ethernet' },
      binding: binding(VALVE_UNIT),
    },
  ];
  return {
    host,
    port: plc.port,
    devices,
    plc,
    pump(id) {
      const pump = pumps.find((candidate) => candidate.id === id);
      if (!pump) throw new Error(`${id} is not a pump of the PLC station`);
      return pump.state;
    },
    injectFault(id, fault, durationS) {
      const pump = pumps.find((candidate) => candidate.id === id);
      if (!pump) throw new Error(`${id} is not a pump of the PLC station`);
      if (!isPumpFault(fault)) throw new Error(`unknown fault ${fault}; one of ${PUMP_FAULTS.join(', ')}`);
      pump.state = injectPumpFault(pump.state, fault, durationS);
    },
    async stop() {
      clearInterval(timer);
      await plc.close();
    },
  };
}
