/**
 * The API document is a valid OpenAPI 3 document (checked by an independent validator), names
 * every path parameter, says what each operation answers on success, and tells what the API is.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { type JsonObject, startTestNode, type TestNode } from './support/harness.js';

let t: TestNode;
let document: JsonObject;
before(async () => {
  t = await startTestNode();
  const response = await t.api<JsonObject>('/api/v1/openapi.json');
  assert.equal(response.status, 200);
  document = response.body;
});
after(async () => {
  await t?.stop();
});

type Operation = { parameters?: { name: string; in: string }[]; responses?: Record<string, unknown>; summary?: string };

function operations(): { method: string; path: string; operation: Operation }[] {
  const paths = document.paths as Record<string, Record<string, Operation>>;
  return Object.entries(paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({ method: method.toUpperCase(), path, operation })),
  );
}

test('the document validates against the OpenAPI 3 schema', async () => {
  const validator = new Validator();
  const result = await validator.validate(document);
  assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
  assert.equal(validator.version, '3.1');
});

test('every path parameter has a name that is an identifier, and appears in the path', () => {
  for (const { method, path, operation } of operations()) {
    for (const parameter of operation.parameters ?? []) {
      if (parameter.in !== 'path') continue;
      assert.match(parameter.name, /^[A-Za-z][A-Za-z0-9]*$/, `${method} ${path}: parameter "${parameter.name}"`);
      assert.ok(path.includes(`{${parameter.name}}`), `${method} ${path} names {${parameter.name}}`);
    }
    assert.doesNotMatch(path, /\{\*\}|\*/, `${method} ${path}`);
  }
});

test('every operation documents its success answer and has a summary', () => {
  const all = operations();
  assert.ok(all.length > 50, `${all.length} operations`);
  for (const { method, path, operation } of all) {
    const success = Object.keys(operation.responses ?? {}).filter((status) => /^(101|2\d\d|3\d\d)$/.test(status));
    assert.ok(success.length > 0, `${method} ${path} documents a 2xx (or redirect) answer`);
    assert.ok(operation.summary && operation.summary.length > 5, `${method} ${path} has a summary`);
  }
});

test('the info text says what the API is today', () => {
  const info = document.info as JsonObject;
  assert.match(String(info.description), /tenant/i);
  assert.match(String(info.description), /agent/i);
  assert.match(String(info.description), /twin/i);
});
