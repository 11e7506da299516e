import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type CompiledThingModel,
  compileThingModel,
  findModelProblems,
  type ModelProblem,
  type ThingModel,
} from '../../src/model/index.js';

const PUMP: ThingModel = {
  '@context': 'https://www.w3.org/2022/wot/td/v1.1',
  '@type': 'tm:ThingModel',
  title: 'Centrifugal pump',
  properties: {
    speed: { type: 'number', unit: 'percent', minimum: 0, maximum: 100 },
    temperature: { type: 'number', unit: 'Cel', minimum: -40, maximum: 200, readOnly: true },
    flow: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 10 },
    running: { type: 'boolean' },
    mode: { type: 'string', enum: ['auto', 'manual'] },
    starts: { type: 'integer', minimum: 0 },
    tag: { type: 'string', pattern: '^[A-Z]{2}-\\d+$', maxLength: 8 },
    position: { type: 'object', properties: { lat: { type: 'number' }, lon: { type: 'number' } }, required: ['lat'] },
    history: { type: 'array', items: { type: 'number' } },
    fixed: { type: 'string', const: 'yes' },
  },
  actions: {
    reset: { input: { type: 'object', properties: { reason: { type: 'string' } } }, output: { type: 'boolean' } },
    ping: {},
  },
  events: { overheated: { data: { type: 'number' } } },
  forms: [{ href: 'mqtt://example' }],
  links: [],
};

/** The problems as "path: message" lines, for readable assertions. */
function problemsOf(document: unknown): string[] {
  return findModelProblems(document).map((p: ModelProblem) => `${p.path}: ${p.message}`);
}

function hasProblem(problems: string[], path: string, message: RegExp): boolean {
  return problems.some((line) => line.startsWith(`${path}: `) && message.test(line.slice(path.length + 2)));
}

