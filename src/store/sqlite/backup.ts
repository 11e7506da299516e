import { chmodSync } from 'node:fs';
import Database from 'better-sqlite3';

/** Pages per backup step: about 8 MB at SQLite's 4 KiB page, so progress moves on a large file. */
const PAGES_PER_STEP = 2048;

export interface BackupProgress {
  totalPages: number;
  remainingPages: number;
}

/**
 * Copies a live database into `target` with SQLite's online backup: the copy is the database as
 * of one moment, while the node keeps writing. A write by another connection restarts a backup
 * taken in steps; after one restart the rest goes in a single step, which under WAL holds only a
 * read snapshot (the node's writers are not blocked), so a busy node cannot keep it from finishing.
 */
export async function backupDatabase(file: string, target: string, progress?: (step: BackupProgress) => void): Promise<BackupProgress> {
  const source = new Database(file, { fileMustExist: true, timeout: 5000 });
  try {
    let last = Number.POSITIVE_INFINITY;
    let restarted = false;
    const done = await source.backup(target, {
      progress: (step) => {
        if (step.remainingPages > last) restarted = true;
        last = step.remainingPages;
        progress?.(step);
        return restarted ? step.totalPages : PAGES_PER_STEP;
      },
    });
    progress?.(done);
    chmodSync(target, 0o600);
    return done;
  } finally {
    source.close();
  }
}

/** SQLite's own check of a database file: undefined when sound, else what it found. */
export function databaseProblems(file: string): string | undefined {
  let db: Database.Database;
  try {
    db = new Database(file, { fileMustExist: true });
  } catch (error) {
    return (error as Error).message;
  }
  try {
    const rows: unknown = db.pragma('quick_check');
    const problems = (Array.isArray(rows) ? rows : [rows])
      .map((row: unknown) => (typeof row === 'object' && row !== null && 'quick_check' in row ? String(row.quick_check) : String(row)))
      .filter((text) => text !== 'ok');
    return problems.length > 0 ? problems.slice(0, 5).join('; ') : undefined;
  } catch (error) {
    return (error as Error).message;
  } finally {
    db.close();
  }
}

/**
 * Whether another connection (a running node) has the database open. Under WAL every connection
 * holds a shared lock for as long as it is open, so an exclusive lock is refused while any other
 * is; one that gets it lets go at once.
 */
export function databaseInUse(file: string): boolean {
  const db = new Database(file, { fileMustExist: true, timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
    db.exec('COMMIT');
    return false;
  } catch (error) {
    if (error instanceof Database.SqliteError && (error.code === 'SQLITE_BUSY' || error.code === 'SQLITE_LOCKED')) return true;
    throw error;
  } finally {
    db.close();
  }
}
