import { invalid } from '../errors/index.js';

/**
 * How a device is reached: its protocol and the parameters that address it (a PLC's host and unit,
 * an OPC UA endpoint, a Sparkplug group and edge node). The registry owns these because they are
 * part of a device's registration; the gateway reads them to pick the binding and fill the thing
 * model's form placeholders.
 */

export const BINDING_PROTOCOLS = ['mqtt', 'http', 'coap', 'modbus-tcp', 'opcua', 'sparkplug-b'] as const;
export type BindingProtocol = (typeof BINDING_PROTOCOLS)[number];

export function isBindingProtocol(value: unknown): value is BindingProtocol {
  return typeof value === 'string' && (BINDING_PROTOCOLS as readonly string[]).includes(value);
}

/** A binding parameter fills a `{{name}}` placeholder in the thing model's forms (host, port, unitId…). */
export type BindingParameter = string | number | boolean;

/**
 * How a device is reached, stored with its registration: `{"protocol": "modbus-tcp", "host": "10.0.0.7",
 * "port": 502, "unitId": 1}`. Devices registered without one speak `mqtt`.
 */
export interface DeviceBindingConfig {
  protocol: BindingProtocol;
  [parameter: string]: BindingParameter;
}

export const DEFAULT_BINDING: DeviceBindingConfig = { protocol: 'mqtt' };

/** What a registration may send as `binding`: checked, every problem listed, before it is stored. */
export interface DeviceBindingInput {
  protocol?: unknown;
  [parameter: string]: unknown;
}

export interface BindingProblem {
  /** JSON pointer into the device's `binding`. */
  path: string;
  message: string;
}

// Parameters fill placeholders in forms and are shown in every device read: a bounded, small map.
export const MAX_BINDING_PARAMETERS = 32;
export const BINDING_PARAMETER_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
export const MAX_BINDING_STRING = 256;

/** What a protocol needs to reach a device, with the defaults a missing value takes. */
interface ParameterRule {
  name: string;
  check(value: BindingParameter): string | undefined;
  fallback?: BindingParameter;
}

const integerIn =
  (low: number, high: number) =>
  (value: BindingParameter): string | undefined =>
    typeof value === 'number' && Number.isInteger(value) && value >= low && value <= high
      ? undefined
      : `must be a whole number from ${low} to ${high}`;

const nonEmptyText = (value: BindingParameter): string | undefined =>
  typeof value === 'string' && value.trim() !== '' ? undefined : 'must be a non-empty string';

// Sparkplug B topic elements (spec 4.1.1): no "/", "+" or "#".
const sparkplugId = (value: BindingParameter): string | undefined =>
  typeof value === 'string' && /^[^/+#]+$/.test(value) ? undefined : 'must be a non-empty string without "/", "+" or "#"';

const opcuaEndpoint = (value: BindingParameter): string | undefined =>
  typeof value === 'string' && /^opc\.tcp:\/\/[^\s/]+/.test(value) ? undefined : 'must be an opc.tcp://host:port endpoint URL';

const REQUIRED: Record<BindingProtocol, readonly ParameterRule[]> = {
  mqtt: [],
  http: [],
  coap: [],
  'modbus-tcp': [
    { name: 'host', check: nonEmptyText },
    { name: 'port', check: integerIn(1, 65_535), fallback: 502 },
    { name: 'unitId', check: integerIn(0, 255), fallback: 1 },
  ],
  opcua: [{ name: 'endpoint', check: opcuaEndpoint }],
  'sparkplug-b': [
    { name: 'group', check: sparkplugId },
    { name: 'edgeNode', check: sparkplugId },
  ],
};

/** The parameters a protocol requires (shown in errors and the README). */
export function requiredBindingParameters(protocol: BindingProtocol): { name: string; default?: BindingParameter }[] {
  return REQUIRED[protocol].map((rule) => ({ name: rule.name, ...(rule.fallback !== undefined ? { default: rule.fallback } : {}) }));
}

function parameterProblem(name: string, value: unknown): string | undefined {
  if (typeof value === 'string') return value.length > MAX_BINDING_STRING ? `must be at most ${MAX_BINDING_STRING} characters` : undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : 'must be a finite number';
  if (typeof value === 'boolean') return undefined;
  return `"${name}" must be a string, a finite number or a boolean; got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`;
}

/**
 * Checks a binding and fills its protocol's defaults. Returns every problem found, not the first
 * one, so a registration can be fixed in one round.
 */
export function checkBinding(input: unknown): { binding?: DeviceBindingConfig; problems: BindingProblem[] } {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return { problems: [{ path: '', message: 'binding must be an object like {"protocol": "mqtt"}' }] };
  }
  const problems: BindingProblem[] = [];
  const { protocol, ...parameters } = input as DeviceBindingInput;
  if (!isBindingProtocol(protocol)) {
    problems.push({
      path: '/protocol',
      message: `protocol must be one of ${BINDING_PROTOCOLS.join(', ')}; got ${protocol === undefined ? 'nothing' : JSON.stringify(protocol)}`,
    });
  }
  const entries = Object.entries(parameters);
  if (entries.length > MAX_BINDING_PARAMETERS) {
    problems.push({ path: '', message: `at most ${MAX_BINDING_PARAMETERS} binding parameters; got ${entries.length}` });
  }
  const accepted: Record<string, BindingParameter> = {};
  for (const [name, value] of entries) {
    const path = `/${name.replaceAll('~', '~0').replaceAll('/', '~1')}`;
    // "__proto__" matches the pattern but would set the record's prototype instead of a parameter.
    if (!BINDING_PARAMETER_NAME.test(name) || name === '__proto__') {
      problems.push({
        path,
        message: `parameter name ${JSON.stringify(name.slice(0, 80))} must start with a letter or "_", then letters, digits or "_" (at most 64)`,
      });
      continue;
    }
    const problem = parameterProblem(name, value);
    if (problem) {
      problems.push({ path, message: problem.startsWith('"') ? problem : `"${name}" ${problem}` });
      continue;
    }
    accepted[name] = value as BindingParameter;
  }
  if (isBindingProtocol(protocol)) {
    for (const rule of REQUIRED[protocol]) {
      const value = accepted[rule.name];
      if (value === undefined) {
        if (parameters[rule.name] !== undefined) continue; // already reported as a bad value
        if (rule.fallback !== undefined) accepted[rule.name] = rule.fallback;
        else problems.push({ path: `/${rule.name}`, message: `a ${protocol} device needs "${rule.name}"` });
        continue;
      }
      const problem = rule.check(value);
      if (problem) problems.push({ path: `/${rule.name}`, message: `"${rule.name}" ${problem}; got ${JSON.stringify(value)}` });
    }
  }
  if (problems.length > 0 || !isBindingProtocol(protocol)) return { problems };
  return { binding: { protocol, ...accepted }, problems };
}

/** The binding to store: the default (`mqtt`) when none is given; an invalid one is refused with every problem. */
export function resolveBinding(input: unknown): DeviceBindingConfig {
  if (input === undefined) return { ...DEFAULT_BINDING };
  const { binding, problems } = checkBinding(input);
  if (!binding) throw invalid(`binding has ${problems.length} problem(s)`, problems);
  return binding;
}