describe('findModelProblems', () => {
  test('a full, valid model (with TD members Thingloop does not interpret) has no problems', () => {
    assert.deepEqual(problemsOf(PUMP), []);
    assert.deepEqual(problemsOf({ title: 'Bare' }), []);
    assert.deepEqual(problemsOf({ title: 'Typed', '@type': ['tm:ThingModel', 'saref:Pump'] }), []);
  });

  test('a document that is not an object is one problem at the root', () => {
    for (const document of [null, [], 'pump', 42, true, undefined]) {
      assert.deepEqual(findModelProblems(document), [{ path: '/', message: 'a thing model must be a JSON object' }], String(document));
    }
  });

  test('title is required and must be a non-empty string', () => {
    assert.ok(hasProblem(problemsOf({}), '/', /missing required member "title"/));
    assert.ok(hasProblem(problemsOf({ title: '' }), '/title', /fewer than 1/));
    assert.ok(hasProblem(problemsOf({ title: 7 }), '/title', /string/));
  });

  test('property types must be known and declared', () => {
    const problems = problemsOf({ title: 'x', properties: { a: { type: 'float' }, b: { unit: 'Cel' }, c: 'number' } });
    assert.ok(hasProblem(problems, '/properties/a/type', /must be one of .*"number"/));
    assert.ok(hasProblem(problems, '/properties/b', /must declare a type/));
    assert.ok(hasProblem(problems, '/properties/c', /object/));
  });

  test('ranges: minimum above maximum, empty exclusive ranges, bounds on non-numbers', () => {
    const problems = problemsOf({
      title: 'x',
      properties: {
        a: { type: 'number', minimum: 10, maximum: 1 },
        b: { type: 'number', exclusiveMinimum: 5, exclusiveMaximum: 2 },
        c: { type: 'number', exclusiveMinimum: 3, exclusiveMaximum: 3 },
        d: { type: 'number', minimum: 3, exclusiveMaximum: 3 },
        e: { type: 'string', minimum: 1 },
        f: { type: 'number', minimum: 'low' },
        ok: { type: 'number', minimum: 3, maximum: 3 },
      },
    });
    assert.ok(hasProblem(problems, '/properties/a', /minimum \(10\) is greater than maximum \(1\)/));
    assert.ok(hasProblem(problems, '/properties/b', /minimum \(5\) is greater than maximum \(2\)/));
    assert.ok(hasProblem(problems, '/properties/c', /empty/));
    assert.ok(hasProblem(problems, '/properties/d', /empty/));
    assert.ok(hasProblem(problems, '/properties/e', /only apply to number or integer, not string/));
    assert.ok(hasProblem(problems, '/properties/f/minimum', /number/));
    assert.ok(!problems.some((line) => line.startsWith('/properties/ok')), 'an inclusive single-value range is fine');
  });

  test('enum members must match the type; enum may not be empty; multipleOf must be positive; pattern must compile', () => {
    const problems = problemsOf({
      title: 'x',
      properties: {
        mode: { type: 'string', enum: ['auto', 3, 'manual', null] },
        level: { type: 'integer', enum: [1, 2.5] },
        none: { type: 'string', enum: [] },
        step: { type: 'number', multipleOf: 0 },
        code: { type: 'string', pattern: '([' },
      },
    });
    assert.ok(hasProblem(problems, '/properties/mode/enum/1', /3 is not of type string/));
    assert.ok(hasProblem(problems, '/properties/mode/enum/3', /null is not of type string/));
    assert.ok(!hasProblem(problems, '/properties/mode/enum/0', /./));
    assert.ok(hasProblem(problems, '/properties/level/enum/1', /2\.5 is not of type integer/));
    assert.ok(hasProblem(problems, '/properties/none/enum', /fewer than 1/));
    assert.ok(hasProblem(problems, '/properties/step/multipleOf', /> 0/));
    assert.ok(hasProblem(problems, '/properties/code/pattern', /not a valid regular expression/));
  });

  test('readOnly and writeOnly together are refused', () => {
    assert.ok(
      hasProblem(
        problemsOf({ title: 'x', properties: { a: { type: 'number', readOnly: true, writeOnly: true } } }),
        '/properties/a',
        /both/,
      ),
    );
  });

  test('nested object properties, array items, action input/output and event data are checked too', () => {
    const problems = problemsOf({
      title: 'x',
      properties: {
        position: { type: 'object', properties: { lat: { type: 'number', minimum: 90, maximum: -90 } } },
        history: { type: 'array', items: { type: 'bogus' } },
        readings: { type: 'array', items: { type: 'number', minimum: 2, maximum: 1 } },
      },
      actions: { move: { input: { type: 'number', minimum: 5, maximum: 0 }, output: { type: 'string', maximum: 3 } } },
      events: { alarm: { data: { type: 'string', enum: [1] } } },
    });
    assert.ok(hasProblem(problems, '/properties/position/properties/lat', /greater than maximum/));
    assert.ok(hasProblem(problems, '/properties/history/items/type', /must be one of/));
    assert.ok(hasProblem(problems, '/properties/readings/items', /greater than maximum/));
    assert.ok(hasProblem(problems, '/actions/move/input', /greater than maximum/));
    assert.ok(hasProblem(problems, '/actions/move/output', /only apply to number/));
    assert.ok(hasProblem(problems, '/events/alarm/data/enum/0', /not of type string/));
  });

  test('affordance names must be topic-safe; ts and __proto__ are reserved', () => {
    // JSON.parse makes "__proto__" an own member, as it is in a submitted document.
    const document: unknown = JSON.parse(
      '{"title":"x","properties":{"bad name":{"type":"number"},"a/b":{"type":"number"},"9lives":{"type":"number"},' +
        '"ts":{"type":"integer"},"__proto__":{"type":"number"}},"actions":{"do+it":{}},"events":{"#all":{}}}',
    );
    const problems = problemsOf(document);
    for (const path of ['/properties/bad name', '/properties/a/b', '/properties/9lives', '/actions/do+it', '/events/#all']) {
      assert.ok(hasProblem(problems, path, /name must match/), `${path} in ${JSON.stringify(problems)}`);
    }
    assert.ok(hasProblem(problems, '/properties/ts', /reserved for the sample timestamp/));
    assert.ok(hasProblem(problems, '/properties/__proto__', /not allowed/), JSON.stringify(problems));
    // A name used elsewhere is fine: `ts` is only reserved among properties.
    assert.deepEqual(problemsOf({ title: 'x', actions: { ts: {} }, events: { ts: {} } }), []);
  });

  test('every problem of a broken model is reported at once, structural and semantic', () => {
    const problems = problemsOf({
      '@type': 5,
      properties: {
        speed: { type: 'float' },
        level: { type: 'number', minimum: 10, maximum: 1 },
        'bad name': { type: 'string' },
        ts: { type: 'integer' },
      },
      actions: 'none',
    });
    assert.ok(hasProblem(problems, '/', /"title"/));
    assert.ok(hasProblem(problems, '/@type', /./));
    assert.ok(hasProblem(problems, '/properties/speed/type', /must be one of/));
    assert.ok(hasProblem(problems, '/properties/level', /greater than maximum/));
    assert.ok(hasProblem(problems, '/properties/bad name', /name must match/));
    assert.ok(hasProblem(problems, '/properties/ts', /reserved/));
    assert.ok(hasProblem(problems, '/actions', /object/));
  });
});

