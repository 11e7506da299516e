/**
 * The subset of the W3C WoT Thing Model / Thing Description vocabulary Thingloop reads.
 * Unknown members are kept in the stored document (a TD carries much more), but only
 * these shape behaviour.
 */

export type DataType = 'boolean' | 'integer' | 'number' | 'string' | 'object' | 'array' | 'null';

export interface DataSchema {
  type?: DataType;
  title?: string;
  description?: string;
  unit?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  multipleOf?: number;
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  format?: string;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  items?: DataSchema;
  minItems?: number;
  maxItems?: number;
  properties?: Record<string, DataSchema>;
  required?: string[];
  readOnly?: boolean;
  writeOnly?: boolean;
}

export interface PropertyAffordance extends DataSchema {
  observable?: boolean;
}

export interface ActionAffordance {
  title?: string;
  description?: string;
  input?: DataSchema;
  output?: DataSchema;
  safe?: boolean;
  idempotent?: boolean;
}

export interface EventAffordance {
  title?: string;
  description?: string;
  data?: DataSchema;
}

export interface ThingModel {
  '@context'?: unknown;
  '@type'?: string | string[];
  title: string;
  description?: string;
  version?: { model?: string; instance?: string };
  properties?: Record<string, PropertyAffordance>;
  actions?: Record<string, ActionAffordance>;
  events?: Record<string, EventAffordance>;
  [member: string]: unknown;
}

/** A stored, immutable version of a model. */
export interface ThingModelVersion {
  id: string;
  version: number;
  document: ThingModel;
  createdAt: number;
}

/** One thing wrong with a submitted model document: where, and what. */
export interface ModelProblem {
  path: string;
  message: string;
}

/** Model ids appear in URLs and device records: keep them URL- and topic-safe. */
export const MODEL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Affordance names appear in MQTT topics (`things/{id}/actions/{name}`). */
export const AFFORDANCE_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

/** `ts` is the sample timestamp in telemetry payloads, so no property may be called that. */
export const RESERVED_PROPERTY_NAMES = new Set(['ts']);
