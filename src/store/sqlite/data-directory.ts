/**
 * A node's data directory as a whole: an online backup of every database in it (the system one,
 * every tenant's, an embedded edge's), a restore into a new directory, and a new admin key for a
 * node whose key was lost. Each database is copied as of one moment by SQLite's backup; other
 * small files (the OPC UA client's certificates) are copied as they are.
 */
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { AdminAccess, newSecret } from '../../access/index.js';
import { backupDatabase, databaseInUse, databaseProblems } from './backup.js';
import { openDatabase } from './database.js';
import { SqliteSettings } from './metadata.js';

/** The system database (settings, tenants, people, keys, audit) and the default tenant's store. */
const SYSTEM_DATABASE = 'thingloop.db';
const MANIFEST = 'thingloop-backup.json';
/** SQLite's companions of a database: the backup copies the database itself, consistent, instead. */
const COMPANIONS = ['-wal', '-shm', '-journal'];

export interface BackupFile {
  /** Relative to the data directory, with `/` between folders. */
  path: string;
  kind: 'database' | 'file';
  bytes: number;
}

export interface BackupManifest {
  format: 1;
  thingloopVersion: string;
  createdAt: number;
  files: BackupFile[];
}

export type DataDirectoryProgress =
  | { kind: 'database'; path: string; totalPages: number; remainingPages: number }
  | { kind: 'file'; path: string; bytes: number }
  | { kind: 'checked'; path: string };

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

/** Missing, or an empty directory: somewhere a backup or restore may write without losing anything. */
async function assertFreshTarget(target: string, what: string): Promise<void> {
  const info = await stat(target).catch(() => undefined);
  if (!info) return;
  if (!info.isDirectory()) throw new Error(`${target} exists and is not a directory: give a new directory for the ${what}`);
  if ((await readdir(target)).length > 0) throw new Error(`${target} is not empty: give a new (or empty) directory for the ${what}`);
}

/** Every file in `dir`, relative, in a stable order; SQLite companions left out. */
async function filesIn(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (current: string) => {
    const entries = await readdir(current, { withFileTypes: true });
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile() && !COMPANIONS.some((suffix) => entry.name.endsWith(suffix))) found.push(relative(dir, path));
    }
  };
  await walk(dir);
  return found;
}

const portable = (path: string) => path.split(sep).join('/');

async function assertDataDirectory(dataDir: string): Promise<void> {
  if (!(await isDirectory(dataDir))) throw new Error(`no data directory at ${dataDir}`);
  if (!(await stat(join(dataDir, SYSTEM_DATABASE)).catch(() => undefined)))
    throw new Error(`${dataDir} holds no ${SYSTEM_DATABASE}: is it a Thingloop data directory (--data-dir)?`);
}

/**
 * Backs the data directory up into `target` (a new or empty directory) while a node may be
 * running on it. Databases are those ending in `.db`; the manifest lists what was copied.
 */