describe('compileThingModel', () => {
  const model: CompiledThingModel = compileThingModel({ id: 'pump', version: 3, createdAt: 0, document: PUMP });
  const check = (property: string, value: unknown) => {
    const compiled = model.properties.get(property);
    assert.ok(compiled, property);
    return compiled.check(value);
  };
  const reason = (property: string, value: unknown) => check(property, value)?.reason ?? null;

  test('carries the id, version and one validator per affordance', () => {
    assert.equal(model.id, 'pump');
    assert.equal(model.version, 3);
    assert.deepEqual([...model.properties.keys()], Object.keys(PUMP.properties ?? {}));
    assert.deepEqual([...model.actions.keys()], ['reset', 'ping']);
    assert.deepEqual([...model.events.keys()], ['overheated']);
    assert.equal(model.properties.get('speed')?.numeric, true);
    assert.equal(model.properties.get('starts')?.numeric, true);
    assert.equal(model.properties.get('mode')?.numeric, false);
    assert.equal(model.properties.get('temperature')?.writable, false);
    assert.equal(model.properties.get('speed')?.writable, true);
  });

  test('valid values pass', () => {
    for (const [property, value] of [
      ['speed', 0],
      ['speed', 100],
      ['speed', 42.5],
      ['flow', 0.001],
      ['running', false],
      ['mode', 'auto'],
      ['starts', 7],
      ['starts', 7.0],
      ['tag', 'AB-12'],
      ['position', { lat: 1.5, lon: 2 }],
      ['history', [1, 2.5]],
      ['fixed', 'yes'],
    ] as const) {
      assert.equal(check(property, value), null, `${property} = ${JSON.stringify(value)}`);
    }
  });

  test('wrong_type: a value of another JSON type', () => {
    assert.equal(reason('speed', '42'), 'wrong_type');
    assert.equal(reason('speed', true), 'wrong_type');
    assert.equal(reason('speed', null), 'wrong_type');
    assert.equal(reason('running', 1), 'wrong_type');
    assert.equal(reason('running', 'true'), 'wrong_type');
    assert.equal(reason('mode', 1), 'wrong_type');
    assert.equal(reason('position', [1, 2]), 'wrong_type');
    assert.equal(reason('history', { 0: 1 }), 'wrong_type');
    const nested = check('position', { lat: 'north' });
    assert.equal(nested?.reason, 'wrong_type');
    assert.match(nested?.message ?? '', /\/lat/);
  });

  test('integer versus number', () => {
    assert.equal(reason('starts', 1.5), 'wrong_type');
    assert.equal(reason('starts', 2), null);
    assert.equal(reason('speed', 2), null, 'an integer is a number');
  });

  test('out_of_range: minimum, maximum, exclusiveMinimum, exclusiveMaximum', () => {
    assert.equal(reason('speed', -0.1), 'out_of_range');
    assert.equal(reason('speed', 100.1), 'out_of_range');
    assert.equal(reason('temperature', -41), 'out_of_range');
    assert.equal(reason('starts', -1), 'out_of_range');
    assert.equal(reason('flow', 0), 'out_of_range', 'exclusiveMinimum refuses the bound itself');
    assert.equal(reason('flow', 10), 'out_of_range', 'exclusiveMaximum refuses the bound itself');
    assert.equal(reason('flow', 9.999), null);
    assert.match(check('speed', 101)?.message ?? '', /100/);
  });

  test('not_in_enum for enum and const, naming the allowed values', () => {
    const problem = check('mode', 'turbo');
    assert.equal(problem?.reason, 'not_in_enum');
    assert.match(problem?.message ?? '', /"auto","manual"/);
    assert.equal(reason('fixed', 'no'), 'not_in_enum');
  });

  test('other schema failures are invalid_value', () => {
    assert.equal(reason('tag', 'ab-12'), 'invalid_value');
    assert.equal(reason('tag', 'AB-123456'), 'invalid_value');
    assert.equal(reason('position', { lon: 2 }), 'invalid_value');
  });

  test('NaN and ±Infinity are refused, also inside objects and arrays', () => {
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      assert.equal(reason('speed', value), 'wrong_type', String(value));
      assert.equal(reason('starts', value), 'wrong_type', String(value));
    }
    assert.equal(reason('position', { lat: Number.NaN }), 'wrong_type');
    assert.equal(reason('history', [1, Number.POSITIVE_INFINITY]), 'wrong_type');
    assert.match(check('history', [1, Number.NaN])?.message ?? '', /\/1 .*finite/);
  });

  test('actions and events validate their input, output and data; a missing schema accepts anything', () => {
    const reset = model.actions.get('reset');
    assert.ok(reset);
    assert.equal(reset.checkInput({ reason: 'maintenance' }), null);
    assert.equal(reset.checkInput({ reason: 5 })?.reason, 'wrong_type');
    assert.equal(reset.checkOutput(true), null);
    assert.equal(reset.checkOutput('done')?.reason, 'wrong_type');
    const ping = model.actions.get('ping');
    assert.equal(ping?.checkInput({ anything: [1] }), null);
    assert.equal(ping?.checkOutput(undefined), null);
    const overheated = model.events.get('overheated');
    assert.equal(overheated?.(120), null);
    assert.equal(overheated?.('hot')?.reason, 'wrong_type');
  });
});
