import type { Json } from '../sdk/index.js';
import {
  clearPumpFaults,
  injectPumpFault,
  newPump,
  PUMP_FAULTS,
  type PumpFault,
  type PumpState,
  type Random,
  readPump,
  readStreetLight,
  type StreetLightState,
  stepPump,
  stepTank,
  stepValve,
  type TankState,
  type ValveState,
} from './physics.js';

export type ThingModelDocument = Record<string, Json>;

/** A device of a scenario: what it is, how it reads, and how it answers the platform. */
export interface SimulatedDevice {
  id: string;
  model: string;
  name: string;
  attributes: Record<string, string | number | boolean>;
  network: { profile: string; reportInterval?: string };
  read(): Record<string, Json> | undefined;
  /** Events that happened since the last call (named in the device's model), oldest first. */
  takeEvents?(): { name: string; data: Json }[];
  applyDesired(values: Record<string, Json>): void;
  actions: Record<string, (input: Json) => Json>;
}

export interface Plant {
  devices: SimulatedDevice[];
  /** Advances the physics of the whole plant by `dt` seconds. */
  advance(dt: number): void;
  injectFault(deviceId: string, fault: string, durationS?: number): void;
}

export interface Scenario {
  name: string;
  description: string;
  models: Record<string, ThingModelDocument>;
  build(count: number, random: Random): Plant;
}

const context = 'https://www.w3.org/2022/wot/td/v1.1';
const num = (unit: string, minimum: number, maximum: number, extra: Record<string, Json> = {}) => ({
  type: 'number',
  unit,
  minimum,
  maximum,
  readOnly: true,
  ...extra,
});

const pumpModel: ThingModelDocument = {
  '@context': context,
  '@type': 'tm:ThingModel',
  title: 'Centrifugal pump',
  description: 'Variable-speed centrifugal pump with bearing temperature and vibration monitoring',
  properties: {
    speed: {
      type: 'number',
      unit: 'percent',
      minimum: 0,
      maximum: 100,
      description: 'Speed setpoint (desired) and actual speed (reported)',
    },
    flow: num('m3/h', 0, 500),
    dischargePressure: num('bar', 0, 25),
    power: num('kW', 0, 200),
    bearingTemperature: num('Cel', -40, 200),
    vibration: num('mm/s', 0, 100, { description: 'Vibration velocity RMS (ISO 10816)' }),
    running: { type: 'boolean', readOnly: true },
  },
  actions: {
    start: { output: { type: 'object', properties: { running: { type: 'boolean' } } } },
    stop: { output: { type: 'object', properties: { running: { type: 'boolean' } } } },
    injectFault: {
      description: 'Simulator only: start a fault now',
      input: {
        type: 'object',
        properties: { fault: { type: 'string', enum: PUMP_FAULTS }, durationS: { type: 'number', minimum: 1 } },
        required: ['fault'],
      },
    },
    clearFaults: { description: 'Simulator only: end every fault' },
  },
  events: {
    motorState: {
      description: 'The motor started or stopped',
      data: { type: 'object', properties: { running: { type: 'boolean' } }, required: ['running'] },
    },
  },
};

const valveModel: ThingModelDocument = {
  '@context': context,
  '@type': 'tm:ThingModel',
  title: 'Control valve',
  properties: {
    position: {
      type: 'number',
      unit: 'percent',
      minimum: 0,
      maximum: 100,
      description: 'Opening setpoint (desired) and actual opening (reported)',
    },
  },
};

const tankModel: ThingModelDocument = {
  '@context': context,
  '@type': 'tm:ThingModel',
  title: 'Storage tank level sensor',
  description: 'Battery-powered NB-IoT level sensor',
  properties: { level: num('m', 0, 10), battery: num('percent', 0, 100) },
};

const streetLightModel: ThingModelDocument = {
  '@context': context,
  '@type': 'tm:ThingModel',
  title: 'Street light',
  properties: {
    dimLevel: { type: 'number', unit: 'percent', minimum: 0, maximum: 100 },
    power: num('W', 0, 500),
    ambientLux: num('lx', 0, 200_000),
    lampOk: { type: 'boolean', readOnly: true },
  },
  actions: { selfTest: { output: { type: 'object', properties: { lampOk: { type: 'boolean' } } } } },
};

const pad = (n: number) => String(n).padStart(4, '0');
const numberOf = (value: Json, fallback: number) => (typeof value === 'number' && Number.isFinite(value) ? value : fallback);

interface Station {
  pumps: { id: string; state: PumpState }[];
  valve: { id: string; state: ValveState };
  tank: { id: string; state: TankState; battery: number };
}

