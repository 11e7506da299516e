/** A Tenancy on a real SQLite file in a temp dir, with a clock the test moves. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type SqliteDatabase, sqliteTenancyStores } from '../../src/store/sqlite/index.js';
import { type CredentialRefusal, type ScryptParameters, Tenancy, type TenancyOptions } from '../../src/tenancy/index.js';
import { ManualClock } from '../../src/time/index.js';

/** Cheap enough for many hashes per test; the default parameters have a test of their own. */
export const TEST_SCRYPT: ScryptParameters = { logN: 10, r: 8, p: 1 };
export const START = Date.UTC(2026, 11, 2, 8, 0, 0);

export interface TenancyFixture {
  tenancy: Tenancy;
  db: SqliteDatabase;
  file: string;
  clock: ManualClock;
  refusals: CredentialRefusal[];
  /** Builds another Tenancy on the same database (other options: a restart, other parameters). */
  reopen(options?: Partial<TenancyOptions>): Tenancy;
  close(): void;
}

export function tenancyFixture(options: Partial<TenancyOptions> = {}): TenancyFixture {
  const dir = mkdtempSync(join(tmpdir(), 'thingloop-tenancy-'));
  const file = join(dir, 'thingloop.db');
  const db = openDatabase(file);
  const clock = new ManualClock(START);
  const refusals: CredentialRefusal[] = [];
  const build = (more: Partial<TenancyOptions>) =>
    new Tenancy(sqliteTenancyStores(db), {
      now: () => clock.now(),
      scrypt: TEST_SCRYPT,
      refusals: { credentialRefused: (reason) => refusals.push(reason) },
      ...options,
      ...more,
    });
  return {
    tenancy: build({}),
    db,
    file,
    clock,
    refusals,
    reopen: build,
    close() {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
