/**
 * The README's table of roles is the policy table, not a description of it: it is generated from
 * ROLE_PERMISSIONS and this test fails when the two differ (the message carries the table to paste).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { PERMISSIONS, ROLE_PERMISSIONS, ROLES } from '../src/tenancy/index.js';

const BEGIN = '<!-- roles table: generated from ROLE_PERMISSIONS (test/readme-roles.test.ts) -->';
const END = '<!-- end of roles table -->';

/** One row per permission, one column per role, ✓ where the role has it. */
function rolesTable(): string {
  const header = `| permission | ${ROLES.map((role) => `\`${role}\``).join(' | ')} |`;
  const rule = `|---|${ROLES.map(() => ':-:').join('|')}|`;
  const rows = PERMISSIONS.map(
    (permission) => `| \`${permission}\` | ${ROLES.map((role) => (ROLE_PERMISSIONS[role].has(permission) ? '✓' : '')).join(' | ')} |`,
  );
  return [header, rule, ...rows].join('\n');
}

test("the README's roles table is the policy table", () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  assert.ok(start >= 0 && end > start, `the README has no roles table between "${BEGIN}" and "${END}"`);
  const documented = readme.slice(start + BEGIN.length, end).trim();
  assert.equal(documented, rolesTable(), `paste this table into the README:\n${rolesTable()}`);
});