/** Stations of two pumps filling a tank drained through a control valve. */
export const pumpStation: Scenario = {
  name: 'pump-station',
  description:
    'Water pumping stations: 2 variable-speed pumps fill a tank drained through a control valve; the tank level sensor is on NB-IoT',
  models: { 'centrifugal-pump': pumpModel, 'control-valve': valveModel, 'storage-tank': tankModel },
  build(count, random) {
    const stations: Station[] = [];
    const devices: SimulatedDevice[] = [];
    const stationCount = Math.max(1, Math.ceil(count / 4));
    let pumpNo = 0;
    for (let s = 1; s <= stationCount && devices.length < count; s++) {
      const station: Station = {
        pumps: [],
        valve: { id: `valve-${pad(s)}`, state: { positionSetpoint: 50, position: 50 } },
        tank: { id: `tank-${pad(s)}`, state: { level: 2.5 }, battery: 100 },
      };
      stations.push(station);
      for (let p = 0; p < 2 && devices.length < count; p++) {
        const pump = { id: `pump-${pad(++pumpNo)}`, state: newPump(60 + 10 * p) };
        station.pumps.push(pump);
        let wasRunning = pump.state.running;
        devices.push({
          id: pump.id,
          model: 'centrifugal-pump',
          name: `Pump ${pumpNo} (station ${s})`,
          attributes: { station: `station-${pad(s)}`, site: 'north-works', kind: 'pump' },
          network: { profile: 'ethernet', reportInterval: '5s' },
          read: () => readPump(pump.state, random),
          takeEvents: () => {
            if (pump.state.running === wasRunning) return [];
            wasRunning = pump.state.running;
            return [{ name: 'motorState', data: { running: wasRunning } }];
          },
          applyDesired: (values) => {
            if (values.speed !== undefined) pump.state = { ...pump.state, speedSetpoint: numberOf(values.speed, pump.state.speedSetpoint) };
          },
          actions: {
            start: () => {
              pump.state = { ...pump.state, running: true };
              return { running: true };
            },
            stop: () => {
              pump.state = { ...pump.state, running: false };
              return { running: false };
            },
            injectFault: (input) => {
              const { fault, durationS } = (input ?? {}) as { fault?: PumpFault; durationS?: number };
              if (!fault || !PUMP_FAULTS.includes(fault)) throw new Error(`unknown fault; one of ${PUMP_FAULTS.join(', ')}`);
              pump.state = injectPumpFault(pump.state, fault, durationS);
              return { injected: fault };
            },
            clearFaults: () => {
              pump.state = clearPumpFaults(pump.state);
              return { cleared: true };
            },
          },
        });
      }
      if (devices.length < count) {
        devices.push({
          id: station.valve.id,
          model: 'control-valve',
          name: `Outlet valve (station ${s})`,
          attributes: { station: `station-${pad(s)}`, site: 'north-works', kind: 'valve' },
          network: { profile: 'ethernet', reportInterval: '5s' },
          read: () => ({ position: Number(station.valve.state.position.toFixed(1)) }),
          applyDesired: (values) => {
            if (values.position !== undefined) {
              station.valve.state = {
                ...station.valve.state,
                positionSetpoint: numberOf(values.position, station.valve.state.positionSetpoint),
              };
            }
          },
          actions: {},
        });
      }
      if (devices.length < count) {
        devices.push({
          id: station.tank.id,
          model: 'storage-tank',
          name: `Tank (station ${s})`,
          attributes: { station: `station-${pad(s)}`, site: 'north-works', kind: 'tank' },
          network: { profile: 'nbiot', reportInterval: '30s' },
          read: () => {
            station.tank.battery = Math.max(0, station.tank.battery - 0.001);
            return { level: Number(station.tank.state.level.toFixed(3)), battery: Number(station.tank.battery.toFixed(2)) };
          },
          applyDesired: () => {},
          actions: {},
        });
      }
    }
    const byId = new Map(stations.flatMap((station) => station.pumps.map((pump) => [pump.id, pump] as const)));
    return {
      devices,
      advance(dt) {
        for (const station of stations) {
          let inflow = 0;
          for (const pump of station.pumps) {
            pump.state = stepPump(pump.state, dt);
            inflow += 120 * (pump.state.speed / 100);
          }
          station.valve.state = stepValve(station.valve.state, dt);
          station.tank.state = stepTank(station.tank.state, inflow, station.valve.state.position, dt);
        }
      },
      injectFault(deviceId, fault, durationS) {
        const pump = byId.get(deviceId);
        if (!pump) throw new Error(`${deviceId} is not a pump of this plant`);
        if (!PUMP_FAULTS.includes(fault as PumpFault)) throw new Error(`unknown fault ${fault}; one of ${PUMP_FAULTS.join(', ')}`);
        pump.state = injectPumpFault(pump.state, fault as PumpFault, durationS);
      },
    };
  },
};

/** A street of dimmable lights on Cat.1; shows the platform is not pump-specific. */
export const streetLights: Scenario = {
  name: 'street-lights',
  description: 'City street lighting: dimmable lamps with power metering and ambient light sensors on Cat.1',
  models: { 'street-light': streetLightModel },
  build(count, random) {
    const lights = Array.from({ length: count }, (_, i) => ({
      id: `light-${pad(i + 1)}`,
      state: { dimLevel: 80, lampOk: true, t: 0 } as StreetLightState,
    }));
    return {
      devices: lights.map((light, i) => ({
        id: light.id,
        model: 'street-light',
        name: `Street light ${i + 1}`,
        attributes: { street: `street-${Math.floor(i / 20) + 1}`, kind: 'light' },
        network: { profile: 'cat1', reportInterval: '10s' },
        read: () => readStreetLight(light.state, random),
        applyDesired: (values) => {
          if (values.dimLevel !== undefined) light.state = { ...light.state, dimLevel: numberOf(values.dimLevel, light.state.dimLevel) };
        },
        actions: { selfTest: () => ({ lampOk: light.state.lampOk }) },
      })),
      advance(dt) {
        for (const light of lights) light.state = { ...light.state, t: light.state.t + dt };
      },
      injectFault(deviceId, fault) {
        const light = lights.find((l) => l.id === deviceId);
        if (!light || fault !== 'lamp-failure') throw new Error('street lights know one fault: lamp-failure');
        light.state = { ...light.state, lampOk: false };
      },
    };
  },
};

export const SCENARIOS: Record<string, Scenario> = { [pumpStation.name]: pumpStation, [streetLights.name]: streetLights };
