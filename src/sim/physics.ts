/**
 * Physics-like plant behaviour as pure step functions: state in, state out, given `dt` seconds
 * and a random source. Commands change readings because setpoints drive the state.
 */

export type Random = () => number;

/** A deterministic random source (mulberry32): the same seed gives the same plant noise every run. */
export function seededRandom(seed: number): Random {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Gaussian-ish noise from the sum of uniforms: cheap and bounded. */
export const noise = (random: Random, amplitude: number) => (random() + random() + random() - 1.5) * amplitude;

export type PumpFault = 'bearing-wear' | 'cavitation' | 'stuck-sensor' | 'dropout' | 'drift';
export const PUMP_FAULTS: PumpFault[] = ['bearing-wear', 'cavitation', 'stuck-sensor', 'dropout', 'drift'];

export interface PumpState {
  running: boolean;
  /** Setpoint and actual speed, % of rated. */
  speedSetpoint: number;
  speed: number;
  bearingTemperature: number;
  /** 0 (new) … 1 (failing). */
  wear: number;
  faults: Partial<Record<PumpFault, { since: number; until?: number }>>;
  /** Offset added by a drifting temperature sensor. */
  sensorDrift: number;
  /** The frozen reading of a stuck sensor. */
  stuckTemperature?: number;
  t: number;
}

/** A type alias (not an interface) so a reading is assignable to a JSON record. */
export type PumpReading = {
  speed: number;
  flow: number;
  dischargePressure: number;
  power: number;
  bearingTemperature: number;
  vibration: number;
  running: boolean;
};

export const AMBIENT_C = 25;
const SPEED_SLEW_PER_S = 5;
const THERMAL_TAU_S = 60;

export function newPump(speed = 70): PumpState {
  return {
    running: true,
    speedSetpoint: speed,
    speed,
    bearingTemperature: AMBIENT_C + 45 * (speed / 100),
    wear: 0,
    faults: {},
    sensorDrift: 0,
    t: 0,
  };
}

const active = (state: PumpState, fault: PumpFault) => {
  const f = state.faults[fault];
  return f !== undefined && (f.until === undefined || state.t < f.until);
};

/** Advances a pump by `dt` seconds. */
export function stepPump(state: PumpState, dt: number): PumpState {
  const target = state.running ? state.speedSetpoint : 0;
  const step = Math.sign(target - state.speed) * Math.min(Math.abs(target - state.speed), SPEED_SLEW_PER_S * dt);
  const speed = state.speed + step;
  const wear = active(state, 'bearing-wear') ? Math.min(1, state.wear + dt / 600) : state.wear;
  // Heat follows load and friction from wear; the bearing relaxes toward it with a time constant.
  const equilibrium = AMBIENT_C + 45 * (speed / 100) + 55 * wear * (speed / 100 + 0.2);
  const bearingTemperature = state.bearingTemperature + (equilibrium - state.bearingTemperature) * (1 - Math.exp(-dt / THERMAL_TAU_S));
  const sensorDrift = active(state, 'drift') ? state.sensorDrift + 0.05 * dt : state.sensorDrift;
  const next: PumpState = { ...state, speed, wear, bearingTemperature, sensorDrift, t: state.t + dt };
  if (active(state, 'stuck-sensor') && state.stuckTemperature === undefined)
    next.stuckTemperature = state.bearingTemperature + state.sensorDrift;
  if (!active(state, 'stuck-sensor')) delete next.stuckTemperature;
  return next;
}

/** What the pump's sensors read now (faults distort readings, not the pump). */
export function readPump(state: PumpState, random: Random): PumpReading | undefined {
  if (active(state, 'dropout')) return undefined;
  const load = state.speed / 100;
  const cavitating = active(state, 'cavitation') && state.speed > 5;
  const pressure = 6 * load * load + (cavitating ? 1.4 * Math.sin(state.t * 7) + noise(random, 0.8) : noise(random, 0.05));
  const round = (value: number, digits = 2) => Number(value.toFixed(digits));
  return {
    speed: round(state.speed, 1),
    flow: round(Math.max(0, 120 * load * (cavitating ? 0.8 : 1) + noise(random, 1))),
    dischargePressure: round(Math.max(0, pressure)),
    power: round(Math.max(0, 45 * load ** 3 + noise(random, 0.2))),
    bearingTemperature: round(state.stuckTemperature ?? state.bearingTemperature + state.sensorDrift + noise(random, 0.15)),
    vibration: round(Math.max(0, 1.2 + 2.5 * load + 6 * state.wear + (cavitating ? 4 : 0) + noise(random, 0.2))),
    running: state.running,
  };
}

export function injectPumpFault(state: PumpState, fault: PumpFault, durationS?: number): PumpState {
  return { ...state, faults: { ...state.faults, [fault]: { since: state.t, ...(durationS ? { until: state.t + durationS } : {}) } } };
}

export function clearPumpFaults(state: PumpState): PumpState {
  return { ...state, faults: {}, sensorDrift: 0, wear: state.wear };
}

export interface ValveState {
  positionSetpoint: number;
  position: number;
}

export function stepValve(state: ValveState, dt: number): ValveState {
  const delta = state.positionSetpoint - state.position;
  return { ...state, position: state.position + Math.sign(delta) * Math.min(Math.abs(delta), 10 * dt) };
}

export interface TankState {
  /** Metres of liquid; the tank is 5 m tall with 20 m² of floor. */
  level: number;
}

export const TANK_HEIGHT_M = 5;
const TANK_AREA_M2 = 20;

/** Inflow from the pumps (m³/h), outflow through the valve (position %, up to 300 m³/h at full head). */
export function stepTank(state: TankState, inflowM3h: number, valvePosition: number, dt: number): TankState {
  const outflow = 300 * (valvePosition / 100) * Math.sqrt(Math.max(0, state.level) / TANK_HEIGHT_M);
  const level = state.level + ((inflowM3h - outflow) / 3600) * (dt / TANK_AREA_M2);
  return { level: Math.min(TANK_HEIGHT_M, Math.max(0, level)) };
}

export interface StreetLightState {
  dimLevel: number;
  lampOk: boolean;
  t: number;
}

/** Daylight (lux) over a 24 h day compressed to `dayLengthS` seconds of simulation. */
export function daylight(t: number, dayLengthS = 600): number {
  const phase = ((t % dayLengthS) / dayLengthS) * 2 * Math.PI;
  return Math.max(0, Math.sin(phase) * 20_000);
}

export function readStreetLight(state: StreetLightState, random: Random) {
  const power = state.lampOk ? (state.dimLevel / 100) * 120 + noise(random, 0.5) : 0;
  return {
    dimLevel: state.dimLevel,
    power: Number(Math.max(0, power).toFixed(1)),
    ambientLux: Math.round(daylight(state.t) + Math.abs(noise(random, 5))),
    lampOk: state.lampOk,
  };
}
