import type { Command } from 'commander';
import { backupDataDirectory, type DataDirectoryProgress, resetAdminKey, restoreDataDirectory, VERSION } from '../node/index.js';
import { printJson } from './table.js';

const DEFAULT_DATA_DIR = './.thingloop';

interface DataDirOptions {
  dataDir?: string;
  json?: boolean;
}

/** The data directory of the command: --data-dir, else THINGLOOP_DATA_DIR, else serve's default. */
const dataDirOf = (options: DataDirOptions) => options.dataDir ?? process.env.THINGLOOP_DATA_DIR ?? DEFAULT_DATA_DIR;

const examples = (...lines: string[]) => ['', 'Example:', ...lines.map((line) => `  ${line}`), ''].join('\n');

const megabytes = (bytes: number) => `${(bytes / 1_048_576).toFixed(1)} MB`;

/**
 * Progress on stderr, so stdout stays the result: a line per database (its share copied, at most
 * every 10 %) and per other file.
 */
function progressPrinter(verb: string): (step: DataDirectoryProgress) => void {
  const shown = new Map<string, number>();
  return (step) => {
    if (step.kind === 'file') {
      process.stderr.write(`${verb} ${step.path} (${megabytes(step.bytes)})\n`);
      return;
    }
    if (step.kind === 'checked') {
      process.stderr.write(`checked ${step.path}: sound\n`);
      return;
    }
    const done = step.totalPages === 0 ? 100 : Math.floor(((step.totalPages - step.remainingPages) / step.totalPages) * 100);
    const tenth = Math.floor(done / 10);
    if (shown.get(step.path) === tenth) return;
    shown.set(step.path, tenth);
    process.stderr.write(`${verb} ${step.path}: ${done}% of ${step.totalPages} pages\n`);
  };
}

/** `thingloop backup`, `thingloop restore`, `thingloop admin-key reset`: work on a data directory, not through the API. */
export function addDataDirCommands(program: Command): void {
  program
    .command('backup')
    .description("copy a node's data directory (every tenant's database and the system one) while the node runs")
    .argument('<target>', 'a new or empty directory for the backup')
    .option('--data-dir <dir>', `the node's data directory (default THINGLOOP_DATA_DIR, else ${DEFAULT_DATA_DIR})`)
    .option('--json', 'print the manifest as JSON')
    .addHelpText(
      'after',
      [
        '',
        "Each database is copied as of one moment by SQLite's online backup (the node keeps serving); databases",
        'are copied one after the other, so a tenant created during the backup may be missing from it. Progress',
        'goes to stderr. thingloop-backup.json in the target lists what was copied.',
        examples('thingloop backup --data-dir /var/lib/thingloop /backups/thingloop-$(date +%F)'),
      ].join('\n'),
    )
    .action(async (target: string, options: DataDirOptions) => {
      const manifest = await backupDataDirectory(dataDirOf(options), target, VERSION, progressPrinter('backed up'));
      if (options.json) return printJson(manifest);
      const databases = manifest.files.filter((file) => file.kind === 'database');
      const bytes = manifest.files.reduce((sum, file) => sum + file.bytes, 0);
      process.stdout.write(
        `backed up ${databases.length} database(s) and ${manifest.files.length - databases.length} other file(s), ${megabytes(bytes)}, to ${target}\n`,
      );
    });

  program
    .command('restore')
    .description('restore a backup into a new data directory; then start a node on it')
    .argument('<backup>', 'a directory made by thingloop backup')
    .requiredOption('--data-dir <dir>', 'the new (or empty) data directory to restore into')
    .option('--json', 'print the manifest as JSON')
    .addHelpText(
      'after',
      [
        '',
        'Every database of the backup is checked (SQLite quick_check) before anything is written; a restore',
        'that fails half way removes what it wrote. It never writes over an existing data directory: stop the',
        'node, restore next to it, and start the node on the restored directory.',
        examples(
          'thingloop restore /backups/thingloop-2026-12-01 --data-dir /var/lib/thingloop-restored',
          'thingloop serve --data-dir /var/lib/thingloop-restored',
        ),
      ].join('\n'),
    )
    .action(async (backup: string, options: DataDirOptions & { dataDir: string }) => {
      const manifest = await restoreDataDirectory(backup, options.dataDir, progressPrinter('restored'));
      if (options.json) return printJson(manifest);
      process.stdout.write(
        `restored ${manifest.files.length} file(s) (backup of ${new Date(manifest.createdAt).toISOString()}) into ${options.dataDir}\n`,
      );
    });

  const adminKey = program.command('admin-key').description("the node's admin key");
  adminKey
    .command('reset')
    .description("write a new admin key into a stopped node's data directory and print it once (for a lost key)")
    .option('--data-dir <dir>', `the node's data directory (default THINGLOOP_DATA_DIR, else ${DEFAULT_DATA_DIR})`)
    .option('--json', 'print {"adminKey": …} as JSON')
    .addHelpText(
      'after',
      [
        '',
        'Refused while a node runs on the directory (it keeps the old key in memory). A node started with',
        '--admin-key, --admin-key-file or THINGLOOP_ADMIN_KEY uses that key instead and replaces this one.',
        examples('thingloop admin-key reset --data-dir /var/lib/thingloop'),
      ].join('\n'),
    )
    .action(async (options: DataDirOptions) => {
      const dataDir = dataDirOf(options);
      const key = await resetAdminKey(dataDir);
      if (options.json) return printJson({ adminKey: key });
      process.stdout.write(`${key}\n`);
      process.stderr.write(`new admin key for ${dataDir} (shown once; the node stores only its hash)\n`);
    });
}
