import { Ajv, type ErrorObject } from 'ajv';
import { AFFORDANCE_NAME_PATTERN, type DataSchema, type ModelProblem, RESERVED_PROPERTY_NAMES, type ThingModel } from './thing-model.js';

const DATA_TYPES = ['boolean', 'integer', 'number', 'string', 'object', 'array', 'null'];

// A structural schema for the part of a Thing Model that Thingloop interprets. It is
// deliberately open (additional members allowed): a full TD carries forms, links,
// security definitions and semantic annotations we store but do not act on.
const dataSchema = {
  $id: 'thingloop:data-schema',
  type: 'object',
  properties: {
    type: { enum: DATA_TYPES },
    title: { type: 'string' },
    description: { type: 'string' },
    unit: { type: 'string' },
    minimum: { type: 'number' },
    maximum: { type: 'number' },
    exclusiveMinimum: { type: 'number' },
    exclusiveMaximum: { type: 'number' },
    multipleOf: { type: 'number', exclusiveMinimum: 0 },
    enum: { type: 'array', minItems: 1 },
    format: { type: 'string' },
    minLength: { type: 'integer', minimum: 0 },
    maxLength: { type: 'integer', minimum: 0 },
    pattern: { type: 'string' },
    items: { $ref: 'thingloop:data-schema' },
    minItems: { type: 'integer', minimum: 0 },
    maxItems: { type: 'integer', minimum: 0 },
    properties: { type: 'object', additionalProperties: { $ref: 'thingloop:data-schema' } },
    required: { type: 'array', items: { type: 'string' } },
    readOnly: { type: 'boolean' },
    writeOnly: { type: 'boolean' },
    observable: { type: 'boolean' },
  },
};

const thingModelSchema = {
  type: 'object',
  required: ['title'],
  properties: {
    title: { type: 'string', minLength: 1 },
    description: { type: 'string' },
    '@type': { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
    properties: { type: 'object', additionalProperties: { $ref: 'thingloop:data-schema' } },
    actions: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        properties: {
          title: { type: 'string' },
          description: { type: 'string' },
          input: { $ref: 'thingloop:data-schema' },
          output: { $ref: 'thingloop:data-schema' },
          safe: { type: 'boolean' },
          idempotent: { type: 'boolean' },
        },
      },
    },
    events: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        properties: { title: { type: 'string' }, description: { type: 'string' }, data: { $ref: 'thingloop:data-schema' } },
      },
    },
  },
};

const structuralAjv = new Ajv({ allErrors: true, strict: false });
structuralAjv.addSchema(dataSchema);
const checkStructure = structuralAjv.compile<ThingModel>(thingModelSchema);

function toProblem(error: ErrorObject): ModelProblem {
  const path = error.instancePath || '/';
  if (error.keyword === 'enum') {
    const allowed = (error.params as { allowedValues?: unknown[] }).allowedValues;
    return { path, message: `must be one of ${JSON.stringify(allowed)}` };
  }
  if (error.keyword === 'required') {
    return { path, message: `is missing required member "${(error.params as { missingProperty: string }).missingProperty}"` };
  }
  return { path, message: error.message ?? 'is invalid' };
}

/** Checks that an enum or default value is of the declared type. */
function valueMatchesType(value: unknown, type: DataSchema['type']): boolean {
  switch (type) {
    case undefined:
      return true;
    case 'integer':
      return Number.isInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'string':
    case 'boolean':
      return typeof value === type;
    case 'null':
      return value === null;
    case 'array':
      return Array.isArray(value);
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
  }
}

function isObject(value: unknown): value is Record<string, never> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function objectOrEmpty<T>(value: Record<string, T> | undefined): Record<string, T> {
  return isObject(value) ? value : {};
}

