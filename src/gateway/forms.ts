import type { ThingModel } from '../model/index.js';
import type { BindingParameter, BindingProtocol, DeviceBindingConfig } from './contract.js';

/**
 * W3C WoT forms in thing models. A fieldbus mapping lives in the model, per property, action or
 * event, in the vocabulary of its binding template (`modv:` for Modbus, `opcua:` for OPC UA); the
 * device's binding parameters fill the `{{placeholders}}` (as WoT Thing Models allow), so one
 * model serves a thousand PLCs.
 */

/** A WoT form: `href`, `op`, `contentType` and the binding template's own terms. */
export interface WotForm {
  href: string;
  op?: string | string[];
  contentType?: string;
  [term: string]: unknown;
}

export type AffordanceKind = 'property' | 'action' | 'event';

/** One affordance's form for a binding, placeholders filled. */
export interface BoundForm {
  kind: AffordanceKind;
  name: string;
  form: WotForm;
}

export interface FormProblem {
  path: string;
  message: string;
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}/g;

/** The URI schemes that mark a form as belonging to a protocol (W3C binding templates' schemes). */
const SCHEMES: Record<BindingProtocol, readonly string[]> = {
  mqtt: ['mqtt:', 'mqtts:'],
  http: ['http:', 'https:'],
  coap: ['coap:', 'coaps:', 'coap+tcp:'],
  'modbus-tcp': ['modbus+tcp:', 'modbus:'],
  opcua: ['opc.tcp:', 'opcua:'],
  'sparkplug-b': ['spbv1.0:', 'sparkplug:'],
};

/** Fills `{{name}}` from the device's binding parameters; names that have no value are listed. */
export function fillPlaceholders<T>(value: T, parameters: Record<string, BindingParameter>, missing: Set<string> = new Set()): T {
  if (typeof value === 'string') {
    const whole = /^\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}$/.exec(value);
    // A form term that is only a placeholder keeps the parameter's type ("modv:unitID": "{{unitId}}" → 1).
    if (whole?.[1] !== undefined) {
      const filled = parameters[whole[1]];
      if (filled === undefined) missing.add(whole[1]);
      return (filled ?? value) as T;
    }
    return value.replace(PLACEHOLDER, (text, name: string) => {
      const filled = parameters[name];
      if (filled === undefined) {
        missing.add(name);
        return text;
      }
      return String(filled);
    }) as T;
  }
  if (Array.isArray(value)) return value.map((item) => fillPlaceholders(item, parameters, missing)) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = fillPlaceholders(item, parameters, missing);
    return out as T;
  }
  return value;
}

function isForm(value: unknown): value is WotForm {
  return value !== null && typeof value === 'object' && typeof (value as { href?: unknown }).href === 'string';
}

function belongsTo(form: WotForm, protocol: BindingProtocol, base: string | undefined): boolean {
  const href = /^[a-z][a-z0-9+.-]*:/i.test(form.href) ? form.href : `${base ?? ''}${form.href}`;
  const lower = href.toLowerCase();
  return SCHEMES[protocol].some((scheme) => lower.startsWith(scheme));
}

/**
 * The forms of a model that belong to a protocol, with the device's parameters filled in. A
 * relative `href` is resolved against the model's `base` (itself filled). Problems (an unfilled
 * placeholder) are returned, not thrown: the device's error list shows them.
 */
export function boundForms(model: ThingModel, binding: DeviceBindingConfig): { forms: BoundForm[]; problems: FormProblem[] } {
  const { protocol, ...parameters } = binding;
  const problems: FormProblem[] = [];
  const baseMissing = new Set<string>();
  const base = typeof model.base === 'string' ? fillPlaceholders(model.base, parameters, baseMissing) : undefined;
  if (baseMissing.size > 0)
    problems.push({ path: '/base', message: `no binding parameter for ${[...baseMissing].map((n) => `{{${n}}}`).join(', ')}` });
  const forms: BoundForm[] = [];
  const groups: [AffordanceKind, string, Record<string, unknown> | undefined][] = [
    ['property', 'properties', model.properties as Record<string, unknown> | undefined],
    ['action', 'actions', model.actions as Record<string, unknown> | undefined],
    ['event', 'events', model.events as Record<string, unknown> | undefined],
  ];
  for (const [kind, member, affordances] of groups) {
    for (const [name, affordance] of Object.entries(affordances ?? {})) {
      const list = (affordance as { forms?: unknown }).forms;
      if (!Array.isArray(list)) continue;
      list.forEach((candidate, index) => {
        // `"href": "{{endpoint}}"` has its scheme only once filled (opc.tcp://… from the device).
        if (!isForm(candidate) || !belongsTo({ ...candidate, href: fillPlaceholders(candidate.href, parameters) }, protocol, base)) return;
        const missing = new Set<string>();
        const filled = fillPlaceholders(candidate, parameters, missing);
        if (missing.size > 0) {
          problems.push({
            path: `/${member}/${name}/forms/${index}`,
            message: `no binding parameter for ${[...missing].map((n) => `{{${n}}}`).join(', ')}: add it to the device's "binding"`,
          });
          return;
        }
        const href = /^[a-z][a-z0-9+.-]*:/i.test(filled.href) ? filled.href : `${base ?? ''}${filled.href}`;
        forms.push({ kind, name, form: { ...filled, href } });
      });
    }
  }
  return { forms, problems };
}