export async function backupDataDirectory(
  dataDir: string,
  target: string,
  /** The Thingloop version that writes the backup, recorded in its manifest. */
  thingloopVersion: string,
  progress: (step: DataDirectoryProgress) => void = () => {},
  now: () => number = Date.now,
): Promise<BackupManifest> {
  await assertDataDirectory(dataDir);
  await assertFreshTarget(target, 'backup');
  if (!relative(dataDir, target).startsWith('..') && relative(dataDir, target) !== '')
    throw new Error(`the backup cannot go inside the data directory it backs up (${target})`);
  await mkdir(target, { recursive: true, mode: 0o700 });
  const files: BackupFile[] = [];
  for (const path of await filesIn(dataDir)) {
    const source = join(dataDir, path);
    const copy = join(target, path);
    await mkdir(dirname(copy), { recursive: true, mode: 0o700 });
    if (path.endsWith('.db')) {
      await backupDatabase(source, copy, (step) => progress({ kind: 'database', path: portable(path), ...step }));
      files.push({ path: portable(path), kind: 'database', bytes: (await stat(copy)).size });
    } else {
      await copyFile(source, copy);
      const { size } = await stat(copy);
      progress({ kind: 'file', path: portable(path), bytes: size });
      files.push({ path: portable(path), kind: 'file', bytes: size });
    }
  }
  const manifest: BackupManifest = { format: 1, thingloopVersion, createdAt: now(), files };
  await writeFile(join(target, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  return manifest;
}

async function readManifest(backup: string): Promise<BackupManifest> {
  let text: string;
  try {
    text = await readFile(join(backup, MANIFEST), 'utf8');
  } catch {
    throw new Error(`${backup} has no ${MANIFEST}: it is not a backup made by thingloop backup`);
  }
  const manifest: unknown = JSON.parse(text);
  if (
    typeof manifest !== 'object' ||
    manifest === null ||
    !('format' in manifest) ||
    manifest.format !== 1 ||
    !('files' in manifest) ||
    !Array.isArray(manifest.files)
  ) {
    throw new Error(`${join(backup, MANIFEST)} is not a backup manifest this version reads`);
  }
  const files: BackupFile[] = [];
  for (const entry of manifest.files) {
    const path: unknown = entry?.path;
    const kind: unknown = entry?.kind;
    // A manifest names files inside the backup only: no absolute paths, no way out with `..`.
    if (typeof path !== 'string' || path.startsWith('/') || path.split('/').includes('..') || (kind !== 'database' && kind !== 'file'))
      throw new Error(`${join(backup, MANIFEST)} lists an entry that is not a file of the backup: ${JSON.stringify(entry)}`);
    files.push({ path, kind, bytes: typeof entry.bytes === 'number' ? entry.bytes : 0 });
  }
  const createdAt = 'createdAt' in manifest && typeof manifest.createdAt === 'number' ? manifest.createdAt : 0;
  const thingloopVersion =
    'thingloopVersion' in manifest && typeof manifest.thingloopVersion === 'string' ? manifest.thingloopVersion : '?';
  return { format: 1, thingloopVersion, createdAt, files };
}

/**
 * Restores a backup into `target`, a new or empty directory (a node is then started with
 * `--data-dir target`). Every database is checked by SQLite before anything is copied, so a damaged
 * backup is refused whole rather than restored in part.
 */
export async function restoreDataDirectory(
  backup: string,
  target: string,
  progress: (step: DataDirectoryProgress) => void = () => {},
): Promise<BackupManifest> {
  const manifest = await readManifest(backup);
  if (!manifest.files.some((file) => file.path === SYSTEM_DATABASE))
    throw new Error(`${backup} has no ${SYSTEM_DATABASE}: not a backup of a data directory`);
  for (const file of manifest.files) {
    const source = join(backup, ...file.path.split('/'));
    if (!(await stat(source).catch(() => undefined))) throw new Error(`${file.path} is listed in the backup but missing from ${backup}`);
    if (file.kind === 'database') {
      const problems = databaseProblems(source);
      if (problems) throw new Error(`${file.path} in the backup is damaged: ${problems}`);
      progress({ kind: 'checked', path: file.path });
    }
  }
  await assertFreshTarget(target, 'restore');
  await mkdir(target, { recursive: true, mode: 0o700 });
  try {
    for (const file of manifest.files) {
      const copy = join(target, ...file.path.split('/'));
      await mkdir(dirname(copy), { recursive: true, mode: 0o700 });
      if (file.kind === 'database') {
        await backupDatabase(join(backup, ...file.path.split('/')), copy, (step) =>
          progress({ kind: 'database', path: file.path, ...step }),
        );
      } else {
        await copyFile(join(backup, ...file.path.split('/')), copy);
        progress({ kind: 'file', path: file.path, bytes: (await stat(copy)).size });
      }
    }
  } catch (error) {
    // Half a data directory would start as a node with some tenants missing: leave none.
    await rm(target, { recursive: true, force: true });
    throw error;
  }
  return manifest;
}

/**
 * Writes a new admin key's hash into the data directory's system database and returns the key
 * (the one time it is shown). Refused while a node has the database open: it keeps the old
 * hash in memory and would not see the new one.
 */
export async function resetAdminKey(dataDir: string): Promise<string> {
  await assertDataDirectory(dataDir);
  const file = join(dataDir, SYSTEM_DATABASE);
  if (databaseInUse(file))
    throw new Error(`a node is running on ${dataDir} (its database is open): stop it first, then reset the key and start it again`);
  const db = openDatabase(file);
  try {
    const key = newSecret('tla');
    await new AdminAccess(new SqliteSettings(db)).setUp(key);
    return key;
  } finally {
    db.close();
  }
}