function checkDataSchema(schema: DataSchema, path: string, problems: ModelProblem[]): void {
  const low = schema.minimum ?? schema.exclusiveMinimum;
  const high = schema.maximum ?? schema.exclusiveMaximum;
  // An exclusive bound makes an equal pair empty too: no value is > 10 and < 10.
  const open =
    (schema.minimum === undefined && schema.exclusiveMinimum !== undefined) ||
    (schema.maximum === undefined && schema.exclusiveMaximum !== undefined);
  if (typeof low === 'number' && typeof high === 'number' && low > high) {
    problems.push({ path, message: `minimum (${low}) is greater than maximum (${high})` });
  } else if (open && typeof low === 'number' && low === high) {
    problems.push({ path, message: `no value fits: the range between ${low} and ${high} is empty with an exclusive bound` });
  }
  const numeric = schema.type === 'number' || schema.type === 'integer';
  if (!numeric && schema.type !== undefined && (schema.minimum !== undefined || schema.maximum !== undefined)) {
    problems.push({ path, message: `minimum/maximum only apply to number or integer, not ${schema.type}` });
  }
  if (Array.isArray(schema.enum)) {
    schema.enum.forEach((value, index) => {
      if (!valueMatchesType(value, schema.type)) {
        problems.push({ path: `${path}/enum/${index}`, message: `${JSON.stringify(value)} is not of type ${schema.type}` });
      }
    });
  }
  if (typeof schema.pattern === 'string') {
    try {
      new RegExp(schema.pattern, 'u');
    } catch {
      problems.push({ path: `${path}/pattern`, message: 'is not a valid regular expression' });
    }
  }
  if (schema.readOnly && schema.writeOnly) {
    problems.push({ path, message: 'cannot be both readOnly and writeOnly' });
  }
  for (const [name, child] of Object.entries(objectOrEmpty(schema.properties))) {
    if (isObject(child)) checkDataSchema(child, `${path}/properties/${name}`, problems);
  }
  if (isObject(schema.items)) checkDataSchema(schema.items, `${path}/items`, problems);
}

function checkAffordanceNames(kind: string, names: string[], problems: ModelProblem[]): void {
  for (const name of names) {
    // `__proto__` matches the pattern, but as a key of a plain object it sets the prototype
    // instead of a value: a sample carrying it would lose the value (or pollute the sample).
    if (name === '__proto__') {
      problems.push({ path: `/${kind}/${name}`, message: 'name "__proto__" is not allowed' });
    } else if (!AFFORDANCE_NAME_PATTERN.test(name)) {
      problems.push({
        path: `/${kind}/${name}`,
        message: `name must match ${AFFORDANCE_NAME_PATTERN.source} (it is used in MQTT topics)`,
      });
    }
  }
}

/**
 * Validates a submitted Thing Model and returns every problem found (empty when valid),
 * so a user fixes a model in one round trip instead of one error at a time.
 */
export function findModelProblems(document: unknown): ModelProblem[] {
  if (!isObject(document)) {
    return [{ path: '/', message: 'a thing model must be a JSON object' }];
  }
  const problems: ModelProblem[] = checkStructure(document) ? [] : (checkStructure.errors ?? []).map(toProblem);
  // The semantic checks below also run on a structurally broken document (skipping parts of
  // the wrong shape), so the author sees every problem at once.
  const model = document as unknown as ThingModel;
  const properties = objectOrEmpty(model.properties);
  const actions = objectOrEmpty(model.actions);
  const events = objectOrEmpty(model.events);
  checkAffordanceNames('properties', Object.keys(properties), problems);
  checkAffordanceNames('actions', Object.keys(actions), problems);
  checkAffordanceNames('events', Object.keys(events), problems);
  for (const [name, property] of Object.entries(properties)) {
    if (RESERVED_PROPERTY_NAMES.has(name)) {
      problems.push({ path: `/properties/${name}`, message: `"${name}" is reserved for the sample timestamp` });
    }
    if (!isObject(property)) continue;
    if (property.type === undefined) {
      problems.push({ path: `/properties/${name}`, message: 'must declare a type' });
    }
    checkDataSchema(property, `/properties/${name}`, problems);
  }
  for (const [name, action] of Object.entries(actions)) {
    if (isObject(action.input)) checkDataSchema(action.input, `/actions/${name}/input`, problems);
    if (isObject(action.output)) checkDataSchema(action.output, `/actions/${name}/output`, problems);
  }
  for (const [name, event] of Object.entries(events)) {
    if (isObject(event.data)) checkDataSchema(event.data, `/events/${name}/data`, problems);
  }
  return problems;
}
